"""WaveNet and the ``waves`` data set: exact normalisation of the quantised chain and of the
piecewise-constant density, causality and receptive field, the Fast-WaveNet cache against full
passes, completion, learning through the engine, checkpoints and bad inputs."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from core import data as datasets
from core import registry
from core.data import DataError
from core.checkpoint import load_checkpoint, save_checkpoint
from core.training import TrainConfig, Trainer
from core.models.wavenet import _Sampler, bin_edges
from core.protocol import DataKind


def _random_wavenet(t: int, levels: int = 3, seed: int = 0, scale: float = 0.8, **hp):
    """A small WaveNet with random weights large enough to give uneven conditionals."""
    hp = {"channels": 4, "skip_channels": 6, "layers": 2, "stacks": 1, **hp}
    model = registry.create("wavenet", (t,), DataKind.SEQUENCE, levels=levels, **hp)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(scale * torch.randn(p.shape, generator=g))
    return model.eval()


def _all_centre_sequences(model) -> torch.Tensor:
    """Every sequence of bin centres, (levels**T, T)."""
    c = model.centres.tolist()
    return torch.tensor(list(itertools.product(c, repeat=model.data_shape[0])), dtype=torch.float32)


def _random_sequences(model, n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, model.data_shape[0], generator=g) * 2 - 1


# --------------------------------------------------------------------------------------------
# the data set
# --------------------------------------------------------------------------------------------


def test_waves_data_set():
    info = datasets.DATASETS["waves"]
    assert info.kind is DataKind.SEQUENCE and not info.needs_file
    ds = datasets.load("waves", n=200, seed=3)
    assert ds.kind is DataKind.SEQUENCE and ds.shape == (128,) and ds.image_shape is None
    assert ds.train.shape == (200, 128) and ds.valid.shape == (50, 128)
    for x in (ds.train, ds.valid):
        assert x.dtype == np.float32 and x.flags.c_contiguous and np.isfinite(x).all()
        assert np.abs(x).max() <= 1.0
    assert ds.train.std() > 0.1, "waves, not noise around 0"
    # smooth: neighbouring steps are close compared to the signal's own spread
    assert np.abs(np.diff(ds.train, axis=1)).mean() < 0.5 * ds.train.std()
    again, other = datasets.load("waves", n=200, seed=3), datasets.load("waves", n=200, seed=4)
    assert np.array_equal(ds.train, again.train) and np.array_equal(ds.valid, again.valid)
    assert not np.array_equal(ds.train, other.train)
    assert not np.array_equal(ds.train[:50], ds.valid)


@pytest.mark.parametrize("kwargs", [{"n": 0}, {"n": 2.5}, {"noise": -1.0}, {"noise": "x"}])
def test_waves_bad_arguments(kwargs):
    with pytest.raises(DataError, match="waves"):
        datasets.load("waves", **kwargs)


# --------------------------------------------------------------------------------------------
# the model
# --------------------------------------------------------------------------------------------


def test_registered_with_its_spec():
    info = registry.info("wavenet")
    assert info.group == "Autoregressive" and info.likelihood.value == "exact"
    assert info.data_kinds == (DataKind.SEQUENCE,)
    specs = {h.name: h for h in info.all_hparams()}
    assert specs["levels"].default == 64 and specs["lr"].live and "batch_size" in specs
    caps = registry.model_class("wavenet").capabilities()
    assert {"log_prob", "sample", "complete", "complete_steps", "pixel_log_prob"} <= caps


def test_receptive_field():
    model = registry.create("wavenet", (8,), layers=3, stacks=2)
    assert model.dilations == [1, 2, 4, 1, 2, 4] and model.receptive_field == 15


@pytest.mark.parametrize("levels,t,mu_law", [(3, 3, False), (4, 3, True), (2, 5, False)])
@pytest.mark.parametrize("seed", [0, 1])
def test_discrete_chain_sums_to_one(levels, t, mu_law, seed):
    model = _random_wavenet(t, levels, seed, scale=0.7, mu_law=mu_law)
    x = _all_centre_sequences(model)
    assert len(x) == levels ** t
    with torch.no_grad():
        bins = model.quantise(x)
        log_p = (model.pixel_log_prob(x) + model.log_widths[bins]).sum(1).double()  # log P(bins)
    assert torch.equal(bins, torch.tensor(list(itertools.product(range(levels), repeat=t))))
    assert (log_p < 0).all() and log_p.exp().std() > 1e-3, "uneven, proper probabilities"
    assert log_p.exp().sum().item() == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("mu_law", [False, True])
def test_density_integrates_to_one(mu_law):
    levels, t = 3, 3
    model = _random_wavenet(t, levels, seed=2, scale=0.7, mu_law=mu_law)
    x = _all_centre_sequences(model)
    widths = (model.edges[1:] - model.edges[:-1]).double()
    with torch.no_grad():
        density = model.log_prob(x).double().exp()
        cell = widths[model.quantise(x)].prod(1)  # volume of each sequence's cell
    if not mu_law:
        assert torch.allclose(cell, torch.full_like(cell, (2 / levels) ** t))
    assert (density * cell).sum().item() == pytest.approx(1.0, abs=1e-5)


def test_density_is_constant_on_each_cell():
    model = _random_wavenet(4, 5, seed=3, mu_law=True)
    e = model.edges
    lo = torch.tensor([[e[0], e[1], e[2], e[4]]])
    hi = torch.tensor([[e[1] - 1e-4, e[2] - 1e-4, e[3] - 1e-4, 1.0]])  # the last bin is closed at 1
    mid = model.centres[torch.tensor([[0, 1, 2, 4]])]
    with torch.no_grad():
        vals = [model.log_prob(v) for v in (lo, hi, mid)]
        assert torch.equal(model.quantise(lo), model.quantise(hi))
    torch.testing.assert_close(vals[0], vals[1])
    torch.testing.assert_close(vals[0], vals[2])


def test_bin_edges():
    edges, centres = bin_edges(4, False)
    torch.testing.assert_close(edges, torch.tensor([-1.0, -0.5, 0.0, 0.5, 1.0], dtype=torch.float64))
    torch.testing.assert_close(centres, torch.tensor([-0.75, -0.25, 0.25, 0.75], dtype=torch.float64))
    edges, centres = bin_edges(64, True)
    w = edges[1:] - edges[:-1]
    assert edges[0] == -1 and edges[-1] == 1 and (w > 0).all()
    assert w[32] < w[0] / 10, "mu-law bins are fine near 0, coarse near +-1"
    assert ((centres > edges[:-1]) & (centres < edges[1:])).all()


def test_pixel_terms_sum_to_log_prob_and_match_the_cache():
    model = _random_wavenet(20, 8, seed=4, layers=3, stacks=2)
    x = _random_sequences(model, 5, seed=1)
    with torch.no_grad():
        terms = model.pixel_log_prob(x)
        torch.testing.assert_close(terms.sum(1), model.log_prob(x))
        # the same terms, step by step through the Fast-WaveNet cache
        bins = model.quantise(x)
        sampler = _Sampler(model, len(x))
        token = torch.full((len(x),), model.levels)
        cached = []
        for t in range(20):
            logp = torch.log_softmax(sampler.step(token), 1)
            cached.append(logp.gather(1, bins[:, t:t + 1])[:, 0] - model.log_widths[bins[:, t]])
            token = bins[:, t]
    torch.testing.assert_close(torch.stack(cached, 1), terms, atol=1e-5, rtol=1e-5)


def test_causal_with_the_stated_receptive_field():
    model = _random_wavenet(16, 8, seed=5, layers=2, stacks=1)  # dilations 1, 2: field 4
    assert model.receptive_field == 4
    x = _random_sequences(model, 3, seed=2)
    with torch.no_grad():
        base = model.pixel_log_prob(x)
        for t in (0, 6):
            y = x.clone()
            y[:, t] = -y[:, t] + 0.9 * torch.sign(y[:, t])  # another bin
            assert not torch.equal(model.quantise(y)[:, t], model.quantise(x)[:, t])
            new = model.pixel_log_prob(y)
            torch.testing.assert_close(new[:, :t], base[:, :t], atol=0, rtol=0)  # the past: untouched
            assert (new[:, t + 1:t + 5] != base[:, t + 1:t + 5]).any(), "the next steps read x_t"
            torch.testing.assert_close(new[:, t + 5:], base[:, t + 5:], atol=0, rtol=0)  # beyond the field


def test_cached_sampling_equals_naive_sampling():
    model = _random_wavenet(40, 16, seed=6, scale=0.6, layers=3, stacks=2)
    a = model.sample(6, generator=torch.Generator().manual_seed(11))
    b = model.sample_naive(6, generator=torch.Generator().manual_seed(11))
    assert a.shape == (6, 40) and a.dtype == torch.float32
    assert torch.equal(a, b)
    assert set(a.unique().tolist()) <= set(model.centres.tolist())
    c = model.sample(6, generator=torch.Generator().manual_seed(12))
    assert not torch.equal(a, c)
    assert len({tuple(r) for r in a.tolist()}) == 6, "the rows are independent draws"


def test_sample_frequencies_match_the_probabilities():
    model = _random_wavenet(2, 3, seed=7, scale=1.0)
    n = 20000
    s = model.sample(n, generator=torch.Generator().manual_seed(1))
    bins = model.quantise(s)
    freq = torch.bincount(bins[:, 0] * 3 + bins[:, 1], minlength=9).double() / n
    x = _all_centre_sequences(model)
    with torch.no_grad():
        probs = (model.pixel_log_prob(x) + model.log_widths[model.quantise(x)]).sum(1).double().exp()
    assert (freq - probs).abs().max().item() < 0.02, (freq, probs)


def test_complete_keeps_the_known_values():
    t = 24
    model = _random_wavenet(t, 16, seed=8, scale=0.5)
    x = _random_sequences(model, 2, seed=3)
    x0 = x.clone()
    known = torch.zeros(2, t, dtype=torch.bool)
    known[:, :10] = True
    known[1, 15] = True  # any mask: a known step after unknown ones
    n = 4
    out = model.complete(x, known, n=n, generator=torch.Generator().manual_seed(0))
    assert out.shape == (2 * n, t)
    for i in range(2):
        cands = out[i * n:(i + 1) * n]
        assert torch.equal(cands[:, known[i]], x[i, known[i]].expand(n, -1)), "a known value was changed"
        assert set(cands[:, ~known[i]].unique().tolist()) <= set(model.centres.tolist())
        assert len({tuple(c) for c in cands[:, ~known[i]].tolist()}) > 1, "all candidates are identical"
    assert torch.equal(x, x0), "the input was modified"
    one = model.complete(x[0], known[0], n=3, generator=torch.Generator().manual_seed(0))  # a (T,) input
    assert one.shape == (3, t) and torch.equal(one[:, :10], x[0, :10].expand(3, -1))


def test_complete_steps_report_the_conditionals_of_the_result():
    t = 18
    model = _random_wavenet(t, 8, seed=9, scale=0.7, layers=3)
    x = _random_sequences(model, 2, seed=4)
    known = torch.zeros(2, t, dtype=torch.bool)
    known[:, :7] = True
    known[0, 12] = True
    steps, ps = [], []
    for step in model.complete_steps(x, known, n=3, generator=torch.Generator().manual_seed(5)):
        steps.append((step.pixel, step.done, step.total))
        ps.append(step.p.clone())
        assert step.p.shape == (6, 8) and step.x.shape == (6, t)
        assert torch.all(step.x[:, step.pixel + 1:][~known.repeat_interleave(3, 0)[:, step.pixel + 1:]] == 0)
    assert [s[0] for s in steps] == list(range(7, t)), "every step unknown in some row, in time order"
    assert [s[1] for s in steps] == list(range(1, t - 6)) and {s[2] for s in steps} == {t - 7}
    final = step.x
    same = model.complete(x, known, n=3, generator=torch.Generator().manual_seed(5))
    assert torch.equal(final, same)
    # each step's p is the model's conditional given the finished prefix (known values included)
    with torch.no_grad():
        want = torch.softmax(model.logits(model.quantise(final)), 2)
    for (pixel, _, _), p in zip(steps, ps):
        torch.testing.assert_close(p.sum(1), torch.ones(6))
        torch.testing.assert_close(p, want[:, pixel], atol=1e-5, rtol=1e-4)


def test_nothing_to_draw():
    model = _random_wavenet(6, 4, seed=1)
    x = _random_sequences(model, 1, seed=5)
    known = torch.ones_like(x, dtype=torch.bool)
    assert list(model.complete_steps(x, known, n=2)) == []
    assert torch.equal(model.complete(x, known, n=2), x.expand(2, -1))


def test_training_lowers_the_held_out_nll():
    torch.manual_seed(0)
    ds = datasets.load("waves", n=256, seed=0)
    model = registry.create("wavenet", ds.shape, ds.kind, levels=16, channels=8, skip_channels=16,
                            layers=4, stacks=1, batch_size=32, lr=1e-2)
    cfg = TrainConfig(max_steps=30, eval_every=10, eval_size=64, visuals_every_s=None, device="cpu")
    snaps = list(Trainer(model, ds, cfg).run())
    assert snaps[-1].event == "finished", snaps[-1].message
    nll = [s.nll.nats for s in snaps if s.event in ("eval", "finished")]
    assert len(nll) == 3 and all(math.isfinite(v) for v in nll)
    uniform = 128 * math.log(2)  # the NLL of the uniform density on [-1, 1]^128
    assert nll[-1] < nll[0] and nll[-1] < uniform - 50, nll


def test_visuals_are_a_few_curves():
    model = _random_wavenet(10, 4, seed=2)
    vis = model.visuals(64, generator=torch.Generator().manual_seed(0))
    assert vis.samples.shape == (16, 10) and vis.samples.dtype == np.float32


def test_checkpoint_round_trip(tmp_path):
    model = _random_wavenet(12, 8, seed=3, mu_law=True)
    path = save_checkpoint(tmp_path / "w.safetensors", model)
    loaded, meta = load_checkpoint(path, family="wavenet")
    x = _random_sequences(model, 4, seed=6)
    with torch.no_grad():
        torch.testing.assert_close(loaded.log_prob(x), model.log_prob(x))
    assert meta.hparams["mu_law"] is True and torch.equal(loaded.edges, model.edges)
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    assert torch.equal(loaded.sample(3, generator=g1), model.sample(3, generator=g2))


# --------------------------------------------------------------------------------------------
# bad inputs
# --------------------------------------------------------------------------------------------


def test_bad_inputs_are_value_errors():
    model = _random_wavenet(6, 4, seed=0)
    with pytest.raises(ValueError, match=r"\(N, 6\)"):
        model.log_prob(torch.zeros(2, 7))
    with pytest.raises(ValueError, match="NaN"):
        model.log_prob(torch.tensor([[0.0, math.nan, 0, 0, 0, 0]]))
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        model.pixel_log_prob(torch.tensor([[0.0, 1.5, 0, 0, 0, 0]]))
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):  # a known value outside the support
        model.complete(torch.full((1, 6), 2.0), torch.ones(1, 6, dtype=torch.bool))
    with pytest.raises(ValueError, match="mask"):
        model.complete(torch.zeros(1, 6), torch.ones(1, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="at least 1"):
        model.complete(torch.zeros(1, 6), torch.zeros(1, 6, dtype=torch.bool), n=0)
    for fn in (model.sample, model.sample_naive):
        with pytest.raises(ValueError, match="at least 1"):
            fn(0)
    with pytest.raises(ValueError, match="levels"):
        registry.create("wavenet", (6,), levels=1)
    with pytest.raises(ValueError, match="sequences"):
        registry.create("wavenet", (2, 3))
    with pytest.raises(ValueError, match="sequence"):
        registry.create("wavenet", (784,), DataKind.BINARY_IMAGE)


def test_unknown_steps_may_hold_anything():
    # completion_inputs zeroes the unknown steps: a NaN there is not the caller's error
    model = _random_wavenet(5, 4, seed=0)
    x = torch.tensor([[0.2, 0.3, math.nan, math.inf, 5.0]])
    known = torch.tensor([[True, True, False, False, False]])
    out = model.complete(x, known, n=2, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(out).all() and torch.equal(out[:, :2], x[:, :2].expand(2, -1))
