"""WaveNet (van den Oord et al. 2016): dilated causal convolutions over quantised waveforms.

The data are sequences x_1..x_T of values in [-1, 1]. Each value falls in one of ``levels`` bins
with edges e_0 = -1 < e_1 < ... < e_L = 1: equal widths, or mu-law (``mu_law``, mu = L - 1),
whose bins are narrow near 0 and wide near +-1 (edges e_k = F^-1(-1 + 2k/L) with
F(x) = sign(x) ln(1 + mu|x|) / ln(1 + mu)). Write b_t for the bin of x_t and w_k = e_{k+1} - e_k.

**Likelihood.** The network gives a categorical distribution over the bins of each step given the
bins before it, P(b_t | b_<t). The model of the continuous data spreads each bin's probability
uniformly over the bin: a piecewise-constant density on [-1, 1]^T,

    p(x) = prod_t P(b_t | b_<t) / w_{b_t},
    log p(x) = sum_t log P(b_t | b_<t) - sum_t log w_{b_t}     (= ... - T log(2 / L) for equal bins).

It integrates to exactly 1 (integrate x_T, then x_{T-1}, ...: each step's bins sum to 1), so it
is an exact likelihood of the continuous data, comparable with any other density on [-1, 1]^T,
and positive log-densities are normal (the bins are narrow). ``pixel_log_prob`` returns the T
terms log P(b_t | b_<t) - log w_{b_t}. Values outside [-1, 1] have density 0 and are refused.

**Network.** Step t reads the bin of the previous step (a start token at t = 0) through an
embedding, then ``stacks`` x ``layers`` residual layers with dilations 1, 2, 4, ..., 2^(layers-1)
(repeated per stack). Layer i, dilation d:

    a = W_past h[t - d] + W_now h[t] + c              (causal conv, kernel 2, zeros before t = 0)
    z = tanh(a_filter) * sigmoid(a_gate)              (gated unit: a split in two halves)
    h <- h + R z,      skip <- skip + S z             (residual and skip 1x1 convolutions)

and the logits of P(b_t | b_<t) are W_2 relu(W_1 relu(skip) + c_1) + c_2. Step t's output sees
the previous ``receptive_field`` steps (stacks * (2^layers - 1) + 1 of them).

**Sampling** (``sample``, ``complete``, ``complete_steps``) uses the Fast-WaveNet cache (Paine et
al. 2016): each layer keeps a queue of its last d inputs, so one new step is O(layers) matrix
products instead of a forward pass over the whole sequence. ``sample_naive`` does the full pass
at every step; both draw bin b from the same uniforms u (the first bin whose CDF reaches u), so
they give the same samples with the same generator. Samples are the bins' centres (the mu-law
decoding of the bin's middle); known values of ``complete`` are kept exactly. ``complete``
takes any known mask and draws the unknown steps in time order, each conditioned on every step
before it (known or drawn); known steps after an unknown one do not inform it (the model is
causal).

``complete_steps`` yields a :class:`~core.protocol.CompletionStep` per drawn step: ``pixel`` is
the time step t, ``p`` the (M, levels) distribution P(b_t | b_<t) of every candidate before the
draw, ``x`` the (M, T) candidates so far (unknown steps after t still hold 0).
"""

from __future__ import annotations

import math
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from core.protocol import (CompletionStep, DataKind, GenerativeModel, HParam, Likelihood, ModelInfo,
                           batch_size_hparam, last_completion, lr_hparam)
from core.registry import register


def bin_edges(levels: int, mu_law: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``levels + 1`` bin edges on [-1, 1] and the ``levels`` bin centres (float64)."""
    y = torch.linspace(-1.0, 1.0, levels + 1, dtype=torch.float64)
    mid = (y[:-1] + y[1:]) / 2
    if not mu_law:
        return y, mid
    mu = float(levels - 1) if levels > 2 else 1.0

    def decode(v: torch.Tensor) -> torch.Tensor:  # the inverse of the mu-law compander
        return torch.sign(v) * torch.expm1(v.abs() * math.log1p(mu)) / mu

    edges = decode(y)
    edges[0], edges[-1] = -1.0, 1.0  # exactly, whatever the rounding
    return edges, decode(mid)


class _Sampler:
    """The Fast-WaveNet cache of one sampling run: a queue per layer holding that layer's inputs
    of the last ``d`` steps (zeros before t = 0, like the full pass's padding). :meth:`step`
    feeds one step's token through every layer (O(layers) work) and returns its logits."""

    def __init__(self, model: "WaveNet", m: int):
        self.model = model
        self.emb = model.embed.weight
        c = model.channels
        self.layers = []
        for conv, out, d in zip(model.dilated, model.outs, model.dilations):
            queue = torch.zeros(d, m, c, device=self.emb.device, dtype=self.emb.dtype)
            self.layers.append((conv, out, queue, d))
        self.t = 0

    def step(self, token: torch.Tensor, head: bool = True) -> torch.Tensor | None:
        """Advance one step with ``token`` (M,) (the previous bin, or the start token); the
        logits (M, levels) of this step's bin, or None when ``head`` is False (a known step)."""
        c = self.model.channels
        h = self.emb[token]
        skip = None
        for conv, out, queue, d in self.layers:
            slot = self.t % d
            a = conv(torch.cat([queue[slot], h], 1))  # the same layer as the full pass, on one step
            queue[slot] = h  # read before it is overwritten: it held h[t - d]
            z = torch.tanh(a[:, :c]) * torch.sigmoid(a[:, c:])
            o = out(z)
            h = h + o[:, :c]
            skip = o[:, c:] if skip is None else skip + o[:, c:]
        self.t += 1
        if not head:
            return None
        return self.model.head2(torch.relu(self.model.head1(torch.relu(skip))))


@register
class WaveNet(GenerativeModel):
    info = ModelInfo(
        key="wavenet",
        name="WaveNet",
        group="Autoregressive",
        description="Dilated causal convolutions with gated units, residual and skip connections "
                    "over quantised 1D waveforms; exact likelihood of the continuous data as a "
                    "piecewise-constant density; cached (Fast-WaveNet) sampling.",
        likelihood=Likelihood.EXACT,
        data_kinds=(DataKind.SEQUENCE,),
        hparams=(
            HParam("levels", "int", 64, 2, 1024, log=True, help="quantisation bins of the values in [-1, 1]"),
            HParam("mu_law", "bool", False, help="mu-law bins (fine near 0, coarse near +-1) instead of equal ones"),
            HParam("channels", "int", 32, 1, 512, log=True, help="residual channels"),
            HParam("skip_channels", "int", 64, 1, 1024, log=True, help="skip and output channels"),
            HParam("layers", "int", 6, 1, 14, help="dilated layers per stack: dilations 1, 2, ..., 2^(layers-1)"),
            HParam("stacks", "int", 2, 1, 8, help="stacks of dilated layers"),
            lr_hparam(2e-3),
            batch_size_hparam(help="sequences per step"),
        ),
    )

    def __init__(self, data_shape, hparams):
        super().__init__(data_shape, hparams)
        if len(self.data_shape) != 1 or self.data_shape[0] < 1:
            raise ValueError(f"WaveNet takes sequences of shape (T,), got data of shape {self.data_shape}")
        hp = self.hparams
        self.levels, self.channels = int(hp["levels"]), int(hp["channels"])
        c, s, lv = self.channels, int(hp["skip_channels"]), self.levels
        self.dilations = [2 ** i for _ in range(int(hp["stacks"])) for i in range(int(hp["layers"]))]
        self.embed = nn.Embedding(lv + 1, c)  # row L is the start token
        # Time-major (N, T, C) activations and Linear layers instead of Conv1d: a kernel-2 causal
        # convolution is one matrix product of [h[t - d], h[t]] (2C inputs), 3x faster than
        # Conv1d on one CPU thread, and the cached sampler applies the very same layers per step.
        self.dilated = nn.ModuleList(nn.Linear(2 * c, 2 * c) for _ in self.dilations)
        # residual and skip 1x1 convolutions as one: the first C outputs are the residual
        self.outs = nn.ModuleList(nn.Linear(c, c + s) for _ in self.dilations)
        self.head1 = nn.Linear(s, s)
        self.head2 = nn.Linear(s, lv)
        edges, centres = bin_edges(lv, bool(hp["mu_law"]))
        # derived from the hyperparameters: not stored in checkpoints
        self.register_buffer("edges", edges.float(), persistent=False)
        self.register_buffer("centres", centres.float(), persistent=False)
        self.register_buffer("log_widths", (edges[1:] - edges[:-1]).log().float(), persistent=False)

    @property
    def receptive_field(self) -> int:
        """How many steps (this one's input included) one output sees: sum of dilations + 1."""
        return sum(self.dilations) + 1

    # -- quantisation ------------------------------------------------------------------------------
    def check_values(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` as float (N, T); a clear ``ValueError`` if it is not finite or leaves [-1, 1]."""
        x = self.check_batch(x)
        if not torch.isfinite(x).all():
            raise ValueError("WaveNet: the sequences contain NaN or infinite values")
        if len(x) and x.abs().max() > 1:
            raise ValueError(f"WaveNet models values in [-1, 1] (its density is 0 elsewhere); got values in "
                             f"[{float(x.min()):.4g}, {float(x.max()):.4g}]")
        return x

    def quantise(self, x: torch.Tensor) -> torch.Tensor:
        """The bin of each value, int64 of ``x``'s shape: bin k holds [e_k, e_{k+1}), the last
        one also 1."""
        return torch.bucketize(x.contiguous(), self.edges[1:-1], right=True)

    def dequantise(self, bins: torch.Tensor) -> torch.Tensor:
        return self.centres[bins]

    # -- the network -------------------------------------------------------------------------------
    def logits(self, bins: torch.Tensor) -> torch.Tensor:
        """Logits (N, T, levels) of P(b_t | b_<t) for every step, from the bins (N, T)."""
        start = torch.full_like(bins[:, :1], self.levels)
        tokens = torch.cat([start, bins[:, :-1]], 1)  # step t reads the bin of step t - 1
        h = self.embed(tokens)  # (N, T, C)
        c, t = self.channels, bins.shape[1]
        skip = 0.0
        for conv, out, d in zip(self.dilated, self.outs, self.dilations):
            past = F.pad(h, (0, 0, d, 0))[:, :t]  # h[t - d], zeros before the start: causal
            a = conv(torch.cat([past, h], 2))
            z = torch.tanh(a[..., :c]) * torch.sigmoid(a[..., c:])
            o = out(z)
            h = h + o[..., :c]
            skip = skip + o[..., c:]
        return self.head2(torch.relu(self.head1(torch.relu(skip))))

    def pixel_log_prob(self, x):
        """(N, T): log P(b_t | b_<t) - log w_{b_t}, the per-step terms of the density's log."""
        x = self.check_values(x)
        bins = self.quantise(x)
        logp = F.log_softmax(self.logits(bins), 2).gather(2, bins[..., None]).squeeze(2)
        return logp - self.log_widths[bins]

    def log_prob(self, x):
        return self.pixel_log_prob(x).sum(1)

    # -- sampling ----------------------------------------------------------------------------------
    def _draw(self, logits: torch.Tensor, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Probabilities (M, levels) and one bin per row by inverse CDF: the first bin whose CDF
        reaches a uniform u (one u per row, so that every sampler consumes the same numbers)."""
        p = torch.softmax(logits, 1)
        u = torch.rand(len(p), 1, generator=generator, device=p.device, dtype=p.dtype)
        b = (p.cumsum(1) < u).sum(1).clamp_(max=self.levels - 1)  # clamp: a CDF that rounds below u
        return p, b

    @torch.no_grad()
    def complete_steps(self, x, known, n=1, generator=None) -> Iterator[CompletionStep]:
        """Draw the unknown steps in time order, keeping the known values, with the Fast-WaveNet
        cache; one :class:`CompletionStep` per time step unknown in some candidate, whose ``p`` is
        the (M, levels) next-step distribution before the draw."""
        x, known = self.completion_inputs(x, known, n)  # the unknown steps are zeroed
        x = self.check_values(x)
        bins = self.quantise(x)
        draw_at = (~known).any(0).tolist()
        total, done = sum(draw_at), 0
        sampler = _Sampler(self, len(x))
        token = torch.full((len(x),), self.levels, dtype=torch.long, device=x.device)
        for t in range(x.shape[1]):
            logits = sampler.step(token, head=draw_at[t])
            if logits is not None:
                p, b = self._draw(logits, generator)
                keep = known[:, t]
                bins[:, t] = torch.where(keep, bins[:, t], b)
                x[:, t] = torch.where(keep, x[:, t], self.centres[b])
                done += 1
                yield CompletionStep(t, p, x, done, total)
            token = bins[:, t]

    @torch.no_grad()
    def complete(self, x, known, n=1, generator=None):
        """(N * n, T): the unknown steps drawn in time order, the known values kept; the
        candidates of row i at ``i*n:(i+1)*n``."""
        start = self.check_values(self.completion_inputs(x, known, n)[0])
        return last_completion(self.complete_steps(x, known, n, generator), start)

    @torch.no_grad()
    def sample(self, n, generator=None):
        if int(n) < 1:
            raise ValueError(f"the number of samples must be at least 1, got {n}")
        zeros = torch.zeros(int(n), *self.data_shape, device=self.device)
        return self.complete(zeros, torch.zeros_like(zeros, dtype=torch.bool), 1, generator)

    @torch.no_grad()
    def sample_naive(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Like ``sample`` but with a forward pass over the whole sequence at every step,
        O(T) times the work: the reference the cache is tested and timed against."""
        n = int(n)
        if n < 1:
            raise ValueError(f"the number of samples must be at least 1, got {n}")
        bins = torch.zeros(n, self.data_shape[0], dtype=torch.long, device=self.device)
        for t in range(bins.shape[1]):
            _, bins[:, t] = self._draw(self.logits(bins)[:, t], generator)
        return self.dequantise(bins)

    @torch.no_grad()
    def visuals(self, n=64, generator=None, bounds=None, res=96):
        # a handful of curves is all a view can show; 64 would cost the training thread 4x more
        return super().visuals(min(int(n), 16), generator=generator)
