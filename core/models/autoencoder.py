"""A plain (deterministic) autoencoder for binary images: the contrast to the VAE.

An MLP encoder maps x to a code z, an MLP decoder maps z back to pixel probabilities, trained on
the reconstruction's cross-entropy alone. It reconstructs well, but nothing asks its codes to
fill a known region: decode a point between or around the training codes and the image is often
no digit at all. The latent map shows those holes.

It has no likelihood. ``sample`` decodes draws from a Gaussian fitted to the codes of the
training batches seen (a running mean and covariance diagonal, kept in the weights), which is
what "sampling an autoencoder" naively means; its samples show the holes too.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from core.models.vae import LATENT_HPARAMS, mlp
from core.protocol import DataKind, GenerativeModel, Likelihood, ModelInfo, batch_size_hparam, lr_hparam
from core.registry import register

#: weight of the newest batch in the running code statistics
_MOMENTUM = 0.01


@register
class Autoencoder(GenerativeModel):
    info = ModelInfo(
        key="ae",
        name="Autoencoder",
        group="Latent variable",
        description="Deterministic autoencoder (reconstruction loss only): the contrast to the VAE. It "
                    "reconstructs, but its latent space has holes: decoding points away from the training "
                    "codes gives no digit. No likelihood; samples decode a Gaussian fitted to the codes.",
        likelihood=Likelihood.NONE,
        data_kinds=(DataKind.BINARY_IMAGE,),
        hparams=LATENT_HPARAMS + (
            lr_hparam(1e-3),
            batch_size_hparam(100),
        ),
    )

    def __init__(self, data_shape, hparams):
        super().__init__(data_shape, hparams)
        h, n, zdim = int(self.hparams["hidden"]), int(self.hparams["layers"]), int(self.hparams["latent"])
        self.encoder = mlp([self.dim] + [h] * n + [zdim])
        self.decoder = mlp([zdim] + [h] * n + [self.dim])
        self.register_buffer("code_mean", torch.zeros(zdim))
        self.register_buffer("code_std", torch.ones(zdim))

    @property
    def latent_dim(self) -> int:
        return int(self.hparams["latent"])

    def _flat(self, x: torch.Tensor) -> torch.Tensor:
        return self.check_batch(x).reshape(len(x), self.dim)

    def reconstruction_nll(self, x: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of x under its own reconstruction's pixel probabilities, per example (nats):
        a reconstruction error, not a likelihood of x."""
        x = self._flat(x)
        return F.binary_cross_entropy_with_logits(self.decoder(self.encoder(x)), x, reduction="none").sum(-1)

    def loss(self, batch: torch.Tensor) -> torch.Tensor:
        x = self._flat(batch)
        z = self.encoder(x)
        if self.training:
            with torch.no_grad():
                zm, zs = z.mean(0), z.std(0) if len(z) > 1 else self.code_std
                self.code_mean.lerp_(zm, _MOMENTUM)
                self.code_std.lerp_(zs, _MOMENTUM)
        return F.binary_cross_entropy_with_logits(self.decoder(z), x, reduction="none").sum(-1).mean()

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(self._flat(x))

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Pixel probabilities (N, *data_shape) for codes (N, latent)."""
        z = self.check_latent(z)
        return torch.sigmoid(self.decoder(z)).reshape(len(z), *self.data_shape)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        z = torch.randn(n, self.latent_dim, generator=generator).to(self.device) * self.code_std + self.code_mean
        probs = self.decode(z).reshape(n, self.dim)
        u = torch.rand(probs.shape, generator=generator).to(self.device)
        return (u < probs).float().reshape(n, *self.data_shape)
