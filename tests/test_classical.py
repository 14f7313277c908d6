"""Classical density estimation: histogram, KDE (+ adaptive), kNN density, gaussian, GMM (EM).

Every family: normalised on a grid, learns through the Trainer, samples, rejects bad inputs with
a clear ValueError, survives a checkpoint round trip. Plus: the histogram's cross-validated bin
count, the bandwidth rules against their formulas and ISJ against the AMISE-optimal bandwidth,
the FFT density grid against direct sums, EM's monotone likelihood.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from core import registry
from core.data import Dataset
from core.checkpoint import load_checkpoint, save_checkpoint
from core.training import TrainConfig, Trainer
from core.models import kde as kde_mod
from core.models.histogram import FLOOR_WEIGHT, cv_bins
from core.protocol import DataKind, cell_area, grid_points

# (family, hparams) for every model; the kNN and the histogram are piecewise / kinked, so their
# grid integrals are looser
MODELS = [
    ("histogram", {}),
    ("histogram", {"bins_rule": "manual", "bins": 12}),
    ("kde", {}),
    ("kde", {"kernel": "epanechnikov", "bandwidth_rule": "silverman"}),
    ("kde", {"bandwidth_rule": "manual", "bandwidth": 0.3}),
    ("adaptive_kde", {}),
    ("knn", {"k": 10}),
    ("gaussian", {}),
    ("gmm", {"components": 3}),
]
IDS = [f"{k}-{'-'.join(f'{a}={b}' for a, b in hp.items()) or 'default'}" for k, hp in MODELS]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One torch thread: the test machines are small and shared (spinning threads crawl)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def mixture(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """Two well separated gaussians (1D: at -2 and 2, std 0.5; 2D: at (-2, 0) and (2, 1))."""
    rng = np.random.default_rng(seed)
    centres = np.array([[-2.0, 0.0], [2.0, 1.0]])[:, :dim]
    x = centres[rng.integers(0, 2, n)] + 0.5 * rng.standard_normal((n, dim))
    return x.astype(np.float32)


def dataset(dim: int, n: int = 300, seed: int = 0) -> Dataset:
    x = mixture(n + 200, dim, seed)
    kind = DataKind.POINTS_1D if dim == 1 else DataKind.POINTS_2D
    return Dataset(f"mix{dim}d", kind, x[:n], x[n:])


def fitted(key: str, hp: dict, dim: int, n: int = 300, steps: int = 1):
    model = registry.create(key, (dim,), **hp)
    x = torch.from_numpy(dataset(dim, n).train)
    for _ in range(steps):
        model.train_step(x)
    return model


def grid_mass(model, dim: int, res2d: int = 200) -> float:
    bounds = [(-12.0, 12.0)] if dim == 1 else [(-8.0, 8.0), (-7.0, 8.0)]
    res = 12000 if dim == 1 else res2d
    pts = torch.from_numpy(grid_points(bounds, res))
    with torch.no_grad():
        lp = torch.cat([model.log_prob(pts[i:i + 16384]) for i in range(0, len(pts), 16384)])
    assert torch.isfinite(lp).all()
    return float(lp.double().exp().sum() * cell_area(bounds, res))


# --------------------------------------------------------------------------------------------
# every family
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dim", [1, 2])
@pytest.mark.parametrize("key,hp", MODELS, ids=IDS)
def test_density_integrates_to_one(key, hp, dim):
    model = fitted(key, hp, dim, steps=5 if key == "gmm" else 1)
    tol = 0.02 if key in ("histogram", "knn") else 2e-3
    # the histogram's jumps need a fine grid (a cell straddling a bin edge is misjudged)
    assert grid_mass(model, dim, 600 if key == "histogram" else 200) == pytest.approx(1.0, abs=tol)


@pytest.mark.parametrize("key,hp", MODELS, ids=IDS)
def test_unfitted_model_is_a_standard_normal(key, hp):
    model = registry.create(key, (2,), **hp)
    x = torch.randn(5, 2)
    expected = -0.5 * (x ** 2).sum(1) - math.log(2 * math.pi)
    torch.testing.assert_close(model.log_prob(x), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("key,hp", MODELS, ids=IDS)
def test_trainer_lowers_held_out_nll(key, hp):
    ds = dataset(2, n=300)
    model = registry.create(key, ds.shape, ds.kind, **hp)
    valid = torch.from_numpy(ds.valid)
    before = -model.log_prob(valid).double().mean().item()
    steps = 25
    trainer = Trainer(model, ds, TrainConfig(max_steps=steps, eval_every=5, visuals_every_s=None, device="cpu"))
    snaps = list(trainer.run())
    assert snaps[-1].event == "finished" and snaps[-1].step == steps
    assert all(math.isfinite(s.loss) for s in snaps if s.event in ("step", "eval", "finished"))
    after = trainer.nll.nats
    assert after == pytest.approx(-model.log_prob(valid).double().mean().item(), rel=1e-5)
    assert after < before - 0.3, (before, after)
    assert after < 3.2  # the mixture's entropy is ~2.2 nats; a single gaussian scores ~3.3


@pytest.mark.parametrize("dim", [1, 2])
@pytest.mark.parametrize("key,hp", MODELS, ids=IDS)
def test_samples_shape_finite_seeded_and_plausible(key, hp, dim):
    model = fitted(key, hp, dim, steps=5 if key == "gmm" else 1)
    a = model.sample(2000, generator=torch.Generator().manual_seed(3))
    b = model.sample(2000, generator=torch.Generator().manual_seed(3))
    assert a.shape == (2000, dim) and a.dtype == torch.float32
    assert torch.isfinite(a).all() and torch.equal(a, b)
    data = torch.from_numpy(dataset(dim).train)
    assert torch.allclose(a.mean(0), data.mean(0), atol=0.2)
    assert torch.allclose(a.std(0), data.std(0), rtol=0.25)  # the kNN's 1/r^D tails widen it
    # each mode gets its share
    assert float((a[:, 0] > 0).float().mean()) == pytest.approx(float((data[:, 0] > 0).float().mean()), abs=0.05)


@pytest.mark.parametrize("key,hp", MODELS, ids=IDS)
def test_visuals_give_density_and_samples(key, hp):
    model = fitted(key, hp, 2, steps=3 if key == "gmm" else 1)
    bounds = ((-4.0, 4.0), (-3.0, 4.0))
    v = model.visuals(16, generator=torch.Generator().manual_seed(0), bounds=bounds, res=48)
    assert v.samples.shape == (16, 2) and v.density.shape == (48, 48)
    for arr in v.as_dict().values():
        assert arr.dtype == np.float32 and arr.flags.c_contiguous and np.isfinite(arr).all()
    assert v.density.sum() * cell_area(bounds, 48) == pytest.approx(1.0, abs=0.06)


@pytest.mark.parametrize("dim", [1, 2])
@pytest.mark.parametrize("key,hp", MODELS, ids=IDS)
def test_checkpoint_round_trip(key, hp, dim, tmp_path):
    model = fitted(key, hp, dim, steps=4 if key == "gmm" else 1)
    path = save_checkpoint(tmp_path / f"{key}.safetensors", model)
    loaded, meta = load_checkpoint(path, family=key)
    x = torch.from_numpy(mixture(50, dim, seed=9))
    torch.testing.assert_close(loaded.log_prob(x), model.log_prob(x), atol=0, rtol=0)
    s1 = loaded.sample(20, generator=torch.Generator().manual_seed(1))
    s2 = model.sample(20, generator=torch.Generator().manual_seed(1))
    assert torch.equal(s1, s2)


@pytest.mark.parametrize("key,hp", MODELS, ids=IDS)
def test_unfitted_checkpoint_round_trip(key, hp, tmp_path):
    model = registry.create(key, (2,), **hp)
    loaded, _ = load_checkpoint(save_checkpoint(tmp_path / "u.safetensors", model))
    x = torch.randn(7, 2)
    torch.testing.assert_close(loaded.log_prob(x), model.log_prob(x))


@pytest.mark.parametrize("key,hp", MODELS, ids=IDS)
def test_one_point_and_nan_data_are_rejected(key, hp):
    model = registry.create(key, (2,), **hp)
    with pytest.raises(ValueError, match="at least 2 training points"):
        model.train_step(torch.zeros(1, 2))
    bad = torch.from_numpy(mixture(50, 2))
    bad[3, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        model.train_step(bad)


@pytest.mark.parametrize("key", ["histogram", "kde", "adaptive_kde", "knn"])
def test_identical_points_are_rejected(key):
    model = registry.create(key, (2,))
    x = torch.tensor([[1.0, 2.0]] * 30) + torch.tensor([[0.0, 1.0]]) * torch.arange(30.0)[:, None]
    with pytest.raises(ValueError, match="same x value"):
        model.train_step(x)


def test_held_out_point_outside_support_gets_the_floor():
    for key, hp in [("histogram", {}), ("kde", {"kernel": "epanechnikov"}), ("knn", {})]:
        model = fitted(key, hp, 1)
        far = torch.tensor([[40.0]])
        lp = model.log_prob(far)
        assert torch.isfinite(lp).all()
        mean, std = model.floor_mean, model.floor_std
        expected = math.log(FLOOR_WEIGHT) - 0.5 * float(((far - mean) / std) ** 2) - math.log(
            math.sqrt(2 * math.pi) * float(std))
        assert float(lp) == pytest.approx(expected, abs=1e-4), key


@pytest.mark.parametrize("key,hp", [("histogram", {}), ("kde", {}), ("kde", {"kernel": "epanechnikov"}),
                                    ("adaptive_kde", {"k": 3}), ("knn", {"k": 5}), ("gmm", {"components": 4})])
def test_density_grid_keeps_the_mass_of_structure_finer_than_a_pixel(key, hp):
    # four tight clusters (std 0.003) seen through 0.2-wide pixels: point values would miss or
    # blow up the peaks; the grids show each pixel's mass instead
    rng = np.random.default_rng(0)
    centres = np.array([[-2.0, -2.0], [-2.0, 2.0], [2.0, -2.0], [2.0, 2.0]])
    x = torch.from_numpy((centres[rng.integers(0, 4, 400)] + 0.003 * rng.standard_normal((400, 2))).astype(np.float32))
    model = registry.create(key, (2,), **hp)
    for _ in range(10 if key == "gmm" else 1):
        model.train_step(x)
    bounds = ((-4.5, 4.5), (-4.5, 4.5))
    grid = model.density_grid(bounds, 45)
    assert np.isfinite(grid).all() and (grid >= 0).all()
    inside = 1.0
    if key == "adaptive_kde":  # its tail kernels are wide: some mass lies outside the view
        w = model.scale[:, None].double() * model.bandwidth.double()
        p = model.points.double()
        inside = float((torch.special.ndtr((4.5 - p) / w) - torch.special.ndtr((-4.5 - p) / w)).prod(1).mean())
    assert grid.sum() * cell_area(bounds, 45) == pytest.approx(inside, abs=0.02)


def test_histogram_grid_is_the_pixel_average():
    model = fitted("histogram", {"bins_rule": "manual", "bins": 5}, 1)
    lo, h = float(model.lo[0]), float(model.width)
    bounds = [(lo, lo + 6 * h)]  # 4 pixels per bin: each pixel inside one bin shows its density
    grid = model.density_grid(bounds, 24)
    centres = torch.from_numpy(grid_points(bounds, 24))
    np.testing.assert_allclose(grid, model.log_prob(centres).exp().numpy(), rtol=1e-5, atol=1e-9)
    coarse = model.density_grid(bounds, 4)  # 1.5 bins per pixel: averages
    expected = [(float(model.mass[0]) + 0.5 * float(model.mass[1])) / (1.5 * h),
                (0.5 * float(model.mass[1]) + float(model.mass[2])) / (1.5 * h),
                (float(model.mass[3]) + 0.5 * float(model.mass[4])) / (1.5 * h),
                (0.5 * float(model.mass[4]) + float(model.mass[5])) / (1.5 * h)]
    np.testing.assert_allclose(coarse, expected, rtol=1e-5, atol=1e-7)


# --------------------------------------------------------------------------------------------
# histogram
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dim", [1, 2])
def test_cv_picks_fewer_bins_for_fewer_points(dim):
    few, _ = cv_bins(torch.from_numpy(mixture(100, dim, seed=1)), 200)
    many, _ = cv_bins(torch.from_numpy(mixture(20000, dim, seed=1)), 200)
    assert 2 <= few < many, (few, many)


def test_cv_risk_matches_the_formula():
    x = torch.tensor([[0.0], [0.1], [0.35], [0.4], [1.0]])
    from core.models.histogram import cv_risk
    # 4 bins across [0, 1] padded by half a bin: width 0.25, edges -0.125, 0.125, 0.375, ...
    # counts per bin: {0, 0.1}, {0.35}, {0.4}, {}, {1.0}
    n, h = 5, 0.25
    p = np.array([2, 1, 1, 0, 1]) / n
    expected = 2 / ((n - 1) * h) - (n + 1) / ((n - 1) * h) * (p ** 2).sum()
    assert cv_risk(x, x.min(0).values, x.max(0).values - x.min(0).values, 4) == pytest.approx(expected)


def test_manual_bins_and_piecewise_constant_density():
    model = fitted("histogram", {"bins_rule": "manual", "bins": 7}, 1)
    assert int(model.nbins[0]) == 8  # 7 across the data, plus half a bin each side
    x = torch.from_numpy(dataset(1).train)
    lo, h = float(model.lo[0]), float(model.width)
    counts = torch.bincount(torch.floor((x[:, 0] - lo) / h).long(), minlength=8).double()
    centres = torch.tensor([[lo + (j + 0.5) * h] for j in range(8)])
    dens = model.log_prob(centres).double().exp()
    expected = (1 - FLOOR_WEIGHT) * counts / (len(x) * h)
    torch.testing.assert_close(dens, expected, atol=1e-6, rtol=1e-4)


# --------------------------------------------------------------------------------------------
# KDE
# --------------------------------------------------------------------------------------------


def test_scott_and_silverman_follow_their_formulas():
    x = mixture(500, 2, seed=4).astype(np.float64)
    n = len(x)
    sigma = x.std(0, ddof=1)
    np.testing.assert_allclose(kde_mod.scott_bandwidth(x), sigma * n ** (-1 / 6))
    iqr = np.percentile(x, 75, 0) - np.percentile(x, 25, 0)
    np.testing.assert_allclose(kde_mod.silverman_bandwidth(x), 0.9 * np.minimum(sigma, iqr / 1.34) * n ** (-1 / 6))
    x1 = x[:, :1]
    np.testing.assert_allclose(kde_mod.scott_bandwidth(x1), x1.std(ddof=1) * n ** (-1 / 5))
    # through the model: the stored bandwidth is the rule's
    model = registry.create("kde", (2,), bandwidth_rule="scott")
    model.train_step(torch.from_numpy(x.astype(np.float32)))
    np.testing.assert_allclose(model.bandwidth.numpy(), kde_mod.scott_bandwidth(x.astype(np.float32)), rtol=1e-5)


def _amise_bandwidth(weights, means, stds, n):
    """(R(K) / (n R(f'')))^(1/5) for a gaussian kernel and a gaussian-mixture f, with
    R(f'') = sum_ij w_i w_j phi''''(mu_i - mu_j; s_i^2 + s_j^2)."""
    def phi4(x, var):
        z2 = x * x / var
        return math.exp(-z2 / 2) / math.sqrt(2 * math.pi * var) * (z2 * z2 - 6 * z2 + 3) / var ** 2
    r = sum(wi * wj * phi4(mi - mj, si ** 2 + sj ** 2) for wi, mi, si in zip(weights, means, stds)
            for wj, mj, sj in zip(weights, means, stds))
    return (1 / (2 * math.sqrt(math.pi)) / (n * r)) ** 0.2


@pytest.mark.parametrize("seed", [0, 1])
def test_isj_is_close_to_the_amise_optimum_on_a_bimodal_sample(seed):
    n = 2000
    rng = np.random.default_rng(seed)
    x = np.where(rng.random(n) < 0.5, -3.0, 3.0) + rng.standard_normal(n)
    h, fell_back = kde_mod.isj_bandwidth_1d(x)
    best = _amise_bandwidth([0.5, 0.5], [-3, 3], [1, 1], n)  # 0.2543
    assert not fell_back
    assert h == pytest.approx(best, rel=0.15)
    assert h < 0.5 * kde_mod.silverman_bandwidth(x[:, None])[0]  # Silverman sees one wide blob


def test_isj_2d_is_per_axis_and_sensible():
    rng = np.random.default_rng(0)
    n = 2000
    x = np.stack([np.where(rng.random(n) < 0.5, -3.0, 3.0) + rng.standard_normal(n),
                  0.3 * rng.standard_normal(n)], 1)
    (hx, hy), fell_back = kde_mod.isj_bandwidth_2d(x)
    assert not fell_back
    scott = kde_mod.scott_bandwidth(x)
    assert hx < 0.6 * scott[0]  # bimodal along x: much narrower than the normal reference
    assert hy == pytest.approx(scott[1], rel=0.35)  # gaussian along y: close to it
    assert hy < hx


def test_isj_falls_back_on_lattice_data():
    x = torch.tensor(np.repeat(np.arange(5.0), 40)[:, None], dtype=torch.float32)
    model = registry.create("kde", (1,))
    out = model.train_step(x)
    assert out["isj_fallback"] == 1.0
    assert float(model.bandwidth[0]) == pytest.approx(float(kde_mod.silverman_bandwidth(x.numpy())[0]), rel=1e-5)


@pytest.mark.parametrize("dim,res", [(1, 300), (2, 64)])
@pytest.mark.parametrize("rule", ["scott", "isj"])
def test_fft_grid_matches_direct_sums(dim, res, rule):
    x = torch.from_numpy(mixture(3000, dim, seed=2))
    model = registry.create("kde", (dim,), bandwidth_rule=rule)
    model.train_step(x)
    bounds = [(-4.5, 4.0)] if dim == 1 else [(-4.5, 4.0), (-2.5, 3.0)]  # cuts through the data
    grid = model.density_grid(bounds, res)
    assert grid.shape == (res,) * dim and grid.dtype == np.float32
    pts = torch.from_numpy(grid_points(bounds, res)).double()
    exact = kde_mod.kde_log_prob(pts, model.points.double(), model.bandwidth.double()).exp().numpy()
    err = np.abs(grid.reshape(-1) - exact).max() / exact.max()
    assert err <= 1e-3, err


def test_fft_grid_epanechnikov_and_points_outside_the_view():
    x = torch.from_numpy(mixture(2000, 2, seed=5))
    h = torch.tensor([0.4, 0.3])
    bounds = [(-1.0, 1.5), (-1.0, 1.0)]  # most points lie outside: they still contribute
    pts = torch.from_numpy(grid_points(bounds, 40)).double()
    for kernel, tol in [("gaussian", 1e-3), ("epanechnikov", 1e-2)]:
        grid = kde_mod.fft_density_grid(x, h, kernel, bounds, 40)
        exact = kde_mod.kde_log_prob(pts, x.double(), h.double(), kernel).exp()
        err = float((grid.reshape(-1) - exact).abs().max() / exact.max())
        assert err <= tol, (kernel, err)


def test_fft_grid_counts_points_beyond_the_padding():
    # a huge bandwidth: the padding is capped, points farther out are added directly
    x = torch.tensor([[-30.0, 0.0], [0.0, 0.0], [25.0, 5.0]])
    h = torch.tensor([8.0, 8.0])
    bounds = [(-1.0, 1.0), (-1.0, 1.0)]
    grid = kde_mod.fft_density_grid(x, h, "gaussian", bounds, 16)
    pts = torch.from_numpy(grid_points(bounds, 16)).double()
    exact = kde_mod.kde_log_prob(pts, x.double(), h.double()).exp()
    assert float((grid.reshape(-1) - exact).abs().max() / exact.max()) <= 1e-3


def test_kde_log_prob_is_the_kernel_average():
    model = registry.create("kde", (2,), bandwidth_rule="manual", bandwidth=0.5)
    x = torch.tensor([[0.0, 0.0], [1.0, 2.0], [3.0, -1.0]])
    model.train_step(x)
    q = torch.tensor([[0.5, 0.5], [2.0, 0.0]])
    expected = torch.stack([
        torch.stack([torch.distributions.Normal(p, 0.5).log_prob(qq).sum() for p in x]).exp().mean().log()
        for qq in q])
    torch.testing.assert_close(model.log_prob(q), expected)


def test_zero_bandwidth_is_rejected():
    with pytest.raises(ValueError, match="bandwidth must be positive"):
        registry.create("kde", (1,), bandwidth_rule="manual", bandwidth=0)


def test_kde_subsamples_large_training_sets():
    model = registry.create("kde", (1,), max_points=100)
    model.train_step(torch.from_numpy(mixture(1000, 1)))
    assert model.points.shape == (100, 1)


def test_adaptive_kde_scales_follow_the_neighbour_distance():
    model = fitted("adaptive_kde", {"k": 5, "sensitivity": 0.5}, 1, n=400)
    x = model.points.double()
    r = kde_mod.knn_distances(x.float() / x.std(0).float(), x.float() / x.std(0).float(), 5, exclude_self=True)
    lam = (r.double() / torch.exp(torch.log(r.double()).mean())) ** 0.5  # D alpha = 1/2
    torch.testing.assert_close(model.scale.double(), lam.clamp(1e-2, 1e2), rtol=1e-4, atol=1e-6)
    # wider kernels in the tails than in the modes
    centre = (x[:, 0].abs() - 2).abs() < 0.2
    tails = (x[:, 0].abs() - 2).abs() > 1.0
    assert model.scale[tails].mean() > model.scale[centre].mean()
    assert model.density_grid([(-12.0, 12.0)], 4000).sum() * 24 / 4000 == pytest.approx(1.0, abs=1e-3)


def test_adaptive_kde_rejects_k_too_large():
    model = registry.create("adaptive_kde", (2,), k=50)
    with pytest.raises(ValueError, match="k = 50"):
        model.train_step(torch.from_numpy(mixture(20, 2)))


# --------------------------------------------------------------------------------------------
# kNN
# --------------------------------------------------------------------------------------------


def test_knn_density_formula_inside_the_box():
    model = fitted("knn", {"k": 7}, 2)
    q = torch.tensor([[-2.0, 0.0], [2.0, 1.2], [0.0, 0.5]])
    r = torch.cdist(q.double(), model.points.double()).sort(1).values[:, 6]
    raw = 7 / (len(model.points) * math.pi * r ** 2)
    expected = (1 - FLOOR_WEIGHT) * raw / math.exp(float(model.log_z))
    got = model.log_prob(q).double().exp()
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6)


def test_knn_tiled_radius_grid_is_exact():
    from core.models.knn import knn_radius_grid
    pts = torch.from_numpy(mixture(500, 2, seed=3))
    bounds = [(-3.0, 3.0), (-2.0, 2.5)]
    got = knn_radius_grid(pts, 9, bounds, 50, tile=8)
    q = torch.from_numpy(grid_points(bounds, 50))
    expected = torch.cdist(q.double(), pts.double()).sort(1).values[:, 8].reshape(50, 50)
    torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-6)


def test_knn_rejects_k_larger_than_n():
    model = registry.create("knn", (1,), k=30)
    with pytest.raises(ValueError, match="k = 30 is larger than the number of training points"):
        model.train_step(torch.from_numpy(mixture(20, 1)))


# --------------------------------------------------------------------------------------------
# gaussian and GMM
# --------------------------------------------------------------------------------------------


def test_gaussian_is_the_closed_form_fit():
    x = torch.from_numpy(mixture(400, 2, seed=6))
    model = registry.create("gaussian", (2,), reg_covar=0.0)
    model.train_step(x)
    xd = x.double()
    cov = torch.cov(xd.T, correction=0)
    torch.testing.assert_close(model.means[0], xd.mean(0))
    torch.testing.assert_close(model.covariances[0], cov)
    ref = torch.distributions.MultivariateNormal(xd.mean(0), cov).log_prob(xd[:10]).float()
    torch.testing.assert_close(model.log_prob(x[:10]), ref)


@pytest.mark.parametrize("dim", [1, 2])
def test_em_log_likelihood_never_decreases(dim):
    x = torch.from_numpy(mixture(400, dim, seed=7))
    model = registry.create("gmm", (dim,), components=4, seed=1)
    losses = [model.train_step(x)["loss"] for _ in range(40)]
    diffs = np.diff(losses)
    assert (diffs <= 1e-9).all(), diffs.max()
    assert losses[-1] < losses[0]
    # the reported loss is the NLL of the current parameters
    assert losses[-1] == pytest.approx(-model.log_prob(x).double().mean().item(), rel=1e-5)


def test_gmm_init_is_seeded_and_finds_the_modes():
    x = torch.from_numpy(mixture(400, 2, seed=8))
    a = registry.create("gmm", (2,), components=2, seed=3)
    b = registry.create("gmm", (2,), components=2, seed=3)
    for _ in range(10):
        a.train_step(x)
        b.train_step(x)
    torch.testing.assert_close(a.means, b.means)
    means = a.means[a.means[:, 0].argsort()]
    torch.testing.assert_close(means, torch.tensor([[-2.0, 0.0], [2.0, 1.0]], dtype=torch.float64), atol=0.15,
                               rtol=0)
    torch.testing.assert_close(a.weights.sum(), torch.tensor(1.0, dtype=torch.float64))


def test_gmm_rejects_more_components_than_points():
    model = registry.create("gmm", (2,), components=10)
    with pytest.raises(ValueError, match="10 components but only 5 training points"):
        model.train_step(torch.from_numpy(mixture(5, 2)))


def test_gmm_survives_duplicate_points():
    x = torch.tensor([[0.0, 0.0]] * 10 + [[1.0, 1.0]] * 10 + [[5.0, 5.0], [5.0, 6.0]])
    model = registry.create("gmm", (2,), components=3)
    for _ in range(5):
        out = model.train_step(x)
    assert math.isfinite(out["loss"])


def test_bad_hyperparameters_are_rejected():
    for key, hp in [("histogram", {"bins_rule": "sturges"}), ("histogram", {"bins": 0}),
                    ("kde", {"kernel": "box"}), ("kde", {"bandwidth": -1.0}), ("knn", {"k": 1}),
                    ("gmm", {"components": 0}), ("gmm", {"reg_covar": -1e-3}),
                    ("adaptive_kde", {"sensitivity": 2.0})]:
        with pytest.raises(ValueError):
            registry.create(key, (2,), **hp)
