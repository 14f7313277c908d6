"""Neural CDF regression (Magdon-Ismail & Atiya, NIPS 1998), 1D.

A small network F(x) = sigmoid(MLP((x - loc) / scale)) is fitted by least squares to the
empirical CDF: the sorted data x_(i) against the targets (i - 0.5) / n (tied values share the
mean of their targets). Nothing in the network forces F to increase, so, as in the paper, a
penalty sum_k relu(F(g_k) - F(g_k+1))^2 on a grid g spanning the data (jittered at every
iteration) punishes every decreasing step.

The density is F's slope by autograd, made a proper density like this:

* body, on [lo, hi] (the data's range padded by 10 % on each side): q(x) = max(dF/dx, tiny);
* tails: the mass the network leaves outside, a = F(lo) and b = 1 - F(hi) (each at least
  1e-6), spread as exponential tails beyond lo and hi (scale: the padding);
* everything divided by Z = a + b + integral_lo^hi q, the integral by the trapezoid rule on
  4096 cells. When F is monotone, Z is 1 up to the clamp and the quadrature; either way the
  density integrates to 1 to quadrature accuracy (~1e-7), so the likelihood is reported as exact.

Sampling inverts the model's own CDF: the tails in closed form, the body through the cumulative
trapezoid table on the same 4096 cells (linear between nodes).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from core.models.inversion import CDFVisuals, check_points_1d
from core.protocol import DataKind, GenerativeModel, HParam, Likelihood, ModelInfo, NonFiniteError, lr_hparam
from core.registry import register

_CELLS = 4096  # trapezoid cells over [lo, hi] for the normaliser, the CDF table and sampling
_MIN_TAIL = 1e-6
_PAD = 0.1  # padding of [lo, hi] beyond the data, as a fraction of the data's range


@register
class NeuralCDF(CDFVisuals, GenerativeModel):
    info = ModelInfo(
        key="neural_cdf",
        name="Neural CDF regression",
        group="Classical density estimation",
        description="Magdon-Ismail & Atiya (1998): a small network F(x) with a sigmoid output is fitted "
                    "to the empirical CDF (sorted data against (i - 0.5)/n), with a penalty on any "
                    "decreasing step; the density is dF/dx (autograd), clamped above 0 and normalised "
                    "(the integral over the padded data range by the trapezoid rule, plus the mass F "
                    "leaves outside it as exponential tails), so it integrates to 1 and the likelihood "
                    "is exact up to quadrature error. Samples by inverting the CDF. Each training "
                    "step runs 'iters' full-batch Adam iterations.",
        likelihood=Likelihood.EXACT,
        data_kinds=(DataKind.POINTS_1D,),
        hparams=(
            HParam("hidden", "int", 32, 2, 512, help="units per hidden layer (tanh)"),
            HParam("layers", "int", 2, 1, 6, help="hidden layers"),
            HParam("penalty", "float", 100.0, 0.0, 1e6,
                   help="weight of the penalty on decreasing steps of F (monotonicity)"),
            HParam("grid", "int", 256, 8, 8192, help="points of the grid the penalty checks"),
            HParam("iters", "int", 100, 1, 1000, live=True, structural=False,
                   help="full-batch Adam iterations per training step"),
            lr_hparam(2e-2),
        ),
        full_batch=True,
    )

    def __init__(self, data_shape, hparams):
        super().__init__(data_shape, hparams)
        self.check_point_dims((1,), "neural CDF regression")
        h, layers = int(hparams["hidden"]), int(hparams["layers"])
        mods: list[torch.nn.Module] = []
        d = 1
        for _ in range(layers):
            mods += [torch.nn.Linear(d, h), torch.nn.Tanh()]
            d = h
        mods.append(torch.nn.Linear(d, 1))
        self.net = torch.nn.Sequential(*mods)
        f64 = dict(dtype=torch.float64)
        self.register_buffer("loc", torch.tensor(0.0, **f64))
        self.register_buffer("scale", torch.tensor(1.0, **f64))
        self.register_buffer("lo", torch.tensor(-3.0, **f64))
        self.register_buffer("hi", torch.tensor(3.0, **f64))
        self._gen: torch.Generator | None = None

    # -- the network --------------------------------------------------------------------------
    def F(self, x: torch.Tensor) -> torch.Tensor:
        """The network's CDF at float points (N,), float32 (N,)."""
        u = ((x.double() - self.loc) / self.scale).float()
        return torch.sigmoid(self.net(u.reshape(-1, 1)).squeeze(1))

    def F_and_slope(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """F and dF/dx (autograd) at points (N,), both detached float64."""
        with torch.enable_grad():
            xx = x.detach().double().clone().requires_grad_(True)
            f = self.F(xx)
            (g,) = torch.autograd.grad(f.sum(), xx)
        return f.detach().double(), g.detach().double()

    # -- fitting ------------------------------------------------------------------------------
    def configure_optimizer(self, lr):
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=lr)
        return self.optimizer

    def _targets(self, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Sorted data and their empirical CDF targets (i - 0.5)/n, ties sharing the mean."""
        a = np.sort(a)
        n = len(a)
        left = np.searchsorted(a, a, side="left")
        right = np.searchsorted(a, a, side="right")
        return a, (left + right) / (2.0 * n)  # mean of (i - 0.5)/n over the tied block

    def train_step(self, batch):
        assert self.optimizer is not None, "configure_optimizer() first"
        a = check_points_1d(batch, self.info.name)
        xs, ts = self._targets(a)
        span = xs[-1] - xs[0]
        dev = self.loc.device
        with torch.no_grad():
            self.loc.fill_(float(xs.mean()))
            self.scale.fill_(float(max(xs.std(), 1e-6 * span)))
            self.lo.fill_(float(xs[0] - _PAD * span))
            self.hi.fill_(float(xs[-1] + _PAD * span))
        x = torch.as_tensor(xs, device=dev)
        t = torch.as_tensor(ts, dtype=torch.float32, device=dev)
        if self._gen is None:
            self._gen = torch.Generator().manual_seed(0)
        k = int(self.hparams["grid"])
        lam = float(self.hparams["penalty"])
        base = torch.linspace(0.0, 1.0, k, dtype=torch.float64)
        params = list(self.net.parameters())
        self.train()
        for _ in range(int(self.hparams["iters"])):
            self.optimizer.zero_grad(set_to_none=True)
            fit = (self.F(x) - t).pow(2).mean()
            jitter = torch.rand((), generator=self._gen, dtype=torch.float64) / (k - 1)
            g = (self.lo + (self.hi - self.lo) * (base + jitter).to(dev)).clamp(max=float(self.hi))
            fg = self.F(g)
            violation = torch.relu(fg[:-1] - fg[1:]).pow(2).sum()
            loss = fit + lam * violation
            loss.backward()
            value = float(loss.detach())
            gsum = float(torch.stack([p.grad.sum() for p in params if p.grad is not None]).sum())
            if not (math.isfinite(value) and math.isfinite(gsum)):
                self.optimizer.zero_grad(set_to_none=True)
                raise NonFiniteError(f"loss={value}, gradient sum={gsum}")
            self.optimizer.step()
        return {"loss": float(fit.detach()), "cdf_mse": float(fit.detach()), "violation": float(violation.detach())}

    # -- the normalised distribution ----------------------------------------------------------
    def _table(self) -> dict[str, torch.Tensor | float]:
        """Nodes over [lo, hi], the clamped slope there, its cumulative trapezoid integral, the
        tail masses and the normaliser Z."""
        lo, hi = self.lo, self.hi
        nodes = torch.linspace(0.0, 1.0, _CELLS + 1, dtype=torch.float64, device=lo.device) * (hi - lo) + lo
        f, slope = self.F_and_slope(nodes)
        tiny = 1e-6 / float(hi - lo)
        q = slope.clamp(min=tiny)
        h = (hi - lo) / _CELLS
        cum = torch.cat([q.new_zeros(1), torch.cumsum(0.5 * h * (q[1:] + q[:-1]), 0)])
        a = max(float(f[0]), _MIN_TAIL)
        b = max(1.0 - float(f[-1]), _MIN_TAIL)
        z = a + b + float(cum[-1])
        return {"nodes": nodes, "cum": cum, "a": a, "b": b, "z": z, "tiny": tiny,
                "s": float(_PAD * (hi - lo) / (1 + 2 * _PAD))}

    def _log_density(self, x: torch.Tensor, tab=None) -> torch.Tensor:
        tab = tab or self._table()
        lo, hi, s, z = float(self.lo), float(self.hi), tab["s"], tab["z"]
        _f, slope = self.F_and_slope(x)
        body = torch.log(slope.clamp(min=tab["tiny"]))
        zl, zh = (x - lo) / s, (x - hi) / s
        left = math.log(tab["a"]) - math.log(s) + zl
        right = math.log(tab["b"]) - math.log(s) - zh
        return torch.where(x < lo, left, torch.where(x > hi, right, body)) - math.log(z)

    def log_prob(self, x):
        x = self.check_batch(x)
        return self._log_density(x[:, 0].double()).float()

    def cdf(self, x: torch.Tensor) -> torch.Tensor:
        """The model's (normalised) CDF at points (N,) or (N, 1), float64 (N,)."""
        x = x.reshape(-1).to(self.lo.device, torch.float64)
        tab = self._table()
        lo, hi, s, z, a, b = float(self.lo), float(self.hi), tab["s"], tab["z"], tab["a"], tab["b"]
        nodes, cum = tab["nodes"], tab["cum"]
        i = (torch.searchsorted(nodes, x, right=True) - 1).clamp(0, _CELLS - 1)
        w = ((x - nodes[i]) / (nodes[i + 1] - nodes[i])).clamp(0, 1)
        body = a + cum[i] + w * (cum[i + 1] - cum[i])
        left = a * torch.exp(((x - lo) / s).clamp(max=0))
        right = a + float(cum[-1]) + b * -torch.expm1(-((x - hi) / s).clamp(min=0))
        return torch.where(x < lo, left, torch.where(x > hi, right, body)) / z

    @torch.no_grad()
    def sample(self, n, generator=None):
        tab = self._table()
        lo, hi, s, z, a, b = float(self.lo), float(self.hi), tab["s"], tab["z"], tab["a"], tab["b"]
        nodes, cum = tab["nodes"], tab["cum"]
        m = torch.rand(int(n), generator=generator, device=self.lo.device, dtype=torch.float64) * z
        c = (m - a).clamp(0, float(cum[-1]))
        j = (torch.searchsorted(cum, c, right=True) - 1).clamp(0, _CELLS - 1)
        w = ((c - cum[j]) / (cum[j + 1] - cum[j])).clamp(0, 1)
        body = nodes[j] + w * (nodes[j + 1] - nodes[j])
        tiny = torch.finfo(torch.float64).tiny
        left = lo + s * torch.log((m / a).clamp(tiny, 1))
        right = hi - s * torch.log1p(-((m - a - float(cum[-1])) / b).clamp(0, 1 - 1e-16))
        x = torch.where(m < a, left, torch.where(m > a + float(cum[-1]), right, body))
        return x.float().reshape(-1, 1)
