"""The Canvas tab's state without Qt: the drawing and its region, the tool, the completion mode,
undo/redo, and the progress of a pixel-by-pixel completion.

An autoregressive model factorises an image's probability by the chain rule in a pixel order,

    log p(x) = sum_d log p(x_d | x_<d),

so it can *complete* a partial drawing exactly when the known pixels come first in its order:
sample each unknown pixel from its conditional, in order, given the known pixels and the ones
already drawn. Raster-order models (FVSBN, NADE, MADE in raster mode) can therefore only
complete the rows below some row k given the rows above it; a MADE trained over random orderings
(``order_agnostic``) moves the known pixels to the front of its ordering and can fill any painted
region. An empty canvas (nothing known) makes completion plain sampling.

As napari's ``components/dims.py`` is for ``_qt/widgets/qt_dims.py``: :class:`CanvasState` holds
the state and says when it changes through tiny callback lists (:class:`Callbacks`); the widgets
(``gui/pixel_canvas.py``, ``gui/canvas.py``) observe it and only draw it, so all of it is tested
without a window.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

#: undo steps kept
UNDO_DEPTH = 200
TOOLS = ("pen", "eraser", "region", "unregion")
OPPOSITE = {"pen": "eraser", "eraser": "pen", "region": "unregion", "unregion": "region"}
REGION_TOOLS = ("region", "unregion")
#: "rows": complete the rows below row k; "region": complete the painted region
MODES = ("rows", "region")


class Callbacks:
    """A list of callbacks: :meth:`connect` one, :meth:`emit` calls each in order (no Qt, no
    threads: called right where the state changed)."""

    def __init__(self) -> None:
        self._callbacks: list[Callable[..., Any]] = []

    def connect(self, callback: Callable[..., Any]) -> Callable[..., Any]:
        self._callbacks.append(callback)
        return callback

    def disconnect(self, callback: Callable[..., Any]) -> None:
        self._callbacks.remove(callback)

    def emit(self, *args: Any) -> None:
        for callback in list(self._callbacks):
            callback(*args)


class CanvasEvents:
    """What a :class:`CanvasState` announces: ``edited()`` (the image or region changed, during a
    stroke too), ``tool(name)``, ``mode(name)``, ``row(k)``, ``brush(size)``."""

    def __init__(self) -> None:
        self.edited = Callbacks()
        self.tool = Callbacks()
        self.mode = Callbacks()
        self.row = Callbacks()
        self.brush = Callbacks()


class CanvasState:
    """An (H, W) binary drawing and an (H, W) region of pixels to fill, edited by strokes (one
    undo step per stroke that changed something), with the tool, brush, mode and row k."""

    def __init__(self, shape: tuple[int, int]):
        self.shape = (int(shape[0]), int(shape[1]))
        self.image = np.zeros(self.shape, np.uint8)
        self.region = np.zeros(self.shape, bool)
        self.tool = "pen"
        self.brush = 1
        self.mode = "rows"
        self.row = self.shape[0] // 2
        self.undo_stack: list[tuple[np.ndarray, np.ndarray]] = []
        self.redo_stack: list[tuple[np.ndarray, np.ndarray]] = []
        self.events = CanvasEvents()
        self._stroke: str | None = None  # the tool of the stroke in progress
        self._stroke_changed = False
        self._last: tuple[int, int] | None = None

    # -- settings ----------------------------------------------------------------------------------
    def set_tool(self, tool: str) -> None:
        """The left button's tool; a region tool needs the region mode (ValueError otherwise)."""
        if tool not in TOOLS:
            raise ValueError(f"unknown tool {tool!r}")
        if tool in REGION_TOOLS and self.mode != "region":
            raise ValueError("the region tools need the region mode")
        if tool != self.tool:
            self.tool = tool
            self.events.tool.emit(tool)

    def set_mode(self, mode: str) -> None:
        """Rows or region; leaving the region mode puts the pen back in hand."""
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}")
        if mode == self.mode:
            return
        self.mode = mode
        if mode != "region" and self.tool in REGION_TOOLS:
            self.tool = "pen"
            self.events.tool.emit(self.tool)
        self.events.mode.emit(mode)

    def set_row(self, k: int) -> None:
        """Row k of the rows mode: the rows above it are kept as drawn."""
        k = int(np.clip(int(k), 0, self.shape[0]))
        if k != self.row:
            self.row = k
            self.events.row.emit(k)

    def set_brush(self, size: int) -> None:
        if size not in (1, 2, 3):
            raise ValueError(f"brush size {size}: 1, 2 or 3")
        if size != self.brush:
            self.brush = int(size)
            self.events.brush.emit(self.brush)

    @property
    def split_row(self) -> int | None:
        """The row line drawn over the canvas (None in the region mode)."""
        return None if self.mode == "region" else self.row

    # -- strokes -----------------------------------------------------------------------------------
    def begin_stroke(self, opposite: bool = False) -> None:
        """Start a stroke with the tool (or its opposite: the right mouse button)."""
        self._stroke = OPPOSITE[self.tool] if opposite else self.tool
        self._push_undo()
        self._stroke_changed = False
        self._last = None

    @property
    def stroking(self) -> bool:
        return self._stroke is not None

    def stroke_to(self, cell: tuple[int, int] | None) -> bool:
        """Continue the stroke to ``cell`` (every pixel on the segment from the last one, so a
        fast drag leaves no gaps); None: the pointer left the canvas, do not join across the
        outside. True when a pixel changed."""
        if self._stroke is None:
            return False
        if cell is None:
            self._last = None
            return False
        r1, c1 = cell
        r0, c0 = self._last if self._last is not None else cell
        n = max(abs(r1 - r0), abs(c1 - c0), 1)
        changed = False
        for t in range(1 if self._last is not None else 0, n + 1):
            changed |= self._dab(round(r0 + (r1 - r0) * t / n), round(c0 + (c1 - c0) * t / n), self._stroke)
        self._last = cell
        if changed:
            self._stroke_changed = True
            self.events.edited.emit()
        return changed

    def end_stroke(self) -> None:
        if self._stroke is None:
            return
        if not self._stroke_changed and self.undo_stack:
            self.undo_stack.pop()  # a click that changed nothing is no undo step
        self._stroke, self._last = None, None

    def _dab(self, r: int, c: int, tool: str) -> bool:
        h, w = self.shape
        offsets = {1: [(0, 0)], 2: [(0, 0), (0, 1), (1, 0), (1, 1)]}.get(
            self.brush, [(i, j) for i in (-1, 0, 1) for j in (-1, 0, 1)])
        changed = False
        for dr, dc in offsets:
            rr, cc = r + dr, c + dc
            if 0 <= rr < h and 0 <= cc < w:
                if tool in ("pen", "eraser"):
                    v = 1 if tool == "pen" else 0
                    changed |= bool(self.image[rr, cc] != v)
                    self.image[rr, cc] = v
                else:
                    v = tool == "region"
                    changed |= bool(self.region[rr, cc] != v)
                    self.region[rr, cc] = v
        return changed

    # -- whole-drawing edits and undo ----------------------------------------------------------------
    def _snapshot(self) -> tuple[np.ndarray, np.ndarray]:
        return self.image.copy(), self.region.copy()

    def _push_undo(self) -> None:
        self.undo_stack.append(self._snapshot())
        del self.undo_stack[:-UNDO_DEPTH]
        self.redo_stack.clear()

    def set_image(self, image: np.ndarray, region: np.ndarray | None = None) -> None:
        """Replace the drawing (and optionally the region) as one undoable step."""
        image = np.asarray(image).reshape(self.shape)
        self._push_undo()
        self.image = (image > 0.5).astype(np.uint8)
        if region is not None:
            self.region = np.asarray(region, bool).reshape(self.shape).copy()
        self.events.edited.emit()

    def clear(self) -> None:
        """Clear the drawing and the region (one undo step; nothing when both are empty)."""
        if self.image.any() or self.region.any():
            self._push_undo()
            self.image[:] = 0
            self.region[:] = False
            self.events.edited.emit()

    def clear_region(self) -> None:
        if self.region.any():
            self._push_undo()
            self.region[:] = False
            self.events.edited.emit()

    @property
    def can_undo(self) -> bool:
        return bool(self.undo_stack)

    @property
    def can_redo(self) -> bool:
        return bool(self.redo_stack)

    def undo(self) -> bool:
        if not self.undo_stack:
            return False
        self.redo_stack.append(self._snapshot())
        self.image, self.region = self.undo_stack.pop()
        self.events.edited.emit()
        return True

    def redo(self) -> bool:
        if not self.redo_stack:
            return False
        self.undo_stack.append(self._snapshot())
        self.image, self.region = self.redo_stack.pop()
        self.events.edited.emit()
        return True

    # -- what a completion keeps -------------------------------------------------------------------
    def known_mask(self) -> tuple[np.ndarray | None, str | None]:
        """The pixels kept as drawn (bool (H, W)), or None and why there is nothing to complete;
        plus a note for the user (sampling, full canvas)."""
        h, _ = self.shape
        image, note = self.image, None
        if self.mode == "region":
            if not self.region.any():
                return None, ("nothing to complete: paint the pixels the model should fill with the "
                              "region brush (F)")
            known = ~self.region
            if self.region.all():
                note = "the region covers the whole canvas: nothing of the drawing is kept, so this is plain sampling"
        else:
            k = self.row
            if k >= h:
                return None, f"nothing to complete: every row is above row k = {k}; lower k"
            known = np.zeros(self.shape, bool)
            known[:k] = True
            if k == 0:
                note = "k = 0 keeps no row: this is plain sampling"
        if not image.any() and known.any():
            known = np.zeros(self.shape, bool)
            note = "the canvas is empty: completing it is plain sampling"
        elif image.all() and known.any():
            note = "the canvas is full (every pixel ink): the model completes it all the same"
        return known, note


@dataclass
class Completion:
    """The progress of a pixel-by-pixel completion of ``M`` candidates: the steps taken so far
    (``model.complete_steps``'s :class:`~core.protocol.CompletionStep`) as arrays. The last step
    taken is the *next* pixel, shown but not counted as drawn until the one after it comes."""

    known: np.ndarray  # (D,) bool: the pixels kept from the drawing
    total: int  # pixels to draw
    x: np.ndarray  # (M, D) float32: the candidates as of the last step
    drawn: np.ndarray  # (D,) bool: pixels drawn so far
    name: str = ""  # the model drawing
    note: str | None = None  # what the user was told at the start (sampling, full canvas)
    done: int = 0
    pixel: int | None = None
    p: np.ndarray | None = None  # (M,) p(x = 1) of ``pixel`` per candidate

    @classmethod
    def start(cls, image: np.ndarray, known: np.ndarray, n: int, name: str = "",
              note: str | None = None) -> Completion:
        """Before the first step: ``n`` copies of the known pixels of ``image``, the rest blank."""
        flat_known = np.asarray(known, bool).reshape(-1)
        start = np.where(flat_known, np.asarray(image).reshape(-1), 0).astype(np.float32)
        return cls(flat_known, int((~flat_known).sum()), np.repeat(start[None], n, 0),
                   np.zeros_like(flat_known), name, note)

    def take(self, step: Any) -> None:
        """Record one step (``pixel``, ``p``, ``x``, ``done`` of a CompletionStep)."""
        if self.pixel is not None:
            self.drawn[self.pixel] = True
        self.pixel = int(step.pixel)
        self.p = step.p.detach().float().cpu().numpy().reshape(-1)
        self.x = step.x.detach().float().cpu().numpy().reshape(len(step.x), -1).copy()
        self.done = int(step.done)

    @property
    def finished(self) -> bool:
        return self.done >= self.total

    @property
    def pending(self) -> np.ndarray:
        """(D,) bool: the pixels still to draw (not known, not drawn; the next one among them)."""
        return ~self.known & ~self.drawn

    def finish(self) -> None:
        """Every unknown pixel is drawn."""
        self.drawn[:] = ~self.known
