"""The density playground's small multiples: one tile per model (a density heatmap in 2D, a
curve over a histogram in 1D, with samples and a flow's warped grid), the first one showing the
data and, where known, the true density; it takes painting strokes when painting is on."""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QGraphicsDropShadowEffect

from core.data import toy
from core.protocol import Visuals, grid_points
from gui.tooltips import tile_tip

#: density grid per axis in the tiles: 64 keeps a RealNVP's visuals at ~25 ms (96: ~75 ms)
RES = 64


class PaintViewBox(pg.ViewBox):
    """A ViewBox that hands mouse presses and drags to ``painter(x, y, first)`` when set."""

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.painter = None

    def mouseDragEvent(self, ev, axis=None):
        if self.painter is None:
            return super().mouseDragEvent(ev, axis)
        ev.accept()
        p = self.mapSceneToView(ev.scenePos())
        self.painter(p.x(), p.y(), ev.isStart())

    def mouseClickEvent(self, ev):
        if self.painter is None or ev.button() != Qt.MouseButton.LeftButton:
            return super().mouseClickEvent(ev)
        ev.accept()
        p = self.mapSceneToView(ev.scenePos())
        self.painter(p.x(), p.y(), True)


def clipped_lines(warp: np.ndarray, bounds) -> tuple[np.ndarray, np.ndarray]:
    """A flow's warped lines (L, P, 2) as one NaN-separated polyline (x, y), cut where they
    leave ``bounds`` (the tile's view): no line is drawn off into the distance."""
    sep = np.full((warp.shape[0], 1, 2), np.nan, np.float32)
    lines = np.concatenate([warp, sep], 1).reshape(-1, 2)
    (x0, x1), (y0, y1) = bounds
    outside = ~((lines[:, 0] >= x0) & (lines[:, 0] <= x1) & (lines[:, 1] >= y0) & (lines[:, 1] <= y1))
    lines[outside] = np.nan
    return np.ascontiguousarray(lines[:, 0]), np.ascontiguousarray(lines[:, 1])


def grid_columns(n: int, bounds, width: int, height: int) -> int:
    """Columns of a grid of ``n`` tiles in a ``width`` x ``height`` area whose tiles are closest
    in shape to the data's view (so that heatmaps fill their tiles); at least 2 for 2 tiles or more."""
    if n < 2:
        return 1
    w, h = max(width, 1), max(height, 1)
    (x0, x1), *rest = bounds
    want = (x1 - x0) / (rest[0][1] - rest[0][0]) if rest else 1.6
    shapes = [(abs(math.log((w / c) / (h / math.ceil(n / c)) / want)), c) for c in range(2, n + 1)]
    return min(shapes)[1]


def true_density_image(ds, bounds) -> np.ndarray | None:
    """A toy set's true density over the tiles' grid (float32, C-contiguous), or None when unknown."""
    if not ds.meta.get("has_density"):
        return None
    lp = toy.log_density(ds.name, grid_points(bounds, RES), noise=ds.meta.get("noise"))
    if lp is None:
        return None
    return np.ascontiguousarray(np.exp(lp).reshape((RES,) * len(bounds)), dtype=np.float32)


class Tile:
    """One small multiple: a density heatmap (2D) or curve (1D), data, samples, flow warp."""

    def __init__(self, layout: pg.GraphicsLayout, row: int, col: int, title: str, dim: int, color: str,
                 paintable: bool = False):
        self.dim = dim
        self.vb = PaintViewBox() if paintable else pg.ViewBox()
        self.plot = layout.addPlot(row=row, col=col, viewBox=self.vb)
        self.plot.setToolTip(tile_tip(title, first=paintable))  # the data tile is the paintable one
        self.plot.setMenuEnabled(False)
        self.plot.hideButtons()
        # the title inside the view, at its top: a title row would make each tile as wide as
        # its title asks, and tiles of different widths cannot share one view
        self.title = pg.LabelItem(title, color="#dddddd")
        self.title.setParentItem(self.vb)
        self.title.anchor(itemPos=(0.5, 0.0), parentPos=(0.5, 0.0), offset=(0, 2))
        shadow = QGraphicsDropShadowEffect(blurRadius=6, offset=QPointF(0, 0), color=QColor(0, 0, 0))
        self.title.item.setGraphicsEffect(shadow)  # readable over a light heatmap too
        self.image = pg.ImageItem(axisOrder="row-major")
        self.data_dots = pg.ScatterPlotItem(size=2, pen=None, brush=pg.mkBrush(200, 200, 200, 90))
        self.samples = pg.ScatterPlotItem(size=3, pen=None, brush=pg.mkBrush(color))
        self.warp = pg.PlotDataItem(pen=pg.mkPen(255, 255, 255, 110, width=1), connect="finite")
        self.curve = pg.PlotDataItem(pen=pg.mkPen(color, width=2))
        self.truth = pg.PlotDataItem(pen=pg.mkPen("w", width=1, style=Qt.PenStyle.DashLine))
        self.hist = pg.PlotDataItem(stepMode="center", fillLevel=0, brush=(120, 120, 120, 80), pen=None)
        if dim == 2:
            for item in (self.image, self.data_dots, self.warp, self.samples):
                self.plot.addItem(item)
            self.vb.setAspectLocked(True)
        else:
            for item in (self.hist, self.truth, self.curve, self.samples):
                self.plot.addItem(item)
        self.pending = Visuals()

    def set_bounds(self, bounds) -> None:
        self.bounds = bounds
        (x0, x1) = bounds[0]
        if self.dim == 2:
            (y0, y1) = bounds[1]
            self.vb.setRange(xRange=(x0, x1), yRange=(y0, y1), padding=0)
        else:
            self.vb.setXRange(x0, x1, padding=0)

    def show_arrays(self, arrays: Visuals) -> None:
        self.pending = self.pending.updated(arrays)

    def flush(self) -> bool:
        if not self.pending:
            return False
        a, self.pending = self.pending, Visuals()
        heat = a.heat
        if self.dim == 2:
            if heat is not None:
                img = np.ascontiguousarray(heat, dtype=np.float32)
                top = float(np.nanmax(img)) if np.isfinite(img).any() else 1.0
                self.image.setImage(img, levels=(0.0, top if top > 0 else 1.0), autoLevels=False)
                (x0, x1), (y0, y1) = self.bounds
                self.image.setRect(x0, y0, x1 - x0, y1 - y0)
            if a.samples is not None:
                s = a.samples
                self.samples.setData(s[:, 0], s[:, 1])
            if a.warp is not None:
                self.warp.setData(*clipped_lines(a.warp, self.bounds))
        else:
            if heat is not None:
                xs = grid_points(self.bounds, len(heat))[:, 0]
                self.curve.setData(xs, np.asarray(heat, np.float32))
            if a.samples is not None:
                s = a.samples[:, 0]
                self.samples.setData(s, np.zeros_like(s))
        return True
