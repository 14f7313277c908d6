"""The weights that ship in resources/weights: each loads, says how it was made, and scores on
held-out data what its record says (the 500 validation digits in resources/digits are a
subset of the validation split the record was measured on)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from core import data as datasets
from core.checkpoint import load_checkpoint, read_checkpoint_meta
from core.evaluation import evaluate
from core.protocol import DataKind, Likelihood

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = sorted((ROOT / "resources" / "weights").glob("*.safetensors"))
DIGITS = ROOT / "resources" / "digits" / "valid_sample.npz"
#: the first 200 digits of the ``mnist_digits`` validation split (the split the conditional
#: model's record was measured on), with their labels; made from the t10k files by
#: ``ds = core.data.load("mnist_digits", path=...)`` then ``np.savez_compressed(...,
#: images=np.packbits(ds.valid[:200], axis=1), labels=ds.valid_labels[:200].astype(np.uint8),
#: shape=np.array([28, 28]))``
LABELLED_DIGITS = Path(__file__).resolve().parent / "data" / "mnist_digits_valid_sample.npz"


def _digits() -> np.ndarray:
    with np.load(DIGITS, allow_pickle=False) as f:
        return np.unpackbits(f["images"], axis=1)[:, :784]


def _labelled_digits() -> tuple[np.ndarray, np.ndarray]:
    with np.load(LABELLED_DIGITS, allow_pickle=False) as f:
        return np.unpackbits(f["images"], axis=1)[:, :784], f["labels"].astype(np.int64)


def test_something_ships():
    families = {read_checkpoint_meta(p).family for p in WEIGHTS}
    assert {"fvsbn", "wavenet"} <= families


@pytest.mark.parametrize("path", WEIGHTS, ids=[p.stem for p in WEIGHTS])
def test_shipped_checkpoint_is_recorded_and_scores_as_recorded(path):
    meta = read_checkpoint_meta(path)
    training = meta.training
    if meta.family == "made-mixture":  # assembled from MADEs trained separately: their records
        assert training["command"].startswith("python main.py mixture ")
        assert len(training["members"]) == meta.hparams["members"]
        for member in training["members"]:
            assert member["training"]["command"].startswith("python main.py train made ")
            assert member["training"]["wall_s"] > 0
    else:
        assert training["command"].startswith("python main.py train ")
    assert training["wall_s"] > 0
    assert json.loads(path.with_suffix(".json").read_text())["family"] == meta.family
    model, _ = load_checkpoint(path)
    if model.info.likelihood is Likelihood.NONE:  # a GAN, an autoencoder: no NLL to record
        assert meta.valid is None
        with torch.no_grad():
            s = model.sample(4, generator=torch.Generator().manual_seed(0))
        assert s.shape == (4, *model.data_shape) and bool(((s >= 0) & (s <= 1)).all())
        return
    recorded = meta.valid.nats
    if model.info.conditional:
        assert meta.valid.labels is True  # the record was scored with the true labels
        x, labels = _labelled_digits()
        got = evaluate(model, x, labels=labels).nats
        # mean of 200 per-digit NLLs (std ~ 25 nats) against the full split's: well within 8
        assert abs(got - recorded) < 8, (got, recorded)
        wrong = evaluate(model, x, labels=(labels + 1) % 10).nats
        assert wrong > got + 5, (wrong, got)  # the labels are used: the digit class tells it a lot
    elif meta.data_kind is DataKind.BINARY_IMAGE:
        x = _digits()[:200]
        got = evaluate(model, x).nats
        # mean of 200 per-digit NLLs (std ~ 25 nats) against the full split's: well within 8
        assert abs(got - recorded) < 8, (got, recorded)
        p = meta.raw["valid_nll_percentiles"]
        assert len(p) == 101 and p == sorted(p) and p[0] < recorded < p[100]
        if "complete" in model.capabilities():
            known = torch.ones(1, 784, dtype=torch.bool)
            known[0, -28:] = False  # the last row
            xt = torch.from_numpy(x[:1]).float()
            out = model.complete(xt, known, 2, torch.Generator().manual_seed(0))
            assert torch.equal(out[:, :-28], xt[:, :-28].expand(2, -1))
    else:
        ds = datasets.load(meta.data_name)
        got = evaluate(model, ds.valid[:200]).nats
        assert abs(got - recorded) < 0.1 * abs(recorded) + 5, (got, recorded)
    assert math.isfinite(got)


def test_eval_command_scores_a_shipped_checkpoint(tmp_path):
    path = next(p for p in WEIGHTS if read_checkpoint_meta(p).family == "fvsbn")
    np.savez(tmp_path / "digits.npz", valid=_digits()[:100])
    out = subprocess.run([sys.executable, "main.py", "eval", "--checkpoint", str(path), "--data",
                          str(tmp_path / "digits.npz")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["family"] == "fvsbn" and result["n"] == 100
    assert 40 < result["nll_nats"] < 200 and result["bits_per_dim"] == pytest.approx(
        result["nll_nats"] / (784 * math.log(2)))


SHARED_MNIST = ROOT.parent / "shared" / "data" / "mnist"


@pytest.mark.skipif(not SHARED_MNIST.is_dir(),
                    reason="its point is the exact record on the real, full validation split: needs the "
                           "MNIST t10k files in ../shared/data/mnist (a 200-digit sample is scored above)")
def test_shipped_conditional_model_scores_as_recorded_and_uses_its_labels():
    path = ROOT / "resources" / "weights" / "cnade-digits.safetensors"
    model, meta = load_checkpoint(path, family="cnade")
    ds = datasets.load("mnist_digits", path=SHARED_MNIST)
    got = evaluate(model, ds.valid, labels=ds.valid_labels)
    assert got.nats == pytest.approx(meta.valid.nats, abs=1e-3)
    wrong = evaluate(model, ds.valid, labels=(ds.valid_labels + 1) % 10)
    assert wrong.nats > got.nats + 5  # the digit class tells it a lot
    samples = model.sample(20, torch.Generator().manual_seed(0), labels=torch.arange(20) % 10)
    assert samples.shape == (20, 784) and set(torch.unique(samples).tolist()) <= {0.0, 1.0}
