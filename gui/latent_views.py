"""Image views of the Latent space tab: one decoded digit, or a strip of them (an interpolation,
a sweep, the ten digits of a conditional model in one style), drawn with pyqtgraph."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtGui import QImage, QPainter
from PySide6.QtWidgets import QSizePolicy, QWidget

SIDE = 28
GAP = 2  # pixels between two tiles of a strip


#: grey level g as an opaque RGB32 pixel
_GREY_RGB32 = (np.arange(256, dtype=np.uint32) * np.uint32(0x010101)) | np.uint32(0xFF000000)


class GreyImageItem(pg.ImageItem):
    """An image item for grey levels in [0, 1] drawn from an RGB32 QImage. Qt's raster engine
    scales RGB32 onto the window on its fast path, while the Grayscale8 QImage pyqtgraph makes
    for a grey image is converted span by span on every paint: about 7 times slower in the
    Latent tab, where a slider move repaints the digit and the map's marker. The grey levels are
    pyqtgraph's own (``(x - 0) * 255`` in float32, clipped, truncated to 8 bits), computed here
    without its general path; any other image or levels go through pyqtgraph, then to RGB32."""

    _rgb: np.ndarray | None = None  # the pixels the QImage points to

    def render(self) -> None:
        img = self.image
        levels = self.levels
        if (img is not None and img.ndim == 2 and img.dtype == np.float32 and img.size and self.lut is None
                and self.axisOrder == "row-major" and not self.autoDownsample and levels is not None
                and np.ndim(levels) == 1 and float(levels[0]) == 0.0 and float(levels[1]) == 1.0
                and np.isfinite(img).all()):
            work = img * np.float32(255.0)
            np.clip(work, 0, 255, out=work)
            self._rgb = np.ascontiguousarray(_GREY_RGB32[work.astype(np.uint8)])
            h, w = img.shape
            self.qimage = QImage(self._rgb.data, w, h, 4 * w, QImage.Format.Format_RGB32)
            self._renderRequired = self._unrenderable = False
            return
        super().render()
        if self.qimage is not None and self.qimage.format() == QImage.Format.Format_Grayscale8:
            self.qimage = self.qimage.convertToFormat(QImage.Format.Format_RGB32)


class TextReadout(QWidget):
    """One line of text that changes often (the slider move's timing, 25 times a second while
    dragging) without relayouting the tab: a QLabel asks its parent's layout to recompute on every
    new text (three nested layouts here), this one only repaints itself. Its height is one line,
    its width whatever the layout gives it (longer text is cut)."""

    def __init__(self, parent: QWidget | None = None, objectName: str = ""):
        super().__init__(parent, objectName=objectName)
        self._text = ""
        self.setFixedHeight(self.fontMetrics().height() + 4)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def text(self) -> str:
        return self._text

    def setText(self, text: str) -> None:
        if text != self._text:
            self._text = text
            self.update()

    def paintEvent(self, _ev) -> None:
        p = QPainter(self)
        p.setPen(self.palette().windowText().color())
        p.drawText(self.rect(), int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter), self._text)
        p.end()


class ImageStrip(pg.GraphicsLayoutWidget):
    """``tiles`` 28x28 images side by side (one for the main view), grey levels in [0, 1], with
    an optional frame around one tile (the frame an animation is on)."""

    def __init__(self, tiles: int = 1, min_height: int = 60, parent: QWidget | None = None):
        super().__init__(parent)
        pg.setConfigOptions(antialias=False, imageAxisOrder="row-major")
        self.tiles = max(1, int(tiles))
        self.setBackground((18, 18, 18))
        self.setMinimumHeight(min_height)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.vb = self.addViewBox(lockAspect=True, enableMouse=False, enableMenu=False)
        self.vb.invertY(True)  # row 0 at the top, as the digits are stored
        self.item = GreyImageItem(axisOrder="row-major")
        self.vb.addItem(self.item)
        self.frame = pg.PlotDataItem(pen=pg.mkPen(255, 200, 60, width=2))
        self.vb.addItem(self.frame)
        self.images: np.ndarray | None = None  # (k, 28, 28) float32: what is shown
        self._canvas: np.ndarray | None = None
        self.set_tiles(self.tiles)

    def set_tiles(self, tiles: int) -> None:
        """Room for ``tiles`` images (the view is cleared)."""
        self.tiles = max(1, int(tiles))
        width = self.tiles * SIDE + (self.tiles - 1) * GAP
        self._canvas = np.zeros((SIDE, width), np.float32)
        self.images = None
        self.item.setImage(self._canvas, levels=(0.0, 1.0), autoLevels=False)
        self.vb.setRange(xRange=(0, width), yRange=(0, SIDE), padding=0.02)
        self.frame.setData([], [])

    def set_image(self, image: np.ndarray) -> None:
        """One image (the main view): the fast path taken on every slider move."""
        img = np.ascontiguousarray(np.asarray(image, np.float32).reshape(SIDE, SIDE))
        if self.tiles != 1:
            self.set_tiles(1)
        self.images = img[None]
        self.item.setImage(img, levels=(0.0, 1.0), autoLevels=False)

    def set_images(self, images: np.ndarray) -> None:
        """Up to ``tiles`` images, left to right (the rest of the strip stays dark)."""
        images = np.asarray(images, np.float32).reshape(-1, SIDE, SIDE)
        if len(images) != self.tiles:
            self.set_tiles(len(images))
        canvas = self._canvas
        canvas[:] = 0.0
        for k, img in enumerate(images[:self.tiles]):
            x = k * (SIDE + GAP)
            canvas[:, x:x + SIDE] = img
        self.images = np.ascontiguousarray(images[:self.tiles])
        self.item.setImage(canvas, levels=(0.0, 1.0), autoLevels=False)

    def mark(self, k: int | None) -> None:
        """Frame tile ``k`` (None: no frame)."""
        if k is None or not 0 <= k < self.tiles:
            self.frame.setData([], [])
            return
        x0, x1 = k * (SIDE + GAP) - 0.5, k * (SIDE + GAP) + SIDE + 0.5
        self.frame.setData([x0, x1, x1, x0, x0], [-0.5, -0.5, SIDE + 0.5, SIDE + 0.5, -0.5])

    def clear_images(self) -> None:
        self.set_tiles(self.tiles)
