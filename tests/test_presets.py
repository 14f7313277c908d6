"""Fast presets: every image family has one, within its hyperparameters' bounds, and it learns
in a few dozen steps on the shipped validation digits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core import registry
from core.presets import FAST, fast_preset, image_families
from core.protocol import DataKind, Likelihood
from core.readouts import DIGITS_FILE


@pytest.fixture(scope="module")
def digits():
    d = np.load(DIGITS_FILE)
    x = torch.from_numpy(np.unpackbits(d["images"], axis=1)[:, :784].astype(np.float32))
    return x, torch.from_numpy(d["labels"].astype(np.int64))


def test_every_image_family_has_a_fast_preset_within_bounds():
    assert set(image_families()) <= set(FAST), "an image family without a fast preset"
    for key in image_families():
        hp = fast_preset(key)
        for h in registry.info(key).all_hparams():
            v = hp[h.name]
            if h.low is not None and isinstance(v, (int, float)) and not isinstance(v, bool):
                assert h.low <= v <= h.high, (key, h.name, v)
        defaults = {h.name: h.default for h in registry.info(key).all_hparams()}
        assert set(hp) == set(defaults)
    assert fast_preset("gaussian") is None


def test_a_preset_naming_an_unknown_hyperparameter_is_refused(monkeypatch):
    monkeypatch.setitem(FAST, "nade", {"hiden": 8})
    with pytest.raises(ValueError, match="hiden"):
        fast_preset("nade")


def _steps(model, x, y, n, batch):
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(n):
        idx = torch.randint(len(x), (batch,), generator=g)
        kw = {"labels": y[idx]} if model.info.conditional else {}
        out.append(model.train_step(x[idx], **kw))
    return out


@pytest.mark.parametrize("key", image_families())
def test_the_fast_preset_learns_in_a_few_dozen_steps(key, digits):
    """Likelihood and autoencoder models: the loss falls by a fifth in 40 steps. GANs (whose loss
    is a game, not a fit): in 60 steps the samples' pixel means move towards the digits' by a tenth."""
    torch.set_num_threads(1)
    x, y = digits
    hp = fast_preset(key)
    torch.manual_seed(0)
    model = registry.create(key, (784,), DataKind.BINARY_IMAGE, **hp)
    model.configure_optimizer(float(hp.get("lr", 1e-3)))
    batch = int(hp.get("batch_size", 64))
    if model.info.likelihood is Likelihood.NONE and "d_loss" in _steps(model, x, y, 1, batch)[0]:
        def gap():
            with torch.no_grad():
                s = model.sample(200, torch.Generator().manual_seed(1)).reshape(200, -1)
            return float((s.mean(0) - x.mean(0)).abs().mean())
        before = gap()
        _steps(model, x, y, 60, batch)
        assert gap() < 0.9 * before
        return
    losses = [o["loss"] for o in _steps(model, x, y, 40, batch)]
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5]), losses
