"""Issue 14, "no stale or contradictory state": what a tab shows describes what is there now.
Driven offscreen in the real window."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QApplication


def settle(qtbot, ms: int = 50) -> None:
    QApplication.processEvents()
    qtbot.wait(ms)
    QApplication.processEvents()


# -- Density playground -----------------------------------------------------------------------

def test_playground_table_goes_with_its_data_set(qtbot, window):
    window.tabs.setCurrentWidget(window.playground)
    p = window.playground
    p.set_combo.setCurrentIndex(p.set_combo.findData("8gaussians"))
    p.set_checked(["kde"])
    p.steps_spin.setValue(20)
    session = p.play()
    with qtbot.waitSignal(session.finished, timeout=60000):
        pass
    p._repaint()
    assert p.comparison.table.rowCount() == 1 and p.table_rows()[0][1]
    p.clear_points()  # new, painted data: the old set's results must go
    settle(qtbot, 400)
    p._repaint()
    assert p.comparison.table.rowCount() == 0 and p.table_rows() == [] and p.comparison.nll_lines == []


def test_painted_points_survive_a_restart(qtbot, aloop, tmp_path, monkeypatch):
    import gui.main_window as mw

    monkeypatch.setattr(mw, "app_data_dir", lambda: tmp_path / "appdata")
    ini = str(tmp_path / "settings.ini")
    w = mw.MainWindow(settings=QSettings(ini, QSettings.Format.IniFormat))
    qtbot.addWidget(w)
    csv = tmp_path / "pts.csv"
    pts = np.random.default_rng(1).normal(size=(40, 2)).astype(np.float32)
    np.savetxt(csv, pts, delimiter=",")
    assert w.playground.import_csv(str(csv))
    assert w.playground.set_name == "painted"
    w.close()

    w2 = mw.MainWindow(settings=QSettings(ini, QSettings.Format.IniFormat))
    qtbot.addWidget(w2)
    p = w2.playground
    assert p.set_name == "painted"
    got = np.concatenate([p.dataset.train, p.dataset.valid])
    assert got.shape == pts.shape
    np.testing.assert_allclose(np.sort(got, 0), np.sort(pts, 0), atol=1e-5)
    w2.close()
    # without the kept points the set does not claim to be the painted one
    (tmp_path / "playground-points.npy").unlink()
    w3 = mw.MainWindow(settings=QSettings(ini, QSettings.Format.IniFormat))
    qtbot.addWidget(w3)
    assert w3.playground.set_name != "painted" and w3.playground.dataset is not None
    assert "not found" in w3.statusBar().currentMessage()


# -- Canvas -----------------------------------------------------------------------------------

from test_canvas import H, W, choose, panel, readouts, wait, weights  # noqa: E402,F401  (fixtures)


def nll_of(entry, image) -> float:
    import torch

    x = torch.from_numpy(image.astype(np.float32))[None]
    with torch.no_grad():
        return -float(entry.model.log_prob(x))


def test_candidates_go_with_the_drawing_they_complete(qtbot, panel):
    choose(panel, "nade")
    panel.random_digit(3)
    wait(qtbot, panel.complete())
    assert panel.candidates is not None and panel.grid.tiles is not None
    panel.clear()
    assert panel.candidates is None and panel.grid.tiles is None and panel.canvas.ghost is None
    panel.random_digit(4)
    wait(qtbot, panel.complete())
    panel.random_digit(5)
    assert panel.candidates is None and panel.grid.tiles is None
    wait(qtbot, panel.complete())
    panel.use_candidate(1)  # taking one keeps the others: they complete the same rows
    assert panel.candidates is not None and panel.grid.tiles is not None


def test_readouts_describe_the_candidate_shown(qtbot, panel):
    e = choose(panel, "nade")
    panel.random_digit(7)
    panel.row_spin.setValue(10)
    drawing = panel.state.image.copy()
    wait(qtbot, panel.complete())
    for i in (0, 2):
        panel._on_tile_clicked(i)
        readouts(qtbot, panel)
        shown = drawing.copy()
        shown[10:] = panel.candidates[i][10:]
        assert panel.readouts_view.total_nll == pytest.approx(nll_of(e, shown), abs=2e-3)
        assert panel.readouts_view.total_nll != pytest.approx(nll_of(e, drawing), abs=1e-3)


def test_region_tools_only_for_a_model_that_can_fill_a_region(qtbot, panel):
    choose(panel, "nade")
    region = panel.tool_buttons["region"]
    assert not region.isEnabled() and "raster order" in region.toolTip()
    assert not panel.tool_buttons["unregion"].isEnabled() and not panel.draw_box.clear_region_btn.isEnabled()
    choose(panel, "made")
    assert region.isEnabled() and "raster" not in region.toolTip()
    panel.set_tool("region")
    assert panel.state.tool == "region"
    choose(panel, "nade")  # the region tool goes with the model that had it: no region stroke becomes ink
    assert panel.state.tool == "pen" and panel.tool_buttons["pen"].isChecked()


def test_training_tab_model_on_the_canvas_shows_its_step_and_nll(qtbot, window, weights):
    import torch

    from core import registry
    from core.control import Frame
    from core.evaluation import NLL
    from core.protocol import Visuals
    from core.readouts import TRAINING_KEY
    from core.training import Snapshot

    c = window.canvas
    c.weights_dir = weights
    window.model = registry.create("nade", (H * W,), hidden=4)
    window.model_step = 17
    window.tabs.setCurrentWidget(window.canvas_scroll)
    qtbot.waitUntil(lambda: c.loaded and any(e.key == TRAINING_KEY for e in c.entries), timeout=20000)
    with torch.no_grad():
        window.model.W.add_(0.01)
    snap = Snapshot(step=400, total_steps=1000, epoch=4.0, loss=90.0, event="eval",
                    nll=NLL.of(88.25, H * W, False))
    window._on_frame(Frame(snap, np.zeros((0, 2)), Visuals(), 0))
    qtbot.waitUntil(lambda: "step 400" in next(e for e in c.entries if e.key == TRAINING_KEY).name, timeout=10000)
    trained = next(e for e in c.entries if e.key == TRAINING_KEY)
    assert "valid NLL 88.25 nats" in trained.label and "unknown" not in trained.label
    torch.testing.assert_close(trained.model.W, window.model.W)


# -- Training tab -----------------------------------------------------------------------------

def test_a_loaded_checkpoint_leaves_nothing_of_the_previous_model(qtbot, window, weights, monkeypatch):
    window.training_view.show_samples(np.random.default_rng(0).random((16, H * W)), (H, W), "samples from FVSBN")
    window.panel.progress.setRange(0, 1000)  # a run of another model
    window.panel.progress.setValue(813)
    window.step_label.setText("step 813  epoch 1.04")
    monkeypatch.setattr(window, "_sample", lambda model, shape: None)  # no samples come: none may stay
    window._fine_tune(str(weights / "nade.safetensors"))
    assert window.tabs.currentIndex() == 0  # the Training tab
    qtbot.waitUntil(lambda: window.model is not None and window.model.info.key == "nade", timeout=20000)
    assert window.training_view.image is None and "FVSBN" not in window.training_view.caption.text()
    assert "813" not in window.panel.progress.text() and "loaded at step 0" in window.panel.progress.text()
    assert window.step_label.text().startswith("step 0 ")


def test_progress_never_counts_another_data_set(qtbot, window):
    assert "/" not in window.panel.progress.text()  # no "0 / 100 steps" before any run
    window.panel.progress.setRange(0, 100)  # a run on one data set...
    window.panel.progress.setValue(40)
    window.panel.data_combo.setCurrentIndex(window.panel.data_combo.findData("bars"))
    other = next(i for i in range(window.panel.data_combo.count()) if window.panel.data_combo.itemData(i) != "bars")
    window.panel.data_combo.setCurrentIndex(other)  # ...then another is picked
    assert "/" not in window.panel.progress.text() and "no run on" in window.panel.progress.text()


def test_a_saved_checkpoint_records_the_fractional_epoch(qtbot, window, tmp_path):
    from core.checkpoint import read_checkpoint_meta

    window.picker.select("fvsbn")
    window.panel.data_combo.setCurrentIndex(window.panel.data_combo.findData("bars"))
    window.panel.epochs.setValue(30)
    qtbot.mouseClick(window.panel.train_btn, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.session is not None and window.model_step >= 5, timeout=30000)
    with qtbot.waitSignal(window.session.finished, timeout=5000):
        window.stop()
    trainer = window.session.trainer
    assert window.model_step == trainer.step
    path = tmp_path / "fvsbn.safetensors"
    task = window.save(path)
    qtbot.waitUntil(lambda: task.done() and path.exists(), timeout=10000)
    meta = read_checkpoint_meta(path)
    assert meta.step == trainer.step
    assert meta.epoch == pytest.approx(trainer.step / trainer.steps_per_epoch) and meta.epoch > 0


def test_sequences_tab_follows_the_training_model_as_it_trains(qtbot, window):
    import torch

    from core import registry
    from core.control import Frame
    from core.protocol import DataKind
    from core.evaluation import NLL
    from core.protocol import Visuals
    from core.training import Snapshot

    window.model = registry.create("wavenet", (32,), DataKind.SEQUENCE, levels=8, channels=4, skip_channels=4,
                                   layers=3, stacks=1)
    window.model_step = 10
    window.tabs.setCurrentWidget(window.sequences)
    qtbot.waitUntil(lambda: "step 10" in window.sequences.model_label.text(), timeout=10000)
    with torch.no_grad():
        next(window.model.parameters()).add_(0.1)
    snap = Snapshot(step=200, total_steps=1000, epoch=2.0, loss=1.0, event="eval", nll=NLL.of(1.0, 32, False))
    window._on_frame(Frame(snap, np.zeros((0, 2)), Visuals(), 0))
    qtbot.waitUntil(lambda: "step 200" in window.sequences.model_label.text(), timeout=10000)
    torch.testing.assert_close(next(window.sequences.model.parameters()), next(window.model.parameters()))


def test_a_hyperparameter_form_holds_the_value_the_model_uses(qtbot):
    """A small default in a wide range (a mixture's reg_covar, 1e-6 in [0, 10]) showed as
    0.000, and a model trained from the form got 0: singular covariances."""
    from core import registry
    from gui.hparam_editors import editor_value, make_editor

    for key in ("gmm", "gaussian"):
        h = next(h for h in registry.info(key).hparams if h.name == "reg_covar")
        assert editor_value(make_editor(h)) == pytest.approx(h.default, rel=1e-6) and h.default > 0


def test_training_samples_name_the_model_they_are_of(qtbot):
    from core.control import Frame
    from core.protocol import Visuals
    from core.training import Snapshot
    from gui.training_view import TrainingView

    view = TrainingView(fps=60)
    qtbot.addWidget(view)
    view.subject = "NADE"  # the picker may show another model meanwhile: the caption says whose they are
    snap = Snapshot(step=5, total_steps=10, epoch=0.5, loss=1.0, event="step", image_shape=(H, W))
    view.push(Frame(snap, np.zeros((0, 2)), Visuals(samples=np.zeros((4, H * W), np.float32)), 0))
    assert "samples of NADE at step 5" in view.caption.text()
