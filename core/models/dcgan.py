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

    def _weights_key(self) -> tuple:
        return tuple((t.data_ptr(), t._version) for t in (*self.parameters(), *self.buffers()))

    def inference(self) -> "FoldedGenerator":
        """The same function in eval mode, made cheaper to evaluate (see :class:`FoldedGenerator`),
        built again whenever a weight or batch-norm statistic has changed since the last call."""
        key = self._weights_key()
        cached = self.__dict__.get("_folded")
        if cached is None or cached[0] != key:
            with torch.inference_mode(False), torch.no_grad():
                cached = (key, FoldedGenerator(self))
            self.__dict__["_folded"] = cached  # not a submodule: not in state_dict, not trained
        return cached[1]


def _fold_bn(weight: torch.Tensor, bias: torch.Tensor, bn: nn.modules.batchnorm._BatchNorm,
             out_axis: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight and bias of a layer followed by batch norm in eval mode, the two as one layer:
    bn(W x + b) = (s W) x + s (b - mean) + beta, s = gamma / sqrt(var + eps) per output unit."""
    s = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    shape = [1] * weight.dim()
    shape[out_axis] = -1
    return weight * s.reshape(shape), (bias - bn.running_mean) * s + bn.bias


def subpixel_weight(w: torch.Tensor) -> torch.Tensor:
    """The ``Conv2d(cin, 4 * cout, 3, padding=1)`` weight that, followed by ``pixel_shuffle(2)``,
    computes ``ConvTranspose2d(cin, cout, 4, stride=2, padding=1)`` with weight ``w`` (cin, cout, 4, 4):
    output pixel (2i + a, 2j + b) takes taps ky = 1 - a + 2u from input row i + a - u (u in 0, 1),
    likewise for columns; channel ``o * 4 + a * 2 + b`` of the convolution is that phase of output o."""
    cin, cout = w.shape[:2]
    out = torch.zeros(cout, 2, 2, cin, 3, 3, dtype=w.dtype, device=w.device)
    for a in (0, 1):
        for b in (0, 1):
            for u in (0, 1):
                for v in (0, 1):
                    ky, kx = 1 - a + 2 * u, 1 - b + 2 * v
                    # input row i + a - u sits at kernel row (a - u) + 1 of the 3x3 convolution
                    out[:, a, b, :, a - u + 1, b - v + 1] = w[:, :, ky, kx].t()
    return out.reshape(4 * cout, cin, 3, 3)


class FoldedGenerator(nn.Module):
    """A :class:`Generator` in eval mode, rewritten for inference (the same function up to float
    rounding, ~1e-5 in the logits): each batch norm folded into the layer before it, the hidden
    transposed convolution in channels-last layout (oneDNN's fast path on the CPU), and the last
    one, which has a single output channel (PyTorch's slowest case: a small matrix product per
    image), as a convolution to its four sub-pixel phases and a pixel shuffle. A frozen copy:
    build a new one when the weights change (``Generator.inference`` does)."""

    def __init__(self, g: Generator):
        super().__init__()
        lin, bn1 = g.fc[0], g.fc[1]
        w, b = _fold_bn(lin.weight, lin.bias, bn1, 0)
        self.fc = nn.Linear(lin.in_features, lin.out_features).requires_grad_(False)
        self.fc.weight.copy_(w)
        self.fc.bias.copy_(b)
        ct1, bn2, ct2 = g.up[0], g.up[1], g.up[3]
        w, b = _fold_bn(ct1.weight, ct1.bias, bn2, 1)
        self.up1 = nn.ConvTranspose2d(ct1.in_channels, ct1.out_channels, 4, 2, 1).requires_grad_(False)
        self.up1.weight.copy_(w)
        self.up1.bias.copy_(b)
        self.up1.to(memory_format=torch.channels_last)
        self.register_buffer("w2", subpixel_weight(ct2.weight).contiguous(memory_format=torch.channels_last))
        self.register_buffer("b2", ct2.bias.repeat_interleave(4))
        self.ch = g.ch
        self.eval()

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Logits of the pixel intensities, (N, 1, 28, 28), as ``Generator.forward`` in eval mode;
        ``CHUNK`` images at a time (their hidden maps then stay in the core's cache: ~20 % less
        time for the explorer's 256-image map than all at once)."""
        if len(z) > self.CHUNK:
            return torch.cat([self(part) for part in z.split(self.CHUNK)])
        h = torch.relu(self.fc(z)).reshape(len(z), 2 * self.ch, 7, 7).contiguous(memory_format=torch.channels_last)
        h = torch.relu(self.up1(h))
        return F.pixel_shuffle(F.conv2d(h, self.w2, self.b2, padding=1), 2).contiguous()

    CHUNK = 64


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
        if self.training:  # (walking the modules costs a single image's decode ~0.1 ms)
            self.eval()
        z = self.check_latent(z)
        g_input = self._g_input(z, self._labels(labels, len(z)))
        return torch.sigmoid(self.generator.inference()(g_input)).reshape(len(z), *self.data_shape)

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
