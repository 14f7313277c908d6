"""Every metric, plot, tile and table column of the window says what it is and what to watch
(issue 14): a walk over the real window."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtWidgets import QTableWidget, QWidget

from gui.tooltips import METRIC_LABELS


def test_every_plot_table_column_and_metric_label_has_a_tooltip(window):
    plots = window.findChildren(pg.GraphicsView)  # every plot, image strip, heatmap and tile view
    assert len(plots) >= 10
    bare = [f"{type(p).__name__} {p.objectName() or '(unnamed)'} in {p.parent().objectName() or type(p.parent()).__name__}"
            for p in plots if not p.toolTip().strip()]
    assert not bare, bare
    tables = window.findChildren(QTableWidget)
    assert tables
    for t in tables:
        for j in range(t.columnCount()):
            item = t.horizontalHeaderItem(j)
            assert item is not None and item.toolTip().strip(), (t.objectName(), j, item and item.text())
    labels = {w.objectName(): w for w in window.findChildren(QWidget) if w.objectName() in METRIC_LABELS}
    assert set(labels) == set(METRIC_LABELS), set(METRIC_LABELS) - set(labels)  # the list names real labels
    assert not [name for name, w in labels.items() if not w.toolTip().strip()]


def test_every_playground_tile_has_a_tooltip(qtbot, window):
    p = window.playground
    window.tabs.setCurrentWidget(p)
    p.set_combo.setCurrentIndex(p.set_combo.findData("8gaussians"))
    p.set_checked(["rnade", "realnvp"])
    p.steps_spin.setValue(5)
    session = p.play()  # the tiles are made for the models of a run
    assert session is not None
    with qtbot.waitSignal(session.finished, timeout=60000):
        pass
    assert len(p.tiles) == 3
    tips = [t.plot.toolTip() for t in p.tiles]
    assert "training points" in tips[0]
    assert all(tip.startswith(name) and "density" in tip for tip, name in zip(tips[1:], ["RNADE", "RealNVP"])), tips
