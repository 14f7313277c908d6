"""Histogram density estimator, with the bin width chosen by cross-validation.

The density is piecewise constant: ``p(x) = count_j / (n * V)`` on bin ``j`` of volume ``V``.
The bin width minimises the leave-one-out cross-validated risk (Rudemo 1982; Wasserman,
*All of Nonparametric Statistics*, eq. 6.16)

    J(h) = 2 / ((n - 1) V) - (n + 1) / ((n - 1) V) * sum_j p_j^2,      p_j = count_j / n,

over a grid of candidate bin counts, or is set by hand. In 2D the bins are squares (the same
width on both axes); the bin count is the number of bins across the widest axis of the data.
The bins span the data range padded by half a bin on each side (one bin in all), so that no
training point lies on an outer edge. Density views (``density_grid``) show each pixel's exact
average of the piecewise-constant density (the overlap of bins and pixel), which is the density
at the pixel's centre wherever the pixel lies inside one bin, and keeps the mass of bins
narrower than a pixel.

Outside the bins the histogram is zero, so a held-out point there would get log 0 = -inf. Every
family in this file (and the KDE with a compact kernel and the kNN estimator, which import the
helpers below) therefore mixes in a tiny floor: ``(1 - 1e-6) * p(x) + 1e-6 * g(x)`` with ``g``
a broad gaussian (the data's mean; per axis the larger of 4 std and the data range), which
keeps the density normalised and the NLL finite. Sampling draws from the same mixture.

Before the first fit every classical model is a standard normal.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from core.protocol import (DataKind, GenerativeModel, HParam, Likelihood, ModelInfo, NonFiniteError,
                           batch_size_hparam, grid_points, lr_hparam)
from core.registry import register

#: weight of the broad gaussian mixed into densities with bounded support
FLOOR_WEIGHT = 1e-6
_LOG_FLOOR = math.log(FLOOR_WEIGHT)
_LOG_KEEP = math.log1p(-FLOOR_WEIGHT)
_LOG_2PI = math.log(2 * math.pi)

#: hparams shared by the models fitted on the whole training set: one step is one fit, so
#: the learning rate and the batch size mean nothing to them (hidden in the help text).
FIT_HPARAMS = (
    lr_hparam(help="unused: this model is fitted, not trained", live=False),
    batch_size_hparam(help="unused: every fit sees the whole training set"),
)


# --------------------------------------------------------------------------------------------
# helpers shared by the classical estimators (kde.py, knn.py import them)
# --------------------------------------------------------------------------------------------


def check_fit_data(x: torch.Tensor, name: str, min_points: int = 2) -> torch.Tensor:
    """The training set as float32 (N, d); ValueError when it is too small or not finite."""
    if x.ndim != 2:
        raise ValueError(f"{name}: expected training data of shape (N, d), got {tuple(x.shape)}")
    n = len(x)
    if n < min_points:
        raise ValueError(f"{name} needs at least {min_points} training points to be fitted, got {n}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name}: the training data contain NaN or infinite values")
    return x.float()


def spread_or_fail(x: torch.Tensor, name: str) -> torch.Tensor:
    """Per-axis range of the data; ValueError when some axis has none (all points equal)."""
    rng = x.max(0).values - x.min(0).values
    if bool((rng <= 0).any()):
        axis = "xy"[int(torch.nonzero(rng <= 0)[0])] if x.shape[1] > 1 else "x"
        raise ValueError(f"{name}: all training points have the same {axis} value, so there is no "
                         f"spread to size the bins or kernels on; add more varied data")
    return rng


def fingerprint(x: torch.Tensor) -> tuple:
    """Cheap identity of a training set: a refit on the same data is skipped."""
    xd = x.detach().double()
    return tuple(x.shape), float(xd.sum()), float((xd * xd).sum()), float(xd[:1].sum())


def diag_gauss_log_prob(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    z = (x - mean) / std
    return -0.5 * (z * z).sum(1) - torch.log(std).sum() - 0.5 * x.shape[1] * _LOG_2PI


def floor_params(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and per-axis std of the broad gaussian floor for data ``x``."""
    std = x.std(0) if len(x) > 1 else torch.zeros(x.shape[1], device=x.device)
    rng = x.max(0).values - x.min(0).values
    return x.mean(0), torch.maximum(4 * std, rng).clamp_min(1e-3)


def with_floor(log_p: torch.Tensor, x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """log((1 - eps) p(x) + eps g(x)): finite everywhere, still normalised."""
    return torch.logaddexp(log_p + _LOG_KEEP, diag_gauss_log_prob(x, mean, std) + _LOG_FLOOR)


def floor_samples(s: torch.Tensor, mean: torch.Tensor, std: torch.Tensor,
                  generator: torch.Generator | None) -> torch.Tensor:
    """Replace each sample, with probability eps, by a draw from the floor gaussian."""
    n, d = s.shape
    pick = torch.rand(n, generator=generator, device=s.device) < FLOOR_WEIGHT
    broad = mean + std * torch.randn(n, d, generator=generator, device=s.device)
    return torch.where(pick[:, None], broad, s)


def overlap_matrix(src_lo: float, src_step: float, n_src: int, dst_lo: float, dst_step: float, n_dst: int,
                   device=None) -> torch.Tensor:
    """(n_dst, n_src) float64: the length of source bin b inside destination cell c, divided by
    the cell's width. ``A @ values`` turns a piecewise-constant density on the source bins into
    exact averages over the destination cells (mass-preserving resampling)."""
    kw = {"dtype": torch.float64, "device": device}
    s_lo = src_lo + src_step * torch.arange(n_src, **kw)
    d_lo = dst_lo + dst_step * torch.arange(n_dst, **kw)
    inter = (torch.minimum(d_lo[:, None] + dst_step, s_lo[None, :] + src_step)
             - torch.maximum(d_lo[:, None], s_lo[None, :])).clamp_min(0)
    return inter / dst_step


def cell_average_grid(density: torch.Tensor, lo: Sequence[float], step: Sequence[float],
                      bounds: Sequence[tuple[float, float]], res: int) -> torch.Tensor:
    """Average over each pixel of ``grid_points(bounds, res)`` of a piecewise-constant density
    given on bins (``density`` (nx,) or (ny, nx), rows along y; bins start at ``lo`` with widths
    ``step``), float64, shape (res,) or (res, res)."""
    dev = density.device
    mats = [overlap_matrix(float(lo[a]), float(step[a]), density.shape[-1 - a], bounds[a][0],
                           (bounds[a][1] - bounds[a][0]) / res, res, dev) for a in range(len(bounds))]
    dens = density.double()
    if len(bounds) == 1:
        return mats[0] @ dens
    return mats[1] @ dens @ mats[0].T


class FittedModel(GenerativeModel):
    """Base of the fitted (non-gradient) classical models: no optimizer, one fit per step, a
    standard normal before the first fit, a broad gaussian floor and the refit cache."""

    def __init__(self, data_shape, hparams):
        super().__init__(data_shape, hparams)
        d = self.dim
        self.register_buffer("fitted", torch.zeros(()))
        self.register_buffer("floor_mean", torch.zeros(d))
        self.register_buffer("floor_std", torch.ones(d))
        self._fit_key: tuple | None = None
        self._fit_out: dict[str, float] | None = None

    @property
    def is_fitted(self) -> bool:
        return bool(self.fitted > 0)

    def fit(self, x: torch.Tensor) -> dict[str, float]:
        raise NotImplementedError

    def train_step(self, batch: torch.Tensor) -> dict[str, float]:
        """Fit on the whole training set (the trainer passes all of it); refitting on the same
        data is skipped, so extra "epochs" cost nothing."""
        x = check_fit_data(self.check_batch(batch), self.info.name)
        key = fingerprint(x)
        if self._fit_key == key and self._fit_out is not None and self.is_fitted:
            return dict(self._fit_out)
        with torch.no_grad():
            out = self.fit(x)
            if not all(bool(torch.isfinite(b).all()) for b in self.buffers() if b.is_floating_point()):
                raise NonFiniteError(f"{self.info.name}: the fit produced NaN or infinite values")
            self.fitted.fill_(1.0)
            out = {"loss": self.train_nll(x), **out}
        if not math.isfinite(out["loss"]):
            raise NonFiniteError(f"{self.info.name}: the training NLL is {out['loss']}")
        self._fit_key, self._fit_out = key, dict(out)
        return out

    def nll_points(self) -> int:
        """How many training points the reported training NLL averages over: models whose
        likelihood costs O(stored points) (KDE, kNN) use fewer when they store many."""
        stored = getattr(self, "points", None)
        if stored is None or len(stored) == 0:
            return 2048
        return int(min(2048, max(128, (1 << 24) // len(stored))))

    @torch.no_grad()
    def train_nll(self, x: torch.Tensor) -> float:
        """Mean NLL on (at most :meth:`nll_points`) evenly spaced training points."""
        max_points = self.nll_points()
        if len(x) > max_points:
            x = x[torch.linspace(0, len(x) - 1, max_points, device=x.device).long()]
        return float(-self.log_prob(x).double().mean())

    def unfitted_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return diag_gauss_log_prob(x, self.floor_mean, self.floor_std)

    def unfitted_sample(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        return self.floor_mean + self.floor_std * torch.randn(n, self.dim, generator=generator,
                                                              device=self.device)


# --------------------------------------------------------------------------------------------
# the histogram
# --------------------------------------------------------------------------------------------


def _layout(lo_data: torch.Tensor, rng: torch.Tensor, m: int) -> tuple[torch.Tensor, float, list[int]]:
    """Square bins for ``m`` bins across the widest axis: (lower corner, width, bins per axis)."""
    h = float(rng.max()) / m
    nb = [int(math.ceil(float(r) / h - 1e-9)) + 1 for r in rng]
    nb = [max(2, b) for b in nb]
    centre = lo_data + rng / 2
    lo = centre - torch.tensor(nb, dtype=centre.dtype, device=centre.device) * h / 2
    return lo, h, nb


def _bin_index(x: torch.Tensor, lo: torch.Tensor, h: float, nb: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat bin index (row-major, y slowest) and an inside mask."""
    idx = torch.floor((x.double() - lo.double()) / h).long()
    nbt = torch.tensor(nb, device=x.device)
    inside = ((idx >= 0) & (idx < nbt)).all(1)
    idx = torch.minimum(idx.clamp_min(0), nbt - 1)
    flat = idx[:, 0]
    if x.shape[1] == 2:
        flat = idx[:, 1] * nb[0] + idx[:, 0]
    return flat, inside


def cv_risk(x: torch.Tensor, lo_data: torch.Tensor, rng: torch.Tensor, m: int) -> float:
    """Leave-one-out cross-validated risk J(h) of the histogram with ``m`` bins across."""
    n = len(x)
    lo, h, nb = _layout(lo_data, rng, m)
    flat, _ = _bin_index(x, lo, h, nb)
    p = torch.bincount(flat, minlength=int(np.prod(nb))).double() / n
    vol = h ** x.shape[1]
    return 2.0 / ((n - 1) * vol) - (n + 1) / ((n - 1) * vol) * float((p * p).sum())


def cv_bins(x: torch.Tensor, max_bins: int) -> tuple[int, float]:
    """The bin count (across the widest axis) minimising J over a grid of candidates."""
    lo_data, rng = x.min(0).values, x.max(0).values - x.min(0).values
    top = max(1, min(max_bins, len(x)))
    cands = np.unique(np.round(np.geomspace(1, top, 96)).astype(int))
    risks = [cv_risk(x, lo_data, rng, int(m)) for m in cands]
    best = int(np.argmin(risks))
    return int(cands[best]), float(risks[best])


@register
class Histogram(FittedModel):
    info = ModelInfo(
        key="histogram",
        name="Histogram",
        group="Classical density estimation",
        description="Piecewise-constant density: counts in equal bins (square in 2D) divided by n times "
                    "the bin volume. The bin width minimises the leave-one-out cross-validated risk "
                    "J(h) = 2/((n-1)h) - (n+1)/((n-1)h) sum p_j^2 over a grid of bin counts, or is set by "
                    "hand. Zero outside the bins, so a floor of 1e-6 times a broad gaussian is mixed in "
                    "(normalised) to keep held-out NLLs finite. One training step is one fit.",
        likelihood=Likelihood.EXACT,
        data_kinds=(DataKind.POINTS_1D, DataKind.POINTS_2D),
        hparams=(
            HParam("bins_rule", "choice", "cv", choices=("cv", "manual"),
                   help="cv: minimise the leave-one-out risk; manual: use 'bins'"),
            HParam("bins", "int", 20, 1, 1000, help="bins across the widest axis of the data (manual rule)"),
            HParam("max_bins", "int", 200, 2, 1000, help="largest bin count tried by cross-validation"),
        ) + FIT_HPARAMS,
        full_batch=True,
    )
    resizable_buffers = ("mass",)

    def __init__(self, data_shape, hparams):
        super().__init__(data_shape, hparams)
        d = self.dim
        self.check_point_dims((1, 2), "Histogram")
        self.register_buffer("lo", torch.zeros(d))
        self.register_buffer("width", torch.ones(()))
        self.register_buffer("nbins", torch.ones(d, dtype=torch.long))
        self.register_buffer("mass", torch.zeros(0))  # probability of each bin, flat, y slowest

    def fit(self, x):
        rng = spread_or_fail(x, self.info.name)
        risk = math.nan
        if self.hparams["bins_rule"] == "cv":
            m, risk = cv_bins(x, int(self.hparams["max_bins"]))
        else:
            m = int(self.hparams["bins"])
        lo, h, nb = _layout(x.min(0).values, rng, m)
        flat, _ = _bin_index(x, lo, h, nb)
        counts = torch.bincount(flat, minlength=int(np.prod(nb))).float()
        self.mass = counts / counts.sum()
        self.lo.copy_(lo)
        self.width.fill_(h)
        self.nbins.copy_(torch.tensor(nb))
        mean, std = floor_params(x)
        self.floor_mean.copy_(mean)
        self.floor_std.copy_(std)
        out = {"bins": float(m), "bin_width": float(h)}
        if math.isfinite(risk):
            out["cv_risk"] = risk
        return out

    def log_prob(self, x):
        x = self.check_batch(x)
        if not self.is_fitted:
            return self.unfitted_log_prob(x)
        nb = [int(b) for b in self.nbins]
        h = float(self.width)
        flat, inside = _bin_index(x, self.lo, h, nb)
        dens = self.mass[flat] / h ** self.dim
        log_p = torch.where(inside & (dens > 0), torch.log(dens.clamp_min(1e-38)),
                            torch.full_like(dens, -math.inf))
        return with_floor(log_p, x, self.floor_mean, self.floor_std)

    @torch.no_grad()
    def density_grid(self, bounds, res):
        """Exact averages of the density over each pixel (the bins' overlap with it), so that
        bins narrower than a pixel still show their mass; where a pixel lies inside one bin this
        is the density at its centre."""
        if not self.is_fitted:
            return super().density_grid(bounds, res)
        nb = [int(b) for b in self.nbins]
        h = float(self.width)
        dens = (self.mass / h ** self.dim).reshape(list(reversed(nb)))
        out = cell_average_grid(dens, self.lo.tolist(), [h] * self.dim, bounds, res)
        g = torch.from_numpy(grid_points(bounds, res)).to(self.device)
        floor = diag_gauss_log_prob(g, self.floor_mean, self.floor_std).double().exp().reshape(out.shape)
        out = (1 - FLOOR_WEIGHT) * out + FLOOR_WEIGHT * floor
        return np.ascontiguousarray(out.cpu().numpy(), dtype=np.float32)

    @torch.no_grad()
    def sample(self, n, generator=None):
        if not self.is_fitted:
            return self.unfitted_sample(n, generator)
        nb = [int(b) for b in self.nbins]
        flat = torch.multinomial(self.mass, n, replacement=True, generator=generator)
        idx = flat[:, None] if self.dim == 1 else torch.stack([flat % nb[0], flat // nb[0]], 1)
        u = torch.rand(n, self.dim, generator=generator, device=self.device)
        s = self.lo + (idx.float() + u) * self.width
        return floor_samples(s, self.floor_mean, self.floor_std, generator)
