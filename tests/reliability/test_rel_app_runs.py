"""The real app in subprocesses (tests/reliability/app_driver.py), offscreen and under Xvfb
when ``xvfb-run`` exists: closing during training, sampling and a save, many times in a row and
after a long session (each exit < 2 s, no "QThread destroyed while running", the checkpoint
always a complete old or new version); >= 1000 seeded random GUI events over every tab (no
exception, no Qt warning); and a 10 000-snapshot soak (resident memory growth < 50 MB, no growth
in Qt objects or threads).

The exit time is measured by this process: from the driver's ``CLOSING`` line (printed just
before it closes the window) to the process's end."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.checkpoint import load_checkpoint, save_checkpoint
from core.models.fvsbn import FVSBN

DRIVER = Path(__file__).with_name("app_driver.py")
ROOT = DRIVER.parents[2]
XVFB = shutil.which("xvfb-run")
PLATFORMS = ["offscreen", pytest.param("xvfb", marks=pytest.mark.skipif(XVFB is None, reason="xvfb-run is not installed"))]
EXIT_LIMIT_S = 2.0
#: repeats of each lifecycle case (the figure is the worst run)
REPEATS = int(os.environ.get("GMS_LIFECYCLE_REPEATS", 5))
#: the long session before a close (a 6.6 s exit was once seen after a long idle session)
LONG_SESSION_S = float(os.environ.get("GMS_LONG_SESSION_S", 120))


def run_app(scenario: str, out: Path, platform: str = "offscreen", timeout: float = 300, **opts) -> dict:
    """Run the driver; return its JSON report plus ``exit_s`` (CLOSING line to process end)."""
    out.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, str(DRIVER), scenario, "--out", str(out), "--watchdog", str(timeout - 10)]
    for key, value in opts.items():
        cmd += [f"--{key}", str(value)]
    env = dict(os.environ, PYTHONPATH=str(ROOT), QT_QPA_PLATFORM="offscreen" if platform == "offscreen" else "xcb")
    if platform == "xvfb":
        cmd = [XVFB, "-a", "-s", "-screen 0 1280x1024x24"] + cmd
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    lines, closing = [], None
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("CLOSING") and closing is None:
            closing = time.perf_counter()
    proc.wait(timeout)
    ended = time.perf_counter()
    err = proc.stderr.read()
    assert proc.returncode == 0, f"exit {proc.returncode}\n{err[-4000:]}"
    assert closing is not None, err[-4000:]
    report = json.loads(lines[-1])
    report["exit_s"] = ended - closing
    report["stderr"] = err
    return report


def check_clean(report: dict, exit_limit: float | None = EXIT_LIMIT_S) -> None:
    assert report["exceptions"] == [], report["exceptions"]
    assert report["qt_warnings"] == [], report["qt_warnings"]
    assert report["tracebacks_in_dialogs"] == 0, report["error_dialogs"]
    assert "Destroyed while thread" not in report["stderr"] and "QThread" not in report["stderr"], report["stderr"][-2000:]
    assert exit_limit is None or report["exit_s"] < exit_limit, f"the app took {report['exit_s']:.2f} s to exit"


@pytest.fixture(scope="module")
def exits(figures):
    runs: dict[str, list[float]] = {}
    yield runs
    for case, times in runs.items():
        figures.record(f"lifecycle: close during {case}", runs=len(times), failures=0,
                       worst_exit_s=round(max(times), 2))


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("scenario", ["train", "sample", "save"])
def test_closing_during_work_many_times(tmp_path, exits, scenario, platform):
    ckpt = tmp_path / "ckpt.safetensors"
    save_checkpoint(ckpt, FVSBN((784,), FVSBN.info.defaults()), step=1)
    versions = {hashlib.sha256(ckpt.read_bytes()).hexdigest()}
    for i in range(REPEATS):
        report = run_app(scenario, tmp_path, platform)
        exits.setdefault(f"{scenario} ({platform})", []).append(report["exit_s"])
        check_clean(report)
        # the checkpoint is always a complete version: the old one or a new one that loads
        digest = hashlib.sha256(ckpt.read_bytes()).hexdigest()
        if digest not in versions:
            model, meta = load_checkpoint(ckpt)
            assert meta.step > 1
            versions.add(digest)
        assert not list(tmp_path.glob("*.tmp")), "no temporary file is left behind"
    if scenario == "save":
        assert len(versions) > 1, "the saves were written"


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("platform", PLATFORMS)
def test_closing_after_a_long_session(tmp_path, exits, platform):
    """Open, train, then idle (the 6.6 s exit was seen after a long idle session), then close
    while training again."""
    idle = LONG_SESSION_S
    report = run_app("idle", tmp_path, platform, timeout=idle + 300, idle=idle)
    exits.setdefault(f"training after a {idle:.0f} s session ({platform})", []).append(report["exit_s"])
    check_clean(report)


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("platform", PLATFORMS)
def test_interaction_fuzz(tmp_path, figures, platform):
    events, seed = int(os.environ.get("GMS_GUI_FUZZ_EVENTS", 1000)), 1
    report = run_app("fuzz", tmp_path, platform, timeout=600, events=events, seed=seed)
    figures.record(f"interaction fuzz ({platform})", events_sent=report["events"], seed=seed,
                   exceptions=len(report["exceptions"]) + report["tracebacks_in_dialogs"],
                   qt_warnings=len(report["qt_warnings"]), worst_close_s=round(report["close_s"], 2),
                   worst_exit_s=round(report["exit_s"], 2))
    assert report["events"] >= events
    check_clean(report)  # and it exits within the limit, whatever the fuzz left running


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_soak_10000_snapshots(tmp_path, figures):
    snapshots = int(os.environ.get("GMS_SOAK_SNAPSHOTS", 10000))
    report = run_app("soak", tmp_path, timeout=1400, snapshots=snapshots)
    start, end = report["start"], report["end"]
    growth = end["rss_mb"] - start["rss_mb"]
    figures.record("soak", snapshots=report["snapshots"], rss_growth_mb=round(growth, 1),
                   qobject_growth=end["qobjects"] - start["qobjects"], qobject_changes=report["qobject_changes"], qthread_growth=end["qthreads"] - start["qthreads"],
                   thread_growth=end["threads"] - start["threads"], worst_exit_s=round(report["exit_s"], 2))
    assert report["snapshots"] >= snapshots
    assert growth < 50, f"resident memory grew by {growth:.1f} MB"
    assert end["qobjects"] <= start["qobjects"], report["qobject_changes"]
    assert end["qthreads"] <= start["qthreads"]
    assert end["threads"] <= start["threads"]
    check_clean(report)
