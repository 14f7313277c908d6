"""The training tab: live loss / held-out curves and the model's samples.

Frames only land in buffers; a QTimer repaints at most ``fps`` times a second with
``setData`` / ``setImage`` (explicit levels, C-contiguous arrays).
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Slot
from PySide6.QtWidgets import QCheckBox, QHBoxLayout, QLabel, QProgressBar, QSplitter, QVBoxLayout, QWidget

from core.control import Frame
from core.training import EVALUATED
from core.viz import image_grid
from gui.style import SteadyLabel

#: sequence samples drawn as curves, and the vertical distance between two of them
CURVES = 8
CURVE_GAP = 2.4
#: image samples shown at most (fewer, bigger tiles; the grid's shape fits the panel)
SHOWN_SAMPLES = 16
#: the first share of a run's steps left out of the loss axis's range (the first moments' drop
#: would squash the rest; the log scale shows it)
EARLY_SHARE = 0.05


def fitted_grid(n: int, image_shape: tuple[int, int], panel: tuple[int, int], classes: int | None = None,
                most: int = SHOWN_SAMPLES) -> tuple[int, int]:
    """(samples shown, columns) of a grid of ``n`` image samples that fills a ``panel`` (width,
    height) with the biggest tiles: at most ``most`` samples (one row a class, ``classes``
    columns, for a class-conditional model's samples)."""
    h, w = image_shape
    pw, ph = max(panel[0], 1), max(panel[1], 1)
    if classes:
        tile = pw / (classes * (w + 1))
        rows = max(1, min(n // classes or 1, int(ph // max(tile * (h + 1), 1e-9))))
        return min(n, rows * classes), classes
    k = min(n, most)
    best = (0.0, 1)
    for cols in range(1, k + 1):
        rows = -(-k // cols)
        best = max(best, (min(pw / (cols * (w + 1)), ph / (rows * (h + 1))), -cols))
    cols = -best[1]
    return min(n, cols * (-(-k // cols))), cols


def class_columns(labels: np.ndarray | None) -> int | None:
    """Grid width for samples whose classes go 0, 1, ..., C-1, 0, ... (a class-conditional
    model's visuals): C, so that each column holds one class; None (a square grid) otherwise."""
    if labels is None or len(labels) == 0:
        return None
    return int(np.max(labels)) + 1


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
        # a GAN's two losses (its "loss" is their sum), added to the legend when a GAN trains
        self.gan_curves = {key: pg.PlotDataItem(pen=pg.mkPen(colour, width=1), skipFiniteCheck=True, name=name)
                           for key, colour, name in (("d_loss", "#e15759", "discriminator loss"),
                                                     ("g_loss", "#59a14f", "generator loss"))}
        # ranges are set by hand, with slack, so the axes (whose tick layout is the costliest
        # part of a repaint) change a few times per run instead of at every frame
        self.plot.disableAutoRange()
        self._xr = self._yr = None
        self.total_steps: int | None = None
        self.subject = ""  # the model the curves and samples are of, named in the caption
        self.samples_widget = pg.GraphicsLayoutWidget()
        self.samples_widget.setObjectName("samplesView")
        self.samples_vb = self.samples_widget.addViewBox(lockAspect=True, invertY=True, enableMouse=False)
        self.samples_item = pg.ImageItem(axisOrder="row-major")
        self.samples_vb.addItem(self.samples_item)
        # sequence models' samples (no image shape, no point bounds): a few stacked curves
        self.curves_widget = pg.PlotWidget()
        self.curves_widget.setObjectName("sampleCurves")
        self.curves_widget.hideAxis("left")
        self.curves_widget.setMouseEnabled(False, False)
        self.curves_widget.hide()
        self.curves_item = self.curves_widget.plot(pen=pg.mkPen("#4c9be8", width=1), connect="finite")
        self.curves: tuple[np.ndarray, np.ndarray] | None = None
        self.caption = SteadyLabel("Pick a model and press Train.", 1, objectName="samplesCaption")
        self.caption.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._samples: tuple | None = None  # (samples, image shape, labels, caption) shown as a grid
        self._grid_panel: tuple[int, int] | None = None
        self.log_check = QCheckBox("log scale", objectName="lossLogScale",
                                   toolTip="loss axis in log scale: the first steps' drop and the slow "
                                           "progress after it on one axis (positive losses only)")
        self.log_check.toggled.connect(self._on_log)

        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addWidget(self.samples_widget, 1)
        rl.addWidget(self.curves_widget, 1)
        rl.addWidget(self.caption)
        left = QWidget()
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.addWidget(self.plot, 1)
        ll.addWidget(self.log_check)
        ll.addLayout(self._evaluation_row())
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(left)
        split.addWidget(right)
        split.setSizes([600, 400])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(split)

        self.loss = _Series()
        self.valid = _Series()
        self.gan = {key: _Series() for key in self.gan_curves}
        self.image: np.ndarray | None = None
        self.repaints = 0
        self._dirty_curves = self._dirty_image = False
        self._timer = QTimer(self)
        self._timer.setInterval(int(1000 / fps))
        self._timer.timeout.connect(self._repaint)
        self._timer.start()

    def _evaluation_row(self) -> QHBoxLayout:
        """Run > Evaluate: its progress under the curves (a line and a bar, always there, so nothing
        moves), its result marked on them (a star at the step evaluated, with its value)."""
        self.eval_marker = pg.ScatterPlotItem(size=11, symbol="star", pen=pg.mkPen("#ffffff"),
                                              brush=pg.mkBrush("#f28e2b"), name="evaluated (Run > Evaluate)")
        self.eval_text = pg.TextItem(color="#f28e2b", anchor=(0, 1))
        self.eval_label = QLabel("held-out NLL: Run > Evaluate (Ctrl+E) scores the model", objectName="evalLabel")
        self.eval_label.setToolTip("the mean negative log-likelihood of the held-out examples, in nats per "
                                   "example (lower is better); marked on the curves at the step evaluated")
        self.eval_bar = QProgressBar(objectName="evalProgress")
        self.eval_bar.setRange(0, 1)
        self.eval_bar.setValue(0)
        self.eval_bar.setMaximumWidth(220)
        self.eval_point: tuple[float, float] | None = None
        row = QHBoxLayout()
        row.addWidget(self.eval_label, 1)
        row.addWidget(self.eval_bar)
        return row

    def evaluation_progress(self, done: int, total: int) -> None:
        """Run > Evaluate at work: ``done`` of ``total`` held-out examples scored."""
        self.eval_bar.setRange(0, max(1, total))
        self.eval_bar.setValue(min(done, max(1, total)))
        self.eval_label.setText(f"evaluating… {done} of {total} held-out examples")

    def show_evaluation(self, step: int | None, nll) -> None:
        """Run > Evaluate's result (a :class:`core.evaluation.NLL`): a star on the curves at
        ``step`` (0 when unknown) with its value, and the line under them."""
        x = float(step or 0)
        kind = "bound" if nll.is_bound else "NLL"
        self.eval_marker.setData([x], [nll.nats])
        self.eval_text.setText(f"held-out {kind} {nll.nats:.2f}")
        self.eval_text.setPos(x, nll.nats)
        for item in (self.eval_marker, self.eval_text):
            if item.scene() is None:
                self.plot.addItem(item)
        self.eval_bar.setRange(0, 1)
        self.eval_bar.setValue(1)
        self.eval_label.setText(f"held-out {kind}: {nll.nats:.2f} nats ({nll.bits_per_dim:.4f} bits/dim) on "
                                f"{nll.n} examples at step {step if step is not None else '?'}")
        self.eval_point = (x, float(nll.nats))
        self._fit_ranges()

    def evaluation_failed(self, message: str) -> None:
        self.eval_bar.setRange(0, 1)
        self.eval_bar.setValue(0)
        self.eval_label.setText(f"not evaluated: {message}")

    def reset(self) -> None:
        self.eval_point = None
        for item in (self.eval_marker, self.eval_text):
            if item.scene() is not None:
                self.plot.removeItem(item)
        self.eval_bar.setRange(0, 1)
        self.eval_bar.setValue(0)
        self.eval_label.setText("held-out NLL: Run > Evaluate (Ctrl+E) scores the model")
        self.loss.clear()
        self.valid.clear()
        for key, series in self.gan.items():
            series.clear()
            if self.gan_curves[key].scene() is not None:
                self.plot.removeItem(self.gan_curves[key])
        self._xr = self._yr = None
        self._dirty_curves = True

    @Slot(bool)
    def _on_log(self, on: bool) -> None:
        self.plot.setLogMode(y=on)
        self._yr = None
        self._dirty_curves = True

    def clear_samples(self, caption: str) -> None:
        """No samples (of another model) on show: an empty panel and ``caption``."""
        self._samples = self.image = self.curves = None
        self.samples_item.clear()
        self.curves_item.setData([], [])
        self.caption.setText(caption)
        self._dirty_image = False

    def _fit_ranges(self) -> None:
        """Axes fitted to the data (not to the whole run), with slack so that they change a few
        times per run: x from 0 to 50 % past the last step; y over the curves after their first
        steps (``EARLY_SHARE``), in log10 in log scale."""
        extra = self.eval_point  # the evaluated point is kept in view
        if self.loss.n == 0 and extra is None:
            return
        x1 = max(float(self.loss.x[-1]) if self.loss.n else 0.0, float(extra[0]) if extra else 0.0, 10.0)
        if self._xr is None or x1 > self._xr[1]:
            self._xr = (0.0, x1 * 1.5)
            self.plot.setXRange(*self._xr, padding=0)
        start = EARLY_SHARE * x1
        parts = [(self.loss.x[-5000:], self.loss.y[-5000:]), (self.valid.x, self.valid.y)]
        parts += [(s.x[-5000:], s.y[-5000:]) for s in self.gan.values()]
        if extra is not None:
            parts.append((np.array([float(extra[0])]), np.array([float(extra[1])])))
        y = np.concatenate([py[px >= start] for px, py in parts] + [self.loss.y[-1:]])
        y = y[np.isfinite(y)]
        if self.log_check.isChecked():
            y = np.log10(y[y > 0])
        if len(y) == 0:
            return
        lo, hi = float(y.min()), float(y.max())
        span = max(hi - lo, 1e-6)
        yr = self._yr
        if yr is None or lo < yr[0] or hi > yr[1] or (yr[1] - yr[0]) > 3 * span:
            self._yr = (lo - 0.1 * span, hi + 0.1 * span)
            self.plot.setYRange(*self._yr, padding=0)

    @Slot(object)
    def push(self, frame: Frame) -> None:
        """Take a frame from the worker (GUI thread); cheap: the timer draws."""
        self.loss.extend(frame.curve)
        s = frame.snapshot
        if s.event in EVALUATED and s.nll is not None and (self.valid.n == 0 or self.valid.x[-1] != s.step):
            self.valid.extend(np.array([[s.step, s.nll.nats]]))
        self._push_gan_losses(s)
        self._dirty_curves = True
        samples = frame.arrays.samples
        if samples is not None and s.image_shape is not None:
            labels = frame.arrays.sample_labels
            self.show_samples(samples, s.image_shape, f"samples{self._of()} at step {s.step}"
                              + (" (one class per column)" if labels is not None else ""), labels)
        elif samples is not None and s.bounds is None and samples.ndim == 2:
            self.show_curves(samples, f"{min(len(samples), CURVES)} of {len(samples)} samples{self._of()} "
                                      f"at step {s.step}")

    def _of(self) -> str:
        return f" of {self.subject}" if self.subject else ""

    def _push_gan_losses(self, s) -> None:
        """A GAN's discriminator and generator losses at this frame's step (one point a frame)."""
        for key, series in self.gan.items():
            value = s.metrics.get(key)
            if value is None or not np.isfinite(value) or (series.n and series.x[-1] == s.step):
                continue
            if series.n == 0 and self.gan_curves[key].scene() is None:
                self.plot.addItem(self.gan_curves[key])  # its name joins the legend
            series.extend(np.array([[s.step, value]]))

    def show_samples(self, samples: np.ndarray, image_shape: tuple[int, int], caption: str,
                     labels: np.ndarray | None = None) -> None:
        """Show image samples (``caption`` follows their number); ``labels`` (a class-conditional model's classes 0, 1, ..., C-1 in
        turn) make the grid C tiles wide: one class per column. The grid fits the panel: a
        few big tiles rather than many tiny ones."""
        self._samples = (samples, tuple(image_shape), labels, caption)
        self._grid_panel = None
        self._grid_samples()

    def _grid_samples(self) -> None:
        """The grid of the samples in hand, shaped for the samples panel's size as it is now."""
        samples, image_shape, labels, caption = self._samples
        size = self.samples_widget.size() if self.samples_widget.isVisible() else self.size()
        panel = (size.width(), size.height())
        shown, cols = fitted_grid(len(samples), image_shape, panel, class_columns(labels))
        self.image, self.curves = image_grid(samples[:shown], image_shape, ncols=cols), None
        self._grid_panel = panel
        count = f"{shown} of {len(samples)}" if shown < len(samples) else f"{shown}"
        self.caption.setText(f"{count} {caption}")
        self._dirty_image = True

    def show_curves(self, samples: np.ndarray, caption: str) -> None:
        """Draw sequences (N, T) as up to ``CURVES`` curves stacked top to bottom, one line item
        with NaN breaks between them."""
        k, t = min(len(samples), CURVES), samples.shape[1]
        y = np.full((k, t + 1), np.nan, np.float64)
        y[:, :t] = np.clip(np.nan_to_num(samples[:k]), -1.5, 1.5) - CURVE_GAP * np.arange(k)[:, None]
        x = np.tile(np.append(np.arange(t, dtype=np.float64), np.nan), k)
        self.curves, self.image = (np.ascontiguousarray(x), np.ascontiguousarray(y.ravel())), None
        self._samples = None
        self.caption.setText(caption)
        self._dirty_image = True

    @Slot()
    def _repaint(self) -> None:
        if self._samples is not None and self.samples_widget.isVisible() and self._grid_panel != (
                self.samples_widget.width(), self.samples_widget.height()):
            self._grid_samples()  # the panel was resized: the grid follows
        if self._dirty_curves:
            self.loss_curve.setData(self.loss.x, self.loss.y)
            self.valid_curve.setData(self.valid.x, self.valid.y)
            for key, series in self.gan.items():
                if series.n:
                    self.gan_curves[key].setData(series.x, series.y)
            self._fit_ranges()
            self._dirty_curves = False
            self.repaints += 1
        if self._dirty_image and self.curves is not None:
            x, y = self.curves
            self.curves_item.setData(x, y)
            self.curves_widget.setXRange(0, float(np.nanmax(x)), padding=0.02)
            self.curves_widget.setYRange(float(np.nanmin(y)) - 0.2, float(np.nanmax(y)) + 0.2, padding=0)
            self.samples_widget.hide()
            self.curves_widget.show()
            self.curves, self._dirty_image = None, False
            self.repaints += 1
        if self._dirty_image and self.image is not None:
            self.curves_widget.hide()
            self.samples_widget.show()
            self.samples_item.setImage(self.image, levels=(0, 255), autoLevels=False)
            self.samples_vb.autoRange(padding=0)
            self._dirty_image = False
            self.repaints += 1
