"""DCGAN (Radford, Metz & Chintala 2016) on 28x28 digits.

Generator: noise z -> a linear layer to 128 x 7 x 7 -> two transposed convolutions (stride 2) to
64 x 14 x 14 and 1 x 28 x 28, batch norm and ReLU between, a sigmoid at the end (pixel intensities
in [0, 1]). Discriminator: two strided convolutions (LeakyReLU 0.2, batch norm on the second) and a
linear read-out. Non-saturating loss (``-log D(G(z))`` for the generator), Adam with betas
(0.5, 0.999), one discriminator and one generator step per training step: the seed lecture's
recipe.

The data are the binarized digits; the generator's intensities are shown as they are (grey), so
its samples are images in [0, 1], not binary draws. No likelihood: judge it by its samples, its
two losses and the digit classifier's coverage and Frechet distance (``core.sample_quality``).
A fixed noise batch (kept in the weights) is what the Training tab shows while it trains, so
the same 64 faces of the generator change in place.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from core.models.gan import TwoPlayerOptimizers
from core.protocol import DataKind, GenerativeModel, HParam, Likelihood, ModelInfo, Visuals, batch_size_hparam, lr_hparam
from core.registry import register

#: images in the fixed noise batch that the views show
FIXED_SAMPLES = 64


class Generator(nn.Module):
    def __init__(self, z_dim: int, ch: int, extra: int = 0):
        super().__init__()
        self.ch = ch
        self.fc = nn.Sequential(nn.Linear(z_dim + extra, 2 * ch * 7 * 7), nn.BatchNorm1d(2 * ch * 7 * 7), nn.ReLU())
        self.up = nn.Sequential(
            nn.ConvTranspose2d(2 * ch, ch, 4, 2, 1), nn.BatchNorm2d(ch), nn.ReLU(),
            nn.ConvTranspose2d(ch, 1, 4, 2, 1),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Logits of the pixel intensities, (N, 1, 28, 28)."""
        return self.up(self.fc(z).reshape(len(z), 2 * self.ch, 7, 7))


class Discriminator(nn.Module):
    """Judges packs of ``pack`` images stacked as channels (PacGAN, Lin et al. 2018: a generator
    that drops digits makes packs that lack variety, which a packed discriminator sees)."""

    def __init__(self, ch: int, classes: int = 0, pack: int = 1):
        super().__init__()
        self.pack = pack
        self.features = nn.Sequential(
            nn.Conv2d(pack, ch, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(ch, 2 * ch, 4, 2, 1), nn.BatchNorm2d(2 * ch), nn.LeakyReLU(0.2),
            nn.Flatten(),
        )
        self.out = nn.Linear(2 * ch * 7 * 7, 1)
        # projection discriminator (Miyato & Koyama 2018): <embed(y), features> added to the logit
        self.embed = nn.Embedding(classes, 2 * ch * 7 * 7) if classes else None

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (N / pack,) for images (N, 1, 28, 28), consecutive images forming a pack (the
        pack's label is its first image's)."""
        h = self.features(x.reshape(len(x) // self.pack, self.pack, 28, 28))
        logit = self.out(h).squeeze(1)
        if self.embed is not None:
            logit = logit + (self.embed(labels[:: self.pack]) * h).sum(1) / math.sqrt(h.shape[1])
        return logit


GAN_IMAGE_HPARAMS = (
    HParam("latent", "int", 64, 1, 256, help="dimension of the generator's gaussian noise z"),
    HParam("channels", "int", 64, 8, 256, log=True, help="feature maps of the first layer (the second has twice)"),
    HParam("pack", "int", 2, 1, 8, help="images the discriminator judges together (PacGAN; 1: plain DCGAN)"),
    lr_hparam(2e-4, help="learning rate of both networks"),
    batch_size_hparam(64, help="real images per step"),
)


@register
class DCGAN(TwoPlayerOptimizers, GenerativeModel):
    info = ModelInfo(
        key="dcgan",
        name="DCGAN",
        group="GANs",
        description="Deep convolutional GAN on digits: transposed-convolution generator, strided-convolution "
                    "discriminator, batch norm, non-saturating loss. No likelihood: judge its samples (a fixed "
                    "noise batch while training), its two losses, and the classifier's coverage and Frechet "
                    "distance.",
        likelihood=Likelihood.NONE,
        data_kinds=(DataKind.BINARY_IMAGE,),
        hparams=GAN_IMAGE_HPARAMS,
    )

    def __init__(self, data_shape, hparams):
        super().__init__(data_shape, hparams)
        if self.dim != 784:
            raise ValueError(f"{self.info.name} draws 28x28 images, got data of shape {self.data_shape}")
        ch = int(self.hparams["channels"])
        self.generator = Generator(self.latent_dim, ch, self.classes)
        self.discriminator = Discriminator(ch, self.classes, int(self.hparams.get("pack", 1)))
        fixed = torch.randn(FIXED_SAMPLES, self.latent_dim, generator=torch.Generator().manual_seed(1234))
        self.register_buffer("fixed_z", fixed)
        self.opt_d: torch.optim.Optimizer | None = None

    classes = 0  # the conditional GAN's number of classes

    @property
    def latent_dim(self) -> int:
        return int(self.hparams["latent"])

    # -- networks -----------------------------------------------------------------------------
    def _g_input(self, z: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        return z

    def generate(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Pixel intensities in [0, 1], (N, 1, 28, 28), for noise z (N, latent)."""
        return torch.sigmoid(self.generator(self._g_input(z, labels)))

    def _images(self, x: torch.Tensor) -> torch.Tensor:
        return self.check_batch(x).reshape(len(x), 1, 28, 28)

    # -- training -----------------------------------------------------------------------------
    def train_step(self, batch, labels=None):
        assert self.optimizer is not None and self.opt_d is not None, "configure_optimizer() first"
        real = self._images(batch)
        if len(real) < 2:
            raise ValueError(f"{self.info.name}: a training batch needs at least 2 images (batch norm)")
        if not bool(torch.isfinite(real).all()):
            raise ValueError(f"{self.info.name}: the data contain NaN or infinite values")
        self.train()
        m = self.discriminator.pack
        n = len(real) // m * m
        if n < max(2, m):
            raise ValueError(f"{self.info.name}: a training batch needs at least {max(2, m)} images")
        real = real[:n]
        labels = None if labels is None else labels[:n]
        z = torch.randn(n, self.latent_dim, device=self.device)
        fake_labels = labels
        d_params, g_params = list(self.discriminator.parameters()), list(self.generator.parameters())
        with torch.no_grad():
            fake = self.generate(z, fake_labels)
        self.opt_d.zero_grad(set_to_none=True)
        d_loss = (F.softplus(-self.discriminator(real, labels)).mean()
                  + F.softplus(self.discriminator(fake, fake_labels)).mean())
        d_loss.backward()
        self._check_finite("discriminator loss", d_loss, d_params)
        self.opt_d.step()
        self.optimizer.zero_grad(set_to_none=True)
        for p in d_params:
            p.requires_grad_(False)
        try:
            z = torch.randn(n, self.latent_dim, device=self.device)
            g_loss = F.softplus(-self.discriminator(self.generate(z, fake_labels), fake_labels)).mean()
            g_loss.backward()
        finally:
            for p in d_params:
                p.requires_grad_(True)
        self._check_finite("generator loss", g_loss, g_params)
        self.optimizer.step()
        d, g = float(d_loss.detach()), float(g_loss.detach())
        return {"loss": d + g, "d_loss": d, "g_loss": g}

    # -- the protocol -------------------------------------------------------------------------
    @torch.no_grad()
    def decode(self, z: torch.Tensor, labels=None) -> torch.Tensor:
        """The generator's image (N, *data_shape), intensities in [0, 1], for noise z (N, latent)."""
        self.eval()
        z = self.check_latent(z)
        return self.generate(z, self._labels(labels, len(z))).reshape(len(z), *self.data_shape)

    def _labels(self, labels, n: int) -> torch.Tensor | None:
        if labels is not None:
            raise ValueError(f"{self.info.name} is not class-conditional: it takes no labels")
        return None

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, labels=None) -> torch.Tensor:
        if n < 0:
            raise ValueError(f"cannot draw {n} samples")
        z = torch.randn(int(n), self.latent_dim, generator=generator).to(self.device)
        return self.decode(z, labels)

    @torch.no_grad()
    def visuals(self, n=64, generator=None, bounds=None, res=96, labels=None):
        """The generator's images of the fixed noise batch (its first ``n``), so that the views show
        the same draws changing as it trains."""
        z = self.fixed_z[: min(n, FIXED_SAMPLES)]
        if n > FIXED_SAMPLES:
            z = torch.cat([z, torch.randn(n - FIXED_SAMPLES, self.latent_dim, generator=generator).to(self.device)])
        if labels is None and self.classes:
            labels = torch.arange(len(z)) % self.classes
        out = self.decode(z, labels)
        return Visuals(samples=np.ascontiguousarray(out.cpu().numpy(), dtype=np.float32),
                       sample_labels=None if labels is None else np.asarray(torch.as_tensor(labels).cpu(), np.int64))
