"""NADE: exact likelihood, normalisation, sampling, completion, learning and checkpoints."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from core import data as datasets
from core import registry
from core.checkpoint import load_checkpoint, save_checkpoint
from core.evaluation import evaluate
from core.training import TrainConfig, Trainer


def _random_nade(d: int, hidden: int = 4, seed: int = 0, scale: float = 1.5):
    model = registry.create("nade", (d,), hidden=hidden)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in (model.W, model.c, model.V, model.b):
            p.copy_(scale * torch.randn(p.shape, generator=g))
    return model


def _all_binary(d: int) -> torch.Tensor:
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=d)))


def _brute_force_log_prob(model, x: torch.Tensor) -> torch.Tensor:
    """sum_d log p(x_d | x_<d) with h_d = sigmoid(c + W[:, :d] x_<d), p = sigmoid(b_d + V_d . h_d)."""
    W, c, V, b = (p.detach().double() for p in (model.W, model.c, model.V, model.b))
    out = []
    for row in x.double():
        total = 0.0
        for d in range(len(row)):
            h = torch.sigmoid(c + W[:, :d] @ row[:d])
            p1 = torch.sigmoid(b[d] + V[d] @ h).item()
            total += math.log(p1 if row[d] == 1 else 1 - p1)
        out.append(total)
    return torch.tensor(out, dtype=torch.float64)


def test_registered_with_its_spec():
    info = registry.info("nade")
    assert info.group == "Autoregressive" and info.likelihood.value == "exact"
    assert [k.value for k in info.data_kinds] == ["binary_image"]
    specs = {h.name: h for h in info.all_hparams()}
    assert specs["hidden"].default == 500 and specs["lr"].live and "batch_size" in specs
    assert {"log_prob", "sample", "complete"} <= registry.model_class("nade").capabilities()


def test_log_prob_matches_brute_force():
    model = _random_nade(6, hidden=4, seed=1)
    x = torch.bernoulli(torch.full((20, 6), 0.5), generator=torch.Generator().manual_seed(2))
    got = model.log_prob(x)
    assert got.shape == (20,)
    torch.testing.assert_close(got.double(), _brute_force_log_prob(model, x), atol=1e-5, rtol=1e-5)


def test_gradients_match_a_per_pixel_computation():
    # log_prob works in place on its big tensors; autograd must still see the same function
    model = _random_nade(5, hidden=3, seed=7)
    x = torch.bernoulli(torch.full((7, 5), 0.5), generator=torch.Generator().manual_seed(4))
    params = (model.W, model.c, model.V, model.b)
    got = torch.autograd.grad(model.log_prob(x).sum(), params)
    W, c, V, b = params
    total = 0.0
    for d in range(5):
        h = torch.sigmoid(c + x[:, :d] @ W[:, :d].t())
        logit = b[d] + h @ V[d]
        total = total + (x[:, d] * F.logsigmoid(logit) + (1 - x[:, d]) * F.logsigmoid(-logit)).sum()
    want = torch.autograd.grad(total, params)
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w, atol=1e-5, rtol=1e-4)


def test_log_prob_chunks_agree(monkeypatch):
    # the batch is split in chunks to bound memory; a tiny chunk size must give the same answer
    from core.models import nade

    model = _random_nade(6, hidden=4, seed=6)
    x = torch.bernoulli(torch.full((11, 6), 0.5), generator=torch.Generator().manual_seed(3))
    whole = model.log_prob(x)
    monkeypatch.setattr(nade, "_CHUNK_FLOATS", 24 * 3)  # 3 rows per chunk
    torch.testing.assert_close(model.log_prob(x), whole)


@pytest.mark.parametrize("seed", [0, 1])
def test_probabilities_sum_to_one(seed):
    model = _random_nade(5, hidden=4, seed=seed, scale=3.0)
    lp = model.log_prob(_all_binary(5)).double()
    assert torch.isfinite(lp).all() and (lp < 0).all()
    assert lp.exp().sum().item() == pytest.approx(1.0, abs=1e-5)


def test_sample_shape_and_values():
    model = _random_nade(6, seed=4)
    s = model.sample(50, generator=torch.Generator().manual_seed(0))
    assert s.shape == (50, 6) and s.dtype == torch.float32
    assert set(s.unique().tolist()) <= {0.0, 1.0}
    a = model.sample(30, generator=torch.Generator().manual_seed(7))
    b = model.sample(30, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b)


def test_sample_frequencies_match_log_prob():
    model = _random_nade(3, hidden=4, seed=5, scale=1.0)
    n = 20000
    s = model.sample(n, generator=torch.Generator().manual_seed(1))
    codes = (s[:, 0] * 4 + s[:, 1] * 2 + s[:, 2]).long()
    freq = torch.bincount(codes, minlength=8).double() / n
    probs = model.log_prob(_all_binary(3)).double().exp()
    assert (freq - probs).abs().max().item() < 0.02, (freq, probs)


def test_complete_follows_the_conditionals():
    # x1 = x0 almost surely: a large positive W feeds x0 into h, V reads it out
    model = registry.create("nade", (2,), hidden=1)
    with torch.no_grad():
        model.W.copy_(torch.tensor([[40.0, 0.0]]))
        model.c.fill_(-20.0)
        model.V.copy_(torch.tensor([[0.0], [60.0]]))
        model.b.copy_(torch.tensor([0.0, -30.0]))
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    known = torch.tensor([[True, False], [True, False]])
    out = model.complete(x, known, n=5, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out[:5, 1], torch.ones(5)) and torch.equal(out[5:, 1], torch.zeros(5))


def test_wrong_shape_raises():
    model = _random_nade(6)
    with pytest.raises(ValueError):
        model.log_prob(torch.zeros(3, 5))
    with pytest.raises(ValueError):
        model.complete(torch.zeros(3, 5), torch.zeros(3, 5, dtype=torch.bool))
    with pytest.raises(ValueError):
        model.complete(torch.zeros(3, 6), torch.zeros(3, 5, dtype=torch.bool))


def test_trainer_lowers_held_out_nll_on_bars():
    torch.manual_seed(0)
    ds = datasets.load("bars", n=256)
    model = registry.create("nade", ds.shape, ds.kind, hidden=32, lr=0.01, batch_size=64)
    cfg = TrainConfig(max_steps=12, eval_every=6, visuals_every_s=None, device="cpu", eval_size=64)
    before = evaluate(model, ds.valid[:64]).nats
    snaps = list(Trainer(model, ds, cfg).run())
    after = snaps[-1].nll.nats
    assert snaps[-1].event == "finished" and all(math.isfinite(s.loss) for s in snaps)
    assert after < before - 50, (before, after)


def test_checkpoint_round_trip(tmp_path):
    model = _random_nade(6, hidden=4, seed=9)
    x = _all_binary(6)
    path = save_checkpoint(tmp_path / "nade.safetensors", model)
    loaded, meta = load_checkpoint(path, family="nade")
    assert meta.family == "nade" and loaded.hparams["hidden"] == 4
    torch.testing.assert_close(loaded.log_prob(x), model.log_prob(x))


def test_hand_written_backward_matches_autograd():
    """The training pass's own backward (no N x D x H intermediates) against gradcheck, and
    against autograd through the cumulative-sum formula on a model of real size."""
    import torch.nn.functional as F

    from core.models.nade import _NADELogits

    torch.manual_seed(0)
    x = torch.bernoulli(torch.full((3, 6), 0.5)).double()
    params = [torch.randn(4, 6, dtype=torch.double, requires_grad=True),
              torch.randn(4, dtype=torch.double, requires_grad=True),
              torch.randn(6, 4, dtype=torch.double, requires_grad=True),
              torch.randn(6, dtype=torch.double, requires_grad=True)]
    assert torch.autograd.gradcheck(lambda W, c, V, b: _NADELogits.apply(x, W, c, V, b), params)

    m = registry.create("nade", (64,), hidden=32)
    with torch.no_grad():
        m.V.normal_()
    xb = torch.bernoulli(torch.full((5, 64), 0.3))
    loss = F.binary_cross_entropy_with_logits(m.logits(xb), xb)
    ours = torch.autograd.grad(loss, [m.W, m.c, m.V, m.b])
    ws = F.pad(m.W.t()[:-1], (0, 0, 1, 0))
    h = (F.pad(xb[:, :-1], (1, 0))[:, :, None] * ws).cumsum(1).add(m.c).sigmoid()
    ref_loss = F.binary_cross_entropy_with_logits((h * m.V).sum(-1) + m.b, xb)
    ref = torch.autograd.grad(ref_loss, [m.W, m.c, m.V, m.b])
    torch.testing.assert_close(loss, ref_loss)
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
