"""The sequence panel (offscreen): a tiny untrained WaveNet animated step by step, the prime
kept, the speed obeyed, stop; loading weights from a folder; sequence samples in the Training
tab's samples view drawn as curves."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from PySide6.QtCore import Qt

from core import registry
from core.checkpoint import save_checkpoint
from core.control import Frame
from core.training import Snapshot, Visuals
from core.protocol import DataKind

T = 32


def tiny_wavenet(t: int = T):
    torch.manual_seed(0)
    return registry.create("wavenet", (t,), DataKind.SEQUENCE, levels=8, channels=4, skip_channels=4,
                           layers=3, stacks=1)


def real_sequences(n: int = 5, t: int = T) -> np.ndarray:
    steps = np.arange(t) / t
    return np.stack([0.6 * np.sin(2 * np.pi * (k + 1) * steps) for k in range(n)]).astype(np.float32)


@pytest.fixture
def panel(qtbot):
    from gui.sequence_panel import SequencePanel

    p = SequencePanel()
    qtbot.addWidget(p)
    p.resize(900, 400)
    p.show()
    qtbot.waitExposed(p)
    yield p
    p.stop()


def curve_len(p, i: int = 0) -> int:
    x, _ = p.curves[i].getData()
    return 0 if x is None else len(x)


def test_animates_a_primed_sequence_and_keeps_the_prefix(qtbot, panel):
    valid = real_sequences()
    panel.set_model(tiny_wavenet(), valid=valid)
    assert panel.sample_btn.isEnabled() and not panel.stop_btn.isEnabled()
    panel.prime.setCurrentIndex(panel.prime.findData("valid"))
    panel.example.setValue(2)
    panel.prefix.setValue(10)
    panel.candidates.setValue(3)
    panel.speed.setValue(7)  # 64 steps/s: a few steps per tick
    assert "64 steps/s" in panel.speed_label.text()
    qtbot.mouseClick(panel.sample_btn, Qt.MouseButton.LeftButton)
    assert panel.running and panel.stop_btn.isEnabled() and not panel.sample_btn.isEnabled()
    qtbot.waitUntil(lambda: panel.current_step >= 12, timeout=5000)
    first_t, first_len = panel.current_step, curve_len(panel)
    qtbot.waitUntil(lambda: panel.current_step >= first_t + 3, timeout=5000)
    assert curve_len(panel) > first_len, "the curve grows"
    x = panel.candidates_array()
    assert x.shape == (3, T)
    assert np.array_equal(x[:, :10], np.repeat(valid[2:3, :10], 3, 0)), "the prefix is kept"
    px, py = panel.prefix_curve.getData()
    assert len(px) == 10 and np.allclose(py, valid[2, :10])
    assert panel.strip.isVisible() and panel.strip.image.shape[1] == 3  # one column per candidate
    assert np.isclose(panel.strip.image.max(0), 1.0).all()
    qtbot.waitUntil(lambda: not panel.running, timeout=10000)  # runs to the end
    assert panel.current_step == T - 1 and "Done" in panel.status.text()
    x = panel.candidates_array()
    assert np.isfinite(x).all() and np.abs(x).max() <= 1
    assert np.array_equal(x[:, :10], np.repeat(valid[2:3, :10], 3, 0))
    assert len({tuple(r) for r in x[:, 10:].tolist()}) > 1, "the candidates differ"
    assert curve_len(panel) == T - 9  # from the last known step to the end
    assert panel.sample_btn.isEnabled() and not panel.stop_btn.isEnabled()


def test_stop_freezes_the_animation(qtbot, panel):
    panel.set_model(tiny_wavenet(), valid=real_sequences())
    panel.speed.setValue(5)  # 16 steps/s
    panel.sample()
    qtbot.waitUntil(lambda: panel.current_step >= 1, timeout=5000)
    qtbot.mouseClick(panel.stop_btn, Qt.MouseButton.LeftButton)
    assert not panel.running and panel.sample_btn.isEnabled()
    t, length = panel.current_step, curve_len(panel)
    assert t < T - 1 and "Stopped" in panel.status.text()
    qtbot.wait(200)  # about time itself: nothing more is drawn in the next 200 ms (3 steps' time)
    assert panel.current_step == t and curve_len(panel) == length


def test_speed_limits_the_pace(qtbot, panel):
    panel.set_model(tiny_wavenet(), valid=None, data_name=None)
    assert not panel.prime.model().item(1).isEnabled(), "no real sequences: only 'nothing' as a prime"
    panel.speed.setValue(4)  # 8 steps/s
    t0 = time.perf_counter()
    panel.sample()
    qtbot.wait(400)  # about time itself: the steps drawn in 400 ms at 8 steps/s
    elapsed = time.perf_counter() - t0
    assert 1 <= panel.drawn <= 8 * elapsed + 2
    panel.speed.setValue(11)  # full speed
    assert panel.speed_label.text() == "full speed"
    qtbot.waitUntil(lambda: not panel.running, timeout=10000)
    assert panel.drawn == T and panel.current_step == T - 1


def test_a_model_failing_mid_way_stops_with_a_message(qtbot, panel, monkeypatch):
    model = tiny_wavenet()
    panel.set_model(model, valid=None, data_name=None)
    real = model.complete_steps
    closed = []

    def failing(*args, **kwargs):
        steps = real(*args, **kwargs)
        try:
            for i, step in enumerate(steps):
                if i == 3:
                    raise RuntimeError("model broke")
                yield step
        finally:
            closed.append(True)

    monkeypatch.setattr(model, "complete_steps", failing)
    panel.speed.setValue(11)  # full speed
    panel.sample()
    qtbot.waitUntil(lambda: not panel.running, timeout=5000)
    assert panel.status.text() == "Sampling failed: RuntimeError: model broke"
    assert panel.drawn < 3 and closed == [True] and panel.sample_btn.isEnabled()  # a failed tick draws nothing


def test_rejects_models_that_are_not_sequence_models(panel):
    with pytest.raises(ValueError, match="sequence"):
        panel.set_model(registry.create("fvsbn", (6,)))
    with pytest.raises(ValueError, match="prime"):
        panel.set_model(tiny_wavenet(), valid=real_sequences(t=T + 1))
    assert panel.model is None and not panel.sample_btn.isEnabled()
    panel.sample()  # nothing to sample from: a message, no crash
    assert "No model" in panel.status.text()


def test_loads_the_first_sequence_model_of_a_weights_folder(qtbot, tmp_path):
    from core import data as datasets
    from gui.sequence_panel import SequencePanel

    (tmp_path / "a-broken.safetensors").write_bytes(b"\x80\x04not a checkpoint")
    save_checkpoint(tmp_path / "b-fvsbn.safetensors", registry.create("fvsbn", (784,)),
                    data=datasets.load("bars", n=10))
    ds = datasets.load("waves", n=8)
    model = tiny_wavenet(ds.shape[0])
    save_checkpoint(tmp_path / "c-wave.safetensors", model, data=ds)
    p = SequencePanel(tmp_path)
    qtbot.addWidget(p)
    assert p.model is not None and p.model.info.key == "wavenet" and "c-wave" in p.model_label.text()
    assert p.valid is not None and p.valid.shape[1] == ds.shape[0]  # the held-out waves as primes
    empty = SequencePanel(tmp_path / "nothing-here")
    qtbot.addWidget(empty)
    assert empty.model is None and "No sequence model" in empty.status.text()


def test_training_view_draws_sequence_samples_as_curves(qtbot):
    from gui.training_view import CURVES, TrainingView

    view = TrainingView(fps=60)
    qtbot.addWidget(view)
    view.show()
    samples = real_sequences(12)
    snap = Snapshot(step=5, total_steps=10, epoch=0.5, loss=1.0, event="step")  # no image shape, no bounds
    view.push(Frame(snap, np.zeros((0, 2)), Visuals(samples=samples), 1))
    qtbot.waitUntil(lambda: view.curves_widget.isVisible(), timeout=2000)
    x, y = view.curves_item.getData()
    assert len(x) == CURVES * (T + 1)  # each curve and a NaN break
    assert np.allclose(y[:T], samples[0]) and "8 of 12 samples" in view.caption.text()
    assert not view.samples_widget.isVisible()
    # image samples afterwards take the view back
    snap = Snapshot(step=6, total_steps=10, epoch=0.6, loss=1.0, event="step", image_shape=(2, 2))
    view.push(Frame(snap, np.zeros((0, 2)), Visuals(samples=np.zeros((4, 4), np.float32)), 1))
    qtbot.waitUntil(lambda: view.samples_widget.isVisible(), timeout=2000)
    assert not view.curves_widget.isVisible()


def test_sequences_tab_in_the_window_uses_the_shipped_wavenet(qtbot, window):
    assert window.tabs.tabText(window.tabs.indexOf(window.sequences)) == "Sequences"
    window.tabs.setCurrentWidget(window.sequences)
    qtbot.waitUntil(lambda: window.sequences.model is not None, timeout=5000)
    assert window.sequences.model.info.key == "wavenet"
    assert not window.picker.isVisible() and not window.panel.isVisible()  # the tab has its own controls
