"""Cold start: the time from launching the app to its window being shown, the PyInstaller
bundle against the source checkout, measured in the same run.

    python -m bench.cold_start [--bundle dist/genmodel-sandbox/genmodel-sandbox] [--repeats 5] [--xvfb] [--write]

Each launch runs with ``GMS_QUIT_WHEN_SHOWN=1`` (gui/app.py: the app prints "window shown" in the
first turn of its event loop after the window is shown, then quits), a fresh settings folder (a
first run), the offscreen Qt platform (or X11 under Xvfb with ``--xvfb``) and a working folder
outside the checkout; the time is from just before the process starts to that line. The source
launch is ``python main.py`` with the checkout on PYTHONPATH; the bundle's is its executable, with
no PYTHONPATH. Launches alternate (source, bundle, source...) so that both see the same machine
load; the first launch of each is reported apart (it reads the files from disk if they are not in
the page cache), and the figures are the fastest and the median of the others.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.report import ROOT, add_write_flag, machine, write_section

MARK = "window shown"


def launch(cmd: list[str], env: dict[str, str], timeout: float = 300) -> float:
    """Seconds from starting ``cmd`` to its "window shown" line."""
    with tempfile.TemporaryDirectory(prefix="gms-cold-") as tmp:
        run_env = dict(env, XDG_CONFIG_HOME=str(Path(tmp) / "config"), XDG_DATA_HOME=str(Path(tmp) / "data"),
                       GMS_QUIT_WHEN_SHOWN="1")
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=tmp, env=run_env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                text=True)
        try:
            for line in proc.stdout:
                if line.strip() == MARK:
                    elapsed = time.perf_counter() - t0
                    break
            else:
                raise RuntimeError(f"{cmd[0]} ended without showing its window (exit {proc.wait()})")
            proc.wait(timeout)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        return elapsed


def base_env(xvfb: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["QT_QPA_PLATFORM"] = "xcb" if xvfb else "offscreen"
    return env


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bundle", default=str(ROOT / "dist" / "genmodel-sandbox" / "genmodel-sandbox"))
    ap.add_argument("--repeats", type=int, default=5, help="launches of each after the first (default 5)")
    ap.add_argument("--xvfb", action="store_true", help="a real X11 window under Xvfb (xvfb-run) instead of offscreen")
    add_write_flag(ap)
    args = ap.parse_args(argv)
    bundle = Path(args.bundle).resolve()
    if not bundle.is_file():
        raise SystemExit(f"no bundle at {bundle}: run bash packaging/build.sh first")
    if args.xvfb and os.environ.get("DISPLAY") is None:
        if shutil.which("xvfb-run") is None:
            raise SystemExit("--xvfb needs xvfb-run")
        return subprocess.call(["xvfb-run", "-a", "-s", "-screen 0 1400x900x24", sys.executable, "-m",
                                "bench.cold_start", *(argv if argv is not None else sys.argv[1:])], cwd=ROOT)
    env = base_env(args.xvfb)
    variants = {
        "source checkout (python main.py)": ([sys.executable, str(ROOT / "main.py")], dict(env, PYTHONPATH=str(ROOT))),
        "PyInstaller bundle": ([str(bundle)], env),
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.repeats + 1):
        for name, (cmd, run_env) in variants.items():
            times[name].append(launch(cmd, run_env))
            print(f"{name}: {times[name][-1]:.2f} s", flush=True)
    src, bun = (times[n] for n in variants)
    rows = ["| launch | first | fastest of the rest | median of the rest |", "| --- | ---: | ---: | ---: |"]
    for name, t in times.items():
        rows.append(f"| {name} | {t[0]:.2f} s | {min(t[1:]):.2f} s | {statistics.median(t[1:]):.2f} s |")
    ratio = statistics.median(bun[1:]) / statistics.median(src[1:])
    rows.append(f"| bundle / source | {bun[0] / src[0]:.2f} | {min(bun[1:]) / min(src[1:]):.2f} | "
                f"{ratio:.2f} |")
    table = "\n".join(rows)
    print(table)
    if args.write:
        platform = "X11 under Xvfb" if args.xvfb else "the offscreen Qt platform"
        write_section("cold_start", f"""## Cold start: launch to a shown window (issue 11)

`python -m bench.cold_start --repeats {args.repeats}{' --xvfb' if args.xvfb else ''}` on {machine()},
{platform}. The time from starting the process to the window being shown
(`GMS_QUIT_WHEN_SHOWN=1`: the app prints "window shown" in the first turn of its event loop after
`show()`, then quits), each launch a first run (fresh settings folder) from a folder outside the
checkout; source and bundle launches alternate. The source launch imports from the checkout's
`.py` files and their `__pycache__`; the bundle's from the bytecode archive in its executable.
These 2-core machines are shared: single launches vary by tens of percent.

{table}""")
    return 0


if __name__ == "__main__":
    sys.exit(main())
