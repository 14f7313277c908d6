"""Fully visible sigmoid belief net: p(x_d | x_<d) = sigmoid(b_d + sum_{j<d} W_dj x_j).

Logistic regression per pixel in raster order; exact likelihood in one masked matmul, sampling
and completion in D sequential steps of O(D) each.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from core.protocol import CompletionStep, DataKind, GenerativeModel, HParam, Likelihood, ModelInfo
from core.registry import register


@register
class FVSBN(GenerativeModel):
    info = ModelInfo(
        key="fvsbn",
        name="FVSBN",
        group="Autoregressive",
        description="Fully visible sigmoid belief net: one logistic regression per pixel, "
                    "conditioned on the pixels before it in raster order. Exact likelihood.",
        likelihood=Likelihood.EXACT,
        data_kinds=(DataKind.BINARY_IMAGE,),
        hparams=(
            HParam("weight_decay", "float", 0.0, 0.0, 1e-2, help="L2 penalty on the weights"),
            HParam("l1", "float", 0.0, 0.0, 1e-2,
                   help="L1 penalty on the weights, per example (sparse conditionals)"),
            HParam("dropout", "float", 0.0, 0.0, 0.9,
                   help="drop input pixels in training, scaling the rest (a regulariser that "
                        "penalises weights on rarely-on pixels most; none at evaluation)"),
        ),
    )

    def __init__(self, data_shape, hparams):
        super().__init__(data_shape, hparams)
        d = self.dim
        self.weight = torch.nn.Parameter(torch.zeros(d, d))  # weight[j, i]: effect of x_j on x_i
        self.bias = torch.nn.Parameter(torch.zeros(d))
        self.register_buffer("mask", torch.triu(torch.ones(d, d), diagonal=1), persistent=False)

    def configure_optimizer(self, lr):
        self.optimizer = torch.optim.Adam(self.parameters(), lr=lr,
                                          weight_decay=float(self.hparams.get("weight_decay", 0.0)))
        return self.optimizer

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return x @ (self.weight * self.mask) + self.bias

    def pixel_log_prob(self, x):
        x = self.check_batch(x).reshape(len(x), self.dim)
        return -F.binary_cross_entropy_with_logits(self.logits(x), x, reduction="none")

    def log_prob(self, x):
        return self.pixel_log_prob(x).sum(1)

    def loss(self, batch):
        x = batch.reshape(len(batch), self.dim)
        rate = float(self.hparams.get("dropout", 0.0))
        inputs = F.dropout(x, rate, training=True) if rate else x
        nll = F.binary_cross_entropy_with_logits(self.logits(inputs), x, reduction="none").sum(1).mean()
        l1 = float(self.hparams.get("l1", 0.0))
        return nll + l1 * (self.weight * self.mask).abs().sum() if l1 else nll

    @torch.no_grad()
    def complete_steps(self, x, known, n=1, generator=None):
        """Sample the unknown pixels in raster order, keeping the known ones: one step per pixel."""
        x, known = self.completion_inputs(x, known, n)
        w = self.weight * self.mask
        todo = torch.nonzero(~known.all(0)).flatten().tolist()
        for done, i in enumerate(todo, 1):
            p = torch.sigmoid(x @ w[:, i] + self.bias[i])
            draw = torch.bernoulli(p, generator=generator)
            x[:, i] = torch.where(known[:, i], x[:, i], draw)
            yield CompletionStep(i, p, x, done, len(todo))

    @torch.no_grad()
    def sample(self, n, generator=None):
        zeros = torch.zeros(n, *self.data_shape, device=self.device)
        return self.complete(zeros, torch.zeros_like(zeros, dtype=torch.bool), 1, generator).reshape(n, *self.data_shape)
