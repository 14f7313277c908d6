"""Inversion sampling from a smoothed empirical CDF (1D).

The fitted CDF is piecewise linear through ``knots`` empirical quantiles q_0 < ... < q_K of the
data (fewer knots: smoother; by default 2 N^(1/3)), so the density is piecewise constant between
them. A fraction ``tail`` of the mass goes to two exponential tails beyond the outermost knots,
so that ``log_prob`` is finite everywhere and the density integrates to exactly 1:

    F(x) = tail / 2 * exp((x - q_0) / s_0)                  x < q_0
         = tail / 2 + (1 - tail) * interp(x; q, c)          q_0 <= x <= q_K
         = 1 - tail / 2 * exp(-(x - q_K) / s_K)             x > q_K

with c the quantile levels (0, 1/K, ..., 1). Each tail's scale is the width of the outermost
interval on its side (at least Silverman's bandwidth): wide for heavy-tailed data, where a held-out
point far beyond the training range then costs a few nats, not thousands as with a gaussian tail.

Sampling draws u ~ U(0, 1) and returns F^-1(u): a table look-up in the body, a logarithm in the
tails. Ties in the data (integers, say) are merged into one knot whose CDF level is the middle of
the tied levels, so their mass is spread over the neighbouring intervals.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from core.protocol import DataKind, GenerativeModel, HParam, Likelihood, ModelInfo, grid_points
from core.registry import register


def check_points_1d(x: torch.Tensor, who: str, min_points: int = 2) -> np.ndarray:
    """The data as float64 numpy (N,), or ``ValueError`` naming the problem."""
    if x.ndim != 2 or x.shape[1] != 1:
        raise ValueError(f"{who} takes 1D points, shape (N, 1), got shape {tuple(x.shape)}")
    if len(x) == 0:
        raise ValueError(f"{who}: the data are empty")
    a = x.detach().to("cpu", torch.float64).numpy()[:, 0]
    if not np.isfinite(a).all():
        raise ValueError(f"{who}: the data contain {int((~np.isfinite(a)).sum())} NaN or infinite value(s)")
    if len(a) < min_points:
        raise ValueError(f"{who} needs at least {min_points} data points, got {len(a)}")
    if a.max() - a.min() <= 1e-12 * max(1.0, abs(a).max()):
        raise ValueError(f"{who}: all data points are equal ({a[0]:g}): a CDF needs some spread")
    return a


class CDFVisuals:
    """Mixin for the 1D families with a ``cdf`` method (put it before ``GenerativeModel``): their
    views get the CDF on the density's grid, as ``cdf``, beside the samples and the density."""

    @torch.no_grad()
    def visuals(self, n=64, generator=None, bounds=None, res=96):
        out = super().visuals(n, generator, bounds, res)
        if bounds is not None:
            pts = torch.from_numpy(grid_points(bounds, res))
            out.cdf = np.ascontiguousarray(self.cdf(pts).cpu().numpy(), dtype=np.float32)
        return out


def auto_knots(n: int) -> int:
    """Equal-mass intervals for n points: 2 n^(1/3), the histogram rate (Terrell-Scott's
    oversmoothed rule is (2n)^(1/3)); 16 for 500 points, 32 for 4000, 54 for 20000."""
    return max(1, int(round(2 * n ** (1 / 3))))


@register
class Inversion(CDFVisuals, GenerativeModel):
    info = ModelInfo(
        key="inversion",
        name="Inversion sampling (empirical CDF)",
        group="Classical density estimation",
        description="Fits a piecewise-linear CDF through empirical quantiles of the data (the "
                    "empirical CDF, smoothed by using fewer knots) and samples by inverting it: "
                    "u ~ U(0,1), x = F^-1(u). The density is the CDF's slope (piecewise constant). "
                    "A small exponential tail mass beyond the data keeps log p finite; the density "
                    "integrates to exactly 1 (exact likelihood).",
        likelihood=Likelihood.EXACT,
        data_kinds=(DataKind.POINTS_1D,),
        hparams=(
            HParam("knots", "int", 0, 0, 100000,
                   help="quantile intervals of the piecewise-linear CDF (0: automatic, 2 N^(1/3); "
                        "capped at N-1; fewer is smoother)"),
            HParam("tail", "float", 0.01, 1e-6, 0.5, log=True,
                   help="mass put in exponential tails beyond the smallest and largest knot"),
        ),
        full_batch=True,
    )
    resizable_buffers = ("knots", "levels")

    def __init__(self, data_shape, hparams):
        super().__init__(data_shape, hparams)
        self.check_point_dims((1,), "inversion sampling")
        # Before any fit: a uniform body on [-1, 1] (a valid density all the same).
        self.register_buffer("knots", torch.tensor([-1.0, 1.0], dtype=torch.float64))
        self.register_buffer("levels", torch.tensor([0.0, 1.0], dtype=torch.float64))
        self.register_buffer("tail_scales", torch.tensor([0.5, 0.5], dtype=torch.float64))  # left, right

    # -- fitting ------------------------------------------------------------------------------
    def fit(self, x: torch.Tensor) -> None:
        a = np.sort(check_points_1d(x, self.info.name))
        n = len(a)
        k = int(self.hparams["knots"]) or auto_knots(n)
        k = max(1, min(k, n - 1))
        probs = np.arange(k + 1) / k
        q = np.quantile(a, probs)  # linear interpolation between order statistics
        # merge tied knots: one knot per value, CDF level in the middle of the tied levels
        uniq, start, counts = np.unique(q, return_index=True, return_counts=True)
        lv = np.array([probs[s:s + c].mean() for s, c in zip(start, counts)])
        if len(uniq) < 2:  # pragma: no cover (ruled out by the spread check)
            raise ValueError(f"{self.info.name}: the data have no spread")
        # endpoints keep levels 0 and 1 so the body holds exactly 1 - tail
        lv[0], lv[-1] = 0.0, 1.0
        std = a.std()
        iqr = np.subtract(*np.quantile(a, [0.75, 0.25]))
        spread = min(std, iqr / 1.349) if iqr > 0 else std
        bw = max(0.9 * spread * n ** -0.2, 1e-3 * (a[-1] - a[0]))  # Silverman's rule
        dev = self.knots.device
        self.knots = torch.as_tensor(uniq, dtype=torch.float64, device=dev)
        self.levels = torch.as_tensor(lv, dtype=torch.float64, device=dev)
        self.tail_scales.copy_(torch.tensor([max(bw, uniq[1] - uniq[0]), max(bw, uniq[-1] - uniq[-2])]))

    def train_step(self, batch):
        self.fit(batch)
        return {"loss": float(-self.log_prob(batch).double().mean()), "knots_used": float(len(self.knots))}

    # -- the distribution ---------------------------------------------------------------------
    @property
    def _tail(self) -> float:
        return float(self.hparams["tail"])

    def _log_density(self, x: torch.Tensor) -> torch.Tensor:
        """float64 (N,) log density at float64 (N,) points."""
        q, c, t = self.knots, self.levels, self._tail
        s0, sk = self.tail_scales[0], self.tail_scales[1]
        slopes = (1 - t) * (c[1:] - c[:-1]) / (q[1:] - q[:-1])
        i = (torch.searchsorted(q, x, right=True) - 1).clamp(0, len(slopes) - 1)
        body = torch.log(slopes)[i]
        half = math.log(t / 2)
        left = half - torch.log(s0) + (x - q[0]) / s0
        right = half - torch.log(sk) - (x - q[-1]) / sk
        return torch.where(x < q[0], left, torch.where(x > q[-1], right, body))

    def cdf(self, x: torch.Tensor) -> torch.Tensor:
        """The fitted CDF at float points (N,) or (N, 1), float64 (N,)."""
        x = x.reshape(-1).to(self.knots.device, torch.float64)
        q, c, t = self.knots, self.levels, self._tail
        s0, sk = self.tail_scales[0], self.tail_scales[1]
        i = (torch.searchsorted(q, x, right=True) - 1).clamp(0, len(q) - 2)
        w = ((x - q[i]) / (q[i + 1] - q[i])).clamp(0, 1)
        body = t / 2 + (1 - t) * (c[i] + w * (c[i + 1] - c[i]))
        left = t / 2 * torch.exp(((x - q[0]) / s0).clamp(max=0))
        right = 1 - t / 2 * torch.exp(-((x - q[-1]) / sk).clamp(min=0))
        return torch.where(x < q[0], left, torch.where(x > q[-1], right, body))

    def quantile(self, u: torch.Tensor) -> torch.Tensor:
        """F^-1(u) for u in [0, 1), float64."""
        q, c, t = self.knots, self.levels, self._tail
        s0, sk = self.tail_scales[0], self.tail_scales[1]
        u = u.to(torch.float64)
        v = ((u - t / 2) / (1 - t)).clamp(0, 1)
        j = (torch.searchsorted(c, v, right=True) - 1).clamp(0, len(c) - 2)
        w = ((v - c[j]) / (c[j + 1] - c[j])).clamp(0, 1)
        body = q[j] + w * (q[j + 1] - q[j])
        tiny = torch.finfo(torch.float64).tiny
        left = q[0] + s0 * torch.log((2 * u / t).clamp(tiny, 1))
        right = q[-1] - sk * torch.log((2 * (1 - u) / t).clamp(tiny, 1))
        return torch.where(u < t / 2, left, torch.where(u > 1 - t / 2, right, body))

    def log_prob(self, x):
        x = self.check_batch(x)
        return self._log_density(x[:, 0].double()).float()

    @torch.no_grad()
    def sample(self, n, generator=None):
        u = torch.rand(int(n), generator=generator, device=self.knots.device, dtype=torch.float64)
        return self.quantile(u).float().reshape(-1, 1)
