"""PixelCNN (van den Oord, Kalchbrenner & Kavukcuoglu 2016) for binary images.

A stack of convolutions whose kernels are masked so that the output at pixel (r, c) sees only
the pixels before it in raster order: the rows above, and the pixels to its left in its own row.

* The first layer is a 7x7 convolution of mask type **A**: the centre tap is masked too, so the
  output at (r, c) does not see x[r, c] itself.
* Then ``blocks`` residual blocks (1x1 down to half the channels, a 3x3 convolution of mask type
  **B**, which may see the centre, because the feature there only depends on earlier pixels, 1x1
  back up) and two 1x1 layers to one logit per pixel: ``p(x_rc = 1 | x_<rc) = sigmoid(logit)``.

Exact likelihood in one pass: ``log p(x) = sum_rc log p(x_rc | x_<rc)``.

Sampling needs one pass per pixel. The naive loop runs the whole image each time; here each pass
runs only on a window around the pixel: its receptive field reaches ``R = 3 + blocks`` rows up
and columns left and right (3 for the 7x7 layer, 1 for each 3x3 one), so a window of rows
``r-R..r`` and columns ``c-R..c+R`` gives the same logit as the full image. Zero padding at the
window's inner edges is wrong, but the error travels inward at most one pixel per layer (three for
the 7x7 one), ``R - 1`` in all, and never reaches the window's bottom centre. Rows below ``r``
are never seen (the kernels are causal). For 28x28 images and 6 blocks that is 10x19 = 190
positions instead of 784, and every candidate is sampled in the same batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from core.protocol import (CompletionStep, DataKind, GenerativeModel, HParam, Likelihood, ModelInfo,
                           batch_size_hparam, last_completion, lr_hparam)
from core.registry import register


def _image_shape(data_shape: tuple[int, ...]) -> tuple[int, int]:
    """(H, W) of images given as (H, W), or flat (H*W,) when H*W is a square (MNIST's 784)."""
    if len(data_shape) == 2:
        return data_shape[0], data_shape[1]
    if len(data_shape) == 1:
        side = int(round(data_shape[0] ** 0.5))
        if side * side == data_shape[0]:
            return side, side
    raise ValueError(f"PixelCNN needs images: data of shape (H, W), or (D,) with D a square; got {data_shape}")


class MaskedConv2d(nn.Conv2d):
    """A square convolution whose kernel sees only earlier pixels in raster order: the rows above
    and, in the centre row, the taps left of the centre (type ``A``) or up to it (type ``B``)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, mask_type: str):
        if mask_type not in ("A", "B"):
            raise ValueError(f"mask type must be 'A' or 'B', got {mask_type!r}")
        if kernel % 2 != 1:
            raise ValueError(f"kernel size must be odd, got {kernel}")
        super().__init__(c_in, c_out, kernel, padding=kernel // 2)
        mask = torch.ones(kernel, kernel)
        k = kernel // 2
        mask[k, k + (mask_type == "B"):] = 0
        mask[k + 1:] = 0
        self.register_buffer("mask", mask[None, None].expand_as(self.weight).contiguous(), persistent=False)
        self.mask_type = mask_type

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight * self.mask, self.bias, padding=self.padding)


class ResidualBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        half = max(1, channels // 2)
        self.down = nn.Conv2d(channels, half, 1)
        self.conv = MaskedConv2d(half, half, 3, "B")
        self.up = nn.Conv2d(half, channels, 1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        y = self.down(F.relu(h))
        y = self.conv(F.relu(y))
        return h + self.up(F.relu(y))


@register
class PixelCNN(GenerativeModel):
    info = ModelInfo(
        key="pixelcnn",
        name="PixelCNN",
        group="Autoregressive",
        description="Masked convolutions (a 7x7 of type A, then residual blocks with 3x3 of type B): "
                    "every pixel's conditional given the pixels before it in raster order, all in one "
                    "pass. Exact likelihood; windowed sampling.",
        likelihood=Likelihood.EXACT,
        data_kinds=(DataKind.BINARY_IMAGE,),
        hparams=(
            HParam("channels", "int", 64, 2, 512, log=True, help="feature maps between the blocks"),
            HParam("blocks", "int", 6, 0, 24, help="residual blocks (each a 3x3 type-B convolution)"),
            lr_hparam(),
            batch_size_hparam(),
        ),
    )

    def __init__(self, data_shape, hparams):
        super().__init__(data_shape, hparams)
        self.image_shape = _image_shape(self.data_shape)
        c, blocks = int(self.hparams["channels"]), int(self.hparams["blocks"])
        self.inp = MaskedConv2d(1, c, 7, "A")
        self.blocks = nn.ModuleList(ResidualBlock(c) for _ in range(blocks))
        self.head1 = nn.Conv2d(c, c, 1)
        self.head2 = nn.Conv2d(c, 1, 1)
        #: how far the output at a pixel looks up, left and right
        self.reach = 3 + blocks
        # oneDNN's convolutions are ~15 % faster on NHWC tensors on the CPU
        self.to(memory_format=torch.channels_last)

    # -- the model ------------------------------------------------------------------------------
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, H, W) of p(x_rc = 1 | x_<rc) for images (N, H, W) (or flat (N, H*W))."""
        if x.dim() == 2:
            x = x.reshape(len(x), *self.image_shape)
        h = self.inp(x.unsqueeze(1).contiguous(memory_format=torch.channels_last))
        for block in self.blocks:
            h = block(h)
        h = self.head1(F.relu(h))
        return self.head2(F.relu(h)).squeeze(1)

    def pixel_log_prob(self, x):
        x = self.check_batch(x).reshape(len(x), *self.image_shape)
        terms = -F.binary_cross_entropy_with_logits(self.logits(x), x, reduction="none")
        return terms.reshape(len(x), self.dim)

    def log_prob(self, x):
        return self.pixel_log_prob(x).sum(1)

    # -- sampling ---------------------------------------------------------------------------------
    def _window(self, r: int, c: int) -> tuple[int, int, int]:
        """Rows ``r0..r`` and columns ``c0..c1-1`` whose output at (r, c) equals the full image's."""
        w = self.image_shape[1]
        return max(0, r - self.reach), max(0, c - self.reach), min(w, c + self.reach + 1)

    def next_logit(self, img: torch.Tensor, r: int, c: int) -> torch.Tensor:
        """The logit at (r, c) of images (M, H, W), from a window around it (see the module)."""
        r0, c0, c1 = self._window(r, c)
        return self.logits(img[:, r0:r + 1, c0:c1])[:, r - r0, c - c0]

    @torch.no_grad()
    def complete_steps(self, x, known, n=1, generator=None, naive: bool = False):
        """Draw the unknown pixels in raster order, keeping the known ones; one step per pixel.
        ``naive`` runs the whole image for every pixel (the baseline the benchmark compares)."""
        self.eval()
        x, known = self.completion_inputs(x, known, n)
        hh, ww = self.image_shape
        img = x.view(len(x), hh, ww)  # shares x's memory: the step's x sees every draw
        todo = torch.nonzero(~known.all(0)).flatten().tolist()
        for done, d in enumerate(todo, 1):
            r, c = divmod(d, ww)
            logit = self.logits(img)[:, r, c] if naive else self.next_logit(img, r, c)
            p = torch.sigmoid(logit)
            draw = torch.bernoulli(p, generator=generator)
            x[:, d] = torch.where(known[:, d], x[:, d], draw)
            yield CompletionStep(d, p, x, done, len(todo))

    @torch.no_grad()
    def complete(self, x, known, n=1, generator=None, naive: bool = False):
        """(N * n, D): the unknown pixels drawn in raster order, the known ones kept; the
        candidates of row i at ``i*n:(i+1)*n``."""
        steps = self.complete_steps(x, known, n, generator, naive=naive)
        return last_completion(steps, self.completion_inputs(x, known, n)[0])

    @torch.no_grad()
    def sample(self, n, generator=None):
        zeros = torch.zeros(n, *self.data_shape, device=self.device)
        out = self.complete(zeros, torch.zeros_like(zeros, dtype=torch.bool), 1, generator)
        return out.reshape(n, *self.data_shape)
