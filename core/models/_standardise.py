"""Data standardisation fitted on the first training batch, kept in buffers so checkpoints
carry it (shared by the families that train on standardised points)."""

from __future__ import annotations

import torch


def register_standardiser(model: torch.nn.Module, dim: int) -> None:
    """Add the ``loc``, ``scale`` and ``initialised`` buffers to ``model``."""
    model.register_buffer("loc", torch.zeros(dim))
    model.register_buffer("scale", torch.ones(dim))
    model.register_buffer("initialised", torch.zeros((), dtype=torch.bool))


@torch.no_grad()
def fit_standardiser(model: torch.nn.Module, batch: torch.Tensor) -> None:
    """Set ``loc``/``scale`` from ``batch`` (a degenerate axis keeps scale 1)."""
    loc = batch.mean(0)
    scale = batch.std(0) if len(batch) > 1 else torch.ones_like(loc)
    scale = torch.where(torch.isfinite(scale) & (scale > 1e-6), scale, torch.ones_like(scale))
    model.loc.copy_(loc)
    model.scale.copy_(scale)
    model.initialised.fill_(True)
