"""Conditional GAN (Mirza & Osindero 2014) on labelled digits, on the DCGAN networks: the
generator reads a learned embedding of the digit beside z, the discriminator a projection of it
(Miyato & Koyama 2018). Ask for a digit and keep z: the same "style" draws every digit."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from core.models.dcgan import DCGAN, GAN_IMAGE_HPARAMS
from core.protocol import DataKind, HParam, Likelihood, ModelInfo
from core.registry import register

#: size of the generator's label embedding
EMBED = 16


@register
class ConditionalGAN(DCGAN):
    info = ModelInfo(
        key="cgan",
        name="Conditional GAN",
        group="GANs",
        description="DCGAN that is told the digit: a label embedding beside the generator's noise, a projection "
                    "of the label in the discriminator. Trained on labelled digits (mnist_digits). No likelihood: "
                    "the classifier says how often it draws the digit asked for.",
        likelihood=Likelihood.NONE,
        data_kinds=(DataKind.BINARY_IMAGE,),
        hparams=GAN_IMAGE_HPARAMS[:2] + (
            # a pack of images of different digits has no one label to project: no packing here
            HParam("pack", "int", 1, 1, 1, help="images the discriminator judges together (1: a conditional "
                                                "GAN judges each image with its own digit)"),
            HParam("classes", "int", 10, 2, 1000, help="number of classes (labels 0 .. classes-1)"),
        ) + GAN_IMAGE_HPARAMS[3:],
        conditional=True,
    )

    def __init__(self, data_shape, hparams):
        self.classes = int(hparams["classes"])
        super().__init__(data_shape, hparams)
        self.label_embed = nn.Embedding(self.classes, EMBED)
        ch = int(self.hparams["channels"])
        # the generator reads z and the embedding: rebuild its first layer for the wider input
        self.generator.fc[0] = nn.Linear(self.latent_dim + EMBED, 2 * ch * 7 * 7)

    def configure_optimizer(self, lr):
        super().configure_optimizer(lr)
        self.optimizer.add_param_group({"params": list(self.label_embed.parameters())})
        return self.optimizer

    def check_labels(self, labels: Any, n: int) -> torch.Tensor:
        arr = np.asarray(labels.detach().cpu() if torch.is_tensor(labels) else labels)
        if arr.ndim == 0:
            arr = np.full(n, arr)
        if arr.shape != (n,) or arr.dtype.kind not in "iu":
            raise ValueError(f"{self.info.name}: expected {n} whole-number labels, got {arr.dtype} of shape {arr.shape}")
        if len(arr) and (arr.min() < 0 or arr.max() >= self.classes):
            raise ValueError(f"{self.info.name}: labels must be in 0 .. {self.classes - 1}")
        return torch.from_numpy(arr.astype(np.int64)).to(self.device)

    def _labels(self, labels, n: int) -> torch.Tensor:
        if labels is None:
            labels = torch.arange(n) % self.classes
        return self.check_labels(labels, n)

    def _g_input(self, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        return torch.cat([z, self.label_embed(labels)], 1)

    def train_step(self, batch, labels=None):
        if labels is None:
            raise ValueError(f"{self.info.name} is class-conditional: training needs labels "
                             f"(use a labelled data set such as mnist_digits)")
        return super().train_step(batch, self.check_labels(labels, len(batch)))
