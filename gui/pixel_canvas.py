"""The Canvas tab's drawing widget: a thin Qt view of a :class:`core.canvas_state.CanvasState`.

The mouse edits the state (left button: the tool; right button: its opposite; one undo step per
stroke); the widget repaints when the state says it changed. Its own overlays, which are view
only: the model's preview ("ghost") over the unknown pixels and a highlighted pixel.
"""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QImage, QMouseEvent, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from core.canvas_state import CanvasState
from core.readouts import INK, PAPER

REGION_TINT = np.array([60, 110, 210], np.float32)


def rgb_qimage(rgb: np.ndarray) -> QImage:
    """A QImage copy of an (H, W, 3) uint8 RGB array."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    h, w = rgb.shape[:2]
    data = rgb.tobytes()  # QImage only borrows the buffer: keep it alive until the copy
    image = QImage(data, w, h, 3 * w, QImage.Format.Format_RGB888)
    return image.copy()


class PixelCanvas(QWidget):
    """The drawing of ``state``, the region tinted in the region mode, the row split in the rows
    mode, and the overlays ``ghost`` / ``ghost_mask`` and ``highlight``."""

    def __init__(self, state: CanvasState, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("pixelCanvas")
        self.state = state
        self.shape = state.shape
        self.ghost: np.ndarray | None = None  # (H, W, 3) uint8 over the unknown pixels, or None
        self.ghost_mask: np.ndarray | None = None
        self.highlight: tuple[int, int, QColor] | None = None
        for event in (state.events.edited, state.events.mode, state.events.row):
            event.connect(self._changed)
        self.setMinimumSize(224, 224)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMouseTracking(False)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)

    def _changed(self, *_args) -> None:
        self.update()

    # -- geometry --------------------------------------------------------------------------------
    def cell(self) -> tuple[float, float, float]:
        """Side of one pixel on screen and the canvas's top-left corner."""
        h, w = self.shape
        side = max(1.0, min(self.width() / w, self.height() / h))
        return side, (self.width() - side * w) / 2, (self.height() - side * h) / 2

    def cell_at(self, pos: QPointF) -> tuple[int, int] | None:
        side, ox, oy = self.cell()
        r, c = math.floor((pos.y() - oy) / side), math.floor((pos.x() - ox) / side)
        return (r, c) if 0 <= r < self.shape[0] and 0 <= c < self.shape[1] else None

    def cell_centre(self, r: int, c: int) -> QPointF:
        side, ox, oy = self.cell()
        return QPointF(ox + (c + 0.5) * side, oy + (r + 0.5) * side)

    # -- mouse -----------------------------------------------------------------------------------
    def mousePressEvent(self, ev: QMouseEvent) -> None:
        if ev.button() not in (Qt.MouseButton.LeftButton, Qt.MouseButton.RightButton):
            return super().mousePressEvent(ev)
        self.state.begin_stroke(opposite=ev.button() == Qt.MouseButton.RightButton)
        cell = self.cell_at(ev.position())
        if cell is not None:
            self.state.stroke_to(cell)
        ev.accept()

    def mouseMoveEvent(self, ev: QMouseEvent) -> None:
        if not self.state.stroking:
            return super().mouseMoveEvent(ev)
        self.state.stroke_to(self.cell_at(ev.position()))  # None: left the canvas
        ev.accept()

    def mouseReleaseEvent(self, ev: QMouseEvent) -> None:
        if not self.state.stroking:
            return super().mouseReleaseEvent(ev)
        self.state.end_stroke()
        ev.accept()

    # -- painting --------------------------------------------------------------------------------
    def paintEvent(self, _ev) -> None:
        s = self.state
        rgb = np.where(s.image[..., None] > 0, INK, PAPER).astype(np.float32)
        if self.ghost is not None and self.ghost_mask is not None:
            rgb[self.ghost_mask] = self.ghost[self.ghost_mask]
        if s.mode == "region":
            rgb[s.region] = 0.55 * rgb[s.region] + 0.45 * REGION_TINT
        side, ox, oy = self.cell()
        h, w = self.shape
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(40, 40, 40))
        p.drawImage(QRectF(ox, oy, side * w, side * h), rgb_qimage(rgb))  # nearest-neighbour
        if side >= 8:
            p.setPen(QPen(QColor(255, 255, 255, 22), 1))
            for i in range(1, w):
                p.drawLine(QPointF(ox + i * side, oy), QPointF(ox + i * side, oy + h * side))
            for i in range(1, h):
                p.drawLine(QPointF(ox, oy + i * side), QPointF(ox + w * side, oy + i * side))
        split = s.split_row
        if split is not None and 0 < split < h:
            p.setPen(QPen(QColor(240, 80, 80), 2, Qt.PenStyle.DashLine))
            y = oy + split * side
            p.drawLine(QPointF(ox, y), QPointF(ox + w * side, y))
        if self.highlight is not None:
            r, c, colour = self.highlight
            p.setPen(QPen(colour, max(2.0, side / 6)))
            p.setBrush(Qt.BrushStyle.NoBrush)
            p.drawRect(QRectF(ox + c * side, oy + r * side, side, side))
        p.end()
