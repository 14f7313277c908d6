"""Looks shared by the tabs: one palette for the models of a comparison and for candidates, and
labels that keep their place whatever their text."""

from __future__ import annotations

from PySide6.QtCore import QSize
from PySide6.QtWidgets import QLabel, QSizePolicy, QWidget

#: one colour per model (playground) or candidate (sequences), in order; cycled when there are more
COLORS = ["#4c9be8", "#f28e2b", "#59a14f", "#e15759", "#b07aa1", "#edc948", "#76b7b2", "#ff9da7"]


class SteadyLabel(QLabel):
    """A word-wrapped label ``lines`` lines high that asks for no width of its own and whose
    size never depends on its text, so that a longer or shorter message never moves or resizes
    the widgets around it (what the user aims at stays put). Text beyond ``lines`` is cut."""

    def __init__(self, text: str = "", lines: int = 2, parent: QWidget | None = None, **kwargs):
        super().__init__(text, parent, **kwargs)
        self.setWordWrap(lines > 1)  # one line: cut at the right, never half a second line
        m = self.contentsMargins()
        self._height = lines * self.fontMetrics().lineSpacing() + m.top() + m.bottom() + 4
        self.setFixedHeight(self._height)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)

    def hasHeightForWidth(self) -> bool:  # noqa: N802 (Qt's name)
        return False

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(40, self._height)

    def minimumSizeHint(self) -> QSize:  # noqa: N802
        return QSize(1, self._height)


def fixed_width(label: QLabel, widest: str) -> QLabel:
    """Give ``label`` the width of its ``widest`` text for good: a value beside a slider that
    changes length must not resize the slider under the mouse. Returns the label."""
    m = label.contentsMargins()
    label.setFixedWidth(label.fontMetrics().horizontalAdvance(widest) + m.left() + m.right() + 6)
    return label
