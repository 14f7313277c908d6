"""Looks shared by the tabs: one palette for the models of a comparison and for candidates, and
labels that keep their place whatever their text."""

from __future__ import annotations

from PySide6.QtWidgets import QLabel, QSizePolicy

#: one colour per model (playground) or candidate (sequences), in order; cycled when there are more
COLORS = ["#4c9be8", "#f28e2b", "#59a14f", "#e15759", "#b07aa1", "#edc948", "#76b7b2", "#ff9da7"]


def steady_label(label: QLabel, lines: int = 2) -> QLabel:
    """Make ``label`` hold its place whatever its text: word-wrapped, ``lines`` lines high, and
    asking for no width of its own, so that a longer or shorter message never moves or resizes
    the widgets around it (what the user aims at stays put). Returns the label."""
    label.setWordWrap(True)
    m = label.contentsMargins()
    label.setFixedHeight(lines * label.fontMetrics().lineSpacing() + m.top() + m.bottom() + 4)
    label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
    label.setMinimumWidth(1)
    return label
