"""PixelCNN (van den Oord, Kalchbrenner & Kavukcuoglu 2016) for binary images.

A stack of convolutions whose kernels are masked so that the output at pixel (r, c) sees only
the pixels before it in raster order: the rows above, and the pixels to its left in its own row.

* The first layer is a 7x7 convolution of mask type **A**: the centre tap is masked too, so the
  output at (r, c) does not see x[r, c] itself.
* Then ``blocks`` residual blocks (1x1 down to half the channels, a 3x3 convolution of mask type
  **B**, which may see the centre, because the feature there only depends on earlier pixels, 1x1
  back up) and two 1x1 layers to one logit per pixel: ``p(x_rc = 1 | x_<rc) = sigmoid(logit)``.

Exact likelihood in one pass: ``log p(x) = sum_rc log p(x_rc | x_<rc)``.

Sampling needs one pass per pixel. The naive loop runs the whole image each time (``naive=True``,
the baseline). Here (as Fast PixelCNN++, Ramachandran et al. 2017, caches its convolution states)
each layer's output at pixel (r, c) depends only on the pixels before (r, c): once (r, c - 1) is
drawn, every layer's feature at (r, c) is final. So a step computes ONE position per layer, from
cached states: the rows above (their contribution to the whole row is computed once when a row
starts, as one convolution) and the taps to the left in the same row (the cached inputs of each
3x3 convolution). The candidates are one batch. The conditionals are the full pass's, to rounding.
"""

from __future__ import annotations

import numpy as np
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

    def forward(self, h: torch.Tensor, states: list | None = None) -> torch.Tensor:
        t = F.relu(self.down(F.relu(h)))  # the masked convolution's input: what sampling caches
        if states is not None:
            states.append(t)
        return h + self.up(F.relu(self.conv(t)))


@register
class PixelCNN(GenerativeModel):
    info = ModelInfo(
        key="pixelcnn",
        name="PixelCNN",
        group="Autoregressive",
        description="Masked convolutions (a 7x7 of type A, then residual blocks with 3x3 of type B): "
                    "every pixel's conditional given the pixels before it in raster order, all in one "
                    "pass. Exact likelihood; sampling from cached convolution states (one position "
                    "per layer per pixel).",
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
        # oneDNN's convolutions are ~15 % faster on NHWC tensors on the CPU
        self.to(memory_format=torch.channels_last)

    # -- the model ------------------------------------------------------------------------------
    def logits(self, x: torch.Tensor, states: list | None = None) -> torch.Tensor:
        """Logits (N, H, W) of p(x_rc = 1 | x_<rc) for images (N, H, W) (or flat (N, H*W)).
        ``states``, when given, receives each block's masked-convolution input (N, C/2, H, W)."""
        if x.dim() == 2:
            x = x.reshape(len(x), *self.image_shape)
        h = self.inp(x.unsqueeze(1).contiguous(memory_format=torch.channels_last))
        for block in self.blocks:
            h = block(h, states)
        h = self.head1(F.relu(h))
        return self.head2(F.relu(h)).squeeze(1)

    def pixel_log_prob(self, x):
        x = self.check_batch(x).reshape(len(x), *self.image_shape)
        terms = -F.binary_cross_entropy_with_logits(self.logits(x), x, reduction="none")
        return terms.reshape(len(x), self.dim)

    def log_prob(self, x):
        return self.pixel_log_prob(x).sum(1)

    # -- sampling ---------------------------------------------------------------------------------
    @torch.no_grad()
    def complete_steps(self, x, known, n=1, generator=None, naive: bool = False):
        """Draw the unknown pixels in raster order, keeping the known ones; one step per pixel.
        ``naive`` runs the whole image for every pixel (the baseline the benchmark compares);
        otherwise the cached states walk the pixels from the first unknown one (see the module)."""
        self.eval()
        x, known = self.completion_inputs(x, known, n)
        hh, ww = self.image_shape
        img = x.view(len(x), hh, ww)  # shares x's memory: the step's x sees every draw
        todo = torch.nonzero(~known.all(0)).flatten().tolist()
        cache = None if naive or not todo else _CachedStates(self, img)
        for done, d in enumerate(todo, 1):
            r, c = divmod(d, ww)
            logit = self.logits(img)[:, r, c] if naive else cache.logit_at(r, c)
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


class _CachedStates:
    """Every layer's state for a completion in progress (see the module). ``logit_at(r, c)`` must
    be called in raster order; it brings the states up to (r, c), reading the image as it is then
    (every pixel before (r, c) final), and returns the logits (M,) at (r, c).

    The states are small (M x C per position), so a step is a few dozen tiny matrix products:
    numpy on the CPU, whose calls cost a fraction of torch's, does them (the image may live on
    another device; its pixels are read back as needed). Kept: per block, the masked 3x3
    convolution's input along the current row (M, W + 1, C/2), a zero column first; per row start,
    the rows above's contribution to every column of the 7x7 and of each 3x3 convolution."""

    def __init__(self, model: PixelCNN, img: torch.Tensor):
        self.m, self.img = model, img
        self.p = model.inp.kernel_size[0] // 2
        self.cpu = img.device.type == "cpu"
        w = (model.inp.weight * model.inp.mask).detach().float().cpu()  # (C, 1, k, k)
        self.inp_above, self.inp_bias = w[:, :, :self.p].contiguous(), model.inp.bias.detach().float().cpu()
        self.inp_row = _np(w[:, 0, self.p, :self.p].t())  # (p, C): the taps left of the centre
        self.blocks = []
        for b in model.blocks:  # biases as an extra row, multiplied by a constant-1 column
            cw = (b.conv.weight * b.conv.mask).detach().float().cpu()  # (C/2, C/2, 3, 3)
            self.blocks.append((_np(torch.cat([b.down.weight[:, :, 0, 0].t(), b.down.bias[None]])),
                                _np(cw[:, :, 1, :2].permute(2, 1, 0).reshape(-1, cw.shape[0])),
                                _np(torch.cat([b.up.weight[:, :, 0, 0].t(), b.up.bias[None]]))))
        # every block's row-above taps as one grouped convolution
        above = [((b.conv.weight * b.conv.mask)[:, :, :1], b.conv.bias) for b in model.blocks]
        self.above_w = torch.cat([w for w, _ in above]).detach().float().cpu() if above else None
        self.above_b = torch.cat([b for _, b in above]).detach().float().cpu() if above else None
        self.head = (_np(torch.cat([model.head1.weight[:, :, 0, 0].t(), model.head1.bias[None]])),
                     _np(torch.cat([model.head2.weight[:, :, 0, 0].t(), model.head2.bias[None]])))
        m, c = len(img), model.head1.weight.shape[0]
        half = model.blocks[0].down.weight.shape[0] if model.blocks else 1
        self.hr, self.y = np.ones((m, c + 1), np.float32), np.ones((m, half + 1), np.float32)
        self.next = None  # the position whose states come next; None: start with a full pass
        self.row = None

    def _full_pass(self, r: int) -> None:
        """The blocks' states of rows 0..r of the image as it is now (exact up to the next draw;
        the rows below cannot change them)."""
        states: list[torch.Tensor] = []
        self.m.logits(self.img[:, :r + 1], states)
        self.t = [s.detach().float().cpu().permute(0, 2, 3, 1) for s in states]  # (M, H, W, C/2)
        self.row = None

    def _pixels(self, r0: int, r1: int, c0: int, c1: int) -> torch.Tensor:
        """The image's rows r0..r1-1, columns c0..c1-1, zero outside it, as float32 on the CPU."""
        hh, ww = self.img.shape[1:]
        part = self.img[:, max(0, r0):min(hh, r1), max(0, c0):min(ww, c1)].float().cpu()
        return F.pad(part, (max(0, -c0), max(0, c1 - ww), max(0, -r0), max(0, r1 - hh)))

    def _start_row(self, r: int) -> None:
        """The rows above's contribution to every column of row ``r``, for each convolution; the
        blocks' states along row ``r - 1`` come from the walk (or from the full pass)."""
        p, ww = self.p, self.img.shape[2]
        above = self._pixels(r - p, r, -p, ww + p)[:, None]
        self.inp_up = _np(F.conv2d(above, self.inp_above, self.inp_bias)[:, :, 0].permute(2, 0, 1))  # (W, M, C)
        if self.row == r - 1:  # walked: the row buffers hold row r - 1
            prev = [torch.from_numpy(buf[:, 1:]) for buf in self.rows]
        else:
            prev = [t[:, r - 1] if r > 0 else torch.zeros_like(t[:, 0]) for t in self.t]
        self.conv_up = []
        if self.blocks:
            rows = F.pad(torch.cat(prev, 2).permute(0, 2, 1), (1, 1))[:, :, None]  # (M, blocks * C/2, 1, W + 2)
            up = _np(F.conv2d(rows, self.above_w, self.above_b, groups=len(self.blocks))[:, :, 0].permute(2, 0, 1))
            self.conv_up = np.split(up, len(self.blocks), axis=2)  # (W, M, C/2) each
        # this row so far (exact before the next draw), a zero column first (the left padding)
        self.rows = [np.ascontiguousarray(F.pad(t[:, r], (0, 0, 1, 0)).numpy()) for t in self.t] \
            if self.row is None else [np.zeros_like(buf) for buf in self.rows]
        self.row = r

    def _step(self, r: int, c: int, head: bool):
        """Every layer's state at (r, c); the logits there when ``head``."""
        p = self.p
        left = self.img[:, r, c - p:c].numpy() if self.cpu and c >= p else _np(self._pixels(r, r + 1, c - p, c)[:, 0])
        h = left @ self.inp_row
        h += self.inp_up[c]
        hr, ya = self.hr, self.y
        hv, yv = hr[:, :-1], ya[:, :-1]
        for buf, up, (down, row, upw) in zip(self.rows, self.conv_up, self.blocks):
            t = buf[:, c + 1]
            np.maximum(h, 0, out=hv)
            np.matmul(hr, down, out=t)
            np.maximum(t, 0, out=t)
            np.matmul(buf[:, c:c + 2].reshape(len(t), -1), row, out=yv)
            yv += up[c]
            np.maximum(yv, 0, out=yv)
            h += ya @ upw
        if not head:
            return None
        w1, w2 = self.head
        np.maximum(h, 0, out=hv)
        z = np.ones((len(h), w1.shape[1] + 1), np.float32)
        np.maximum(hr @ w1, 0, out=z[:, :-1])
        return torch.from_numpy((z @ w2)[:, 0]).to(self.img.device)

    def logit_at(self, r: int, c: int) -> torch.Tensor:
        ww = self.img.shape[2]
        d = r * ww + c
        if self.next is None or d - self.next > 2 * ww:  # a long known stretch: one full pass is cheaper
            self._full_pass(r)
            self.next = d
        while True:
            rr, cc = divmod(self.next, ww)
            if self.row != rr:
                self._start_row(rr)
            out = self._step(rr, cc, head=self.next == d)
            self.next += 1
            if out is not None:
                return out


def _np(t: torch.Tensor) -> np.ndarray:
    """A C-contiguous float32 numpy copy of a (CPU or not) tensor."""
    return np.ascontiguousarray(t.detach().float().cpu().numpy())
