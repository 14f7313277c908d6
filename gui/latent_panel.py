"""The Latent space tab: explore the latent space of a VAE, conditional VAE, autoencoder, DCGAN
or conditional GAN on 28x28 digits.

* a model chooser: the latent models in the weights folder, plus a copy of the Training tab's
  model when it is one (refreshed every second while it trains, so the map redraws as the
  latent space organises itself);
* a large decoded image that follows the sliders while they are dragged (decoded right here, in
  the GUI thread: one decode takes well under a millisecond for these models);
* the sliders (:mod:`gui.latent_sliders`), the 2D map (:mod:`gui.latent_map`, computed off the
  GUI thread), encoding / projecting a drawing and interpolation (:mod:`gui.latent_tools`), and
  for conditional models the digit chooser and the ten digits in the current style.

Work off the GUI thread goes through the shared task helper (:class:`gui.jobs.Jobs`), timer-paced
animation (projection steps, interpolation playback) through the shared :class:`gui.jobs.PacedPuller`.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Future
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
from PySide6.QtCore import QSettings, Qt, QTimer, Signal, Slot
from PySide6.QtWidgets import (QComboBox, QGroupBox, QHBoxLayout, QLabel, QPushButton, QSplitter, QVBoxLayout,
                               QWidget)

from core import latent
from core.latent import LatentError
from core.protocol import GenerativeModel
from core.readouts import DEFAULT_WEIGHTS, DIGITS_FILE
from gui.jobs import Jobs, PacedPuller, error_message
from gui.latent_map import LatentMap
from gui.latent_models import ModelsMixin
from gui.latent_sliders import LatentSliders
from gui.latent_state import (CLASSES, DRAG_THREADS, MAP_N, LatentEntry, LatentState, MapResult, compute_map,
                              decode_digits, read_digit_labels)
from gui.latent_tools import PULL_BUDGET_S, EncodeBox, InterpolateBox, ToolsMixin
from gui.latent_views import ImageStrip, TextReadout
from gui.style import SteadyLabel

FOLLOW_MS = 1000  # how often the Training tab's model is looked at while this tab is shown
ROW_MS = 40  # the ten-digit row and the timing label redraw at most this often while dragging
MAP_DEBOUNCE_MS = 150  # the map redraws this long after the other dimensions stop moving



class LatentPanel(ModelsMixin, ToolsMixin, QWidget):
    """The Latent space tab. ``training_model`` returns the Training tab's model as
    ``(model, image_shape or None, step)`` or None; ``copy_model(model)`` returns a future of a
    copy made between two of its training steps (the worker owns a training model);
    ``drawing`` returns the Canvas tab's drawing (28x28); ``digits_loader(path)`` reads the
    validation digits (N, 784)."""

    error = Signal(str, str)  # title, message: the main window shows it
    status = Signal(str)

    def __init__(self, fps: float = 30.0, weights_dir: str | Path | None = None,
                 training_model: Callable[[], tuple[GenerativeModel, Any, int] | None] | None = None,
                 copy_model: Callable[[GenerativeModel], Future] | None = None,
                 drawing: Callable[[], np.ndarray | None] | None = None,
                 digits_loader: Callable[[Path], np.ndarray] | None = None,
                 digits_file: str | Path = DIGITS_FILE, parent: QWidget | None = None):
        super().__init__(parent)
        self.fps = fps
        self.weights_dir = Path(weights_dir) if weights_dir is not None else DEFAULT_WEIGHTS
        self.training_model, self.copy_model, self.drawing = training_model, copy_model, drawing
        self.digits_loader, self.digits_file = digits_loader, Path(digits_file)
        self.state = LatentState()
        self.entries: list[LatentEntry] = []
        self.loaded = self.loading = False
        self.message = ""  # the last message shown
        self.decode_ms: float | None = None  # the last slider move's decode + draw
        self.map_ms: float | None = None
        self.encoding: latent.Encoding | None = None
        self.projection: latent.ProjectionStep | None = None
        self.frames: np.ndarray | None = None  # the strip's latents
        self._digits: np.ndarray | None = None
        self._labels: np.ndarray | None = None
        self._digits_read = False
        self._rng = np.random.default_rng()
        self._last_error: str | None = None
        self._training_id: tuple | None = None
        self._wanted_key: str | None = None
        self._map_busy = self._map_again = self._map_prepare = False
        self._map_base: np.ndarray | None = None
        self._closed = False
        self.jobs = Jobs(self._report_error)
        self.puller = PacedPuller(self, budget_s=PULL_BUDGET_S)
        self._build()
        self._row_timer = QTimer(self, singleShot=True, interval=ROW_MS)
        self._row_timer.timeout.connect(self._refresh_row)
        self._map_timer = QTimer(self, singleShot=True, interval=MAP_DEBOUNCE_MS)
        self._map_timer.timeout.connect(self.request_map)
        self._follow_timer = QTimer(self, interval=FOLLOW_MS)
        self._follow_timer.timeout.connect(self.refresh_training_model)
        self.state.observe(self._on_state)
        self._update_controls()

    # -- layout ----------------------------------------------------------------------------------
    def _build(self) -> None:
        layout = QVBoxLayout(self)
        layout.addLayout(self._build_model_row())
        self.models_label = SteadyLabel(lines=2, objectName="latentModelsLabel")
        layout.addWidget(self.models_label)
        split = QSplitter(Qt.Orientation.Horizontal)
        left = QWidget()
        lv = QVBoxLayout(left)
        lv.setContentsMargins(0, 0, 0, 0)
        self.image_view = ImageStrip(tiles=1, min_height=200)
        self.image_view.setObjectName("latentImage")
        lv.addWidget(self.image_view, 2)
        self.decode_label = TextReadout(objectName="decodeLabel")
        lv.addWidget(self.decode_label)
        self.sliders = LatentSliders(self.state)
        self.sliders.refused.connect(self._on_refused)
        lv.addWidget(self.sliders)
        self.row_box = QGroupBox("All ten digits in this style")
        rv = QVBoxLayout(self.row_box)
        self.digit_row = ImageStrip(tiles=CLASSES, min_height=50)
        self.digit_row.setObjectName("latentDigits")
        rv.addWidget(self.digit_row)
        lv.addWidget(self.row_box, 1)
        split.addWidget(left)
        right = QWidget()
        rv2 = QVBoxLayout(right)
        rv2.setContentsMargins(0, 0, 0, 0)
        self.map = LatentMap(self.state)
        self.map.refused.connect(self._on_refused)
        self.map.vb.picked.connect(self._on_picked)
        rv2.addWidget(self.map, 3)
        tools = QHBoxLayout()
        self.encode_box, self.interp_box = EncodeBox(), InterpolateBox()
        tools.addWidget(self.encode_box, 2)
        tools.addWidget(self.interp_box, 3)
        rv2.addLayout(tools, 1)
        split.addWidget(right)
        split.setStretchFactor(0, 2)
        split.setStretchFactor(1, 3)
        layout.addWidget(split, 1)
        self.message_label = SteadyLabel(lines=2, objectName="latentMessage")
        layout.addWidget(self.message_label)
        self._wire_tools()

    def _build_model_row(self) -> QHBoxLayout:
        row = QHBoxLayout()
        row.addWidget(QLabel("Model:"))
        self.model_combo = QComboBox(objectName="latentModelCombo")
        self.model_combo.setMinimumContentsLength(28)
        self.model_combo.currentIndexChanged.connect(self._on_model_changed)
        row.addWidget(self.model_combo, 1)
        self.reload_btn = QPushButton("Reload", objectName="latentReload",
                                      toolTip=f"scan {self.weights_dir} again and take the Training tab's model")
        self.reload_btn.clicked.connect(self.reload_models)
        self.open_btn = QPushButton("Open…", objectName="latentOpen", toolTip="explore a checkpoint file")
        self.open_btn.clicked.connect(self._ask_open)
        row.addWidget(self.reload_btn)
        row.addWidget(self.open_btn)
        row.addWidget(QLabel("Digit:"))
        self.digit_combo = QComboBox(objectName="latentDigitCombo",
                                     toolTip="the digit a conditional model draws; the style (z) stays")
        for k in range(CLASSES):
            self.digit_combo.addItem(str(k), k)
        self.digit_combo.currentIndexChanged.connect(self._on_digit)
        row.addWidget(self.digit_combo)
        return row

    def _wire_tools(self) -> None:
        e, i = self.encode_box, self.interp_box
        e.drawing_btn.clicked.connect(self._on_encode_drawing)
        e.random_btn.clicked.connect(self._on_encode_random)
        e.stop_btn.clicked.connect(self.stop_animation)
        i.a_btn.clicked.connect(self._on_set_a)
        i.b_btn.clicked.connect(self._on_set_b)
        i.play_btn.clicked.connect(self.interpolate)
        i.sweep_btn.clicked.connect(self.sweep)
        i.stop_btn.clicked.connect(self.stop_animation)

    # -- models ----------------------------------------------------------------------------------
    @property
    def entry(self) -> LatentEntry | None:
        return self.state.entry

    def showEvent(self, ev) -> None:
        super().showEvent(ev)
        # deferred: the tab may be shown before the event loop (and its executor) runs
        QTimer.singleShot(0, self._on_shown)

    def hideEvent(self, ev) -> None:
        super().hideEvent(ev)
        self._follow_timer.stop()

    @Slot()
    def _on_shown(self) -> None:
        if self._closed or not self.isVisible():
            return
        if not self.loaded and not self.loading:
            self.reload_models()
        else:
            self.refresh_training_model()
        self._follow_timer.start()

    def _activate(self, entry: LatentEntry | None, keep: bool = False) -> None:
        """Show ``entry`` (``keep``: a newer copy of the same model, z kept)."""
        keep = keep and entry is not None and entry.latent_dim == self.state.dim
        if not keep:  # a newer copy of the model being trained: an animation goes on
            self.puller.stop()
            self.encoding = self.projection = self.frames = None
            self.encode_box.view.clear_images()
            self.encode_box.result_label.clear()
            self.interp_box.strip.clear_images()
        self.state.set_entry(entry, keep)
        if not keep:
            self.encode_box.set_gan(entry is not None and not entry.has_encoder)
            self._fill_sweep()
        self._update_controls()
        if entry is None:
            self.image_view.clear_images()
            return
        self._redraw()
        self._refresh_row()
        self.request_map(prepare=True)

    # -- drawing the current point ---------------------------------------------------------------
    def _on_state(self, what: str) -> None:
        if what == "z":
            self._redraw()
            if not self._row_timer.isActive():
                self._row_timer.start()
            if self.state.dim > 2 and self._map_base is not None:
                other = np.ones(self.state.dim, bool)
                other[list(self.state.dims)] = False
                if not np.array_equal(self.state.z[other], self._map_base[other]):
                    self._map_timer.start()
        elif what == "digit":
            self._redraw()
            self.digit_row.mark(self.state.digit)
            self.request_map()
        elif what == "dims":
            self.request_map()
        elif what == "ab":
            a, b = self.state.a is not None, self.state.b is not None
            self.interp_box.ab_label.setText(f"A {'set' if a else 'not set'}, B {'set' if b else 'not set'}")
            self._update_controls()
        elif what == "order":
            self._fill_sweep()

    def _fill_sweep(self) -> None:
        sweep = self.interp_box.sweep_combo
        sweep.clear()
        for dim in self.state.order:
            sweep.addItem(f"z{dim}", int(dim))

    def _redraw(self) -> None:
        """Decode the current z and draw it: the hot path of a slider move."""
        e = self.entry
        if e is None:
            return
        t0 = time.perf_counter()
        try:
            latent.pin_torch_threads(DRAG_THREADS)
            img = latent.decode(e.model, self.state.z, self.state.digit_or_none())[0]
        except LatentError as exc:
            self.image_view.clear_images()
            self._fail("Cannot decode", exc)
            return
        self.image_view.set_image(img)
        self.decode_ms = (time.perf_counter() - t0) * 1000
        self._last_error = None

    @Slot()
    def _refresh_row(self) -> None:
        """The slower readouts of a move: the timing and the ten digits in this style."""
        e = self.entry
        if self.decode_ms is not None:
            self.decode_label.setText(f"decoded in {self.decode_ms:.2f} ms")
        if e is None or not e.conditional or self.state.dim == 0:
            return
        try:
            latent.pin_torch_threads(DRAG_THREADS)
            self.digit_row.set_images(decode_digits(e.model, self.state.z))
        except LatentError as exc:
            self.digit_row.clear_images()
            self._fail("Cannot decode", exc)
            return
        self.digit_row.mark(self.state.digit)

    @Slot(int)
    def _on_digit(self, index: int) -> None:
        self.state.set_digit(int(self.digit_combo.itemData(index)))

    @Slot(float, float)
    def _on_picked(self, x: float, y: float) -> None:
        if self.puller.running:
            self.stop_animation()
        try:
            self.state.set_point(x, y)
        except LatentError as exc:
            self._fail("Map", exc)

    # -- the map ---------------------------------------------------------------------------------
    def digits(self) -> np.ndarray | None:
        """The validation digits (N, 784) float32 for the slider order and the scatter, or None."""
        if not self._digits_read and self.digits_loader is not None:
            self._digits_read = True
            try:
                self._digits = np.asarray(self.digits_loader(self.digits_file), np.float32)
            except ValueError as exc:
                self._say(f"{exc}: sliders in index order, no digits on the map")
                return None
            self._labels = read_digit_labels(self.digits_file, len(self._digits))
        return self._digits

    @Slot()
    def request_map(self, prepare: bool = False) -> asyncio.Task | bool | None:
        """Compute the map off the GUI thread (``prepare``: also the slider order and the digits'
        codes); a request while one runs is served when it ends."""
        e = self.entry
        if e is None or self._closed:
            return None
        if self.state.dim < 2 and not prepare:
            self.map.set_caption("a 1-dimensional latent has no 2D map")
            return None
        if self._map_busy:
            self._map_again, self._map_prepare = True, self._map_prepare or prepare
            return None
        self._map_busy = True
        self._map_base = self.state.z.copy()
        dims = self.state.dims if self.state.dim >= 2 else None
        args = (e.model, self._map_base, dims, self.state.extent, self.state.digit_or_none(), MAP_N,
                self.digits() if prepare else None, self._labels, prepare)
        return self.jobs.run(compute_map, *args, done=self._on_map, failed=self._on_map_failed,
                             title="Cannot draw the map")

    def _on_map(self, r: MapResult) -> None:
        self._map_busy = False
        e = self.entry
        if e is not None and r.model_id == id(e.model):
            if r.order is not None:
                self.state.set_order(r.order)
            if r.prepared:
                self.map.set_codes(r.codes, self._labels)
            if r.mosaic is not None and r.dims == self.state.dims and r.extent == self.state.extent:
                self.map.show_result(r)
                self.map_ms = r.seconds * 1000
                self.map.set_caption(self._map_caption())
            elif r.dims is None:
                self.map.set_caption("a 1-dimensional latent has no 2D map: use its slider")
        self._map_next()

    def _on_map_failed(self, _message: str) -> None:
        self._map_busy = False
        self.map.set_caption("no map: the decoder failed")
        self._map_next()

    def _map_next(self) -> None:
        if self._map_again and not self._closed:
            prepare, self._map_again, self._map_prepare = self._map_prepare, False, False
            self.request_map(prepare)

    def _map_caption(self) -> str:
        e = self.entry
        text = f"{MAP_N} × {MAP_N} decoded in {self.map_ms:.1f} ms"
        if self.map.codes is not None:
            coloured = "coloured by the digit the classifier reads" if self._labels is not None else \
                "one colour: the validation digits carry no labels"
            text += f"; {len(self.map.codes)} validation digits encoded ({coloured})"
        elif e is not None and not e.has_encoder:
            text += f"; {e.name} has no encoder: no digits on the map"
        elif e is not None and e.conditional:
            text += "; a conditional encoder needs each digit's label, and these digits carry none"
        return text

    @Slot()
    def stop_animation(self) -> None:
        self.puller.stop()
        self._update_controls()

    # -- jobs, messages, controls ----------------------------------------------------------------
    def _animate(self, items: Iterator[Any], show: Callable[[Any], None], done: Callable[[], None],
                 title: str, rate: float | None) -> None:
        """Play ``items`` through the paced puller, ``rate`` a second (None: as many as a tick's
        budget allows), showing the last one pulled at each tick; ``done()`` after the last."""
        last: list[Any] = []

        def on_item(item: Any) -> bool:
            last[:] = [item]
            return False

        def on_pulled(_n: int, finished: bool) -> None:
            if last:
                show(last[0])
            if finished:
                done()

        self.puller.start(items, lambda: rate, on_item, on_pulled, lambda exc: self._fail(title, exc))

    def _report_error(self, title: str, message: str) -> None:
        self._fail(title, LatentError(message))

    def _fail(self, title: str, exc: Exception) -> str:
        """Show why something failed; the error signal (a message box) once per distinct message,
        so that dragging a slider over a broken model does not pile up boxes."""
        message = error_message(exc)
        self._say(message)
        if message != self._last_error:
            self._last_error = message
            self.error.emit(title, message)
        return message

    @Slot(str)
    def _on_refused(self, message: str) -> None:
        self._fail("Value refused", LatentError(message))

    def _say(self, message: str | None) -> None:
        if message:
            self.message = message
            self.message_label.setText(message)
            self.status.emit(message)

    def _update_controls(self) -> None:
        e = self.entry
        animating = self.puller.running
        self.digit_combo.setEnabled(e is not None and e.conditional)
        self.row_box.setVisible(e is not None and e.conditional)
        for w in (self.encode_box.drawing_btn, self.encode_box.random_btn):
            w.setEnabled(e is not None and not animating)
        ib = self.interp_box
        ib.play_btn.setEnabled(e is not None and self.state.a is not None and self.state.b is not None)
        for w in (ib.a_btn, ib.b_btn, ib.sweep_btn):
            w.setEnabled(e is not None)
        for w in (self.encode_box.stop_btn, ib.stop_btn):
            w.setEnabled(animating)

    # -- settings and closing --------------------------------------------------------------------
    def restore_settings(self, s: QSettings) -> None:
        try:
            dims = [int(v) for v in str(s.value("latent/dims", "0,1")).split(",")]
            if len(dims) == 2 and dims[0] != dims[1] and min(dims) >= 0:
                self.state.dims = (dims[0], dims[1])  # checked against the model when one is shown
            self.sliders.temp_spin.setValue(float(s.value("latent/temperature", 1.0)))
            self.map.extent_spin.setValue(float(s.value("latent/extent", 3.0)))
            self.interp_box.steps_spin.setValue(int(s.value("latent/steps", 10)))
        except (TypeError, ValueError):
            pass
        key = s.value("latent/model")
        if key:
            self._wanted_key = str(key)
            if self.entries:
                self.select_model(self._wanted_key)

    def save_settings(self, s: QSettings) -> None:
        s.setValue("latent/dims", f"{self.state.dims[0]},{self.state.dims[1]}")
        s.setValue("latent/temperature", self.state.temperature)
        s.setValue("latent/extent", self.state.extent)
        s.setValue("latent/steps", self.interp_box.steps_spin.value())
        key = self.entry.key if self.entry is not None else self._wanted_key
        if key:
            s.setValue("latent/model", key)

    def shutdown(self) -> None:
        """Stop the timers and animations and drop pending jobs (the window is closing)."""
        self._closed = True
        for timer in (self._row_timer, self._map_timer, self._follow_timer):
            timer.stop()
        self.puller.stop()
        self.jobs.close()
