"""The density playground's comparison: the models' held-out NLL curves (the true entropy, where
known, as a dashed line) beside their comparison table, with buttons to export the table as CSV
and the view as PNG."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QPushButton, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

from gui.style import COLORS

TABLE_COLUMNS = ["model", "held-out NLL (nats)", "true entropy", "gap", "ms / step", "modes covered",
                 "high quality %", "step"]
#: what each column is, in one line, and what to watch (the headers' tooltips)
COLUMN_TIPS = [
    "The density model (its colour is its curve's and its tile's).",
    "Mean −log p(x) of the held-out points, nats per point: lower is better; it cannot go below the true "
    "entropy except by the held-out sample's noise.",
    "The data's true entropy (nats): the best held-out NLL any model can reach on average.",
    "Held-out NLL − true entropy (nats): 0 is perfect. ± is the 95 % interval of the held-out mean (1.96 "
    "standard errors over the held-out points): a gap inside it, even a negative one, is sampling noise.",
    "Milliseconds per training step: the cost of the model.",
    "Modes with enough high-quality samples (within 3 std of the mode) to count: at least a tenth of a "
    "mode's fair share. A ring of samples through the modes and the gaps between them does not cover them. "
    "In brackets: PacGAN's count (any one high-quality sample) when it differs.",
    "Share of the samples within 3 std of their nearest mode (VEEGAN / PacGAN): watch it beside the mode "
    "count; a high count at a low share means samples spread between the modes.",
    "Training steps done.",
]


def _gap(r: dict[str, Any], true_entropy: float | None) -> str:
    """``+0.0123 ± 0.0456``: the gap and the 95 % interval of the held-out mean's noise."""
    if r["nll"] is None or true_entropy is None:
        return ""
    se = r.get("se")
    noise = f" ± {1.96 * se:.4f}" if se is not None and math.isfinite(se) else ""
    return f"{r['nll'] - true_entropy:+.4f}{noise}"


def _modes(r: dict[str, Any]) -> str:
    if r["covered"] is None:
        return ""
    text = f"{r['covered']}/{r['n_modes']}"
    if r.get("any") is not None and r["any"] != r["covered"]:
        text += f" ({r['any']} with any sample)"
    return text


def format_rows(rows: list[dict[str, Any]], true_entropy: float | None) -> list[list[str]]:
    """The table's text, one list per model row (``model``, ``nll``, ``se`` (its standard
    error), ``ms``, ``covered`` (the quality-gated mode count), ``any`` (PacGAN's), ``n_modes``,
    ``hq``, ``step`` and, when it stopped, ``error``), in TABLE_COLUMNS order."""
    out = []
    for r in rows:
        out.append([
            r["model"],
            f"stopped: {r['error']}" if r.get("error") else "" if r["nll"] is None else f"{r['nll']:.4f}",
            "" if true_entropy is None else f"{true_entropy:.4f}",
            _gap(r, true_entropy),
            "" if r["ms"] is None else f"{r['ms']:.2f}",
            _modes(r),
            "" if r["hq"] is None else f"{100 * r['hq']:.1f}",
            str(r["step"]),
        ])
    return out


class ComparisonView(QWidget):
    """NLL curves (left) and the comparison table with its export buttons (right)."""

    export_table_clicked = Signal()
    export_png_clicked = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.nll_plot = pg.PlotWidget()
        self.nll_plot.setObjectName("nllPlot")
        self.nll_plot.setLabel("bottom", "step")
        self.nll_plot.setLabel("left", "held-out NLL (nats)")
        self.nll_plot.addLegend(offset=(-10, 10))
        self.entropy_line = pg.InfiniteLine(angle=0, pen=pg.mkPen("w", style=Qt.PenStyle.DashLine),
                                            label="true entropy", labelOpts={"position": 0.9})
        self.nll_lines: list[pg.PlotDataItem] = []
        self.table = QTableWidget(0, len(TABLE_COLUMNS), objectName="compareTable")
        self.table.setHorizontalHeaderLabels(TABLE_COLUMNS)
        self.table.verticalHeader().setVisible(False)
        for j, tip in enumerate(COLUMN_TIPS):
            self.table.horizontalHeaderItem(j).setToolTip(tip)
        self.table.setToolTip("The models side by side; hover a column header for what it means.")
        self.nll_plot.setToolTip("Held-out NLL (nats) of each model against training steps; the dashed line is the "
                                 "true entropy. Watch the curves fall towards it; one that rises again overfits.")
        csv_btn = QPushButton("Table as CSV…", objectName="exportTable", toolTip="Save the table as a CSV file")
        png_btn = QPushButton("View as PNG…", objectName="exportPng", toolTip="Save the tiles and curves as an image")
        csv_btn.clicked.connect(self.export_table_clicked)
        png_btn.clicked.connect(self.export_png_clicked)
        bl = QHBoxLayout(self)
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

    def reset(self, names: list[str]) -> None:
        """One empty NLL curve per model, in the models' colours."""
        for item in self.nll_plot.listDataItems():
            self.nll_plot.removeItem(item)
        self.nll_plot.plotItem.legend.clear()
        self.nll_lines = [self.nll_plot.plot(name=name, pen=pg.mkPen(COLORS[i % len(COLORS)], width=2))
                          for i, name in enumerate(names)]

    def set_entropy(self, entropy: float | None) -> None:
        """Show the true entropy as a dashed line, or no line when it is unknown."""
        if entropy is not None:
            if self.entropy_line.scene() is None:
                self.nll_plot.addItem(self.entropy_line)
            self.entropy_line.setValue(entropy)
        elif self.entropy_line.scene() is not None:
            self.nll_plot.removeItem(self.entropy_line)

    def set_curves(self, curves: list[list[tuple[float, float]]]) -> None:
        """Redraw each model's (step, NLL) points."""
        for line, pts in zip(self.nll_lines, curves):
            if pts:
                a = np.asarray(pts, np.float64)
                line.setData(a[:, 0], a[:, 1])

    def fill_table(self, rows: list[list[str]]) -> None:
        self.table.setRowCount(len(rows))
        for i, row in enumerate(rows):
            for j, text in enumerate(row):
                self.table.setItem(i, j, QTableWidgetItem(text))
        self.table.resizeColumnsToContents()
