"""Every command-line argument is checked before any work: a bad one gets one clear ``error:``
line on stderr and exit status 2 (issue 14, "Command line")."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from core import cli

ROOT = Path(__file__).resolve().parents[1]
NADE = ROOT / "resources" / "weights" / "nade.safetensors"


def one_error_line(err: str, *needles: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error:") and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], err
    return lines[0]


@pytest.fixture
def digits(tmp_path) -> Path:
    path = tmp_path / "digits.npz"
    np.savez(path, x=(np.random.default_rng(0).random((20, 784)) < 0.2).astype(np.uint8))
    return path


def test_main_py_rejects_an_unknown_flag_and_a_bad_count_in_a_subprocess(tmp_path, digits):
    """Today ``main.py --bogus`` opens the window and ``eval --batch-size -5`` divides by zero."""
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", GMS_DEVICE="cpu", PYTHONPATH=str(ROOT))
    runs = {
        "bogus": [sys.executable, "main.py", "--bogus"],
        "negative": [sys.executable, "main.py", "eval", "--checkpoint", str(NADE), "--data", str(digits),
                     "--batch-size", "-5"],
    }
    procs = {k: subprocess.Popen(v, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for k, v in runs.items()}
    out = {}
    for k, p in procs.items():
        try:
            out[k] = (*p.communicate(timeout=90), p.returncode)
        except subprocess.TimeoutExpired:
            p.kill()
            pytest.fail(f"{k}: still running after 90 s (a window opened?)")
    for k, (stdout, stderr, rc) in out.items():
        assert rc == 2, (k, rc, stderr)
        assert stdout == ""
    one_error_line(out["bogus"][1], "--bogus")
    one_error_line(out["negative"][1], "--batch-size", "-5")


@pytest.mark.parametrize("argv, needles", [
    (["eval", "--batch-size", "-5"], ["--batch-size", "at least 1"]),
    (["eval", "--batch-size", "0"], ["--batch-size", "at least 1"]),
    (["eval", "--k", "0"], ["--k", "at least 1"]),
    (["eval", "--device", "tpu"], ["--device", "tpu"]),
    (["train", "fvsbn", "--data", "bars", "--epochs", "-1"], ["--epochs", "above 0"]),
    (["train", "fvsbn", "--data", "bars", "--epochs", "0"], ["--epochs"]),
    (["train", "fvsbn", "--data", "bars", "--epochs", "nan"], ["--epochs"]),
    (["train", "fvsbn", "--data", "bars", "--max-steps", "0"], ["--max-steps"]),
    (["train", "fvsbn", "--data", "bars", "--batch-size", "0"], ["--batch-size"]),
    (["train", "fvsbn", "--data", "bars", "--lr", "-0.1"], ["--lr"]),
    (["train", "fvsbn", "--data", "bars", "--eval-size", "0"], ["--eval-size"]),
    (["train", "fvsbn", "--data", "bars", "--eval-every", "-1"], ["--eval-every"]),
    (["train", "fvsbn", "--data", "bars", "--checkpoint-every", "-3"], ["--checkpoint-every"]),
    (["train", "fvsbn", "--data", "bars", "--warmup", "-3"], ["--warmup"]),
    (["train", "fvsbn", "--data", "bars", "--patience", "-1"], ["--patience"]),
    (["train", "fvsbn", "--data", "bars", "--seed", "-1"], ["--seed"]),
    (["train", "fvsbn", "--data", "bars", "--num-threads", "0"], ["--num-threads"]),
    (["train", "fvsbn", "--data", "bars", "--out", "x.pt"], ["--out", ".safetensors"]),
    (["train", "fvsbn", "--data", "bars", "--init", "no/such.safetensors"], ["--init", "no such file"]),
    (["train", "fvsbn", "--data", "bars", "--init", "nade.json"], ["--init", ".safetensors"]),
    (["train", "fvsbn", "--data", "bars", "--bogus"], ["--bogus"]),
    (["mixture", "a.safetensors", "--data", "bars", "--out", "m.safetensors"], ["members", "no such file"]),
    (["mixture", str(NADE), "--data", "bars", "--out", "m.npz"], ["--out", ".safetensors"]),
    (["classifier", "--out", "c.safetensors", "--epochs", "0"], ["--epochs"]),
    (["classifier", "--out", "c.safetensors", "--lr", "0"], ["--lr"]),
    (["classifier", "--out", "c.txt"], ["--out"]),
    (["--self-test", "list"], ["--self-test"]),
    ([], ["choose a command"]),
    (["frobnicate"], ["frobnicate"]),
])
def test_bad_arguments_get_one_line_and_exit_2(argv, needles, capsys, tmp_path, monkeypatch, digits):
    monkeypatch.chdir(tmp_path)  # nothing may land in the repository
    if argv[:1] == ["eval"]:
        argv = ["eval", "--checkpoint", str(NADE), "--data", str(digits), *argv[1:]]
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    one_error_line(captured.err, *needles)
    assert list(tmp_path.iterdir()) == [digits], "a refused command wrote nothing"


@pytest.mark.parametrize("content, needle", [("hello world\n", "text file"), (b"\x80\x04junk", "pickle")])
@pytest.mark.parametrize("command", ["train", "eval"])
def test_data_that_is_not_an_npz_is_named_as_such(command, content, needle, tmp_path, capsys):
    """Today numpy's message invites ``allow_pickle``."""
    bad = tmp_path / "data.npz"
    bad.write_bytes(content.encode() if isinstance(content, str) else content)
    argv = (["train", "fvsbn", "--data", str(bad), "--out", str(tmp_path / "x.safetensors")] if command == "train"
            else ["eval", "--checkpoint", str(NADE), "--data", str(bad)])
    assert cli.main(argv) == 2
    line = one_error_line(capsys.readouterr().err, "not an .npz", needle)
    assert "allow_pickle" not in line


def test_eval_data_must_be_an_npz(tmp_path, capsys):
    text = tmp_path / "digits.txt"
    text.write_text("0 1 0\n")
    assert cli.main(["eval", "--checkpoint", str(NADE), "--data", str(text)]) == 2
    one_error_line(capsys.readouterr().err, "--data", ".npz")


def test_cuda_asked_for_without_cuda_says_so(monkeypatch, capsys, digits):
    """The README promises a message when the GPU asked for is not there; eval fell back silently."""
    monkeypatch.delenv("GMS_FORCE_CPU", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert cli.main(["eval", "--checkpoint", str(NADE), "--data", str(digits), "--device", "cuda"]) == 0
    captured = capsys.readouterr()
    assert "no CUDA device" in captured.err and "CPU" in captured.err, captured.err
    assert '"nll_nats"' in captured.out


def test_help_still_exits_0(capsys):
    assert cli.main(["eval", "--help"]) == 0
    assert "--batch-size" in capsys.readouterr().out


def test_train_says_when_cuda_is_missing(monkeypatch, capsys, tmp_path):
    monkeypatch.delenv("GMS_FORCE_CPU", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "x.safetensors"
    assert cli.main(["train", "fvsbn", "--data", "bars", "--max-steps", "1", "--device", "cuda", "--out", str(out)]) == 0
    assert "cuda was asked for but no CUDA device is available" in capsys.readouterr().err
