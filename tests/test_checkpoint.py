"""Checkpoints: safetensors + JSON sidecar, atomic writes, and loud, safe failures."""

from __future__ import annotations

import hashlib
import json
import math
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

import core
from core import data as datasets
from core import registry
from core.evaluation import evaluate
from core.data import Dataset
from core.checkpoint import CheckpointError, load_checkpoint, read_checkpoint_meta, save_checkpoint, sidecar_path
from core.training import TrainConfig, Trainer
from core.protocol import DataKind, Likelihood

# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def random_fvsbn(d: int = 6, seed: int = 0, **hp):
    model = registry.create("fvsbn", (d,), **hp)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        model.weight.copy_(torch.randn(d, d, generator=g))
        model.bias.copy_(torch.randn(d, generator=g))
    return model


def tiny_data(d: int = 6) -> Dataset:
    rng = np.random.default_rng(0)
    x = (rng.random((80, d)) < 0.4).astype(np.uint8)
    return Dataset("tiny", DataKind.BINARY_IMAGE, x[:64], x[64:])


@pytest.fixture
def saved(tmp_path):
    """A small saved checkpoint: (path, model)."""
    model = random_fvsbn(6, seed=1)
    path = save_checkpoint(tmp_path / "m.safetensors", model, data=tiny_data(), step=3)
    return path, model


def stored_tensors_and_meta(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    with safe_open(str(path), "pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata())


def rewrite(path: Path, tensors=None, meta_changes: dict | None = None) -> None:
    """Re-save ``path`` with other tensors and/or changed app metadata (a tampered checkpoint)."""
    old_tensors, metadata = stored_tensors_and_meta(path)
    if meta_changes:
        meta = json.loads(metadata["genmodel_sandbox"])
        meta.update(meta_changes)
        metadata["genmodel_sandbox"] = json.dumps(meta)
    save_file(old_tensors if tensors is None else tensors, str(path), metadata=metadata)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith((".tmp", ".part")))


# a pickle that writes a file when (and only when) it is unpickled
def _write_marker(path: str) -> dict:
    Path(path).write_text("this pickle was unpickled")
    return {}


class Trap:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (_write_marker, (str(self.marker),))


# --------------------------------------------------------------------------------------------
# round trip
# --------------------------------------------------------------------------------------------


def test_round_trip(tmp_path):
    ds = datasets.load("bars", n=64)
    model = random_fvsbn(784, seed=2, lr=0.02, weight_decay=1e-4)
    path = save_checkpoint(tmp_path / "runs" / "deep" / "bars.safetensors", model, data=ds, step=7, epoch=1.75,
                           metrics={"valid_nll": 123.5, "valid_bpd": math.nan})
    assert path.is_file()
    loaded, meta = load_checkpoint(path)
    assert type(loaded) is type(model) and loaded is not model
    x = torch.from_numpy(ds.valid).float()
    torch.testing.assert_close(loaded.log_prob(x), model.log_prob(x), rtol=0, atol=0)
    assert torch.equal(loaded.weight, model.weight) and torch.equal(loaded.bias, model.bias)
    assert loaded.hparams == model.hparams and loaded.hparams["weight_decay"] == 1e-4
    assert loaded.data_shape == (784,)
    assert meta.family == "fvsbn" and meta.step == 7 and meta.epoch == 1.75
    assert meta.metrics == {"valid_nll": 123.5, "valid_bpd": None}  # NaN is stored as null
    assert meta.app_version == core.__version__
    assert meta.data_name == "bars" and meta.data_kind is DataKind.BINARY_IMAGE
    assert meta.image_shape == (28, 28) and meta.data.n_train == 64
    assert meta.raw["torch_version"] == torch.__version__
    assert meta.path == str(path) and not meta.warnings
    assert read_checkpoint_meta(path).family == "fvsbn"


def test_sidecar(saved):
    path, _ = saved
    side = sidecar_path(path)
    assert side == path.with_suffix(".json") and side.is_file()
    info = json.loads(side.read_text())
    assert info["family"] == "fvsbn" and info["step"] == 3 and info["data"]["name"] == "tiny"
    assert info["tensors_file"] == path.name
    assert info["tensors_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert info["hparams"] == json.loads(json.dumps(saved[1].hparams))


def test_load_works_without_sidecar(saved):
    path, model = saved
    sidecar_path(path).unlink()
    loaded, meta = load_checkpoint(path, family="fvsbn")
    assert torch.equal(loaded.weight, model.weight) and not meta.warnings


def test_trainer_writes_checkpoints(tmp_path):
    data = tiny_data()
    model = registry.create("fvsbn", data.shape, lr=0.05, batch_size=16)
    path = tmp_path / "run.safetensors"
    steps_seen = []
    for s in Trainer(model, data, TrainConfig(max_steps=6, checkpoint_path=path, checkpoint_every=2,
                                              eval_every=3, device="cpu", visuals_every_s=None)).run():
        if s.step in (2, 4):
            steps_seen.append(read_checkpoint_meta(path).step)
    assert steps_seen == [2, 4]
    loaded, meta = load_checkpoint(path)
    assert meta.step == 6 and meta.epoch == pytest.approx(1.5) and meta.data_name == "tiny"
    assert meta.metrics["valid_nll"] == pytest.approx(evaluate(model, data.valid).nats)
    assert torch.equal(loaded.weight, model.weight)


# --------------------------------------------------------------------------------------------
# atomic writes
# --------------------------------------------------------------------------------------------


def test_crash_during_save_keeps_the_old_checkpoint(saved, monkeypatch):
    path, first = saved
    before = path.read_bytes(), sidecar_path(path).read_bytes()

    def crash(src, dst):
        raise OSError("simulated crash: disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="simulated crash"):
        save_checkpoint(path, random_fvsbn(6, seed=99), step=100)
    monkeypatch.undo()
    assert (path.read_bytes(), sidecar_path(path).read_bytes()) == before
    assert leftovers(path.parent) == []
    loaded, meta = load_checkpoint(path)
    assert torch.equal(loaded.weight, first.weight) and meta.step == 3 and not meta.warnings


def test_crash_between_weights_and_sidecar_is_detected(saved, monkeypatch):
    path, _ = saved
    second = random_fvsbn(6, seed=99)
    real_replace, calls = os.replace, []

    def crash_on_second(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise OSError("simulated crash before the sidecar")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", crash_on_second)
    with pytest.raises(OSError):
        save_checkpoint(path, second, step=100)
    monkeypatch.undo()
    assert leftovers(path.parent) == []
    loaded, meta = load_checkpoint(path)
    assert torch.equal(loaded.weight, second.weight) and meta.step == 100
    assert any("another version" in w for w in meta.warnings)


def test_sidecar_that_disagrees_gives_a_warning(saved):
    path, model = saved
    side = sidecar_path(path)
    info = json.loads(side.read_text())
    info["tensors_sha256"] = "0" * 64
    side.write_text(json.dumps(info))
    loaded, meta = load_checkpoint(path)
    assert torch.equal(loaded.weight, model.weight)
    assert len(meta.warnings) == 1 and side.name in meta.warnings[0]


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", ""])
def test_unreadable_sidecar_gives_a_warning(saved, content):
    path, model = saved
    sidecar_path(path).write_text(content)
    loaded, meta = load_checkpoint(path)
    assert torch.equal(loaded.weight, model.weight)
    assert meta.warnings and "m.json" in meta.warnings[0]


@pytest.mark.parametrize("name", ["m.pt", "m.ckpt", "m", "m.safetensors.bak"])
def test_save_refuses_other_suffixes(tmp_path, name):
    with pytest.raises(CheckpointError, match="safetensors"):
        save_checkpoint(tmp_path / name, random_fvsbn(4))
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------------
# loading bad files
# --------------------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "nope.safetensors")
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path)  # a folder is not a checkpoint either


@pytest.mark.parametrize("keep", [0.5, 0.99, 12, 3])
def test_truncated_file(saved, keep):
    path, _ = saved
    blob = path.read_bytes()
    n = int(len(blob) * keep) if isinstance(keep, float) else keep
    path.write_bytes(blob[:n])
    with pytest.raises(CheckpointError, match="truncated|too short"):
        load_checkpoint(path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.safetensors"
    path.write_bytes(b"")
    with pytest.raises(CheckpointError, match="too short"):
        load_checkpoint(path)


@pytest.mark.parametrize("blob", [os.urandom(4096), b"\x08\x00\x00\x00\x00\x00\x00\x00{garbage", b"hello world, bye"])
def test_garbage_file(tmp_path, blob):
    path = tmp_path / "junk.safetensors"
    path.write_bytes(blob)
    with pytest.raises(CheckpointError):
        load_checkpoint(path)


@pytest.mark.parametrize("protocol", [pickle.DEFAULT_PROTOCOL, 2, 0])
def test_pickle_renamed_is_refused_and_never_unpickled(tmp_path, protocol):
    marker = tmp_path / "marker.txt"
    blob = pickle.dumps({"weight": Trap(marker), "bias": [1, 2, 3]}, protocol=protocol)
    path = tmp_path / "evil.safetensors"
    path.write_bytes(blob)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    with pytest.raises(CheckpointError):
        read_checkpoint_meta(path)
    assert not marker.exists(), "the loader unpickled the file"
    if protocol >= 2:
        assert "pickle" in str(err.value)
    pickle.loads(blob)  # the trap is live: unpickling does write the marker
    assert marker.exists()


def test_torch_save_file_renamed_is_refused_and_never_unpickled(tmp_path):
    marker = tmp_path / "marker.txt"
    path = tmp_path / "model.safetensors"
    torch.save({"weight": torch.zeros(6, 6), "trap": Trap(marker)}, path)
    with pytest.raises(CheckpointError, match="torch.save|zip") as err:
        load_checkpoint(path)
    assert "not a safetensors" in str(err.value)
    assert not marker.exists(), "the loader unpickled the file"
    with open(path, "rb") as f:  # (torch.load would pick its loader by the file name)
        torch.load(f, weights_only=False)  # the trap is live: unpickling does write the marker
    assert marker.exists()


def test_foreign_safetensors_file(tmp_path):
    path = tmp_path / "foreign.safetensors"
    save_file({"weight": torch.zeros(6, 6), "bias": torch.zeros(6)}, str(path), metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="not a checkpoint of this app"):
        load_checkpoint(path)
    save_file({"x": torch.zeros(2)}, str(path))  # no metadata at all
    with pytest.raises(CheckpointError, match="another program"):
        load_checkpoint(path)


def test_tensor_of_the_wrong_shape(saved):
    path, _ = saved
    rewrite(path, tensors={"weight": torch.zeros(5, 5), "bias": torch.zeros(6)})
    with pytest.raises(CheckpointError, match="wrong shapes") as err:
        load_checkpoint(path)
    assert "weight" in str(err.value) and "(5, 5)" in str(err.value) and "(6, 6)" in str(err.value)


def test_missing_and_unexpected_tensors(saved):
    path, _ = saved
    rewrite(path, tensors={"weight": torch.zeros(6, 6), "extra": torch.zeros(1)})
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    assert "missing ['bias']" in str(err.value) and "unexpected ['extra']" in str(err.value)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_weights(saved, bad):
    path, _ = saved
    tensors, _ = stored_tensors_and_meta(path)
    tensors["bias"][2] = bad
    rewrite(path, tensors=tensors)
    with pytest.raises(CheckpointError, match="NaN or infinite") as err:
        load_checkpoint(path)
    assert "bias" in str(err.value)


def test_wrong_family_expected(saved):
    path, _ = saved
    with pytest.raises(CheckpointError, match="'fvsbn' model, not 'other'"):
        load_checkpoint(path, family="other")


@pytest.mark.parametrize("changes, message", [
    ({"family": "no-such-family"}, "cannot build"),
    ({"hparams": {"lr": 50.0}}, "cannot build"),
    ({"hparams": {"unknown_knob": 1}}, "cannot build"),
    ({"format_version": 99}, "newer version"),
    ({"format": "someone-else/checkpoint"}, "unknown checkpoint format"),
])
def test_metadata_the_app_cannot_use(saved, changes, message):
    path, _ = saved
    rewrite(path, meta_changes=changes)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(path)


def test_damaged_metadata(saved):
    path, _ = saved
    tensors, metadata = stored_tensors_and_meta(path)
    metadata["genmodel_sandbox"] = "{damaged"
    save_file(tensors, str(path), metadata=metadata)
    with pytest.raises(CheckpointError, match="damaged"):
        load_checkpoint(path)


def test_checkpoint_error_is_a_value_error():
    # callers that catch ValueError (the CLI) also catch checkpoint problems
    assert issubclass(CheckpointError, ValueError)


# -- the one parser of checkpoint metadata ----------------------------------------------------


def test_checkpoint_meta_reads_every_name_of_the_held_out_nll():
    from core.checkpoint import CheckpointMeta
    from core.evaluation import NLL

    recorded = CheckpointMeta.parse({"family": "fvsbn", "valid": {"nll_nats": 90.5, "bits_per_dim": 0.17, "n": 10},
                                     "metrics": {"valid_nll": 99.0}})
    assert recorded.valid == NLL(90.5, 0.17, False, 10) and recorded.nll is recorded.valid
    trained = CheckpointMeta.parse({"family": "fvsbn", "metrics": {"valid_nll_bound": 80.0, "valid_bpd_bound": 0.1}})
    assert trained.valid is None and trained.nll == NLL(80.0, 0.1, True)
    bound = CheckpointMeta.parse({"family": "x", "valid": {"nll_bound_nats": 70.0, "bits_per_dim_bound": 0.2}})
    assert bound.valid.is_bound and bound.valid.nats == 70.0
    broken = CheckpointMeta.parse({"family": "x", "valid": {"nll_nats": None}, "metrics": {"valid_nll": None},
                                   "valid_nll_percentiles": [1, 2], "data": "?", "step": None})
    assert broken.nll is None and broken.valid_percentiles is None and broken.data is None and broken.step == 0
    nll = NLL.of(100.0, 784, False, n=3, family="fvsbn")
    assert NLL.from_record(nll.record()) == nll and NLL.from_metrics(nll.metrics()) == NLL(100.0, nll.bits_per_dim)


SHIPPED = sorted((Path(__file__).resolve().parents[1] / "resources" / "weights").glob("*.safetensors"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_headers_and_sidecars_parse_alike(path):
    from core.checkpoint import read_sidecar

    head, side = read_checkpoint_meta(path), read_sidecar(path)
    assert head.family == side.family and head.hparams == side.hparams and head.step == side.step
    assert head.data == side.data and head.data_kind is not None and head.data_shape == side.data_shape
    assert head.valid == side.valid
    if registry.info(head.family).likelihood is Likelihood.NONE:  # a GAN, an autoencoder: no NLL
        assert head.valid is None and head.training == side.training
    else:
        assert head.valid is not None and math.isfinite(head.valid.nats)
