"""The headless command line, through ``main.py`` in a subprocess and ``core.cli.main`` in-process."""

from __future__ import annotations

import json
import math
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from core import cli
from core import data as datasets
from core.checkpoint import load_checkpoint, read_checkpoint_meta, sidecar_path
from core.evaluation import evaluate
from core.readouts import nll_percentiles

ROOT = Path(__file__).resolve().parents[1]


def _env() -> dict[str, str]:
    return dict(os.environ, QT_QPA_PLATFORM="offscreen", GMS_DEVICE="cpu")


def launch(*args) -> subprocess.Popen:
    """Start ``python main.py ARGS`` (several run at once: most of their time is importing torch)."""
    return subprocess.Popen([sys.executable, "main.py", *map(str, args)], cwd=ROOT, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen, timeout: float = 120) -> subprocess.CompletedProcess:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def last_json(stdout: str) -> dict:
    lines = [line for line in stdout.splitlines() if line.strip()]
    assert lines, "no output"
    return json.loads(lines[-1])


def assert_clean_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "error:" in proc.stderr
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    for needle in needles:
        assert needle in proc.stderr, proc.stderr


def binary(n: int, p: float, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).random((n, 784)) < p).astype(np.uint8)


def expected_nll(checkpoint: Path, x: np.ndarray) -> float:
    """The mean NLL in nats, computed here from the checkpoint, independently of the CLI."""
    model, _ = load_checkpoint(checkpoint)
    with torch.no_grad():
        return -model.log_prob(torch.from_numpy(x).float()).double().mean().item()


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """Every ``main.py`` subprocess of this module, started in two concurrent waves."""
    tmp = tmp_path_factory.mktemp("cli")
    out = tmp / "x.safetensors"
    ok = binary(50, 0.3, seed=1)
    np.savez(tmp / "test.npz", images=ok)
    sparse, bars = binary(40, 0.05, seed=2), datasets.load("bars", n=30, seed=9).train
    np.savez(tmp / "two.npz", sparse=sparse, bars=bars)
    np.savez(tmp / "shape.npz", x=ok[:10, :100])
    nonbinary = ok[:10].copy()
    nonbinary[3, 5] = 7
    np.savez(tmp / "nonbinary.npz", x=nonbinary)
    (tmp / "pickled.safetensors").write_bytes(pickle.dumps({"weight": np.zeros((784, 784))}))

    wave1 = {
        "train": launch("train", "fvsbn", "--data", "bars", "--max-steps", "20", "--eval-every", "10",
                        "--lr", "0.01", "--out", out),
        "list": launch("list"),
        "missing": launch("eval", "--checkpoint", tmp / "none.safetensors", "--data", tmp / "test.npz"),
        "pickled": launch("eval", "--checkpoint", tmp / "pickled.safetensors", "--data", tmp / "test.npz"),
        "family": launch("train", "no-such-family", "--data", "bars", "--max-steps", "1",
                         "--out", tmp / "family.safetensors"),
    }
    results = {name: finish(p) for name, p in wave1.items()}
    if results["train"].returncode == 0:
        wave2 = {
            "eval": launch("eval", "--checkpoint", out, "--data", tmp / "test.npz"),
            "eval_key": launch("eval", "--checkpoint", out, "--data", tmp / "two.npz", "--key", "bars"),
            "shape": launch("eval", "--checkpoint", out, "--data", tmp / "shape.npz"),
            "nonbinary": launch("eval", "--checkpoint", out, "--data", tmp / "nonbinary.npz"),
        }
        results.update({name: finish(p) for name, p in wave2.items()})
    return {"tmp": tmp, "checkpoint": out, "procs": results, "ok": ok, "sparse": sparse, "bars": bars}


@pytest.fixture(scope="module")
def trained(runs) -> tuple[Path, dict, subprocess.CompletedProcess]:
    proc = runs["procs"]["train"]
    assert proc.returncode == 0, proc.stderr
    return runs["checkpoint"], last_json(proc.stdout), proc


# --------------------------------------------------------------------------------------------
# subprocess: the real entry point
# --------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_list(runs):
    proc = runs["procs"]["list"]
    assert proc.returncode == 0, proc.stderr
    assert "fvsbn" in proc.stdout and "FVSBN" in proc.stdout and "Autoregressive" in proc.stdout
    for name in datasets.DATASETS:
        assert name in proc.stdout


@pytest.mark.slow
def test_train(trained):
    out, result, proc = trained
    assert out.is_file() and sidecar_path(out).is_file()
    assert result["family"] == "fvsbn" and result["data"] == "bars" and result["steps"] == 20
    assert result["checkpoint"] == str(out) and result["device"] == "cpu"
    assert math.isfinite(result["final_loss"])
    valid = result["valid"]
    assert valid["likelihood"] == "exact" and valid["family"] == "fvsbn" and valid["n"] == 1000
    assert 0 < valid["nll_nats"] < 784 * math.log(2)  # learnt something in 20 steps
    assert valid["bits_per_dim"] == pytest.approx(valid["nll_nats"] / (784 * math.log(2)))
    assert "step 20/20" in proc.stderr  # the progress lines go to stderr, the JSON to stdout
    meta = read_checkpoint_meta(out)
    assert meta.step == 20 and meta.hparams["lr"] == 0.01 and meta.data_name == "bars"
    assert valid["nll_nats"] == pytest.approx(expected_nll(out, datasets.load("bars").valid), rel=1e-5)


@pytest.mark.slow
def test_eval_single_key(trained, runs):
    proc = runs["procs"]["eval"]
    assert proc.returncode == 0, proc.stderr
    result = last_json(proc.stdout)
    assert result["n"] == 50 and result["trained_steps"] == 20 and result["key"] is None
    assert result["bits_per_dim"] == pytest.approx(result["nll_nats"] / (784 * math.log(2)), rel=1e-9)
    assert result["nll_nats"] == pytest.approx(expected_nll(trained[0], runs["ok"]), rel=1e-5)


@pytest.mark.slow
def test_eval_with_key(trained, runs, capsys):
    ckpt = trained[0]
    proc = runs["procs"]["eval_key"]
    assert proc.returncode == 0, proc.stderr
    by_bars = last_json(proc.stdout)
    # the other key, in-process this time
    assert cli.main(["eval", "--checkpoint", str(ckpt), "--data", str(runs["tmp"] / "two.npz"),
                     "--key", "sparse"]) == 0
    by_sparse = last_json(capsys.readouterr().out)
    assert by_bars["key"] == "bars" and by_bars["n"] == 30
    assert by_sparse["key"] == "sparse" and by_sparse["n"] == 40
    assert by_bars["nll_nats"] == pytest.approx(expected_nll(ckpt, runs["bars"]), rel=1e-5)
    assert by_sparse["nll_nats"] == pytest.approx(expected_nll(ckpt, runs["sparse"]), rel=1e-5)
    assert by_bars["nll_nats"] != pytest.approx(by_sparse["nll_nats"], rel=1e-3)
    for r in (by_bars, by_sparse):
        assert r["bits_per_dim"] == pytest.approx(r["nll_nats"] / (784 * math.log(2)), rel=1e-9)


@pytest.mark.slow
def test_error_missing_checkpoint(runs):
    assert_clean_error(runs["procs"]["missing"], "none.safetensors")


@pytest.mark.slow
def test_error_pickle_renamed(runs):
    assert_clean_error(runs["procs"]["pickled"], "pickle")


@pytest.mark.slow
def test_error_data_of_the_wrong_shape(trained, runs):
    assert_clean_error(runs["procs"]["shape"], "shape.npz", "(N, 784)")


@pytest.mark.slow
def test_error_non_binary_data(trained, runs):
    assert_clean_error(runs["procs"]["nonbinary"], "nonbinary.npz", "0 or 1")


@pytest.mark.slow
def test_error_unknown_family(runs):
    assert_clean_error(runs["procs"]["family"], "no-such-family", "fvsbn")
    assert not (runs["tmp"] / "family.safetensors").exists()


# --------------------------------------------------------------------------------------------
# in-process: core.cli.main
# --------------------------------------------------------------------------------------------


def test_in_process_list(capsys):
    assert cli.main(["list"]) == 0
    out = capsys.readouterr().out
    assert "fvsbn" in out and "binarized_mnist" in out


def test_in_process_train_and_eval(tmp_path, capsys):
    out = tmp_path / "inproc.safetensors"
    train, valid = binary(64, 0.3, 5), binary(16, 0.3, 6)
    np.savez(tmp_path / "mini.npz", train=train, valid=valid)  # --data may be a file
    rc = cli.main(["train", "fvsbn", "--data", str(tmp_path / "mini.npz"), "--max-steps", "3",
                   "--eval-every", "0", "--batch-size", "16", "--hp", "weight_decay=0.001", "--seed", "1",
                   "--out", str(out)])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    result = last_json(captured.out)
    assert result["steps"] == 3 and result["epochs"] == 0.75 and out.is_file()
    assert result["valid"]["n"] == 16
    assert result["valid"]["nll_nats"] == pytest.approx(expected_nll(out, valid), rel=1e-5)
    meta = read_checkpoint_meta(out)
    assert meta.hparams["batch_size"] == 16 and meta.hparams["weight_decay"] == 0.001
    assert meta.data.n_train == 64

    x = binary(20, 0.2, 3)
    np.savez(tmp_path / "d.npz", x=x)
    assert cli.main(["eval", "--checkpoint", str(out), "--data", str(tmp_path / "d.npz"), "--batch-size", "7"]) == 0
    result = last_json(capsys.readouterr().out)
    assert result["nll_nats"] == pytest.approx(expected_nll(out, x), rel=1e-5) and result["n"] == 20


def _data_file(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / f"{kind}.npz"
    if kind == "two-keys":
        np.savez(path, a=binary(4, 0.5, 0), b=binary(4, 0.5, 1))
    elif kind == "npy":
        with open(path, "wb") as f:
            np.save(f, binary(4, 0.5, 0))
    elif kind == "nan":
        x = binary(4, 0.5, 0).astype(np.float32)
        x[0, 0] = np.nan
        np.savez(path, x=x)
    elif kind == "text":
        path.write_text("hello")
    return path


@pytest.mark.slow
@pytest.mark.parametrize("kind, needle", [("two-keys", "--key"), ("npy", "npz"), ("nan", "NaN"),
                                          ("text", "not an .npz archive")])
def test_in_process_eval_errors(trained, tmp_path, capsys, kind, needle):
    rc = cli.main(["eval", "--checkpoint", str(trained[0]), "--data", str(_data_file(tmp_path, kind))])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error:") and needle in err, err


@pytest.mark.parametrize("argv, needle", [
    (["train", "fvsbn", "--data", "bars", "--hp", "weight_decay"], "NAME=VALUE"),
    (["train", "fvsbn", "--data", "bars", "--hp", "weight_decay=5"], "weight_decay"),
    (["train", "fvsbn", "--data", "bars", "--hp", "depth=3"], "depth"),
    (["train", "fvsbn", "--data", "bars", "--lr", "7"], "lr"),
    (["train", "fvsbn", "--data", "moons"], "points_2d"),
    (["train", "fvsbn", "--data", "no/such/file.npz"], "neither"),
    (["train", "fvsbn", "--data", "bars", "--device", "tpu"], "device"),
    (["train", "fvsbn", "--data", "bars", "--max-steps", "1", "--out", "x.pt"], "safetensors"),
])
def test_in_process_train_errors(argv, needle, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing may land in the repository
    rc = cli.main(argv)
    err = capsys.readouterr().err
    assert rc == 2 and "error:" in err and needle in err, err


def test_in_process_no_command(capsys):
    assert cli.main([]) == 2
    assert "train, eval, mixture, classifier or list" in capsys.readouterr().err


# -- train: early stopping, schedules, fine-tuning, model cards ---------------------------------

def test_train_patience_stops_early_and_keeps_the_best(tmp_path, capsys):
    """--keep-best --patience N: the run ends after N evaluations without a better held-out NLL
    (a large rate makes one come soon), and the checkpoint holds the best evaluated weights."""
    out = tmp_path / "p.safetensors"
    rc = cli.main(["train", "fvsbn", "--data", "bars", "--max-steps", "300", "--eval-every", "2",
                   "--eval-size", "200", "--keep-best", "--patience", "2", "--lr", "0.5", "--num-threads", "1",
                   "--out", str(out)])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    result = last_json(captured.out)
    assert "no better valid_nll in 2 evaluations: stopping" in captured.err
    assert result["steps"] < 300 and result["best_step"] == result["steps"] - 4  # two evaluations, 2 steps apart
    assert read_checkpoint_meta(out).step == result["best_step"]


def test_train_keep_best_record_and_fine_tune(tmp_path, capsys):
    out = tmp_path / "f.safetensors"
    rc = cli.main(["train", "fvsbn", "--data", "bars", "--max-steps", "12", "--eval-every", "3",
                   "--eval-size", "200", "--keep-best", "--record", "--schedule", "cosine", "--warmup", "2",
                   "--lr", "0.05", "--num-threads", "1", "--out", str(out)])
    assert rc == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    meta = read_checkpoint_meta(out)
    assert meta.training["command"].startswith("python main.py train fvsbn --data bars")
    assert meta.training["best_step"] == result["best_step"] and 3 <= result["best_step"] <= 12
    assert meta.hparams["lr"] == 0.05  # the base rate, not the schedule's last value
    p = meta.raw["valid_nll_percentiles"]
    assert len(p) == 101 and p == sorted(p)
    # the kept weights are the best evaluated ones, and score what the record says
    model, _ = load_checkpoint(out)
    ds = datasets.load("bars")
    assert evaluate(model, ds.valid).nats == pytest.approx(meta.valid.nats, rel=1e-5)
    # the recorded percentiles are the ones the canvas computes for a model without them
    np.testing.assert_allclose(p, nll_percentiles(model, ds.valid), rtol=1e-5)

    tuned = tmp_path / "g.safetensors"
    assert cli.main(["train", "fvsbn", "--data", "bars", "--max-steps", "5", "--init", str(out),
                     "--record", "--out", str(tuned)]) == 0
    capsys.readouterr()
    init = read_checkpoint_meta(tuned).training["init"]
    assert init["checkpoint"] == str(out) and init["training"]["command"] == meta.training["command"]
    assert evaluate(load_checkpoint(tuned)[0], ds.valid).nats < \
        evaluate(registry_fresh("fvsbn", ds), ds.valid).nats  # it started from the weights

    assert cli.main(["train", "fvsbn", "--data", "bars", "--max-steps", "1", "--init", str(out),
                     "--hp", "weight_decay=0.001", "--out", str(tuned)]) == 2
    assert "cannot change when fine-tuning" in capsys.readouterr().err
    assert cli.main(["train", "nade", "--data", "bars", "--max-steps", "1", "--init", str(out),
                     "--out", str(tuned)]) == 2
    assert "not 'nade'" in capsys.readouterr().err


def registry_fresh(key, ds):
    from core import registry

    return registry.create(key, ds.shape, ds.kind)
