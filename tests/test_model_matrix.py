"""Every point-data model learns every built-in set it accepts, through the same trainer
generator the GUI worker runs: held-out NLL falls (gradient models) or is finite (fitted
ones), the density grid integrates to 1, samples are finite and inside the data's range."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from core import data as datasets
from core import registry
from core.data import toy
from core.training import TrainConfig, Trainer
from core.protocol import DataKind, Likelihood, cell_area, grid_points

KIND = {1: DataKind.POINTS_1D, 2: DataKind.POINTS_2D}
#: steps for gradient models: enough to see the held-out NLL fall, few enough for CI
STEPS = 40


#: the cases measured above ~2 s (the denoising autoencoder on the sets of many small modes)
SLOW = {("dae", "ring8"), ("dae", "grid25"), ("dae", "8gaussians")}


def cases():
    for info in registry.families():
        for name, spec in toy.TOY_SETS.items():
            if KIND[spec.dim] in info.data_kinds:
                marks = [pytest.mark.slow] if (info.key, name) in SLOW else []
                yield pytest.param(info.key, name, id=f"{info.key}-{name}", marks=marks)


def wide(bounds, factor=3.0):
    out = []
    for lo, hi in bounds:
        c, h = (lo + hi) / 2, (hi - lo) / 2 * factor
        out.append((c - h, c + h))
    return tuple(out)


@pytest.mark.parametrize("key,name", list(cases()))
def test_model_learns_built_in_set(key, name):
    torch.manual_seed(0)
    info = registry.info(key)
    n = None if name == "integers1d" else 500
    ds = datasets.load(name, n=n, seed=1)
    hp = {}
    if key == "gmm":
        hp["components"] = min(4, len(ds.train))
    if key in ("knn", "adaptive_kde"):
        hp["k"] = min(5, len(ds.train) - 1)
    if any(h.name == "batch_size" for h in info.all_hparams()):
        hp["batch_size"] = min(128, len(ds.train))
    model = registry.create(key, ds.shape, ds.kind, **hp)
    steps = 5 if info.full_batch else STEPS
    cfg = TrainConfig(max_steps=steps, eval_every=1 if not info.full_batch else max(1, steps // 3),
                      eval_size=500, visuals_every_s=None, device="cpu", coverage_samples=500)
    trainer = Trainer(model, ds, cfg)
    snaps = list(trainer.run())
    assert snaps[-1].event == "finished", snaps[-1].message
    assert all(math.isfinite(s.loss) for s in snaps), "finite training loss"

    if info.likelihood is not Likelihood.NONE:
        nll = [s.nll.nats for s in snaps if s.event in ("eval", "finished")]
        assert all(math.isfinite(v) for v in nll)
        if not info.full_batch and name != "integers1d":
            first, last = np.mean(nll[:3]), np.mean(nll[-3:])  # evaluated at every step
            assert last < first, f"held-out NLL falls: {first:.3f} -> {last:.3f}"
        bounds = wide(trainer.bounds)
        res = 400 if len(bounds) == 1 else 160
        grid = model.density_grid(bounds, res)
        mass = float(grid.sum() * cell_area(bounds, res))
        if ds.meta.get("modes") is not None and ds.meta["modes"][1] < 0.1:
            # ring8 / grid25: modes of std 0.01-0.05 need cells finer than that: a fine grid
            # inside the data's box, and the coarse grid's cells outside it
            inner = wide(trainer.bounds, 1.2)
            fine = min(700, math.ceil((inner[0][1] - inner[0][0]) / (ds.meta["modes"][1] / 2)))
            inside = float(model.density_grid(inner, fine).sum() * cell_area(inner, fine))
            centres = grid_points(bounds, res)
            out = ~((centres >= [b[0] for b in inner]) & (centres <= [b[1] for b in inner])).all(1)
            mass = inside + float(grid.reshape(-1)[out].sum() * cell_area(bounds, res))
        tol = 0.06 if name in ("heavytail1d", "integers1d") else 0.04
        assert mass == pytest.approx(1.0, abs=tol), f"density integrates to {mass}"

    if "sample" in model.capabilities():
        s = model.sample(300, generator=torch.Generator().manual_seed(0)).numpy()
        assert s.shape == (300, ds.shape[0]) and np.isfinite(s).all()
        lo = np.array([b[0] for b in wide(trainer.bounds, 6)])
        hi = np.array([b[1] for b in wide(trainer.bounds, 6)])
        inside = ((s >= lo) & (s <= hi)).all(1).mean()
        assert inside > 0.9, "samples lie near the data"
