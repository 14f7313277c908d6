"""The real window, driven offscreen: pick, train, pause, resume, step, stop, save, load,
bad inputs, settings, closing mid-training."""

from __future__ import annotations

import hashlib
import re
import pickle
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PySide6.QtCore import QObject, QSettings, Qt, QThread, Slot
from PySide6.QtWidgets import QApplication

from core.checkpoint import load_checkpoint, save_checkpoint
from core.models.fvsbn import FVSBN
from waiting import steady


class FrameProbe(QObject):
    """Records, in a slot, which thread each frame arrives on."""

    def __init__(self):
        super().__init__()
        self.threads: list[bool] = []
        self.steps: list[int] = []

    @Slot(object)
    def on_frame(self, frame):
        self.threads.append(QThread.currentThread() is QApplication.instance().thread())
        self.steps.append(frame.snapshot.step)


def start_training(qtbot, window, epochs=30.0, data="bars"):
    window.picker.select("fvsbn")
    window.panel.data_combo.setCurrentIndex(window.panel.data_combo.findData(data))
    window.panel.epochs.setValue(epochs)
    old = window.session
    qtbot.mouseClick(window.panel.train_btn, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.session is not old and window.session.frames_received > 0, timeout=20000)
    return window.session


def current_step(window):
    return window.session.last_frame.snapshot.step


def test_picker_lists_the_registry_and_fills_the_form(window):
    assert "fvsbn" in window.picker.keys()
    assert window.picker.select("fvsbn")
    assert window.panel.family == "fvsbn"
    assert {"lr", "batch_size", "weight_decay"} <= set(window.panel.hparams())
    kinds = [window.panel.data_combo.itemData(i) for i in range(window.panel.data_combo.count())]
    assert "bars" in kinds and "binarized_mnist" in kinds and "8gaussians" not in kinds


def test_train_pause_step_resume_stop(qtbot, window):
    probe = FrameProbe()
    session = start_training(qtbot, window)
    session.frame.connect(probe.on_frame)
    assert window.panel.pause_btn.isEnabled() and not window.panel.train_btn.isEnabled()
    qtbot.waitUntil(lambda: len(probe.steps) >= 3, timeout=10000)
    assert all(probe.threads), "frames must arrive on the GUI thread"
    # throttled to the frame rate: far fewer frames than steps
    assert session.frames_received < current_step(window)

    qtbot.mouseClick(window.panel.pause_btn, Qt.MouseButton.LeftButton)
    assert window.panel.pause_btn.text() == "Resume"
    # the step in flight when pause was clicked finishes and is shown: then the count rests
    qtbot.waitUntil(steady(lambda: (current_step(window), session.trainer.step)), timeout=10000)
    paused_at = current_step(window)
    assert paused_at == session.trainer.step, "the last step done is the one shown"
    qtbot.wait(300)  # about time itself: no progress during 300 ms of pause
    assert current_step(window) == paused_at, "no progress while paused"

    qtbot.mouseClick(window.panel.step_btn, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: current_step(window) == paused_at + 1, timeout=5000)
    qtbot.wait(200)  # about time itself: no second step in the next 200 ms
    assert current_step(window) == paused_at + 1 == session.trainer.step, "one step, exactly"

    qtbot.mouseClick(window.panel.pause_btn, Qt.MouseButton.LeftButton)  # resume
    qtbot.waitUntil(lambda: current_step(window) > paused_at + 5, timeout=10000)

    with qtbot.waitSignal(session.finished, timeout=3000):
        qtbot.mouseClick(window.panel.stop_btn, Qt.MouseButton.LeftButton)
    assert not session.running and window.panel.train_btn.isEnabled()
    assert window.training_view.loss.n > 0
    steps = window.training_view.loss.x
    assert np.all(np.diff(steps) > 0), "every step's loss reaches the curve, in order"
    assert window.training_view.repaints > 0


def test_training_runs_to_the_end_and_the_loss_falls(qtbot, window):
    session = start_training(qtbot, window, epochs=1.0)
    with qtbot.waitSignal(session.finished, timeout=60000):
        pass
    frame = session.last_frame
    assert frame.snapshot.event == "finished"
    assert frame.snapshot.step == session.trainer.total_steps
    loss = window.training_view.loss.y
    assert loss[-10:].mean() < loss[:10].mean() - 50
    assert frame.snapshot.nll is not None
    assert window.training_view.image is not None and window.training_view.image.dtype == np.uint8
    assert "finished" in window.statusBar().currentMessage()


def test_learning_rate_is_editable_while_training(qtbot, window):
    session = start_training(qtbot, window)
    lr_box = window.panel.editors["lr"]
    assert lr_box.isEnabled() and not window.panel.editors["batch_size"].isEnabled()
    lr_box.setValue(0.0005)
    qtbot.waitUntil(lambda: session.trainer.model.optimizer.param_groups[0]["lr"] == pytest.approx(0.0005),
                    timeout=5000)
    session.stop()


def test_save_and_load_round_trip(qtbot, window, tmp_path):
    session = start_training(qtbot, window, epochs=0.3)
    with qtbot.waitSignal(session.finished, timeout=30000):
        pass
    path = tmp_path / "model.safetensors"
    task = window.save(path)
    qtbot.waitUntil(task.done, timeout=10000)
    assert path.is_file() and path.with_suffix(".json").is_file()
    trained = window.model
    x = torch.from_numpy(window.dataset.valid[:32]).float()
    expected = trained.log_prob(x)

    window.model = None
    window.training_view.image = None  # so that the samples checked below are the load's own
    window.training_view.caption.setText("")
    task = window.load(path)
    qtbot.waitUntil(task.done, timeout=10000)
    assert window.model is not None and window.model is not trained
    assert torch.allclose(window.model.log_prob(x), expected)
    assert window.model_step == session.trainer.step
    assert window.statusBar().currentMessage() == f"loaded {path.name}: FVSBN, step {session.trainer.step}"
    assert window.training_view.image is not None and window.training_view.image.dtype == np.uint8
    assert "samples from FVSBN" in window.training_view.caption.text()


def test_save_while_training_is_done_by_the_trainer_between_steps(qtbot, window, tmp_path):
    session = start_training(qtbot, window)
    path = tmp_path / "live.safetensors"
    window.save(path)
    qtbot.waitUntil(path.is_file, timeout=5000)
    _, meta = load_checkpoint(path)
    assert meta.step > 0
    session.stop()


def _evil(marker):
    Path(marker).write_text("unpickled!")


class Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (_evil, (self.marker,))


@pytest.mark.parametrize("kind", ["pickle", "truncated", "foreign"])
def test_bad_checkpoints_show_an_error_and_lose_nothing(qtbot, window, tmp_path, kind):
    good = tmp_path / "good.safetensors"
    model = FVSBN((784,), FVSBN.info.defaults())
    save_checkpoint(good, model, step=7)
    task = window.load(good)
    qtbot.waitUntil(task.done, timeout=10000)
    before = window.model

    bad = tmp_path / "bad.safetensors"
    marker = tmp_path / "marker"
    if kind == "pickle":
        bad.write_bytes(pickle.dumps(Evil(str(marker))))
    elif kind == "truncated":
        raw = good.read_bytes()
        bad.write_bytes(raw[: len(raw) // 2])
    else:
        from safetensors.torch import save_file
        save_file({"w": torch.zeros(3)}, str(bad))
    task = window.load(bad)
    qtbot.waitUntil(task.done, timeout=10000)
    assert window.error_boxes, "an error dialog is shown"
    text = window.error_boxes[-1].text()
    assert str(bad) in text
    assert {"pickle": "pickle", "truncated": "truncated", "foreign": "another program"}[kind] in text
    assert not marker.exists(), "the file was never unpickled"
    assert window.model is before and window.model_step == 7, "the loaded model is kept"


def test_nan_during_training_stops_and_restores(qtbot, window, monkeypatch):
    real_loss = FVSBN.loss
    calls = {"n": 0}

    def flaky_loss(self, batch):
        calls["n"] += 1
        out = real_loss(self, batch)
        return out * float("nan") if calls["n"] > 25 else out

    monkeypatch.setattr(FVSBN, "loss", flaky_loss)
    session = start_training(qtbot, window)
    with qtbot.waitSignal(session.finished, timeout=20000):
        pass
    assert session.last_frame.snapshot.event == "nonfinite"
    assert window.error_boxes, "an error dialog is shown"
    text = window.error_boxes[-1].text()
    assert "loss=nan" in text and "last good weights were restored" in text, text
    assert all(torch.isfinite(p).all() for p in window.model.parameters())
    assert window.panel.train_btn.isEnabled()


def test_missing_cuda_falls_back_to_the_cpu_with_a_message(qtbot, window, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    window.panel.set_device("cuda")
    assert "CUDA" in window.statusBar().currentMessage()
    assert window.device_label.text() == "device: CPU"
    session = start_training(qtbot, window, epochs=0.2)
    with qtbot.waitSignal(session.finished, timeout=20000):
        pass
    assert str(session.trainer.device) == "cpu"
    assert any("CUDA" in b.text() for b in window.error_boxes)


def test_closing_mid_training_stops_within_2s_and_keeps_the_checkpoint(qtbot, window, tmp_path):
    session = start_training(qtbot, window, epochs=0.3)
    with qtbot.waitSignal(session.finished, timeout=30000):
        pass
    path = tmp_path / "keep.safetensors"
    qtbot.waitUntil(window.save(path).done, timeout=10000)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()

    session = start_training(qtbot, window, epochs=30)
    qtbot.waitUntil(lambda: current_step(window) > 20, timeout=10000)
    thread = session._thread
    t0 = time.perf_counter()
    window.close()
    assert time.perf_counter() - t0 < 2.0
    assert thread.isFinished()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    model, meta = load_checkpoint(path)
    assert meta.step > 0


def test_settings_are_remembered(qtbot, aloop, tmp_path, monkeypatch):
    import gui.main_window as mw

    monkeypatch.setattr(mw, "app_data_dir", lambda: tmp_path / "appdata")
    ini = str(tmp_path / "settings.ini")
    w = mw.MainWindow(settings=QSettings(ini, QSettings.Format.IniFormat))
    qtbot.addWidget(w)
    w.show()
    w.panel.set_device("cpu")
    w.panel.epochs.setValue(3.5)
    w.panel.editors["batch_size"].setValue(32)
    w.tabs.setCurrentWidget(w.playground)  # no docks: the window may be small
    qtbot.waitUntil(lambda: w.minimumSize().width() < 700, timeout=3000)
    w.resize(760, 560)  # the offscreen screen is 800x600; restoreGeometry keeps windows on it
    size = (w.width(), w.height())
    w.close()

    w2 = mw.MainWindow(settings=QSettings(ini, QSettings.Format.IniFormat))
    qtbot.addWidget(w2)
    assert w2.panel.device() == "cpu"
    assert w2.panel.epochs.value() == 3.5
    assert w2.panel.family == "fvsbn"
    assert w2.panel.hparams()["batch_size"] == 32
    assert (w2.width(), w2.height()) == size
    assert w2.tabs.currentWidget() is w2.playground


def test_keyboard_shortcuts_drive_training(qtbot, window):
    window.picker.select("fvsbn")
    window.panel.data_combo.setCurrentIndex(window.panel.data_combo.findData("bars"))
    window.panel.epochs.setValue(30)
    window.findChild(type(window.menuBar().actions()[0]), "actionTrain").trigger()
    qtbot.waitUntil(lambda: window.session is not None and window.session.frames_received > 0, timeout=20000)
    window.findChild(type(window.menuBar().actions()[0]), "actionPause").trigger()
    assert window.session.paused
    assert window.findChild(type(window.menuBar().actions()[0]), "actionTrain").shortcut().toString() == "Ctrl+Return"
    with qtbot.waitSignal(window.session.finished, timeout=3000):
        window.findChild(type(window.menuBar().actions()[0]), "actionStop").trigger()


def test_download_binarized_mnist_with_progress_then_train(qtbot, window, mnist_mirror, mnist_fixture):
    """The window downloads binarized MNIST from $GMS_DATA_MIRROR (the tests' loopback mirror of
    a small stand-in), checks it, caches it and trains on it."""
    window.panel.data_path.setText("")
    session = start_training(qtbot, window, epochs=0.2, data="binarized_mnist")
    with qtbot.waitSignal(session.finished, timeout=30000):
        pass
    assert mnist_mirror.requests == ["/binarized_mnist.npz"]
    assert (mnist_mirror.cache / "binarized_mnist.npz").is_file()
    assert window.dataset.name == "binarized_mnist"
    assert np.array_equal(window.dataset.train, mnist_fixture.train)
    assert np.array_equal(window.dataset.valid, mnist_fixture.valid)
    assert session.last_frame.snapshot.event == "finished"
    assert session.last_frame.snapshot.step == session.trainer.total_steps == 2  # 0.2 x 640 / 64


def test_evaluate_while_paused_shows_progress_and_marks_the_curve(qtbot, window):
    """Run > Evaluate works on a paused run (a copy made between two steps), moves a progress
    bar under the curves, and marks its result on them at the step evaluated; then on a stopped run."""
    session = start_training(qtbot, window, epochs=30)
    window.toggle_pause()
    qtbot.waitUntil(steady(lambda: (current_step(window), session.trainer.step)), timeout=10000)
    bar = window.training_view.eval_bar
    seen: list[int] = []
    bar.valueChanged.connect(seen.append)
    task = window.evaluate()
    assert task is not None, window.statusBar().currentMessage()
    qtbot.waitUntil(task.done, timeout=20000)
    assert task.exception() is None
    n = len(window.dataset.valid)
    assert any(0 < v < n for v in seen), seen  # it moved on the way
    assert session.running and session.paused, "training waits, paused, for the user"
    xs, ys = window.training_view.eval_marker.getData()
    assert list(xs) == [float(window.model_step)]
    with torch.no_grad():
        copy = session.trainer.request_copy().result(5)
        expected = -float(copy.log_prob(torch.from_numpy(window.dataset.valid).float()).mean())
    assert ys[0] == pytest.approx(expected, rel=1e-4)
    assert window.training_view.eval_marker.scene() is window.training_view.plot.scene()
    assert f"on {n} examples at step {window.model_step}" in window.training_view.eval_label.text()
    with qtbot.waitSignal(session.finished, timeout=5000):
        window.stop()
    task = window.evaluate()
    qtbot.waitUntil(task.done, timeout=20000)
    assert list(window.training_view.eval_marker.getData()[0]) == [float(window.model_step)]


def test_training_shows_steps_per_second_and_time_left(qtbot, window):
    """The progress bar says how fast the run goes and about how long is left, says "paused"
    while paused (without counting the pause as slowness), and rests plain once the run ends."""
    session = start_training(qtbot, window, epochs=200)
    bar = window.panel.progress
    qtbot.waitUntil(lambda: "left" in bar.format(), timeout=15000)
    rate = window.step_rate.rate
    assert re.search(r"[\d.]+ steps/s, about \d+ (s|min \d\d s|h \d\d min) left", bar.format()), bar.format()
    left = window.step_rate.seconds_left(bar.maximum())
    assert left == pytest.approx((bar.maximum() - window.step_rate._points[-1][1]) / rate)
    window.toggle_pause()
    assert "paused" in bar.format()
    with qtbot.waitSignal(session.finished, timeout=5000):
        window.stop()
    assert "left" not in bar.format() and "paused" not in bar.format()


def test_fast_preset_and_defaults_fill_the_hyperparameters(qtbot, window):
    from core.presets import FAST_EPOCHS, fast_preset

    window.picker.select("pixelcnn")
    panel = window.panel
    assert panel.fast_btn.isEnabled()
    qtbot.mouseClick(panel.fast_btn, Qt.MouseButton.LeftButton)
    assert panel.hparams() == pytest.approx(fast_preset("pixelcnn"))
    assert panel.hparams()["channels"] == 16 and panel.epochs.value() == FAST_EPOCHS
    qtbot.mouseClick(panel.defaults_btn, Qt.MouseButton.LeftButton)
    assert panel.hparams()["channels"] == 64 and panel.hparams()["blocks"] == 6
    window.picker.select("gaussian")
    assert not panel.fast_btn.isEnabled() and "no fast preset" in panel.fast_btn.toolTip()


def test_app_data_dir_names_the_app_once(qapp):
    """The autosave folder is <user data>/genmodel-sandbox, not .../genmodel-sandbox/genmodel-sandbox
    (Qt's AppDataLocation appends both the organisation and the application name)."""
    import gui.main_window as mw
    from gui import APP_NAME, ORG_NAME

    old = qapp.organizationName(), qapp.applicationName()
    qapp.setOrganizationName(ORG_NAME)
    qapp.setApplicationName(APP_NAME)
    try:
        folder = mw.app_data_dir()
    finally:
        qapp.setOrganizationName(old[0])
        qapp.setApplicationName(old[1])
    assert folder.name == APP_NAME and APP_NAME not in folder.parent.parts, folder
    assert APP_NAME not in mw.documents_dir().parent.parts


def test_save_and_load_dialogs_open_in_a_remembered_folder(qtbot, window, tmp_path, monkeypatch):
    """The first Save dialog opens in <Documents>/genmodel-sandbox (made for it), not the working
    directory; after saving elsewhere, Save and Load open where the user saved last, also in a
    new window with the same settings."""
    import gui.main_window as mw
    from PySide6.QtWidgets import QFileDialog

    asked: list[str] = []
    target = tmp_path / "elsewhere" / "mine.safetensors"
    target.parent.mkdir()
    monkeypatch.setattr(QFileDialog, "getSaveFileName",
                        staticmethod(lambda parent, title, where, filt: (asked.append(where), (str(target), ""))[1]))
    monkeypatch.setattr(QFileDialog, "getOpenFileName",
                        staticmethod(lambda parent, title, where, filt: (asked.append(where), ("", ""))[1]))
    session = start_training(qtbot, window, epochs=0.5)
    qtbot.waitUntil(lambda: not session.running, timeout=20000)
    window._ask_save()
    first = Path(asked[0])
    assert first.parent == tmp_path / "documents" and first.parent.is_dir() and first.name == "fvsbn.safetensors"
    qtbot.waitUntil(target.is_file, timeout=10000)
    window._ask_save()
    window._ask_load()
    assert Path(asked[1]).parent == target.parent and Path(asked[2]) == target.parent
    w2 = mw.MainWindow(settings=window.settings)
    qtbot.addWidget(w2)
    assert w2.checkpoint_folder() == target.parent


def test_closing_waits_for_a_step_that_outlasts_the_2s_limit(qtbot, window, monkeypatch):
    """A pass that cannot be abandoned (here a step that sleeps 3 s): closing tells the user and
    waits for it, rather than destroy a running thread (Qt then aborts the process: CI's fuzz
    closed the window while a VAE scored its held-out digits)."""
    armed, entered = threading.Event(), threading.Event()
    real = FVSBN.train_step

    def step(self, *args, **kwargs):
        if armed.is_set():
            entered.set()
            armed.clear()
            time.sleep(3.0)  # no abandon check
        return real(self, *args, **kwargs)

    monkeypatch.setattr(FVSBN, "train_step", step)
    session = start_training(qtbot, window, epochs=30)
    armed.set()
    assert entered.wait(10)
    thread = session._thread
    window.close()
    assert thread.isFinished()
    assert "finishing a step" in window.statusBar().currentMessage()
