"""GAN, denoising autoencoder, inversion sampling and neural CDF regression: real behaviour on
tiny data sets of their own (each training here is a second or less)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from core import registry
from core.checkpoint import load_checkpoint, save_checkpoint
from core.evaluation import evaluate
from core.training import Snapshot, TrainConfig, Trainer
from core.data import Dataset
from core.protocol import DataKind, NonFiniteError, cell_area, grid_points

CDF_FAMILIES = ("inversion", "neural_cdf")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny networks: one intra-op thread is fastest, and on a busy 2-core machine several
    threads spin against each other (a 2 s test took 25 s)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# --------------------------------------------------------------------------------------------
# tiny data
# --------------------------------------------------------------------------------------------

def _mixture_1d(n: int, seed: int) -> np.ndarray:
    """Two gaussians, N(-2, 0.5) w.p. 0.4 and N(1.5, 0.8) w.p. 0.6, float32 (n, 1)."""
    rng = np.random.default_rng(seed)
    left = rng.random(n) < 0.4
    x = np.where(left, -2 + 0.5 * rng.standard_normal(n), 1.5 + 0.8 * rng.standard_normal(n))
    return x.astype(np.float32).reshape(-1, 1)


def _mixture_1d_logpdf(x: np.ndarray) -> np.ndarray:
    def logn(x, m, s):
        return -0.5 * ((x - m) / s) ** 2 - math.log(s) - 0.5 * math.log(2 * math.pi)
    return np.logaddexp(math.log(0.4) + logn(x, -2, 0.5), math.log(0.6) + logn(x, 1.5, 0.8))


FOUR_MODES = np.array([[-2.0, -2.0], [-2.0, 2.0], [2.0, -2.0], [2.0, 2.0]], np.float32)


def _four_modes(n: int, seed: int, std: float = 0.1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = FOUR_MODES[rng.integers(0, 4, n)] + std * rng.standard_normal((n, 2))
    return x.astype(np.float32)


def _dataset_1d(n: int = 400) -> Dataset:
    return Dataset("mix1d", DataKind.POINTS_1D, _mixture_1d(n, 0), _mixture_1d(300, 1))


def _dataset_2d(n: int = 512) -> Dataset:
    return Dataset("four", DataKind.POINTS_2D, _four_modes(n, 0), _four_modes(200, 1),
                   meta={"bounds": ((-4.0, 4.0), (-4.0, 4.0))})


def _train(model, ds: Dataset, steps: int, eval_every: int = 0) -> list[Snapshot]:
    cfg = TrainConfig(max_steps=steps, eval_every=eval_every, visuals_every_s=None, device="cpu")
    return list(Trainer(model, ds, cfg).run())


def _ks(samples: np.ndarray, cdf) -> float:
    """Kolmogorov-Smirnov distance between a sample and a CDF (a callable on float64 arrays)."""
    s = np.sort(samples.reshape(-1).astype(np.float64))
    f = cdf(s)
    n = len(s)
    return float(max((np.arange(1, n + 1) / n - f).max(), (f - np.arange(n) / n).max()))


def _fitted(key: str, **hp):
    torch.manual_seed(0)
    ds = _dataset_1d()
    model = registry.create(key, (1,), DataKind.POINTS_1D, **hp)
    _train(model, ds, 1 if key == "inversion" else 4)
    return model, ds


# --------------------------------------------------------------------------------------------
# inversion sampling and neural CDF regression (exact 1D likelihoods)
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fitted():
    return {key: _fitted(key) for key in CDF_FAMILIES}


@pytest.mark.parametrize("key", CDF_FAMILIES)
def test_cdf_density_integrates_to_one(fitted, key):
    model, ds = fitted[key]
    lo, hi = float(ds.train.min()) - 15, float(ds.train.max()) + 15
    res = 60000
    d = model.density_grid([(lo, hi)], res)
    assert d.shape == (res,) and d.dtype == np.float32 and np.isfinite(d).all() and (d >= 0).all()
    assert d.sum() * cell_area([(lo, hi)], res) == pytest.approx(1.0, abs=2e-3)
    # finite log density everywhere, far out included
    lp = model.log_prob(torch.tensor([[-40.0], [0.0], [40.0]]))
    assert torch.isfinite(lp).all()


@pytest.mark.parametrize("key", CDF_FAMILIES)
def test_cdf_is_monotone_from_0_to_1_and_matches_density(fitted, key):
    model, ds = fitted[key]
    x = torch.linspace(-12, 12, 4001, dtype=torch.float64)
    c = model.cdf(x).numpy()
    assert (np.diff(c) >= -1e-12).all()
    assert c[0] < 1e-3 and c[-1] > 1 - 1e-3
    # the CDF's increments are the density's integral over each interval
    dens = model.log_prob(x.float().reshape(-1, 1)).double().exp().numpy()
    h = float(x[1] - x[0])
    mid = 0.5 * (dens[1:] + dens[:-1]) * h
    assert np.abs(np.cumsum(mid) - (c[1:] - c[0])).max() < 5e-3


@pytest.mark.parametrize("key", CDF_FAMILIES)
def test_cdf_samples_follow_the_fitted_cdf(fitted, key):
    model, ds = fitted[key]
    s = model.sample(4000, generator=torch.Generator().manual_seed(0))
    assert s.shape == (4000, 1) and s.dtype == torch.float32 and torch.isfinite(s).all()
    ks = _ks(s.numpy(), lambda v: model.cdf(torch.from_numpy(v)).numpy())
    assert ks < 0.03  # the 1 % critical value for n = 4000 is 0.026
    # and the fit follows the data: KS against the data's empirical distribution
    assert _ks(ds.train, lambda v: model.cdf(torch.from_numpy(v)).numpy()) < 0.05
    a = model.sample(50, generator=torch.Generator().manual_seed(3))
    b = model.sample(50, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


@pytest.mark.parametrize("key", CDF_FAMILIES)
def test_cdf_training_through_the_trainer_lowers_held_out_nll(key):
    torch.manual_seed(0)
    ds = _dataset_1d()
    model = registry.create(key, (1,), DataKind.POINTS_1D)
    before = evaluate(model, ds.valid).nats
    snaps = _train(model, ds, 1 if key == "inversion" else 4, eval_every=1)
    after = evaluate(model, ds.valid).nats
    assert snaps[-1].event == "finished" and math.isfinite(snaps[-1].nll.nats)
    assert after < before - 0.3
    truth = float(-_mixture_1d_logpdf(ds.valid.astype(np.float64)[:, 0]).mean())
    assert after < truth + 0.25  # close to the true density's held-out NLL


@pytest.mark.parametrize("key", CDF_FAMILIES)
def test_cdf_far_points_cost_a_bounded_amount(fitted, key):
    # exponential tails: a held-out point far beyond the training range is unlikely, not impossible
    model, ds = fitted[key]
    far = torch.tensor([[float(ds.train.min()) - 20.0], [float(ds.train.max()) + 20.0]])
    lp = model.log_prob(far)
    assert torch.isfinite(lp).all() and (lp > -120).all(), lp


@pytest.mark.parametrize("key", CDF_FAMILIES)
def test_cdf_visuals(fitted, key):
    model, _ = fitted[key]
    v = model.visuals(32, generator=torch.Generator().manual_seed(0), bounds=((-5.0, 5.0),), res=50)
    assert set(v.as_dict()) == {"samples", "density", "cdf"}
    for arr in v.as_dict().values():
        assert arr.dtype == np.float32 and arr.flags.c_contiguous and np.isfinite(arr).all()
    assert v.samples.shape == (32, 1) and v.density.shape == (50,) and v.cdf.shape == (50,)
    assert (np.diff(v.cdf) >= 0).all() and 0 <= v.cdf.min() and v.cdf.max() <= 1


@pytest.mark.parametrize("key", CDF_FAMILIES)
@pytest.mark.parametrize("bad, why", [
    (np.zeros((0, 1), np.float32), "empty"),
    (np.array([[1.5]], np.float32), "at least 2"),
    (np.array([[1.0], [np.nan], [2.0]], np.float32), "NaN"),
    (np.full((10, 1), 3.0, np.float32), "equal"),
])
def test_cdf_bad_data_raise_value_error(key, bad, why):
    model = registry.create(key, (1,))
    model.configure_optimizer(model.hparams["lr"])
    with pytest.raises(ValueError, match=why):
        model.train_step(torch.from_numpy(bad))


def test_cdf_nan_through_the_trainer_is_a_value_error():
    ds = Dataset("bad", DataKind.POINTS_1D, np.array([[0.0], [np.nan], [1.0]], np.float32),
                 np.array([[0.5]], np.float32))
    with pytest.raises(ValueError, match="NaN"):
        _train(registry.create("inversion", (1,)), ds, 1)


@pytest.mark.parametrize("key, hp", [
    ("inversion", {"knots": -1}), ("inversion", {"tail": 0.0}), ("inversion", {"tail": 0.9}),
    ("neural_cdf", {"hidden": 0}), ("neural_cdf", {"penalty": -1.0}), ("neural_cdf", {"iters": 1.5}),
])
def test_cdf_bad_hparams(key, hp):
    with pytest.raises(ValueError):
        registry.create(key, (1,), **hp)


@pytest.mark.parametrize("key", CDF_FAMILIES)
def test_cdf_families_take_only_1d(key):
    with pytest.raises(ValueError):
        registry.create(key, (2,), DataKind.POINTS_2D)
    with pytest.raises(ValueError):
        registry.create(key, (2,))


@pytest.mark.parametrize("key", CDF_FAMILIES)
def test_cdf_checkpoint_round_trip(fitted, tmp_path, key):
    model, ds = fitted[key]
    path = save_checkpoint(tmp_path / f"{key}.safetensors", model)
    loaded, meta = load_checkpoint(path, family=key)
    x = torch.linspace(-6, 6, 101).reshape(-1, 1)
    torch.testing.assert_close(loaded.log_prob(x), model.log_prob(x))
    g = lambda: torch.Generator().manual_seed(5)  # noqa: E731
    assert torch.equal(loaded.sample(20, generator=g()), model.sample(20, generator=g()))


def test_inversion_default_knots_follow_the_histogram_rule():
    x = torch.from_numpy(_mixture_1d(500, 0))
    model = registry.create("inversion", (1,))
    model.train_step(x)
    assert len(model.knots) == 17  # 2 * 500^(1/3) = 15.9 -> 16 intervals


def test_inversion_knots_control_smoothness():
    ds = _dataset_1d()
    full = registry.create("inversion", (1,), knots=100000)
    full.train_step(torch.from_numpy(ds.train))
    assert len(full.knots) == len(np.unique(ds.train))  # every order statistic is a knot
    coarse = registry.create("inversion", (1,), knots=4)
    coarse.train_step(torch.from_numpy(ds.train))
    assert len(coarse.knots) == 5
    # the empirical quantiles are interpolated exactly (tail mass aside)
    t = coarse.hparams["tail"]
    levels = (coarse.cdf(coarse.knots) - t / 2) / (1 - t)
    torch.testing.assert_close(levels, torch.linspace(0, 1, 5, dtype=torch.float64))


def test_inversion_handles_ties():
    x = torch.tensor([[1.0], [2.0], [2.0], [3.0], [3.0], [3.0], [4.0], [7.0]])
    model = registry.create("inversion", (1,), knots=1000)
    model.train_step(x)
    assert torch.isfinite(model.log_prob(x)).all()
    lo, hi = -20.0, 30.0
    d = model.density_grid([(lo, hi)], 50000)
    assert d.sum() * cell_area([(lo, hi)], 50000) == pytest.approx(1.0, abs=2e-3)


def test_neural_cdf_penalty_keeps_the_fit_monotone():
    model, ds = _fitted("neural_cdf", penalty=1000.0)
    lo, hi = float(model.lo), float(model.hi)
    g = torch.linspace(lo, hi, 2000, dtype=torch.float64)
    f, slope = model.F_and_slope(g)
    assert (torch.diff(f) > -1e-4).all()
    assert (slope > -1e-3).mean(dtype=torch.float64) > 0.99


def test_neural_cdf_nonfinite_loss_is_caught():
    model = registry.create("neural_cdf", (1,))
    model.configure_optimizer(1e-2)
    with torch.no_grad():
        model.net[0].weight.fill_(float("nan"))
    with pytest.raises(NonFiniteError):
        model.train_step(torch.from_numpy(_mixture_1d(50, 0)))


# --------------------------------------------------------------------------------------------
# GAN
# --------------------------------------------------------------------------------------------

SMALL_GAN = dict(hidden=32, layers=2, batch_size=64, lr=2e-3, r1=0.1)


def _mode_distance(x: np.ndarray) -> float:
    return float(np.sqrt(((x[:, None, :] - FOUR_MODES[None]) ** 2).sum(-1)).min(1).mean())


@pytest.mark.parametrize("pack", [1, 3])
def test_gan_training_moves_samples_to_the_modes(pack):
    torch.manual_seed(0)
    ds = _dataset_2d()
    model = registry.create("gan", (2,), DataKind.POINTS_2D, pack=pack, **SMALL_GAN)
    g = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    model.configure_optimizer(SMALL_GAN["lr"])
    model.train_step(torch.from_numpy(ds.train[:64]))  # sets the data's location and scale
    before = _mode_distance(model.sample(500, generator=g()).numpy())
    snaps = _train(model, ds, 400)
    after = _mode_distance(model.sample(500, generator=g()).numpy())
    assert snaps[-1].event == "finished"
    assert {"d_loss", "g_loss"} <= set(snaps[-1].metrics)
    assert math.isfinite(snaps[-1].loss)
    assert after < 0.5 * before, (before, after)


def test_gan_samples_and_discriminator_map():
    model = registry.create("gan", (2,), pack=2, **SMALL_GAN)
    s = model.sample(37, generator=torch.Generator().manual_seed(0))
    assert s.shape == (37, 2) and s.dtype == torch.float32 and torch.isfinite(s).all()
    v = model.visuals(16, generator=torch.Generator().manual_seed(0), bounds=((-3.0, 3.0), (-1.0, 2.0)), res=24)
    assert set(v.as_dict()) == {"samples", "disc"}  # no likelihood: no density
    d = v.disc
    assert d.shape == (24, 24) and d.dtype == np.float32 and d.flags.c_contiguous
    assert np.isfinite(d).all() and (d >= 0).all() and (d <= 1).all()
    # rows run along y: row r is D at the grid points r * res .. (r + 1) * res
    pts = torch.from_numpy(grid_points(((-3.0, 3.0), (-1.0, 2.0)), 24))
    np.testing.assert_allclose(d[5], model.discriminator_prob(pts[5 * 24:6 * 24]).numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(NotImplementedError):
        model.log_prob(s)


def test_gan_two_optimizers_and_live_lr():
    model = registry.create("gan", (2,), **SMALL_GAN)
    model.configure_optimizer(1e-3)
    assert model.opt_d is not None and model.optimizer is not model.opt_d
    d_ids = {id(p) for p in model.discriminator.parameters()}
    assert {id(p) for p in model.optimizer.param_groups[0]["params"]}.isdisjoint(d_ids)
    model.set_lr(5e-4)
    assert model.optimizer.param_groups[0]["lr"] == 5e-4 and model.opt_d.param_groups[0]["lr"] == 5e-4
    before_d = [p.detach().clone() for p in model.discriminator.parameters()]
    before_g = [p.detach().clone() for p in model.generator.parameters()]
    out = model.train_step(torch.from_numpy(_four_modes(64, 0)))
    assert set(out) == {"loss", "d_loss", "g_loss"}
    assert out["loss"] == pytest.approx(out["d_loss"] + out["g_loss"])
    assert any(not torch.equal(a, b) for a, b in zip(before_d, model.discriminator.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(before_g, model.generator.parameters()))
    # a batch shorter than a pack still trains
    packed = registry.create("gan", (2,), pack=4, **SMALL_GAN)
    packed.configure_optimizer(1e-3)
    assert math.isfinite(packed.train_step(torch.from_numpy(_four_modes(3, 0)))["loss"])


def test_gan_nonfinite_is_caught():
    model = registry.create("gan", (2,), **SMALL_GAN)
    model.configure_optimizer(1e-3)
    model.train_step(torch.from_numpy(_four_modes(64, 0)))
    with torch.no_grad():
        model.generator[0].weight.fill_(float("inf"))
    with pytest.raises(NonFiniteError):
        model.train_step(torch.from_numpy(_four_modes(64, 0)))
    with pytest.raises(ValueError, match="NaN"):
        model.train_step(torch.tensor([[0.0, float("nan")]] * 8))


@pytest.mark.parametrize("hp", [{"pack": 0}, {"hidden": 0}, {"latent_dim": 0}, {"d_steps": 11}, {"r1": -1.0}])
def test_gan_bad_hparams(hp):
    with pytest.raises(ValueError):
        registry.create("gan", (2,), **hp)


def test_gan_takes_only_2d():
    with pytest.raises(ValueError):
        registry.create("gan", (1,), DataKind.POINTS_1D)
    with pytest.raises(ValueError):
        registry.create("gan", (1,))


def test_gan_checkpoint_round_trip(tmp_path):
    model = registry.create("gan", (2,), pack=2, **SMALL_GAN)
    _train(model, _dataset_2d(), 5)
    path = save_checkpoint(tmp_path / "gan.safetensors", model)
    loaded, _ = load_checkpoint(path, family="gan")
    g = lambda: torch.Generator().manual_seed(9)  # noqa: E731
    assert torch.equal(loaded.sample(30, generator=g()), model.sample(30, generator=g()))
    pts = torch.randn(10, 2)
    torch.testing.assert_close(loaded.discriminator_prob(pts), model.discriminator_prob(pts))


def test_gan_mode_metrics_in_the_trainer():
    ds = _dataset_2d()
    ds.meta["modes"] = (FOUR_MODES, 0.1)
    cfg = TrainConfig(max_steps=4, eval_every=2, visuals_every_s=None, device="cpu", coverage_samples=300)
    snaps = list(Trainer(registry.create("gan", (2,), **SMALL_GAN), ds, cfg).run())
    m = snaps[-1].metrics
    assert m["n_modes"] == 4 and 0 <= m["modes_covered"] <= 4 and 0 <= m["high_quality"] <= 1


# --------------------------------------------------------------------------------------------
# denoising autoencoder
# --------------------------------------------------------------------------------------------

SMALL_DAE = dict(hidden=64, layers=2, batch_size=64, lr=3e-3, burn_in=20)


@pytest.mark.parametrize("dim", [1, 2])
def test_dae_reconstruction_error_falls_and_chain_samples(dim):
    torch.manual_seed(0)
    if dim == 2:
        ds = _dataset_2d()
    else:  # two well separated modes, at -2 and 2: a good denoiser does much better than identity
        x = _four_modes(600, 0)[:, :1]
        ds = Dataset("two", DataKind.POINTS_1D, x[:400], x[400:])
    model = registry.create("dae", (dim,), ds.kind, **SMALL_DAE)
    snaps = _train(model, ds, 250)
    mse = [s.metrics["recon_mse"] for s in snaps]
    assert all(math.isfinite(v) for v in mse)
    assert np.mean(mse[-20:]) < 0.5 * np.mean(mse[:5]), (mse[:5], mse[-20:])
    s = model.sample(300, generator=torch.Generator().manual_seed(0))
    assert s.shape == (300, dim) and s.dtype == torch.float32 and torch.isfinite(s).all()
    if dim == 2:  # the chain ends up near the data, not at the gaussian it starts from
        assert _mode_distance(s.numpy()) < 1.2


def test_dae_visuals_and_chain():
    model = registry.create("dae", (2,), **SMALL_DAE)
    _train(model, _dataset_2d(), 3)
    v = model.visuals(12, generator=torch.Generator().manual_seed(0), bounds=((-4.0, 4.0), (-4.0, 4.0)), res=16)
    assert set(v.as_dict()) == {"samples", "chain"}
    assert v.samples.shape == (12, 2)
    t = max(SMALL_DAE["burn_in"], 50) + 1
    assert v.chain.shape == (t, 2)
    for arr in v.as_dict().values():
        assert arr.dtype == np.float32 and arr.flags.c_contiguous and np.isfinite(arr).all()
    a = model.sample(10, generator=torch.Generator().manual_seed(4))
    b = model.sample(10, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b)


def test_dae_walkback_and_fixed_std():
    x = torch.from_numpy(_four_modes(64, 0))
    for hp in ({"walkback": 1}, {"walkback": 4, "recon_std": 0.2}):
        model = registry.create("dae", (2,), **{**SMALL_DAE, **hp})
        model.configure_optimizer(1e-3)
        out = model.train_step(x)
        assert math.isfinite(out["loss"]) and math.isfinite(out["recon_mse"])
    with pytest.raises(ValueError, match="NaN"):
        model.train_step(torch.tensor([[float("nan"), 0.0]] * 4))


@pytest.mark.parametrize("hp", [{"sigma": 0.0}, {"walkback": 0}, {"burn_in": 0}, {"recon_std": -0.1}])
def test_dae_bad_hparams(hp):
    with pytest.raises(ValueError):
        registry.create("dae", (2,), **hp)


def test_dae_checkpoint_round_trip(tmp_path):
    model = registry.create("dae", (2,), **SMALL_DAE)
    _train(model, _dataset_2d(), 5)
    path = save_checkpoint(tmp_path / "dae.safetensors", model)
    loaded, _ = load_checkpoint(path, family="dae")
    g = lambda: torch.Generator().manual_seed(9)  # noqa: E731
    assert torch.equal(loaded.sample(30, generator=g()), model.sample(30, generator=g()))
