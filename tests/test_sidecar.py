"""A checkpoint's JSON sidecar is checked against the checkpoint's header (the truth) wherever
it is read: loading warns, and the shipped-weights table refuses a sidecar that lies or is
missing (issue 14)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import bench.shipped_weights
from core.checkpoint import CheckpointError, load_checkpoint, read_sidecar, sidecar_path, sidecar_problems

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "resources" / "weights"


@pytest.fixture
def copied(tmp_path) -> Path:
    """The shipped NADE and FVSBN with their sidecars, in a folder of their own."""
    for name in ("nade", "fvsbn"):
        shutil.copy(WEIGHTS / f"{name}.safetensors", tmp_path)
        shutil.copy(WEIGHTS / f"{name}.json", tmp_path)
    return tmp_path / "nade.safetensors"


def lie(path: Path, **fields) -> None:
    """Rewrite the sidecar with ``fields`` changed; its weights' digest stays right."""
    side = sidecar_path(path)
    side.write_text(json.dumps({**json.loads(side.read_text()), **fields}, indent=2))


@pytest.mark.parametrize("path", sorted(WEIGHTS.glob("*.safetensors")), ids=lambda p: p.stem)
def test_every_shipped_sidecar_agrees_with_its_checkpoint(path):
    assert sidecar_problems(path, missing_ok=False) == []


@pytest.mark.parametrize("fields, needle", [({"family": "made"}, "family"), ({"data_shape": [28, 28]}, "data_shape"),
                                            ({"hparams": {"hidden": 50}}, "hparams"), ({"step": 1}, "step")])
def test_a_lying_sidecar_is_caught(copied, fields, needle):
    lie(copied, **fields)
    problems = sidecar_problems(copied)
    assert len(problems) == 1 and needle in problems[0] and "nade.json" in problems[0], problems
    model, meta = load_checkpoint(copied)  # the header is the truth: the model loads, with a warning
    assert model.info.key == "nade" and meta.warnings == problems
    with pytest.raises(CheckpointError, match=needle):
        read_sidecar(copied)
    with pytest.raises(CheckpointError, match="nade.json"):
        bench.shipped_weights.rows(copied.parent)


def test_a_missing_sidecar_is_refused_by_the_table(copied):
    assert [r["file"] for r in bench.shipped_weights.rows(copied.parent)] == ["fvsbn.safetensors", "nade.safetensors"]
    sidecar_path(copied).unlink()
    with pytest.raises(CheckpointError, match="no sidecar"):
        bench.shipped_weights.rows(copied.parent)
    assert load_checkpoint(copied)[1].warnings == []  # the app itself needs only the header
