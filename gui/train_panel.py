"""Right-hand panel: data set, device, hyperparameters (from the registry) and run controls."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QEvent, QObject, QSettings, QSize, Qt, Signal, Slot
from PySide6.QtWidgets import (QComboBox, QDoubleSpinBox, QFormLayout, QFrame, QGroupBox, QHBoxLayout, QLabel,
                               QLineEdit, QProgressBar, QPushButton, QScrollArea, QSizePolicy, QSpinBox,
                               QToolButton, QVBoxLayout, QWidget)

from core import data as datasets
from core import registry
from core.policy import TrainingPolicy
from core.presets import FAST_EPOCHS, fast_preset
from core.protocol import Likelihood
from gui.hparam_editors import changed_signal, editor_value, make_editor, set_editor_value
from gui.lr_curve import LRCurve
from gui.style import SteadyLabel

#: steps of the schedule drawn before a run says how long it is
PREVIEW_STEPS = 1000


class _FitScroll(QScrollArea):
    """Scrolls its widget up and down only when the panel is too short for it (a model with many
    hyperparameters must not make the window taller than a screen); otherwise as tall as it."""

    def __init__(self, widget: QWidget):
        super().__init__(objectName="formsScroll")
        self.setWidget(widget)
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Preferred)
        widget.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.widget() and event.type() == QEvent.Type.LayoutRequest:
            self.updateGeometry()  # the form changed (another model's rows): so does this size
        return super().eventFilter(watched, event)

    def sizeHint(self) -> QSize:
        return self.widget().sizeHint()

    def minimumSizeHint(self) -> QSize:
        bar = self.verticalScrollBar().sizeHint().width()
        return QSize(self.widget().minimumSizeHint().width() + bar, 120)


class TrainPanel(QWidget):
    train_clicked = Signal()
    pause_clicked = Signal()
    step_clicked = Signal()
    stop_clicked = Signal()
    save_clicked = Signal()
    load_clicked = Signal()
    live_changed = Signal(str, object)  # a live hyperparameter edited (while training)
    browse_clicked = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.family: str | None = None
        self.editors: dict[str, QWidget] = {}
        self._can_schedule = self._can_stop_early = True

        self.data_combo = QComboBox(objectName="dataCombo")
        self.data_path = QLineEdit(objectName="dataPath")
        self.data_path.setPlaceholderText("file (.npz) or folder (MNIST digits) or empty: download / cache")
        browse = QToolButton(text="…", objectName="browseData")
        browse.clicked.connect(self.browse_clicked)
        path_row = QHBoxLayout()
        path_row.addWidget(self.data_path, 1)
        path_row.addWidget(browse)
        self.device_combo = QComboBox(objectName="deviceCombo")
        for label, value in (("Auto (CUDA if present)", "auto"), ("CPU", "cpu"), ("CUDA", "cuda")):
            self.device_combo.addItem(label, value)
        self.epochs = QDoubleSpinBox(objectName="epochs", decimals=2, minimum=0.01, maximum=1000, value=5)
        self.seed = QSpinBox(objectName="seed", minimum=0, maximum=2**31 - 1, value=0)

        data_box = QGroupBox("Data and run")
        form = QFormLayout(data_box)
        form.addRow("Data set", self.data_combo)
        form.addRow("File", path_row)
        form.addRow("Device", self.device_combo)
        form.addRow("Epochs", self.epochs)
        form.addRow("Seed", self.seed)

        self.hp_box = self._hparam_box()
        self.policy_box = self._policy_box()

        self.train_btn = QPushButton("Train", objectName="trainButton")
        self.pause_btn = QPushButton("Pause", objectName="pauseButton")
        self.step_btn = QPushButton("Step", objectName="stepButton")
        self.stop_btn = QPushButton("Stop", objectName="stopButton")
        self.save_btn = QPushButton("Save…", objectName="saveButton")
        self.load_btn = QPushButton("Load…", objectName="loadButton")
        for b, sig in ((self.train_btn, self.train_clicked), (self.pause_btn, self.pause_clicked),
                       (self.step_btn, self.step_clicked), (self.stop_btn, self.stop_clicked),
                       (self.save_btn, self.save_clicked), (self.load_btn, self.load_clicked)):
            b.clicked.connect(sig)
        self.train_btn.setToolTip("Train (Ctrl+Return)")
        self.pause_btn.setToolTip("Pause / resume (Ctrl+P)")
        self.step_btn.setToolTip("One step while paused (Ctrl+.)")
        self.stop_btn.setToolTip("Stop at the next step (Ctrl+Shift+X)")
        self.progress = QProgressBar(objectName="trainProgress")
        self.progress_note("no run yet")

        run_row = QHBoxLayout()
        for b in (self.train_btn, self.pause_btn, self.step_btn, self.stop_btn):
            run_row.addWidget(b)
        file_row = QHBoxLayout()
        file_row.addWidget(self.save_btn)
        file_row.addWidget(self.load_btn)

        forms = QWidget(objectName="trainForms")
        forms_layout = QVBoxLayout(forms)
        forms_layout.setContentsMargins(0, 0, 0, 0)
        for box in (data_box, self.hp_box, self.policy_box):
            forms_layout.addWidget(box)
        self.forms_scroll = _FitScroll(forms)
        layout = QVBoxLayout(self)
        # the forms take the room left: the run buttons stay at the bottom whatever the model's
        # number of hyperparameters
        layout.addWidget(self.forms_scroll, 1)
        layout.addLayout(run_row)
        layout.addWidget(self.progress)
        layout.addLayout(file_row)
        self.set_state("idle")

    def _hparam_box(self) -> QGroupBox:
        """The model's hyperparameters (rows made by :meth:`set_family`) under two presets."""
        box = QGroupBox("Hyperparameters")
        layout = QVBoxLayout(box)
        self.defaults_btn = QPushButton("Defaults", objectName="presetDefaults")
        self.defaults_btn.setToolTip("the registry's defaults: sized for good results (slow on a CPU)")
        self.fast_btn = QPushButton("Fast preset", objectName="presetFast")
        self.defaults_btn.clicked.connect(self.apply_defaults)
        self.fast_btn.clicked.connect(self.apply_fast_preset)
        row = QHBoxLayout()
        row.addWidget(QLabel("Preset"))
        row.addWidget(self.defaults_btn)
        row.addWidget(self.fast_btn)
        layout.addLayout(row)
        self.hp_form = QFormLayout()
        layout.addLayout(self.hp_form)
        return box

    def _policy_box(self) -> QGroupBox:
        """Learning-rate schedule, warm-up and early stopping (a :class:`TrainingPolicy`), with
        the planned curve and the rate in use."""
        self.schedule_combo = QComboBox(objectName="scheduleCombo")
        self.schedule_combo.addItem("Constant", "constant")
        self.schedule_combo.addItem("Cosine decay (to 2 %)", "cosine")
        self.warmup = QSpinBox(objectName="warmupSteps", minimum=0, maximum=10_000_000, suffix=" steps")
        self.warmup.setToolTip("linear warm-up of the learning rate over the first steps of a run")
        self.patience = QSpinBox(objectName="patience", minimum=0, maximum=10_000, specialValueText="off")
        self.patience.setToolTip("stop after this many held-out evaluations (every 200 steps) "
                                 "without a better NLL")
        self.lr_label = SteadyLabel("", 1, objectName="lrLabel")  # its text changes every frame: no relayout
        self.lr_curve = LRCurve()
        box = QGroupBox("Schedule and early stopping")
        form = QFormLayout(box)
        form.addRow("Learning rate", self.schedule_combo)
        row = QHBoxLayout()
        row.addWidget(self.warmup, 1)
        row.addWidget(QLabel("Patience"))
        row.addWidget(self.patience, 1)
        form.addRow("Warm-up", row)
        form.addRow(self.lr_curve)
        form.addRow(self.lr_label)
        for sig in (self.schedule_combo.currentIndexChanged, self.warmup.valueChanged):
            sig.connect(self._preview_schedule)
        return box

    # -- training policy -------------------------------------------------------------------------
    def policy(self) -> TrainingPolicy:
        """The policy chosen, less what the model cannot use (a fitted model has no learning rate
        to schedule, a model without a likelihood no held-out NLL to stop on)."""
        return TrainingPolicy(schedule=self.schedule_combo.currentData() if self._can_schedule else "constant",
                              warmup=self.warmup.value() if self._can_schedule else 0,
                              patience=self.patience.value() if self._can_stop_early else 0)

    def set_policy(self, policy: TrainingPolicy) -> None:
        self.schedule_combo.setCurrentIndex(max(0, self.schedule_combo.findData(policy.schedule)))
        self.warmup.setValue(int(policy.warmup))
        self.patience.setValue(int(policy.patience))

    def save_policy(self, settings: QSettings) -> None:
        settings.setValue("run/schedule", self.schedule_combo.currentData())
        settings.setValue("run/warmup", self.warmup.value())
        settings.setValue("run/patience", self.patience.value())

    def restore_policy(self, settings: QSettings) -> None:
        try:
            self.set_policy(TrainingPolicy(schedule=str(settings.value("run/schedule", "constant")),
                                           warmup=int(settings.value("run/warmup", 0)),
                                           patience=int(settings.value("run/patience", 0))))
        except (TypeError, ValueError):
            pass  # not a policy (a settings file from elsewhere): the defaults stay

    def _base_lr(self) -> float:
        w = self.editors.get("lr")
        return float(editor_value(w)) if w is not None else 1e-3

    @Slot()
    def _preview_schedule(self, *_args) -> None:
        """Between runs: the schedule the choices make, over a nominal run."""
        if self.train_btn.isEnabled():
            policy, base = self.policy(), self._base_lr()
            self.show_schedule(*policy.curve(PREVIEW_STEPS, base))
            self.show_lr(None, policy.lr_at(0, PREVIEW_STEPS, base))

    def show_schedule(self, steps, lrs) -> None:
        """Draw a run's planned learning rates, (step, lr) points."""
        self.lr_curve.set_curve(steps, lrs)

    def show_lr(self, step: int | None, lr: float) -> None:
        """The learning rate in use (``step``: where training is, None between runs)."""
        self.lr_label.setText(f"learning rate {'now' if step is not None else 'at the start'}: {lr:.3g}")
        self.lr_curve.set_marker(step)

    # -- model -----------------------------------------------------------------------------------
    def set_family(self, key: str) -> None:
        self.family = key
        info = registry.info(key)
        while self.hp_form.rowCount():
            self.hp_form.removeRow(0)
        self.editors = {}
        for h in info.all_hparams():
            w = make_editor(h)
            self.editors[h.name] = w
            self.hp_form.addRow(h.name + (" (live)" if h.live else ""), w)
        for h in info.all_hparams():
            if h.live:
                w = self.editors[h.name]
                changed_signal(w).connect(self._on_live)
        if "lr" in self.editors:
            changed_signal(self.editors["lr"]).connect(self._preview_schedule)
        lr_spec = next((h for h in info.all_hparams() if h.name == "lr"), None)
        self._can_schedule = lr_spec is not None and lr_spec.live  # fitted models have no rate to move
        self._can_stop_early = info.likelihood is not Likelihood.NONE
        current = self.data_combo.currentData()
        self.data_combo.clear()
        for d in datasets.DATASETS.values():
            if d.kind in info.data_kinds and (d.labelled or not info.conditional):  # labels needed?
                self.data_combo.addItem(d.description, d.name)
        i = self.data_combo.findData(current)
        self.data_combo.setCurrentIndex(max(0, i))
        self._preview_schedule()
        self._update_presets(busy=not self.train_btn.isEnabled())

    def _update_presets(self, busy: bool) -> None:
        fast = self.family is not None and fast_preset(self.family) is not None
        self.fast_btn.setEnabled(fast and not busy)
        self.fast_btn.setToolTip(f"a small model that shows learning within a minute on a CPU ({FAST_EPOCHS:g} epoch)"
                                 if fast else "no fast preset: this model is not an image model, and fast already")
        self.defaults_btn.setEnabled(self.family is not None and not busy)

    def hparams(self) -> dict[str, Any]:
        return {name: editor_value(w) for name, w in self.editors.items()}

    def set_hparams(self, values: dict[str, Any]) -> None:
        for name, v in values.items():
            if name in self.editors:
                set_editor_value(self.editors[name], v)

    @Slot()
    def apply_defaults(self) -> None:
        """Every hyperparameter back to the registry's default."""
        if self.family is not None:
            self.set_hparams({h.name: h.default for h in registry.info(self.family).all_hparams()})

    @Slot()
    def apply_fast_preset(self) -> None:
        """The family's fast preset (see :mod:`core.presets`) and a short run."""
        preset = fast_preset(self.family) if self.family is not None else None
        if preset is not None:
            self.set_hparams(preset)
            self.epochs.setValue(FAST_EPOCHS)

    def data_name(self) -> str | None:
        return self.data_combo.currentData()

    def device(self) -> str:
        return self.device_combo.currentData()

    def set_device(self, value: str) -> None:
        i = self.device_combo.findData(value)
        if i >= 0:
            self.device_combo.setCurrentIndex(i)

    @Slot()
    def _on_live(self, *_args) -> None:
        w = self.sender()
        name = next((n for n, e in self.editors.items() if e is w), None)
        if name is not None:
            self.live_changed.emit(name, editor_value(w))

    # -- state -----------------------------------------------------------------------------------
    def progress_note(self, text: str) -> None:
        """No run to count: the bar says ``text`` rather than a count left from another run."""
        self.progress.setFormat(text)
        self.progress.setRange(0, 1)
        self.progress.setValue(0)

    def start_progress(self, start: int, total: int) -> None:
        """A run from step ``start`` to ``total``."""
        self.progress.setFormat("%p%  (%v / %m steps)")
        self.progress.setRange(0, total)
        self.progress.setValue(start)

    def set_state(self, state: str) -> None:
        """``idle``, ``running`` or ``paused``: what can be pressed and edited."""
        busy = state != "idle"
        self.train_btn.setEnabled(not busy)
        self.pause_btn.setEnabled(busy)
        self.pause_btn.setText("Resume" if state == "paused" else "Pause")
        self.step_btn.setEnabled(busy)
        self.stop_btn.setEnabled(busy)
        self.load_btn.setEnabled(not busy)
        for w in (self.data_combo, self.data_path, self.device_combo, self.epochs, self.seed):
            w.setEnabled(not busy)
        for w in (self.schedule_combo, self.warmup):
            w.setEnabled(not busy and self._can_schedule)
        self.patience.setEnabled(not busy and self._can_stop_early)
        info = registry.info(self.family) if self.family else None
        live = {h.name for h in info.all_hparams() if h.live} if info else set()
        for name, w in self.editors.items():
            w.setEnabled(not busy or name in live)
        self._update_presets(busy)
