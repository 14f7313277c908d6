"""MADE: the autoregressive property, normalisation, ensembles, checkpoints, completion, learning."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from core import data as datasets
from core import registry
from core.checkpoint import load_checkpoint, save_checkpoint
from core.training import TrainConfig, Trainer


def _made(d: int, seed: int = 0, scale: float = 1.0, **hp):
    """A MADE with weights scaled up from the default init, so conditionals are far from 1/2."""
    model = registry.create("made", (d,), **{"hidden": 16, **hp})
    g = torch.Generator().manual_seed(seed + 100)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(scale * torch.randn(p.shape, generator=g))
    return model


def _all_binary(d: int) -> torch.Tensor:
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=d)))


@pytest.mark.parametrize("hp", [dict(layers=1), dict(layers=3), dict(layers=2, masks=4, order_agnostic=True)])
def test_autoregressive_property(hp):
    d = 7
    model = _made(d, seed=1, **hp)
    x = torch.bernoulli(torch.full((3, d), 0.5), generator=torch.Generator().manual_seed(0))
    for k in range(model.n_masks):
        order = model.degrees(k)[0]
        for out in range(d):
            xi = x.clone().requires_grad_(True)
            logits = model._logits(xi, [k])[0]
            (grad,) = torch.autograd.grad(logits[:, out].sum(), xi)
            later = order >= order[out]  # itself and every pixel after it
            assert torch.all(grad[:, later] == 0), (k, out)
        # and the mask is not vacuous: the last pixel in the ordering sees something
        last = int(torch.argmax(order))
        xi = x.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(model._logits(xi, [k])[0][:, last].sum(), xi)
        assert grad.abs().sum() > 0


@pytest.mark.parametrize("hp", [dict(), dict(masks=3, ensemble=3, order_agnostic=True, layers=2)])
def test_probabilities_sum_to_one(hp):
    model = _made(5, seed=2, scale=2.0, **hp)
    lp = model.log_prob(_all_binary(5)).double()
    assert lp.shape == (32,) and torch.isfinite(lp).all()
    assert lp.exp().sum().item() == pytest.approx(1.0, abs=1e-5)


def test_ensemble_is_log_mean_exp_of_single_masks():
    model = _made(6, seed=3, masks=4, ensemble=3, order_agnostic=True)
    x = _all_binary(6)
    single = torch.stack([model.log_prob_masks(x, [k])[0] for k in range(3)])
    expected = torch.logsumexp(single, 0) - math.log(3)
    torch.testing.assert_close(model.log_prob(x), expected, atol=1e-5, rtol=1e-5)
    # averaging likelihoods, not logits: the ensemble differs from each member
    assert not torch.allclose(model.log_prob(x), single[0])
    # ensemble is capped at the number of trained masks
    assert registry.create("made", (6,), hidden=8, masks=2, ensemble=5).n_ensemble == 2


def test_masks_are_reproducible_and_cycle():
    a = registry.create("made", (9,), hidden=8, masks=3, order_agnostic=True, seed=5)
    b = registry.create("made", (9,), hidden=8, masks=3, order_agnostic=True, seed=5)
    c = registry.create("made", (9,), hidden=8, masks=3, order_agnostic=True, seed=6)
    assert torch.equal(a.orders, b.orders) and torch.equal(a.degrees0, b.degrees0)
    assert not torch.equal(a.orders, c.orders)
    assert len({tuple(o.tolist()) for o in a.orders}) == 3  # a new ordering per mask
    raster = registry.create("made", (9,), hidden=8, masks=3)
    assert torch.equal(raster.orders, torch.arange(1, 10).expand(3, -1).int())
    a.configure_optimizer(1e-3)
    x = torch.bernoulli(torch.full((4, 9), 0.5), generator=torch.Generator().manual_seed(0))
    seen = []
    for _ in range(4):
        seen.append(int(a.mask_index))
        a.train_step(x)
    assert seen == [0, 1, 2, 0]


def test_checkpoint_round_trip(tmp_path):
    model = _made(8, seed=4, masks=3, ensemble=2, order_agnostic=True, layers=2)
    model.mask_index.fill_(2)
    path = save_checkpoint(tmp_path / "made.safetensors", model)
    loaded, meta = load_checkpoint(path, family="made")
    assert meta.family == "made"
    assert torch.equal(loaded.orders, model.orders)
    for i in range(2):
        assert torch.equal(getattr(loaded, f"degrees{i}"), getattr(model, f"degrees{i}"))
    assert int(loaded.mask_index) == 2
    x = _all_binary(8)
    torch.testing.assert_close(loaded.log_prob(x), model.log_prob(x))


@pytest.mark.parametrize("order_agnostic", [True, False])
def test_complete_keeps_known_pixels_and_varies_candidates(order_agnostic):
    d = 16
    model = _made(d, seed=5, scale=0.3, masks=3, order_agnostic=order_agnostic)
    before = model.orders.clone()
    g = torch.Generator().manual_seed(3)
    x = torch.bernoulli(torch.full((2, d), 0.5), generator=g)
    known = torch.bernoulli(torch.full((2, d), 0.5), generator=g).bool()  # arbitrary, per row
    n = 8
    out = model.complete(x, known, n=n, generator=g)
    assert out.shape == (2 * n, d) and set(out.unique().tolist()) <= {0.0, 1.0}
    for i in range(2):
        cands, k = out[i * n:(i + 1) * n], known[i]
        assert torch.equal(cands[:, k], x[i, k].expand(n, -1)), "a known pixel was changed"
        assert len({tuple(c.tolist()) for c in cands[:, ~k]}) > 1, "all candidates are identical"
    assert torch.equal(model.orders, before), "completion changed the trained masks"
    one = model.complete(x[0], known[0], n=3, generator=g)
    assert one.shape == (3, d)


def test_order_for_puts_known_pixels_first():
    model = _made(10, seed=6, masks=2, order_agnostic=True)
    known = torch.tensor([1, 0, 0, 1, 1, 0, 1, 0, 0, 0], dtype=torch.bool)
    order, hidden = model.order_for(known, 1)
    assert sorted(order.tolist()) == list(range(1, 11))
    assert order[known].max() < order[~known].min()
    old = model.degrees(1)[0]
    assert torch.equal(torch.argsort(order[known]), torch.argsort(old[known]))  # relative order kept
    assert torch.equal(hidden[0], model.degrees0[1])  # hidden degrees unchanged


def test_complete_conditions_exactly_when_known_first():
    # raster order, first pixel known: candidates follow p(x_1.. | x_0) and samples' frequencies
    # of the second pixel match the model's conditional
    model = _made(3, seed=7, scale=2.0)
    lp = model.log_prob(_all_binary(3)).double().exp().reshape(2, 2, 2)
    p1_given_x0 = lp[1, 1].sum() / lp[1].sum()
    x = torch.tensor([[1.0, 0.0, 0.0]])
    known = torch.tensor([[True, False, False]])
    out = model.complete(x, known, n=4000, generator=torch.Generator().manual_seed(0))
    assert out[:, 1].mean().item() == pytest.approx(p1_given_x0.item(), abs=0.03)


def test_sample_shapes_seeding_and_mixture():
    model = _made(6, seed=8, masks=3, ensemble=3, order_agnostic=True)
    a = model.sample(50, generator=torch.Generator().manual_seed(1))
    b = model.sample(50, generator=torch.Generator().manual_seed(1))
    assert a.shape == (50, 6) and a.dtype == torch.float32 and torch.equal(a, b)
    assert set(a.unique().tolist()) <= {0.0, 1.0}
    # frequencies match the ensemble likelihood
    model = _made(3, seed=9, scale=1.5, masks=2, ensemble=2, order_agnostic=True)
    s = model.sample(6000, generator=torch.Generator().manual_seed(2))
    codes = (s[:, 0] * 4 + s[:, 1] * 2 + s[:, 2]).long()
    freq = torch.bincount(codes, minlength=8).double() / len(s)
    probs = model.log_prob(_all_binary(3)).double().exp()
    assert (freq - probs).abs().max().item() < 0.03, (freq, probs)


def test_trainer_lowers_held_out_nll():
    torch.manual_seed(0)
    ds = datasets.load("bars", n=256)
    model = registry.create("made", ds.shape, ds.kind, hidden=64, masks=2, ensemble=2, lr=0.01, batch_size=64)
    cfg = TrainConfig(max_steps=12, eval_every=1, eval_size=100, visuals_every_s=None, device="cpu")
    snaps = list(Trainer(model, ds, cfg).run())
    assert snaps[-1].event == "finished", snaps[-1].message
    nll = [s.nll.nats for s in snaps if s.event in ("eval", "finished")]
    assert all(math.isfinite(v) for v in nll)
    assert nll[-1] < nll[0] - 20, nll


def test_wrong_shapes_raise_value_error():
    model = _made(6)
    with pytest.raises(ValueError):
        model.log_prob(torch.zeros(3, 5))
    with pytest.raises(ValueError):
        model.complete(torch.zeros(2, 5), torch.zeros(2, 5, dtype=torch.bool))
    with pytest.raises(ValueError):
        model.complete(torch.zeros(2, 6), torch.zeros(6, dtype=torch.bool))
    with pytest.raises(ValueError):
        model.complete(torch.zeros(2, 2, 6), torch.zeros(2, 2, 6, dtype=torch.bool))
    with pytest.raises(ValueError):
        model.complete(torch.zeros(6), torch.zeros(6, dtype=torch.bool), n=0)
    with pytest.raises(ValueError):
        registry.create("made", (6,), layers=4)


def test_weight_decay_shrinks_the_weights_not_the_biases():
    m = registry.create("made", (6,), hidden=5, weight_decay=0.5, lr=0.1)
    opt = m.configure_optimizer(0.1)
    with torch.no_grad():
        for p in m.parameters():
            p.fill_(1.0)
    for p in m.parameters():
        p.grad = torch.zeros_like(p)  # no data: only the decay moves anything
    opt.step()
    assert torch.allclose(m.out.weight, torch.full_like(m.out.weight, 1 - 0.1 * 0.5))
    assert torch.equal(m.out.bias, torch.ones_like(m.out.bias))


def test_dropout_regularises_training_only_and_keeps_the_masks():
    """Dropout on the hidden units changes the training loss (two calls differ), never the
    likelihood, and a dropped-out pass is still autoregressive."""
    d = 7
    model = _made(d, seed=11, hidden=32, dropout=0.5, direct=True)
    x = torch.bernoulli(torch.full((16, d), 0.5), generator=torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    a, b = model.loss(x).item(), model.loss(x).item()
    assert a != b
    plain = _made(d, seed=11, hidden=32, direct=True)
    assert torch.equal(model.log_prob(x), plain.log_prob(x))
    assert plain.loss(x).item() == pytest.approx(-plain.log_prob(x).mean().item(), rel=1e-6)
    order = model.degrees(0)[0]
    for out in range(d):
        xi = x.clone().requires_grad_(True)
        torch.manual_seed(out)
        (grad,) = torch.autograd.grad(model._logits(xi, [0], dropout=0.5)[0][:, out].sum(), xi)
        assert torch.all(grad[:, order >= order[out]] == 0), out


def test_raster_ensemble_completes_from_the_mixtures_conditional():
    """A raster-order ensemble (connectivity masks only) conditions on the known top pixels
    exactly: each candidate's mask is drawn from its posterior, so the completions' frequencies
    match the ensemble's own p(x_2, x_3 | x_0, x_1), not mask 0's."""
    model = _made(4, seed=13, scale=1.0, hidden=6, masks=3, ensemble=3)
    allx = _all_binary(4)
    joint = model.log_prob(allx).double().exp().reshape(4, 4)  # rows: (x0, x1), cols: (x2, x3)
    mask0 = model.log_prob_masks(allx, [0])[0].double().exp().reshape(4, 4)
    x = torch.tensor([[1.0, 0.0, 0.0, 0.0]])
    known = torch.tensor([[True, True, False, False]])
    out = model.complete(x, known, n=8000, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out[:, :2], x[:, :2].expand(len(out), -1))
    freq = torch.bincount((out[:, 2] * 2 + out[:, 3]).long(), minlength=4).double() / len(out)
    want = joint[2] / joint[2].sum()
    assert (freq - want).abs().max().item() < 0.025, (freq, want)
    # the check has teeth: mask 0 alone predicts something else
    assert (mask0[2] / mask0[2].sum() - want).abs().max().item() > 0.15
    # the step-by-step path draws from the same conditional
    last = None
    for last in model.complete_steps(x, known, n=8000, generator=torch.Generator().manual_seed(2)):
        pass
    assert last.done == last.total
    freq = torch.bincount((last.x[:, 2] * 2 + last.x[:, 3]).long(), minlength=4).double() / len(last.x)
    assert (freq - want).abs().max().item() < 0.025, (freq, want)


def test_direct_l1_adds_the_penalty_on_the_visible_direct_weights_only():
    model = _made(5, seed=14, hidden=8, direct=True, direct_l1=0.01)
    plain = _made(5, seed=14, hidden=8, direct=True)
    x = _all_binary(5)
    visible = model.direct * model.direct_mask(model.orders[0])
    want = plain.loss(x) + 0.01 * visible.abs().sum()
    assert model.loss(x).item() == pytest.approx(want.item(), rel=1e-6)
    assert visible.abs().sum() < model.direct.abs().sum()  # the hidden entries are not counted


def test_completion_tables_follow_the_weights():
    """One-layer completion caches its sorted weight tables; a training step (or a load) must
    not leave it drawing from the old weights: each step's p is the current conditional."""
    d = 8
    model = _made(d, seed=15, hidden=12, direct=True)
    model.configure_optimizer(0.5)
    x = torch.bernoulli(torch.full((4, d), 0.5), generator=torch.Generator().manual_seed(2))
    known = torch.zeros(d, dtype=torch.bool)
    known[:3] = True
    for _ in range(2):
        last = None
        for step in model.complete_steps(x[:1], known[None], n=4, generator=torch.Generator().manual_seed(0)):
            probe = step.x.clone()
            probe[:, step.pixel] = 1.0
            want = model.pixel_log_prob(probe)[:, step.pixel].exp()
            assert torch.allclose(step.p, want, atol=1e-5), step.pixel
            last = step
        assert last is not None
        model.train_step(x)  # moves every weight: the cached tables must be rebuilt


def test_mirror_reads_each_row_right_to_left_top_row_first():
    model = _made(9, seed=15, layers=2, direct=True, mirror=True)
    order = model.degrees(0)[0]
    assert order.reshape(3, 3).tolist() == [[3, 2, 1], [6, 5, 4], [9, 8, 7]]
    x = torch.bernoulli(torch.full((3, 9), 0.5), generator=torch.Generator().manual_seed(0))
    for out in range(9):
        xi = x.clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(model._logits(xi, [0])[0][:, out].sum(), xi)
        assert torch.all(grad[:, order >= order[out]] == 0), out
        # pixel 2 comes first: it sees nothing; every other pixel sees the ones before it
        assert (grad.abs().sum() > 0) == (out != 2), out
    lp = model.log_prob(_all_binary(9)).double()
    assert lp.exp().sum().item() == pytest.approx(1.0, abs=1e-5)
    # the hidden degrees are those of the unmirrored model of the same seed
    assert torch.equal(model.degrees0, _made(9, seed=15, layers=2, direct=True).degrees0)
    image = registry.create("made", (2, 3), hidden=4, mirror=True)
    assert image.degrees(0)[0].tolist() == [3, 2, 1, 6, 5, 4]
    with pytest.raises(ValueError, match="square"):
        registry.create("made", (6,), hidden=4, mirror=True)
    with pytest.raises(ValueError, match="choose one"):
        registry.create("made", (9,), hidden=4, mirror=True, order_agnostic=True)
