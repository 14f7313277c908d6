"""A small drawing of a planned learning-rate schedule, with a mark at the current step."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QSize, Qt
from PySide6.QtGui import QColor, QPainter, QPaintEvent, QPen, QPolygonF
from PySide6.QtWidgets import QSizePolicy, QWidget


class LRCurve(QWidget):
    """The schedule's shape (step along x, rate along y, from 0 to its peak) and the step that
    training has reached. Repaints only when told something new."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("lrCurve")
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setToolTip("planned learning rate over the run (the mark: where training is)")
        self.steps = np.zeros(0)
        self.lrs = np.zeros(0)
        self.marker: int | None = None

    def sizeHint(self) -> QSize:
        return QSize(200, 48)

    def minimumSizeHint(self) -> QSize:
        return QSize(60, 48)

    def set_curve(self, steps: np.ndarray, lrs: np.ndarray) -> None:
        self.steps, self.lrs = np.asarray(steps, np.float64), np.asarray(lrs, np.float64)
        self.update()

    def set_marker(self, step: int | None) -> None:
        if step != self.marker:
            self.marker = step
            self.update()

    def _point(self, step: float, lr: float, peak: float) -> QPointF:
        r = self.rect().adjusted(3, 3, -3, -3)
        lo, hi = float(self.steps[0]), float(self.steps[-1])
        fx = (step - lo) / (hi - lo) if hi > lo else 0.0
        return QPointF(r.left() + min(1.0, max(0.0, fx)) * r.width(), r.bottom() - lr / peak * r.height())

    def paintEvent(self, event: QPaintEvent) -> None:
        if len(self.steps) < 2 or not np.isfinite(self.lrs).all() or self.lrs.max() <= 0:
            return
        peak = float(self.lrs.max())
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(QPen(QColor("#4c9be8"), 1.5))
        painter.drawPolyline(QPolygonF([self._point(s, v, peak) for s, v in zip(self.steps, self.lrs)]))
        if self.marker is not None:
            lr = float(np.interp(self.marker, self.steps, self.lrs))
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor("#f28e2b"))
            painter.drawEllipse(self._point(self.marker, lr, peak), 3.5, 3.5)
        painter.end()
