"""The Latent space tab's 2D map: a MAP_N x MAP_N mosaic of decoded images over two latent
dimensions (the whole space for a 2-dimensional latent), the validation digits' codes as a
scatter coloured by their digit, the current point, the last encoded drawing and the
interpolation's path. A click or a drag on the map moves the current point there.

The mosaic itself is computed off the GUI thread by the panel (:func:`gui.latent_state.compute_map`);
this widget only draws results and turns mouse input into ``picked(x, y)``."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, Signal, Slot
from PySide6.QtGui import QPainterPath, QPen
from PySide6.QtWidgets import (QComboBox, QDoubleSpinBox, QGraphicsItem, QGraphicsPathItem, QHBoxLayout, QLabel,
                               QVBoxLayout, QWidget)

from core.latent import LatentError
from gui.latent_state import CLASSES, LATENT_RANGE, LatentState, MapResult
from gui.latent_views import GreyImageItem
from gui.style import SteadyLabel

#: one colour per digit (matplotlib's tab10)
DIGIT_COLOURS = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
                 (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207))
UNLABELLED = (90, 200, 255)


class MapViewBox(pg.ViewBox):
    """A view box whose left button picks a point (click or drag) instead of panning."""

    picked = Signal(float, float)

    def mouseClickEvent(self, ev) -> None:
        if ev.button() == Qt.MouseButton.LeftButton:
            ev.accept()
            p = self.mapSceneToView(ev.scenePos())
            self.picked.emit(float(p.x()), float(p.y()))
        else:
            super().mouseClickEvent(ev)

    def mouseDragEvent(self, ev, axis=None) -> None:
        if ev.button() == Qt.MouseButton.LeftButton:
            ev.accept()
            p = self.mapSceneToView(ev.scenePos())
            self.picked.emit(float(p.x()), float(p.y()))
        else:
            super().mouseDragEvent(ev, axis)


class CrossMarker(QGraphicsPathItem):
    """The current point: a "+" of ``size`` pixels whatever the zoom, moved with ``setPos``. Drawn
    by Qt itself (a path item), so following a slider costs no Python paint code and no
    bounding-box search of a scatter item."""

    def __init__(self, size: float = 14.0, width: float = 3.0, colour=(255, 60, 60)):
        path = QPainterPath()
        h = size / 2
        path.moveTo(-h, 0)
        path.lineTo(h, 0)
        path.moveTo(0, -h)
        path.lineTo(0, h)
        super().__init__(path)
        pen = QPen(pg.mkColor(*colour))
        pen.setWidthF(width)
        pen.setCosmetic(True)
        self.setPen(pen)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
        self.setZValue(10)
        self.hide()

    def show_at(self, x: float | None, y: float | None = None) -> None:
        """Put the cross at (x, y) in the view's coordinates; None hides it."""
        if x is None:
            self.hide()
            return
        self.setPos(float(x), float(y))
        self.show()

    def getData(self) -> tuple[np.ndarray, np.ndarray]:
        """([x], [y]) where it is, or two empty arrays when hidden (as a scatter item's)."""
        if not self.isVisible():
            return np.zeros(0), np.zeros(0)
        return np.array([self.pos().x()]), np.array([self.pos().y()])


class LatentMap(QWidget):
    """``refused(message)``: a dimension or extent that cannot be shown; the panel says so."""

    refused = Signal(str)

    def __init__(self, state: LatentState, parent: QWidget | None = None):
        super().__init__(parent)
        self.state = state
        self.result: MapResult | None = None  # what the mosaic shows
        self.codes: np.ndarray | None = None
        self.labels: np.ndarray | None = None
        self.encoded_z: np.ndarray | None = None  # the last encoded drawing's point
        self.path_z: np.ndarray | None = None  # the last interpolation's latents
        self._build()
        state.observe(self._on_state)

    def _build(self) -> None:
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        row = QHBoxLayout()
        self.x_combo = QComboBox(objectName="mapX", toolTip="the map's horizontal dimension")
        self.y_combo = QComboBox(objectName="mapY", toolTip="the map's vertical dimension")
        self.extent_spin = QDoubleSpinBox(objectName="mapExtent", prefix="± ")
        self.extent_spin.setRange(0.5, LATENT_RANGE)
        self.extent_spin.setSingleStep(0.5)
        self.extent_spin.setValue(self.state.extent)
        self.extent_spin.setToolTip("the map spans [-extent, extent] in both dimensions")
        for text, w in (("x:", self.x_combo), ("y:", self.y_combo), ("extent", self.extent_spin)):
            row.addWidget(QLabel(text))
            row.addWidget(w)
        row.addStretch(1)
        layout.addLayout(row)
        self.view = pg.GraphicsLayoutWidget()
        self.view.setObjectName("latentMap")
        self.view.setBackground((18, 18, 18))
        self.view.setMinimumSize(320, 320)
        self.vb = MapViewBox(lockAspect=True, enableMenu=False)
        self.plot = self.view.addPlot(viewBox=self.vb)
        self.plot.showGrid(x=False, y=False)
        self.image = GreyImageItem(axisOrder="row-major")
        self.scatter = pg.ScatterPlotItem(size=4, pen=None)
        self.path = pg.PlotDataItem(pen=pg.mkPen(255, 200, 60, width=2))
        self.encoded = pg.ScatterPlotItem(size=16, symbol="star", pen=pg.mkPen("k"), brush=pg.mkBrush(255, 220, 0))
        self.marker = CrossMarker()
        for item in (self.image, self.scatter, self.path, self.encoded):
            self.plot.addItem(item)
        self.vb.addItem(self.marker, ignoreBounds=True)
        layout.addWidget(self.view, 1)
        self.caption = SteadyLabel(lines=2, objectName="mapCaption")
        layout.addWidget(self.caption)
        self.x_combo.currentIndexChanged.connect(self._on_dims)
        self.y_combo.currentIndexChanged.connect(self._on_dims)
        self.extent_spin.valueChanged.connect(self._on_extent)

    # -- state -----------------------------------------------------------------------------------
    def _on_state(self, what: str) -> None:
        if what == "model":
            self._fill_dims()
            self.result = None
            self.image.clear()
            self.set_codes(None, None)
            self.show_encoded(None)
            self.show_path(None)
            self.show_marker()
        elif what == "dims":
            self._show_dims()
            self.set_codes(self.codes, self.labels)
            self.show_encoded(self.encoded_z)
            self.show_path(self.path_z)
            self.show_marker()
        elif what == "z":
            self.show_marker()

    def _fill_dims(self) -> None:
        d = self.state.dim
        for combo in (self.x_combo, self.y_combo):
            combo.blockSignals(True)
            combo.clear()
            for i in range(d):
                combo.addItem(f"z{i}", i)
            combo.blockSignals(False)
        self._show_dims()

    def _show_dims(self) -> None:
        i, j = self.state.dims
        for combo, k in ((self.x_combo, i), (self.y_combo, j)):
            combo.blockSignals(True)
            combo.setCurrentIndex(k if k < combo.count() else -1)
            combo.blockSignals(False)
            combo.setEnabled(self.state.dim > 2)
        self.extent_spin.blockSignals(True)
        self.extent_spin.setValue(self.state.extent)
        self.extent_spin.blockSignals(False)
        self.plot.setLabel("bottom", f"z{i}")
        self.plot.setLabel("left", f"z{j}")

    @Slot(int)
    def _on_dims(self, _index: int) -> None:
        i, j = self.x_combo.currentIndex(), self.y_combo.currentIndex()
        if i < 0 or j < 0:
            return
        try:
            self.state.set_dims(i, j)
        except LatentError as exc:
            self._show_dims()
            self.refused.emit(str(exc))

    @Slot(float)
    def _on_extent(self, extent: float) -> None:
        try:
            self.state.set_extent(extent)
        except LatentError as exc:
            self.refused.emit(str(exc))

    # -- drawing ---------------------------------------------------------------------------------
    def coordinates(self) -> tuple[int, int] | None:
        """The map's two dimensions, or None when the latent has fewer than two."""
        return self.state.dims if self.state.dim >= 2 else None

    def show_result(self, r: MapResult) -> None:
        """Draw a mosaic (C-contiguous float32, explicit levels), its tiles centred on the grid."""
        self.result = r
        half = r.extent / (r.n - 1)  # half a tile: the tiles' centres span [-extent, extent]
        side = 2 * r.extent + 2 * half
        # the mosaic's top row is the largest y; the view's y grows upwards, so rows are flipped
        self.image.setImage(np.ascontiguousarray(r.mosaic[::-1], np.float32), levels=(0.0, 1.0), autoLevels=False)
        self.image.setRect(QRectF(-r.extent - half, -r.extent - half, side, side))
        self.vb.setRange(xRange=(-r.extent - half, r.extent + half), yRange=(-r.extent - half, r.extent + half),
                         padding=0.0)

    def set_codes(self, codes: np.ndarray | None, labels: np.ndarray | None) -> None:
        """The validation digits' codes (N, latent), coloured by digit when labels are known."""
        self.codes, self.labels = codes, labels
        dims = self.coordinates()
        if codes is None or dims is None:
            self.scatter.setData([], [])
            return
        x, y = codes[:, dims[0]], codes[:, dims[1]]
        if labels is not None:
            brushes = [pg.mkBrush(*DIGIT_COLOURS[int(k) % CLASSES], 200) for k in labels]
        else:
            brushes = pg.mkBrush(*UNLABELLED, 150)
        self.scatter.setData(x, y, brush=brushes)

    def show_marker(self) -> None:
        dims = self.coordinates()
        if dims is None:
            self.marker.show_at(None)
            return
        z = self.state.z
        self.marker.show_at(z[dims[0]], z[dims[1]])

    def show_encoded(self, z: np.ndarray | None) -> None:
        self.encoded_z = z
        dims = self.coordinates()
        if z is None or dims is None:
            self.encoded.setData([], [])
            return
        self.encoded.setData([float(z[dims[0]])], [float(z[dims[1]])])

    def show_path(self, path: np.ndarray | None) -> None:
        self.path_z = path
        dims = self.coordinates()
        if path is None or dims is None:
            self.path.setData([], [])
            return
        self.path.setData(np.ascontiguousarray(path[:, dims[0]]), np.ascontiguousarray(path[:, dims[1]]))

    def set_caption(self, text: str) -> None:
        self.caption.setText(text)
