"""The Canvas tab's candidates: a grid of RGB tiles (``core.readouts.candidate_tiles``), the pixel
being drawn outlined in each tile with the colour of its p(x = 1)."""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QMouseEvent, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from gui.pixel_canvas import rgb_qimage


def p_colour(p: float) -> QColor:
    """Blue for p(x = 1) = 0, grey at 1/2, orange-red at 1 (grey for NaN: a candidate that does
    not draw this pixel)."""
    if not math.isfinite(float(p)):
        return QColor(150, 150, 150)
    p = float(np.clip(p, 0.0, 1.0))
    lo, mid, hi = np.array([40, 100, 235]), np.array([150, 150, 150]), np.array([245, 90, 30])
    c = lo + (mid - lo) * (p / 0.5) if p < 0.5 else mid + (hi - mid) * ((p - 0.5) / 0.5)
    return QColor(int(c[0]), int(c[1]), int(c[2]))


class CandidateGrid(QWidget):
    """The model's candidates as a grid of RGB tiles; the pixel being drawn is outlined in each
    tile with the colour of its p(x = 1). Click a tile to preview it on the canvas, double-click
    to take it as the drawing."""

    clicked = Signal(int)
    double_clicked = Signal(int)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("candidateGrid")
        self.tiles: np.ndarray | None = None  # (M, H, W, 3) uint8
        self.highlight: tuple[int, list[QColor]] | None = None  # flat pixel, colour per tile
        self.selected = 0
        self.setMinimumSize(200, 200)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def set_tiles(self, tiles: np.ndarray | None, highlight: tuple[int, list[QColor]] | None = None) -> None:
        self.tiles, self.highlight = tiles, highlight
        if tiles is None or self.selected >= len(tiles):
            self.selected = 0
        self.update()

    def _layout(self) -> tuple[int, float, float, float]:
        n = len(self.tiles)
        cols = max(1, math.ceil(math.sqrt(n)))
        rows = math.ceil(n / cols)
        h, w = self.tiles.shape[1:3]
        gap = 4.0
        side = max(1.0, min((self.width() - gap * (cols + 1)) / (cols * w), (self.height() - gap * (rows + 1)) / (rows * h)))
        return cols, side, gap, side * w + gap

    def tile_at(self, pos: QPointF) -> int | None:
        if self.tiles is None or not len(self.tiles):
            return None
        cols, side, gap, step = self._layout()
        h, w = self.tiles.shape[1:3]
        c, r = int((pos.x() - gap / 2) // step), int((pos.y() - gap / 2) // (side * h + gap))
        i = r * cols + c
        return i if 0 <= c < cols and 0 <= i < len(self.tiles) else None

    def mousePressEvent(self, ev: QMouseEvent) -> None:
        i = self.tile_at(ev.position())
        if i is not None:
            self.selected = i
            self.update()
            self.clicked.emit(i)

    def mouseDoubleClickEvent(self, ev: QMouseEvent) -> None:
        i = self.tile_at(ev.position())
        if i is not None:
            self.double_clicked.emit(i)

    def paintEvent(self, _ev) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(40, 40, 40))
        if self.tiles is not None and len(self.tiles):
            cols, side, gap, step = self._layout()
            h, w = self.tiles.shape[1:3]
            for i, tile in enumerate(self.tiles):
                r, c = divmod(i, cols)
                x0, y0 = gap + c * step, gap + r * (side * h + gap)
                p.drawImage(QRectF(x0, y0, side * w, side * h), rgb_qimage(tile))
                if i == self.selected and len(self.tiles) > 1:
                    p.setPen(QPen(QColor(255, 255, 255, 120), 1))
                    p.setBrush(Qt.BrushStyle.NoBrush)
                    p.drawRect(QRectF(x0 - 1.5, y0 - 1.5, side * w + 3, side * h + 3))
                if self.highlight is not None:
                    pix, colours = self.highlight
                    pr, pc = divmod(pix, w)
                    p.setPen(QPen(colours[min(i, len(colours) - 1)], max(1.5, side / 4)))
                    p.setBrush(Qt.BrushStyle.NoBrush)
                    p.drawRect(QRectF(x0 + pc * side, y0 + pr * side, side, side))
        p.end()
