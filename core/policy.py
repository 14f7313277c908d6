"""The training policy: learning-rate schedule with warm-up, keep-best and early stopping.

The CLI (``main.py train``) and the window's Training tab apply the same policy to a trainer's
stream of snapshots through :class:`PolicyRun`. It needs only a duck-typed trainer: ``set_lr(lr)``
(applied before the next step), ``save(path)``, ``total_steps`` and ``run()`` (the generator of
snapshots, each with ``step``, ``event`` and ``nll``, the held-out NLL after an evaluation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from core.protocol import Recipe
from core.training import EVALUATED

#: the learning-rate schedules after the warm-up
SCHEDULES = ("constant", "cosine")
#: a cosine schedule ends at this fraction of the base rate
COSINE_FLOOR = 0.02


def lr_at(step: int, total: int, base: float, schedule: str = "constant", warmup: int = 0,
          hold: float = 0.0) -> float:
    """The learning rate for ``step`` (0-based) of ``total``: linear warm-up over ``warmup``
    steps, then constant or, after holding ``base`` for a fraction ``hold`` of the remaining
    steps, a cosine decay to 2 % of ``base`` at ``total``."""
    if warmup and step < warmup:
        return base * (step + 1) / warmup
    if schedule == "cosine":
        start = warmup + hold * max(0, total - warmup)
        frac = min(1.0, max(0.0, step - start) / max(1.0, total - start))
        return base * (COSINE_FLOOR + (1 - COSINE_FLOOR) * 0.5 * (1 + math.cos(math.pi * frac)))
    return base


@dataclass(frozen=True)
class TrainingPolicy:
    """How a run goes beyond its steps: ``schedule`` of the learning rate after ``warmup``
    steps of linear warm-up; ``keep_best``: save the weights at each better held-out NLL;
    ``patience``: stop after that many evaluations without a better one (0: never)."""

    schedule: str = "constant"
    warmup: int = 0
    keep_best: bool = False
    patience: int = 0
    #: with the cosine schedule, the fraction of the steps after the warm-up held at the base rate
    hold: float = 0.0

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown learning-rate schedule {self.schedule!r}: use {' or '.join(SCHEDULES)}")
        if int(self.warmup) < 0 or int(self.patience) < 0:
            raise ValueError(f"warm-up steps and patience must be >= 0, got {self.warmup} and {self.patience}")
        if not 0.0 <= float(self.hold) < 1.0:
            raise ValueError(f"the held fraction must be in [0, 1), got {self.hold}")

    @classmethod
    def of(cls, recipe: Recipe) -> "TrainingPolicy":
        """The schedule of a family's :class:`~core.protocol.Recipe` (what the playground runs)."""
        return cls(schedule=recipe.schedule, warmup=recipe.warmup, hold=recipe.hold)

    @property
    def scheduled(self) -> bool:
        """Whether the learning rate moves (else the model's own rate holds throughout)."""
        return self.schedule != "constant" or self.warmup > 0

    def lr_at(self, step: int, total: int, base: float) -> float:
        return lr_at(step, total, base, self.schedule, self.warmup, self.hold)

    def curve(self, total: int, base: float, points: int = 100) -> tuple[np.ndarray, np.ndarray]:
        """The planned schedule over steps 0 .. ``total``: ``points`` (step, lr) pairs."""
        steps = np.unique(np.linspace(0, max(0, total - 1), max(2, points)).round().astype(np.int64))
        return steps, np.array([self.lr_at(int(s), total, base) for s in steps], np.float64)


class PolicyRun:
    """Applies a :class:`TrainingPolicy` to one trainer: iterate :meth:`run` instead of the
    trainer's own ``run()``. Before each step it sets the scheduled rate (the base rate
    ``base_lr`` over the steps ``start`` .. ``trainer.total_steps``); at each evaluation that
    beats the best held-out NLL it saves to ``best_path`` (with ``keep_best``); after
    ``patience`` evaluations without improvement it ends the run, ``stop_reason`` saying why.
    A model without a likelihood has no NLL to watch: its runs go to the end."""

    def __init__(self, trainer: Any, policy: TrainingPolicy, base_lr: float, *,
                 best_path: str | Path | None = None, start: int = 0):
        if policy.keep_best and best_path is None:
            raise ValueError("keep-best needs a path to save the best weights to")
        self.trainer, self.policy = trainer, policy
        self.base_lr = float(base_lr)
        self.best_path = None if best_path is None else Path(best_path)
        self.start = int(start)
        self.best, self.best_step, self.stale = math.inf, 0, 0
        self.bound = False  # the NLL watched is a bound (lower-bound models)
        self.stop_reason: str | None = None

    @property
    def scheduled(self) -> bool:
        return self.policy.scheduled

    def lr_at(self, step: int) -> float:
        """The rate of the step after ``step`` steps (what the run sets, so what it shows)."""
        return self.policy.lr_at(step - self.start, self.trainer.total_steps - self.start, self.base_lr)

    def curve(self, points: int = 100) -> tuple[np.ndarray, np.ndarray]:
        """The planned (step, lr) curve of this run, in the trainer's step numbers."""
        steps, lrs = self.policy.curve(self.trainer.total_steps - self.start, self.base_lr, points)
        return steps + self.start, lrs

    def set_base_lr(self, lr: float) -> None:
        """A new base rate (the learning rate edited while training): the schedule scales to it
        from the next step on. Any thread: one attribute is replaced."""
        lr = float(lr)
        if not (math.isfinite(lr) and lr > 0):
            raise ValueError(f"lr: expected a positive learning rate, got {lr}")
        self.base_lr = lr

    def _watch(self, snap: Any) -> None:
        """Keep-best and patience bookkeeping for one snapshot."""
        if snap.event not in EVALUATED or snap.nll is None:
            return
        self.bound = snap.nll.is_bound
        if snap.nll.nats < self.best:
            self.best, self.best_step, self.stale = snap.nll.nats, snap.step, 0
            if self.policy.keep_best:
                self.trainer.save(self.best_path)
        else:
            self.stale += 1

    def run(self) -> Iterator[Any]:
        """The trainer's snapshots, with the policy applied; closes the trainer's generator."""
        snapshots = self.trainer.run()
        try:
            if self.scheduled:
                self.trainer.set_lr(self.lr_at(self.start))
            for snap in snapshots:
                if self.scheduled:
                    self.trainer.set_lr(self.lr_at(snap.step))
                self._watch(snap)
                yield snap
                if self.policy.patience and self.stale >= self.policy.patience:
                    key = "valid_nll_bound" if self.bound else "valid_nll"
                    self.stop_reason = f"no better {key} in {self.stale} evaluations: stopping"
                    return
        finally:
            snapshots.close()
