"""The Canvas tab's controls, one group box each: the model, the drawing tools, the completion.
Widgets and layout only: the panel (:mod:`gui.canvas`) connects them to its state and jobs."""

from __future__ import annotations

import math
from pathlib import Path

from PySide6.QtCore import QSettings, Qt, Slot
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (QButtonGroup, QComboBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel,
                               QProgressBar, QPushButton, QSlider, QSpinBox, QWidget)

from core.readouts import CanvasModel
from gui.style import SteadyLabel, fixed_width

#: the digits a class-conditional model can be asked for
N_CLASSES = 10
#: the animation's speed slider: 2**v pixels per second for v < SPEED_MAX, SPEED_MAX = flat out
SPEED_MAX = 13
#: the drawing tools: name, button text, tool tip
TOOL_BUTTONS = (("pen", "Pen", "draw ink (P)"), ("eraser", "Eraser", "erase ink (E)"),
                ("region", "Region", "mark pixels for the model to fill (F); order-agnostic models"),
                ("unregion", "Unmark", "remove pixels from the region (Shift+F)"))


def pixels_per_s(position: int) -> float | None:
    """The animation's speed for a slider position: 2**position pixels a second, None: flat out."""
    return None if position >= SPEED_MAX else float(2 ** position)


def setting(s: QSettings, key: str, default: int) -> int:
    """An integer setting, ``default`` when it is missing or not a number."""
    try:
        return int(s.value(key, default))
    except (TypeError, ValueError):
        return default


def bind_keys(widget: QWidget, bindings) -> None:
    """Shortcuts of ``widget``: (key sequence, slot) pairs."""
    for keys, slot in bindings:
        QShortcut(QKeySequence(keys), widget, slot)


def row_of(*widgets: QWidget) -> QHBoxLayout:
    row = QHBoxLayout()
    for w in widgets:
        row.addWidget(w)
    return row


def button(text: str, name: str, tip: str = "") -> QPushButton:
    b = QPushButton(text, objectName=name)
    if tip:
        b.setToolTip(tip)
    return b


class ModelBox(QGroupBox):
    """The model on the canvas, the digit of a conditional model, reload and fine-tune."""

    def __init__(self, weights_dir: Path, parent: QWidget | None = None):
        super().__init__("Model", parent)
        self.model_combo = QComboBox(objectName="canvasModel")
        self.model_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.model_combo.setMinimumContentsLength(24)
        self.models_label = SteadyLabel("models load when the tab opens", 2, objectName="canvasModelsLabel")
        self.reload_btn = button("Reload", "canvasReload",
                                 f"scan {weights_dir} again and take the Training tab's current weights")
        self.finetune_btn = button("Fine-tune in Training tab", "canvasFineTune",
                                   "load this checkpoint in the Training tab to train it further")
        self.digit_combo = QComboBox(objectName="canvasDigit")
        self.digit_combo.addItem("Any", None)
        for d in range(N_CLASSES):
            self.digit_combo.addItem(str(d), d)
        self.digit_combo.setToolTip("the digit a class-conditional model draws or is conditioned on")
        f = QFormLayout(self)
        f.addRow(self.model_combo)
        f.addRow(row_of(self.reload_btn, self.finetune_btn))
        f.addRow("Digit", self.digit_combo)
        f.addRow(self.models_label)

    def fill(self, entries: list[CanvasModel], keep: str | None) -> int:
        """List ``entries`` (without signals) and select the one with key ``keep``, else the best
        held-out likelihood; the index selected (-1: none)."""
        self.model_combo.blockSignals(True)
        self.model_combo.clear()
        for e in entries:
            self.model_combo.addItem(e.label, e.key)
        idx = next((i for i, e in enumerate(entries) if e.key == keep), -1)
        if idx < 0 and entries:
            scored = [(e.valid_nll if e.valid_nll is not None else math.inf, i) for i, e in enumerate(entries)]
            idx = min(scored)[1]
        self.model_combo.setCurrentIndex(idx)
        self.model_combo.blockSignals(False)
        return idx

    def summary(self, n: int, problems: list[str], weights_dir: Path) -> None:
        text = f"{n} model{'s' if n != 1 else ''} on the canvas" if n else (
            f"No model: put binary-image checkpoints in {weights_dir} or train one in the Training tab.")
        if problems:
            text += "\n" + "\n".join(problems)
        self.models_label.setText(text)


class DrawBox(QGroupBox):
    """The tools (pen, eraser, region, unmark), brush size, undo / redo / clear, a random digit."""

    def __init__(self, tool: str, brush: int, parent: QWidget | None = None):
        super().__init__("Draw", parent)
        self.tool_buttons: dict[str, QPushButton] = {}
        self.tool_group = QButtonGroup(self)
        for name, text, tip in TOOL_BUTTONS:
            b = QPushButton(text, objectName=f"tool_{name}", checkable=True)
            b.setToolTip(tip + "; the right mouse button does the opposite")
            self.tool_group.addButton(b)
            self.tool_buttons[name] = b
        self.tool_buttons[tool].setChecked(True)
        self.brush_spin = QSpinBox(objectName="canvasBrush", minimum=1, maximum=3, value=brush)
        self.brush_spin.setToolTip("brush size in pixels (1, 2 or 3)")
        self.undo_btn = button("Undo", "canvasUndo")
        self.redo_btn = button("Redo", "canvasRedo")
        self.clear_btn = button("Clear", "canvasClear", "clear the drawing and the region (Delete)")
        self.clear_region_btn = button("Clear region", "canvasClearRegion")
        self.digit_btn = button("Random digit", "canvasRandomDigit", "a random digit of the validation set (R)")
        f = QFormLayout(self)
        f.addRow(row_of(*self.tool_buttons.values()))
        f.addRow("Brush", self.brush_spin)
        f.addRow(row_of(self.undo_btn, self.redo_btn, self.clear_btn))
        f.addRow(row_of(self.clear_region_btn, self.digit_btn))
        self._tips = {b: b.toolTip() for b in self._region_widgets()}

    def _region_widgets(self) -> tuple[QPushButton, ...]:
        return self.tool_buttons["region"], self.tool_buttons["unregion"], self.clear_region_btn

    def allow_region(self, why_not: str | None) -> None:
        """The region tools work only with a model that can fill a region: disabled otherwise,
        their tooltip saying ``why_not``."""
        for b in self._region_widgets():
            b.setEnabled(why_not is None)
            b.setToolTip(self._tips[b] if why_not is None else why_not)

    def restore_settings(self, s: QSettings) -> None:
        self.brush_spin.setValue(setting(s, "canvas/brush", 1))

    def save_settings(self, s: QSettings) -> None:
        s.setValue("canvas/brush", self.brush_spin.value())


class CompleteBox(QGroupBox):
    """Rows or region, row k, candidates, complete / animate / stop, speed, sample, progress."""

    def __init__(self, rows: int, row: int, parent: QWidget | None = None):
        super().__init__("Complete", parent)
        self.mode_combo = QComboBox(objectName="canvasMode")
        self.mode_combo.addItem("Complete the rows below row k", "rows")
        self.mode_combo.addItem("Complete the painted region", "region")
        self.row_spin = QSpinBox(objectName="canvasRow", minimum=0, maximum=rows, value=row)
        self.row_spin.setToolTip("rows above k are kept as drawn; the model draws the rest")
        self.n_spin = QSpinBox(objectName="canvasN", minimum=1, maximum=64, value=4)
        self.n_spin.setToolTip("candidates to draw")
        self.complete_btn = button("Complete", "canvasComplete", "complete the drawing N times at once (Space)")
        self.animate_btn = button("Animate", "canvasAnimate", "draw the completion pixel by pixel (A)")
        self.stop_btn = button("Stop", "canvasStop", "stop the animation (Esc)")
        self.sample_btn = button("Sample", "canvasSample", "N samples from the model, ignoring the drawing (S)")
        self.speed = QSlider(Qt.Orientation.Horizontal, objectName="canvasSpeed")
        self.speed.setRange(0, SPEED_MAX)
        self.speed.setValue(6)
        self.speed.setToolTip("pixels per second of the animation: 1, 2, 4 … 4096, or flat out")
        self.speed_label = fixed_width(QLabel(), f"{2 ** (SPEED_MAX - 1)} px/s")
        self.speed.valueChanged.connect(self._on_speed)
        self._on_speed(self.speed.value())
        self.progress = QProgressBar(objectName="canvasProgress")
        self.progress.setTextVisible(True)
        self._busy_text = ""
        self.busy(False)
        f = QFormLayout(self)
        f.addRow(self.mode_combo)
        f.addRow("Row k", self.row_spin)
        f.addRow("Candidates", self.n_spin)
        f.addRow(row_of(self.complete_btn, self.animate_btn, self.stop_btn))
        speed_row = QHBoxLayout()
        speed_row.addWidget(self.speed, 1)
        speed_row.addWidget(self.speed_label)
        f.addRow("Speed", speed_row)
        f.addRow(self.sample_btn)
        f.addRow(self.progress)

    def restore_settings(self, s: QSettings) -> None:
        self.n_spin.setValue(setting(s, "canvas/n", 4))
        self.speed.setValue(setting(s, "canvas/speed", 6))
        self.row_spin.setValue(setting(s, "canvas/row", self.row_spin.maximum() // 2))

    def save_settings(self, s: QSettings) -> None:
        s.setValue("canvas/n", self.n_spin.value())
        s.setValue("canvas/speed", self.speed.value())
        s.setValue("canvas/row", self.row_spin.value())

    def pixels_per_s(self) -> float | None:
        return pixels_per_s(self.speed.value())

    @Slot(int)
    def _on_speed(self, _v: int) -> None:
        rate = self.pixels_per_s()
        self.speed_label.setText("flat out" if rate is None else f"{rate:g} px/s")

    def busy(self, on: bool, text: str = "") -> None:
        """The progress bar as a busy indicator (indeterminate, with ``text``) or idle."""
        self._busy_text = text if on else ""
        if on:
            self.progress.setRange(0, 0)
            self.progress.setFormat(text)
        else:
            self.progress.setRange(0, 1)
            self.progress.setValue(0)
            self.progress.setFormat("%p%")

    def show_progress(self, done: int, total: int) -> None:
        """A busy job's progress (``done`` of ``total`` pixels drawn): the bar moves; ignored once
        the job has ended."""
        if not self._busy_text or total <= 0:
            return
        self.progress.setRange(0, total)
        self.progress.setValue(min(done, total))
        self.progress.setFormat(f"{self._busy_text} %p%")
