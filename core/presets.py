"""Presets of hyperparameters: for every image family, a small **fast** one that shows learning
within a minute on one CPU thread (binarized MNIST: the loss falls visibly in the first hundred
steps, an epoch takes well under a minute), next to the registry's defaults (sized for results).

``fast_preset(key)`` gives every hyperparameter of a family: its defaults, with the fast values
over them; None for a family without one (point and sequence models are fast already).
"""

from __future__ import annotations

from typing import Any

from core import registry
from core.protocol import DataKind

#: the values that differ from the defaults; every image family has an entry (tests/test_presets.py)
FAST: dict[str, dict[str, Any]] = {
    "nade": {"hidden": 64, "lr": 3e-3, "batch_size": 64},
    "cnade": {"hidden": 64, "lr": 3e-3, "batch_size": 64},
    "made": {"hidden": 128, "lr": 3e-3, "batch_size": 100},
    "made-mixture": {"members": 2, "hidden": 64, "lr": 3e-3, "batch_size": 100},
    "fvsbn": {"weight_decay": 0.0, "l1": 0.0, "dropout": 0.0},
    "pixelcnn": {"channels": 16, "blocks": 2, "lr": 3e-3, "batch_size": 32},
    "pixelrnn": {"hidden": 32, "row_hidden": 32, "lr": 3e-3, "batch_size": 50},
    "vae": {"latent": 2, "hidden": 128, "layers": 1, "eval_k": 20, "lr": 3e-3, "batch_size": 100},
    "cvae": {"latent": 2, "hidden": 128, "layers": 1, "eval_k": 20, "lr": 3e-3, "batch_size": 100},
    "ae": {"latent": 2, "hidden": 128, "layers": 1, "lr": 3e-3, "batch_size": 100},
    "dcgan": {"latent": 16, "channels": 16, "lr": 5e-4, "batch_size": 64},
    "cgan": {"latent": 16, "channels": 16, "lr": 5e-4, "batch_size": 64},
}

#: the epochs a fast run is given (binarized MNIST: half a pass over its 50 000 training digits)
FAST_EPOCHS = 0.5


def image_families() -> list[str]:
    """The families that model binary images: each has a fast preset."""
    return [info.key for info in registry.families() if DataKind.BINARY_IMAGE in info.data_kinds]


def fast_preset(key: str) -> dict[str, Any] | None:
    """Every hyperparameter of family ``key``: its defaults, with the fast preset's values over
    them; None when the family has no fast preset."""
    values = FAST.get(key)
    if values is None:
        return None
    info = registry.info(key)
    names = {h.name for h in info.all_hparams()}
    unknown = set(values) - names
    if unknown:
        raise ValueError(f"the fast preset of {key} names hyperparameters it does not have: {sorted(unknown)}")
    return {**{h.name: h.default for h in info.all_hparams()}, **values}
