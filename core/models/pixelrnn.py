"""Row PixelRNN: an LSTM (or GRU) over the rows of a binary image, a masked layer within each row.

A cheap relative of the PixelRNN of van den Oord, Kalchbrenner & Kavukcuoglu (2016). Pixels in
raster order, ``p(x) = prod_r prod_c p(x_rc | x_<r, x_r,<c)``, for images of ``R`` rows of ``W``
pixels (``D = R W``):

* a recurrent net runs down the rows; its input at row ``r`` is the row above, ``x_{r-1}``
  (zeros for row 0), so its output ``s_r`` summarises every row above ``r`` and nothing else:

      s_r = RNN(s_{r-1}, x_{r-1})

* within row ``r``, a one-hidden-layer MADE over the row's ``2W`` inputs ``z = [x_{r-1}, x_r]``
  gives each pixel's logit. The row above has degree 0 (every unit may see it), pixel ``c`` of
  the current row degree ``c + 1``; hidden unit ``k`` has degree ``m_k`` in ``0 .. W-1`` (spread
  evenly) and sees the inputs of degree ``<= m_k``; output ``c`` sees the units with
  ``m_k <= c`` and, through a direct masked connection, the inputs of degree ``<= c``. So output
  ``c`` depends on ``x_{r-1}``, on ``x_r,<c`` and on ``s_r``, never on ``x_rc`` or later:

      a_r     = A s_r + (U * M_in) z_r + a0                (K hidden units)
      logit_rc = B_c s_r + (V * M_out)_c relu(a_r) + (G * M_dir)_c z_r + b_rc

The likelihood is exact, all pixels at once: one pass of the RNN over the ``R`` rows (the only
sequential part of training), then batched matmuls over every row. Sampling and completion are
incremental: the RNN state is carried row by row (one RNN step per row), and within a row the
hidden pre-activation ``a`` and the direct logits are updated by one column per drawn pixel
(O(K + W) per pixel), so an image costs ``R`` RNN steps plus ``D`` tiny updates; rows known in
every candidate are fed to the RNN in one call.
"""

from __future__ import annotations

import math
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from core.protocol import (CompletionStep, DataKind, GenerativeModel, HParam, Likelihood, ModelInfo,
                           batch_size_hparam, drain, lr_hparam)
from core.registry import register

_CELLS = {"lstm": nn.LSTM, "gru": nn.GRU}


def image_size(data_shape: tuple[int, ...], width: int) -> tuple[int, int]:
    """(rows, columns) of the images: ``data_shape`` itself when it is 2D, else ``width``
    columns (0: square images). Raises ``ValueError`` when the pixels do not fill the rows."""
    d = math.prod(data_shape)
    if len(data_shape) == 2:
        rows, cols = data_shape
        if width not in (0, cols):
            raise ValueError(f"PixelRNN: width={width} does not match images of shape {data_shape}")
        return int(rows), int(cols)
    if width == 0:
        side = math.isqrt(d)
        if side * side != d or d == 0:
            raise ValueError(f"PixelRNN: {d} pixels are not a square image; set the width hyperparameter")
        return side, side
    if d % width:
        raise ValueError(f"PixelRNN: {d} pixels do not make rows of width {width}")
    return d // width, width


@register
class PixelRNN(GenerativeModel):
    info = ModelInfo(
        key="pixelrnn",
        name="Row PixelRNN",
        group="Autoregressive",
        description="An LSTM or GRU runs down the rows (its state summarises the rows above); "
                    "within a row a MADE-style masked layer conditions each pixel on the pixels to "
                    "its left. Raster order, exact likelihood, one RNN step per row.",
        likelihood=Likelihood.EXACT,
        data_kinds=(DataKind.BINARY_IMAGE,),
        hparams=(
            HParam("cell", "choice", "lstm", choices=("lstm", "gru"), help="recurrent cell over the rows"),
            HParam("hidden", "int", 256, 1, 4096, log=True, help="RNN state size"),
            HParam("row_hidden", "int", 256, 1, 4096, log=True,
                   help="hidden units of the masked layer within a row (K)"),
            HParam("width", "int", 0, 0, 4096, help="image width in pixels (0: square images)"),
            lr_hparam(),
            batch_size_hparam(100),
        ),
    )

    def __init__(self, data_shape, hparams):
        super().__init__(data_shape, hparams)
        self.rows, self.cols = image_size(self.data_shape, int(self.hparams["width"]))
        w, s, k = self.cols, int(self.hparams["hidden"]), int(self.hparams["row_hidden"])
        self.rnn = _CELLS[self.hparams["cell"]](w, s, batch_first=True)
        self.context = nn.Linear(s, k + w)  # s_r -> the row layer's pre-activation and the logits
        self.U = nn.Parameter(torch.randn(k, 2 * w) / math.sqrt(2 * w))  # z_r -> hidden
        self.V = nn.Parameter(torch.randn(w, k) / math.sqrt(k))  # hidden -> logits
        self.G = nn.Parameter(torch.zeros(w, 2 * w))  # z_r -> logits (direct)
        self.b = nn.Parameter(torch.zeros(self.dim))  # one bias per pixel
        m_in, m_out, m_dir = self.masks(w, k)
        # rebuilt from the hyperparameters, so not saved
        self.register_buffer("mask_in", m_in, persistent=False)
        self.register_buffer("mask_out", m_out, persistent=False)
        self.register_buffer("mask_dir", m_dir, persistent=False)

    @staticmethod
    def masks(w: int, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The row layer's 0/1 masks: in (K, 2W), out (W, K), direct (W, 2W); see the module doc."""
        deg_in = torch.cat([torch.zeros(w), torch.arange(1, w + 1)])  # row above 0, pixel c c+1
        deg_hid = torch.arange(k) * w // k  # 0 .. W-1, evenly: every output has units to read
        deg_out = torch.arange(w)  # output c sees degrees <= c
        m_in = (deg_in[None, :] <= deg_hid[:, None]).float()
        m_out = (deg_hid[None, :] <= deg_out[:, None]).float()
        m_dir = (deg_in[None, :] <= deg_out[:, None]).float()
        return m_in, m_out, m_dir

    # -- likelihood ------------------------------------------------------------------------------
    def _weights(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.U * self.mask_in, self.V * self.mask_out, self.G * self.mask_dir

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of p(x_d = 1 | x_<d) for every pixel, (N, D), from flat float inputs (N, D)."""
        n, w = len(x), self.cols
        img = x.reshape(n, self.rows, w)
        above = F.pad(img[:, :-1], (0, 0, 1, 0))  # (N, R, W): row r-1, zeros above row 0
        s, _ = self.rnn(above)  # (N, R, S): s_r has seen rows < r only
        ctx = self.context(s)
        u, v, g = self._weights()
        z = torch.cat([above, img], -1)  # (N, R, 2W)
        h = F.relu(ctx[..., :-w] + z @ u.t())
        out = ctx[..., -w:] + h @ v.t() + z @ g.t()
        return out.reshape(n, self.dim) + self.b

    def pixel_log_prob(self, x):
        x = self.check_batch(x).reshape(len(x), self.dim)
        return -F.binary_cross_entropy_with_logits(self.logits(x), x, reduction="none")

    def log_prob(self, x):
        return self.pixel_log_prob(x).sum(1)

    # -- sampling and completion -----------------------------------------------------------------
    def complete_steps(self, x, known, n=1, generator=None) -> Iterator[CompletionStep]:
        """Sample the unknown pixels in raster order, each conditioned on every pixel before it,
        keeping the known ones; one :class:`CompletionStep` per pixel drawn in some candidate.
        The arguments are checked now, not at the first ``next()``."""
        x, known = self.completion_inputs(x, known, n)
        return self._fill(x, known, generator)

    @torch.no_grad()
    def complete(self, x, known, n=1, generator=None):
        """(N * n, D): the unknown pixels sampled in raster order, the known ones kept; the
        candidates of row i at ``i*n:(i+1)*n``."""
        x, known = self.completion_inputs(x, known, n)
        drain(self._fill(x, known, generator))  # (abandonable at each pixel)
        return x

    @torch.no_grad()
    def sample(self, n, generator=None):
        n = int(n)
        if n < 0:
            raise ValueError(f"the number of samples must be >= 0, got {n}")
        x = torch.zeros(n, self.dim, device=self.device)
        if n:
            drain(self._fill(x, torch.zeros_like(x, dtype=torch.bool), generator))
        return x.reshape(n, *self.data_shape)

    @torch.no_grad()
    def _fill(self, x: torch.Tensor, known: torch.Tensor,
              generator: torch.Generator | None) -> Iterator[CompletionStep]:
        """Draw ``x``'s unknown pixels in place (``x`` (M, D) float, ``known`` (M, D) bool),
        carrying the RNN state from row to row and the row layer's pre-activations from pixel to
        pixel; yields after each pixel drawn in some candidate. (torch.no_grad as a decorator:
        it turns grad mode off around each resumption only, not in the caller between yields.)"""
        m, w = len(x), self.cols
        u, v, g = self._weights()
        ut, gt = u.t().contiguous(), g.t().contiguous()  # (2W, K), (2W, W): row j is input j's
        img, kimg = x.view(m, self.rows, w), known.view(m, self.rows, w)
        row_known = kimg.all(2).all(0).tolist()  # rows known in every candidate
        col_known = kimg.all(0).tolist()  # (R, W) pixels known in every candidate
        total = int((~known.all(0)).sum())
        done, state, r = 0, None, 0
        above = x.new_zeros(m, 1, w)  # the RNN's input for row r: row r-1
        while r < self.rows:
            if row_known[r]:  # a run of rows known everywhere: one RNN call, nothing to draw
                end = r
                while end < self.rows and row_known[end]:
                    end += 1
                if end == self.rows:
                    break
                _, state = self.rnn(torch.cat([above, img[:, r:end - 1]], 1), state)
                above, r = img[:, end - 1:end], end
                continue
            s, state = self.rnn(above, state)
            ctx = self.context(s[:, 0])
            z_above = above[:, 0]
            a = torch.addmm(ctx[:, :-w], z_above, ut[:w])  # hidden pre-activation, (M, K)
            lin = torch.addmm(ctx[:, -w:] + self.b[r * w:(r + 1) * w], z_above, gt[:w])  # (M, W)
            c = 0
            while c < w:
                if col_known[r][c]:  # a run of pixels known everywhere: one matmul each
                    end = c
                    while end < w and col_known[r][end]:
                        end += 1
                    a.addmm_(img[:, r, c:end], ut[w + c:w + end])
                    lin.addmm_(img[:, r, c:end], gt[w + c:w + end])
                    c = end
                    continue
                p = torch.sigmoid(lin[:, c] + F.relu(a) @ v[c])
                draw = torch.bernoulli(p, generator=generator)
                xc = torch.where(kimg[:, r, c], img[:, r, c], draw)
                img[:, r, c] = xc
                a.addr_(xc, ut[w + c])
                lin.addr_(xc, gt[w + c])
                done += 1
                yield CompletionStep(r * w + c, p, x, done, total)
                c += 1
            above, r = img[:, r:r + 1], r + 1
