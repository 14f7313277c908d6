"""Write one section of BENCHMARKS.md, between ``<!-- bench:NAME -->`` markers."""

from __future__ import annotations

import argparse
import os
import platform
import re
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "BENCHMARKS.md"
HEADER = "# Benchmarks\n\nFigures from the scripts in `bench/`; each section says how it was made. " \
         "Ratios compare against a baseline measured in the same run.\n"


def machine() -> str:
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}, torch {torch.__version__}, {time.strftime('%Y-%m-%d')}")


class _Write(argparse.Action):
    """``--write``: sets ``write`` (and clears ``no_write``, the older scripts' spelling)."""

    def __call__(self, parser, namespace, values, option_string=None):
        namespace.write, namespace.no_write = True, False


def add_write_flag(parser: argparse.ArgumentParser) -> None:
    """The one way a bench script is told to write BENCHMARKS.md: ``--write`` (the figures are
    only printed without it). ``args.write`` says whether it was given and ``args.no_write`` the
    opposite; ``--no-write`` is still accepted and changes nothing."""
    parser.add_argument("--write", action=_Write, nargs=0, default=False,
                        help="write the figures into BENCHMARKS.md (without it they are only printed)")
    parser.add_argument("--no-write", action="store_const", const=True, dest="no_write",
                        default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    parser.set_defaults(no_write=True)


def write_section(name: str, body: str) -> None:
    """Replace (or append) the section ``name`` of BENCHMARKS.md; bench scripts call it only
    when given ``--write`` (:func:`add_write_flag`)."""
    text = REPORT.read_text() if REPORT.exists() else HEADER
    block = f"<!-- bench:{name} -->\n{body.strip()}\n<!-- /bench:{name} -->"
    pattern = re.compile(rf"<!-- bench:{re.escape(name)} -->.*?<!-- /bench:{re.escape(name)} -->", re.S)
    text = pattern.sub(lambda _m: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    REPORT.write_text(text)
