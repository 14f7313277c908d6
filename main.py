"""Entry point: the app (no arguments), ``--self-test``, ``train``, ``eval`` and ``list``."""

from __future__ import annotations

import sys

import torch  # noqa: F401  (torch must be imported before Qt: torch >= 2.9 fails on Windows otherwise)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--self-test" in argv:
        from gui.selftest import self_test

        return self_test()
    if argv and not argv[0].startswith("-") or any(a in ("-h", "--help") for a in argv):
        from core.cli import main as cli_main

        return cli_main(argv)
    from gui.app import run_app

    return run_app(argv)


if __name__ == "__main__":
    sys.exit(main())
