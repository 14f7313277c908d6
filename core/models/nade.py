"""NADE (Larochelle & Murray 2011): neural autoregressive density estimator for binary images.

Pixels in raster order, each conditional read from a hidden layer whose weights are shared
between the pixels:

    a_d = c + W[:, :d] x_<d                  (a running sum: a_{d+1} = a_d + W[:, d] x_d)
    h_d = sigmoid(a_d)
    p(x_d = 1 | x_<d) = sigmoid(b_d + V_d . h_d)

Exact likelihood in O(DH) per example: every ``a_d`` at once by a cumulative sum over the pixels.
Sampling and completion walk the pixels once, carrying ``a`` along (O(H) per pixel and row).
"""

from __future__ import annotations

import math
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from core.protocol import (CompletionStep, DataKind, GenerativeModel, HParam, Likelihood, ModelInfo,
                           batch_size_hparam, lr_hparam)
from core.registry import register

#: rows per chunk in log_prob: keeps the (rows, D, H) hidden units near 2**19 floats (2 MiB), so
#: each pass over them stays in cache (one MNIST row per chunk: 4x faster than 64 MiB chunks)
_CHUNK_FLOATS = 1 << 19


@register
class NADE(GenerativeModel):
    info = ModelInfo(
        key="nade",
        name="NADE",
        group="Autoregressive",
        description="Neural autoregressive density estimator: one sigmoid hidden layer shared across "
                    "the pixels (raster order), each pixel's conditional a logistic readout of it. "
                    "Exact likelihood in O(DH).",
        likelihood=Likelihood.EXACT,
        data_kinds=(DataKind.BINARY_IMAGE,),
        hparams=(
            HParam("hidden", "int", 500, 1, 4096, log=True, help="hidden units (H)"),
            lr_hparam(),
            batch_size_hparam(),
        ),
    )

    def __init__(self, data_shape, hparams):
        super().__init__(data_shape, hparams)
        d, h = self.dim, int(self.hparams["hidden"])
        self.W = nn.Parameter(torch.randn(h, d) * (1.0 / math.sqrt(d)))  # W[:, j]: input of x_j
        self.c = nn.Parameter(torch.zeros(h))
        self.V = nn.Parameter(torch.randn(d, h) * (0.01 / math.sqrt(h)))  # V[d]: readout of pixel d
        self.b = nn.Parameter(torch.zeros(d))

    # -- the model ------------------------------------------------------------------------------
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of p(x_d = 1 | x_<d) for every pixel, (N, D), from flat float inputs (N, D)."""
        if torch.is_grad_enabled() and any(p.requires_grad for p in (self.W, self.c, self.V, self.b)):
            return _NADELogits.apply(x, self.W, self.c, self.V, self.b)
        return self._logits_no_grad(x)

    @torch.no_grad()
    def _logits_no_grad(self, x: torch.Tensor) -> torch.Tensor:
        n, d = x.shape
        # shifted by one pixel, so that a plain cumulative sum over the pixels is the exclusive one
        # a_d = c + sum_{j<d} W[:, j] x_j (row 0 of the shifted weights is zero)
        ws = F.pad(self.W.t()[:-1], (0, 0, 1, 0))  # (D, H)
        xs = F.pad(x[:, :-1], (1, 0))  # (N, D)
        rows = max(1, _CHUNK_FLOATS // max(1, d * ws.shape[1]))
        out = []
        for i in range(0, n, rows):
            h = (xs[i:i + rows, :, None] * ws).cumsum_(1).add_(self.c).sigmoid_()
            out.append((h * self.V).sum(-1))
        return (torch.cat(out) if out else x.new_zeros(0, d)) + self.b

    def pixel_log_prob(self, x):
        x = self.check_batch(x).reshape(len(x), self.dim)
        return -F.binary_cross_entropy_with_logits(self.logits(x), x, reduction="none")

    def log_prob(self, x):
        return self.pixel_log_prob(x).sum(1)

    @torch.no_grad()
    def complete_steps(self, x, known, n=1, generator=None):
        """Sample the unknown pixels in raster order, keeping the known ones, carrying the hidden
        pre-activation along (O(H) per pixel); one step per pixel drawn in some row."""
        x, known = self.completion_inputs(x, known, n)
        yield from raster_fill(x, known, self.W, self.c.expand(len(x), -1).clone(), self.V, self.b, generator)

    @torch.no_grad()
    def sample(self, n, generator=None):
        zeros = torch.zeros(n, *self.data_shape, device=self.device)
        out = self.complete(zeros, torch.zeros_like(zeros, dtype=torch.bool), 1, generator)
        return out.reshape(n, *self.data_shape)


def raster_fill(x: torch.Tensor, known: torch.Tensor, W: torch.Tensor, a: torch.Tensor, V: torch.Tensor,
                b: torch.Tensor, generator: torch.Generator | None) -> Iterator[CompletionStep]:
    """NADE's completion loop (conditional NADE's too): draw the pixels of ``x`` (M, D) not
    ``known`` (bool (M, D)) in raster order, in place, carrying the running hidden pre-activation
    ``a`` (M, H; updated in place) along: O(H) per pixel and row. ``W`` (H, D) and ``V`` (D, H)
    are the input and readout weights, ``b`` the output biases, (D,) or one row per candidate
    (M, D). Yields a :class:`CompletionStep` per pixel unknown in some row; returns ``x``."""
    d = x.shape[1]
    wt = W.t().contiguous()  # (D, H): row j is pixel j's input weights
    all_known = known.all(0).tolist()
    total, done, i = d - sum(all_known), 0, 0
    while i < d:
        if all_known[i]:  # a run of pixels known in every row: one matmul, nothing to draw
            j = i
            while j < d and all_known[j]:
                j += 1
            a.addmm_(x[:, i:j], wt[i:j])
            i = j
            continue
        p = torch.sigmoid(torch.sigmoid(a) @ V[i] + b[..., i])
        draw = torch.bernoulli(p, generator=generator)
        xi = torch.where(known[:, i], x[:, i], draw)
        x[:, i] = xi
        a.addr_(xi, wt[i])
        done += 1
        yield CompletionStep(i, p, x, done, total)
        i += 1
    return x


class _NADELogits(torch.autograd.Function):
    """NADE's logits with a hand-written backward pass (Larochelle & Murray 2011, section 3).

    Autograd through the cumulative sum kept several (N, D, H) intermediates, which do not fit in
    a cache, and took 1.2 s per step of 100 MNIST images with H = 500. Here both passes walk the
    pixels with one (N, H) running pre-activation, which stays in cache: forward adds
    ``x_j W_j`` pixel by pixel; backward walks back, subtracting them again (so nothing of size
    N x D x H is ever stored), with

        g_a_d = g_logit_d V_d * h_d (1 - h_d),   dL/dW_j = (sum_{d > j} g_a_d)^T x_j
    """

    @staticmethod
    def forward(ctx, x, W, c, V, b):
        n, d = x.shape
        wt = W.t().contiguous()  # (D, H)
        xt = x.t().contiguous()  # (D, N)
        a = c.expand(n, -1).contiguous()
        out = x.new_empty(d, n)
        for i in range(d):
            if i:
                a.addr_(xt[i - 1], wt[i - 1])
            torch.mv(torch.sigmoid(a), V[i], out=out[i])
        ctx.save_for_backward(xt, wt, V, a)
        return out.t() + b

    @staticmethod
    def backward(ctx, g):
        xt, wt, V, a_last = ctx.saved_tensors
        gt = g.t().contiguous()  # (D, N)
        d = len(gt)
        a = a_last.clone()  # the pre-activation of the last pixel, walked back to the first
        acc = torch.zeros_like(a)  # sum of g_a over the pixels from the current one on
        gwt = torch.zeros_like(wt)  # (D, H): the gradient of W, transposed
        gV = torch.empty_like(V)
        for i in range(d - 1, -1, -1):
            h = torch.sigmoid(a)
            torch.mv(h.t(), gt[i], out=gV[i])
            ga = torch.outer(gt[i], V[i]).mul_(h)
            acc.add_(ga.mul_(h.neg_().add_(1)))
            if i:
                torch.mv(acc.t(), xt[i - 1], out=gwt[i - 1])
                a.addr_(xt[i - 1], wt[i - 1], alpha=-1)
        return None, gwt.t(), acc.sum(0), gV, gt.sum(1)
