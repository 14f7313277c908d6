"""Device choice: CUDA when it works, else the CPU, and how to tell a CUDA failure."""

from __future__ import annotations

import os

import torch


def select_device(preference: str | None = None) -> tuple[torch.device, str | None]:
    """Pick the device: ``"auto"`` (CUDA if it works, else CPU), ``"cpu"`` or ``"cuda[:N]"``.

    ``$GMS_DEVICE`` gives the preference when none is passed, and ``GMS_FORCE_CPU=1`` overrides
    everything. Returns the device and a message for the user when the choice was not honoured.
    """
    if os.environ.get("GMS_FORCE_CPU", "").lower() in ("1", "true", "yes"):
        return torch.device("cpu"), None
    pref = (preference or os.environ.get("GMS_DEVICE") or "auto").lower()
    if pref == "cpu":
        return torch.device("cpu"), None
    if pref != "auto" and not pref.startswith("cuda"):
        raise ValueError(f"unknown device {pref!r}: use auto, cpu or cuda")
    if not torch.cuda.is_available():
        if pref == "auto":
            return torch.device("cpu"), None
        return torch.device("cpu"), f"{pref} was asked for but no CUDA device is available: training on the CPU"
    device = torch.device("cuda" if pref == "auto" else pref)
    try:
        torch.zeros(1, device=device).sum().item()
    except Exception as exc:  # a broken driver, a wrong index, out of memory...
        return torch.device("cpu"), f"CUDA failed ({exc}): training on the CPU"
    return device, None


def is_cuda_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is a CUDA runtime failure (the trainer then goes on on the CPU)."""
    text = str(exc)
    return isinstance(exc, RuntimeError) and any(s in text for s in ("CUDA", "cuda", "cuDNN", "CUBLAS"))
