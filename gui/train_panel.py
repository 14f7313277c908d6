"""Right-hand panel: data set, device, hyperparameters (from the registry) and run controls."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Signal, Slot
from PySide6.QtWidgets import (QComboBox, QDoubleSpinBox, QFormLayout, QGroupBox,
                               QHBoxLayout, QLineEdit, QProgressBar, QPushButton, QSpinBox,
                               QToolButton, QVBoxLayout, QWidget)

from core import data as datasets
from core import registry
from gui.hparam_editors import changed_signal, editor_value, make_editor, set_editor_value


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

        self.hp_box = QGroupBox("Hyperparameters")
        self.hp_form = QFormLayout(self.hp_box)

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
        self.progress.setFormat("%p%  (%v / %m steps)")
        self.progress.setValue(0)

        run_row = QHBoxLayout()
        for b in (self.train_btn, self.pause_btn, self.step_btn, self.stop_btn):
            run_row.addWidget(b)
        file_row = QHBoxLayout()
        file_row.addWidget(self.save_btn)
        file_row.addWidget(self.load_btn)

        layout = QVBoxLayout(self)
        layout.addWidget(data_box)
        layout.addWidget(self.hp_box)
        layout.addLayout(run_row)
        layout.addWidget(self.progress)
        layout.addLayout(file_row)
        layout.addStretch(1)
        self.set_state("idle")

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
        current = self.data_combo.currentData()
        self.data_combo.clear()
        for d in datasets.DATASETS.values():
            if d.kind in info.data_kinds and (d.labelled or not info.conditional):  # labels needed?
                self.data_combo.addItem(d.description, d.name)
        i = self.data_combo.findData(current)
        self.data_combo.setCurrentIndex(max(0, i))

    def hparams(self) -> dict[str, Any]:
        return {name: editor_value(w) for name, w in self.editors.items()}

    def set_hparams(self, values: dict[str, Any]) -> None:
        for name, v in values.items():
            if name in self.editors:
                set_editor_value(self.editors[name], v)

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
        info = registry.info(self.family) if self.family else None
        live = {h.name for h in info.all_hparams() if h.live} if info else set()
        for name, w in self.editors.items():
            w.setEnabled(not busy or name in live)
