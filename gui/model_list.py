"""The density playground's model list: a list of tickable models that shows its rows and keeps
its mouse wheel to itself."""

from __future__ import annotations

from PySide6.QtWidgets import QListWidget


class ModelList(QListWidget):
    """The playground's model list: tall enough for its rows (up to ``MAX_ROWS``), and its wheel
    scrolls the list only, never the panel around it as well."""

    MAX_ROWS = 12

    def wheelEvent(self, ev) -> None:  # noqa: N802 (Qt's name)
        super().wheelEvent(ev)
        ev.accept()

    def fit_rows(self) -> None:
        rows = max(4, min(self.count(), self.MAX_ROWS))
        row_h = self.sizeHintForRow(0) if self.count() else self.fontMetrics().height() + 4
        self.setFixedHeight(rows * row_h + 2 * self.frameWidth() + 2)
