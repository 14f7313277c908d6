"""Who owns a model while it trains (issue 12, point 3): the training thread. Other threads read
it only between two steps, through ``Trainer.between_steps`` / ``request_copy`` /
``request_payload``. The model here changes its weights slowly, one parameter at a time, so a
copy taken in the middle of a step is visibly torn (its parameters disagree)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

from core.checkpoint import load_checkpoint, write_checkpoint
from core.control import RunControl, throttled
from core.data import Dataset
from core.protocol import DataKind, GenerativeModel, Likelihood, ModelInfo
from core.training import TrainConfig, Trainer, clone_model

PARTS = 6


class SlowSteps(GenerativeModel):
    """Step k sets each of its PARTS parameters to k, one after the other, sleeping in
    between: consistent weights have all parameters equal."""

    info = ModelInfo("slow-steps", "Slow steps", "test", "weights that change slowly", Likelihood.NONE,
                     (DataKind.BINARY_IMAGE,))

    def __init__(self, data_shape, hparams):
        super().__init__(data_shape, hparams)
        self.parts = torch.nn.ParameterList(torch.nn.Parameter(torch.zeros(1)) for _ in range(PARTS))
        self.steps = 0

    def train_step(self, batch):
        self.steps += 1
        with torch.no_grad():
            for p in self.parts:
                p.fill_(float(self.steps))
                time.sleep(0.002)
        return {"loss": 1.0}


def _data() -> Dataset:
    x = np.zeros((8, 2), np.uint8)
    return Dataset("zeros", DataKind.BINARY_IMAGE, x, x[:2])


def _torn(model: GenerativeModel) -> bool:
    values = {float(p.detach()) for p in model.parts}
    return len(values) > 1


def _trainer() -> Trainer:
    model = SlowSteps((2,), SlowSteps.info.validate({}))
    return Trainer(model, _data(), TrainConfig(max_steps=10_000, eval_every=0, visuals_every_s=None, device="cpu"))


def _train_in_thread(trainer: Trainer, control: RunControl) -> threading.Thread:
    def work():
        for _ in throttled(trainer.run(), control, fps=30):
            pass

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    while trainer.model.steps < 2:
        time.sleep(0.001)
    return thread


def test_a_copy_taken_during_a_step_is_torn():
    """The race made visible: copying the weights from another thread while the worker steps."""
    trainer, control = _trainer(), RunControl()
    thread = _train_in_thread(trainer, control)
    try:
        deadline = time.perf_counter() + 5.0
        torn = False
        while not torn and time.perf_counter() < deadline:
            torn = _torn(clone_model(trainer.model))  # no owner: what the GUI did before
        assert torn
    finally:
        control.stop()
        thread.join(5)


def test_copies_through_the_trainer_are_made_between_steps():
    trainer, control = _trainer(), RunControl()
    thread = _train_in_thread(trainer, control)
    try:
        copies = [trainer.request_copy().result(timeout=5) for _ in range(40)]
    finally:
        control.stop()
        thread.join(5)
    assert not any(_torn(c) for c in copies)
    seen = sorted({float(c.parts[0].detach()) for c in copies})
    assert len(seen) > 1 and seen[-1] >= 2  # copies of a model that went on training
    assert all(c is not trainer.model and not c.training for c in copies)


def test_a_granted_step_while_paused_still_owns_the_model():
    """RunControl.step() sets paused while the granted step runs: "paused" is no licence to read."""
    trainer, control = _trainer(), RunControl()
    thread = _train_in_thread(trainer, control)
    try:
        control.pause()
        for _ in range(20):
            control.step()
            assert control.paused
            copy = trainer.request_copy().result(timeout=5)
            assert not _torn(copy)
    finally:
        control.stop()
        thread.join(5)


def test_a_waiting_run_is_read_at_once_and_steps_again_afterwards():
    trainer, control = _trainer(), RunControl(paused=True)
    steps = trainer.run()
    next(steps)  # one step, then the run waits at its yield
    future = trainer.request_copy()
    assert future.done() and float(future.result().parts[0].detach()) == 1.0
    next(steps)
    assert float(trainer.request_copy().result().parts[-1].detach()) == 2.0
    steps.close()
    assert not _torn(trainer.request_copy().result())  # after the run: still fine


def test_a_step_waits_for_a_read_in_progress():
    trainer = _trainer()
    steps = trainer.run()
    next(steps)
    reading, release = threading.Event(), threading.Event()

    def slow_read():
        reading.set()
        release.wait(5)
        return float(trainer.model.parts[0].detach())

    reader = threading.Thread(target=lambda: trainer.between_steps(slow_read), daemon=True)
    reader.start()
    reading.wait(5)
    stepped = threading.Event()
    stepper = threading.Thread(target=lambda: (next(steps), stepped.set()), daemon=True)
    stepper.start()
    assert not stepped.wait(0.1)  # the training thread waits for the reader
    release.set()
    assert stepped.wait(5)
    reader.join(5)
    stepper.join(5)
    steps.close()


def test_errors_of_a_read_come_back_through_the_future():
    trainer = _trainer()

    def broken():
        raise ValueError("no")

    with pytest.raises(ValueError, match="no"):
        trainer.between_steps(broken).result(timeout=1)


def test_a_payload_taken_between_steps_writes_a_consistent_checkpoint(tmp_path, monkeypatch):
    from core import registry

    monkeypatch.setitem(registry._REGISTRY, SlowSteps.info.key, SlowSteps)
    trainer, control = _trainer(), RunControl()
    thread = _train_in_thread(trainer, control)
    try:
        tensors, meta = trainer.request_payload().result(timeout=5)
    finally:
        control.stop()
        thread.join(5)
    path = write_checkpoint(tmp_path / "slow.safetensors", tensors, meta)
    loaded, meta = load_checkpoint(path)
    assert not _torn(loaded) and meta.step >= 1 and meta.family == "slow-steps"


# -- the window: the Canvas tab, the Sequences tab and Save go through the trainer -----------------

def test_the_window_reads_a_training_model_only_through_its_trainer(qtbot, window, tmp_path, monkeypatch):
    from PySide6.QtCore import Qt

    from core.readouts import TRAINING_KEY

    window.picker.select("fvsbn")
    window.panel.data_combo.setCurrentIndex(window.panel.data_combo.findData("bars"))
    window.panel.epochs.setValue(30.0)
    qtbot.mouseClick(window.panel.train_btn, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.session is not None and window.session.frames_received > 0, timeout=20000)
    trainer = window.session.trainer
    asked = []
    for name in ("request_copy", "request_payload"):
        real = getattr(trainer, name)
        monkeypatch.setattr(trainer, name, lambda real=real, name=name: asked.append(name) or real())
    # a direct copy on the GUI thread would now be a bug: make it fail loudly
    import core.readouts as readouts_mod

    monkeypatch.setattr(readouts_mod, "clone_model", lambda model: pytest.fail("copied outside the trainer"))
    window.canvas.training_model = window.canvas_model
    window.canvas.refresh_training_model()
    qtbot.waitUntil(lambda: any(e.key == TRAINING_KEY for e in window.canvas.entries), timeout=10000)
    entry = next(e for e in window.canvas.entries if e.key == TRAINING_KEY)
    assert entry.model is not window.model and not entry.model.training
    window.session.pause()  # paused or not, the trainer copies
    path = tmp_path / "live.safetensors"
    qtbot.waitUntil(window.save(path).done, timeout=10000)
    assert path.is_file() and asked == ["request_copy", "request_payload"]
    _, meta = load_checkpoint(path)
    assert meta.family == "fvsbn" and meta.step > 0
    window.session.stop()
