"""NICE (Dinh, Krueger & Bengio 2015): additive coupling layers and a diagonal scaling.

Each coupling keeps one half of the coordinates and shifts the other by an MLP of the kept half,
``z_b = x_b + m(x_a)``, alternating the halves (for 2D points: one coordinate moves by a function
of the other). Additive couplings preserve volume, so a final diagonal scaling ``z = z * exp(s)``
is the only place the density can be stretched or squeezed: ``log p(x) = log p_Z(z) + sum(s)``,
exact. The base is a standard normal (or logistic, as in the paper). Sampling inverts the layers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from core.models.realnvp import CouplingFlow, half_masks, mlp
from core.protocol import DataKind, HParam, Likelihood, ModelInfo, Recipe, batch_size_hparam, lr_hparam
from core.registry import register


class AdditiveCoupling(nn.Module):
    """``z = x + (1 - m) * net(m * x)``: unit Jacobian determinant."""

    def __init__(self, mask: torch.Tensor, hidden: int, depth: int):
        super().__init__()
        self.register_buffer("mask", mask.clone(), persistent=False)
        self.net = mlp(len(mask), hidden, depth, len(mask))

    def shift(self, kept: torch.Tensor) -> torch.Tensor:
        return self.net(kept) * (1 - self.mask)

    def forward(self, x):
        return x + self.shift(x * self.mask)

    def inverse(self, z):
        return z - self.shift(z * self.mask)


@register
class NICE(CouplingFlow):
    info = ModelInfo(
        key="nice",
        name="NICE",
        group="Flows",
        description="Additive coupling flow: each layer shifts one coordinate by an MLP of the other "
                    "(volume preserving), then one diagonal scaling. Exact likelihood by change of "
                    "variables; sampling by inverting the layers. 2D points only.",
        likelihood=Likelihood.EXACT,
        data_kinds=(DataKind.POINTS_2D,),
        recipe=Recipe(steps=6000, schedule="cosine", warmup=100),
        hparams=(
            HParam("layers", "int", 8, 1, 64, help="additive coupling layers (halves alternate)"),
            HParam("hidden", "int", 64, 2, 1024, log=True, help="units per hidden layer of each coupling's MLP"),
            HParam("depth", "int", 3, 1, 8, help="hidden layers per coupling MLP"),
            HParam("prior", "choice", "normal", choices=("normal", "logistic"),
                   help="base density of z: standard normal or standard logistic (as in the paper)"),
            lr_hparam(),
            batch_size_hparam(256),
        ),
    )

    def __init__(self, data_shape, hparams):
        super().__init__(data_shape, hparams)
        self._check_dims()
        hp = self.hparams
        self.couplings = nn.ModuleList(
            AdditiveCoupling(m, int(hp["hidden"]), int(hp["depth"])) for m in half_masks(self.dim, int(hp["layers"])))
        self.log_scale = nn.Parameter(torch.zeros(self.dim))  # the final diagonal scaling

    def forward_flow(self, x):
        for coupling in self.couplings:
            x = coupling(x)
        return x * self.log_scale.exp(), self.log_scale.sum().expand(len(x))

    def inverse_flow(self, z):
        x = z * (-self.log_scale).exp()
        for coupling in reversed(self.couplings):
            x = coupling.inverse(x)
        return x

    def base_log_prob(self, z):
        if self.hparams["prior"] == "logistic":
            return -(F.softplus(z) + F.softplus(-z)).sum(1)
        return super().base_log_prob(z)

    def base_sample(self, n, generator=None):
        if self.hparams["prior"] == "logistic":
            u = torch.rand(n, self.dim, generator=generator, device=self.device)
            u = u.clamp(1e-6, 1 - 1e-6)
            return u.log() - (-u).log1p()
        return super().base_sample(n, generator)

