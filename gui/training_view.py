"""The training tab: live loss / held-out curves and the model's samples.

Frames only land in buffers; a QTimer repaints at most ``fps`` times a second with
``setData`` / ``setImage`` (explicit levels, C-contiguous arrays).
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Slot
from PySide6.QtWidgets import QLabel, QSplitter, QVBoxLayout, QWidget

from core.engine import Frame
from core.viz import image_grid


class _Series:
    """A growable (step, value) buffer, doubled as needed, read as contiguous views."""

    def __init__(self):
        self._buf = np.empty((1024, 2), np.float64)
        self.n = 0

    def extend(self, pts: np.ndarray) -> None:
        if len(pts) == 0:
            return
        need = self.n + len(pts)
        if need > len(self._buf):
            grown = np.empty((max(need, 2 * len(self._buf)), 2), np.float64)
            grown[: self.n] = self._buf[: self.n]
            self._buf = grown
        self._buf[self.n:need] = pts
        self.n = need

    def clear(self) -> None:
        self.n = 0

    @property
    def x(self) -> np.ndarray:
        return self._buf[: self.n, 0]

    @property
    def y(self) -> np.ndarray:
        return self._buf[: self.n, 1]


class TrainingView(QWidget):
    def __init__(self, fps: float = 30.0, parent: QWidget | None = None):
        super().__init__(parent)
        pg.setConfigOptions(antialias=False, imageAxisOrder="row-major")
        self.plot = pg.PlotWidget()
        self.plot.setObjectName("lossPlot")
        self.plot.setLabel("bottom", "step")
        self.plot.setLabel("left", "nats per example")
        self.plot.addLegend(offset=(-10, 10))
        # no grid: pyqtgraph draws it through the axes on every repaint, which took most of the
        # GUI thread's time while training (bench/frame_interval.py: p99 45 ms with it, 22 without)
        self.plot.setDownsampling(auto=True, mode="peak")
        self.plot.setClipToView(True)
        self.loss_curve = self.plot.plot(name="training loss", pen=pg.mkPen("#4c9be8", width=1),
                                         skipFiniteCheck=True)
        self.valid_curve = self.plot.plot(name="held-out NLL", pen=pg.mkPen("#f28e2b", width=2))
        # ranges are set by hand, with slack, so the axes (whose tick layout is the costliest
        # part of a repaint) change a few times per run instead of at every frame
        self.plot.disableAutoRange()
        self._xr = self._yr = None
        self.total_steps: int | None = None
        self.samples_widget = pg.GraphicsLayoutWidget()
        self.samples_widget.setObjectName("samplesView")
        self.samples_vb = self.samples_widget.addViewBox(lockAspect=True, invertY=True, enableMouse=False)
        self.samples_item = pg.ImageItem(axisOrder="row-major")
        self.samples_vb.addItem(self.samples_item)
        self.caption = QLabel("Pick a model and press Train.", objectName="samplesCaption")
        self.caption.setAlignment(Qt.AlignmentFlag.AlignCenter)

        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addWidget(self.samples_widget, 1)
        rl.addWidget(self.caption)
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.plot)
        split.addWidget(right)
        split.setSizes([600, 400])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(split)

        self.loss = _Series()
        self.valid = _Series()
        self.image: np.ndarray | None = None
        self.repaints = 0
        self._dirty_curves = self._dirty_image = False
        self._timer = QTimer(self)
        self._timer.setInterval(int(1000 / fps))
        self._timer.timeout.connect(self._repaint)
        self._timer.start()

    def reset(self) -> None:
        self.loss.clear()
        self.valid.clear()
        self._xr = self._yr = None
        self._dirty_curves = True

    def _fit_ranges(self) -> None:
        if self.loss.n == 0:
            return
        x1 = max(float(self.loss.x[-1]), float(self.total_steps or 0), 10.0)
        y = self.loss.y[-min(self.loss.n, 5000):]
        if self.valid.n:
            y = np.concatenate([y, self.valid.y])
        lo, hi = float(np.nanmin(y)), float(np.nanmax(y))
        span = max(hi - lo, 1e-6)
        if self._xr is None or x1 > self._xr[1]:
            self._xr = (0.0, x1 * (1.0 if self.total_steps and x1 <= self.total_steps else 1.25))
            self.plot.setXRange(*self._xr, padding=0)
        yr = self._yr
        if yr is None or lo < yr[0] or hi > yr[1] or (yr[1] - yr[0]) > 3 * span:
            self._yr = (lo - 0.1 * span, hi + 0.1 * span)
            self.plot.setYRange(*self._yr, padding=0)

    @Slot(object)
    def push(self, frame: Frame) -> None:
        """Take a frame from the worker (GUI thread); cheap: the timer draws."""
        self.loss.extend(frame.curve)
        s = frame.snapshot
        nll = s.metrics.get("valid_nll", s.metrics.get("valid_nll_bound"))
        if s.event in ("eval", "finished") and nll is not None and (self.valid.n == 0 or self.valid.x[-1] != s.step):
            self.valid.extend(np.array([[s.step, nll]]))
        self._dirty_curves = True
        samples = frame.arrays.get("samples")
        if samples is not None and s.image_shape is not None:
            self.image = image_grid(samples, s.image_shape)
            self.caption.setText(f"{len(samples)} samples at step {s.step}")
            self._dirty_image = True

    def show_samples(self, samples: np.ndarray, image_shape: tuple[int, int], caption: str) -> None:
        self.image = image_grid(samples, image_shape)
        self.caption.setText(caption)
        self._dirty_image = True

    @Slot()
    def _repaint(self) -> None:
        if self._dirty_curves:
            self.loss_curve.setData(self.loss.x, self.loss.y)
            self.valid_curve.setData(self.valid.x, self.valid.y)
            self._fit_ranges()
            self._dirty_curves = False
            self.repaints += 1
        if self._dirty_image and self.image is not None:
            self.samples_item.setImage(self.image, levels=(0, 255), autoLevels=False)
            self.samples_vb.autoRange(padding=0)
            self._dirty_image = False
            self.repaints += 1
