"""The training policy on its own (core.policy): schedule values, keep-best saves only on a
better held-out NLL, patience stops the run; and on a real trainer, the rate each step uses."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from core import data as datasets
from core import registry
from core.policy import PolicyRun, TrainingPolicy, lr_at
from core.training import Event, TrainConfig, Trainer


def test_lr_schedule_warms_up_then_decays():
    lrs = [lr_at(s, 100, 1.0, "cosine", 10) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert lrs[4] == pytest.approx(0.5)  # linear warm-up
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:]))
    assert lrs[-1] == pytest.approx(0.02, abs=0.01)
    assert lr_at(55, 100, 1.0, "cosine", 10) == pytest.approx(0.02 + 0.98 * 0.5)  # half way down
    assert lr_at(100, 100, 1.0, "cosine", 10) == pytest.approx(0.02)
    assert lr_at(50, 100, 0.5, "constant", 0) == 0.5
    assert [lr_at(s, 100, 0.5, "constant", 4) for s in (0, 3, 4, 99)] == [0.125, 0.5, 0.5, 0.5]


def test_policy_values_and_curve():
    p = TrainingPolicy("cosine", warmup=10)
    assert p.scheduled and not TrainingPolicy().scheduled and TrainingPolicy(warmup=1).scheduled
    assert p.lr_at(30, 100, 2.0) == lr_at(30, 100, 2.0, "cosine", 10)
    steps, lrs = p.curve(100, 2.0, points=50)
    assert steps[0] == 0 and steps[-1] == 99 and np.all(np.diff(steps) > 0)
    assert lrs.max() == pytest.approx(2.0, rel=0.02) and lrs[-1] == pytest.approx(0.04, rel=0.05)
    with pytest.raises(ValueError, match="schedule"):
        TrainingPolicy("linear")
    with pytest.raises(ValueError, match=">= 0"):
        TrainingPolicy(patience=-1)


class FakeTrainer:
    """The duck type PolicyRun needs: one snapshot per step, an evaluation every step whose NLL
    is read from ``nlls`` (a bound with ``bound``); records the rates set, the saves and whether
    its run was closed."""

    def __init__(self, nlls, total=None, bound=False):
        self.nlls, self.bound = list(nlls), bound
        self.total_steps = total or len(self.nlls)
        self.step, self.lrs, self.saved, self.closed = 0, [], [], False

    def set_lr(self, lr):
        self.lrs.append((self.step, lr))

    def save(self, path):
        self.saved.append((self.step, path))

    def run(self):
        try:
            while self.step < self.total_steps:
                self.step += 1
                nats = self.nlls[self.step - 1] if self.step <= len(self.nlls) else None
                nll = None if nats is None else SimpleNamespace(nats=nats, is_bound=self.bound)
                event = Event.FINISHED if self.step == self.total_steps else (Event.EVAL if nll else Event.STEP)
                yield SimpleNamespace(step=self.step, event=event, nll=nll)
        finally:
            self.closed = True


def test_keep_best_saves_only_on_improvement(tmp_path):
    trainer = FakeTrainer([5.0, 4.0, 4.5, 3.0, 3.0, 3.5])
    run = PolicyRun(trainer, TrainingPolicy(keep_best=True), 1e-3, best_path=tmp_path / "b")
    steps = [s.step for s in run.run()]
    assert steps == [1, 2, 3, 4, 5, 6]  # no patience: the run goes to the end
    assert [s for s, _ in trainer.saved] == [1, 2, 4]  # only the better ones; a tie is no improvement
    assert run.best == 3.0 and run.best_step == 4 and run.stale == 2 and run.stop_reason is None
    assert trainer.lrs == []  # a constant rate is the model's own: never set


def test_patience_stops_after_that_many_evaluations_without_improvement(tmp_path):
    trainer = FakeTrainer([5.0, 4.0, 4.1, 4.2, 4.3, 1.0, 0.5], total=7)
    run = PolicyRun(trainer, TrainingPolicy(keep_best=True, patience=3), 1e-3, best_path=tmp_path / "b")
    assert [s.step for s in run.run()] == [1, 2, 3, 4, 5]
    assert trainer.closed, "the trainer's generator is closed when the policy stops it"
    assert [s for s, _ in trainer.saved] == [1, 2] and run.best_step == 2
    assert "no better valid_nll in 3 evaluations" in run.stop_reason
    # patience without keep-best: stops the same, saves nothing; a bound says so
    trainer = FakeTrainer([5.0, 4.0, 4.1, 4.2, 4.3, 1.0, 0.5], total=7, bound=True)
    run = PolicyRun(trainer, TrainingPolicy(patience=3), 1e-3)
    assert [s.step for s in run.run()] == [1, 2, 3, 4, 5] and trainer.saved == []
    assert "no better valid_nll_bound in 3 evaluations" in run.stop_reason
    # no held-out NLL (a model without a likelihood): nothing to watch, the run goes on
    trainer = FakeTrainer([], total=3)
    run = PolicyRun(trainer, TrainingPolicy(patience=1), 1e-3)
    assert [s.step for s in run.run()] == [1, 2, 3] and run.stop_reason is None
    with pytest.raises(ValueError, match="path"):
        PolicyRun(FakeTrainer([1.0]), TrainingPolicy(keep_best=True), 1e-3)


def test_schedule_sets_the_rate_before_every_step_from_the_start_step():
    trainer = FakeTrainer([], total=50)
    trainer.step = 10  # a run continued from step 10: its schedule spans steps 10 .. 50
    run = PolicyRun(trainer, TrainingPolicy("cosine", warmup=4), 0.1, start=10)
    list(run.run())
    # one rate before the first step, then one after every step (for the next)
    assert [s for s, _ in trainer.lrs] == list(range(10, 51))
    assert trainer.lrs[0][1] == pytest.approx(0.1 / 4)  # the first step is warmed up too
    assert trainer.lrs[3][1] == pytest.approx(0.1)
    assert [lr for _, lr in trainer.lrs] == [pytest.approx(lr_at(s, 40, 0.1, "cosine", 4)) for s in range(41)]
    assert run.lr_at(30) == pytest.approx(lr_at(20, 40, 0.1, "cosine", 4))
    steps, lrs = run.curve(points=41)
    assert steps[0] == 10 and steps[-1] == 49 and lrs[-1] == pytest.approx(lr_at(39, 40, 0.1, "cosine", 4))
    run.set_base_lr(0.2)  # the rate edited while training: the schedule scales to it
    assert run.lr_at(30) == pytest.approx(lr_at(20, 40, 0.2, "cosine", 4))
    with pytest.raises(ValueError):
        run.set_base_lr(math.nan)


def test_a_real_trainer_uses_the_scheduled_rate_at_every_step():
    ds = datasets.load("bars")
    model = registry.create("fvsbn", ds.shape, ds.kind, lr=0.05, batch_size=32)
    trainer = Trainer(model, ds, TrainConfig(max_steps=30, eval_every=10, visuals_every_s=None, device="cpu"))
    run = PolicyRun(trainer, TrainingPolicy("cosine", warmup=5), 0.05)
    used = []
    for snap in run.run():
        if snap.event in (Event.STEP, Event.EVAL, Event.FINISHED):  # the rate the step `snap.step` used
            used.append((snap.step, model.optimizer.param_groups[0]["lr"]))
    assert [s for s, _ in used] == list(range(1, 31))
    assert [lr for _, lr in used] == [pytest.approx(lr_at(s - 1, 30, 0.05, "cosine", 5)) for s, _ in used]
    assert used[0][1] == pytest.approx(0.01) and used[-1][1] < 0.005


def test_held_cosine_keeps_the_rate_then_decays_over_the_rest():
    """A held cosine (the GAN's recipe): the rate held for 60 % of the run, then a decay to 2 %."""
    p = TrainingPolicy("cosine", hold=0.6)
    assert p.scheduled
    assert [p.lr_at(s, 1000, 1e-3) for s in (0, 300, 600)] == [1e-3, 1e-3, 1e-3]
    assert p.lr_at(800, 1000, 1e-3) == pytest.approx(1e-3 * (0.02 + 0.98 * 0.5))  # half way down
    assert p.lr_at(1000, 1000, 1e-3) == pytest.approx(2e-5)
    lrs = [p.lr_at(s, 1000, 1.0) for s in range(600, 1001)]
    assert all(a >= b for a, b in zip(lrs, lrs[1:])) and lrs[1] < 1.0
    # with a warm-up, the hold counts the steps after it
    assert lr_at(59, 110, 1.0, "cosine", 10, hold=0.5) == 1.0 and lr_at(61, 110, 1.0, "cosine", 10, hold=0.5) < 1.0
    with pytest.raises(ValueError, match="held fraction"):
        TrainingPolicy("cosine", hold=1.0)


def test_recipes_become_policies_and_bad_recipes_are_refused():
    from core.protocol import Recipe
    gan = registry.info("gan").recipe
    assert TrainingPolicy.of(gan) == TrainingPolicy("cosine", warmup=gan.warmup, hold=gan.hold)
    assert not TrainingPolicy.of(Recipe()).scheduled  # the default recipe: constant rate, no warm-up
    for bad in ({"steps": 0}, {"warmup": -1}, {"hold": 1.5}):
        with pytest.raises(ValueError, match="recipe"):
            Recipe(**bad)
    with pytest.raises(ValueError, match="schedule"):
        TrainingPolicy.of(Recipe(schedule="linear"))
