"""The Canvas tab: draw part of a digit on a binary canvas and let an autoregressive model finish it.

A model completes a drawing exactly when the known pixels come first in its order: raster
models the rows below row k, an order-agnostic MADE any painted region (:mod:`core.canvas_state`,
which the widgets observe; the readouts' terms are :mod:`core.readouts`). Thin views:
:mod:`gui.pixel_canvas`, :mod:`gui.candidate_grid`, :mod:`gui.readouts_view`,
:mod:`gui.canvas_animation` and the group boxes of :mod:`gui.canvas_controls`. Model calls that
can take long are jobs (:class:`gui.jobs.Jobs`); the animation is paced by :class:`gui.jobs.PacedPuller`.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from PySide6.QtCore import QSettings, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QHBoxLayout, QScrollArea, QSplitter, QVBoxLayout, QWidget

from core.canvas_state import REGION_TOOLS, CanvasState, Completion
from core.protocol import GenerativeModel
from core.readouts import (CANVAS_SHAPE, DEFAULT_WEIGHTS, DIGITS_FILE, CanvasModel, candidate_tiles, complete_drawing,
                           copied_now, completion_steps, load_digits, sample_drawings)
from gui.candidate_grid import CandidateGrid
from gui.canvas_animation import CompletionAnimation
from gui.canvas_controls import CompleteBox, DrawBox, ModelBox, bind_keys
from gui.canvas_models import CanvasModelsMixin
from gui.jobs import Jobs, ProgressRelay
from gui.pixel_canvas import PixelCanvas
from gui.style import SteadyLabel
from gui.readouts_view import ReadoutsView


class CanvasPanel(CanvasModelsMixin, QWidget):
    """The Canvas tab. ``training_model`` (optional) returns the Training tab's model as
    ``(model, image_shape or None, step)`` or None, and ``copy_model(model)`` a future of a copy
    of it (the worker owns a model while it trains: it copies between two steps; the default
    copies at once), ``training_nll()`` the (step, nats) of its last held-out evaluation or
    None; ``fine_tune_requested(path)`` asks the main window to load a checkpoint
    into the Training tab. The drawing is ``state`` (a
    :class:`~core.canvas_state.CanvasState`); an action that starts a job returns its task, or
    None when it starts none (the reason is in :attr:`message`)."""

    error = Signal(str, str)  # title, message: the main window shows it
    status = Signal(str)
    fine_tune_requested = Signal(str)

    def __init__(self, fps: float = 30.0, weights_dir: str | Path | None = None,
                 training_model: Callable[[], tuple[GenerativeModel, Any, int] | None] | None = None,
                 copy_model: Callable[[GenerativeModel], Future] | None = None,
                 training_nll: Callable[[], tuple[int, float] | None] | None = None,
                 shape: tuple[int, int] = CANVAS_SHAPE, digits_file: str | Path = DIGITS_FILE,
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.fps = fps
        self.weights_dir = Path(weights_dir) if weights_dir is not None else DEFAULT_WEIGHTS
        self.training_model = training_model
        self.copy_model = copy_model or copied_now
        self.training_nll = training_nll  # (step, nats) of the Training tab's last held-out evaluation
        self.shape = tuple(shape)
        self.digits_file = Path(digits_file)
        self.state = CanvasState(self.shape)
        self.entries: list[CanvasModel] = []
        self.problems: list[str] = []
        self.loaded = False  # the weights folder has been scanned
        self.loading = False
        self.message = ""  # the last status message (also emitted)
        self.candidates: np.ndarray | None = None  # (M, H, W) uint8: the last completion or samples
        self.candidates_known: np.ndarray | None = None  # (H, W) bool: what they were conditioned on
        self.previewed: int | None = None  # the candidate shown over the drawing (the readouts score it)
        self._taking = False  # a candidate is becoming the drawing: the others stay
        self.busy = False
        self._digits: np.ndarray | None = None
        self._rng = np.random.default_rng()
        self._edit_version = 0
        self._training_id: tuple | None = None
        self._wanted_key: str | None = None
        self.jobs = Jobs(self.error.emit, self._busy)
        self._build()
        self.animation = CompletionAnimation(self.canvas, self.grid, self.prob_label, self.progress,
                                             self.pixels_per_s, self._animation_finished, self._animation_failed,
                                             fps, self)
        self.state.events.edited.connect(self._on_edited)
        self.state.events.tool.connect(self._on_tool)
        self.state.events.mode.connect(self._on_mode)
        self._update_controls()

    # -- layout ----------------------------------------------------------------------------------
    def _build(self) -> None:
        self.model_box = ModelBox(self.weights_dir)
        self.draw_box = DrawBox(self.state.tool, self.state.brush)
        self.complete_box = CompleteBox(self.shape[0], self.state.row)
        self._connect_boxes()
        controls = QWidget()
        cl = QVBoxLayout(controls)
        for box in (self.model_box, self.draw_box, self.complete_box):
            cl.addWidget(box)
        cl.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidget(controls)
        scroll.setWidgetResizable(True)
        scroll.setFixedWidth(max(300, controls.sizeHint().width() + 24))  # its texts never move the canvas
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self._build_centre())
        split.addWidget(self._build_right())
        split.setSizes([520, 420])
        layout = QHBoxLayout(self)
        layout.addWidget(scroll)
        layout.addWidget(split, 1)
        self._build_shortcuts()

    def _connect_boxes(self) -> None:
        """The boxes' widgets, as the panel's attributes, connected to the state and actions."""
        m, d, c = self.model_box, self.draw_box, self.complete_box
        self.model_combo, self.models_label, self.finetune_btn = m.model_combo, m.models_label, m.finetune_btn
        self.digit_combo = m.digit_combo
        self.model_combo.currentIndexChanged.connect(self._on_model_changed)
        m.reload_btn.clicked.connect(self.reload_models)
        self.finetune_btn.clicked.connect(self._on_fine_tune)
        self.digit_combo.currentIndexChanged.connect(self._schedule_readouts)
        self.tool_buttons, self.brush_spin, self.undo_btn, self.redo_btn = (d.tool_buttons, d.brush_spin,
                                                                            d.undo_btn, d.redo_btn)
        for tool, b in self.tool_buttons.items():
            b.clicked.connect(lambda _=False, t=tool: self.set_tool(t))
        self.brush_spin.valueChanged.connect(self.state.set_brush)
        for b, slot in ((d.undo_btn, self.undo), (d.redo_btn, self.redo), (d.clear_btn, self.clear),
                        (d.clear_region_btn, self.clear_region), (d.digit_btn, self._on_random_digit),
                        (c.complete_btn, self.complete), (c.animate_btn, self.animate),
                        (c.stop_btn, self.stop_animation), (c.sample_btn, self.sample)):
            b.clicked.connect(slot)
        self.mode_combo, self.row_spin, self.n_spin, self.speed = c.mode_combo, c.row_spin, c.n_spin, c.speed
        self.complete_btn, self.animate_btn, self.stop_btn, self.sample_btn = (c.complete_btn, c.animate_btn,
                                                                               c.stop_btn, c.sample_btn)
        self.progress = c.progress
        self.mode_combo.currentIndexChanged.connect(self._on_mode_chosen)
        self.row_spin.valueChanged.connect(self.state.set_row)

    def _build_centre(self) -> QWidget:
        self.canvas = PixelCanvas(self.state)
        self.prob_label = SteadyLabel("", 1, objectName="canvasProbLabel")
        self.prob_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.message_label = SteadyLabel("", 3, objectName="canvasMessage")
        centre = QWidget()
        v = QVBoxLayout(centre)
        v.setContentsMargins(0, 0, 0, 0)
        v.addWidget(self.canvas, 1)
        v.addWidget(self.prob_label)
        v.addWidget(self.message_label)
        return centre

    def _build_right(self) -> QWidget:
        self.grid = CandidateGrid()
        self.grid.clicked.connect(self._on_tile_clicked)
        self.grid.double_clicked.connect(self.use_candidate)
        self.readouts_view = ReadoutsView(self.shape, self.jobs, self._readout_key, self._readout_inputs,
                                          lambda: self.entry)
        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(self.grid)
        right.addWidget(self.readouts_view)
        right.setSizes([380, 420])
        return right

    def _build_shortcuts(self) -> None:
        # single keys are free in this tab (the main window's shortcuts all take Ctrl); they fire
        # only while the tab is shown, and a focused spin box keeps its typed digits
        tool, brush = self.set_tool, self.brush_spin.setValue
        bind_keys(self, ((QKeySequence.StandardKey.Undo, self.undo), (QKeySequence.StandardKey.Redo, self.redo),
                         ("Ctrl+Y", self.redo), ("Delete", self.clear), ("R", self._on_random_digit),
                         ("P", lambda: tool("pen")), ("E", lambda: tool("eraser")), ("F", lambda: tool("region")),
                         ("Shift+F", lambda: tool("unregion")), ("1", lambda: brush(1)), ("2", lambda: brush(2)),
                         ("3", lambda: brush(3)), ("Space", self.complete), ("A", self.animate),
                         ("Escape", self.stop_animation), ("S", self.sample)))

    # -- models ----------------------------------------------------------------------------------
    @property
    def entry(self) -> CanvasModel | None:
        i = self.model_combo.currentIndex()
        return self.entries[i] if 0 <= i < len(self.entries) else None

    def showEvent(self, ev) -> None:
        super().showEvent(ev)
        # deferred: the tab may be shown before the event loop (and its executor) runs
        QTimer.singleShot(0, self._on_shown)

    @Slot()
    def _on_shown(self) -> None:
        if self.jobs.closed:
            return
        if not self.loaded and not self.loading:
            self.reload_models()
        else:
            self.refresh_training_model()

    @Slot(int)
    def _on_model_changed(self, _index: int) -> None:
        e = self.entry
        region = self.mode_combo.model().item(1)
        region.setEnabled(e is not None and e.any_order)
        if self.mode == "region" and (e is None or not e.any_order):
            self.mode_combo.setCurrentIndex(0)
            if e is not None:
                self._say(f"{e.name} completes in raster order: it can complete the rows below row k, "
                          "not an arbitrary region")
        self.stop_animation()
        self._update_controls()
        self._schedule_readouts()

    @Slot()
    def _on_fine_tune(self) -> None:
        e = self.entry
        if e is None or e.path is None:
            self._say("only a checkpoint from the weights folder can be handed to the Training tab")
            return
        self.fine_tune_requested.emit(str(e.path))

    # -- drawing ---------------------------------------------------------------------------------
    @property
    def mode(self) -> str:
        return self.state.mode

    def set_tool(self, tool: str) -> None:
        """Take ``tool``; a region tool switches to the region mode when the model can fill a region."""
        if tool in REGION_TOOLS and self.mode != "region":
            e = self.entry
            if e is None or not e.any_order:
                self._say("the region brush needs an order-agnostic model (MADE with order_agnostic): "
                          "this one completes the rows below row k")
                self.tool_buttons[self.state.tool].setChecked(True)
                return
            self.mode_combo.setCurrentIndex(1)
        self.state.set_tool(tool)
        self.tool_buttons[tool].setChecked(True)

    def _on_tool(self, tool: str) -> None:
        self.tool_buttons[tool].setChecked(True)

    @Slot(int)
    def _on_mode_chosen(self, index: int) -> None:
        self.state.set_mode(self.mode_combo.itemData(index))

    def _on_mode(self, mode: str) -> None:
        i = self.mode_combo.findData(mode)
        if self.mode_combo.currentIndex() != i:
            self.mode_combo.setCurrentIndex(i)
        self.row_spin.setEnabled(mode != "region")

    def _on_edited(self) -> None:
        self._edit_version += 1
        if self.anim is not None:
            self.stop_animation()  # the animation completes a drawing that no longer exists
        self.canvas.ghost = self.canvas.ghost_mask = None
        self.canvas.highlight = None
        if not self._taking:  # candidates of another drawing go with it
            self.candidates = self.candidates_known = self.previewed = None
            self.grid.set_tiles(None)
        self.undo_btn.setEnabled(self.state.can_undo)
        self.redo_btn.setEnabled(self.state.can_redo)
        self._schedule_readouts()

    @Slot()
    def undo(self) -> None:
        self.state.undo()

    @Slot()
    def redo(self) -> None:
        self.state.redo()

    @Slot()
    def clear(self) -> None:
        self.state.clear()

    @Slot()
    def clear_region(self) -> None:
        self.state.clear_region()

    @property
    def digits(self) -> np.ndarray | None:
        if self._digits is None:
            try:
                self._digits = load_digits(self.digits_file)
            except ValueError as exc:
                self._say(str(exc))
                return None
        return self._digits

    @Slot()
    def _on_random_digit(self) -> None:
        self.random_digit()

    def random_digit(self, index: int | None = None) -> int | None:
        """Put a validation digit (random, or number ``index``) on the canvas; its index."""
        digits = self.digits
        if digits is None:
            return None
        if digits.shape[1] != self.shape[0] * self.shape[1]:
            self._say(f"the validation digits are not {self.shape[0]}x{self.shape[1]}")
            return None
        i = int(self._rng.integers(len(digits))) if index is None else int(index) % len(digits)
        self.state.set_image(digits[i].reshape(self.shape))
        self._say(f"validation digit {i}")
        return i

    # -- completion ------------------------------------------------------------------------------
    def _generator(self) -> torch.Generator:
        return torch.Generator().manual_seed(int(self._rng.integers(2**62)))

    def _ready(self, need: str) -> CanvasModel | None:
        e = self.entry
        if e is None:
            self._say("no model on the canvas: put checkpoints in the weights folder or train one first")
            return None
        if self.busy:
            self._say("busy: wait for the current job")
            return None
        if need not in e.caps:
            self._say(f"{e.name} cannot {need.replace('_', ' ')}")
            return None
        return e

    @Slot()
    def complete(self) -> asyncio.Task | None:
        """N completions of the drawing at once, off the GUI thread."""
        e = self._ready("complete")
        if e is None:
            return None
        known, note = self.state.known_mask()
        if known is None:
            self._say(note)
            return None
        self.stop_animation()
        n, digit = self.n_spin.value(), self.digit_combo.currentData()
        text = f"{n} completions by {e.name}" + (f" ({note})" if note else "")
        relay = ProgressRelay(self, self.complete_box.show_progress)  # row by row, for a pixel-by-pixel model
        task = self.jobs.run(complete_drawing, e, self.state.image.copy(), known, n, self._generator(), digit,
                             relay.report, done=lambda out: self._show_candidates(out, known, text),
                             title="Cannot complete", busy=f"completing {n}…")
        task.add_done_callback(lambda _task: relay.close())
        self._say(note or f"completing with {e.name}")
        return task

    @Slot()
    def sample(self) -> asyncio.Task | None:
        """N unconditional samples (of the chosen digit, for a conditional model)."""
        e = self._ready("sample")
        if e is None:
            return None
        self.stop_animation()
        n, known = self.n_spin.value(), np.zeros(self.shape, bool)
        relay = ProgressRelay(self, self.complete_box.show_progress)
        task = self.jobs.run(sample_drawings, e, n, self._generator(), self.digit_combo.currentData(), relay.report,
                             done=lambda out: self._show_candidates(out, known, f"{n} samples from {e.name}"),
                             title="Cannot sample", busy=f"sampling {n}…")
        task.add_done_callback(lambda _task: relay.close())
        return task

    def _show_candidates(self, out: np.ndarray, known: np.ndarray, text: str) -> None:
        self.candidates = (out.reshape(len(out), *self.shape) > 0.5).astype(np.uint8)
        self.candidates_known = known
        self.grid.set_tiles(candidate_tiles(out, known, None, self.shape))
        self._preview(self.grid.selected)
        self.prob_label.setText("")
        self._say(text + " (click one to preview it on the canvas, double-click to take it)")

    def _preview(self, i: int) -> None:
        """Show candidate ``i``'s pixels (those not kept from the drawing) over the canvas."""
        if self.candidates is None or not 0 <= i < len(self.candidates):
            return
        unknown = ~self.candidates_known
        tiles = candidate_tiles(self.candidates[i].reshape(1, -1), self.candidates_known, None, self.shape)
        self.canvas.ghost, self.canvas.ghost_mask = tiles[0], unknown
        self.canvas.highlight = None
        self.canvas.update()
        self.previewed = i
        self._schedule_readouts()  # they describe what is shown: the candidate over the drawing

    @Slot(int)
    def _on_tile_clicked(self, i: int) -> None:
        if self.anim is None and self.candidates is not None:
            self._preview(i)
            self._say(f"candidate {i + 1} shown: the heatmap and table score it (double-click to take it)")

    @Slot(int)
    def use_candidate(self, i: int) -> None:
        """Take candidate ``i`` as the drawing (undoable)."""
        if self.candidates is not None and 0 <= i < len(self.candidates) and self.anim is None:
            self._taking = True
            try:
                self.state.set_image(self.candidates[i])
            finally:
                self._taking = False
            self.previewed = None
            self._say(f"candidate {i + 1} is now the drawing (Ctrl+Z undoes it)")

    # -- animation -------------------------------------------------------------------------------
    def pixels_per_s(self) -> float | None:
        return self.complete_box.pixels_per_s()

    @property
    def anim(self) -> Completion | None:
        """The completion being animated, or None."""
        return self.animation.completion

    @property
    def anim_done(self) -> int:
        return self.anim.done if self.anim is not None else 0

    @Slot()
    def animate(self) -> bool:
        """Start drawing the completion pixel by pixel: each step shows the next pixel outlined in
        the colour of its p(x = 1), then draws it. False when it does not start (see message)."""
        if self.anim is not None:
            return False
        e = self._ready("complete_steps")
        if e is None:
            return False
        known, note = self.state.known_mask()
        if known is None:
            self._say(note)
            return False
        n = self.n_spin.value()
        try:
            steps = completion_steps(e, self.state.image, known, n, self._generator(), self.digit_combo.currentData())
        except (ValueError, NotImplementedError) as exc:
            self.error.emit("Cannot animate", str(exc))
            return False
        completion = Completion.start(self.state.image, known, n, e.name, note)
        self.candidates = self.previewed = None
        self._say(note or f"{e.name} draws {completion.total} pixels in its order")
        self.animation.start(steps, completion)
        self._update_controls()
        return True

    def advance(self, n: int) -> int:
        """Pull up to ``n`` pixels of the running animation now; the number pulled. The last one
        pulled is shown as the next pixel, not yet revealed."""
        return self.animation.advance(n)

    def _animation_finished(self, a: Completion) -> None:
        self.candidates = (a.x.reshape(len(a.x), *self.shape) > 0.5).astype(np.uint8)
        self.candidates_known = a.known.reshape(self.shape)
        self.grid.set_tiles(candidate_tiles(a.x, a.known, None, self.shape))
        self._preview(0)
        self._say(f"{a.name} drew {a.total} pixels" + (f" ({a.note})" if a.note else ""))
        self._update_controls()

    def _animation_failed(self, message: str) -> None:
        self.stop_animation()
        self.error.emit("Completion failed", message)

    @Slot()
    def stop_animation(self) -> None:
        if self.animation.stop() is not None:
            self._say("animation stopped")
            self._update_controls()

    # -- readouts --------------------------------------------------------------------------------
    @Slot()
    def _schedule_readouts(self, *_args) -> None:
        self.readouts_view.schedule()

    def _readout_key(self) -> tuple:
        """What the readouts depend on: the drawing, the selected model and digit, the models."""
        return (self._edit_version, self.previewed, self.model_combo.currentIndex(), self.digit_combo.currentData(),
                tuple(id(e) for e in self.entries))

    def _readout_inputs(self) -> tuple | None:
        if not self.entries:
            return None
        entries = list(self.entries)
        digits = self.digits if any(e.exact and e.percentiles is None for e in entries) else None
        return entries, self.model_combo.currentIndex(), self.shown_image(), self.digit_combo.currentData(), digits

    def shown_image(self) -> np.ndarray:
        """What the canvas shows: the drawing, under the previewed candidate's pixels if any."""
        image = self.state.image.copy()
        if self.previewed is not None and self.candidates is not None:
            unknown = ~self.candidates_known
            image[unknown] = self.candidates[self.previewed][unknown]
        return image

    def readouts_current(self) -> bool:
        """True when the readouts shown are those of the drawing and model as they are now."""
        return self.readouts_view.current()

    def update_readouts(self) -> asyncio.Task | None:
        """Score the drawing now (off the GUI thread); the task, or None without a model."""
        return self.readouts_view.update_readouts()

    # -- state shown in the controls -------------------------------------------------------------
    def _busy(self, on: bool, text: str = "") -> None:
        self.busy = on
        self.complete_box.busy(on, text)
        self._update_controls()

    def _update_controls(self) -> None:
        e = self.entry
        caps = e.caps if e is not None else set()
        idle = self.anim is None and not self.busy
        self.complete_btn.setEnabled(idle and "complete" in caps)
        self.animate_btn.setEnabled(idle and "complete_steps" in caps)
        self.animate_btn.setToolTip("draw the completion pixel by pixel (A)" if "complete_steps" in caps or e is None
                                    else f"{e.name} cannot complete pixel by pixel")
        self.sample_btn.setEnabled(idle and "sample" in caps)
        self.stop_btn.setEnabled(self.anim is not None)
        self.digit_combo.setEnabled(e is not None and e.conditional)
        self.finetune_btn.setEnabled(e is not None and e.path is not None)
        self.draw_box.allow_region(None if e is not None and e.any_order else
                                   "needs an order-agnostic model (MADE with order_agnostic): "
                                   + (f"{e.name} completes in raster order, the rows below row k" if e else "no model"))
        if self.state.tool in REGION_TOOLS and not self.tool_buttons[self.state.tool].isEnabled():
            self.set_tool("pen")  # a region stroke must never become ink
        self.undo_btn.setEnabled(self.state.can_undo)
        self.redo_btn.setEnabled(self.state.can_redo)

    def _say(self, message: str | None) -> None:
        if message:
            self.message = message
            self.message_label.setText(message)
            self.status.emit(message)

    # -- settings and closing --------------------------------------------------------------------
    def restore_settings(self, s: QSettings) -> None:
        self.draw_box.restore_settings(s)
        self.complete_box.restore_settings(s)
        key = s.value("canvas/model")
        if key:
            self._wanted_key = str(key)
            if self.entries:
                self.select_model(self._wanted_key)

    def save_settings(self, s: QSettings) -> None:
        self.draw_box.save_settings(s)
        self.complete_box.save_settings(s)
        key = self.entry.key if self.entry is not None else self._wanted_key
        if key:
            s.setValue("canvas/model", key)

    def shutdown(self) -> None:
        """Stop the timers and the animation and drop pending jobs (the window is closing)."""
        self.jobs.close()
        self.readouts_view.stop()
        self.stop_animation()
