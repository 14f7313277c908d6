"""Neural spline flow (Durkan, Bekasov, Murray & Papamakarios 2019): rational-quadratic couplings.

Each coupling keeps one half of the coordinates and moves the other half through a monotonic
rational-quadratic spline whose ``bins`` widths, heights and inner knot derivatives are an MLP of
the kept half (for 2D points: one coordinate bends the other, alternating from layer to layer).
Inside ``[-bound, bound]`` the spline maps the interval onto itself; outside it is the identity
(the paper's linear tails, with derivative 1 at both ends), so the map is a bijection of the
whole line. Unlike an affine coupling, one layer can squeeze and stretch a coordinate differently
in different places (split a mode in two, carve a checkerboard), so few layers fit sharp or
multi-modal densities. The points are standardised first (mean and std of the first training
batch, kept in buffers), so the spline's interval covers the data whatever their scale.

``log p(x) = log N(z; 0, I) + sum of the log-derivatives`` (exact); sampling inverts each spline
in closed form (a quadratic per coordinate) and runs the layers backwards.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from core.models._standardise import fit_standardiser, register_standardiser
from core.models.realnvp import CouplingFlow, half_masks, mlp
from core.protocol import DataKind, HParam, Likelihood, ModelInfo, Recipe, batch_size_hparam, lr_hparam
from core.registry import register

#: smallest bin width, bin height (fractions of the interval) and knot derivative
MIN_BIN = 1e-3
MIN_DERIVATIVE = 1e-3
#: softplus(x + this) + MIN_DERIVATIVE == 1 at x == 0: a zero network output is the identity
_DERIVATIVE_SHIFT = math.log(math.expm1(1 - MIN_DERIVATIVE))


def _knots(raw: torch.Tensor, bound: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Bin sizes (N, K) and knot positions (N, K + 1) over [-bound, bound] from raw logits."""
    k = raw.shape[-1]
    sizes = MIN_BIN + (1 - MIN_BIN * k) * torch.softmax(raw, -1)
    cum = F.pad(torch.cumsum(sizes, -1), (1, 0))
    cum = 2 * bound * cum - bound
    cum = torch.cat([torch.full_like(cum[:, :1], -bound), cum[:, 1:-1], torch.full_like(cum[:, :1], bound)], -1)
    return cum[:, 1:] - cum[:, :-1], cum


def _gather(t: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    return t.gather(-1, idx)[:, 0]


def rq_spline(x: torch.Tensor, w: torch.Tensor, h: torch.Tensor, d: torch.Tensor, bound: float,
              inverse: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """The monotonic rational-quadratic spline (Durkan et al. 2019, eqs. 4-8) of each entry of
    ``x`` (N,), with raw bin widths ``w`` (N, K), heights ``h`` (N, K) and inner knot derivatives
    ``d`` (N, K - 1); the identity outside ``[-bound, bound]``. Returns ``(y, log |dy/dx|)``,
    or with ``inverse`` the inverse map and ``log |dx/dy|`` (the negated forward log-derivative)."""
    widths, cw = _knots(w, bound)
    heights, ch = _knots(h, bound)
    ones = torch.ones_like(d[:, :1])
    deriv = torch.cat([ones, MIN_DERIVATIVE + F.softplus(d + _DERIVATIVE_SHIFT), ones], -1)
    inside = (x >= -bound) & (x <= bound)
    xc = x.clamp(-bound, bound)
    knots = ch if inverse else cw
    idx = torch.searchsorted(knots[:, 1:-1].contiguous(), xc[:, None].contiguous()).clamp(0, w.shape[-1] - 1)
    xk, wk, yk, hk = _gather(cw, idx), _gather(widths, idx), _gather(ch, idx), _gather(heights, idx)
    dk, dk1 = _gather(deriv, idx), _gather(deriv, idx + 1)
    delta = hk / wk
    curv = dk + dk1 - 2 * delta
    if inverse:
        dy = xc - yk
        a = hk * (delta - dk) + dy * curv
        b = hk * dk - dy * curv
        c = -delta * dy
        disc = (b * b - 4 * a * c).clamp_min(0)
        theta = (2 * c / (-b - disc.sqrt())).clamp(0, 1)
        out = xk + theta * wk
    else:
        theta = (xc - xk) / wk
        out = yk + hk * (delta * theta ** 2 + dk * theta * (1 - theta)) / (delta + curv * theta * (1 - theta))
    t1 = theta * (1 - theta)
    denom = delta + curv * t1
    logd = 2 * delta.log() + (dk1 * theta ** 2 + 2 * delta * t1 + dk * (1 - theta) ** 2).log() - 2 * denom.log()
    if inverse:
        logd = -logd
    return torch.where(inside, out, x), torch.where(inside, logd, torch.zeros_like(logd))


class SplineCoupling(nn.Module):
    """Moves the coordinates outside ``mask`` through splines whose parameters are an MLP of the
    ones inside it; ``forward`` returns ``(z, log |det|)``."""

    def __init__(self, mask: torch.Tensor, bins: int, hidden: int, depth: int, bound: float):
        super().__init__()
        self.register_buffer("mask", mask.clone(), persistent=False)
        self.bins, self.bound = int(bins), float(bound)
        self.net = mlp(len(mask), hidden, depth, len(mask) * (3 * self.bins - 1))

    def _transform(self, x: torch.Tensor, inverse: bool) -> tuple[torch.Tensor, torch.Tensor]:
        n, dim, k = len(x), len(self.mask), self.bins
        # the splines run in float64: where a map is steep, float32 would lose the round trip
        # (the inverse solves a quadratic) to ~1e-3; the MLPs, the costly part, stay in float32
        params = self.net(x * self.mask).reshape(n * dim, 3 * k - 1).double()
        y, logd = rq_spline(x.reshape(-1).double(), params[:, :k], params[:, k:2 * k], params[:, 2 * k:],
                            self.bound, inverse=inverse)
        moved = 1 - self.mask
        y = x * self.mask + y.reshape(n, dim).to(x.dtype) * moved
        return y, (logd.reshape(n, dim).to(x.dtype) * moved).sum(1)

    def forward(self, x):
        return self._transform(x, inverse=False)

    def inverse(self, z):
        return self._transform(z, inverse=True)[0]


@register
class NSF(CouplingFlow):
    info = ModelInfo(
        key="nsf",
        name="Neural spline flow",
        group="Flows",
        description="Rational-quadratic spline couplings (Durkan et al. 2019): each layer bends one "
                    "coordinate through a monotonic spline whose knots are MLPs of the other "
                    "(alternating), on standardised points. Exact likelihood by change of variables; "
                    "sampling by inverting the splines in closed form. 2D points only.",
        likelihood=Likelihood.EXACT,
        data_kinds=(DataKind.POINTS_2D,),
        recipe=Recipe(steps=4000, schedule="cosine", warmup=100),
        hparams=(
            HParam("layers", "int", 6, 1, 32, help="spline coupling layers (halves alternate)"),
            HParam("bins", "int", 12, 2, 64, help="spline bins per coordinate per layer"),
            HParam("hidden", "int", 64, 2, 1024, log=True, help="units per hidden layer of each coupling's MLP"),
            HParam("depth", "int", 2, 1, 6, help="hidden layers per coupling MLP"),
            HParam("bound", "float", 4.0, 0.5, 20.0,
                   help="the splines act on [-bound, bound] (in standard deviations of the data); "
                        "identity outside"),
            lr_hparam(3e-3),
            batch_size_hparam(256),
        ),
    )

    def __init__(self, data_shape, hparams):
        super().__init__(data_shape, hparams)
        self._check_dims()
        hp = self.hparams
        register_standardiser(self, self.dim)
        self.couplings = nn.ModuleList(
            SplineCoupling(m, int(hp["bins"]), int(hp["hidden"]), int(hp["depth"]), float(hp["bound"]))
            for m in half_masks(self.dim, int(hp["layers"])))

    def forward_flow(self, x):
        x = (x - self.loc) / self.scale
        logdet = (-self.scale.log().sum()).expand(len(x))
        for coupling in self.couplings:
            x, ld = coupling(x)
            logdet = logdet + ld
        return x, logdet

    def inverse_flow(self, z):
        for coupling in reversed(self.couplings):
            z = coupling.inverse(z)
        return z * self.scale + self.loc

    def loss(self, batch):
        if not bool(self.initialised):
            fit_standardiser(self, self.check_batch(batch))
        return super().loss(batch)

    @torch.no_grad()
    def initialize(self, x: torch.Tensor) -> None:
        """Fit the standardisation to ``x`` (what the first training batch does)."""
        fit_standardiser(self, self.check_batch(x))
