"""Write one section of BENCHMARKS.md, between ``<!-- bench:NAME -->`` markers."""

from __future__ import annotations

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


def write_section(name: str, body: str) -> None:
    text = REPORT.read_text() if REPORT.exists() else HEADER
    block = f"<!-- bench:{name} -->\n{body.strip()}\n<!-- /bench:{name} -->"
    pattern = re.compile(rf"<!-- bench:{re.escape(name)} -->.*?<!-- /bench:{re.escape(name)} -->", re.S)
    text = pattern.sub(lambda _m: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    REPORT.write_text(text)
