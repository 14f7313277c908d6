"""PixelCNN: masks, exact normalisation, cached sampling equal to the naive loop."""

import itertools
import math

import numpy as np
import pytest
import torch

from core import registry
from core.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from core.evaluation import evaluate
from core.training import TrainConfig, Trainer
from core.data import Dataset
from core.models.pixelcnn import MaskedConv2d
from core.protocol import DataKind


def _model(shape=(3, 3), seed=0, **hp):
    torch.manual_seed(seed)
    hp = {"channels": 6, "blocks": 1, **hp}
    m = registry.create("pixelcnn", shape, DataKind.BINARY_IMAGE, **hp)
    with torch.no_grad():
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    return m.eval()


def test_masks_see_only_earlier_pixels():
    a, b = MaskedConv2d(1, 1, 5, "A").mask[0, 0], MaskedConv2d(1, 1, 3, "B").mask[0, 0]
    assert a[2, 2] == 0 and a[2, 1] == 1 and a[2, 3] == 0 and a[1].all() and not a[3:].any()
    assert b[1, 1] == 1 and b[1, 2] == 0 and b[0].all() and not b[2].any()
    with pytest.raises(ValueError, match="mask type"):
        MaskedConv2d(1, 1, 3, "C")
    with pytest.raises(ValueError, match="odd"):
        MaskedConv2d(1, 1, 4, "A")


def test_causality():
    """Changing a pixel changes no logit at or before it in raster order."""
    m = _model((5, 6), blocks=2)
    x = torch.bernoulli(torch.full((1, 5, 6), 0.5), generator=torch.Generator().manual_seed(0))
    base = m.logits(x).flatten()
    for d in [0, 7, 14, 29]:
        y = x.clone().flatten()
        y[d] = 1 - y[d]
        changed = (m.logits(y.reshape(1, 5, 6)).flatten() - base).abs() > 1e-6
        assert not changed[:d + 1].any()
        if d < 29:
            assert changed[d + 1:].any()


def test_exact_normalisation():
    m = _model((3, 3), blocks=2)
    allx = torch.tensor(list(itertools.product([0.0, 1.0], repeat=9))).reshape(-1, 3, 3)
    with torch.no_grad():
        total = torch.logsumexp(m.log_prob(allx).double(), 0)
    assert abs(float(total)) < 1e-5
    torch.testing.assert_close(m.pixel_log_prob(allx).sum(1), m.log_prob(allx))


def test_flat_square_data_is_an_image():
    m = _model((16,))
    assert m.image_shape == (4, 4)
    x = torch.bernoulli(torch.full((3, 16), 0.5))
    assert m.log_prob(x).shape == (3,)
    with pytest.raises(ValueError, match="square"):
        _model((15,))
    with pytest.raises(ValueError, match="expects data of shape"):
        m.log_prob(torch.zeros(2, 15))


@pytest.mark.parametrize("shape,blocks", [((9, 10), 1), ((12, 13), 3), ((5, 6), 0), ((8, 7), 2)])
def test_cached_conditionals_equal_the_full_forward_pass(shape, blocks):
    """For random partial images (scattered known pixels, a known band, long known stretches), the
    cached path's conditional at every drawn pixel equals the naive loop's (a full forward pass
    per pixel), and the full pass's over the finished image; one seed draws identical images."""
    m = _model(shape, seed=blocks, blocks=blocks)
    hh, ww = shape
    g = torch.Generator().manual_seed(11)
    band = torch.zeros(2, hh, ww, dtype=torch.bool)
    band[:, hh // 2:] = True
    band[1, -1, -2:] = False  # one row with its last pixels unknown, after a long known stretch
    masks = [torch.rand(2, hh, ww, generator=g) < q for q in (0.0, 0.3, 0.9)] + [band, ~band]
    for known in masks:
        x = torch.bernoulli(torch.full((2, hh, ww), 0.5), generator=g)
        fast = list(m.complete_steps(x, known, 3, torch.Generator().manual_seed(5)))
        fast_x = fast[-1].x.clone()
        naive = list(m.complete_steps(x, known, 3, torch.Generator().manual_seed(5), naive=True))
        todo = torch.nonzero(~known.reshape(2, -1).all(0)).flatten().tolist()
        assert [s.pixel for s in fast] == [s.pixel for s in naive] == todo
        torch.testing.assert_close(torch.stack([s.p for s in fast]), torch.stack([s.p for s in naive]),
                                   rtol=0, atol=1e-5)
        assert torch.equal(fast_x, naive[-1].x)
        with torch.no_grad():
            full = torch.sigmoid(m.logits(fast_x)).reshape(len(fast_x), -1)
        torch.testing.assert_close(torch.stack([s.p for s in fast], 1), full[:, [s.pixel for s in fast]],
                                   rtol=0, atol=1e-5)


def test_cached_sampling_equals_the_naive_loop_on_the_shipped_model_size():
    """The shipped size (32 channels, 12 blocks, 28x28): samples from one seed are identical both
    ways, so ``sample`` (the canvas's Sample x4) draws from the model's own conditionals."""
    m = _model((28, 28), channels=32, blocks=12)
    with torch.no_grad():
        for p in m.parameters():
            p.mul_(0.5)
    fast = m.sample(2, torch.Generator().manual_seed(3))
    zeros = torch.zeros(2, 784)
    naive = m.complete(zeros, torch.zeros_like(zeros, dtype=torch.bool), 1, torch.Generator().manual_seed(3),
                       naive=True)
    assert 0 < float(fast.mean()) < 1
    assert torch.equal(fast.reshape(2, -1), naive)


def test_cached_sampling_equals_the_naive_loop():
    m = _model((9, 10), blocks=1)
    x = torch.bernoulli(torch.full((2, 9, 10), 0.5), generator=torch.Generator().manual_seed(2))
    known = torch.zeros_like(x, dtype=torch.bool)
    known[:, :4] = True
    fast = m.complete(x, known, 3, torch.Generator().manual_seed(7))
    naive = m.complete(x, known, 3, torch.Generator().manual_seed(7), naive=True)
    assert torch.equal(fast, naive)
    flat_x, flat_k = x.reshape(2, -1).repeat_interleave(3, 0), known.reshape(2, -1).repeat_interleave(3, 0)
    assert torch.equal(fast[flat_k], flat_x[flat_k])
    assert not torch.equal(fast[0], fast[1])  # candidates differ
    steps = list(m.complete_steps(x, known, 3, torch.Generator().manual_seed(7)))
    assert [s.pixel for s in steps] == list(range(40, 90))
    assert torch.equal(steps[-1].x, fast)


def test_sampling_follows_the_model():
    """First-pixel frequencies match p(x_0 = 1), the pixel after it its conditional."""
    m = _model((2, 2), blocks=0)
    s = m.sample(4000, torch.Generator().manual_seed(3)).reshape(4000, 4)
    with torch.no_grad():
        p0 = torch.sigmoid(m.logits(torch.zeros(1, 2, 2))[0, 0, 0])
    assert abs(float(s[:, 0].mean()) - float(p0)) < 0.03


def test_training_lowers_heldout_nll():
    rng = np.random.default_rng(0)
    protos = rng.random((2, 36)) < 0.5
    data = np.where(rng.random((600, 36)) < 0.1, ~protos[rng.integers(0, 2, 600)], protos[rng.integers(0, 2, 600)])
    data = data.astype(np.uint8)
    ds = Dataset("protos", DataKind.BINARY_IMAGE, data[:500], data[500:], image_shape=(6, 6))
    m = registry.create("pixelcnn", ds.shape, ds.kind, channels=8, blocks=1, lr=1e-2, batch_size=50)
    before = evaluate(m, ds.valid).nats
    trainer = Trainer(m, ds, TrainConfig(max_steps=60, eval_every=0, visuals_every_s=None))
    for _ in trainer.run():
        pass
    after = evaluate(m, ds.valid).nats
    assert after < before - 5
    assert math.isfinite(after)


def test_checkpoint_round_trip(tmp_path):
    m = _model((5, 5))
    path = save_checkpoint(tmp_path / "p.safetensors", m)
    m2, meta = load_checkpoint(path, family="pixelcnn")
    x = torch.bernoulli(torch.full((4, 5, 5), 0.5))
    torch.testing.assert_close(m2.log_prob(x), m.log_prob(x))
    with pytest.raises(CheckpointError, match="not 'nade'"):
        load_checkpoint(path, family="nade")
