"""The reliability suite's figures: runs ``tests/reliability`` (every case, the slow ones too)
with ``$GMS_RELIABILITY_JSON`` set, and turns the figures the tests record into a table.

    python bench/reliability.py            # run the suite, print the table
    python bench/reliability.py --write    # ... and write RELIABILITY.md
    python bench/reliability.py --json F   # only render figures already recorded in F
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

COLUMNS = [("cases", "cases tried"), ("failures", "failures"), ("refused", "refused"), ("loaded", "loaded"),
           ("events_sent", "events sent"), ("seed", "seed"), ("exceptions", "exceptions"),
           ("qt_warnings", "Qt warnings"), ("runs", "runs"), ("snapshots", "snapshots"),
           ("worst_peak_growth_mb", "worst peak memory growth (MB)"), ("rss_growth_mb", "resident memory growth (MB)"),
           ("qobject_growth", "Qt object growth"), ("qobject_changes", "Qt objects changed"), ("qthread_growth", "QThread growth"),
           ("thread_growth", "thread growth"), ("worst_close_s", "worst window close (s)"), ("worst_exit_s", "worst exit time (s)")]


def run_suite(out: Path, extra: list[str]) -> tuple[int, float]:
    env = dict(os.environ, GMS_RELIABILITY_JSON=str(out), QT_QPA_PLATFORM="offscreen", PYTHONPATH=str(ROOT))
    t0 = time.perf_counter()
    rc = subprocess.call([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/reliability", *extra],
                         cwd=ROOT, env=env)
    return rc, time.perf_counter() - t0


def render(figures: dict, rc: int | None, seconds: float | None) -> str:
    lines = ["# Reliability", "",
             "Produced by `python bench/reliability.py --write`, which runs `tests/reliability` (the CI runs the",
             "same tests) and tabulates the figures they record. Each case's figure is over all its runs; exit times",
             "are the worst run's, measured by the test from the app's last line before it closes the window to the",
             "end of its process. The checkpoint fuzz is property-based (Hypothesis, derandomized); the GUI fuzz is",
             "seeded.", ""]
    xvfb = "present" if shutil.which("xvfb-run") else "absent (the Xvfb runs were skipped)"
    lines += [f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
              f"xvfb-run {xvfb}." + (f" Suite: exit status {rc}, {seconds / 60:.1f} min." if rc is not None else ""), ""]
    lines += ["| case | figures |", "|---|---|"]
    for case in sorted(figures):
        f = figures[case]
        parts = [f"{label}: {f[key]}" for key, label in COLUMNS if key in f]
        lines.append(f"| {case} | {'; '.join(parts)} |")
    lines += ["", "Limits the tests assert: every hostile checkpoint gives a `CheckpointError` and grows the peak",
              "memory by at most 4x the file's size + 64 MB (no code runs: a pickle payload would touch a marker",
              "file); every hostile data file a `DataError`; exits under 2 s, no \"QThread destroyed while",
              "running\", checkpoints always a complete old or new version; no exception and no Qt warning in the",
              "GUI fuzz; soak: resident memory growth under 50 MB, no growth in Qt objects, QThreads or threads.", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--write", action="store_true", help="write RELIABILITY.md")
    p.add_argument("--json", help="render these recorded figures instead of running the suite")
    p.add_argument("pytest_args", nargs="*", help="passed on to pytest (after --)")
    args = p.parse_args(argv)
    rc = seconds = None
    if args.json:
        figures = json.loads(Path(args.json).read_text())
    else:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "figures.json"
            rc, seconds = run_suite(out, args.pytest_args)
            figures = json.loads(out.read_text()) if out.exists() else {}
    text = render(figures, rc, seconds)
    print(text)
    if args.write:
        (ROOT / "RELIABILITY.md").write_text(text)
    return 0 if rc in (None, 0) else 1


if __name__ == "__main__":
    sys.exit(main())
