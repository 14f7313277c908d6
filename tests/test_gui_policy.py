"""The Training tab, offscreen: the schedule chosen there is the one the trainer uses, it is
shown and remembered; training goes on with the same model unless a structural hyperparameter
changed."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from core.policy import lr_at


def _train(qtbot, window) -> None:
    old = window.session
    qtbot.mouseClick(window.panel.train_btn, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.session is not old and window.session.last_frame is not None
                    and not window.session.running and window.panel.train_btn.isEnabled(), timeout=60000)


def test_a_cosine_schedule_chosen_in_the_training_tab_sets_the_trainers_rate(qtbot, window):
    panel = window.panel
    window.picker.select("fvsbn")
    panel.data_combo.setCurrentIndex(panel.data_combo.findData("bars"))
    panel.epochs.setValue(0.5)
    panel.editors["lr"].setValue(0.01)
    assert panel.schedule_combo.currentData() == "constant"

    _train(qtbot, window)  # constant: the model's own rate throughout
    first = window.session.trainer
    assert first.model.optimizer.param_groups[0]["lr"] == pytest.approx(0.01)
    assert panel.lr_label.text() == "learning rate now: 0.01"

    panel.schedule_combo.setCurrentIndex(panel.schedule_combo.findData("cosine"))
    panel.warmup.setValue(5)
    # between runs the planned curve is drawn: warm-up, then down to 2 % of the rate
    lrs = panel.lr_curve.lrs
    assert lrs[0] == pytest.approx(0.002) and max(lrs) == pytest.approx(0.01, rel=0.01)
    assert lrs[-1] == pytest.approx(0.0002, rel=0.1)

    _train(qtbot, window)  # the same model trains on: its schedule spans this run's steps
    trainer = window.session.trainer
    start, total = first.step, trainer.total_steps
    assert trainer.model is first.model and start > 0 and window.session.last_frame.snapshot.step == total
    n = total - start
    # the optimizer holds the rate of the run's last step: the cosine's end, not the base rate
    used = trainer.model.optimizer.param_groups[0]["lr"]
    assert used == pytest.approx(lr_at(n - 1, n, 0.01, "cosine", 5)) and used < 0.001
    # the window shows the rate the schedule has reached, and where on the curve training is
    assert panel.lr_label.text() == f"learning rate now: {lr_at(n, n, 0.01, 'cosine', 5):.3g}"
    assert panel.lr_curve.marker == total and panel.lr_curve.steps[0] == start

    window.save_settings()
    from gui.main_window import MainWindow

    again = MainWindow(settings=window.settings)
    qtbot.addWidget(again)
    assert again.panel.schedule_combo.currentData() == "cosine" and again.panel.warmup.value() == 5


def test_training_goes_on_unless_a_structural_hyperparameter_changed(qtbot, window):
    panel = window.panel
    window.picker.select("fvsbn")
    panel.data_combo.setCurrentIndex(panel.data_combo.findData("bars"))
    panel.epochs.setValue(0.2)
    _train(qtbot, window)
    model, step = window.model, window.model_step
    assert step > 0

    panel.editors["batch_size"].setValue(32)  # how it trains, not what it is: the model trains on
    panel.editors["lr"].setValue(0.002)
    _train(qtbot, window)
    assert window.model is model and window.session.runs[0].start == step and window.model_step > step
    assert model.hparams["batch_size"] == 32 and model.hparams["lr"] == 0.002

    panel.editors["weight_decay"].setValue(0.001)  # shapes the model: a new one, from step 0
    _train(qtbot, window)
    assert window.model is not model and window.session.runs[0].start == 0
    assert window.model.hparams["weight_decay"] == 0.001


def test_the_model_cannot_change_while_its_data_loads(qtbot, window):
    """Found by the reliability fuzz: picking another model while Train was loading the data
    set gave the run the new model's schedule (a fitted KDE got a cosine: "Training failed:
    lr cannot change while training") and left the form showing a model that was not training."""
    panel = window.panel
    window.picker.select("fvsbn")
    panel.schedule_combo.setCurrentIndex(panel.schedule_combo.findData("cosine"))
    window.picker.select("kde")
    panel.data_combo.setCurrentIndex(panel.data_combo.findData("8gaussians"))
    panel.epochs.setValue(0.05)
    assert panel.policy().schedule == "constant", "a fitted model has no rate to schedule"
    failures = []
    window.show_error = lambda title, message, details=None: failures.append((title, message))
    task = window.train()
    assert task is not None
    window.picker.select("fvsbn")  # before the data set has loaded
    assert panel.family == "kde", "the form stays on the model that is starting"
    qtbot.waitUntil(lambda: window.session is not None and not window.session.running
                    and window.session.last_frame is not None, timeout=30000)
    assert failures == []
    assert window.session.trainer.model.info.key == "kde"
    assert window.session.runs[0].policy.schedule == "constant"
