"""Conditional VAE (Sohn, Lee & Yan 2015) for labelled binary images: the digit, one-hot, is an
input of both encoder and decoder, so the latent z is left to hold the style (slant, thickness).
Keep z and change the digit: the same handwriting writes every digit.

``log_prob(x, labels=y)`` is the IWAE bound on log p(x | y); without labels, a bound on the uniform
class mixture, ``log (1/C) sum_y p(x | y) >= logmeanexp_y L_k(x | y)``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from core.models.vae import BOUND_HPARAMS, LATENT_HPARAMS, VAE
from core.protocol import DataKind, HParam, Likelihood, ModelInfo, Visuals, batch_size_hparam, lr_hparam
from core.registry import register


@register
class ConditionalVAE(VAE):
    info = ModelInfo(
        key="cvae",
        name="Conditional VAE",
        group="Latent variable",
        description="VAE whose encoder and decoder both read the digit (one-hot): z keeps the style, the "
                    "label chooses the digit. Trained on labelled digits (mnist_digits); its likelihood is "
                    "the IWAE bound on log p(x | y).",
        likelihood=Likelihood.LOWER_BOUND,
        data_kinds=(DataKind.BINARY_IMAGE,),
        hparams=LATENT_HPARAMS + (
            HParam("classes", "int", 10, 2, 1000, help="number of classes (labels 0 .. classes-1)"),
            *BOUND_HPARAMS,
            lr_hparam(1e-3),
            batch_size_hparam(100),
        ),
        conditional=True,
    )

    @property
    def classes(self) -> int:
        return int(self.hparams["classes"])

    def input_dim(self) -> int:
        return self.dim + self.classes

    def condition_dim(self) -> int:
        return self.classes

    # -- labels ----------------------------------------------------------------------------------
    def check_labels(self, labels: Any, n: int) -> torch.Tensor:
        """``labels`` as int64 (n,) on the model's device: n whole numbers in [0, classes), or one
        number for all n. Anything else: ValueError."""
        try:
            arr = np.asarray(labels.detach().cpu() if torch.is_tensor(labels) else labels)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise ValueError(f"{self.info.name}: labels must be whole numbers, got {labels!r} ({exc})") from None
        if not (arr.dtype.kind in "iu" or (arr.dtype.kind == "f" and np.isfinite(arr).all()
                                           and (arr == np.round(arr)).all())):
            raise ValueError(f"{self.info.name}: labels must be whole numbers (class indices), got {arr.dtype}")
        if arr.ndim == 0:
            arr = np.full(n, arr)
        if arr.shape != (n,):
            raise ValueError(f"{self.info.name}: expected {n} labels (one per example), got shape {arr.shape}")
        if len(arr) and (arr.min() < 0 or arr.max() >= self.classes):
            raise ValueError(f"{self.info.name}: labels must be in 0 .. {self.classes - 1}")
        return torch.from_numpy(arr.astype(np.int64)).to(self.device)

    def _cond(self, n: int, labels: Any = None) -> dict:
        if labels is None:
            raise ValueError(f"{self.info.name} is class-conditional: it needs labels (the digit)")
        return {"y": F.one_hot(self.check_labels(labels, n), self.classes).float()}

    # -- the networks read the label ------------------------------------------------------------
    def posterior(self, x: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.encoder(torch.cat([x, y], -1)).chunk(2, dim=-1)
        return mu, logvar.clamp(-12.0, 8.0)

    def decoder_logits(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.decoder(torch.cat([z, y], -1))

    # -- the protocol ---------------------------------------------------------------------------
    def log_prob(self, x: torch.Tensor, k: int | None = None, labels: Any = None) -> torch.Tensor:
        if labels is not None:
            return self.iwae_bound(x, k, labels=labels)
        n = len(x)
        per_class = torch.stack([self.iwae_bound(x, k, labels=torch.full((n,), c, dtype=torch.long))
                                 for c in range(self.classes)])
        return torch.logsumexp(per_class, 0) - math.log(self.classes)

    def train_step(self, batch: torch.Tensor, labels: Any = None) -> dict[str, float]:
        if labels is None:
            raise ValueError(f"{self.info.name} is class-conditional: training needs labels "
                             f"(use a labelled data set such as mnist_digits)")
        self._step_labels = labels
        try:
            return super().train_step(batch)
        finally:
            self._step_labels = None

    def loss(self, batch: torch.Tensor, labels: Any = None) -> torch.Tensor:
        labels = getattr(self, "_step_labels", None) if labels is None else labels
        return super().loss(batch, labels=labels)

    @torch.no_grad()
    def visuals(self, n=64, generator=None, bounds=None, res=96, labels=None) -> Visuals:
        """Samples of the digits ``labels`` (default 0, 1, ..., 9, 0, ...) with those labels, so
        that the views lay them out a digit a column."""
        self.eval()
        labels = torch.arange(n) % self.classes if labels is None else self.check_labels(labels, n)
        s = self.sample(n, generator=generator, labels=labels)
        return Visuals(samples=np.ascontiguousarray(s.cpu().numpy(), dtype=np.float32),
                       sample_labels=np.ascontiguousarray(labels.cpu().numpy(), dtype=np.int64))

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, labels: Any = None) -> torch.Tensor:
        """``n`` samples of the digits ``labels`` (one per sample, or one for all); without labels,
        digit i % classes for sample i."""
        if labels is None:
            labels = torch.arange(n) % self.classes
        return super().sample(n, generator, labels=labels)
