"""``main.py --self-test``: the check packaging runs on an installed build."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_self_test_passes_and_reports_each_check(tmp_path):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", TMPDIR=str(tmp_path), TEMP=str(tmp_path), TMP=str(tmp_path))
    r = subprocess.run([sys.executable, "main.py", "--self-test"], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=100)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("[")]
    assert len(lines) == 5 and all(ln.startswith("[ok]") for ln in lines), r.stdout
    assert "qasync" in r.stdout and "render the window offscreen" in r.stdout
    assert "complete a digit with the shipped NADE" in r.stdout
    assert r.stdout.strip().endswith("self-test passed")
    assert not list(tmp_path.glob("gms-selftest-*")), "the self-test left its temporary folder behind"


def test_self_test_fails_when_a_step_fails(monkeypatch, capsys, tmp_path):
    import tempfile

    from core import data
    from gui.selftest import self_test

    def broken(*a, **k):
        raise OSError("disk on fire")

    monkeypatch.setattr(data, "load", broken)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert self_test() == 1
    assert not list(tmp_path.glob("gms-selftest-*")), "a failed self-test left its temporary folder behind"
    out = capsys.readouterr().out
    assert "[FAIL]" in out and "disk on fire" in out and "self-test FAILED" in out
