"""Row PixelRNN: the autoregressive property, exact normalisation, per-pixel terms, incremental
completion against the parallel likelihood, learning through the trainer, checkpoints, bad input."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from core import data as datasets
from core import registry
from core.checkpoint import load_checkpoint, save_checkpoint
from core.evaluation import evaluate
from core.training import TrainConfig, Trainer
from core.protocol import CompletionStep, DataKind


def _prnn(d: int = 9, seed: int = 0, scale: float = 1.5, **hp):
    """A tiny PixelRNN with weights scaled up from the default init (conditionals far from 1/2)."""
    model = registry.create("pixelrnn", (d,), **{"hidden": 8, "row_hidden": 8, **hp})
    g = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(scale * torch.randn(p.shape, generator=g))
    return model


def _all_binary(d: int) -> torch.Tensor:
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=d)))


def test_registered_with_its_spec():
    info = registry.info("pixelrnn")
    assert info.group == "Autoregressive" and info.likelihood.value == "exact"
    assert info.data_kinds == (DataKind.BINARY_IMAGE,)
    specs = {h.name: h for h in info.all_hparams()}
    assert specs["cell"].default == "lstm" and set(specs["cell"].choices) == {"lstm", "gru"}
    assert specs["hidden"].default == 256 and specs["lr"].live and specs["batch_size"].default == 100
    assert {"log_prob", "sample", "complete", "complete_steps", "pixel_log_prob"} <= \
        registry.model_class("pixelrnn").capabilities()


@pytest.mark.parametrize("shape,hp", [((9,), dict(cell="lstm")), ((8,), dict(cell="gru", width=4)),
                                      ((8,), dict(width=2))])
def test_autoregressive_property(shape, hp):
    # the logit of pixel d must not depend on pixel d or any later one (raster order)
    model = _prnn(shape[0], seed=1, **hp)
    x = torch.bernoulli(torch.full((3, shape[0]), 0.5), generator=torch.Generator().manual_seed(0))
    d = model.dim
    for out in range(d):
        xi = x.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(model.logits(xi)[:, out].sum(), xi)
        assert torch.all(grad[:, out:] == 0), out
        if out > 0:  # not vacuous: every pixel but the first sees something before it
            assert grad[:, :out].abs().sum() > 0, out


@pytest.mark.parametrize("shape,hp", [((9,), dict(cell="lstm")), ((9,), dict(cell="gru")),
                                      ((8,), dict(width=4)), ((8,), dict(width=2, row_hidden=3))])
def test_probabilities_sum_to_one(shape, hp):
    model = _prnn(shape[0], seed=2, scale=2.0, **hp)
    lp = model.log_prob(_all_binary(shape[0])).double()
    assert lp.shape == (2 ** shape[0],) and torch.isfinite(lp).all() and (lp < 0).all()
    assert lp.exp().sum().item() == pytest.approx(1.0, abs=1e-5)


def test_pixel_log_prob_sums_to_log_prob():
    model = _prnn(8, seed=3, width=4)
    x = torch.bernoulli(torch.full((10, 8), 0.5), generator=torch.Generator().manual_seed(1))
    terms = model.pixel_log_prob(x)
    assert terms.shape == (10, 8) and (terms <= 0).all()
    torch.testing.assert_close(terms.sum(1), model.log_prob(x))
    # each term is the chain-rule factor: its exp sums with the flipped pixel's to 1
    flipped = x.clone()
    flipped[:, 5] = 1 - flipped[:, 5]
    pair = terms[:, 5].exp() + model.pixel_log_prob(flipped)[:, 5].exp()
    torch.testing.assert_close(pair, torch.ones(10))


def test_square_and_2d_shapes():
    assert registry.create("pixelrnn", (784,)).cols == 28
    model = registry.create("pixelrnn", (3, 5), hidden=4, row_hidden=4)
    assert (model.rows, model.cols) == (3, 5)
    x = torch.zeros(2, 3, 5)
    assert model.log_prob(x).shape == (2,) and model.sample(4).shape == (4, 3, 5)


def test_steps_match_the_parallel_conditionals():
    # the incremental pass (RNN state carried per row, pre-activations per pixel) gives exactly
    # the probabilities of the one-pass likelihood, for every drawn pixel and candidate
    model = _prnn(12, seed=4, width=4, cell="gru")
    x = torch.bernoulli(torch.full((2, 12), 0.5), generator=torch.Generator().manual_seed(2))
    known = torch.zeros(2, 12, dtype=torch.bool)
    known[:, :4] = True  # row 0 known everywhere: fed to the RNN in one call
    known[:, 6] = True  # a pixel known everywhere inside a row
    known[0, 9] = True  # known in one candidate only
    steps = list(model.complete_steps(x, known, n=3, generator=torch.Generator().manual_seed(3)))
    assert all(isinstance(s, CompletionStep) for s in steps)
    assert [s.pixel for s in steps] == [4, 5, 7, 8, 9, 10, 11]
    assert [s.done for s in steps] == list(range(1, 8)) and {s.total for s in steps} == {7}
    final = steps[-1].x.clone()
    probs = torch.sigmoid(model.logits(final))
    for s in steps:
        assert s.p.shape == (6,)
        torch.testing.assert_close(s.p, probs[:, s.pixel], atol=1e-5, rtol=1e-5)


def test_complete_is_complete_steps_exhausted():
    model = _prnn(9, seed=6)
    x = torch.ones(2, 9)
    known = torch.zeros(2, 9, dtype=torch.bool)
    known[:, :3] = True
    known[1, 7] = True
    a = model.complete(x, known, n=4, generator=torch.Generator().manual_seed(7))
    steps = list(model.complete_steps(x, known, n=4, generator=torch.Generator().manual_seed(7)))
    assert torch.equal(a, steps[-1].x)
    # nothing to draw: no steps, and complete returns the input
    full = torch.ones(2, 9, dtype=torch.bool)
    assert list(model.complete_steps(x, full)) == []
    assert torch.equal(model.complete(x, full, n=2), x.repeat_interleave(2, 0))


def test_complete_samples_the_models_conditional():
    # 2x2 images, pixel 0 known: the candidates' joint frequencies of pixels 1..3 match
    # p(x_1, x_2, x_3 | x_0 = 1) computed from the exact likelihood
    model = _prnn(4, seed=7, scale=1.0)
    joint = model.log_prob(_all_binary(4)).double().exp()[8:]  # x_0 = 1: codes 8..15
    want = joint / joint.sum()
    x = torch.tensor([1.0, 0.0, 0.0, 0.0])
    known = torch.tensor([True, False, False, False])
    out = model.complete(x, known, n=6000, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out[:, 0], torch.ones(6000))
    codes = (out[:, 1] * 4 + out[:, 2] * 2 + out[:, 3]).long()
    freq = torch.bincount(codes, minlength=8).double() / len(out)
    assert (freq - want).abs().max().item() < 0.025, (freq, want)


def test_sample_shapes_seeding_and_frequencies():
    model = _prnn(9, seed=8)
    a = model.sample(20, generator=torch.Generator().manual_seed(1))
    b = model.sample(20, generator=torch.Generator().manual_seed(1))
    assert a.shape == (20, 9) and a.dtype == torch.float32 and torch.equal(a, b)
    assert set(a.unique().tolist()) <= {0.0, 1.0}
    assert model.sample(0).shape == (0, 9)
    small = _prnn(4, seed=9, scale=1.0)
    s = small.sample(6000, generator=torch.Generator().manual_seed(2))
    codes = (s[:, 0] * 8 + s[:, 1] * 4 + s[:, 2] * 2 + s[:, 3]).long()
    freq = torch.bincount(codes, minlength=16).double() / len(s)
    probs = small.log_prob(_all_binary(4)).double().exp()
    assert (freq - probs).abs().max().item() < 0.025, (freq, probs)


def test_grad_mode_is_untouched_between_steps():
    model = _prnn(9)
    it = model.complete_steps(torch.zeros(9), torch.zeros(9, dtype=torch.bool))
    next(it)
    assert torch.is_grad_enabled(), "the completion generator leaked no_grad into its caller"


def test_trainer_lowers_held_out_nll():
    torch.manual_seed(0)
    x = datasets.bars(320, size=6, seed=0)
    ds = datasets.Dataset("bars6", DataKind.BINARY_IMAGE, x[:256], x[256:], (6, 6))
    model = registry.create("pixelrnn", ds.shape, ds.kind, hidden=16, row_hidden=16, lr=0.02, batch_size=64)
    before = evaluate(model, ds.valid).nats
    cfg = TrainConfig(max_steps=30, eval_every=10, eval_size=64, visuals_every_s=None, device="cpu")
    snaps = list(Trainer(model, ds, cfg).run())
    assert snaps[-1].event == "finished", snaps[-1].message
    assert all(math.isfinite(s.loss) for s in snaps)
    after = snaps[-1].nll.nats
    assert after < before - 5, (before, after)


def test_checkpoint_round_trip(tmp_path):
    model = _prnn(8, seed=10, width=4, cell="gru")
    path = save_checkpoint(tmp_path / "pixelrnn.safetensors", model)
    loaded, meta = load_checkpoint(path, family="pixelrnn")
    assert meta.family == "pixelrnn" and loaded.hparams["cell"] == "gru"
    assert (loaded.rows, loaded.cols) == (2, 4)
    x = _all_binary(8)
    torch.testing.assert_close(loaded.log_prob(x), model.log_prob(x))
    known = torch.zeros(8, dtype=torch.bool)
    gen = lambda: torch.Generator().manual_seed(5)  # noqa: E731
    assert torch.equal(loaded.complete(x[3], known, 4, gen()), model.complete(x[3], known, 4, gen()))


@pytest.mark.parametrize("call,match", [
    (lambda m: m.log_prob(torch.zeros(3, 8)), r"\(N, 9\)"),
    (lambda m: m.pixel_log_prob(torch.zeros(9)), r"\(N, 9\)"),
    (lambda m: m.complete(torch.zeros(2, 8), torch.zeros(2, 8, dtype=torch.bool)), r"\(N, 9\)"),
    (lambda m: m.complete(torch.zeros(2, 9), torch.zeros(9, dtype=torch.bool)), "mask"),
    (lambda m: m.complete_steps(torch.zeros(2, 9), torch.zeros(2, 8, dtype=torch.bool)), "mask"),
    (lambda m: m.complete(torch.zeros(9), torch.zeros(9, dtype=torch.bool), n=0), "at least 1"),
    (lambda m: m.complete_steps(torch.zeros(9), torch.zeros(9, dtype=torch.bool), n=0), "at least 1"),
    (lambda m: m.sample(-1), ">= 0"),
])
def test_bad_input_raises_value_error(call, match):
    # complete_steps checks its arguments when called, before the first next()
    with pytest.raises(ValueError, match=match):
        call(_prnn(9))


@pytest.mark.parametrize("shape,hp,match", [
    ((8,), {}, "not a square"), ((9,), dict(width=2), "width 2"), ((3, 5), dict(width=4), "width=4"),
    ((9,), dict(cell="rnn"), "cell"),
])
def test_bad_shapes_and_hparams_raise_value_error(shape, hp, match):
    with pytest.raises(ValueError, match=match):
        registry.create("pixelrnn", shape, hidden=4, **hp)
