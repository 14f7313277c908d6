"""The k-nearest-neighbour density estimate, normalised numerically on a box.

``p_hat(x) = k / (n V_D r_k(x)^D)`` with ``r_k(x)`` the distance from ``x`` to its k-th nearest
training point and ``V_D`` the volume of the unit ball (2 in 1D, pi in 2D). This is not a
density: far from the data ``r_k ~ |x|`` so ``p_hat ~ |x|^-D`` and its integral over R^D is
infinite (and with k = 1 it is infinite around every training point too, hence k >= 2). The
model here is therefore

    p(x) = (1 - 1e-6) * p_hat(x) / Z * [x in B]  +  1e-6 * g(x)

with ``B`` the box spanning the training data padded by 10 % of its range on each side, ``Z``
the integral of ``p_hat`` over ``B`` by the midpoint rule on a fine grid (4096 cells in 1D,
256 x 256 in 2D), and ``g`` the broad gaussian floor of histogram.py (held-out points outside
``B`` get only the floor). The likelihood is exact for this normalised model up to the
quadrature error of ``Z``. ``r_k`` is floored at half a grid cell so that ``k`` duplicate
points (integer data) do not make the density infinite.

Sampling draws a grid cell by its mass, then a uniform point inside it (plus the floor's rare
draws): exact for the grid-discretised density, an approximation of the continuous one. Density
views coarser than the normalisation grid show each pixel's share of those cell masses.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from core.models.histogram import (FIT_HPARAMS, FLOOR_WEIGHT, FittedModel, cell_average_grid,
                                   diag_gauss_log_prob, floor_params, floor_samples, spread_or_fail, with_floor)
from core.models.kde import knn_distances, subsample
from core.protocol import DataKind, HParam, Likelihood, ModelInfo, cell_area, grid_points
from core.registry import register

#: cells per axis of the normalisation grid
NORM_RES = {1: 4096, 2: 256}
#: the box is the data range padded by this fraction of the range on each side
BOX_PAD = 0.1
_UNIT_BALL = {1: 2.0, 2: math.pi}


def knn_radius_grid(points: torch.Tensor, k: int, bounds, res: int, tile: int = 16) -> torch.Tensor:
    """r_k at every pixel centre of ``grid_points(bounds, res)`` (2D), exactly, tile by tile: for a
    tile of tile x tile cells with centre c and half-diagonal rho, every k-th neighbour of a cell
    in it lies within r_k(c) + 2 rho of c, so only those points are compared."""
    dev = points.device
    out = torch.empty(res, res, device=dev)
    step = [(hi - lo) / res for lo, hi in bounds]
    rho = 0.5 * tile * math.hypot(*step)
    starts = list(range(0, res, tile))
    cx = torch.tensor([bounds[0][0] + (s0 + min(tile, res - s0) / 2) * step[0] for s0 in starts], device=dev)
    cy = torch.tensor([bounds[1][0] + (s0 + min(tile, res - s0) / 2) * step[1] for s0 in starts], device=dev)
    centres = torch.stack(torch.meshgrid(cx, cy, indexing="xy"), -1).reshape(-1, 2)  # row-major, y slowest
    r_c = knn_distances(centres, points, k)
    axis_x = bounds[0][0] + (torch.arange(res, device=dev) + 0.5) * step[0]
    axis_y = bounds[1][0] + (torch.arange(res, device=dev) + 0.5) * step[1]
    for t, (c, r) in enumerate(zip(centres, r_c)):
        iy, ix = starts[t // len(starts)], starts[t % len(starts)]
        gx, gy = axis_x[ix:ix + tile], axis_y[iy:iy + tile]
        q = torch.stack(torch.meshgrid(gx, gy, indexing="xy"), -1).reshape(-1, 2)
        near = points[((points - c) ** 2).sum(1) <= (float(r) + 2 * rho) ** 2 * (1 + 1e-6) + 1e-12]
        out[iy:iy + len(gy), ix:ix + len(gx)] = knn_distances(q, near, k).reshape(len(gy), len(gx))
    return out


@register
class KNNDensity(FittedModel):
    info = ModelInfo(
        key="knn",
        name="k-nearest-neighbour density",
        group="Classical density estimation",
        description="p(x) = k / (n V r_k(x)^D), r_k the distance to the k-th nearest training point. This "
                    "does not integrate to 1 (its tails hold infinite mass), so it is normalised numerically "
                    "over the box containing the data padded by 10 % per side (midpoint rule on a fine grid); "
                    "the likelihood is exact only for that normalised model, zero outside the box, where a "
                    "floor of 1e-6 times a broad gaussian keeps held-out NLLs finite. Samples come from the "
                    "normalisation grid. One training step is one fit.",
        likelihood=Likelihood.EXACT,
        data_kinds=(DataKind.POINTS_1D, DataKind.POINTS_2D),
        hparams=(
            HParam("k", "int", 20, 2, 1000, help="which neighbour's distance sets the density (k >= 2)"),
            HParam("max_points", "int", 5000, 2, 100_000,
                   help="larger training sets are subsampled (seeded) to this many points"),
        ) + FIT_HPARAMS,
        full_batch=True,
    )
    resizable_buffers = ("points",)

    def __init__(self, data_shape, hparams):
        super().__init__(data_shape, hparams)
        d = self.dim
        self.check_point_dims((1, 2), "kNN density")
        self.register_buffer("points", torch.zeros(0, d))
        self.register_buffer("box_lo", torch.zeros(d))
        self.register_buffer("box_hi", torch.ones(d))
        self.register_buffer("log_z", torch.zeros(()))
        self.register_buffer("r_min", torch.zeros(()))
        self.register_buffer("cell_mass", torch.zeros((NORM_RES[d],) * d))  # [y, x] in 2D

    @property
    def bounds(self) -> list[tuple[float, float]]:
        return [(float(a), float(b)) for a, b in zip(self.box_lo, self.box_hi)]

    def unnormalised_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p_hat(x) = log k - log n - log V - D log max(r_k(x), r_min)."""
        k, n, d = int(self.hparams["k"]), len(self.points), self.dim
        r = knn_distances(x, self.points, k).clamp_min(float(self.r_min))
        return math.log(k / (n * _UNIT_BALL[d])) - d * torch.log(r)

    def fit(self, x):
        pts = subsample(x, int(self.hparams["max_points"]))
        k = int(self.hparams["k"])
        if k > len(pts):
            raise ValueError(f"{self.info.name}: k = {k} is larger than the number of training points "
                             f"({len(pts)}); lower k or add data")
        rng = spread_or_fail(pts, self.info.name)
        d, res = self.dim, NORM_RES[self.dim]
        self.points = pts.detach().clone()
        self.box_lo.copy_(pts.min(0).values - BOX_PAD * rng)
        self.box_hi.copy_(pts.max(0).values + BOX_PAD * rng)
        bounds = self.bounds
        self.r_min.fill_(0.5 * max((hi - lo) / res for lo, hi in bounds))
        if d == 2:
            r = knn_radius_grid(pts, k, bounds, res).reshape(-1).clamp_min(float(self.r_min))
            log_p = math.log(k / (len(pts) * _UNIT_BALL[d])) - d * torch.log(r)
        else:
            log_p = self.unnormalised_log_prob(torch.from_numpy(grid_points(bounds, res)).to(pts.device))
        log_p = log_p.double() + math.log(cell_area(bounds, res))
        log_z = torch.logsumexp(log_p, 0)
        self.log_z.fill_(float(log_z))
        self.cell_mass.copy_(torch.exp(log_p - log_z).reshape(self.cell_mass.shape).float())
        mean, std = floor_params(pts)
        self.floor_mean.copy_(mean)
        self.floor_std.copy_(std)
        return {"log_z": float(log_z), "points": float(len(pts))}

    def log_prob(self, x):
        x = self.check_batch(x)
        if not self.is_fitted:
            return self.unfitted_log_prob(x)
        inside = ((x >= self.box_lo) & (x <= self.box_hi)).all(1)
        log_p = torch.full((len(x),), -math.inf, device=x.device)
        if bool(inside.any()):
            log_p[inside] = self.unnormalised_log_prob(x[inside]) - self.log_z
        return with_floor(log_p, x, self.floor_mean, self.floor_std)

    @torch.no_grad()
    def density_grid(self, bounds, res):
        """Point values where the pixels are finer than the normalisation grid; where they are
        coarser (a zoomed-out view), each pixel's exact share of the normalisation grid's cell
        masses divided by its area, so the narrow peaks r_k makes around clusters keep their mass."""
        norm_res = NORM_RES[self.dim]
        norm_step = ((self.box_hi - self.box_lo) / norm_res).tolist()
        view_step = [(hi - lo) / res for lo, hi in bounds]
        if not self.is_fitted or any(v < s for v, s in zip(view_step, norm_step)):
            return super().density_grid(bounds, res)
        dens = self.cell_mass.double() / math.prod(norm_step)
        out = cell_average_grid(dens, self.box_lo.tolist(), norm_step, bounds, res)
        g = torch.from_numpy(grid_points(bounds, res)).to(self.device)
        floor = diag_gauss_log_prob(g, self.floor_mean, self.floor_std).double().exp().reshape(out.shape)
        out = (1 - FLOOR_WEIGHT) * out + FLOOR_WEIGHT * floor
        return np.ascontiguousarray(out.cpu().numpy(), dtype=np.float32)

    @torch.no_grad()
    def sample(self, n, generator=None):
        if not self.is_fitted:
            return self.unfitted_sample(n, generator)
        res, d = NORM_RES[self.dim], self.dim
        flat = torch.multinomial(self.cell_mass.reshape(-1), n, replacement=True, generator=generator)
        idx = flat[:, None] if d == 1 else torch.stack([flat % res, flat // res], 1)
        u = torch.rand(n, d, generator=generator, device=self.device)
        step = (self.box_hi - self.box_lo) / res
        s = self.box_lo + (idx.float() + u) * step
        return floor_samples(s, self.floor_mean, self.floor_std, generator)
