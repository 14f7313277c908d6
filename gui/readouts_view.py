"""The Canvas tab's readouts: the per-pixel NLL heatmap of the selected model with its total, the
typicality of the drawing, and a table of every exact model's log p and bits per dimension. A
thin view of a :class:`core.readouts.Readouts`, and the one-job-at-a-time scheduling of the
scoring: debounced while drawing, at most one job running and one waiting."""

from __future__ import annotations

import asyncio
import math
from typing import Any, Callable

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QTimer, Slot
from PySide6.QtWidgets import QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

from core.readouts import ATYPICAL_PCT, CanvasModel, Readouts, compute_readouts
from gui.jobs import Jobs
from gui.style import SteadyLabel

TYPICALITY_TIP = (
    "Typicality: how central the drawing's −log p(x) lies among the validation digits' NLLs "
    "(a two-sided test, Nalisnick et al. 2019). 100 % = as likely as the median digit; it falls "
    f"towards 0 % in BOTH directions. Below {ATYPICAL_PCT:g} % the drawing is atypical: far less "
    "likely than digits (a scribble, a full canvas) or far MORE likely (a blank canvas: a high "
    "likelihood alone does not make a digit).")
#: the column headers' tooltips: what each is, and what to watch
COLUMN_TIPS = [
    "The models with an exact likelihood (the selected one draws the heatmap).",
    "log p(x) of the drawing in nats: higher is more likely. Compare models on the same drawing only.",
    "−log p(x) / (D ln 2), D the pixels: bits per pixel. Lower is more likely; a validation digit scores about 0.1-0.2.",
    TYPICALITY_TIP,
]


class ReadoutsView(QWidget):
    """``key()`` says what the readouts depend on (the drawing's version first); ``inputs()``
    gives the rest of :func:`~core.readouts.compute_readouts`'s arguments (entries, selected
    index, image, digit, validation digits or None), or None when there is no model;
    ``selected()`` is the model whose typicality is shown."""

    def __init__(self, shape: tuple[int, int], jobs: Jobs, key: Callable[[], tuple],
                 inputs: Callable[[], tuple | None], selected: Callable[[], CanvasModel | None],
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.jobs, self.key, self.inputs, self.selected = jobs, key, inputs, selected
        self.readouts: Readouts | None = None
        self.heat: np.ndarray | None = None
        self.total_nll: float | None = None
        self.percentile: float | None = None
        self._task: asyncio.Task | None = None
        self._again = False
        self._shown_key: tuple | None = None
        self._timer = QTimer(self, singleShot=True, interval=120)  # debounce while drawing
        self._timer.timeout.connect(self.update_readouts)
        h, w = shape
        self.heat_widget = pg.GraphicsLayoutWidget()
        self.heat_widget.setObjectName("nllHeatmap")
        self.heat_plot = self.heat_widget.addPlot(title="per-pixel NLL")
        self.heat_plot.setMenuEnabled(False)
        self.heat_plot.hideButtons()
        self.heat_plot.hideAxis("left")
        self.heat_plot.hideAxis("bottom")
        self.heat_plot.invertY(True)
        self.heat_plot.setAspectLocked(True)
        self.heat_plot.setMouseEnabled(False, False)
        self.heat_image = pg.ImageItem(axisOrder="row-major")
        self.heat_plot.addItem(self.heat_image)
        self.heat_plot.setRange(xRange=(0, w), yRange=(0, h), padding=0)
        self.colour_bar = pg.ColorBarItem(values=(0.0, 1.0), colorMap=pg.colormap.get("inferno"),
                                          interactive=False, label="nats")
        self.colour_bar.setImageItem(self.heat_image, insert_in=self.heat_plot)
        self.total_label = SteadyLabel("", 2, objectName="canvasTotal")
        self.pct_label = SteadyLabel("", 2, objectName="canvasPercentile")
        self.table = QTableWidget(0, 4, objectName="canvasReadouts")
        self.table.setHorizontalHeaderLabels(["model", "log p (nats)", "bits/dim", "typicality %"])
        self.table.verticalHeader().setVisible(False)
        for j, tip in enumerate(COLUMN_TIPS):
            self.table.horizontalHeaderItem(j).setToolTip(tip)
        self.table.setToolTip("Every exact model's score of the drawing; hover a column header for what it means.")
        self.heat_widget.setToolTip("Per-pixel NLL −log p(x_d | x_<d) of the selected model (nats; they sum to "
                                    "−log p(x)). Bright pixels surprised the model: watch where a stroke is unlikely.")
        self.total_label.setToolTip("−log p(x) of the drawing under the selected model: the sum of the heatmap. "
                                    "Lower is more likely; see typicality for whether that is digit-like.")
        self.pct_label.setToolTip(TYPICALITY_TIP)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.heat_widget, 3)
        layout.addWidget(self.total_label)
        layout.addWidget(self.pct_label)
        layout.addWidget(self.table, 2)

    # -- scheduling ------------------------------------------------------------------------------
    @Slot()
    def schedule(self, *_args: Any) -> None:
        """Score the drawing soon (debounced)."""
        self._timer.start()

    def stop(self) -> None:
        self._timer.stop()

    def current(self) -> bool:
        """True when the readouts shown are those of the drawing and model as they are now."""
        return self._task is None and self._shown_key == self.key()

    @Slot()
    def update_readouts(self) -> asyncio.Task | None:
        """Score the drawing with every exact model, off the GUI thread. One job at a time: an
        edit meanwhile runs another when it ends (while drawing, at most one is ever waiting)."""
        self._timer.stop()
        if self._task is not None:
            self._again = True
            return self._task
        inputs = self.inputs()
        if inputs is None:
            return None
        key, entries = self.key(), inputs[0]
        self._task = self.jobs.run(compute_readouts, key[0], *inputs, done=lambda r: self._done(r, entries, key),
                                   failed=lambda _msg: self._ended(key), title="Cannot score the drawing")
        return self._task

    def _ended(self, key: tuple) -> None:
        self._task = None
        if self._again or key != self.key():
            self._again = False
            self._timer.start()

    def _done(self, r: Readouts, entries: list[CanvasModel], key: tuple) -> None:
        for i, pct in r.percentiles.items():
            entries[i].percentiles = pct  # cached: computed once per model
        self._ended(key)
        if key != self.key():
            return  # the drawing or the model changed meanwhile: a newer job follows
        self.readouts, self._shown_key = r, key
        self.heat, self.total_nll = r.heat, r.total
        self.percentile = self.show_readouts(r, entries, self.selected())

    def show_readouts(self, r: Readouts, entries: list[CanvasModel], selected: CanvasModel | None) -> float | None:
        """Show ``r`` (scored with ``entries``); the typicality of the ``selected`` model (None
        when it has no exact likelihood)."""
        self.table.setRowCount(len(r.rows))
        for i, row in enumerate(r.rows):
            pct = row["typicality"]
            cells = [row["name"], f"{row['log_p']:.2f}", f"{row['bpd']:.4f}", "" if pct is None else f"{pct:.1f}"]
            for j, text in enumerate(cells):
                self.table.setItem(i, j, QTableWidgetItem(text))
        self.table.resizeColumnsToContents()
        if r.heat is not None:
            top = max(float(r.heat.max()), 1e-3)
            self.heat_image.setImage(r.heat, autoLevels=False, levels=(0.0, top))
            self.colour_bar.setLevels((0.0, top))
            given = f" given digit {r.digit}" if r.digit is not None else ""
            self.total_label.setText(f"total −log p(x){given} = {r.total:.4f} nats "
                                     f"(the sum of the heatmap; {r.total / (r.heat.size * math.log(2)):.4f} bits/dim)")
        else:
            self.heat_image.clear()
            self.total_label.setText("; ".join(r.notes))
        sel = next((row for row in r.rows if entries[row["index"]] is selected), None)
        percentile = None if sel is None else sel["typicality"]
        if percentile is None:
            self.pct_label.setText("typicality: needs an exact-likelihood model")
        else:
            self.pct_label.setText(typicality_text(sel["name"], percentile, sel["likelier_than"]))
        return percentile


def typicality_text(name: str, typical: float, likelier: float) -> str:
    """The typicality line: the two-sided score, what it means, and in which direction."""
    side = (f"more likely than {likelier:.1f} % of validation digits" if likelier >= 50
            else f"less likely than {100 - likelier:.1f} % of validation digits")
    if typical < ATYPICAL_PCT:
        why = "too plain to be a digit" if likelier >= 50 else "unlike a digit"
        return f"typicality ({name}): {typical:.1f} % — atypical for this model: {side} ({why})"
    return (f"typicality ({name}): {typical:.1f} % (100 % = the median validation digit; "
            f"below {ATYPICAL_PCT:g} % = atypical) — {side}")
