"""MADE (Germain, Gregor, Murray & Larochelle 2015): a masked autoencoder for distribution estimation.

An MLP from the D pixels to D logits whose weight matrices are masked so that output d only sees
the inputs that come before pixel d in an ordering: ``p(x) = prod_d p(x_d | x_<d)`` in one pass.

Each pixel gets a rank ``m0[d]`` in 1..D (its place in the ordering), each hidden unit a degree
``m_l[k]`` drawn uniformly from ``[min m_{l-1}, D - 1]``; a hidden unit sees the units below whose
degree (rank) is <= its own, and output d sees the last hidden units whose degree is < ``m0[d]``.

* ``masks`` connectivity masks (degrees drawn with a generator seeded with ``seed``, so a
  checkpoint rebuilds them from its hyperparameters) are cycled through in training, one per
  step ("mask resampling"); ``order_agnostic`` also draws a new input ordering with each mask.
* ``ensemble`` K: ``log_prob`` averages the likelihoods (not the logits) of the first K masks,
  ``log(1/K sum_k p_k(x))``, and ``sample`` draws from that mixture. K is capped at ``masks``:
  only trained masks are averaged.
* ``complete`` samples the unknown pixels one after the other, one pass per unknown pixel. With
  ``order_agnostic`` it reorders mask 0's ordering so that every known pixel comes first (exact
  conditioning for a model trained over random orderings); in raster mode it keeps raster order,
  like FVSBN, and a raster ensemble first draws each candidate's mask from its posterior given
  the known prefix. The trained masks are never modified: orderings are passed, not stored.
* :class:`~core.models.made_mixture.MADEMixture` (``made-mixture``, in its own file) is the
  ensemble with a weight set per mask: K one-mask raster MADEs, trained apart (``main.py mixture``
  assembles them) or side by side. The shipped one (five of the model below, one of them
  ``mirror``-ed) scores 87.91 nats; it uses the helpers at the end of this file.
* Regularisers: ``dropout`` on the hidden units, ``direct_l1`` on the direct connections,
  ``weight_decay`` (AdamW) on every matrix. The shipped one-mask model (4000 hidden units,
  dropout 0.4, ``direct_l1`` 1e-4) reaches 89.12 nats on the validation split.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from core.protocol import (CompletionStep, DataKind, GenerativeModel, HParam, Likelihood, ModelInfo,
                           batch_size_hparam, check_abandoned, drain, last_completion, lr_hparam)
from core.registry import register

#: masks of an ensemble evaluated in one pass by ``log_prob`` (memory: this many copies of the hidden layers)
MASKS_AT_ONCE = 8

Degrees = tuple[torch.Tensor, list[torch.Tensor]]  # (input ranks (D,), hidden degrees per layer)


@register
class MADE(GenerativeModel):
    info = ModelInfo(
        key="made",
        name="MADE",
        group="Autoregressive",
        description="Masked autoencoder for distribution estimation: an MLP whose masked weights "
                    "make output d depend only on the pixels before d in an ordering. Exact "
                    "likelihood in one pass; mask and order-agnostic training; ensembles.",
        likelihood=Likelihood.EXACT,
        data_kinds=(DataKind.BINARY_IMAGE,),
        hparams=(
            HParam("hidden", "int", 500, 1, 4096, log=True, help="units per hidden layer"),
            HParam("layers", "int", 1, 1, 3, help="hidden layers"),
            HParam("masks", "int", 1, 1, 512,
                   help="connectivity masks cycled through in training (one per step)"),
            HParam("order_agnostic", "bool", False,
                   help="draw a new input ordering with each mask (else raster order)"),
            HParam("mirror", "bool", False,
                   help="raster order with each row read right to left (still the top row first, so "
                        "the rows below row k complete exactly): another ordering for a mixture"),
            HParam("ensemble", "int", 1, 1, 64,
                   help="masks whose likelihoods are averaged at evaluation (at most `masks`)"),
            HParam("seed", "int", 0, 0, 2**31 - 1, help="seed of the masks"),
            HParam("weight_decay", "float", 0.0, 0.0, 1.0,
                   help="decoupled weight decay (AdamW) on the weight matrices, not the biases"),
            HParam("direct", "bool", False,
                   help="add direct input-to-output connections, masked the same way (an FVSBN "
                        "beside the hidden layers)"),
            HParam("direct_l1", "float", 0.0, 0.0, 1e-2,
                   help="L1 penalty per example on the direct connections (sparse, like FVSBN's `l1`)"),
            HParam("dropout", "float", 0.0, 0.0, 0.9,
                   help="dropout on the hidden units in training (a regulariser; none at evaluation)"),
            lr_hparam(),
            batch_size_hparam(100),
        ),
    )

    def __init__(self, data_shape, hparams):
        super().__init__(data_shape, hparams)
        d, h, n_layers = self.dim, int(self.hparams["hidden"]), int(self.hparams["layers"])
        sizes = [d] + [h] * n_layers
        self.hidden_layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.out = nn.Linear(h, d)
        # direct[d, j]: the effect of input j on output d, used where j comes before d
        self.direct = nn.Parameter(torch.zeros(d, d)) if self.hparams.get("direct") else None
        self.n_masks = int(self.hparams["masks"])
        self.n_ensemble = min(int(self.hparams["ensemble"]), self.n_masks)
        if self.hparams.get("mirror") and self.hparams["order_agnostic"]:
            raise ValueError("mirror is a raster ordering; order_agnostic draws orderings of its own: choose one")
        orders, hidden = self._make_degrees(d, h, n_layers, self.n_masks, int(self.hparams["seed"]),
                                            bool(self.hparams["order_agnostic"]), self._raster_ranks())
        # rebuilt from the hyperparameters, so not saved; the index of the next mask is saved
        self.register_buffer("orders", orders, persistent=False)  # (masks, D) ranks 1..D
        for i, deg in enumerate(hidden):
            self.register_buffer(f"degrees{i}", deg, persistent=False)  # (masks, H)
        self.register_buffer("mask_index", torch.zeros((), dtype=torch.long))

    def configure_optimizer(self, lr):
        """AdamW: decay the weight matrices (hidden, output, direct), never the biases."""
        self.optimizer = adamw(self, float(self.hparams.get("weight_decay", 0.0)), lr)
        return self.optimizer

    # -- masks -----------------------------------------------------------------------------------
    def _raster_ranks(self) -> torch.Tensor:
        """Each pixel's rank 1..D in the raster ordering: row by row, each row left to right, or
        right to left with ``mirror``."""
        d = self.dim
        if not self.hparams.get("mirror"):
            return torch.arange(1, d + 1, device="cpu")
        if len(self.data_shape) == 2:
            h, w = self.data_shape
        elif len(self.data_shape) == 1 and round(d ** 0.5) ** 2 == d:
            h = w = round(d ** 0.5)
        else:
            raise ValueError(f"mirror reads image rows: data of shape (H, W), or (D,) with D a square; "
                             f"got {self.data_shape}")
        return torch.arange(d, device="cpu").reshape(h, w).flip(1).reshape(-1) + 1

    @staticmethod
    def _make_degrees(d: int, h: int, n_layers: int, n_masks: int, seed: int,
                      order_agnostic: bool, raster: torch.Tensor | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        # on the CPU whatever the default device (the checkpoint loader sizes models on "meta")
        cpu = torch.device("cpu")
        g = torch.Generator().manual_seed(seed)
        orders = torch.empty(n_masks, d, dtype=torch.int32, device=cpu)
        hidden = [torch.empty(n_masks, h, dtype=torch.int32, device=cpu) for _ in range(n_layers)]
        raster = torch.arange(1, d + 1, device=cpu) if raster is None else raster.to(cpu)
        for k in range(n_masks):
            m = torch.randperm(d, generator=g, device=cpu) + 1 if order_agnostic else raster
            orders[k] = m
            for layer in hidden:
                low = min(int(m.min()), d - 1)
                m = (torch.randint(low, d, (h,), generator=g, device=cpu) if low < d - 1
                     else torch.full((h,), d - 1, device=cpu))
                layer[k] = m
        return orders, hidden

    def degrees(self, k: int) -> Degrees:
        """Mask ``k``'s input ranks and hidden degrees."""
        return self.orders[k], [getattr(self, f"degrees{i}")[k] for i in range(len(self.hidden_layers))]

    @staticmethod
    def masks_from_degrees(deg: Degrees) -> list[torch.Tensor]:
        """The float 0/1 masks (out, in) of every layer, the output layer last."""
        order, hidden = deg
        prev, out = order, []
        for m in hidden:
            out.append((m[..., :, None] >= prev[..., None, :]).float())
            prev = m
        out.append((order[..., :, None] > prev[..., None, :]).float())
        return out

    def order_for(self, known: torch.Tensor, k: int = 0) -> Degrees:
        """Mask ``k``'s degrees with its ordering changed so that the ``known`` pixels (bool, (D,))
        come first, each group keeping its relative order; the raster ordering when the model is
        not order-agnostic (it was never trained on another one)."""
        order, hidden = self.degrees(k)
        if not self.hparams["order_agnostic"]:
            return order, hidden
        known = known.to(order.device, torch.bool)
        # sort by (unknown, old rank): known pixels first
        key = order.long() + (~known).long() * (self.dim + 1)
        new = torch.empty_like(order)
        new[torch.argsort(key)] = torch.arange(1, self.dim + 1, device=order.device, dtype=order.dtype)
        return new, hidden

    # -- likelihood ------------------------------------------------------------------------------
    def _logits(self, x: torch.Tensor, ks: list[int], dropout: float = 0.0) -> torch.Tensor:
        """Logits (K, N, D) of ``x`` (N, D) under masks ``ks``, all in one batched pass;
        ``dropout`` drops hidden units (training only)."""
        degs = [self.degrees(k) for k in ks]
        orders = torch.stack([o for o, _ in degs])
        hidden = [torch.stack([hs[i] for _, hs in degs]) for i in range(len(self.hidden_layers))]
        masks = self.masks_from_degrees((orders, hidden))
        h = x.unsqueeze(0).expand(len(ks), -1, -1)
        for layer, mask in zip(self.hidden_layers, masks):
            h = F.relu(torch.baddbmm(layer.bias[:, None].T, h, (layer.weight * mask).transpose(1, 2)))
            if dropout:
                h = F.dropout(h, dropout, training=True)
        out = torch.baddbmm(self.out.bias[:, None].T, h, (self.out.weight * masks[-1]).transpose(1, 2))
        if self.direct is not None:
            out = out + torch.bmm(x.unsqueeze(0).expand(len(ks), -1, -1), (self.direct * self.direct_mask(orders)).transpose(1, 2))
        return out

    @staticmethod
    def direct_mask(order: torch.Tensor) -> torch.Tensor:
        """(..., D, D) 0/1: output d may read input j when j's rank is below d's."""
        return (order[..., :, None] > order[..., None, :]).float()

    def chain_terms(self, x: torch.Tensor, ks: list[int], dropout: float = 0.0) -> torch.Tensor:
        """(K, N, D) chain-rule terms ``log p(x_d | x_<d)`` of flat ``x`` (N, D) under masks ``ks``."""
        logits = self._logits(x, ks, dropout)
        return -F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none")

    def log_prob_masks(self, x: torch.Tensor, ks: list[int], dropout: float = 0.0) -> torch.Tensor:
        """Per-mask log-likelihoods, (K, N)."""
        x = self.check_batch(x).reshape(len(x), self.dim)
        return self.chain_terms(x, ks, dropout).sum(-1)

    def log_prob(self, x):
        """log of the mean likelihood over the first ``ensemble`` masks (exact for one mask);
        :data:`MASKS_AT_ONCE` masks a pass (bounded memory), abandonable between passes."""
        ks = list(range(self.n_ensemble))
        parts = []
        for i in range(0, len(ks), MASKS_AT_ONCE):
            if i:
                check_abandoned()
            parts.append(self.log_prob_masks(x, ks[i:i + MASKS_AT_ONCE]))
        lp = torch.cat(parts)
        return torch.logsumexp(lp, 0) - math.log(len(lp))

    # -- training: one mask per step, cycling ------------------------------------------------------
    def loss(self, batch):
        dropout = float(self.hparams.get("dropout", 0.0))
        nll = -self.log_prob_masks(batch, [int(self.mask_index)], dropout)[0].mean()
        l1 = float(self.hparams.get("direct_l1", 0.0))
        if l1 and self.direct is not None:
            # the entries no mask lets through get no gradient from the likelihood: keep them out
            nll = nll + l1 * (self.direct * self.direct_mask(self.orders[int(self.mask_index)])).abs().sum()
        return nll

    def train_step(self, batch):
        out = super().train_step(batch)
        self.mask_index.fill_((int(self.mask_index) + 1) % self.n_masks)
        return out

    def pixel_log_prob(self, x):
        """(N, D) terms summing to ``log_prob``. One mask: the chain-rule terms
        ``log p(x_d | x_<d)``. An ensemble of K masks has no single chain rule (each mask orders
        the pixels its own way): each pixel gets the masks' terms weighted by their posterior,
        see :func:`mixture_pixel_terms`."""
        x = self.check_batch(x).reshape(len(x), self.dim)
        return mixture_pixel_terms(self.chain_terms(x, list(range(self.n_ensemble))))

    # -- sampling and completion -----------------------------------------------------------------
    @torch.no_grad()
    def _fill_steps(self, x: torch.Tensor, known: torch.Tensor, deg: Degrees,
                    generator: torch.Generator | None):
        """Sample ``x``'s unknown pixels in place (``known``: bool (D,), shared by all rows) one at
        a time in the ordering ``deg``, yielding ``(pixel, p)`` after each: one pass per unknown
        pixel. The first layer's pre-activation is updated incrementally (a column per new pixel);
        the layers above and the one output row needed are recomputed."""
        if len(self.hidden_layers) == 1:
            yield from self._fill_steps_one_layer(x, known, deg, generator)
            return
        masks = self.masks_from_degrees(deg)
        w1 = self.hidden_layers[0].weight * masks[0]  # (H, D)
        w1t = w1.t().contiguous()  # (D, H): row d is pixel d's input weights
        wout = self.out.weight * masks[-1]  # (D, H)
        upper = [(layer.weight * mask, layer.bias) for layer, mask in zip(self.hidden_layers[1:], masks[1:-1])]
        bias = self.out.bias
        direct = None if self.direct is None else self.direct * self.direct_mask(deg[0])  # (D, D)
        known = known.to(x.device, torch.bool)
        x.mul_(known)  # unknown pixels are 0: they add nothing to the pre-activation yet
        a = F.linear(x, w1, self.hidden_layers[0].bias)
        unknown = torch.nonzero(~known).flatten()
        for d in unknown[torch.argsort(deg[0][unknown])].tolist():
            h = F.relu(a)
            for w, b in upper:
                h = F.relu(F.linear(h, w, b))
            logit = torch.mv(h, wout[d]).add_(bias[d])
            if direct is not None:
                logit.add_(torch.mv(x, direct[d]))
            p = logit.sigmoid_()
            draw = torch.bernoulli(p, generator=generator)
            x[:, d] = draw
            a.addr_(draw, w1t[d])
            yield d, p

    def _one_layer_tables(self, deg: Degrees) -> tuple:
        """The masked weights of a one-hidden-layer MADE under ``deg``, hidden units sorted by
        degree: (sort, cut, w1 (D, H) by pixel, wout (D, H), direct (D, D) or None). ``cut[d]`` is
        the number of units of degree < rank(d). Cached for the last two orderings while the
        weights are unchanged (the canvas completes again and again with one model)."""
        params = tuple((p.data_ptr(), p._version) for p in self.parameters())
        order, (m,) = deg
        key = (id(self), hash(order.cpu().numpy().tobytes()), hash(m.cpu().numpy().tobytes()), params)
        cache = self.__dict__.setdefault("_tables", {})
        if key in cache:
            return cache[key]
        masks = self.masks_from_degrees(deg)
        sort = torch.argsort(m)
        w1 = (self.hidden_layers[0].weight * masks[0])[sort].t().contiguous()  # (D, H sorted)
        wout = (self.out.weight * masks[-1])[:, sort].contiguous()
        direct = None if self.direct is None else self.direct * self.direct_mask(order)
        cut = torch.searchsorted(m[sort].contiguous(), order.contiguous()).tolist()
        # per pixel: the output weights it reads, the input weights it moves, its direct row
        # (views made once: making them is a good part of a step's cost)
        reads = [wout[d, :k] for d, k in enumerate(cut)]
        moves = [w1[d, k:] for d, k in enumerate(cut)]
        rows = [None] * len(cut) if direct is None else list(direct.unbind(0))
        while len(cache) >= 2:
            cache.pop(next(iter(cache)))
        cache[key] = (sort, cut, w1, reads, moves, rows, self.out.bias.unbind(0))
        return cache[key]

    def _fill_steps_one_layer(self, x, known, deg, generator):
        """``_fill_steps`` for one hidden layer, skipping the masked-out zeros: with the hidden
        units sorted by degree, pixel d's logit reads only the units of degree < rank(d) (a
        prefix) and drawing d moves only those of degree >= rank(d) (the rest), so a step
        touches each unit once instead of three times. The pre-activation is kept as (H, M) so
        both parts are contiguous blocks. Same conditionals, same draws as the general path."""
        sort, cut, w1, reads, moves, rows, bias = self._one_layer_tables(deg)
        known = known.to(x.device, torch.bool)
        x.mul_(known)
        a = torch.addmm(self.hidden_layers[0].bias[sort][:, None], w1.t(), x.t()).contiguous()  # (H, M)
        columns = x.t()  # columns[d] is a view of pixel d in every row
        unknown = torch.nonzero(~known).flatten()
        for d in unknown[torch.argsort(deg[0][unknown])].tolist():
            k, direct = cut[d], rows[d]
            logit = torch.mv(F.relu(a[:k]).t(), reads[d])
            logit = logit.add_(bias[d]) if direct is None else logit.add_(torch.mv(x, direct)).add_(bias[d])
            p = logit.sigmoid_()
            draw = torch.bernoulli(p, generator=generator)
            columns[d].copy_(draw)
            a[k:].addr_(moves[d], draw)
            yield d, p

    def _fill(self, x, known, deg, generator):
        drain(self._fill_steps(x, known, deg, generator))
        return x

    @torch.no_grad()
    def complete_steps(self, x, known, n=1, generator=None):
        """Like ``complete``, one :class:`CompletionStep` per drawn pixel. Rows with different
        known pixels are completed one group after the other (each in its own ordering); in a
        raster ensemble the rows of every mask advance together."""
        x, known = self.completion_inputs(x, known, n)
        groups = [(pattern, rows, self, deg) for pattern, rows, deg in self._completion_groups(x, known, generator)]
        yield from group_steps(x, groups, generator)

    @torch.no_grad()
    def complete(self, x, known, n=1, generator=None):
        """``n`` candidates per row of ``x`` ((N, D) or (D,)), the ``known`` pixels (bool, same
        shape) kept exactly; returns (N * n, D), the candidates of row i at ``i*n:(i+1)*n``."""
        x, known = self.completion_inputs(x, known, n)
        groups = [(pattern, rows, self, deg) for pattern, rows, deg in self._completion_groups(x, known, generator)]
        return complete_groups(x, groups, generator)

    @torch.no_grad()
    def _completion_groups(self, x: torch.Tensor, known: torch.Tensor,
                           generator: torch.Generator | None) -> list[tuple[torch.Tensor, torch.Tensor, Degrees]]:
        """``(known pattern, rows, degrees to fill them with)``: rows sharing a known pattern are
        filled together. A raster-order ensemble draws each row's mask from its posterior given
        the known pixels before the first unknown one, ``w_k ~ p_k(x_<first)``, so a completion
        of the top rows is a draw from the ensemble's own conditional (the mixture's, not mask
        0's); an order-agnostic model reorders mask 0 so that the known pixels come first."""
        patterns, which = torch.unique(known, dim=0, return_inverse=True)
        out = []
        for j, pattern in enumerate(patterns):
            rows = torch.nonzero(which == j).flatten()
            if self.n_ensemble == 1 or self.hparams["order_agnostic"] or pattern.all():
                out.append((pattern, rows, self.order_for(pattern)))
                continue
            terms = self.chain_terms(x[rows], list(range(self.n_ensemble)))
            pick = pick_by_prefix(terms, pattern, self.orders[:self.n_ensemble], generator)
            for k in pick.unique().tolist():
                out.append((pattern, rows[pick == k], self.degrees(k)))
        return out

    @torch.no_grad()
    def sample(self, n, generator=None):
        """``n`` draws from the ensemble's mixture: a mask chosen uniformly per sample."""
        return sample_components(self, [(self, self.degrees(k)) for k in range(self.n_ensemble)], n, generator)


# -- shared by the mask ensemble and the mixture of separately trained MADEs ------------------------

def adamw(module: nn.Module, decay: float, lr: float) -> torch.optim.Optimizer:
    """AdamW that decays the weight matrices (hidden, output, direct), never the biases."""
    matrices = [p for p in module.parameters() if p.dim() == 2]
    biases = [p for p in module.parameters() if p.dim() != 2]
    return torch.optim.AdamW([{"params": matrices, "weight_decay": decay},
                              {"params": biases, "weight_decay": 0.0}], lr=lr)


def mixture_pixel_terms(terms: torch.Tensor) -> torch.Tensor:
    """(N, D) per-pixel terms of the equal-weight mixture of K components whose chain-rule terms
    are ``terms`` (K, N, D). One component: its own terms. Otherwise each pixel gets the
    components' terms weighted by their posterior ``w_k = p_k(x) / sum_j p_j(x)``; that sums to
    ``sum_k w_k log p_k(x)``, which falls short of ``log mean_k p_k(x)`` by ``KL(w || uniform)``,
    spread evenly over the pixels, so the rows sum to the mixture's log-likelihood."""
    if len(terms) == 1:
        return terms[0]
    lp = terms.sum(-1)  # (K, N)
    w = torch.softmax(lp, 0)
    mixed = (w[..., None] * terms).sum(0)
    gap = (torch.logsumexp(lp, 0) - math.log(len(terms))) - (w * lp).sum(0)  # -KL(w || uniform)
    return mixed + gap[:, None] / terms.shape[-1]


def pick_by_prefix(terms: torch.Tensor, pattern: torch.Tensor, ranks: torch.Tensor,
                   generator: torch.Generator | None) -> torch.Tensor:
    """Each row's component, drawn from its posterior given the known pixels that every
    component reads before any unknown one: ``w_k ~ p_k(x_S)``, so that the component then
    drawing the rest samples the mixture's own conditional. ``terms`` (K, M, D) are the
    components' chain-rule terms for M rows whose known pixels are ``pattern`` (bool (D,), not all
    known); ``ranks`` (K, D) their orderings. The product of the terms over S is ``p_k(x_S)``
    when S is a prefix of every ordering: so it is for raster orderings, mirrored or not (S is
    then the rows above the first unknown pixel's, or more when no ordering is mirrored).
    Returns (M,) component indices."""
    ranks = ranks.to(terms.device)
    first = ranks[:, ~pattern].min(1).values  # (K,) each ordering's first unknown pixel
    common = (ranks < first[:, None]).all(0)  # (D,) read before every unknown one, by every component
    post = torch.softmax((terms * common).sum(-1), 0)  # (K, M)
    return torch.multinomial(post.T, 1, generator=generator).flatten()


def _clusters(groups: list) -> list[list]:
    """``groups`` gathered when consecutive ones share a known pattern and an ordering (they then
    draw the same pixel at each step)."""
    out: list[list] = []
    for g in groups:
        if out and torch.equal(out[-1][0][0], g[0]) and torch.equal(out[-1][0][3][0], g[3][0]):
            out[-1].append(g)
        else:
            out.append([g])
    return out


def group_steps(x: torch.Tensor, groups: list, generator: torch.Generator | None):
    """Fill the rows of ``x`` by groups ``(pattern, rows, made, degrees)`` (rows sharing a known
    pattern, drawn by ``made`` in the ordering ``degrees``), yielding a :class:`CompletionStep`
    per drawn pixel. Groups of one pattern and one ordering (the same pixels in the same order,
    each by its own mask or member) advance together, so their candidates grow at once; ``p`` is
    NaN for the rows of the others."""
    total = sum(int((~cluster[0][0]).sum()) for cluster in _clusters(groups))
    done = 0
    for cluster in _clusters(groups):
        subs = [x[rows] for _, rows, _, _ in cluster]
        fills = [made._fill_steps(sub, pattern, deg, generator)
                 for sub, (pattern, _, made, deg) in zip(subs, cluster)]
        for drawn in zip(*fills):
            full = torch.full((len(x),), math.nan, device=x.device)
            d = drawn[0][0]
            for sub, (_, rows, _, _), (dk, p) in zip(subs, cluster, drawn):
                assert dk == d, "groups of one pattern draw the same pixel at each step"
                x[rows, d] = sub[:, d]
                full[rows] = p
            done += 1
            yield CompletionStep(d, full, x, done, total)


def complete_groups(x: torch.Tensor, groups: list, generator: torch.Generator | None) -> torch.Tensor:
    """What :func:`group_steps` ends with (the same draws): when each pattern has one group,
    without the per-step bookkeeping."""
    if all(len(c) == 1 for c in _clusters(groups)):
        for pattern, rows, made, deg in groups:
            x[rows] = made._fill(x[rows], pattern, deg, generator)
        return x
    return last_completion(group_steps(x, groups, generator), x)


def sample_components(model: GenerativeModel, components: list, n: int,
                      generator: torch.Generator | None) -> torch.Tensor:
    """``n`` draws from the equal-weight mixture of ``components``, ``(made, degrees)`` each: a
    component chosen uniformly per sample (no choice to draw when there is one)."""
    n = int(n)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    x = torch.zeros(n, model.dim, device=model.device)
    none = torch.zeros(model.dim, dtype=torch.bool, device=model.device)
    if len(components) == 1:
        made, deg = components[0]
        return made._fill(x, none, deg, generator).reshape(n, *model.data_shape)
    which = torch.randint(len(components), (n,), generator=generator, device=model.device)
    for k, (made, deg) in enumerate(components):
        rows = torch.nonzero(which == k).flatten()
        if len(rows):
            x[rows] = made._fill(x[rows], none, deg, generator)
    return x.reshape(n, *model.data_shape)
