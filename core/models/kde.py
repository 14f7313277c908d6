"""Kernel density estimation: a fixed-bandwidth KDE with FFT density grids, and an adaptive one.

``kde``: ``p(x) = 1/n sum_i K_h(x - x_i)`` with a product kernel (the same 1D kernel on each axis)
whose per-axis bandwidth ``h_d`` is the kernel's standard deviation (so the Epanechnikov kernel
``3/(4r) (1 - (u/r)^2)`` has support radius ``r = sqrt(5) h``: every rule means the same
smoothing for both kernels). Bandwidth rules, per axis ``d`` (sigma: sample std, IQR: inter-
quartile range, n points, dimension D):

* ``scott``:      ``h_d = sigma_d * n^(-1/(D+4))``
* ``silverman``:  ``h_d = 0.9 * min(sigma_d, IQR_d / 1.34) * n^(-1/(D+4))`` (R's bw.nrd0 in 1D)
* ``isj``:        improved Sheather-Jones (Botev, Grotowski & Kroese 2010, "Kernel density
  estimation via diffusion"): the fixed point ``t = xi gamma^[l](t)`` solved on the discrete
  cosine transform of the linearly binned data (2^14 bins over the range padded by 10 %). In 2D
  Botev's bivariate version (256 x 256 bins, range padded by 25 %) gives the two bandwidths of a
  product gaussian kernel with a diagonal bandwidth matrix, from the estimated functionals
  psi_40, psi_04, psi_22. When the fixed-point equation has no root (tiny or lattice data such
  as integers), Silverman's rule is used instead and the metric ``isj_fallback`` says so.
* ``manual``:     ``h_d = bandwidth`` on every axis (> 0).

``log_prob`` is exact: direct sums over the stored points, in chunks (logsumexp for the gaussian
kernel). The Epanechnikov kernel has compact support, so like the histogram it mixes in a floor
of 1e-6 times a broad gaussian (see histogram.py); the gaussian KDE needs none.

``density_grid`` (the views) bins the points linearly onto the grid (extended by the kernel's
reach so that points just outside the view still count) and convolves with the sampled kernel
by FFT, zero-padded so nothing wraps around: O(n + G log G) instead of O(n G). For the gaussian
kernel the sampled kernel is corrected by ``- (delta^2 / 12) K''`` per axis, which cancels the
average smoothing that linear binning adds (its leading error term), when h >= the grid step;
bandwidths of one to three grid steps are computed on a grid refined by 3 or 5. Kernels
narrower than a pixel are renormalised on the grid, which then shows each pixel's mass over its
area rather than point values that would miss the peaks (the same for the adaptive KDE, whose
narrow kernels contribute their pixel averages).

``adaptive_kde``: the sample-point estimator ``p(x) = 1/n sum_i N(x; x_i, diag(lambda_i h)^2)``
with local factors ``lambda_i = (r_k(x_i) / G)^(D * alpha)``, where ``r_k`` is the distance
from ``x_i`` to its k-th nearest other training point (axes scaled by their std), G the
geometric mean of the r_k and ``alpha`` the sensitivity (Abramson's square-root law is
alpha = 1/2, since the kNN pilot density is proportional to r_k^-D). Each kernel integrates to 1,
so the estimate does too (unlike the balloon estimator, whose bandwidth follows the query point).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from core.models.histogram import (FIT_HPARAMS, FLOOR_WEIGHT, FittedModel, diag_gauss_log_prob, floor_params,
                                   floor_samples, spread_or_fail, with_floor)
from core.protocol import DataKind, HParam, Likelihood, ModelInfo, grid_points
from core.registry import register

_SQRT5 = math.sqrt(5.0)
_LOG_2PI = math.log(2 * math.pi)
#: kernel reach in bandwidths (kernel std): gaussian tails beyond 6 h are below 1.6e-8 of the peak
_REACH = {"gaussian": 6.0, "epanechnikov": _SQRT5}
#: elements per chunk of the direct sums (queries x points)
_CHUNK = 1 << 22


# --------------------------------------------------------------------------------------------
# bandwidth rules
# --------------------------------------------------------------------------------------------


def scott_bandwidth(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    n, d = x.shape
    return x.std(0, ddof=1) * n ** (-1.0 / (d + 4))


def silverman_bandwidth(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    n, d = x.shape
    sigma = x.std(0, ddof=1)
    iqr = np.percentile(x, 75, axis=0) - np.percentile(x, 25, axis=0)
    a = np.where(iqr > 0, np.minimum(sigma, iqr / 1.34), sigma)
    return 0.9 * a * n ** (-1.0 / (d + 4))


def dct2(x: np.ndarray, axis: int = 0) -> np.ndarray:
    """Unnormalised DCT-II along ``axis``, as in Botev's code: ``y_0 = sum x``,
    ``y_k = 2 sum_m x_m cos(pi k (2m + 1) / (2n))`` for k >= 1 (via one FFT)."""
    x = np.moveaxis(np.asarray(x, np.float64), axis, 0)
    n = x.shape[0]
    v = np.concatenate([x[0::2], x[::-1][n % 2::2]], 0)
    k = np.arange(n).reshape((-1,) + (1,) * (x.ndim - 1))
    w = 2 * np.exp(-1j * np.pi * k / (2 * n))
    w[0] = 1
    return np.moveaxis(np.real(w * np.fft.fft(v, axis=0)), 0, axis)


def _linear_bin(u: np.ndarray, n: int) -> np.ndarray:
    """Linear binning of ``u`` (N, D), in grid units (node i at u = i), onto n^D nodes."""
    n_pts, d = u.shape
    i0 = np.clip(np.floor(u).astype(np.int64), 0, n - 2)
    f = np.clip(u - i0, 0.0, 1.0)
    out = np.zeros(n ** d)
    for corner in range(2 ** d):
        idx = np.zeros(n_pts, np.int64)
        w = np.ones(n_pts)
        for ax in range(d):
            bit = (corner >> ax) & 1
            idx = idx * n + i0[:, ax] + bit
            w = w * (f[:, ax] if bit else 1 - f[:, ax])
        out += np.bincount(idx, w, n ** d)
    return out.reshape((n,) * d)


def _smallest_root(g, t_max: float = 0.1) -> float | None:
    """Smallest t in (0, t_max] where ``g`` changes sign from negative to positive (a log scan
    then bisection); None when there is none."""
    ts = np.geomspace(1e-14, t_max, 64)
    prev_t, prev_v = 0.0, -1.0
    for t in ts:
        v = g(t)
        if not np.isfinite(v):
            prev_t, prev_v = t, -1.0
            continue
        if v >= 0 and prev_v < 0:
            lo, hi = prev_t, t
            for _ in range(60):
                mid = 0.5 * (lo + hi)
                gm = g(mid)
                if np.isfinite(gm) and gm >= 0:
                    hi = mid
                else:
                    lo = mid
                if hi - lo <= 1e-9 * hi:
                    break
            return 0.5 * (lo + hi)
        prev_t, prev_v = t, v
    return None


def isj_bandwidth_1d(x: np.ndarray, n_grid: int = 2 ** 14) -> tuple[float, bool]:
    """Improved Sheather-Jones bandwidth of 1D data (Botev et al. 2010): (h, fell_back)."""
    x = np.asarray(x, np.float64).ravel()
    lo, hi = x.min(), x.max()
    span0 = hi - lo
    lo, hi = lo - span0 / 10, hi + span0 / 10
    span = hi - lo
    n_unique = len(np.unique(x))
    u = (x - lo) / span * (n_grid - 1)
    initial = _linear_bin(u[:, None], n_grid)
    initial /= initial.sum()
    a = dct2(initial)
    sq = np.arange(1, n_grid, dtype=np.float64) ** 2
    a2 = (a[1:] / 2) ** 2
    ell = 7
    # 2 pi^(2s) I^s a2 for s = 2..ell, and the pilot-time constants of Botev's recursion. (Sums
    # are plain numpy, not BLAS dot products, whose spinning threads crawl on a busy machine.)
    weights = {s: 2 * np.pi ** (2 * s) * sq ** s * a2 for s in range(2, ell + 1)}
    consts = {s: 2 * (1 + 0.5 ** (s + 0.5)) / 3 * np.prod(np.arange(1, 2 * s, 2, dtype=np.float64))
              / np.sqrt(2 * np.pi) / n_unique for s in range(2, ell)}
    decay = -sq * np.pi ** 2

    def fixed_point(t: float) -> float:
        f = float((weights[ell] * np.exp(np.maximum(decay * t, -700.0))).sum())
        for s in range(ell - 1, 1, -1):
            if not f > 0:
                return np.nan
            time = (consts[s] / f) ** (2 / (3 + 2 * s))
            f = float((weights[s] * np.exp(np.maximum(decay * time, -700.0))).sum())
        if not f > 0:
            return np.nan
        return t - (2 * n_unique * np.sqrt(np.pi) * f) ** (-0.4)

    with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
        t_star = _smallest_root(fixed_point)
    if t_star is None:
        return float(silverman_bandwidth(x[:, None])[0]), True
    return float(np.sqrt(t_star) * span), False


def isj_bandwidth_2d(x: np.ndarray, n_grid: int = 256) -> tuple[np.ndarray, bool]:
    """Botev's bivariate diffusion bandwidths (diagonal bandwidth matrix): ((h_x, h_y), fell_back)."""
    x = np.asarray(x, np.float64)
    n = len(x)
    lo, hi = x.min(0), x.max(0)
    rng = hi - lo
    lo, hi = lo - rng / 4, hi + rng / 4
    scaling = hi - lo
    u = (x - lo) / scaling * n_grid - 0.5  # cell centres are the nodes
    initial = _linear_bin(np.clip(u, 0, n_grid - 1), n_grid)  # [ix, iy]
    initial /= initial.sum()
    a = dct2(dct2(initial, 0), 1)
    a2 = a ** 2
    sq = np.arange(n_grid, dtype=np.float64) ** 2
    half = np.full(n_grid, 0.5)
    half[0] = 1.0

    def psi(sx: int, sy: int, t: float) -> float:
        w = np.exp(np.maximum(-sq * np.pi ** 2 * t, -700.0)) * half
        # einsum, not a BLAS product: BLAS threads spin and crawl on a busy machine
        total = float((np.einsum("ij,j->i", a2, w * sq ** sy) * (w * sq ** sx)).sum())
        return (-1) ** (sx + sy) * total * np.pi ** (2 * (sx + sy))

    def kk(s: int) -> float:
        return (-1) ** s * float(np.prod(np.arange(1, 2 * s, 2, dtype=np.float64))) / np.sqrt(2 * np.pi)

    memo: dict[tuple[int, int, float], float] = {}

    def func(sx: int, sy: int, t: float) -> float:
        key = (sx, sy, t)
        if key not in memo:
            order = sx + sy
            if order <= 4:
                total = func(sx + 1, sy, t) + func(sx, sy + 1, t)
                const = (1 + 1 / 2 ** (order + 1)) / 3
                base = -2 * const * kk(sx) * kk(sy) / n / total
                memo[key] = psi(sx, sy, base ** (1 / (2 + order))) if base > 0 else np.nan
            else:
                memo[key] = psi(sx, sy, t)
        return memo[key]

    def evolve(t: float) -> float:
        total = func(0, 2, t) + func(2, 0, t) + 2 * func(1, 1, t)
        if not total > 0:
            return np.nan
        time = (2 * np.pi * n * total) ** (-1 / 3)
        return (t - time) / time

    with np.errstate(over="ignore", under="ignore", invalid="ignore", divide="ignore"):
        t_star = _smallest_root(evolve)
        if t_star is not None:
            p_xx, p_yy, p_11 = func(2, 0, t_star), func(0, 2, t_star), func(1, 1, t_star)
            denom = p_11 + np.sqrt(p_xx * p_yy)
            t_x = (p_yy ** 0.75 / (4 * np.pi * n * p_xx ** 0.75 * denom)) ** (1 / 3)
            t_y = (p_xx ** 0.75 / (4 * np.pi * n * p_yy ** 0.75 * denom)) ** (1 / 3)
            h = np.sqrt([t_x, t_y]) * scaling
            if np.all(np.isfinite(h)) and np.all(h > 0):
                return h, False
    return silverman_bandwidth(x), True


def select_bandwidth(x: np.ndarray, rule: str, manual: float = 0.0) -> tuple[np.ndarray, bool]:
    """Per-axis bandwidths (kernel std) for ``rule``; (h, whether ISJ fell back)."""
    x = np.asarray(x, np.float64)
    d = x.shape[1]
    if rule == "manual":
        return np.full(d, float(manual)), False
    if rule == "scott":
        return scott_bandwidth(x), False
    if rule == "silverman":
        return silverman_bandwidth(x), False
    if rule == "isj":
        if d == 1:
            h, fb = isj_bandwidth_1d(x[:, 0])
            return np.array([h]), fb
        return isj_bandwidth_2d(x)
    raise ValueError(f"unknown bandwidth rule {rule!r}")


# --------------------------------------------------------------------------------------------
# direct evaluation
# --------------------------------------------------------------------------------------------


def kde_log_prob(x: torch.Tensor, points: torch.Tensor, h: torch.Tensor, kernel: str = "gaussian",
                 scale: torch.Tensor | None = None) -> torch.Tensor:
    """Exact log of ``1/n sum_i prod_d K((x_d - p_id) / (h_d s_i)) / (h_d s_i)`` by chunked direct
    sums; ``scale`` (n,) are per-point factors s_i (adaptive KDE), gaussian kernel only."""
    n, d = points.shape
    out = torch.empty(len(x), dtype=x.dtype, device=x.device)
    step = max(1, _CHUNK // max(1, n))
    if kernel == "gaussian":
        inv = 1.0 / h
        p_scaled = points * inv
        if scale is None:
            log_norm = -torch.log(h).sum() - 0.5 * d * _LOG_2PI - math.log(n)
            w = None
        else:
            w = 1.0 / scale
            log_norm_i = -torch.log(h).sum() - d * torch.log(scale) - 0.5 * d * _LOG_2PI - math.log(n)
        for i in range(0, len(x), step):
            q = x[i:i + step] * inv
            sq = torch.zeros(len(q), n, dtype=x.dtype, device=x.device)
            for ax in range(d):
                diff = q[:, ax:ax + 1] - p_scaled[:, ax]
                sq += diff * diff
            if w is None:
                out[i:i + step] = torch.logsumexp(-0.5 * sq, 1) + log_norm
            else:
                out[i:i + step] = torch.logsumexp(-0.5 * sq * (w * w) + log_norm_i, 1)
        return out
    if kernel == "epanechnikov":
        if scale is not None:
            raise ValueError("per-point scales are only supported with the gaussian kernel")
        r = _SQRT5 * h
        log_norm = torch.log(0.75 / r).sum() - math.log(n)
        for i in range(0, len(x), step):
            q = x[i:i + step]
            prod = torch.ones(len(q), n, dtype=x.dtype, device=x.device)
            for ax in range(d):
                v = (q[:, ax:ax + 1] - points[:, ax]) / r[ax]
                prod *= (1 - v * v).clamp_min(0)
            out[i:i + step] = torch.log(prod.sum(1)) + log_norm
        return out
    raise ValueError(f"unknown kernel {kernel!r}")


# --------------------------------------------------------------------------------------------
# FFT density grid
# --------------------------------------------------------------------------------------------


def _fast_len(n: int) -> int:
    """Smallest 2^a 3^b 5^c >= n (sizes the FFT handles best)."""
    best = 1 << max(0, (n - 1).bit_length())
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            m = p35
            while m < n:
                m *= 2
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return best


def _kernel_1d(offsets: torch.Tensor, h: float, kernel: str, delta: float, whole: bool) -> torch.Tensor:
    """The 1D kernel sampled at ``offsets`` (float64); the gaussian one corrected by
    -(delta^2/12) K'' when resolved (h >= delta). When the offsets cover its whole reach
    (``whole``) it is normalised to unit mass on the grid, which matters for kernels narrower
    than the grid step (and changes nothing otherwise)."""
    if kernel == "gaussian":
        u = offsets / h
        k = torch.exp(-0.5 * u * u) / (math.sqrt(2 * math.pi) * h)
        if h >= delta:
            k = k - (delta * delta / 12.0) * k * (u * u - 1) / (h * h)
    else:
        r = _SQRT5 * h
        v = offsets / r
        k = 0.75 / r * (1 - v * v).clamp_min(0)
    return k / (k.sum() * delta) if whole else k


def _direct_grid(points: torch.Tensor, h: torch.Tensor, kernel: str, axes: list[torch.Tensor]) -> torch.Tensor:
    """sum_i K_h(g - p_i) at the grid nodes (not divided by n), float64, separable per axis."""
    vals = []
    for ax, g in enumerate(axes):
        off = g[None, :] - points[:, ax:ax + 1]
        vals.append(_kernel_values(off, float(h[ax]), kernel))
    if len(axes) == 1:
        return vals[0].sum(0)
    return vals[1].T @ vals[0]  # [iy, ix]


def _kernel_values(off: torch.Tensor, h: float, kernel: str) -> torch.Tensor:
    if kernel == "gaussian":
        u = off / h
        return torch.exp(-0.5 * u * u) / (math.sqrt(2 * math.pi) * h)
    r = _SQRT5 * h
    v = off / r
    return 0.75 / r * (1 - v * v).clamp_min(0)


def fft_density_grid(points: torch.Tensor, h: torch.Tensor, kernel: str,
                     bounds: Sequence[tuple[float, float]], res: int) -> torch.Tensor:
    """The KDE of ``points`` with per-axis bandwidths ``h`` at the pixel centres of
    :func:`core.protocol.grid_points` (shape (res,) or (res, res), rows along y), float64.

    Points are linearly binned onto the grid extended by the kernel's reach (at most two view
    widths each side; the few points beyond that but within reach are added directly), then
    convolved with the sampled kernel through a zero-padded FFT. Where the bandwidth is under three
    grid steps the work is done on a grid refined by an odd factor (whose nodes include the pixel
    centres), so narrow kernels are still resolved."""
    d = points.shape[1]
    fine = []
    for a in range(d):
        step = (bounds[a][1] - bounds[a][0]) / res
        m = 1
        limit = 65536 if d == 1 else 1024
        if float(h[a]) >= step:  # resolved: point values, on a finer grid if h < 3 steps
            while float(h[a]) < 3 * step / m and m < 5 and res * (m + 2) <= limit:
                m += 2
        fine.append(m)
    out = _fft_grid(points, h, kernel, bounds, [res * m for m in fine])
    return out[tuple(slice(m // 2, None, m) for m in reversed(fine))]


def _fft_grid(points: torch.Tensor, h: torch.Tensor, kernel: str,
              bounds: Sequence[tuple[float, float]], res: list[int]) -> torch.Tensor:
    dev = points.device
    n, d = points.shape
    pts = points.double()
    hd = h.double().to(dev)
    lo = torch.tensor([b[0] for b in bounds], dtype=torch.float64, device=dev)
    hi = torch.tensor([b[1] for b in bounds], dtype=torch.float64, device=dev)
    delta = (hi - lo) / torch.tensor(res, dtype=torch.float64, device=dev)
    reach = _REACH[kernel] * hd
    pad = [min(int(math.ceil(float(reach[a] / delta[a]))), 2 * res[a]) for a in range(d)]
    half = [min(int(math.ceil(float(reach[a] / delta[a]))), pad[a] + res[a] - 1) for a in range(d)]
    size = [res[a] + 2 * pad[a] for a in range(d)]
    # continuous node index on the extended grid (node j at lo + (j - pad + 1/2) delta)
    t = (pts - lo) / delta - 0.5 + torch.tensor(pad, dtype=torch.float64, device=dev)
    i0 = torch.floor(t)
    hi_node = torch.tensor([s - 2 for s in size], dtype=torch.float64, device=dev)
    binned = ((i0 >= 0) & (i0 <= hi_node)).all(1)
    f = (t - i0)[binned]
    i0 = i0[binned].long()
    total = int(np.prod(size))
    grid = torch.zeros(total, dtype=torch.float64, device=dev)
    for corner in range(2 ** d):
        idx = torch.zeros(len(i0), dtype=torch.long, device=dev)
        w = torch.ones(len(i0), dtype=torch.float64, device=dev)
        for ax in reversed(range(d)):  # y slowest: flat = iy * size_x + ix
            bit = (corner >> ax) & 1
            idx = idx * size[ax] + i0[:, ax] + bit
            w = w * (f[:, ax] if bit else 1 - f[:, ax])
        grid += torch.bincount(idx, w, minlength=total)
    grid = grid.reshape([size[ax] for ax in reversed(range(d))])  # [y, x] in 2D
    kernels = [_kernel_1d(torch.arange(-half[a], half[a] + 1, dtype=torch.float64, device=dev) * delta[a],
                          float(hd[a]), kernel, float(delta[a]), half[a] * float(delta[a]) >= float(reach[a]))
               for a in range(d)]
    kern = kernels[0] if d == 1 else kernels[1][:, None] * kernels[0][None, :]
    fft_size = [_fast_len(size[a] + 2 * half[a]) for a in reversed(range(d))]
    dims = tuple(range(d))
    spec = torch.fft.rfftn(grid, s=fft_size, dim=dims) * torch.fft.rfftn(kern, s=fft_size, dim=dims)
    full = torch.fft.irfftn(spec, s=fft_size, dim=dims)
    start = [pad[a] + half[a] for a in reversed(range(d))]
    out = full[tuple(slice(s, s + r) for s, r in zip(start, reversed(res)))]
    # points outside the binned area but within the kernel's reach of the view: added directly
    inner_lo, inner_hi = lo + delta / 2, hi - delta / 2
    near = (~binned) & ((pts >= inner_lo - reach) & (pts <= inner_hi + reach)).all(1)
    if bool(near.any()):
        axes = [inner_lo[a] + delta[a] * torch.arange(res[a], dtype=torch.float64, device=dev) for a in range(d)]
        extra = pts[near]
        for i in range(0, len(extra), 4096):
            out = out + _direct_grid(extra[i:i + 4096], hd, kernel, axes)
    return (out / n).clamp_min(0)


# --------------------------------------------------------------------------------------------
# the models
# --------------------------------------------------------------------------------------------


def subsample(x: torch.Tensor, max_points: int, seed: int = 0) -> torch.Tensor:
    if len(x) <= max_points:
        return x
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(x), generator=g)[:max_points].to(x.device)
    return x[idx]


def _epanechnikov_noise(n: int, d: int, generator, device) -> torch.Tensor:
    """Standard Epanechnikov draws on [-1, 1] per axis (Devroye: the median-of-three rule)."""
    u = torch.rand(3, n, d, generator=generator, device=device) * 2 - 1
    a = u.abs()
    take2 = (a[2] >= a[1]) & (a[2] >= a[0])
    return torch.where(take2, u[1], u[2])


@register
class KDE(FittedModel):
    info = ModelInfo(
        key="kde",
        name="Kernel density estimate",
        group="Classical density estimation",
        description="Average of one kernel per training point (product kernel, bandwidth = kernel std per "
                    "axis). Bandwidth by Scott's or Silverman's rule, improved Sheather-Jones (Botev et al. "
                    "2010; in 2D the bivariate diffusion estimator, one bandwidth per axis) or by hand. Exact "
                    "log-likelihood by direct sums; density maps by linear binning and FFT convolution. The "
                    "Epanechnikov kernel has compact support, so a floor of 1e-6 times a broad gaussian is "
                    "mixed in (normalised). One training step is one fit.",
        likelihood=Likelihood.EXACT,
        data_kinds=(DataKind.POINTS_1D, DataKind.POINTS_2D),
        hparams=(
            HParam("kernel", "choice", "gaussian", choices=("gaussian", "epanechnikov"),
                   help="kernel shape (both scaled to the same standard deviation)"),
            HParam("bandwidth_rule", "choice", "isj", choices=("scott", "silverman", "isj", "manual"),
                   help="how the bandwidth is chosen; isj suits multimodal data"),
            HParam("bandwidth", "float", 0.2, 0.0, 1e4, log=True,
                   help="kernel std on every axis, used by the manual rule (> 0)"),
            HParam("max_points", "int", 200_000, 2, 2_000_000,
                   help="larger training sets are subsampled (seeded) to this many points"),
        ) + FIT_HPARAMS,
        full_batch=True,
    )
    resizable_buffers = ("points",)

    def __init__(self, data_shape, hparams):
        super().__init__(data_shape, hparams)
        self.check_point_dims((1, 2), "KDE")
        if not float(hparams.get("bandwidth", 0.2)) > 0:
            raise ValueError(f"bandwidth must be positive, got {hparams.get('bandwidth')}: a zero bandwidth "
                             f"puts an infinitely narrow spike on every training point")
        self.register_buffer("points", torch.zeros(0, self.dim))
        self.register_buffer("bandwidth", torch.ones(self.dim))

    @property
    def kernel(self) -> str:
        return self.hparams.get("kernel", "gaussian")

    def fit(self, x):
        pts = subsample(x, int(self.hparams["max_points"]))
        rule = self.hparams["bandwidth_rule"]
        if rule != "manual":
            spread_or_fail(pts, self.info.name)
        h, fell_back = select_bandwidth(pts.detach().cpu().numpy(), rule, float(self.hparams["bandwidth"]))
        if not (np.all(np.isfinite(h)) and np.all(h > 0)):
            raise ValueError(f"{self.info.name}: the {rule} rule gave bandwidth {h.tolist()}; the data may "
                             f"be degenerate (too few distinct values)")
        self.points = pts.detach().clone()
        self.bandwidth.copy_(torch.as_tensor(h, dtype=torch.float32))
        mean, std = floor_params(pts)
        self.floor_mean.copy_(mean)
        self.floor_std.copy_(std)
        out = {f"bandwidth_{'xy'[a]}": float(h[a]) for a in range(self.dim)}
        out["points"] = float(len(pts))
        if rule == "isj":
            out["isj_fallback"] = float(fell_back)
        return out

    def log_prob(self, x):
        x = self.check_batch(x)
        if not self.is_fitted:
            return self.unfitted_log_prob(x)
        lp = kde_log_prob(x, self.points, self.bandwidth, self.kernel)
        if self.kernel == "gaussian":
            return lp
        return with_floor(lp, x, self.floor_mean, self.floor_std)

    @torch.no_grad()
    def density_grid(self, bounds, res):
        if not self.is_fitted:
            return super().density_grid(bounds, res)
        dens = fft_density_grid(self.points, self.bandwidth, self.kernel, bounds, res)
        if self.kernel != "gaussian":
            g = torch.from_numpy(grid_points(bounds, res)).to(self.device)
            floor = diag_gauss_log_prob(g, self.floor_mean, self.floor_std).double().exp()
            dens = (1 - FLOOR_WEIGHT) * dens + FLOOR_WEIGHT * floor.reshape(dens.shape)
        return np.ascontiguousarray(dens.cpu().numpy(), dtype=np.float32)

    @torch.no_grad()
    def sample(self, n, generator=None):
        if not self.is_fitted:
            return self.unfitted_sample(n, generator)
        idx = torch.randint(0, len(self.points), (n,), generator=generator, device=self.device)
        if self.kernel == "gaussian":
            noise = torch.randn(n, self.dim, generator=generator, device=self.device)
            return self.points[idx] + noise * self.bandwidth
        noise = _epanechnikov_noise(n, self.dim, generator, self.device) * (_SQRT5 * self.bandwidth)
        return floor_samples(self.points[idx] + noise, self.floor_mean, self.floor_std, generator)


def knn_distances(x: torch.Tensor, points: torch.Tensor, k: int, exclude_self: bool = False) -> torch.Tensor:
    """Distance from each row of ``x`` to its k-th nearest row of ``points`` (chunked cdist);
    ``exclude_self``: ``x`` is ``points`` and each point's own zero distance is skipped."""
    kk = k + 1 if exclude_self else k
    out = torch.empty(len(x), dtype=torch.float32, device=x.device)
    step = max(1, _CHUNK // max(1, len(points)))
    for i in range(0, len(x), step):
        dist = torch.cdist(x[i:i + step], points, compute_mode="donot_use_mm_for_euclid_dist")
        out[i:i + step] = torch.topk(dist, kk, dim=1, largest=False).values[:, -1]
    return out


@register
class AdaptiveKDE(FittedModel):
    info = ModelInfo(
        key="adaptive_kde",
        name="Adaptive KDE (sample-point)",
        group="Classical density estimation",
        description="Gaussian KDE whose kernel around each training point widens with the distance to that "
                    "point's k-th nearest neighbour: h_i = h (r_k(x_i) / geometric mean)^(D alpha), h from "
                    "Silverman's rule (alpha = 1/2 is Abramson's law). Narrow kernels where data are dense, "
                    "wide ones in the tails. Every kernel integrates to 1, so the estimate does too. One "
                    "training step is one fit.",
        likelihood=Likelihood.EXACT,
        data_kinds=(DataKind.POINTS_1D, DataKind.POINTS_2D),
        hparams=(
            HParam("k", "int", 10, 1, 1000, help="neighbour whose distance sets each point's bandwidth"),
            HParam("sensitivity", "float", 0.5, 0.0, 1.0,
                   help="alpha: 0 is a fixed KDE, 1/2 Abramson's square-root law"),
            HParam("pilot_rule", "choice", "silverman", choices=("silverman", "scott"),
                   help="rule for the global bandwidth h"),
            HParam("max_points", "int", 5000, 2, 200_000,
                   help="larger training sets are subsampled (seeded) to this many points"),
        ) + FIT_HPARAMS,
        full_batch=True,
    )
    resizable_buffers = ("points", "scale")

    def __init__(self, data_shape, hparams):
        super().__init__(data_shape, hparams)
        self.check_point_dims((1, 2), "Adaptive KDE")
        self.register_buffer("points", torch.zeros(0, self.dim))
        self.register_buffer("scale", torch.zeros(0))
        self.register_buffer("bandwidth", torch.ones(self.dim))

    def fit(self, x):
        pts = subsample(x, int(self.hparams["max_points"]))
        k = int(self.hparams["k"])
        if k >= len(pts):
            raise ValueError(f"{self.info.name}: k = {k} needs more than k training points, got {len(pts)}; "
                             f"lower k or add data")
        spread_or_fail(pts, self.info.name)
        h, _ = select_bandwidth(pts.cpu().numpy(), self.hparams["pilot_rule"])
        std = pts.std(0).clamp_min(1e-12)
        z = pts / std
        r = knn_distances(z, z, k, exclude_self=True).double()
        positive = r[r > 0]
        if len(positive) == 0:
            raise ValueError(f"{self.info.name}: every point has {k} duplicates; the k-th neighbour distance "
                             f"is 0 everywhere. Raise k.")
        r = r.clamp_min(float(positive.min()))
        log_g = torch.log(r).mean()
        lam = torch.exp(self.dim * float(self.hparams["sensitivity"]) * (torch.log(r) - log_g))
        lam = lam.clamp(1e-2, 1e2)
        self.points = pts.detach().clone()
        self.scale = lam.float()
        self.bandwidth.copy_(torch.as_tensor(h, dtype=torch.float32))
        mean, fstd = floor_params(pts)
        self.floor_mean.copy_(mean)
        self.floor_std.copy_(fstd)
        out = {f"bandwidth_{'xy'[a]}": float(h[a]) for a in range(self.dim)}
        out.update(scale_min=float(lam.min()), scale_max=float(lam.max()))
        return out

    def log_prob(self, x):
        x = self.check_batch(x)
        if not self.is_fitted:
            return self.unfitted_log_prob(x)
        return kde_log_prob(x, self.points, self.bandwidth, "gaussian", scale=self.scale)

    @torch.no_grad()
    def density_grid(self, bounds, res):
        """Exact, and separable: each kernel is a product of 1D gaussians, so the grid is
        sum_i Ky_i Kx_i^T, one (res x n) @ (n x res) product per chunk of points. A kernel
        narrower than a pixel along an axis contributes its average over each pixel there
        (normal CDF differences) instead of point values that would miss its peak."""
        if not self.is_fitted:
            return super().density_grid(bounds, res)
        axes = torch.from_numpy(np.stack([grid_points([b], res)[:, 0] for b in bounds])).to(self.device).double()
        steps = [(hi - lo) / res for lo, hi in bounds]
        out = torch.zeros((res,) * self.dim, dtype=torch.float64, device=self.device)
        for i in range(0, len(self.points), 4096):
            pts = self.points[i:i + 4096].double()
            width = self.scale[i:i + 4096, None].double() * self.bandwidth.double()  # (m, d)
            vals = []
            for a in range(self.dim):
                w = width[:, a:a + 1]
                point = torch.exp(-0.5 * ((axes[a][None, :] - pts[:, a:a + 1]) / w) ** 2) / (math.sqrt(2 * math.pi) * w)
                narrow = w[:, 0] < steps[a]
                if bool(narrow.any()):
                    edges = torch.cat([axes[a] - steps[a] / 2, axes[a][-1:] + steps[a] / 2])
                    cdf = torch.special.ndtr((edges[None, :] - pts[narrow, a:a + 1]) / w[narrow])
                    point[narrow] = torch.diff(cdf, dim=1) / steps[a]
                vals.append(point)
            out += vals[0].sum(0) if self.dim == 1 else vals[1].T @ vals[0]
        out /= len(self.points)
        return np.ascontiguousarray(out.cpu().numpy(), dtype=np.float32)

    @torch.no_grad()
    def sample(self, n, generator=None):
        if not self.is_fitted:
            return self.unfitted_sample(n, generator)
        idx = torch.randint(0, len(self.points), (n,), generator=generator, device=self.device)
        noise = torch.randn(n, self.dim, generator=generator, device=self.device)
        return self.points[idx] + noise * self.bandwidth * self.scale[idx, None]
