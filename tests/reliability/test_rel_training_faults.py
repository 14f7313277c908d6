"""Training faults, in the real window: NaN injected into the loss or the gradient mid-run (the
guard restores the last good weights and says so), the worker raising (shown, the app stays
usable: a second run trains), CUDA out of memory mid-run (the trainer goes on on the CPU with a
message) and CUDA missing."""

from __future__ import annotations

import pytest
import torch
from PySide6.QtCore import Qt

import core.training as training
from core.models.fvsbn import FVSBN


def start(qtbot, window, epochs=30.0):
    window.picker.select("fvsbn")
    window.panel.data_combo.setCurrentIndex(window.panel.data_combo.findData("bars"))
    window.panel.epochs.setValue(epochs)
    old = window.session
    qtbot.mouseClick(window.panel.train_btn, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.session is not old and window.session.frames_received > 0, timeout=20000)
    return window.session


def finish(qtbot, session, timeout=30000):
    if session.running:
        with qtbot.waitSignal(session.finished, timeout=timeout):
            pass


@pytest.fixture(scope="module")
def tally(figures):
    t = {"cases": 0, "failures": 0}
    yield t
    figures.record("training faults", **t)


def usable(qtbot, window) -> None:
    """The app goes on: a fresh short run trains to the end with finite weights."""
    session = start(qtbot, window, epochs=0.05)
    finish(qtbot, session)
    assert session.last_frame.snapshot.event == "finished"
    assert all(torch.isfinite(p).all() for p in window.model.parameters())
    assert window.panel.train_btn.isEnabled()


def test_nan_in_the_gradient_mid_run_restores_the_last_good_weights(qtbot, window, monkeypatch, tally):
    tally["cases"] += 1
    real_step = FVSBN.train_step
    calls = {"n": 0}

    def poisoned(self, batch, **kw):
        calls["n"] += 1
        if calls["n"] == 30:  # the gradient of one step is NaN: the optimizer writes NaN weights
            handles = []
            handles.append(self.weight.register_hook(lambda g: (handles[0].remove(), g * float("nan"))[1]))
        return real_step(self, batch, **kw)

    monkeypatch.setattr(FVSBN, "train_step", poisoned)
    window.panel.editors["batch_size"].setValue(16)
    start(qtbot, window)
    session = window.session
    session.trainer.config.eval_every = 20  # a good state is remembered before the fault
    finish(qtbot, session)
    snap = session.last_frame.snapshot
    assert snap.event == "nonfinite", snap.event
    assert "last good weights were restored" in window.error_boxes[-1].text()
    assert all(torch.isfinite(p).all() for p in window.model.parameters())
    monkeypatch.setattr(FVSBN, "train_step", real_step)
    usable(qtbot, window)


def test_the_worker_raising_is_shown_and_the_app_stays_usable(qtbot, window, monkeypatch, tally):
    tally["cases"] += 1
    real_step = FVSBN.train_step
    calls = {"n": 0}

    def broken(self, batch, **kw):
        calls["n"] += 1
        if calls["n"] == 10:
            raise KeyError("injected fault in the training step")
        return real_step(self, batch, **kw)

    monkeypatch.setattr(FVSBN, "train_step", broken)
    session = start(qtbot, window)
    finish(qtbot, session)
    texts = [b.text() + (b.detailedText() or "") for b in window.error_boxes]
    assert any("injected fault" in t for t in texts), texts
    monkeypatch.setattr(FVSBN, "train_step", real_step)
    usable(qtbot, window)


def test_cuda_out_of_memory_mid_run_goes_on_on_the_cpu(qtbot, window, monkeypatch, tally):
    """No GPU here: the trainer is told it is on CUDA (its tensors stay on the CPU) and the
    step raises torch's CUDA out-of-memory error at step 12."""
    tally["cases"] += 1
    monkeypatch.setattr(training, "select_device", lambda pref=None: (torch.device("cuda"), None))
    real_to_device = training.Trainer._to_device

    def to_device(self, device):
        real_to_device(self, torch.device("cpu"))
        self.device = device

    monkeypatch.setattr(training.Trainer, "_to_device", to_device)
    real_visuals = training.Trainer._visuals_due  # (its generator would be a real CUDA one)
    monkeypatch.setattr(training.Trainer, "_visuals_due",
                        lambda self: None if self.device.type == "cuda" else real_visuals(self))
    real_step = training.Trainer._train_step

    def step_on_fake_cuda(self):
        if self.device.type != "cuda":
            return real_step(self)
        if self.step == 11:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        self.device = torch.device("cpu")
        try:
            return real_step(self)
        finally:
            self.device = torch.device("cuda")

    monkeypatch.setattr(training.Trainer, "_train_step", step_on_fake_cuda)
    session = start(qtbot, window, epochs=0.3)
    finish(qtbot, session)
    assert str(session.trainer.device) == "cpu"
    assert session.last_frame.snapshot.event == "finished"
    assert any("CUDA failed" in b.text() and "CPU" in b.text() for b in window.error_boxes)
    assert window.device_label.text() == "device: CPU"
    assert all(torch.isfinite(p).all() for p in window.model.parameters())


def test_cuda_missing_falls_back_with_a_message(qtbot, window, monkeypatch, tally):
    tally["cases"] += 1
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    window.panel.set_device("cuda")
    assert "CUDA" in window.statusBar().currentMessage()
    session = start(qtbot, window, epochs=0.05)
    finish(qtbot, session)
    assert str(session.trainer.device) == "cpu"
    assert any("CUDA" in b.text() for b in window.error_boxes)


def test_train_asked_twice_while_the_data_load_starts_one_run(qtbot, window, tally):
    """Found by the GUI fuzz: Train (or Ctrl+Return) twice before the data set had loaded
    started two runs; the first one's thread was orphaned and Qt aborted the app ("QThread:
    Destroyed while thread 'training' is still running")."""
    tally["cases"] += 1
    window.picker.select("fvsbn")
    window.panel.data_combo.setCurrentIndex(window.panel.data_combo.findData("bars"))
    window.panel.data_combo.setCurrentIndex(window.panel.data_combo.findData("bars"))
    window.panel.seed.setValue(window.panel.seed.value() + 1)  # a data set still to load
    window.panel.epochs.setValue(30)
    first = window.train()
    assert first is not None
    assert window.train() is None, "a second start while the first loads is refused"
    qtbot.waitUntil(lambda: window.session is not None and window.session.frames_received > 0, timeout=20000)
    session = window.session
    qtbot.wait(300)
    assert window.session is session, "one run was started"
    with qtbot.waitSignal(session.finished, timeout=10000):
        window.stop()
    usable(qtbot, window)
