"""The density playground tab: pick or paint a 1D/2D data set, pick several density models,
and watch them learn side by side (small multiples), with a held-out NLL curve and a
comparison table that can be exported as CSV, and the view as PNG."""

from __future__ import annotations

import asyncio
import csv
import math
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout,
                               QGroupBox, QHBoxLayout, QLabel, QLineEdit, QListWidget,
                               QListWidgetItem, QPushButton, QScrollArea, QSlider, QSpinBox,
                               QSplitter, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from core import data as datasets
from core import registry
from core.data import toy
from core.data.paint import PaintBuffer
from core.data.points import read_csv, write_csv
from core.engine import Frame, TrainConfig, Trainer
from core.protocol import DataKind, grid_points
from gui.jobs import in_thread
from gui.hparam_editors import changed_signal, editor_value, make_editor, set_editor_value
from gui.style import COLORS
from gui.worker import TrainingSession

PAINTED = "painted"
#: density grid per axis in the tiles: 64 keeps a RealNVP's visuals at ~25 ms (96: ~75 ms)
RES = 64
#: frames per second handed over by the worker: above the 30 fps repaint timer, so that a
#: ~20 ms training step still gives a new frame at every repaint
FRAME_FPS = 60
TABLE_COLUMNS = ["model", "held-out NLL (nats)", "true entropy", "gap", "ms / step", "modes covered",
                 "high quality %", "step"]


class PaintViewBox(pg.ViewBox):
    """A ViewBox that hands mouse presses and drags to ``painter(x, y, first)`` when set."""

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.painter = None

    def mouseDragEvent(self, ev, axis=None):
        if self.painter is None:
            return super().mouseDragEvent(ev, axis)
        ev.accept()
        p = self.mapSceneToView(ev.scenePos())
        self.painter(p.x(), p.y(), ev.isStart())

    def mouseClickEvent(self, ev):
        if self.painter is None or ev.button() != Qt.MouseButton.LeftButton:
            return super().mouseClickEvent(ev)
        ev.accept()
        p = self.mapSceneToView(ev.scenePos())
        self.painter(p.x(), p.y(), True)


class Tile:
    """One small multiple: a density heatmap (2D) or curve (1D), data, samples, flow warp."""

    def __init__(self, layout: pg.GraphicsLayout, row: int, col: int, title: str, dim: int, color: str,
                 paintable: bool = False):
        self.dim = dim
        self.vb = PaintViewBox() if paintable else pg.ViewBox()
        self.plot = layout.addPlot(row=row, col=col, title=title, viewBox=self.vb)
        self.plot.setMenuEnabled(False)
        self.plot.hideButtons()
        self.image = pg.ImageItem(axisOrder="row-major")
        self.data_dots = pg.ScatterPlotItem(size=2, pen=None, brush=pg.mkBrush(200, 200, 200, 90))
        self.samples = pg.ScatterPlotItem(size=3, pen=None, brush=pg.mkBrush(color))
        self.warp = pg.PlotDataItem(pen=pg.mkPen(255, 255, 255, 110, width=1), connect="finite")
        self.curve = pg.PlotDataItem(pen=pg.mkPen(color, width=2))
        self.truth = pg.PlotDataItem(pen=pg.mkPen("w", width=1, style=Qt.PenStyle.DashLine))
        self.hist = pg.PlotDataItem(stepMode="center", fillLevel=0, brush=(120, 120, 120, 80), pen=None)
        if dim == 2:
            for item in (self.image, self.data_dots, self.warp, self.samples):
                self.plot.addItem(item)
            self.vb.setAspectLocked(True)
        else:
            for item in (self.hist, self.truth, self.curve, self.samples):
                self.plot.addItem(item)
        self.pending: dict[str, Any] = {}

    def set_bounds(self, bounds) -> None:
        self.bounds = bounds
        (x0, x1) = bounds[0]
        if self.dim == 2:
            (y0, y1) = bounds[1]
            self.vb.setRange(xRange=(x0, x1), yRange=(y0, y1), padding=0)
        else:
            self.vb.setXRange(x0, x1, padding=0)

    def show_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.pending.update(arrays)

    def flush(self) -> bool:
        if not self.pending:
            return False
        a, self.pending = self.pending, {}
        heat = a.get("density", a.get("disc"))
        if self.dim == 2:
            if heat is not None:
                img = np.ascontiguousarray(heat, dtype=np.float32)
                top = float(np.nanmax(img)) if np.isfinite(img).any() else 1.0
                self.image.setImage(img, levels=(0.0, top if top > 0 else 1.0), autoLevels=False)
                (x0, x1), (y0, y1) = self.bounds
                self.image.setRect(x0, y0, x1 - x0, y1 - y0)
            if "samples" in a:
                s = a["samples"]
                self.samples.setData(s[:, 0], s[:, 1])
            if "warp" in a:
                w = a["warp"]  # (L, P, 2): NaN-separated polylines
                sep = np.full((w.shape[0], 1, 2), np.nan, np.float32)
                lines = np.concatenate([w, sep], 1).reshape(-1, 2)
                self.warp.setData(lines[:, 0], lines[:, 1])
        else:
            if heat is not None:
                xs = grid_points(self.bounds, len(heat))[:, 0]
                self.curve.setData(xs, np.asarray(heat, np.float32))
            if "samples" in a:
                s = a["samples"][:, 0]
                self.samples.setData(s, np.zeros_like(s))
        return True


class PlaygroundPanel(QWidget):
    error = Signal(str, str)  # title, message: the main window shows it
    status = Signal(str)

    def __init__(self, fps: float = 30.0, parent: QWidget | None = None):
        super().__init__(parent)
        self.fps = fps
        self.dataset: datasets.Dataset | None = None
        self.session: TrainingSession | None = None
        self.paint: PaintBuffer | None = None
        self.model_hparams: dict[str, dict[str, Any]] = {}
        self.tiles: list[Tile] = []
        self.rows: list[dict[str, Any]] = []
        self.curves: list[list[tuple[float, float]]] = []
        self.repaints = 0
        self._stroke_started = False
        self.running_keys: list[str] = []
        self._build()
        self._timer = QTimer(self)
        # a little faster than the target rate, so that timer jitter never drops it below: a
        # tick repaints only what changed since the last one
        self._timer.setInterval(int(1000 / (fps * 1.3)))
        self._timer.timeout.connect(self._repaint)
        self._timer.start()
        self.resample()

    # -- layout ----------------------------------------------------------------------------------
    def _build(self) -> None:
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

        self.model_list = QListWidget(objectName="playgroundModels")
        self.model_list.currentItemChanged.connect(self._on_model_current)
        self.hp_box = QGroupBox("Hyperparameters of the highlighted model")
        self.hp_form = QFormLayout(self.hp_box)
        self.editors: dict[str, QWidget] = {}
        models_box = QGroupBox("Models (tick several to compare)")
        v = QVBoxLayout(models_box)
        v.addWidget(self.model_list)

        self.steps_spin = QSpinBox(objectName="playSteps", minimum=1, maximum=1_000_000, value=3000, singleStep=500)
        self.train_btn = QPushButton("Play", objectName="playButton")
        self.pause_btn = QPushButton("Pause", objectName="playPause")
        self.step_btn = QPushButton("Step", objectName="playStep")
        self.stop_btn = QPushButton("Stop", objectName="playStop")
        self.speed = QSlider(Qt.Orientation.Horizontal, objectName="playSpeed")
        self.speed.setRange(1, 11)
        self.speed.setValue(11)
        self.speed.setToolTip("steps per second: 1, 2, 4 … 1000, or full speed")
        self.speed_label = QLabel("full speed")
        self.lr_spin = QDoubleSpinBox(objectName="playLr", decimals=5, minimum=1e-5, maximum=1.0, value=0.003,
                                      singleStep=0.0005)
        self.lr_spin.setToolTip("learning rate of every gradient-trained model; editable while training")
        self.train_btn.clicked.connect(self.play)
        self.pause_btn.clicked.connect(self.toggle_pause)
        self.step_btn.clicked.connect(self.step)
        self.stop_btn.clicked.connect(self.stop_training)
        self.speed.valueChanged.connect(self._on_speed)
        self.lr_spin.valueChanged.connect(self._on_lr)
        run_box = QGroupBox("Run")
        f = QFormLayout(run_box)
        f.addRow("Steps", self.steps_spin)
        row = QHBoxLayout()
        for b in (self.train_btn, self.pause_btn, self.step_btn, self.stop_btn):
            row.addWidget(b)
        f.addRow(row)
        row = QHBoxLayout()
        row.addWidget(self.speed, 1)
        row.addWidget(self.speed_label)
        f.addRow("Speed", row)
        f.addRow("Learning rate", self.lr_spin)

        controls = QWidget()
        cl = QVBoxLayout(controls)
        for w in (data_box, paint_box, models_box, self.hp_box, run_box):
            cl.addWidget(w)
        cl.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidget(controls)
        scroll.setWidgetResizable(True)
        scroll.setMinimumWidth(280)

        self.tiles_widget = pg.GraphicsLayoutWidget()
        self.tiles_widget.setObjectName("tiles")
        self.nll_plot = pg.PlotWidget()
        self.nll_plot.setObjectName("nllPlot")
        self.nll_plot.setLabel("bottom", "step")
        self.nll_plot.setLabel("left", "held-out NLL (nats)")
        self.nll_plot.addLegend(offset=(-10, 10))
        self.entropy_line = pg.InfiniteLine(angle=0, pen=pg.mkPen("w", style=Qt.PenStyle.DashLine),
                                            label="true entropy", labelOpts={"position": 0.9})
        self.table = QTableWidget(0, len(TABLE_COLUMNS), objectName="compareTable")
        self.table.setHorizontalHeaderLabels(TABLE_COLUMNS)
        self.table.verticalHeader().setVisible(False)
        csv_btn = QPushButton("Table as CSV…", objectName="exportTable")
        png_btn = QPushButton("View as PNG…", objectName="exportPng")
        csv_btn.clicked.connect(self._ask_export_table)
        png_btn.clicked.connect(self._ask_export_png)
        bottom = QWidget()
        bl = QHBoxLayout(bottom)
        bl.setContentsMargins(0, 0, 0, 0)
        bl.addWidget(self.nll_plot, 3)
        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addWidget(self.table, 1)
        row = QHBoxLayout()
        row.addWidget(csv_btn)
        row.addWidget(png_btn)
        rl.addLayout(row)
        bl.addWidget(right, 4)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.tiles_widget)
        split.addWidget(bottom)
        split.setSizes([520, 240])
        layout = QHBoxLayout(self)
        layout.addWidget(scroll)
        layout.addWidget(split, 1)

        QShortcut(QKeySequence.StandardKey.Undo, self, self.undo)
        QShortcut(QKeySequence.StandardKey.Redo, self, self.redo)
        QShortcut(QKeySequence("P"), self, self.paint_btn.toggle)
        self.set_running(False)

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
        if self.running:
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

    def _use_points(self, x: np.ndarray) -> bool:
        """Make a data set of painted or imported points; False (and a message) if unusable."""
        try:
            ds = datasets.from_points(x, name=PAINTED, seed=self.seed_spin.value())
        except ValueError as exc:
            self.status.emit(str(exc))
            self._draw_points(x)
            self.dataset = None
            self._refresh_models(x.shape[1] if x.ndim == 2 and x.shape[1] in (1, 2) else 2)
            return False
        self._set_dataset(ds)
        return True

    def _set_dataset(self, ds: datasets.Dataset) -> None:
        self.dataset = ds
        self._refresh_models(ds.train.shape[1])
        self._make_tiles([])
        self.status.emit(f"{ds.name}: {len(ds.train)} training and {len(ds.valid)} held-out points")

    def _draw_points(self, x: np.ndarray) -> None:
        if self.tiles:
            t = self.tiles[0]
            if t.dim == 2 and x.ndim == 2 and x.shape[1] == 2:
                t.data_dots.setData(x[:, 0], x[:, 1])
            elif t.dim == 1 and x.ndim == 2 and x.shape[1] == 1 and len(x):
                counts, edges = np.histogram(x[:, 0], bins=40, range=t.bounds[0], density=True)
                t.hist.setData(edges, counts)

    # -- painting --------------------------------------------------------------------------------
    @Slot(bool)
    def _on_paint_toggled(self, on: bool) -> None:
        if on and self.running:
            self.paint_btn.setChecked(False)
            self.error.emit("Busy", "Stop training before painting.")
            return
        if on and self.set_name != PAINTED:
            self.set_combo.setCurrentIndex(self.set_combo.findData(PAINTED))
        if self.tiles:
            self.tiles[0].vb.painter = self._paint_at if on else None

    def _paint_at(self, x: float, y: float, first: bool) -> None:
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
        self._draw_points(pts)
        self.undo_btn.setEnabled(self.paint.can_undo)
        self.redo_btn.setEnabled(self.paint.can_redo)
        self._pending_points = pts
        if not hasattr(self, "_commit_timer"):
            self._commit_timer = QTimer(self, singleShot=True, interval=300)
            self._commit_timer.timeout.connect(self._commit_points)
        self._commit_timer.start()

    @Slot()
    def _commit_points(self) -> None:
        """After a pause in painting, make the painted points the data set (cheap, not per dab)."""
        bounds = self.tiles[0].bounds if self.tiles else None
        if self._use_points(self._pending_points) and bounds is not None:
            self.dataset.meta["bounds"] = bounds
            self._make_tiles([])

    @Slot()
    def undo(self) -> None:
        if self.paint is not None and self.paint.can_undo and not self.running:
            self.paint.undo()
            self._after_edit()

    @Slot()
    def redo(self) -> None:
        if self.paint is not None and self.paint.can_redo and not self.running:
            self.paint.redo()
            self._after_edit()

    @Slot()
    def clear_points(self) -> None:
        if self.paint is not None and not self.running:
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
        bounds = toy.view_bounds(x) if len(x) else ((-1.0, 1.0),) * x.shape[1]
        self.set_combo.blockSignals(True)
        self.set_combo.setCurrentIndex(self.set_combo.findData(PAINTED))
        self.set_combo.blockSignals(False)
        self.paint = PaintBuffer(x.shape[1], bounds, seed=self.seed_spin.value())
        self.paint.set_points(x)
        ok = self._use_points(x)
        self.undo_btn.setEnabled(self.paint.can_undo)
        return ok

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

    # -- models ----------------------------------------------------------------------------------
    def _refresh_models(self, dim: int) -> None:
        kind = DataKind.POINTS_1D if dim == 1 else DataKind.POINTS_2D
        checked = set(self.checked_models())
        self.model_list.blockSignals(True)
        self.model_list.clear()
        for info in registry.families():
            if kind in info.data_kinds:
                item = QListWidgetItem(f"{info.name}  ({info.group})")
                item.setData(Qt.ItemDataRole.UserRole, info.key)
                item.setToolTip(info.description)
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                item.setCheckState(Qt.CheckState.Checked if info.key in checked else Qt.CheckState.Unchecked)
                self.model_list.addItem(item)
        self.model_list.blockSignals(False)
        if self.model_list.count():
            self.model_list.setCurrentRow(0)

    def checked_models(self) -> list[str]:
        return [self.model_list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.model_list.count())
                if self.model_list.item(i).checkState() == Qt.CheckState.Checked]

    def set_checked(self, keys: list[str]) -> None:
        for i in range(self.model_list.count()):
            item = self.model_list.item(i)
            on = item.data(Qt.ItemDataRole.UserRole) in keys
            item.setCheckState(Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)

    def _save_editors(self) -> None:
        if getattr(self, "_hp_key", None):
            self.model_hparams[self._hp_key] = {n: editor_value(w) for n, w in self.editors.items()}

    @Slot(QListWidgetItem, QListWidgetItem)
    def _on_model_current(self, item, _prev=None) -> None:
        self._save_editors()
        while self.hp_form.rowCount():
            self.hp_form.removeRow(0)
        self.editors = {}
        self._hp_key = item.data(Qt.ItemDataRole.UserRole) if item is not None else None
        if self._hp_key is None:
            return
        info = registry.info(self._hp_key)
        saved = self.model_hparams.get(self._hp_key, {})
        for h in info.hparams:
            w = make_editor(h)
            if h.name in saved:
                set_editor_value(w, saved[h.name])
            self.editors[h.name] = w
            self.hp_form.addRow(h.name + (" (live)" if h.live else ""), w)
            if h.live:
                changed_signal(w).connect(self._on_live_edit)
        self._enable_editors()
        self.hp_box.setTitle(f"Hyperparameters: {info.name}")

    def set_hparam(self, key: str, name: str, value: Any) -> None:
        """Set one model's hyperparameter (as the form would)."""
        self._save_editors()
        self.model_hparams.setdefault(key, {})[name] = value
        if getattr(self, "_hp_key", None) == key and name in self.editors:
            set_editor_value(self.editors[name], value)

    # -- tiles -----------------------------------------------------------------------------------
    def _make_tiles(self, keys: list[str]) -> None:
        self.tiles_widget.clear()
        self.tiles = []
        ds = self.dataset
        if ds is None:
            return
        dim = ds.train.shape[1]
        bounds = ds.meta["bounds"]
        ncols = max(2, math.ceil(math.sqrt(len(keys) + 1)))
        names = ["data" + (" and true density" if ds.meta.get("has_density") else "")]
        names += [registry.info(k).name for k in keys]
        for i, name in enumerate(names):
            t = Tile(self.tiles_widget.ci, i // ncols, i % ncols, name, dim, COLORS[(i - 1) % len(COLORS)],
                     paintable=(i == 0))
            t.set_bounds(bounds)
            self.tiles.append(t)
        first = self.tiles[0]
        first.vb.painter = self._paint_at if self.paint_btn.isChecked() else None
        if dim == 2:
            first.data_dots.setData(ds.train[:, 0], ds.train[:, 1])
            for t in self.tiles[1:]:
                t.data_dots.setData(ds.train[:, 0], ds.train[:, 1])
        else:
            counts, edges = np.histogram(ds.train[:, 0], bins=40, range=bounds[0], density=True)
            for t in self.tiles:
                t.hist.setData(edges, counts)
        truth = self._true_density(ds, bounds)
        if truth is not None:
            first.show_arrays({"density": truth})
            if dim == 1:
                xs = grid_points(bounds, RES)[:, 0]
                for t in self.tiles:
                    t.truth.setData(xs, truth)
        self.repaints += 1

    def _true_density(self, ds, bounds) -> np.ndarray | None:
        if ds.name == PAINTED or not ds.meta.get("has_density"):
            return None
        lp = toy.log_density(ds.name, grid_points(bounds, RES), noise=ds.meta.get("noise"))
        if lp is None:
            return None
        return np.ascontiguousarray(np.exp(lp).reshape((RES,) * len(bounds)), dtype=np.float32)

    # -- running ---------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.session is not None and self.session.running

    def set_running(self, running: bool, paused: bool = False) -> None:
        self.train_btn.setEnabled(not running)
        self.pause_btn.setEnabled(running)
        self.pause_btn.setText("Resume" if paused else "Pause")
        self.step_btn.setEnabled(running)
        self.stop_btn.setEnabled(running)
        self.model_list.setEnabled(not running)
        self._enable_editors()

    def _enable_editors(self) -> None:
        """While training, only the live hyperparameters of the highlighted model stay editable."""
        key = getattr(self, "_hp_key", None)
        live = {h.name for h in registry.info(key).hparams if h.live} if key else set()
        for name, w in self.editors.items():
            w.setEnabled(not self.running or name in live)

    @Slot()
    def _on_live_edit(self, *_args) -> None:
        w = self.sender()
        name = next((n for n, e in self.editors.items() if e is w), None)
        if name is None or not self.running or self._hp_key not in self.running_keys:
            return
        try:
            self.session.set_hparams({name: editor_value(w)}, index=self.running_keys.index(self._hp_key))
            self.status.emit(f"{registry.info(self._hp_key).name}: {name} = {editor_value(w)} from the next step")
        except ValueError as exc:
            self.status.emit(str(exc))

    @Slot()
    def play(self) -> TrainingSession | None:
        if self.running:
            return None
        if self.dataset is None:
            self.error.emit("No data", "This data set has too few points to train on: paint or import more.")
            return None
        keys = self.checked_models()
        if not keys:
            self.error.emit("No model", "Tick one or more models to train.")
            return None
        self._save_editors()
        ds = self.dataset
        trainers = []
        try:
            for key in keys:
                info = registry.info(key)
                hp = dict(self.model_hparams.get(key, {}))
                if any(h.name == "lr" for h in info.all_hparams()) and "lr" not in hp:
                    hp["lr"] = self.lr_spin.value()
                hp.setdefault("batch_size", min(256, max(1, len(ds.train))))
                model = registry.create(key, ds.shape, ds.kind, **hp)
                steps = self.steps_spin.value()
                if info.full_batch:
                    steps = min(steps, 200)  # fits and EM iterations: few are needed
                cfg = TrainConfig(max_steps=steps, seed=self.seed_spin.value(), device="cpu",
                                  eval_every=max(1, min(100, steps // 30)), eval_size=2000,
                                  visuals_every_s=0.25, visuals_n=500, visuals_res=RES)
                trainers.append(Trainer(model, ds, cfg))
        except ValueError as exc:
            self.error.emit("Cannot build the model", f"{registry.info(key).name}: {exc}")
            return None
        self._make_tiles(keys)
        self._init_results(keys, ds)
        self.running_keys = keys
        self.session = TrainingSession(trainers, fps=max(self.fps, FRAME_FPS), parent=self)
        self.session.frame.connect(self._on_frame)
        self.session.failed.connect(self._on_failed)
        self.session.finished.connect(self._on_finished)
        self._on_speed(self.speed.value())
        self.set_running(True)
        self.session.start()
        return self.session

    @Slot()
    def toggle_pause(self) -> None:
        if not self.running:
            return
        if self.session.paused:
            self.session.resume()
        else:
            self.session.pause()
        self.set_running(True, self.session.paused)

    @Slot()
    def step(self) -> None:
        if self.running:
            self.session.step()
            self.set_running(True, True)

    @Slot()
    def stop_training(self) -> None:
        if self.running:
            self.session.control.stop()

    def stop(self, wait_ms: int = 2000) -> bool:
        return self.session.stop(wait_ms) if self.running else True

    @Slot(int)
    def _on_speed(self, v: int) -> None:
        rate = None if v >= 11 else 2.0 ** (v - 1)  # 1, 2, 4 … 1024 steps/s, or full speed
        self.speed_label.setText("full speed" if rate is None else f"{rate:g} steps/s")
        if self.session is not None:
            self.session.set_speed(rate)

    @Slot(float)
    def _on_lr(self, lr: float) -> None:
        if self.running:
            for i, t in enumerate(self.session.trainers):
                if not t.model.info.full_batch:
                    try:
                        self.session.set_hparams({"lr": lr}, index=i)
                    except ValueError:
                        pass

    # -- results ---------------------------------------------------------------------------------
    def _init_results(self, keys: list[str], ds) -> None:
        for item in self.nll_plot.listDataItems():
            self.nll_plot.removeItem(item)
        self.nll_plot.plotItem.legend.clear()
        self.nll_lines = [self.nll_plot.plot(name=registry.info(k).name, pen=pg.mkPen(COLORS[i % len(COLORS)], width=2))
                          for i, k in enumerate(keys)]
        self.curves = [[] for _ in keys]
        self._set_entropy(ds.meta.get("true_entropy"))
        if "true_entropy" not in ds.meta:
            # Monte Carlo over the true density: ~0.6 s for moons and circles, so off the GUI thread
            try:
                asyncio.get_running_loop()
            except RuntimeError:  # no event loop (a script): compute it here
                self._set_entropy(datasets.dataset_true_entropy(ds, n_mc=50_000))
            else:
                self._entropy_task = asyncio.ensure_future(self._compute_entropy(ds))
        self.rows = [{"model": registry.info(k).name, "key": k, "nll": None, "step": 0, "ms": None,
                      "covered": None, "n_modes": None, "hq": None} for k in keys]
        self._nll_dirty = True
        self._fill_table()

    async def _compute_entropy(self, ds) -> None:
        value = await in_thread(datasets.dataset_true_entropy, ds, 50_000)  # cached in ds.meta
        if ds is self.dataset:
            self._set_entropy(value)

    def _set_entropy(self, entropy: float | None) -> None:
        self.true_entropy = entropy
        if entropy is not None:
            if self.entropy_line.scene() is None:
                self.nll_plot.addItem(self.entropy_line)
            self.entropy_line.setValue(entropy)
        elif self.entropy_line.scene() is not None:
            self.nll_plot.removeItem(self.entropy_line)
        self._table_dirty = True

    @Slot(object)
    def _on_frame(self, frame: Frame) -> None:
        i, s = frame.index, frame.snapshot
        if s.event == "error":
            self.rows[i]["error"] = s.message
            self.error.emit("A model stopped", f"{self.rows[i]['model']}: {s.message}")
            self._table_dirty = True
            return
        if i + 1 < len(self.tiles) and frame.arrays:
            self.tiles[i + 1].show_arrays(frame.arrays)
        row = self.rows[i]
        row["step"] = s.step
        if s.step_ms > 0:
            row["ms"] = s.step_ms
        m = s.metrics
        nll = m.get("valid_nll")
        if s.event in ("eval", "finished") and nll is not None and math.isfinite(nll):
            row["nll"] = nll
            self.curves[i].append((s.step, nll))
            self._nll_dirty = True
        if "modes_covered" in m:
            row["covered"], row["n_modes"], row["hq"] = int(m["modes_covered"]), int(m["n_modes"]), m["high_quality"]
        if s.event == "nonfinite":
            self.error.emit("Training stopped", f"{row['model']}: {s.message}")
        self._table_dirty = True

    @Slot(str, str)
    def _on_failed(self, message: str, details: str) -> None:
        self.error.emit("Training failed", message)

    @Slot()
    def _on_finished(self) -> None:
        self.set_running(False)
        self.status.emit("training finished")

    def table_rows(self) -> list[list[str]]:
        out = []
        for r in self.rows:
            gap = r["nll"] - self.true_entropy if r["nll"] is not None and self.true_entropy is not None else None
            out.append([
                r["model"],
                f"stopped: {r['error']}" if r.get("error") else "" if r["nll"] is None else f"{r['nll']:.4f}",
                "" if self.true_entropy is None else f"{self.true_entropy:.4f}",
                "" if gap is None else f"{gap:+.4f}",
                "" if r["ms"] is None else f"{r['ms']:.2f}",
                "" if r["covered"] is None else f"{r['covered']}/{r['n_modes']}",
                "" if r["hq"] is None else f"{100 * r['hq']:.1f}",
                str(r["step"]),
            ])
        return out

    def _fill_table(self) -> None:
        rows = self.table_rows()
        self.table.setRowCount(len(rows))
        for i, row in enumerate(rows):
            for j, text in enumerate(row):
                self.table.setItem(i, j, QTableWidgetItem(text))
        self.table.resizeColumnsToContents()
        self._table_dirty = False

    def export_table(self, path: str) -> None:
        try:
            with open(path, "w", newline="") as f:
                w = csv.writer(f)
                w.writerow(TABLE_COLUMNS)
                w.writerows(self.table_rows())
            self.status.emit(f"wrote {path}")
        except OSError as exc:
            self.error.emit("Cannot export the table", str(exc))

    def export_png(self, path: str) -> bool:
        ok = self.grab().save(path)
        if not ok:
            self.error.emit("Cannot export the view", f"could not write {path}")
        return ok

    @Slot()
    def _ask_export_table(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export table", "comparison.csv", "CSV (*.csv)")
        if path:
            self.export_table(path)

    @Slot()
    def _ask_export_png(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export view", "playground.png", "PNG (*.png)")
        if path:
            self.export_png(path)

    @Slot()
    def _repaint(self) -> None:
        painted = False
        for t in self.tiles:
            painted |= t.flush()
        if getattr(self, "_nll_dirty", False):
            for line, pts in zip(self.nll_lines, self.curves):
                if pts:
                    a = np.asarray(pts, np.float64)
                    line.setData(a[:, 0], a[:, 1])
            self._nll_dirty = False
            painted = True
        if getattr(self, "_table_dirty", False):
            self._fill_table()
            painted = True
        if painted:
            self.repaints += 1
