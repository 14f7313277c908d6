"""Conditional NADE: a NADE whose biases depend on a class label y (a digit, say).

The model is NADE (see :mod:`core.models.nade`) with two learned class embeddings, one added to
the hidden bias and one to the output bias:

    a_d(y) = c + E_c[y] + W[:, :d] x_<d
    h_d    = sigmoid(a_d(y))
    p(x_d = 1 | x_<d, y) = sigmoid(b_d + E_b[y, d] + V_d . h_d)

so ``log p(x | y)`` is exact and, for every class, a normalised distribution over the 2**D
images. Both embeddings start at zero: a fresh model is a plain NADE, and training moves each
class away from the shared one only as far as its examples ask.

Without labels (``labels=None``), ``log_prob`` and ``pixel_log_prob`` score the class mixture
with a uniform prior, ``p(x) = 1/C sum_y p(x | y)`` (its chain-rule terms are
``log p(x_<=d) - log p(x_<d)``, each a logsumexp over the classes), and ``sample`` draws from
that same mixture: a uniform random class, then the image. Training needs labels.
"""

from __future__ import annotations

import math
from typing import Any, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from core.models.nade import _CHUNK_FLOATS, NADE, raster_fill
from core.protocol import (CompletionStep, DataKind, HParam, Likelihood, ModelInfo, Visuals, batch_size_hparam,
                           check_abandoned, lr_hparam)
from core.registry import register


@register
class ConditionalNADE(NADE):
    info = ModelInfo(
        key="cnade",
        name="Conditional NADE",
        group="Autoregressive",
        description="NADE conditioned on a class label: learned class embeddings added to the hidden "
                    "and output biases. Exact log p(x | y); trained on labelled data (mnist_digits); "
                    "samples one class per column.",
        likelihood=Likelihood.EXACT,
        data_kinds=(DataKind.BINARY_IMAGE,),
        hparams=(
            HParam("hidden", "int", 500, 1, 4096, log=True, help="hidden units (H)"),
            HParam("classes", "int", 10, 2, 1000, help="number of classes (labels 0 .. classes-1)"),
            lr_hparam(),
            batch_size_hparam(),
        ),
        conditional=True,
    )

    def __init__(self, data_shape, hparams):
        super().__init__(data_shape, hparams)
        self.classes = int(self.hparams["classes"])
        h = self.W.shape[0]
        self.class_hidden = nn.Parameter(torch.zeros(self.classes, h))  # E_c: added to c
        self.class_output = nn.Parameter(torch.zeros(self.classes, self.dim))  # E_b: added to b
        self._step_labels: torch.Tensor | None = None

    # -- labels ----------------------------------------------------------------------------------
    def check_labels(self, labels: Any, n: int) -> torch.Tensor:
        """``labels`` as an int64 tensor (n,) on the model's device: a sequence, array or tensor of
        n whole numbers in [0, classes), or one number for all n. Anything else: ValueError."""
        try:
            arr = np.asarray(labels.detach().cpu() if torch.is_tensor(labels) else labels)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise ValueError(f"{self.info.name}: labels must be whole numbers, got {labels!r} ({exc})") from None
        whole = arr.dtype.kind in "iu" or (arr.dtype.kind == "f" and bool(np.isfinite(arr).all())
                                          and bool((arr == np.round(arr)).all()))
        if not whole:
            raise ValueError(f"{self.info.name}: labels must be whole numbers (class indices), "
                             f"got {arr.dtype} values")
        if arr.ndim == 0:
            arr = np.full(n, arr)
        if arr.ndim != 1 or len(arr) != n:
            raise ValueError(f"{self.info.name}: expected {n} labels (one per example), got shape {arr.shape}")
        bad = arr[(arr < 0) | (arr >= self.classes)]
        if len(bad):
            raise ValueError(f"{self.info.name}: label {bad[0]} is out of range: this model has classes "
                             f"0 .. {self.classes - 1}")
        return torch.from_numpy(arr.astype(np.int64)).to(self.device)

    def _random_labels(self, n: int, generator: torch.Generator | None) -> torch.Tensor:
        device = generator.device if generator is not None else self.device
        return torch.randint(self.classes, (n,), generator=generator, device=device).to(self.device)

    # -- the model -------------------------------------------------------------------------------
    def logits(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Logits of p(x_d = 1 | x_<d, y) for every pixel, (N, D), from flat float inputs (N, D)
        and checked labels (N,). NADE's cumulative sum, with a hidden bias per row."""
        if labels is None:
            raise ValueError(f"{self.info.name}: logits need labels")
        n, d = x.shape
        ws = F.pad(self.W.t()[:-1], (0, 0, 1, 0))  # (D, H), shifted: the cumsum is the exclusive one
        xs = F.pad(x[:, :-1], (1, 0))
        c = (self.c + self.class_hidden[labels])[:, None, :]  # (N, 1, H)
        rows = max(1, _CHUNK_FLOATS // max(1, d * ws.shape[1]))
        out = []
        for i in range(0, n, rows):
            h = (xs[i:i + rows, :, None] * ws).cumsum_(1).add_(c[i:i + rows]).sigmoid_()
            out.append((h * self.V).sum(-1))
        return (torch.cat(out) if out else x.new_zeros(0, d)) + self.b + self.class_output[labels]

    def _class_pixel_log_prob(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return -F.binary_cross_entropy_with_logits(self.logits(x, labels), x, reduction="none")

    def _all_classes(self, x: torch.Tensor) -> torch.Tensor:
        """(C, N, D) per-pixel terms of log p(x | y) for every class y."""
        n = len(x)
        ys = torch.arange(self.classes, device=self.device).repeat_interleave(n)
        return self._class_pixel_log_prob(x.repeat(self.classes, 1), ys).reshape(self.classes, n, -1)

    def pixel_log_prob(self, x, labels=None):
        """(N, D) chain-rule terms: of log p(x | y) with labels, of the uniform class mixture
        log p(x) without (its prefix likelihoods' logsumexp over the classes, differenced)."""
        x = self.check_batch(x).reshape(len(x), self.dim)
        if labels is not None:
            return self._class_pixel_log_prob(x, self.check_labels(labels, len(x)))
        prefix = self._all_classes(x).cumsum(2)  # log p(x_<=d | y), (C, N, D)
        mix = torch.logsumexp(prefix, 0) - math.log(self.classes)  # log p(x_<=d), (N, D)
        return torch.diff(mix, dim=1, prepend=mix.new_zeros(len(x), 1))

    def log_prob(self, x, labels=None):
        """log p(x | y) with labels; log of the uniform class mixture p(x) without."""
        x = self.check_batch(x).reshape(len(x), self.dim)
        if labels is not None:
            return self._class_pixel_log_prob(x, self.check_labels(labels, len(x))).sum(1)
        return torch.logsumexp(self._all_classes(x).sum(2), 0) - math.log(self.classes)

    # -- training --------------------------------------------------------------------------------
    def loss(self, batch, labels=None):
        labels = self._step_labels if labels is None else labels
        if labels is None:
            raise ValueError(f"{self.info.name} is class-conditional: training needs labels "
                             f"(use a labelled data set such as mnist_digits)")
        return -self.log_prob(batch, labels=labels).mean()

    def train_step(self, batch, labels=None):
        """The base step (NaN guard, optimizer) on ``-log p(batch | labels)``: the labels wait in
        ``_step_labels`` for the base class's call of ``loss(batch)``."""
        if labels is None:
            raise ValueError(f"{self.info.name} is class-conditional: train_step needs labels")
        self._step_labels = self.check_labels(labels, len(batch))
        try:
            return super().train_step(batch)
        finally:
            self._step_labels = None

    # -- sampling and completion -----------------------------------------------------------------
    def _walk(self, x, known, n, generator, labels) -> Iterator[CompletionStep]:
        """The completion loop: yields a step per pixel drawn, returns the (M, D) result."""
        rows = 1 if tuple(x.shape) in (self.data_shape, (self.dim,)) else len(x)
        x, known = self.completion_inputs(x, known, n)  # (M, D), unknown pixels zeroed
        if labels is None:
            y = self._random_labels(len(x), generator)
        else:
            y = self.check_labels(labels, rows).repeat_interleave(int(n))
        a = self.c + self.class_hidden[y]  # running pre-activation, (M, H)
        return (yield from raster_fill(x, known, self.W, a, self.V, self.b + self.class_output[y], generator))

    @torch.no_grad()
    def complete_steps(self, x, known, n=1, generator=None, labels=None) -> Iterator[CompletionStep]:
        """Sample the unknown pixels in raster order given the class, keeping the known ones;
        one :class:`CompletionStep` per pixel unknown in some candidate. ``labels``: one per input
        row (each shared by its ``n`` candidates), one number for all, or None for a uniform random
        class per candidate (not the posterior given the known pixels, which NADE cannot afford)."""
        return (yield from self._walk(x, known, n, generator, labels))

    @torch.no_grad()
    def complete(self, x, known, n=1, generator=None, labels=None):
        """What :meth:`complete_steps` ends with: (N * n, D), the candidates of row i together."""
        walk = self._walk(x, known, n, generator, labels)
        while True:
            try:
                next(walk)
            except StopIteration as stop:
                return stop.value
            check_abandoned()

    @torch.no_grad()
    def sample(self, n, generator=None, labels=None):
        """``n`` images, of the given classes, or each of a uniform random class."""
        n = int(n)
        if labels is None:
            labels = self._random_labels(n, generator)
        labels = self.check_labels(labels, n)
        zeros = torch.zeros(n, self.dim, device=self.device)
        out = self.complete(zeros, torch.zeros_like(zeros, dtype=torch.bool), 1, generator, labels=labels)
        return out.reshape(n, *self.data_shape)

    def visual_labels(self, n: int) -> torch.Tensor:
        """The classes of the views' ``n`` samples: 0, 1, ..., C-1, 0, 1, ... so that a grid
        ``C`` tiles wide shows one class per column."""
        return torch.arange(n, device=self.device) % self.classes

    @torch.no_grad()
    def visuals(self, n=64, generator=None, bounds=None, res=96, labels=None):
        """Samples of the classes ``labels`` (default :meth:`visual_labels`), and those labels
        as ``sample_labels`` (int64) for the grid's layout."""
        self.eval()
        labels = self.visual_labels(n) if labels is None else self.check_labels(labels, n)
        s = self.sample(n, generator=generator, labels=labels)
        return Visuals(samples=np.ascontiguousarray(s.cpu().numpy(), dtype=np.float32),
                       sample_labels=np.ascontiguousarray(labels.cpu().numpy(), dtype=np.int64))
