"""Toy 1D and 2D data sets for the density playground, with their true densities.

The 2D sets follow FFJORD's ``toy_data.py`` (see REFERENCES.md, "2D toy densities"); ``ring8`` and
``grid25`` are the mode-coverage sets of VEEGAN / PacGAN. Each set has one ``noise`` parameter
(:data:`NOISE_HELP` says what it means there); ``noise=None`` means the set's default.

Everything is vectorised numpy and seeded: ``sample(name, n, noise, seed)`` is deterministic.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np

from core.data.errors import DataError

__all__ = ["ToySpec", "TOY_SETS", "NOISE_HELP", "DEFAULT_INTEGERS_TEXT", "sample", "log_density", "true_entropy",
           "modes", "mode_coverage", "quality_min_count", "QUALITY_SHARE", "density_known", "view_bounds", "parse_integers", "resolve_noise"]


@dataclass(frozen=True)
class ToySpec:
    name: str
    dim: int
    description: str
    default_n: int
    default_noise: float
    has_density: bool  # log_density() knows the true density (at the default noise)


TOY_SETS: dict[str, ToySpec] = {s.name: s for s in (
    ToySpec("8gaussians", 2, "8 gaussians on a circle (2D)", 4000, 0.5, True),
    ToySpec("moons", 2, "two moons (2D)", 4000, 0.1, True),
    ToySpec("circles", 2, "two circles (2D)", 4000, 0.08, True),
    ToySpec("checkerboard", 2, "checkerboard, 8 cells (2D)", 4000, 0.0, True),
    ToySpec("2spirals", 2, "two spirals (2D)", 4000, 0.1, True),
    ToySpec("pinwheel", 2, "pinwheel, 5 arms (2D)", 4000, 0.1, True),
    ToySpec("swissroll", 2, "swiss roll (2D)", 4000, 1.0, True),
    ToySpec("grid25", 2, "25 gaussians on a grid (2D, mode coverage)", 4000, 0.05, True),
    ToySpec("ring8", 2, "8 gaussians on a ring (2D, mode coverage)", 4000, 0.01, True),
    ToySpec("mixture1d", 1, "mixture of 3 gaussians (1D)", 2000, 0.5, True),
    ToySpec("skewed1d", 1, "skewed: lognormal (1D)", 2000, 0.5, True),
    ToySpec("heavytail1d", 1, "heavy tails: Student-t, 3 dof (1D)", 2000, 1.0, True),
    ToySpec("integers1d", 1, "integers typed by hand (1D)", 2000, 0.0, False),
)}

#: what ``noise`` means for each set (for tooltips)
NOISE_HELP: dict[str, str] = {
    "8gaussians": "std of each gaussian before the division by 1.414",
    "moons": "std of the gaussian noise, before the x2 scaling (sklearn's make_moons noise)",
    "circles": "std of the gaussian noise, before the x3 scaling (sklearn's make_circles noise)",
    "checkerboard": "unused (always 0)",
    "2spirals": "std of the gaussian noise",
    "pinwheel": "tangential std of the arms (the radial std is 0.3)",
    "swissroll": "std of the gaussian noise, before the division by 5 (sklearn's make_swiss_roll noise)",
    "grid25": "std of each gaussian",
    "ring8": "std of each gaussian",
    "mixture1d": "scales the component stds (x1, x0.6, x1)",
    "skewed1d": "sigma of the lognormal(0, sigma)",
    "heavytail1d": "scale of the Student-t",
    "integers1d": "std of a gaussian jitter added to the integers (0: none)",
}

DEFAULT_INTEGERS_TEXT = "1 2 2 3 3 3 4 4 5 7"

# mixture1d: weights, means, stds relative to ``noise``
_MIX_W = np.array([0.35, 0.40, 0.25])
_MIX_MU = np.array([-2.0, 0.5, 3.0])
_MIX_REL_STD = np.array([1.0, 0.6, 1.0])
_T_DOF = 3.0
_QUAD_NODES = 2000  # quadrature nodes along the curves of moons and circles (in all)


# --------------------------------------------------------------------------------------------
# argument checks
# --------------------------------------------------------------------------------------------

def _spec(name: str) -> ToySpec:
    try:
        return TOY_SETS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown toy data set {name!r}; known: {sorted(TOY_SETS)}") from None


def resolve_noise(name: str, noise: float | None = None) -> float:
    """``noise`` checked (finite, >= 0) as a float, or the set's default when None."""
    spec = _spec(name)
    if noise is None:
        return float(spec.default_noise)
    if isinstance(noise, bool) or not isinstance(noise, Real):
        raise ValueError(f"noise must be a number, got {noise!r}")
    noise = float(noise)
    if not math.isfinite(noise) or noise < 0:
        raise ValueError(f"noise must be finite and >= 0, got {noise}")
    return 0.0 if name == "checkerboard" else noise


def _check_n(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, Integral):
        raise ValueError(f"n must be a whole number, got {n!r}")
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    return int(n)


_INT_TOKEN = re.compile(r"[+-]?\d+")
_INT_LIMIT = 2 ** 24  # float32 holds every integer up to here exactly


def parse_integers(text: str) -> np.ndarray:
    """Integers separated by commas, semicolons or whitespace -> float32 (N, 1).

    Raises :class:`DataError` (a ``ValueError``) naming the first bad token, or for an empty text.
    """
    if not isinstance(text, str):
        raise DataError(f"expected a text of integers, got {type(text).__name__}")
    tokens = [t for t in re.split(r"[,;\s]+", text.strip()) if t]
    if not tokens:
        raise DataError("no integers given: type some, e.g. '1 2 2 3 5'")
    bad = [(i, t) for i, t in enumerate(tokens, 1) if not _INT_TOKEN.fullmatch(t)]
    if bad:
        i, t = bad[0]
        raise DataError(f"item {i} ({t!r}) is not an integer" + (f" ({len(bad)} bad items in all)" if len(bad) > 1 else ""))
    values = np.array([int(t) for t in tokens], dtype=np.int64)
    if np.abs(values).max() > _INT_LIMIT:
        raise DataError(f"integers must lie within +-{_INT_LIMIT}, got {values[np.abs(values).argmax()]}")
    return values.astype(np.float32).reshape(-1, 1)


# --------------------------------------------------------------------------------------------
# gaussian-mixture forms of the sets that have one (centres, log weights, std), final coordinates
# --------------------------------------------------------------------------------------------

def _eight_centres() -> np.ndarray:
    a = np.arange(8) * np.pi / 4
    return 4.0 * np.stack([np.cos(a), np.sin(a)], 1) / 1.414


def _grid_centres() -> np.ndarray:
    g = np.array([-4.0, -2.0, 0.0, 2.0, 4.0])
    return np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)


def _ring_centres() -> np.ndarray:
    a = np.arange(8) * 2 * np.pi / 8
    return np.stack([np.cos(a), np.sin(a)], 1)


def _moons_nodes(k: int) -> np.ndarray:
    """Midpoint nodes of both arcs (k per arc), in unit (pre-scaling) coordinates."""
    t = (np.arange(k) + 0.5) * np.pi / k
    outer = np.stack([np.cos(t), np.sin(t)], 1)
    inner = np.stack([1 - np.cos(t), 1 - np.sin(t) - 0.5], 1)
    return np.concatenate([outer, inner])


def _circles_nodes(k: int) -> np.ndarray:
    """Equispaced (trapezoid, periodic) nodes of both circles (k per circle), unit coordinates."""
    t = np.arange(k) * 2 * np.pi / k
    unit = np.stack([np.cos(t), np.sin(t)], 1)
    return np.concatenate([unit, 0.5 * unit])


def _nodes_per_curve(length: float, noise: float) -> int:
    """1000 nodes per curve (2000 in all), more when the noise is so small that the node spacing
    would exceed half its std (a sum of gaussians with spacing <= std/2 is a near-exact integral)."""
    return int(min(50_000, max(_QUAD_NODES // 2, math.ceil(length / (0.5 * noise)))))


def _mixture_form(name: str, noise: float) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(centres (K, d), log weights (K,), stds (K,)) in final coordinates, or None."""
    if name == "8gaussians":
        c = _eight_centres()
        return c, np.full(8, -math.log(8)), np.full(8, noise / 1.414)
    if name == "grid25":
        return _grid_centres(), np.full(25, -math.log(25)), np.full(25, noise)
    if name == "ring8":
        return _ring_centres(), np.full(8, -math.log(8)), np.full(8, noise)
    if name == "moons":  # equal weights over both arcs; data x2 then shifted
        c = _moons_nodes(_nodes_per_curve(np.pi, noise)) * 2 + np.array([-1.0, -0.2])
        return c, np.full(len(c), -math.log(len(c))), np.full(len(c), 2 * noise)
    if name == "circles":
        c = _circles_nodes(_nodes_per_curve(2 * np.pi, noise)) * 3
        return c, np.full(len(c), -math.log(len(c))), np.full(len(c), 3 * noise)
    if name == "swissroll":
        return _swissroll_form(noise)
    if name == "mixture1d":
        return _MIX_MU[:, None], np.log(_MIX_W), noise * _MIX_REL_STD
    return None


def _mixture_logpdf(x: np.ndarray, centres: np.ndarray, log_w: np.ndarray, std: np.ndarray) -> np.ndarray:
    """log sum_k w_k N(x; c_k, std_k^2 I), in row chunks (bounded memory, cache-sized passes).

    With -|x-c|^2/(2s^2) = x.c/s^2 - |c|^2/(2s^2) - |x|^2/(2s^2), the terms that depend on k are
    one matrix product plus a bias. Many-component mixtures (the quadrature forms) run in float32
    when its rounding costs less than ~2e-4 in the log density, else in float64.
    """
    d = centres.shape[1]
    inv = 1.0 / std ** 2
    bias = log_w - d * np.log(std) - 0.5 * d * math.log(2 * math.pi) - 0.5 * (centres ** 2).sum(1) * inv
    finite = np.isfinite(x).all(1)
    xmax = float(np.sqrt((x[finite] ** 2).sum(1).max())) if finite.any() else 0.0
    cmax = float(np.sqrt((centres ** 2).sum(1).max()))
    err32 = 6e-8 * (xmax * cmax + cmax * cmax) * inv.max()  # float32 rounding of the exponents
    dtype = np.float32 if len(centres) > 64 and err32 < 2e-4 else np.float64
    w = np.ascontiguousarray((centres * inv[:, None]).T, dtype=dtype)  # (d, K)
    bias = bias.astype(dtype)
    half_inv = 0.5 * inv
    uniform_std = bool(np.all(std == std[0]))
    out = np.empty(len(x))
    step = max(1, 262_144 // len(centres))
    for i in range(0, len(x), step):
        xb = x[i:i + step]
        x2 = (xb ** 2).sum(1)
        a = xb.astype(dtype) @ w
        a += bias
        if not uniform_std:
            a -= (x2[:, None] * half_inv[None, :]).astype(dtype)
        m = a.max(1)
        m = np.where(np.isfinite(m), m, 0.0).astype(dtype)
        a -= m[:, None]
        np.exp(a, out=a)
        with np.errstate(divide="ignore"):
            lse = m.astype(np.float64) + np.log(a.sum(1, dtype=np.float64))
        out[i:i + step] = lse - (x2 * half_inv[0] if uniform_std else 0.0)
    return out



def _swissroll_form(noise: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Swiss roll as a quadrature mixture: t ~ U[1.5pi, 4.5pi], x = (t cos t, t sin t)/5 + (noise/5) N(0, I);
    midpoint nodes in t, spaced (along the curve, at its fastest) at most half the noise std."""
    s = noise / 5
    lo, hi = 1.5 * np.pi, 4.5 * np.pi
    speed = math.hypot(1.0, hi) / 5  # |dc/dt| is largest at the outer end
    k = _nodes_per_curve(speed * (hi - lo), s)
    t = lo + (np.arange(k) + 0.5) * (hi - lo) / k
    c = np.stack([t * np.cos(t), t * np.sin(t)], 1) / 5
    return c, np.full(k, -math.log(k)), np.full(k, s)


def _ndtr(z: np.ndarray) -> np.ndarray:
    import torch  # numpy has no erf; torch's float64 ndtr is exact and vectorised
    return torch.special.ndtr(torch.from_numpy(z)).numpy()


def _spirals_logpdf(x: np.ndarray, noise: float) -> np.ndarray:
    """Two spirals: t = sqrt(u) 3pi (density 2t/(3pi)^2), sign = +-1 with probability 1/2 each,
    x = sign (c(t) + 0.5 U[0,1]^2) / 3 + noise N(0, I), c(t) = (-t cos t, t sin t). Given (t, sign)
    each coordinate is a box of side 1/6 convolved with N(0, noise^2):
    (Phi((x-a)/s) - Phi((x-b)/s)) / (b-a). Midpoint quadrature over t, spaced (along the curve, at
    its fastest) at most half the noise std; Phi(m+d) - Phi(m-d) is evaluated at -|m| (it is even
    in m) so that no cancellation of two values near 1 occurs. -inf only where every term
    underflows (some 35 noise stds from both spirals)."""
    tmax = 3 * np.pi
    speed = math.hypot(1.0, tmax) / 3
    k = _nodes_per_curve(speed * tmax, noise)
    dt = tmax / k
    t = (np.arange(k) + 0.5) * dt
    w = 2 * t / tmax ** 2 * dt
    w = w / w.sum() / 2  # midpoint weights of the t density, and 1/2 per sign
    c = np.stack([-t * np.cos(t), t * np.sin(t)], 1) / 3
    mid = np.concatenate([c + 1 / 12, -(c + 1 / 12)])  # box centres for sign +1 and -1
    wk = np.concatenate([w, w]) * 36.0  # / (b-a)^2, b-a = 1/6
    half = (1 / 12) / noise
    out = np.empty(len(x))
    step = max(1, 65_536 // len(mid))
    for i in range(0, len(x), step):
        xb = x[i:i + step]
        p = np.ones((len(xb), len(mid)))
        for j in range(2):
            m = -np.abs(xb[:, j, None] - mid[None, :, j]) / noise
            p *= _ndtr(m + half) - _ndtr(m - half)
        with np.errstate(divide="ignore"):
            out[i:i + step] = np.log(p @ wk)
    return out


_PIN_RADIAL = 0.3  # radial std of the pinwheel's arms
_PIN_RATE = 0.25


def _pinwheel_logpdf(x: np.ndarray, noise: float, grid: int = 400, span: float = 12.0) -> np.ndarray:
    """Pinwheel: label k uniform in 0..4, a_k = 2 pi k / 5, f ~ N((1, 0), diag(0.3^2, noise^2)),
    theta = a_k + 0.25 exp(f0), x = 2 R(-theta) f. Inverting, f = R(theta) x / 2, so with
    x/2 = r (cos phi, sin phi) each preimage is a root u = f0 of g(u) = r cos(theta_k(u) + phi) - u
    on [-r, r], f1 = r sin(theta_k(u) + phi), and p(x) = (1/5) sum_k sum_roots
    p_f(f) / (4 |1 + 0.25 f1 exp(f0)|) (the Jacobian of f -> x is 4 (1 + theta'(f0) f1)).
    Roots are bracketed on a grid of ``grid`` points over [-r, r] within ``span`` radial stds of
    f0 = 1 (outside it p_f < exp(-span^2/2) of its peak) and refined by bisection to ~1e-12."""
    rho = np.sqrt((x ** 2).sum(1)) / 2
    phi = np.arctan2(x[:, 1], x[:, 0])
    lo = np.maximum(-rho, 1 - span * _PIN_RADIAL)
    hi = np.minimum(rho, 1 + span * _PIN_RADIAL)
    ok = hi > lo
    dens = np.zeros(len(x))
    frac = np.linspace(0.0, 1.0, grid)
    log_norm = -math.log(2 * math.pi * _PIN_RADIAL * noise)
    step = max(1, 200_000 // grid)
    for i in range(0, len(x), step):
        sel = np.nonzero(ok[i:i + step])[0] + i
        if not len(sel):
            continue
        r, ph = rho[sel, None], phi[sel, None]
        u = lo[sel, None] + (hi[sel] - lo[sel])[:, None] * frac[None, :]  # (n, grid)
        for k in range(5):
            a = 2 * np.pi * k / 5

            def g(uu, rr, pp):
                return rr * np.cos(a + _PIN_RATE * np.exp(uu) + pp) - uu

            gv = g(u, r, ph)
            row, col = np.nonzero((gv[:, :-1] > 0) != (gv[:, 1:] > 0))
            if not len(row):
                continue
            rr, pp = r[row, 0], ph[row, 0]
            ua, ub = u[row, col], u[row, col + 1]
            ga = gv[row, col]
            for _ in range(40):
                um = 0.5 * (ua + ub)
                gm = g(um, rr, pp)
                left = (gm > 0) == (ga > 0)
                ua, ga = np.where(left, um, ua), np.where(left, gm, ga)
                ub = np.where(left, ub, um)
            f0 = 0.5 * (ua + ub)
            f1 = rr * np.sin(a + _PIN_RATE * np.exp(f0) + pp)
            logpf = log_norm - 0.5 * ((f0 - 1) / _PIN_RADIAL) ** 2 - 0.5 * (f1 / noise) ** 2
            jac = 4 * np.abs(1 + _PIN_RATE * f1 * np.exp(f0))
            np.add.at(dens, sel[row], np.exp(logpf) / jac / 5)
    with np.errstate(divide="ignore"):
        return np.log(dens)

# --------------------------------------------------------------------------------------------
# sampling
# --------------------------------------------------------------------------------------------

def _sample_mixture_of_centres(c: np.ndarray, std: float, n: int, rng: np.random.Generator) -> np.ndarray:
    idx = rng.integers(0, len(c), n)
    return c[idx] + std * rng.standard_normal((n, c.shape[1]))


def _sample(name: str, n: int, noise: float, rng: np.random.Generator, text: str | None) -> np.ndarray:
    if name == "8gaussians":
        return _sample_mixture_of_centres(_eight_centres() * 1.414, noise, n, rng) / 1.414
    if name == "moons":
        n_out = n // 2
        t_out, t_in = rng.uniform(0, np.pi, n_out), rng.uniform(0, np.pi, n - n_out)
        outer = np.stack([np.cos(t_out), np.sin(t_out)], 1)
        inner = np.stack([1 - np.cos(t_in), 1 - np.sin(t_in) - 0.5], 1)
        x = np.concatenate([outer, inner]) + noise * rng.standard_normal((n, 2))
        return rng.permutation(x * 2 + np.array([-1.0, -0.2]))
    if name == "circles":
        n_out = n // 2
        t = rng.uniform(0, 2 * np.pi, n)
        r = np.where(np.arange(n) < n_out, 1.0, 0.5)
        x = r[:, None] * np.stack([np.cos(t), np.sin(t)], 1) + noise * rng.standard_normal((n, 2))
        return rng.permutation(x * 3)
    if name == "checkerboard":
        x1 = rng.random(n) * 4 - 2
        x2 = rng.random(n) - rng.integers(0, 2, n) * 2 + np.floor(x1) % 2
        return np.stack([x1, x2], 1) * 2
    if name == "2spirals":
        t = np.sqrt(rng.random(n)) * 540 * (2 * np.pi) / 360
        arm = np.stack([-np.cos(t) * t + rng.random(n) * 0.5, np.sin(t) * t + rng.random(n) * 0.5], 1)
        sign = np.where(np.arange(n) < n - n // 2, 1.0, -1.0)[:, None]
        x = sign * arm / 3 + noise * rng.standard_normal((n, 2))
        return rng.permutation(x)
    if name == "pinwheel":
        labels = np.arange(n) % 5
        f = rng.standard_normal((n, 2)) * np.array([0.3, noise])
        f[:, 0] += 1.0
        ang = np.linspace(0, 2 * np.pi, 5, endpoint=False)[labels] + 0.25 * np.exp(f[:, 0])
        c, s = np.cos(ang), np.sin(ang)
        x = np.stack([f[:, 0] * c + f[:, 1] * s, -f[:, 0] * s + f[:, 1] * c], 1)
        return 2 * rng.permutation(x)
    if name == "swissroll":
        t = 1.5 * np.pi * (1 + 2 * rng.random(n))
        x = np.stack([t * np.cos(t), t * np.sin(t)], 1) + noise * rng.standard_normal((n, 2))
        return x / 5
    if name == "grid25":
        return _sample_mixture_of_centres(_grid_centres(), noise, n, rng)
    if name == "ring8":
        return _sample_mixture_of_centres(_ring_centres(), noise, n, rng)
    if name == "mixture1d":
        k = rng.choice(3, size=n, p=_MIX_W)
        return (_MIX_MU[k] + noise * _MIX_REL_STD[k] * rng.standard_normal(n))[:, None]
    if name == "skewed1d":
        return np.exp(noise * rng.standard_normal(n))[:, None]
    if name == "heavytail1d":
        return (noise * rng.standard_t(_T_DOF, n))[:, None]
    if name == "integers1d":
        values = parse_integers(DEFAULT_INTEGERS_TEXT if text is None else text)[:, 0].astype(np.float64)
        return (rng.choice(values, n) + noise * rng.standard_normal(n))[:, None]
    raise AssertionError(name)  # pragma: no cover (every spec has a sampler)


def sample(name: str, n: int, noise: float | None = None, seed: int | np.random.SeedSequence = 0, *,
           text: str | None = None) -> np.ndarray:
    """``n`` points of toy set ``name``: float32, C-contiguous, shape (n, dim); deterministic given
    ``seed`` (an int or a ``SeedSequence``). ``text`` (integers1d only) is the hand-typed sample to draw from."""
    noise = resolve_noise(name, noise)
    n = _check_n(n)
    x = _sample(name, n, noise, np.random.default_rng(seed), text)
    return np.ascontiguousarray(x, dtype=np.float32)


# --------------------------------------------------------------------------------------------
# true densities
# --------------------------------------------------------------------------------------------

def _as_points(x, dim: int) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if dim == 1 and x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[1] != dim:
        raise ValueError(f"expected points of shape (N, {dim}), got {x.shape}")
    return x


def density_known(name: str, noise: float | None = None) -> bool:
    """Whether :func:`log_density` knows the true density of ``name`` at this noise."""
    noise = resolve_noise(name, noise)
    return name == "checkerboard" or (_spec(name).has_density and noise > 0)


def log_density(name: str, x, noise: float | None = None) -> np.ndarray | None:
    """The true log density (nats) of toy set ``name`` at the rows of ``x``, float64 (N,).

    Exact for 8gaussians, grid25, ring8, checkerboard (log 1/32 inside its cells, -inf outside)
    and the parametric 1D sets. For moons and circles it is numeric: the data are points on curves
    convolved with isotropic gaussian noise, p(x) = int N(x; c(t), s^2 I) p(t) dt, computed by
    quadrature over the arc parameter t with 2000 nodes in all (midpoint rule on the moons' arcs,
    trapezoid rule on the periodic circles). None where the density is not known (2spirals,
    pinwheel, swissroll, integers1d) or is degenerate (noise 0).
    """
    spec = _spec(name)
    noise = resolve_noise(name, noise)
    x = _as_points(x, spec.dim)
    if name == "checkerboard":
        inside = (np.abs(x) <= 4).all(1)
        cells = np.floor(np.clip(x, -4, 4 - 1e-12) / 2).astype(np.int64)
        inside &= (cells.sum(1) % 2) == 0
        return np.where(inside, -math.log(32.0), -np.inf)
    if not density_known(name, noise):
        return None
    if name == "skewed1d":  # lognormal(0, noise)
        with np.errstate(divide="ignore", invalid="ignore"):
            lx = np.log(np.where(x[:, 0] > 0, x[:, 0], np.nan))
            out = -lx - math.log(noise) - 0.5 * math.log(2 * math.pi) - 0.5 * (lx / noise) ** 2
        return np.where(x[:, 0] > 0, out, -np.inf)
    if name == "heavytail1d":  # Student-t, 3 dof, scale noise
        nu = _T_DOF
        c = math.lgamma((nu + 1) / 2) - math.lgamma(nu / 2) - 0.5 * math.log(nu * math.pi) - math.log(noise)
        return c - (nu + 1) / 2 * np.log1p((x[:, 0] / noise) ** 2 / nu)
    if name == "2spirals":
        return _spirals_logpdf(x, noise)
    if name == "pinwheel":
        return _pinwheel_logpdf(x, noise)
    form = _mixture_form(name, noise)
    assert form is not None
    return _mixture_logpdf(x, *form)


_ENTROPY_CACHE: dict[tuple, float] = {}


def true_entropy(name: str, noise: float | None = None, n_mc: int = 200_000, seed: int = 123) -> float | None:
    """The differential entropy -E[log p(x)] in nats: Monte Carlo over ``n_mc`` samples of the set
    (ln 32 exactly for checkerboard); None where the density is unknown. Results are cached by
    (name, noise, n_mc, seed)."""
    noise = resolve_noise(name, noise)
    if name == "checkerboard":
        return math.log(32.0)
    if not density_known(name, noise):
        return None
    key = (name, noise, int(n_mc), seed)
    if key not in _ENTROPY_CACHE:
        lp = log_density(name, sample(name, n_mc, noise, seed), noise)
        _ENTROPY_CACHE[key] = float(-lp.mean())
    return _ENTROPY_CACHE[key]


# --------------------------------------------------------------------------------------------
# modes and mode coverage (REFERENCES.md, "GAN mode coverage")
# --------------------------------------------------------------------------------------------

def modes(name: str, noise: float | None = None) -> tuple[np.ndarray, float] | None:
    """(centres (K, dim), std) of the gaussian modes of ring8, grid25 and 8gaussians, else None."""
    noise = resolve_noise(name, noise)
    if name == "8gaussians":
        return _eight_centres(), noise / 1.414
    if name == "grid25":
        return _grid_centres(), noise
    if name == "ring8":
        return _ring_centres(), noise
    return None


#: the quality gate of the mode count the app shows: a mode is covered when at least this share of
#: its fair share of the samples (n / K) are high quality and fall to it (REFERENCES.md lets a
#: minimum count replace PacGAN's "any one sample"; this is ours). A ring of samples through
#: ring8's modes and the gaps between them puts about 8 % of a fair share near each mode: 0/8.
QUALITY_SHARE = 0.1


def quality_min_count(n: int, k: int) -> int:
    """The high-quality samples a mode needs to count as covered, for ``n`` samples over ``k`` modes."""
    return max(1, math.ceil(QUALITY_SHARE * n / max(1, k)))


def mode_coverage(samples, centres, std: float, min_count: int = 1) -> dict:
    """Mode coverage as in VEEGAN / PacGAN.

    Each sample is assigned to its nearest centre; it is high quality when it lies within
    3 ``std`` (Euclidean distance) of that centre. A mode is covered when at least ``min_count``
    high-quality samples are assigned to it (``min_count=1`` is PacGAN's rule). Returns
    ``{"modes_covered": int, "n_modes": int, "high_quality": fraction of samples}``. Non-finite
    samples count as not high quality.
    """
    centres = np.asarray(centres, dtype=np.float64)
    if centres.ndim == 1:
        centres = centres[:, None]
    if centres.ndim != 2 or len(centres) == 0:
        raise ValueError(f"centres must be a non-empty (K, dim) array, got shape {centres.shape}")
    x = _as_points(samples, centres.shape[1])
    if isinstance(std, bool) or not isinstance(std, Real) or not math.isfinite(std) or std <= 0:
        raise ValueError(f"std must be a positive number, got {std!r}")
    if isinstance(min_count, bool) or not isinstance(min_count, Integral) or min_count < 1:
        raise ValueError(f"min_count must be a whole number >= 1, got {min_count!r}")
    k = len(centres)
    counts = np.zeros(k, np.int64)
    n_good = 0
    c2 = (centres ** 2).sum(1)
    step = max(1, 2_000_000 // k)
    for i in range(0, len(x), step):
        xb = x[i:i + step]
        d2 = (xb ** 2).sum(1)[:, None] + c2[None, :] - 2.0 * (xb @ centres.T)
        with np.errstate(invalid="ignore"):
            nearest = np.argmin(np.where(np.isnan(d2), np.inf, d2), 1)
            good = np.take_along_axis(d2, nearest[:, None], 1)[:, 0] <= 9.0 * std ** 2
        counts += np.bincount(nearest[good], minlength=k)
        n_good += int(good.sum())
    return {"modes_covered": int((counts >= min_count).sum()), "n_modes": int(k),
            "high_quality": n_good / len(x) if len(x) else 0.0}


# --------------------------------------------------------------------------------------------
# plotting bounds
# --------------------------------------------------------------------------------------------

def view_bounds(x, pad: float = 0.1) -> tuple[tuple[float, float], ...]:
    """(lo, hi) per dimension for plotting: the 0.5-99.5 percentile range of the finite rows,
    padded by ``pad`` of the span on each side; in 2D both axes get the same span (the larger,
    centred on each axis)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[1] < 1:
        raise ValueError(f"expected points of shape (N, dim), got {x.shape}")
    x = x[np.isfinite(x).all(1)]
    if len(x) == 0:
        raise ValueError("no finite points to bound")
    if not math.isfinite(pad) or pad < 0:
        raise ValueError(f"pad must be finite and >= 0, got {pad}")
    lo, hi = np.percentile(x, 0.5, axis=0), np.percentile(x, 99.5, axis=0)
    mid, span = (lo + hi) / 2, hi - lo
    if x.shape[1] >= 2:
        span = np.full_like(span, span.max())
    span = np.where(span > 1e-9 * np.maximum(1.0, np.abs(mid)), span, np.maximum(1.0, 0.1 * np.abs(mid)))
    half = span * (0.5 + pad)
    return tuple((float(m - h), float(m + h)) for m, h in zip(mid, half))
