"""Toy data sets (core.data.toy): samplers, true densities, entropies, modes and mode coverage,
view bounds, and their data sets through core.data.load / from_points."""

from __future__ import annotations

import math

import numpy as np
import pytest

from core import data as datasets
from core.data import DataError, toy
from core.protocol import DataKind

ALL = sorted(toy.TOY_SETS)
WITH_DENSITY = sorted(n for n, s in toy.TOY_SETS.items() if s.has_density)
NOISY = [n for n in ALL if n != "checkerboard"]

#: per set: ((lo, hi) per dimension, grid points per dimension), a grid that holds the mass
#: and resolves the narrowest feature; for histograms too (grid points divisible by the bins)
GRIDS = {
    "8gaussians": (((-5, 5), (-5, 5)), 200),
    "moons": (((-4, 4), (-2.6, 3.0)), 160),
    "circles": (((-4.6, 4.6), (-4.6, 4.6)), 160),
    "checkerboard": (((-5, 5), (-5, 5)), 200),
    "2spirals": (((-3.8, 3.8), (-3.8, 3.8)), 200),
    "pinwheel": (((-5, 5), (-5, 5)), 200),
    "swissroll": (((-3.8, 3.8), (-3.8, 3.8)), 200),
    "grid25": (((-5, 5), (-5, 5)), 400),
    "ring8": (((-1.2, 1.2), (-1.2, 1.2)), 480),
    "mixture1d": (((-8, 10),), 20000),
    "skewed1d": (((0, 40),), 40000),
    "heavytail1d": (((-1000, 1000),), 400000),
}
HIST_GRIDS = dict(GRIDS, heavytail1d=(((-10, 10),), 20000))


def grid_masses(name: str, grid) -> tuple[np.ndarray, float]:
    """Probability mass of each grid cell (density at the cell's midpoint x its area)."""
    ranges, m = grid
    axes = [lo + (np.arange(m) + 0.5) * (hi - lo) / m for lo, hi in ranges]
    cell = np.prod([(hi - lo) / m for lo, hi in ranges])
    pts = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, len(ranges))
    lp = toy.log_density(name, pts)
    return (np.exp(lp) * cell).reshape((m,) * len(ranges)), cell


# --------------------------------------------------------------------------------------------
# sampling
# --------------------------------------------------------------------------------------------


def test_registry():
    assert set(ALL) == {"8gaussians", "moons", "circles", "checkerboard", "2spirals", "pinwheel", "swissroll",
                        "grid25", "ring8", "mixture1d", "skewed1d", "heavytail1d", "integers1d"}
    for name, spec in toy.TOY_SETS.items():
        assert spec.name == name and spec.dim == (1 if name.endswith("1d") else 2)
        assert spec.default_n >= 100 and spec.default_noise >= 0 and spec.description
    assert not toy.TOY_SETS["integers1d"].has_density
    assert all(toy.TOY_SETS[n].has_density for n in ("2spirals", "pinwheel", "swissroll"))


@pytest.mark.parametrize("name", ALL)
def test_sample_shape_dtype_determinism(name):
    spec = toy.TOY_SETS[name]
    x = toy.sample(name, 501)
    assert x.shape == (501, spec.dim) and x.dtype == np.float32 and x.flags.c_contiguous
    assert np.isfinite(x).all()
    assert np.array_equal(x, toy.sample(name, 501, seed=0))
    assert np.array_equal(x, toy.sample(name, 501, noise=spec.default_noise))
    assert not np.array_equal(x, toy.sample(name, 501, seed=1))
    assert toy.sample(name, 1).shape == (1, spec.dim)


@pytest.mark.parametrize("name", NOISY)
def test_noise_spreads_the_data(name):
    spec = toy.TOY_SETS[name]
    low = spec.default_noise
    high = 0.3 if name == "integers1d" else 3 * low
    a, b = toy.sample(name, 4000, noise=low, seed=3), toy.sample(name, 4000, noise=high, seed=3)
    assert not np.array_equal(a, b)
    assert b.var(0).sum() > a.var(0).sum()
    assert np.isfinite(toy.sample(name, 10, noise=0.0)).all()


def test_checkerboard_ignores_noise():
    assert np.array_equal(toy.sample("checkerboard", 300, noise=0.7), toy.sample("checkerboard", 300))


def test_geometry_of_the_sets():
    x = toy.sample("8gaussians", 4000, noise=0.01)
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 4 / 1.414, atol=0.05)
    x = toy.sample("ring8", 4000)
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1, atol=0.05)
    x = toy.sample("grid25", 4000)
    assert np.abs(x - np.clip(np.round(x / 2) * 2, -4, 4)).max() < 0.3
    x = toy.sample("circles", 4000, noise=0.0)
    r = np.linalg.norm(x, axis=1)
    assert np.isclose(r, 3, atol=1e-5).sum() == 2000 and np.isclose(r, 1.5, atol=1e-5).sum() == 2000
    x = toy.sample("checkerboard", 4000)
    assert (np.abs(x) <= 4).all() and np.isfinite(toy.log_density("checkerboard", x)).all()
    assert toy.sample("skewed1d", 1000).min() > 0
    x = toy.sample("integers1d", 1000)
    assert set(np.unique(x)) == {1, 2, 3, 4, 5, 7}
    x = toy.sample("integers1d", 1000, text="10, 20")
    assert set(np.unique(x)) == {10, 20}


@pytest.mark.parametrize("kwargs, match", [
    (dict(n=0), "at least 1"), (dict(n=-5), "at least 1"), (dict(n=2.5), "whole number"),
    (dict(n=True), "whole number"), (dict(n=10, noise=-0.1), "noise"), (dict(n=10, noise=float("nan")), "noise"),
    (dict(n=10, noise=float("inf")), "noise"), (dict(n=10, noise="big"), "noise"),
])
def test_sample_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        toy.sample("moons", **kwargs)


def test_unknown_set():
    for f in (lambda: toy.sample("nope", 3), lambda: toy.log_density("nope", np.zeros((1, 2))),
              lambda: toy.true_entropy("nope"), lambda: toy.modes("nope")):
        with pytest.raises(ValueError, match="unknown toy data set 'nope'"):
            f()


def test_parse_integers():
    x = toy.parse_integers("1, 2, 2, 3 5")
    assert x.dtype == np.float32 and x.shape == (5, 1) and x[:, 0].tolist() == [1, 2, 2, 3, 5]
    assert toy.parse_integers(" -3;+4\n\t0 ,, 7 ")[:, 0].tolist() == [-3, 4, 0, 7]
    for text in ("", "   ", " , ; "):
        with pytest.raises(ValueError, match="no integers"):
            toy.parse_integers(text)
    with pytest.raises(ValueError, match=r"item 3 \('2.5'\) is not an integer"):
        toy.parse_integers("1 2 2.5 x")
    with pytest.raises(ValueError, match=r"'abc'.*2 bad items"):
        toy.parse_integers("abc 1 def")
    with pytest.raises(ValueError, match="within"):
        toy.parse_integers("1 99999999999")
    with pytest.raises(ValueError):
        toy.parse_integers(None)


# --------------------------------------------------------------------------------------------
# true densities
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", WITH_DENSITY)
def test_log_density_integrates_to_one(name):
    masses, _ = grid_masses(name, GRIDS[name])
    assert masses.sum() == pytest.approx(1.0, abs=0.02)


@pytest.mark.parametrize("name", WITH_DENSITY)
def test_log_density_matches_a_histogram_of_samples(name):
    ranges, m = HIST_GRIDS[name]
    bins = 20 if len(ranges) == 2 else 50
    masses, _ = grid_masses(name, HIST_GRIDS[name])
    r = m // bins
    coarse = masses.reshape((bins, r) * len(ranges)).sum(tuple(range(1, 2 * len(ranges), 2)))
    x = toy.sample(name, 100_000, seed=11)
    counts, _ = np.histogramdd(x, bins=bins, range=ranges)
    tv = 0.5 * np.abs(counts / len(x) - coarse).sum()
    assert tv < 0.03, tv


def test_log_density_values_and_shapes():
    x = np.array([[0.0, 0.0], [100.0, 100.0]])
    for name in ("8gaussians", "moons", "circles", "grid25", "ring8"):
        lp = toy.log_density(name, x)
        assert lp.shape == (2,) and lp.dtype == np.float64 and lp[0] > lp[1]
        assert not np.isnan(lp).any()
    # grid25 at a centre: (1/25) N(0; 0, 0.05^2 I), other centres negligible
    assert toy.log_density("grid25", [[2.0, -4.0]])[0] == pytest.approx(-math.log(25) - math.log(2 * math.pi * 0.0025))
    cb = toy.log_density("checkerboard", [[0.5, 0.5], [2.5, 0.5], [-3.0, -3.0], [5.0, 0.0], [-1.0, 3.0]])
    assert cb[0] == cb[2] == cb[4] == pytest.approx(-math.log(32)) and cb[1] == cb[3] == -np.inf
    assert toy.log_density("skewed1d", [-1.0, 0.0])[0] == -np.inf
    t = toy.log_density("heavytail1d", np.array([0.0]))[0]
    assert t == pytest.approx(math.lgamma(2) - math.lgamma(1.5) - 0.5 * math.log(3 * math.pi))
    assert toy.log_density("mixture1d", np.zeros(3)).shape == (3,)  # (N,) is read as 1D points
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        toy.log_density("moons", np.zeros((3, 3)))


def test_circles_quadrature_matches_the_bessel_form():
    rng = np.random.default_rng(0)
    x = rng.uniform(-4, 4, (300, 2))
    rho, s = np.linalg.norm(x, axis=1), 3 * 0.08
    p = sum(0.5 / (2 * np.pi * s * s) * np.exp(-(rho ** 2 + r * r) / (2 * s * s)) * np.i0(rho * r / (s * s))
            for r in (3.0, 1.5))
    keep = p > 1e-200
    np.testing.assert_allclose(toy.log_density("circles", x[keep]), np.log(p[keep]), rtol=1e-4, atol=1e-4)


def test_no_density_where_unknown_or_degenerate():
    pts = np.zeros((4, 2))
    assert toy.log_density("integers1d", np.zeros(3)) is None and toy.true_entropy("integers1d") is None
    for name in ("moons", "8gaussians", "ring8", "2spirals", "pinwheel", "swissroll"):
        assert toy.log_density(name, pts, noise=0.0) is None and toy.true_entropy(name, noise=0.0) is None
        assert not toy.density_known(name, 0.0) and toy.density_known(name)
    assert toy.log_density("checkerboard", pts, noise=0.0) is not None


def _kde_log_density(x: np.ndarray, train: np.ndarray) -> np.ndarray:
    """A gaussian KDE with Scott's bandwidth per coordinate, fitted to ``train``."""
    bw = train.std(0) * len(train) ** (-1 / 6)
    z = (x[:, None, :] - train[None, :, :]) / bw
    a = -0.5 * (z ** 2).sum(-1)
    m = a.max(1, keepdims=True)
    return (m[:, 0] + np.log(np.exp(a - m).mean(1)) - np.log(2 * np.pi * bw.prod()))


@pytest.mark.parametrize("name", ["2spirals", "pinwheel", "swissroll"])
def test_curve_densities_beat_a_fitted_kde_on_held_out_samples(name):
    """Gibbs' inequality: E_p[-log p] <= E_p[-log q] for any density q, so the true density must give
    held-out samples a lower NLL than a KDE fitted on other samples; a wrong density (a wrong
    Jacobian, a lost root or branch, a misplaced curve) fails by far more than the sample's noise."""
    train = toy.sample(name, 4000, seed=5)
    held = toy.sample(name, 3000, seed=6)
    lp = toy.log_density(name, held)
    assert lp.shape == (3000,) and np.isfinite(lp).all()
    nll_true, nll_kde = -lp.mean(), -_kde_log_density(held, train).mean()
    # the KDE over-smooths: typically 0.05-0.1 nats worse; the paired difference's noise is ~0.01
    assert nll_true < nll_kde - 0.02, (nll_true, nll_kde)
    # and the entropy is the true density's NLL in the large-sample limit
    assert toy.true_entropy(name, n_mc=20_000) == pytest.approx(nll_true, abs=0.05)


def test_curve_densities_at_noise_levels_other_than_the_default():
    """The quadrature adapts to the noise: the density still integrates to 1 at a small noise."""
    for name, noise, grid in (("2spirals", 0.04, (((-3.6, 3.6), (-3.6, 3.6)), 400)),
                              ("swissroll", 0.3, (((-3.4, 3.4), (-3.4, 3.4)), 400)),
                              ("pinwheel", 0.05, (((-5, 5), (-5, 5)), 400))):
        ranges, m = grid
        axes = [lo + (np.arange(m) + 0.5) * (hi - lo) / m for lo, hi in ranges]
        pts = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 2)
        cell = np.prod([(hi - lo) / m for lo, hi in ranges])
        assert np.exp(toy.log_density(name, pts, noise=noise)).sum() * cell == pytest.approx(1.0, abs=0.02), name


def test_true_entropies():
    closed = {  # ln K + 1 + ln(2 pi s^2) for well separated isotropic 2D gaussians
        "grid25": math.log(25) + 1 + math.log(2 * math.pi * 0.05 ** 2),
        "ring8": math.log(8) + 1 + math.log(2 * math.pi * 0.01 ** 2),
        "skewed1d": 0.5 + math.log(0.5 * math.sqrt(2 * math.pi)),  # lognormal(0, 0.5)
        # Student-t, 3 dof: 2 (psi(2) - psi(1.5)) + ln(sqrt(3) B(1.5, 0.5)); psi(2)-psi(1.5) = 2 ln 2 - 1
        "heavytail1d": 2 * (2 * math.log(2) - 1) + math.log(math.sqrt(3) * math.pi / 2),
    }
    assert toy.true_entropy("8gaussians") == pytest.approx(2.837, abs=0.01)
    assert toy.true_entropy("checkerboard") == pytest.approx(math.log(32)) == pytest.approx(3.466, abs=1e-3)
    for name, h in closed.items():
        assert toy.true_entropy(name) == pytest.approx(h, abs=0.01), name
    assert 1.0 < toy.true_entropy("mixture1d") < 2.5


def test_true_entropy_of_the_numeric_densities_is_cached():
    h = toy.true_entropy("moons", n_mc=20_000)
    assert 2.2 < h < 2.6
    assert toy.true_entropy("moons", n_mc=20_000) is h  # from the cache
    assert 3.0 < toy.true_entropy("circles", n_mc=20_000) < 3.5
    # more noise, more entropy: 2D scaling of the noise by k adds about 2 ln k once it dominates
    assert toy.true_entropy("8gaussians", noise=1.0) > toy.true_entropy("8gaussians")


# --------------------------------------------------------------------------------------------
# modes and mode coverage
# --------------------------------------------------------------------------------------------


def test_modes():
    c, s = toy.modes("ring8")
    assert c.shape == (8, 2) and s == 0.01 and np.allclose(np.linalg.norm(c, axis=1), 1)
    c, s = toy.modes("grid25")
    assert c.shape == (25, 2) and s == 0.05 and set(np.unique(c)) == {-4, -2, 0, 2, 4}
    c, s = toy.modes("8gaussians")
    assert c.shape == (8, 2) and s == pytest.approx(0.5 / 1.414)
    assert np.allclose(np.linalg.norm(c, axis=1), 4 / 1.414)
    assert toy.modes("grid25", noise=0.2)[1] == 0.2
    for name in ("moons", "checkerboard", "mixture1d", "integers1d"):
        assert toy.modes(name) is None


def test_mode_coverage_all_missing_and_off_mode():
    centres, std = toy.modes("grid25")
    rng = np.random.default_rng(0)
    on = np.repeat(centres, 4, 0) + rng.normal(0, std, (100, 2)).clip(-1.4 * std, 1.4 * std)
    assert toy.mode_coverage(on, centres, std) == {"modes_covered": 25, "n_modes": 25, "high_quality": 1.0}
    # only 10 modes hit
    got = toy.mode_coverage(on[:40], centres, std)
    assert got["modes_covered"] == 10 and got["high_quality"] == 1.0
    # half the samples midway between modes: low quality, assigned to no mode
    off = centres[:20] + np.array([1.0, 0.0])
    got = toy.mode_coverage(np.concatenate([on[:20], off]), centres, std)
    assert got["modes_covered"] == 5 and got["high_quality"] == pytest.approx(0.5)
    # just inside / just outside 3 std
    got = toy.mode_coverage(centres[:2] + np.array([[2.99 * std, 0], [0, 3.01 * std]]), centres, std)
    assert got["modes_covered"] == 1 and got["high_quality"] == 0.5
    # min_count: a mode needs that many high-quality samples
    assert toy.mode_coverage(on, centres, std, min_count=4)["modes_covered"] == 25
    assert toy.mode_coverage(on, centres, std, min_count=5)["modes_covered"] == 0
    # NaN samples are never high quality; no samples cover nothing
    nan = np.full((5, 2), np.nan)
    got = toy.mode_coverage(np.concatenate([on, nan]), centres, std)
    assert got["modes_covered"] == 25 and got["high_quality"] == pytest.approx(100 / 105)
    assert toy.mode_coverage(np.zeros((0, 2)), centres, std) == {"modes_covered": 0, "n_modes": 25,
                                                                 "high_quality": 0.0}


@pytest.mark.parametrize("name", ["ring8", "grid25", "8gaussians"])
def test_true_samples_cover_every_mode(name):
    centres, std = toy.modes(name)
    got = toy.mode_coverage(toy.sample(name, 5000), centres, std)
    assert got["modes_covered"] == got["n_modes"] == len(centres)
    assert got["high_quality"] == pytest.approx(1 - math.exp(-4.5), abs=0.01)  # chi2(2) within 3 std
    assert all(isinstance(v, (int, float)) for v in got.values())


def test_mode_coverage_1d_and_bad_arguments():
    got = toy.mode_coverage(np.array([0.0, 0.05, 5.0, 9.0]), np.array([0.0, 5.0, 10.0]), 0.1)
    assert got == {"modes_covered": 2, "n_modes": 3, "high_quality": 0.75}
    c = np.zeros((3, 2))
    for args, match in [((np.zeros((4, 3)), c, 0.1), r"\(N, 2\)"), ((np.zeros((4, 2)), np.zeros((0, 2)), 0.1),
                        "centres"), ((np.zeros((4, 2)), c, 0.0), "std"), ((np.zeros((4, 2)), c, float("nan")), "std"),
                        ((np.zeros((4, 2)), c, 0.1, 0), "min_count")]:
        with pytest.raises(ValueError, match=match):
            toy.mode_coverage(*args)


# --------------------------------------------------------------------------------------------
# view bounds
# --------------------------------------------------------------------------------------------


def test_view_bounds():
    x = toy.sample("moons", 4000)
    (x0, x1), (y0, y1) = toy.view_bounds(x)
    assert x1 - x0 == pytest.approx(y1 - y0)  # square
    lo, hi = np.percentile(x, 0.5, 0), np.percentile(x, 99.5, 0)
    assert x0 < lo[0] and x1 > hi[0] and y0 < lo[1] and y1 > hi[1]
    assert (x1 - x0) == pytest.approx(1.2 * (hi - lo).max())
    # an outlier does not stretch the view
    assert toy.view_bounds(np.concatenate([x, [[1e6, 1e6]]]))[0][1] < 10
    (a, b), = toy.view_bounds(np.array([0.0, 10.0]), pad=0.0)
    assert a == pytest.approx(0.05) and b == pytest.approx(9.95)
    (a, b), = toy.view_bounds(np.full((5, 1), 3.0))  # constant data: a unit span around it
    assert a < 3 < b and b - a == pytest.approx(1.2)
    assert toy.view_bounds(np.array([[0.0, 0.0], [np.nan, 1.0], [1.0, 1.0]]), pad=0)[1][1] <= 1.0
    for bad in (np.zeros((0, 2)), np.full((3, 2), np.nan)):
        with pytest.raises(ValueError, match="no finite points"):
            toy.view_bounds(bad)


# --------------------------------------------------------------------------------------------
# data sets: core.data.load and from_points
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL)
def test_load_toy_sets(name):
    spec, info = toy.TOY_SETS[name], datasets.DATASETS[name]
    assert info.kind is (DataKind.POINTS_1D if spec.dim == 1 else DataKind.POINTS_2D) and not info.needs_file
    ds = datasets.load(name, n=120, seed=4)
    assert ds.kind is info.kind and ds.shape == (spec.dim,) and ds.image_shape is None
    assert ds.train.shape == (120, spec.dim) and ds.valid.shape == (30, spec.dim)
    assert ds.train.dtype == ds.valid.dtype == np.float32 and np.isfinite(ds.train).all()
    again = datasets.load(name, n=120, seed=4)
    assert np.array_equal(ds.train, again.train) and np.array_equal(ds.valid, again.valid)
    assert not np.array_equal(ds.train[:30], ds.valid)
    if name != "integers1d":
        assert np.array_equal(ds.train, toy.sample(name, 120, seed=4))
    meta = ds.meta
    assert meta["noise"] == (0.0 if name == "checkerboard" else spec.default_noise)
    assert len(meta["bounds"]) == spec.dim and all(lo < hi for lo, hi in meta["bounds"])
    assert meta["has_density"] == spec.has_density
    assert (meta["modes"] is not None) == (name in ("ring8", "grid25", "8gaussians"))
    assert "true_entropy" not in meta  # computed on demand only


def test_true_entropy_is_cached_on_the_data_set_safely_across_threads():
    from concurrent.futures import ThreadPoolExecutor

    ds = datasets.load("moons", n=50)
    assert ds.known_true_entropy() == (False, None)
    with ThreadPoolExecutor(4) as pool:
        values = list(pool.map(lambda _: datasets.dataset_true_entropy(ds, n_mc=5_000), range(8)))
    assert len(set(values)) == 1 and ds.known_true_entropy() == (True, values[0])
    assert "true_entropy" not in ds.meta


def test_load_defaults_noise_and_entropy():
    ds = datasets.load("8gaussians")
    assert len(ds.train) == toy.TOY_SETS["8gaussians"].default_n and len(ds.valid) == len(ds.train) // 4
    centres, std = ds.meta["modes"]
    assert np.allclose(centres, toy.modes("8gaussians")[0]) and std == pytest.approx(0.5 / 1.414)
    assert datasets.dataset_true_entropy(ds) == pytest.approx(2.837, abs=0.01)
    assert ds.known_true_entropy() == (True, datasets.dataset_true_entropy(ds))
    assert "true_entropy" not in ds.meta  # cached on the data set, not in its meta
    noisy = datasets.load("8gaussians", n=100, noise=1.0)
    assert noisy.meta["noise"] == 1.0 and noisy.meta["modes"][1] == pytest.approx(1 / 1.414)
    assert datasets.dataset_true_entropy(datasets.load("integers1d", n=10)) is None
    assert datasets.dataset_true_entropy(datasets.load("2spirals", n=10, noise=0.0)) is None
    assert datasets.dataset_true_entropy(datasets.from_points(np.arange(6.0))) is None
    with pytest.raises(DataError, match="noise"):
        datasets.load("moons", noise=-1)
    with pytest.raises(DataError, match="at least 1"):
        datasets.load("moons", n=0)


def test_load_integers_from_text():
    ds = datasets.load("integers1d")
    assert ds.train[:, 0].tolist() == [1, 2, 2, 3, 3, 3, 4, 4, 5, 7] and ds.kind is DataKind.POINTS_1D
    assert len(ds.valid) == 2 and set(ds.valid[:, 0]) <= {1, 2, 3, 4, 5, 7}
    ds = datasets.load("integers1d", text="4, 4; 9", seed=1)
    assert ds.train[:, 0].tolist() == [4, 4, 9] and ds.meta["text"] == "4, 4; 9" and len(ds.valid) == 1
    ds = datasets.load("integers1d", text="4 9", n=40)
    assert ds.train.shape == (40, 1) and set(ds.train[:, 0]) == {4, 9} and len(ds.valid) == 10
    with pytest.raises(DataError, match="not an integer"):
        datasets.load("integers1d", text="1 2 x")
    with pytest.raises(DataError, match="no integers"):
        datasets.load("integers1d", text="")
    with pytest.raises(DataError, match="at least 2"):
        datasets.load("integers1d", text="5")


def test_from_points():
    x = np.random.default_rng(0).normal(size=(50, 2))
    ds = datasets.from_points(x)
    assert ds.name == "painted" and ds.kind is DataKind.POINTS_2D
    assert len(ds.train) == 40 and len(ds.valid) == 10 and ds.train.dtype == np.float32
    both = np.concatenate([ds.train, ds.valid])
    assert np.array_equal(np.sort(both, 0), np.sort(x.astype(np.float32), 0))  # a split, nothing lost
    assert np.array_equal(datasets.from_points(x, seed=0).train, ds.train)
    assert not np.array_equal(datasets.from_points(x, seed=1).train, ds.train)
    assert ds.meta["bounds"] and ds.meta["modes"] is None and not ds.meta["has_density"]
    one_d = datasets.from_points([1.0, 2.0], name="mine")
    assert one_d.kind is DataKind.POINTS_1D and one_d.name == "mine" and len(one_d.train) == len(one_d.valid) == 1
    for bad, match in [(np.zeros((0, 2)), "no points"), (np.zeros((1, 2)), "only one point"),
                       (np.array([[0.0, 1.0], [np.nan, 2.0], [1, 1]]), "point 1 is NaN or infinite"),
                       (np.array([0.0, np.inf]), "NaN or infinite"), (np.zeros((4, 3)), "shape"),
                       (np.array(["a", "b"]), "numbers")]:
        with pytest.raises(DataError, match=match):
            datasets.from_points(bad)
    with pytest.raises(DataError, match="valid_fraction"):
        datasets.from_points(x, valid_fraction=1.0)
