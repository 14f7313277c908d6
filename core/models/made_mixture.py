"""The MADE mixture (``made-mixture``): K one-mask, raster-order MADEs (:mod:`core.models.made`),
each with its own weights and masks, averaged in likelihood. ``main.py mixture`` assembles one from
MADEs trained apart through :meth:`MADEMixture.assemble`, which says which member does not fit."""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from core.models.made import (MADE, adamw, complete_groups, group_steps, mixture_pixel_terms, pick_by_prefix,
                              sample_components)
from core.protocol import DataKind, GenerativeModel, HParam, Likelihood, ModelInfo
from core.registry import register

#: the hyperparameters every member of a mixture shares (its mask seed is ``seed + k``)
_MEMBER_HPARAMS = ("hidden", "layers", "seed", "weight_decay", "direct", "direct_l1", "dropout", "lr", "batch_size")


@register
class MADEMixture(GenerativeModel):
    """An equal-weight mixture of ``members`` one-mask, raster-order MADEs, each with its own
    weights and its own connectivity (member k's masks are drawn with seed ``seed + k``; the last
    ``mirror`` of them read each row right to left, a second ordering that still puts the top
    rows first):
    ``p(x) = 1/K sum_k p_k(x)``, the mask ensemble of the MADE paper with a weight set per mask
    instead of one shared by all. Trained here, every member learns its own likelihood from the
    same batches (the loss is the members' mean NLL); ``main.py mixture`` assembles one from
    MADEs trained separately (in parallel), which is the same thing. Completion of the rows
    below the known ones draws each candidate's member from its posterior given the known
    prefix, then lets that member draw the rest (with its fast incremental fill), so it samples
    the mixture's own conditional."""

    info = ModelInfo(
        key="made-mixture",
        name="MADE mixture",
        group="Autoregressive",
        description="An ensemble of one-mask MADEs, each with its own weights and connectivity: "
                    "the mixture's likelihood is the mean of theirs (log-mean-exp). Exact "
                    "likelihood; completion draws from the mixture's conditional.",
        likelihood=Likelihood.EXACT,
        data_kinds=(DataKind.BINARY_IMAGE,),
        hparams=(
            HParam("members", "int", 2, 1, 16, help="MADEs in the mixture, each with its own weights"),
            HParam("mirror", "int", 0, 0, 16,
                   help="how many of the members (the last ones) read each row right to left"),
            *(h for h in MADE.info.hparams if h.name in _MEMBER_HPARAMS),
        ),
    )

    def __init__(self, data_shape, hparams):
        super().__init__(data_shape, hparams)
        shared = {k: self.hparams[k] for k in _MEMBER_HPARAMS if k in self.hparams}
        base = MADE.info.validate({k: v for k, v in shared.items() if k != "seed"})
        n, mirrored = int(self.hparams["members"]), int(self.hparams.get("mirror", 0))
        if mirrored > n:
            raise ValueError(f"mirror: {mirrored} mirrored members of {n}")
        self.members = nn.ModuleList(
            MADE(self.data_shape, {**base, "seed": int(self.hparams["seed"]) + k, "mirror": k >= n - mirrored})
            for k in range(n))

    @staticmethod
    def member_hparams(made_hparams: dict) -> dict:
        """The mixture hyperparameters that a one-mask, raster MADE's imply (its seed as ``seed``)."""
        return {k: made_hparams[k] for k in _MEMBER_HPARAMS if k in made_hparams}

    @classmethod
    def assemble(cls, members: Sequence[tuple[str, GenerativeModel]]) -> tuple[MADEMixture, list[int]]:
        """The mixture of MADEs trained apart, holding their weights. ``members`` are (name, model)
        pairs, the name (a checkpoint's path, say) for the messages. Each must be a one-mask MADE
        in raster order; they must share every structural hyperparameter but the mask seed, and
        their seeds must run s, s+1, ... (the mixture rebuilds member k's masks from seed s + k),
        the mirrored members last. Returns the mixture and the members' order in it (indices into
        ``members``, by seed); raises ``ValueError`` saying which member does not fit."""
        if not members:
            raise ValueError("a mixture needs at least one member")
        for name, model in members:
            if model.info.key != MADE.info.key:
                raise ValueError(f"{name} is a {model.info.name}, not a MADE")
            hp = model.hparams
            if int(hp["masks"]) != 1 or hp["order_agnostic"]:
                raise ValueError(f"{name}: a mixture member is a one-mask MADE in raster order "
                                 f"(this one has masks={hp['masks']}, order_agnostic={hp['order_agnostic']})")
        order = sorted(range(len(members)), key=lambda i: int(members[i][1].hparams["seed"]))
        ranked = [members[i] for i in order]
        first_name, first = ranked[0]
        shared = cls.member_hparams(first.hparams)
        for name, model in ranked[1:]:
            if tuple(model.data_shape) != tuple(first.data_shape):
                raise ValueError(f"{name} is for data of shape {model.data_shape}, {first_name} for {first.data_shape}")
            differ = [k for k in MADE.info.structure_changes(shared, cls.member_hparams(model.hparams)) if k != "seed"]
            if differ:
                raise ValueError(f"{name} differs from {first_name} in {', '.join(differ)}: the members of a "
                                 f"mixture share every hyperparameter but the seed")
        seeds = [int(m.hparams["seed"]) for _, m in ranked]
        if seeds != list(range(seeds[0], seeds[0] + len(seeds))):
            raise ValueError(f"the members' mask seeds must be consecutive (s, s+1, ...), got {seeds}: "
                             f"train them with --hp seed=...")
        mirrored = [bool(m.hparams.get("mirror")) for _, m in ranked]
        if mirrored != sorted(mirrored):
            raise ValueError(f"the mirrored members must have the highest seeds (the mixture mirrors its last "
                             f"ones); by seed {seeds}, mirror is {mirrored}")
        mix = cls(first.data_shape, cls.info.validate({**shared, "members": len(ranked), "mirror": sum(mirrored)}))
        with torch.no_grad():
            for member, (_, model) in zip(mix.members, ranked):
                member.load_state_dict(model.state_dict())
        return mix.eval(), order

    def configure_optimizer(self, lr):
        self.optimizer = adamw(self, float(self.hparams.get("weight_decay", 0.0)), lr)
        return self.optimizer

    # -- likelihood ------------------------------------------------------------------------------
    def _terms(self, x: torch.Tensor) -> torch.Tensor:
        """Every member's chain-rule terms, (K, N, D), for flat ``x`` (N, D)."""
        return torch.stack([m.chain_terms(x, [0])[0] for m in self.members])

    def member_log_probs(self, x: torch.Tensor) -> torch.Tensor:
        """(K, N): each member's log-likelihood."""
        x = self.check_batch(x)
        return torch.stack([m.log_prob_masks(x, [0])[0] for m in self.members])

    def log_prob(self, x):
        lp = self.member_log_probs(x)
        return torch.logsumexp(lp, 0) - math.log(len(lp))

    def pixel_log_prob(self, x):
        """(N, D) terms summing to ``log_prob``, as for the mask ensemble (see
        :func:`mixture_pixel_terms`)."""
        x = self.check_batch(x).reshape(len(x), self.dim)
        return mixture_pixel_terms(self._terms(x))

    def loss(self, batch):
        """The members' mean loss: each learns its own likelihood (and pays its own penalties)."""
        return torch.stack([m.loss(batch) for m in self.members]).mean()

    # -- completion and sampling -------------------------------------------------------------------
    @torch.no_grad()
    def _groups(self, x: torch.Tensor, known: torch.Tensor, generator: torch.Generator | None) -> list:
        patterns, which = torch.unique(known, dim=0, return_inverse=True)
        out = []
        for j, pattern in enumerate(patterns):
            rows = torch.nonzero(which == j).flatten()
            if pattern.all():
                continue  # nothing to draw
            ranks = torch.stack([m.orders[0] for m in self.members])
            pick = pick_by_prefix(self._terms(x[rows]), pattern, ranks, generator)
            for k in pick.unique().tolist():
                member = self.members[k]
                out.append((pattern, rows[pick == k], member, member.degrees(0)))
        return out

    @torch.no_grad()
    def complete_steps(self, x, known, n=1, generator=None):
        """Like ``complete``, one :class:`CompletionStep` per drawn pixel; the members' rows
        advance together."""
        x, known = self.completion_inputs(x, known, n)
        yield from group_steps(x, self._groups(x, known, generator), generator)

    @torch.no_grad()
    def complete(self, x, known, n=1, generator=None):
        """``n`` candidates per row of ``x``, the ``known`` pixels kept exactly, the others drawn
        in raster order from the mixture's conditional; returns (N * n, D)."""
        x, known = self.completion_inputs(x, known, n)
        return complete_groups(x, self._groups(x, known, generator), generator)

    @torch.no_grad()
    def sample(self, n, generator=None):
        """``n`` draws from the mixture: a member chosen uniformly per sample."""
        return sample_components(self, [(m, m.degrees(0)) for m in self.members], n, generator)
