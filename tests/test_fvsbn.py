"""FVSBN: exact likelihood, normalisation, sampling, completion and learning."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from core import data as datasets
from core import registry


def _random_fvsbn(d: int, seed: int = 0, scale: float = 1.5):
    """An FVSBN with random weights everywhere, including the entries the mask must hide."""
    model = registry.create("fvsbn", (d,))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        model.weight.copy_(scale * torch.randn(d, d, generator=g))
        model.bias.copy_(scale * torch.randn(d, generator=g))
    return model


def _all_binary(d: int) -> torch.Tensor:
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=d)))


def _brute_force_log_prob(model, x: torch.Tensor) -> torch.Tensor:
    """sum_d log p(x_d | x_<d), p(x_d = 1 | x_<d) = sigmoid(b_d + sum_{j<d} W[j, d] x_j), pixel by pixel."""
    w, b = model.weight.detach().double(), model.bias.detach().double()
    out = []
    for row in x.double():
        total = 0.0
        for d in range(len(row)):
            logit = b[d] + sum(w[j, d] * row[j] for j in range(d))
            p1 = torch.sigmoid(logit)
            total += math.log(p1 if row[d] == 1 else 1 - p1)
        out.append(total)
    return torch.tensor(out, dtype=torch.float64)


def test_log_prob_matches_brute_force():
    model = _random_fvsbn(6, seed=1)
    g = torch.Generator().manual_seed(2)
    x = torch.bernoulli(torch.full((20, 6), 0.5), generator=g)
    got = model.log_prob(x)
    assert got.shape == (20,)
    torch.testing.assert_close(got.double(), _brute_force_log_prob(model, x), atol=1e-5, rtol=1e-5)


def test_log_prob_ignores_later_pixels():
    # p(x_0) depends on nothing; changing x_5 must not change the term of any earlier pixel:
    # log p(x) - log p(x with x_5 flipped) only involves pixel 5's own conditional.
    model = _random_fvsbn(6, seed=3)
    x = torch.tensor([[1.0, 0, 1, 1, 0, 0]])
    y = x.clone()
    y[0, 5] = 1
    logit5 = model.bias[5] + sum(model.weight[j, 5] * x[0, j] for j in range(5))
    expected = math.log(1 - torch.sigmoid(logit5).item()) - math.log(torch.sigmoid(logit5).item())
    diff = (model.log_prob(x) - model.log_prob(y)).item()
    assert diff == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_probabilities_sum_to_one(seed):
    model = _random_fvsbn(3, seed=seed, scale=3.0)
    lp = model.log_prob(_all_binary(3)).double()
    assert torch.isfinite(lp).all() and (lp < 0).all()
    assert lp.exp().sum().item() == pytest.approx(1.0, abs=1e-6)


def test_untrained_model_is_uniform():
    model = registry.create("fvsbn", (5,))
    lp = model.log_prob(_all_binary(5))
    torch.testing.assert_close(lp, torch.full((32,), -5 * math.log(2)))


def test_sample_shape_and_values():
    model = _random_fvsbn(6, seed=4)
    s = model.sample(50, generator=torch.Generator().manual_seed(0))
    assert s.shape == (50, 6) and s.dtype == torch.float32
    assert set(s.unique().tolist()) <= {0.0, 1.0}


def test_sample_is_seeded():
    model = _random_fvsbn(6, seed=4, scale=0.5)
    a = model.sample(30, generator=torch.Generator().manual_seed(7))
    b = model.sample(30, generator=torch.Generator().manual_seed(7))
    c = model.sample(30, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_sample_frequencies_match_log_prob():
    model = _random_fvsbn(3, seed=5, scale=1.0)
    n = 20000
    s = model.sample(n, generator=torch.Generator().manual_seed(1))
    codes = (s[:, 0] * 4 + s[:, 1] * 2 + s[:, 2]).long()
    freq = torch.bincount(codes, minlength=8).double() / n
    probs = model.log_prob(_all_binary(3)).double().exp()  # same order: x0 is the most significant bit
    assert (freq - probs).abs().max().item() < 0.02, (freq, probs)


def test_complete_follows_the_conditionals():
    # with strong weights the unknown pixel must follow its known parents
    model = registry.create("fvsbn", (2,))
    with torch.no_grad():
        model.weight[0, 1] = 30.0
        model.bias[1] = -15.0  # x1 = x0 almost surely
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    known = torch.tensor([[True, False], [True, False]])
    out = model.complete(x, known, n=5, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out[:5, 1], torch.ones(5)) and torch.equal(out[5:, 1], torch.zeros(5))


def test_visuals_are_float32_samples():
    model = _random_fvsbn(6)
    v = model.visuals(10, generator=torch.Generator().manual_seed(0))
    assert set(v.as_dict()) == {"samples"}
    assert v.samples.shape == (10, 6) and v.samples.dtype == np.float32
    assert v.samples.flags.c_contiguous


def test_training_lowers_the_loss_on_bars():
    torch.manual_seed(0)
    ds = datasets.load("bars", n=256)
    model = registry.create("fvsbn", ds.shape, ds.kind, lr=0.01)
    model.configure_optimizer(model.hparams["lr"])
    x = torch.from_numpy(ds.train).float()
    valid = torch.from_numpy(ds.valid).float()
    before = -model.log_prob(valid).mean().item()
    assert before == pytest.approx(784 * math.log(2), rel=1e-6)  # zero init: uniform pixels
    losses = [model.train_step(x[i % 4 * 64:(i % 4 + 1) * 64])["loss"] for i in range(12)]
    after = -model.log_prob(valid).mean().item()
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < losses[0] - 50
    assert after < before - 50


def test_weight_decay_reaches_the_optimizer():
    model = registry.create("fvsbn", (4,), weight_decay=0.005)
    opt = model.configure_optimizer(0.01)
    assert opt is model.optimizer
    assert opt.param_groups[0]["weight_decay"] == 0.005 and opt.param_groups[0]["lr"] == 0.01


def test_input_dropout_changes_training_only():
    d = 6
    model = registry.create("fvsbn", (d,), dropout=0.5)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        model.weight.copy_(torch.randn(d, d, generator=g))
        model.bias.copy_(torch.randn(d, generator=g))
    x = _all_binary(d)
    torch.manual_seed(0)
    a, b = model.loss(x).item(), model.loss(x).item()
    assert a != b  # the inputs are dropped at random
    assert model.log_prob(x).exp().sum().item() == pytest.approx(1.0, abs=1e-5)  # evaluation: no dropout
    model.hparams["dropout"] = 0.0
    assert model.loss(x).item() == pytest.approx(-model.log_prob(x).mean().item(), rel=1e-6)
