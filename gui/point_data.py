"""The density playground's data controls: a built-in 1D/2D toy set (points, noise, seed) or
points painted with a brush (undo, redo, clear) or imported from CSV. The widget owns the data
set and the paint buffer and says when either changes; the panel draws them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np
from PySide6.QtCore import QTimer, Signal, Slot
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout, QGroupBox,
                               QHBoxLayout, QLineEdit, QPushButton, QSpinBox, QVBoxLayout, QWidget)

from core import data as datasets
from core.data import toy
from core.data.paint import PaintBuffer
from core.data.points import read_csv, write_csv

PAINTED = "painted"


class PointDataControls(QWidget):
    """The "Data" and "Paint your own" boxes. ``busy()`` says when training forbids a change."""

    error = Signal(str, str)  # title, message
    status = Signal(str)
    #: the data set changed: the new one, or None and the points' dimension when the painted or
    #: imported points cannot make one (too few)
    dataset_changed = Signal(object, int)
    #: points to show in the data tile now (while painting; the data set follows after a pause)
    points_drawn = Signal(object)

    def __init__(self, busy: Callable[[], bool], parent: QWidget | None = None):
        super().__init__(parent)
        self.busy = busy
        self.dataset: datasets.Dataset | None = None
        self.paint: PaintBuffer | None = None
        #: the bounds the data view shows: painted points keep them (None before the first data set)
        self.view_bounds = None
        #: painted points become the data set after a pause in painting (cheap, not per dab)
        self._pending_points: np.ndarray | None = None
        self._commit_timer = QTimer(self, singleShot=True, interval=300)
        self._commit_timer.timeout.connect(self._commit_points)
        self._stroke_started = False
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self._build_data_box())
        layout.addWidget(self._build_paint_box())

    def _build_data_box(self) -> QGroupBox:
        self.set_combo = QComboBox(objectName="toySet")
        for spec in toy.TOY_SETS.values():
            self.set_combo.addItem(f"{spec.name} ({spec.dim}D)", spec.name)
        self.set_combo.addItem("painted / imported points", PAINTED)
        self.set_combo.setCurrentIndex(self.set_combo.findData("8gaussians"))
        self.n_spin = QSpinBox(objectName="toyN", minimum=1, maximum=200_000, value=2000, singleStep=500)
        self.noise_spin = QDoubleSpinBox(objectName="toyNoise", decimals=3, minimum=0.0, maximum=5.0, singleStep=0.05)
        self.noise_default = QCheckBox("default", objectName="toyNoiseDefault", checked=True)
        self.seed_spin = QSpinBox(objectName="toySeed", minimum=0, maximum=2**31 - 1)
        self.integers = QLineEdit("1 2 2 3 3 3 4 4 5 7", objectName="integersText")
        resample = QPushButton("Resample", objectName="resampleButton")
        resample.clicked.connect(self.resample)
        self.set_combo.currentIndexChanged.connect(self._on_set_changed)
        noise_row = QHBoxLayout()
        noise_row.addWidget(self.noise_spin, 1)
        noise_row.addWidget(self.noise_default)
        data_box = QGroupBox("Data")
        f = QFormLayout(data_box)
        f.addRow("Set", self.set_combo)
        f.addRow("Points", self.n_spin)
        f.addRow("Noise", noise_row)
        f.addRow("Seed", self.seed_spin)
        f.addRow("Integers", self.integers)
        f.addRow(resample)
        return data_box

    def _build_paint_box(self) -> QGroupBox:
        self.paint_btn = QPushButton("Paint", objectName="paintButton", checkable=True)
        self.paint_btn.setToolTip("Drag on the data view to add points (P)")
        self.erase_box = QCheckBox("Erase", objectName="eraseBox")
        self.radius_spin = QDoubleSpinBox(objectName="brushRadius", decimals=2, minimum=0.01, maximum=10, value=0.3,
                                          singleStep=0.05)
        self.intensity_spin = QSpinBox(objectName="brushIntensity", minimum=1, maximum=500, value=20)
        self.undo_btn = QPushButton("Undo", objectName="undoButton")
        self.redo_btn = QPushButton("Redo", objectName="redoButton")
        clear_btn = QPushButton("Clear", objectName="clearButton")
        imp = QPushButton("Import CSV…", objectName="importButton")
        exp = QPushButton("Export CSV…", objectName="exportButton")
        self.paint_btn.toggled.connect(self._on_paint_toggled)
        self.undo_btn.clicked.connect(self.undo)
        self.redo_btn.clicked.connect(self.redo)
        clear_btn.clicked.connect(self.clear_points)
        imp.clicked.connect(self._ask_import)
        exp.clicked.connect(self._ask_export)
        paint_box = QGroupBox("Paint your own")
        f = QFormLayout(paint_box)
        row = QHBoxLayout()
        row.addWidget(self.paint_btn)
        row.addWidget(self.erase_box)
        f.addRow(row)
        f.addRow("Brush radius", self.radius_spin)
        f.addRow("Points per dab", self.intensity_spin)
        row = QHBoxLayout()
        for b in (self.undo_btn, self.redo_btn, clear_btn):
            row.addWidget(b)
        f.addRow(row)
        row = QHBoxLayout()
        row.addWidget(imp)
        row.addWidget(exp)
        f.addRow(row)
        return paint_box

    # -- data ------------------------------------------------------------------------------------
    @property
    def set_name(self) -> str:
        return self.set_combo.currentData()

    @Slot(int)
    def _on_set_changed(self, _i: int) -> None:
        name = self.set_name
        if name != PAINTED:
            spec = toy.TOY_SETS[name]
            self.noise_spin.setValue(float(toy.resolve_noise(name)))
            self.integers.setEnabled(name == "integers1d")
            self.n_spin.setValue(spec.default_n)
            self.resample()
        else:
            self._use_points(self.dataset.train if self.dataset is not None else np.zeros((0, 2), np.float32))

    @Slot()
    def resample(self) -> None:
        name = self.set_name
        if name == PAINTED:
            return
        if self.busy():
            self.error.emit("Busy", "Stop training before changing the data.")
            return
        try:
            noise = None if self.noise_default.isChecked() else self.noise_spin.value()
            ds = datasets.load(name, n=self.n_spin.value(), seed=self.seed_spin.value(), noise=noise,
                               text=self.integers.text() if name == "integers1d" else None)
        except ValueError as exc:
            self.error.emit("Cannot make the data set", str(exc))
            return
        self._set_dataset(ds)
        self.paint = PaintBuffer(ds.train.shape[1], ds.meta["bounds"], seed=self.seed_spin.value())
        self.paint.set_points(ds.train)

    def _use_points(self, x: np.ndarray, bounds=None) -> bool:
        """Make a data set of painted or imported points (shown within ``bounds`` when given);
        False (and a message) if unusable."""
        try:
            ds = datasets.from_points(x, name=PAINTED, seed=self.seed_spin.value())
        except ValueError as exc:
            self._commit_timer.stop()
            self.status.emit(str(exc))
            self.points_drawn.emit(x)
            self.dataset = None
            self.dataset_changed.emit(None, x.shape[1] if x.ndim == 2 and x.shape[1] in (1, 2) else 2)
            return False
        if bounds is not None and len(bounds) == ds.train.shape[1]:  # (the view of another set is ignored)
            ds.meta["bounds"] = bounds
        self._set_dataset(ds)
        return True

    def _set_dataset(self, ds: datasets.Dataset) -> None:
        self._commit_timer.stop()  # painted points still waiting are stale once another set is chosen
        self.dataset = ds
        self.view_bounds = ds.meta["bounds"]
        self.dataset_changed.emit(ds, ds.train.shape[1])
        self.status.emit(f"{ds.name}: {len(ds.train)} training and {len(ds.valid)} held-out points")

    # -- painting --------------------------------------------------------------------------------
    @Slot(bool)
    def _on_paint_toggled(self, on: bool) -> None:
        if on and self.busy():
            self.paint_btn.setChecked(False)
            self.error.emit("Busy", "Stop training before painting.")
            return
        if on and self.set_name != PAINTED:
            self.set_combo.setCurrentIndex(self.set_combo.findData(PAINTED))

    def paint_at(self, x: float, y: float, first: bool) -> None:
        """A brush (or eraser) dab at (x, y) of the data view; ``first`` starts a stroke."""
        if self.paint is None:
            return
        centre = (x, y) if self.paint.dim == 2 else (x,)
        merge = not first and self._stroke_started  # one undo step per mouse stroke
        try:
            if self.erase_box.isChecked():
                changed = self.paint.erase(centre, self.radius_spin.value(), merge=merge)
            else:
                changed = self.paint.brush(centre, self.radius_spin.value(), self.intensity_spin.value(), merge=merge)
        except ValueError as exc:
            self.status.emit(str(exc))
            return
        self._stroke_started = (self._stroke_started and not first) or bool(changed)
        self._after_edit()

    def _after_edit(self) -> None:
        pts = self.paint.points
        self.points_drawn.emit(pts)
        self.undo_btn.setEnabled(self.paint.can_undo)
        self.redo_btn.setEnabled(self.paint.can_redo)
        self._pending_points = pts
        self._commit_timer.start()

    @Slot()
    def _commit_points(self) -> None:
        """After a pause in painting, make the painted points the data set (cheap, not per dab)."""
        self._use_points(self._pending_points, self.view_bounds)

    @Slot()
    def undo(self) -> None:
        if self.paint is not None and self.paint.can_undo and not self.busy():
            self.paint.undo()
            self._after_edit()

    @Slot()
    def redo(self) -> None:
        if self.paint is not None and self.paint.can_redo and not self.busy():
            self.paint.redo()
            self._after_edit()

    @Slot()
    def clear_points(self) -> None:
        if self.paint is not None and not self.busy():
            if self.set_name != PAINTED:
                self.set_combo.setCurrentIndex(self.set_combo.findData(PAINTED))
            self.paint.clear()
            self._after_edit()

    def import_csv(self, path: str) -> bool:
        try:
            x = read_csv(path)
        except (ValueError, OSError) as exc:
            self.error.emit("Cannot import the points", str(exc))
            return False
        self._paint_with(x)
        ok = self._use_points(x)
        self.undo_btn.setEnabled(self.paint.can_undo)
        return ok

    def _paint_with(self, x: np.ndarray) -> tuple:
        """Points ``x`` become the painted / imported set (without signalling the change); their view bounds."""
        bounds = toy.view_bounds(x) if len(x) else ((-1.0, 1.0),) * x.shape[1]
        self.set_combo.blockSignals(True)
        self.set_combo.setCurrentIndex(self.set_combo.findData(PAINTED))
        self.set_combo.blockSignals(False)
        self.paint = PaintBuffer(x.shape[1], bounds, seed=self.seed_spin.value())
        self.paint.set_points(x)
        return bounds

    def save_points(self, path: str | os.PathLike) -> bool:
        """Keep the painted / imported points in ``path`` (.npy) when they are the data set, so
        that the next session finds them; True when written."""
        if self.set_name != PAINTED or self.paint is None:
            return False
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            np.save(path, np.ascontiguousarray(self.paint.points, dtype=np.float32), allow_pickle=False)
            return True
        except OSError as exc:
            self.status.emit(f"cannot keep the painted points in {path}: {exc}")
            return False

    def restore_points(self, path: str | os.PathLike) -> bool:
        """Make the points kept in ``path`` the data set (as "painted / imported points"); False,
        with the data set left as it is, when there are none or they cannot be read."""
        try:
            x = np.load(path, allow_pickle=False)
        except (OSError, ValueError):
            return False
        if x.ndim != 2 or x.shape[1] not in (1, 2) or not np.isfinite(x).all():
            return False
        x = np.ascontiguousarray(x, dtype=np.float32)
        bounds = self._paint_with(x)
        self._use_points(x, bounds)
        self.undo_btn.setEnabled(False)
        return True

    def export_csv(self, path: str) -> None:
        pts = self.paint.points if self.paint is not None else (self.dataset.train if self.dataset else None)
        if pts is None:
            return
        try:
            write_csv(path, pts)
            self.status.emit(f"wrote {len(pts)} points to {path}")
        except (ValueError, OSError) as exc:
            self.error.emit("Cannot export the points", str(exc))

    @Slot()
    def _ask_import(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Import points", "", "CSV (*.csv *.txt)")
        if path:
            self.import_csv(path)

    @Slot()
    def _ask_export(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export points", "points.csv", "CSV (*.csv)")
        if path:
            self.export_csv(path)
