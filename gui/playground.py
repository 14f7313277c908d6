"""The density playground tab: pick or paint a 1D/2D data set, pick several density models,
and watch them learn side by side (small multiples), with a held-out NLL curve and a
comparison table that can be exported as CSV, and the view as PNG.

The panel composes its parts: the data controls (:mod:`gui.point_data`), the tiles
(:mod:`gui.density_tiles`) and the comparison (:mod:`gui.comparison_view`); it holds the model
list, the run controls and the training session."""

from __future__ import annotations

import csv
import math
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal, Slot
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout, QGroupBox, QHBoxLayout, QLabel,
                               QListWidgetItem, QPushButton, QScrollArea, QSlider, QSpinBox,
                               QSplitter, QVBoxLayout, QWidget)

from core import data as datasets
from core import registry
from core.control import Frame
from core.policy import TrainingPolicy
from core.training import EVALUATED, Event, TrainConfig, Trainer
from core.protocol import DataKind, Visuals, grid_points
from gui.comparison_view import TABLE_COLUMNS, ComparisonView, format_rows
from gui.density_tiles import RES, Tile, grid_columns, true_density_image
from gui.hparam_editors import changed_signal, editor_value, make_editor, set_editor_value
from gui.jobs import Jobs
from gui.model_list import ModelList
from gui.point_data import PAINTED, PointDataControls
from gui.style import COLORS, fixed_width
from gui.worker import TrainingSession

#: what the steps and learning-rate boxes show at 0: each model uses its own (its recipe)
OWN = "each model's own"
#: frames per second handed over by the worker: above the 30 fps repaint timer, so that a
#: ~20 ms training step still gives a new frame at every repaint
FRAME_FPS = 60


class PlaygroundPanel(QWidget):
    error = Signal(str, str)  # title, message: the main window shows it
    status = Signal(str)

    def __init__(self, fps: float = 30.0, parent: QWidget | None = None):
        super().__init__(parent)
        self.fps = fps
        self.session: TrainingSession | None = None
        self.model_hparams: dict[str, dict[str, Any]] = {}
        #: the hyperparameters the user set, per model (the others follow the panel-wide settings)
        self.edited: dict[str, set[str]] = {}
        self.tiles: list[Tile] = []
        self.rows: list[dict[str, Any]] = []
        self.curves: list[list[tuple[float, float]]] = []
        self.repaints = 0
        self.running_keys: list[str] = []
        self.jobs = Jobs(self.error.emit)
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
        self.data = PointDataControls(busy=lambda: self.running)
        self.data.error.connect(self.error)
        self.data.status.connect(self.status)
        self.data.dataset_changed.connect(self._on_dataset_changed)
        self.data.points_drawn.connect(self._draw_points)
        self.data.paint_btn.toggled.connect(self._on_paint_toggled)
        self._expose_data_controls()
        controls = QWidget()
        cl = QVBoxLayout(controls)
        # the run box above the hyperparameters: Play stays put whichever model is highlighted
        for w in (self.data, self._build_models_box(), self._build_run_box(), self._build_hp_box()):
            cl.addWidget(w)
        cl.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidget(controls)
        scroll.setWidgetResizable(True)
        # one width for good: the hyperparameters of another model never resize the panel
        scroll.setFixedWidth(380)
        # always there: a scroll bar coming and going would resize every control in the panel
        scroll.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOn)

        self.tiles_widget = pg.GraphicsLayoutWidget()
        self.tiles_widget.setObjectName("tiles")
        self.comparison = ComparisonView()
        self.comparison.export_table_clicked.connect(self._ask_export_table)
        self.comparison.export_png_clicked.connect(self._ask_export_png)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(self.tiles_widget)
        split.addWidget(self.comparison)
        split.setSizes([520, 240])
        layout = QHBoxLayout(self)
        layout.addWidget(scroll)
        layout.addWidget(split, 1)

        QShortcut(QKeySequence.StandardKey.Undo, self, self.undo)
        QShortcut(QKeySequence.StandardKey.Redo, self, self.redo)
        QShortcut(QKeySequence("P"), self, self.paint_btn.toggle)
        self.set_running(False)

    def _expose_data_controls(self) -> None:
        """The data controls' widgets and actions, under the names the panel always had."""
        d = self.data
        self.set_combo, self.n_spin, self.seed_spin = d.set_combo, d.n_spin, d.seed_spin
        self.paint_btn, self.erase_box, self.radius_spin, self.intensity_spin = (
            d.paint_btn, d.erase_box, d.radius_spin, d.intensity_spin)
        self.undo_btn, self.redo_btn = d.undo_btn, d.redo_btn
        self.resample, self.undo, self.redo, self.clear_points = d.resample, d.undo, d.redo, d.clear_points
        self.import_csv, self.export_csv = d.import_csv, d.export_csv

    def _build_models_box(self) -> QGroupBox:
        self.model_list = ModelList(objectName="playgroundModels")
        self.model_list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.model_list.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.model_list.currentItemChanged.connect(self._on_model_current)
        self.model_list.itemChanged.connect(self._on_model_ticked)
        models_box = QGroupBox("Models (tick several to compare)")
        v = QVBoxLayout(models_box)
        v.addWidget(self.model_list)
        return models_box

    def _build_hp_box(self) -> QGroupBox:
        self.hp_box = QGroupBox("Hyperparameters of the highlighted model")
        self.hp_box.setMinimumWidth(1)  # its title (a model's name) never widens the panel
        self.hp_form = QFormLayout(self.hp_box)
        self.editors: dict[str, QWidget] = {}
        return self.hp_box

    def _build_run_box(self) -> QGroupBox:
        self.steps_spin = QSpinBox(objectName="playSteps", minimum=0, maximum=1_000_000, value=0, singleStep=500)
        self.steps_spin.setSpecialValueText(OWN)  # 0: each model's recipe
        self.steps_spin.setToolTip("training steps of every model; at 0, each model's own recipe (its steps and "
                                   "learning-rate schedule, checked on every built-in set in BENCHMARKS.md)")
        self.train_btn, self.pause_btn, self.step_btn, self.stop_btn = (QPushButton(t, objectName=n) for t, n in (
            ("Play", "playButton"), ("Pause", "playPause"), ("Step", "playStep"), ("Stop", "playStop")))
        self.speed = QSlider(Qt.Orientation.Horizontal, objectName="playSpeed", minimum=1, maximum=11, value=11)
        self.speed.setToolTip("steps per second: 1, 2, 4 … 1000, or full speed")
        self.speed_label = fixed_width(QLabel("full speed"), "1024 steps/s")
        self.lr_spin = QDoubleSpinBox(objectName="playLr", decimals=5, minimum=0.0, maximum=1.0, value=0.0,
                                      singleStep=0.0005)
        self.lr_spin.setSpecialValueText(OWN)  # 0: each model's own default rate
        self.lr_spin.setToolTip("learning rate of every gradient-trained model (the peak of its schedule); at 0, "
                                "each model's own; editable while training")
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
        return run_box

    # -- data ------------------------------------------------------------------------------------
    @property
    def dataset(self) -> datasets.Dataset | None:
        return self.data.dataset

    @property
    def paint(self):
        return self.data.paint

    @property
    def set_name(self) -> str:
        return self.data.set_name

    @Slot(object, int)
    def _on_dataset_changed(self, ds: datasets.Dataset | None, dim: int) -> None:
        self._refresh_models(dim)
        if ds is not None:
            self._make_tiles([])
        # the last run's results were on the previous data: they go with it
        self.rows, self.curves, self.running_keys = [], [], []
        self.comparison.reset([])
        self._set_entropy(None)
        self._fill_table()

    @Slot(object)
    def _draw_points(self, x: np.ndarray) -> None:
        if self.tiles:
            t = self.tiles[0]
            if t.dim == 2 and x.ndim == 2 and x.shape[1] == 2:
                t.data_dots.setData(x[:, 0], x[:, 1])
            elif t.dim == 1 and x.ndim == 2 and x.shape[1] == 1 and len(x):
                counts, edges = np.histogram(x[:, 0], bins=40, range=t.bounds[0], density=True)
                t.hist.setData(edges, counts)

    @Slot(bool)
    def _on_paint_toggled(self, _on: bool) -> None:
        # the data controls may have unchecked the button again (busy): follow its state
        if self.tiles:
            self.tiles[0].vb.painter = self.data.paint_at if self.paint_btn.isChecked() else None

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
                item.setToolTip(f"{info.name} ({info.group}): {info.description}")
                item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                item.setCheckState(Qt.CheckState.Checked if info.key in checked else Qt.CheckState.Unchecked)
                self.model_list.addItem(item)
        self.model_list.blockSignals(False)
        self.model_list.fit_rows()
        self._highlight_ticked()

    def _highlight_ticked(self) -> None:
        """Highlight (and so show the hyperparameters of) the first ticked model, else the first."""
        rows = [i for i in range(self.model_list.count())
                if self.model_list.item(i).checkState() == Qt.CheckState.Checked]
        if self.model_list.count():
            self.model_list.setCurrentRow(rows[0] if rows else 0)

    @Slot(QListWidgetItem)
    def _on_model_ticked(self, item: QListWidgetItem) -> None:
        """A model just ticked is highlighted: the hyperparameters shown are those of a model
        that will train; the box's title says when the highlighted one is not ticked."""
        if item.checkState() == Qt.CheckState.Checked:
            if self.model_list.currentItem() is not item:
                self.model_list.setCurrentItem(item)
        elif item is self.model_list.currentItem() and self.checked_models():
            self._highlight_ticked()
        self._title_hp_box()

    def _title_hp_box(self) -> None:
        item = self.model_list.currentItem()
        if item is None:
            self.hp_box.setTitle("Hyperparameters")
            return
        name = registry.info(item.data(Qt.ItemDataRole.UserRole)).name
        ticked = item.checkState() == Qt.CheckState.Checked
        self.hp_box.setTitle(f"Hyperparameters: {name}" + ("" if ticked else " (not ticked: it will not train)"))

    def checked_models(self) -> list[str]:
        return [self.model_list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(self.model_list.count())
                if self.model_list.item(i).checkState() == Qt.CheckState.Checked]

    def set_checked(self, keys: list[str]) -> None:
        for i in range(self.model_list.count()):
            item = self.model_list.item(i)
            on = item.data(Qt.ItemDataRole.UserRole) in keys
            item.setCheckState(Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)
        self._highlight_ticked()

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
            w.setMinimumWidth(80)  # the panel's width, not the editor's range or choices, sets its width
            if isinstance(w, QComboBox):
                w.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
                w.setMinimumContentsLength(6)
            if h.name in saved:
                set_editor_value(w, saved[h.name])
            self.editors[h.name] = w
            self.hp_form.addRow(h.name + (" (live)" if h.live else ""), w)
            changed_signal(w).connect(self._on_edit)
        self._enable_editors()
        self._title_hp_box()

    def set_hparam(self, key: str, name: str, value: Any) -> None:
        """Set one model's hyperparameter (as the form would)."""
        self._save_editors()
        self.model_hparams.setdefault(key, {})[name] = value
        self.edited.setdefault(key, set()).add(name)
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
        ncols = grid_columns(len(keys) + 1, bounds, self.tiles_widget.width(), self.tiles_widget.height())
        names = ["data" + (" and true density" if ds.meta.get("has_density") else "")]
        names += [registry.info(k).name for k in keys]
        for i, name in enumerate(names):
            t = Tile(self.tiles_widget.ci, i // ncols, i % ncols, name, dim, COLORS[(i - 1) % len(COLORS)],
                     paintable=(i == 0))
            t.set_bounds(bounds)
            self.tiles.append(t)
        grid = self.tiles_widget.ci.layout  # tiles of one size, whatever their titles
        for c in range(ncols):
            grid.setColumnStretchFactor(c, 1)
        for r in range(math.ceil(len(names) / ncols)):
            grid.setRowStretchFactor(r, 1)
        first = self.tiles[0]
        for t in self.tiles[1:]:  # one shared view: a pan or zoom in any tile moves them all
            t.vb.setXLink(first.vb)
            if dim == 2:
                t.vb.setYLink(first.vb)
        first.vb.painter = self.data.paint_at if self.paint_btn.isChecked() else None
        if dim == 2:
            first.data_dots.setData(ds.train[:, 0], ds.train[:, 1])
            for t in self.tiles[1:]:
                t.data_dots.setData(ds.train[:, 0], ds.train[:, 1])
        else:
            counts, edges = np.histogram(ds.train[:, 0], bins=40, range=bounds[0], density=True)
            for t in self.tiles:
                t.hist.setData(edges, counts)
        truth = true_density_image(ds, bounds) if ds.name != PAINTED else None
        if truth is not None:
            first.show_arrays(Visuals(density=truth))
            if dim == 1:
                xs = grid_points(bounds, RES)[:, 0]
                for t in self.tiles:
                    t.truth.setData(xs, truth)
        self.repaints += 1

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
    def _on_edit(self, *_args) -> None:
        """The user changed a hyperparameter of the highlighted model: it is theirs from now on
        (the panel-wide settings no longer apply to it), and a live one reaches a running model."""
        w = self.sender()
        name = next((n for n, e in self.editors.items() if e is w), None)
        if name is None or self._hp_key is None:
            return
        self.edited.setdefault(self._hp_key, set()).add(name)
        live = any(h.name == name and h.live for h in registry.info(self._hp_key).hparams)
        if not live or not self.running or self._hp_key not in self.running_keys:
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
                if self.lr_spin.value() > 0 and "lr" not in self.edited.get(key, ()):  # the panel's rate, unless set per model
                    hp["lr"] = self.lr_spin.value()
                hp.setdefault("batch_size", min(256, max(1, len(ds.train))))
                model = registry.create(key, ds.shape, ds.kind, **hp)
                steps = self.steps_spin.value() or info.recipe.steps
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
        self.session = TrainingSession(trainers, fps=max(self.fps, FRAME_FPS), parent=self,
                                       policy=[TrainingPolicy.of(registry.info(k).recipe) for k in keys])
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
        if self.running and lr > 0:
            for i, t in enumerate(self.session.trainers):
                if not t.model.info.full_batch:
                    try:
                        self.session.set_hparams({"lr": lr}, index=i)
                    except ValueError:
                        pass

    # -- results ---------------------------------------------------------------------------------
    def _init_results(self, keys: list[str], ds) -> None:
        self.comparison.reset([registry.info(k).name for k in keys])
        self.curves = [[] for _ in keys]
        computed, entropy = ds.known_true_entropy()
        self._set_entropy(entropy)
        if not computed:
            # Monte Carlo over the true density: ~0.6 s for moons and circles, so off the GUI thread
            self._entropy_task = self.jobs.run(datasets.dataset_true_entropy, ds, 50_000,
                                               done=lambda value: self._entropy_computed(ds, value),
                                               title="Cannot compute the true entropy")
        self.rows = [{"model": registry.info(k).name, "key": k, "nll": None, "step": 0, "ms": None,
                      "covered": None, "any": None, "n_modes": None, "hq": None, "se": None} for k in keys]
        self._nll_dirty = True
        self._fill_table()

    def _entropy_computed(self, ds, value: float | None) -> None:
        if ds is self.dataset:  # the value is cached on ds as well
            self._set_entropy(value)

    def _set_entropy(self, entropy: float | None) -> None:
        self.true_entropy = entropy
        self.comparison.set_entropy(entropy)
        self._table_dirty = True

    @Slot(object)
    def _on_frame(self, frame: Frame) -> None:
        i, s = frame.index, frame.snapshot
        if s.event == Event.ERROR:
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
        nll = s.nll.nats if s.nll is not None and not s.nll.is_bound else None
        if s.event in EVALUATED and nll is not None and math.isfinite(nll):
            row["nll"], row["se"] = nll, s.nll.stderr
            self.curves[i].append((s.step, nll))
            self._nll_dirty = True
        if "modes_covered" in m:
            row["any"], row["n_modes"], row["hq"] = int(m["modes_covered"]), int(m["n_modes"]), m["high_quality"]
            row["covered"] = int(m.get("modes_quality", m["modes_covered"]))  # the quality-gated count
        if s.event == Event.NONFINITE:
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
        return format_rows(self.rows, self.true_entropy)

    def _fill_table(self) -> None:
        self.comparison.fill_table(self.table_rows())
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
            self.comparison.set_curves(self.curves)
            self._nll_dirty = False
            painted = True
        if getattr(self, "_table_dirty", False):
            self._fill_table()
            painted = True
        if painted:
            self.repaints += 1
