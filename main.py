"""Entry point: the app (no arguments), ``--self-test``, and the headless commands (``train``,
``eval``, ``mixture``, ``classifier``, ``list``: :mod:`core.cli`). Anything else, an unknown
flag included, is a command-line error (one line, exit 2), never a window."""

from __future__ import annotations

import sys

import torch  # noqa: F401  (torch must be imported before Qt: torch >= 2.9 fails on Windows otherwise)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv == ["--self-test"]:
        from gui.selftest import self_test

        return self_test()
    if argv:  # a command, --help, or a mistake: the parser says which
        from core.cli import main as cli_main

        return cli_main(argv)
    from gui.app import run_app

    return run_app([])


if __name__ == "__main__":
    sys.exit(main())
