"""RealNVP (Dinh, Sohl-Dickstein & Bengio 2017): affine coupling layers for 2D points.

Each coupling keeps half of the coordinates and moves the other half by an affine map whose
log-scale and shift are MLPs of the kept half: ``z_b = x_b * exp(s(x_a)) + t(x_a)``, with the
two halves alternating from layer to layer (for 2D points: one coordinate updates the other).
The log-scales are soft-clamped (``c * tanh(s / c)``) so a step can never blow up, and an
optional ActNorm (Glow) before every coupling, initialised from the first training batch,
keeps the activations standardised. ``x -> z`` has a triangular Jacobian, so the likelihood is
exact: ``log p(x) = log N(z; 0, I) + sum of the log-scales``; sampling runs the layers backwards.

This module also holds what NICE shares: :class:`CouplingFlow` (log-likelihood by change of
variables, sampling by inversion, the "warp" view) and :func:`warp_lines`.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import torch
from torch import nn

from core.protocol import DataKind, GenerativeModel, HParam, Likelihood, ModelInfo, Recipe, batch_size_hparam, lr_hparam
from core.registry import register

LOG_2PI = math.log(2 * math.pi)


# --------------------------------------------------------------------------------------------
# shared pieces (NICE imports them)
# --------------------------------------------------------------------------------------------


#: the warp view: a few lines over the base space's bulk (within 2 sd: the tails' lines tangle),
#: each with enough points to be smooth
WARP_LINES, WARP_POINTS, WARP_EXTENT = 7, 120, 2.0


def warp_lines(inverse: Callable[[torch.Tensor], torch.Tensor], lines: int = WARP_LINES, points: int = WARP_POINTS,
               extent: float = WARP_EXTENT, device: torch.device | str = "cpu") -> np.ndarray:
    """A regular grid in the 2D base space, ``lines`` horizontal and ``lines`` vertical lines of
    ``points`` points each over ``[-extent, extent]``, mapped to data space by ``inverse``.

    Returns C-contiguous float32 polylines of shape ``(2 * lines, points, 2)``: first the
    horizontal ones (constant z_2, from bottom to top), then the vertical ones (constant z_1)."""
    levels = torch.linspace(-extent, extent, lines, dtype=torch.float32)
    along = torch.linspace(-extent, extent, points, dtype=torch.float32)
    horiz = torch.stack([along.expand(lines, points), levels[:, None].expand(lines, points)], -1)
    vert = torch.stack([levels[:, None].expand(lines, points), along.expand(lines, points)], -1)
    z = torch.cat([horiz, vert]).reshape(-1, 2).to(device)
    with torch.no_grad():
        x = inverse(z)
    return np.ascontiguousarray(x.reshape(2 * lines, points, 2).cpu().numpy(), dtype=np.float32)


def mlp(n_in: int, hidden: int, depth: int, n_out: int, zero_last: bool = True) -> nn.Sequential:
    """``depth`` hidden layers of ``hidden`` units (ReLU). The last layer starts at zero so a
    new coupling is the identity (stable start; the flow learns away from it)."""
    layers: list[nn.Module] = []
    width = n_in
    for _ in range(depth):
        layers += [nn.Linear(width, hidden), nn.ReLU()]
        width = hidden
    last = nn.Linear(width, n_out)
    if zero_last:
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
    layers.append(last)
    return nn.Sequential(*layers)


def half_masks(dim: int, layers: int) -> torch.Tensor:
    """(layers, dim) float masks: 1 marks the coordinates a coupling keeps (and conditions on).
    Alternating halves: even coordinates first, then odd ones; for 2D, x1 then x2."""
    idx = torch.arange(dim)
    return torch.stack([((idx + layer) % 2 == 0).float() for layer in range(layers)])


class CouplingFlow(GenerativeModel):
    """A normalising flow on points with at least 2 coordinates. Subclasses implement
    ``forward_flow(x) -> (z, logdet)`` (data to base) and ``inverse_flow(z) -> x``; they may
    change the base density through ``base_log_prob`` / ``base_sample``."""

    def _check_dims(self) -> None:
        if len(self.data_shape) != 1 or self.dim < 2:
            raise ValueError(
                f"{self.info.name} needs points with at least 2 coordinates (its couplings update one "
                f"half from the other), got data of shape {self.data_shape}; for 1D data pick "
                f"another model (RNADE, for instance)"
            )

    # -- to implement ---------------------------------------------------------------------------
    def forward_flow(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def inverse_flow(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    # -- base density: standard normal --------------------------------------------------------
    def base_log_prob(self, z: torch.Tensor) -> torch.Tensor:
        return -0.5 * (z * z).sum(1) - 0.5 * self.dim * LOG_2PI

    def base_sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(n, self.dim, generator=generator, device=self.device)

    # -- protocol -------------------------------------------------------------------------------
    def log_prob(self, x):
        x = self.check_batch(x)
        z, logdet = self.forward_flow(x)
        return self.base_log_prob(z) + logdet

    @torch.no_grad()
    def sample(self, n, generator=None):
        return self.inverse_flow(self.base_sample(int(n), generator)).float()

    def encode(self, x):
        return self.forward_flow(self.check_batch(x))[0]

    def decode(self, z):
        return self.inverse_flow(z.to(self.device, torch.float32))

    @torch.no_grad()
    def visuals(self, n=64, generator=None, bounds=None, res=96):
        """Adds ``"warp"``: a grid of base-space lines (7 + 7 of 120 points over [-2, 2]) mapped
        into data space, shape (14, 120, 2), to show how the flow bends space."""
        out = super().visuals(n, generator, bounds, res)
        if self.dim == 2:
            out.warp = warp_lines(self.inverse_flow, device=self.device)
        return out


# --------------------------------------------------------------------------------------------
# RealNVP
# --------------------------------------------------------------------------------------------


class ActNorm(nn.Module):
    """Per-coordinate affine ``z = x * exp(log_scale) + bias``, initialised from data so that
    its output has zero mean and unit variance (Kingma & Dhariwal 2018)."""

    def __init__(self, dim: int):
        super().__init__()
        self.log_scale = nn.Parameter(torch.zeros(dim))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.register_buffer("initialized", torch.zeros(()))

    @torch.no_grad()
    def initialize(self, x: torch.Tensor) -> None:
        std = x.std(0) if len(x) > 1 else torch.ones_like(x[0])
        std = torch.where(torch.isfinite(std) & (std > 1e-6), std, torch.ones_like(std))
        self.log_scale.copy_(-std.log())
        self.bias.copy_(-x.mean(0) / std)
        self.initialized.fill_(1.0)

    def forward(self, x):
        return x * self.log_scale.exp() + self.bias, self.log_scale.sum().expand(len(x))

    def inverse(self, z):
        return (z - self.bias) * (-self.log_scale).exp()


class FixedRotation(nn.Module):
    """A fixed orthogonal mixing of the coordinates (unit Jacobian determinant), drawn once from a
    seeded generator (the layer index): Glow's 1x1 mixing, frozen. Without it, alternating
    couplings on a set whose coordinates are independent (grid25: a product of two 1D mixtures)
    have nothing to condition on: every coupling's input is independent of what it moves, so the
    best affine coupling is a constant one and the flow stays at a gaussian. A checkpoint saved
    before the rotation existed loads with the identity in its place (the model it was)."""

    def __init__(self, dim: int, seed: int):
        super().__init__()
        g = torch.Generator().manual_seed(1000 + seed)
        q, r = torch.linalg.qr(torch.randn(dim, dim, generator=g, dtype=torch.float64))
        q = q * torch.sign(torch.diagonal(r))[None, :]  # a uniformly random orthogonal matrix
        self.register_buffer("weight", q.float())

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        if prefix + "weight" not in state_dict:  # saved before the rotation existed
            state_dict[prefix + "weight"] = torch.eye(self.weight.shape[0])
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x):
        return x @ self.weight.T, torch.zeros(len(x), device=x.device, dtype=x.dtype)

    def inverse(self, z):
        return z @ self.weight


class AffineCoupling(nn.Module):
    """``z = m * x + (1 - m) * (x * exp(s) + t)``, ``(s, t) = net(m * x)``, ``s`` soft-clamped."""

    def __init__(self, mask: torch.Tensor, hidden: int, depth: int, clamp: float):
        super().__init__()
        self.register_buffer("mask", mask.clone(), persistent=False)
        self.net = mlp(len(mask), hidden, depth, 2 * len(mask))
        self.clamp = float(clamp)

    def _st(self, kept: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s, t = self.net(kept).chunk(2, dim=1)
        s = self.clamp * torch.tanh(s / self.clamp) * (1 - self.mask)
        return s, t * (1 - self.mask)

    def forward(self, x):
        kept = x * self.mask
        s, t = self._st(kept)
        return kept + (1 - self.mask) * (x * s.exp() + t), s.sum(1)

    def inverse(self, z):
        kept = z * self.mask
        s, t = self._st(kept)
        return kept + (1 - self.mask) * ((z - t) * (-s).exp())


@register
class RealNVP(CouplingFlow):
    info = ModelInfo(
        key="realnvp",
        name="RealNVP",
        group="Flows",
        description="Affine coupling flow: each layer scales and shifts one coordinate by MLPs of "
                    "the other (alternating), with bounded log-scales and ActNorm. Exact likelihood "
                    "by change of variables; sampling by inverting the layers. 2D points only.",
        likelihood=Likelihood.EXACT,
        data_kinds=(DataKind.POINTS_2D,),
        recipe=Recipe(steps=6000, schedule="cosine", warmup=100),
        hparams=(
            HParam("layers", "int", 12, 1, 64, help="affine coupling layers (halves alternate)"),
            HParam("hidden", "int", 64, 2, 1024, log=True, help="units per hidden layer of each coupling's MLP"),
            HParam("depth", "int", 2, 1, 6, help="hidden layers per coupling MLP"),
            # 1.0, not 3.0: with the rotations, steps that scaled by up to e^3 a layer made the
            # held-out NLL spike on ring8's narrow modes at a constant rate; 12 layers at e^1
            # still reach the 100x needed, and the defaults got closer on every set measured
            HParam("clamp", "float", 1.0, 0.1, 20.0,
                   help="bound on each log-scale: s = c * tanh(s / c), so one layer scales by at most e^c"),
            HParam("actnorm", "bool", True, help="ActNorm before every coupling, initialised from the first batch"),
            lr_hparam(2e-3),
            batch_size_hparam(256),
        ),
    )

    def __init__(self, data_shape, hparams):
        super().__init__(data_shape, hparams)
        self._check_dims()
        hp = self.hparams
        masks = half_masks(self.dim, int(hp["layers"]))
        self.couplings = nn.ModuleList(
            AffineCoupling(m, int(hp["hidden"]), int(hp["depth"]), float(hp["clamp"])) for m in masks)
        self.norms = nn.ModuleList(ActNorm(self.dim) for _ in masks) if hp["actnorm"] else None
        self.mixes = nn.ModuleList(FixedRotation(self.dim, i) for i in range(len(masks)))

    def _steps(self):
        for i, coupling in enumerate(self.couplings):
            if self.norms is not None:
                yield self.norms[i]
            yield self.mixes[i]
            yield coupling

    def _unmix(self) -> torch.Tensor:
        """The product of the fixed rotations, ``P = R_L ... R_1``; the flow ends with ``P^-1`` so
        that an untrained flow (identity couplings, no ActNorm yet) is still the identity."""
        p = self.mixes[0].weight
        for mix in self.mixes[1:]:
            p = mix.weight @ p
        return p

    def forward_flow(self, x):
        logdet = torch.zeros(len(x), device=x.device, dtype=x.dtype)
        for step in self._steps():
            x, ld = step(x)
            logdet = logdet + ld
        return x @ self._unmix(), logdet

    def inverse_flow(self, z):
        z = z @ self._unmix().T
        for step in reversed(list(self._steps())):
            z = step.inverse(z)
        return z

    @torch.no_grad()
    def initialize(self, x: torch.Tensor) -> None:
        """Data-dependent ActNorm initialisation: pass ``x`` through, initialising each ActNorm."""
        x = self.check_batch(x)
        for step in self._steps():
            if isinstance(step, ActNorm) and not bool(step.initialized):
                step.initialize(x)
            x, _ = step(x)

    def loss(self, batch):
        if self.norms is not None and not bool(self.norms[0].initialized):
            self.initialize(batch)
        return super().loss(batch)
