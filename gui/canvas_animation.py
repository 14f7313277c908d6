"""The Canvas tab's pixel-by-pixel completion: ``model.complete_steps`` pulled by the paced puller
of :mod:`gui.jobs` into a :class:`core.canvas_state.Completion`, drawn on the candidate grid and
over the canvas (the next pixel outlined in the colour of its p(x = 1))."""

from __future__ import annotations

from typing import Any, Callable, Iterator

import numpy as np
from PySide6.QtCore import QObject
from PySide6.QtWidgets import QLabel, QProgressBar

from core.canvas_state import Completion
from core.readouts import INK, PAPER, PENDING, candidate_tiles
from gui.candidate_grid import CandidateGrid, p_colour
from gui.jobs import PacedPuller
from gui.pixel_canvas import PixelCanvas

#: time an animation tick may spend pulling pixels, so the window stays responsive at any speed
TICK_BUDGET_S = 0.02


class CompletionAnimation(QObject):
    """Runs one completion at a time at ``rate()`` pixels a second. ``finished(completion)``
    follows the last pixel; ``failed(message)`` a model that raised (the animation has stopped)."""

    def __init__(self, canvas: PixelCanvas, grid: CandidateGrid, prob_label: QLabel, progress: QProgressBar,
                 rate: Callable[[], float | None], finished: Callable[[Completion], None],
                 failed: Callable[[str], None], fps: float = 30.0, parent: QObject | None = None):
        super().__init__(parent)
        self.canvas, self.grid, self.prob_label, self.progress = canvas, grid, prob_label, progress
        self.rate, self.finished, self.failed = rate, finished, failed
        self.puller = PacedPuller(self, max(10, int(1000 / fps)), TICK_BUDGET_S)
        self.completion: Completion | None = None

    def start(self, steps: Iterator[Any], completion: Completion) -> None:
        self.completion = completion
        self.progress.setRange(0, max(1, completion.total))
        self.progress.setValue(0)
        self.render()
        self.puller.start(steps, self.rate, self._take, self._pulled, self._failed)

    def advance(self, n: int) -> int:
        """Pull up to ``n`` pixels now; the number pulled."""
        return self.puller.pull(n) if self.completion is not None else 0

    def stop(self) -> Completion | None:
        """Stop where it is (the overlays go); the completion as it stood."""
        c, self.completion = self.completion, None
        self.puller.stop()
        if c is not None:
            self.canvas.highlight = None
            self.canvas.update()
            self.prob_label.setStyleSheet("")
        return c

    def _take(self, step: Any) -> bool:
        self.completion.take(step)
        return step.done >= step.total

    def _pulled(self, _pulled: int, finished: bool) -> None:
        self.render()
        if finished:
            c, self.completion = self.completion, None
            c.finish()
            self.prob_label.setStyleSheet("")
            self.finished(c)

    def _failed(self, exc: BaseException) -> None:
        self.failed(f"{type(exc).__name__}: {exc}")

    def render(self) -> None:
        """The candidates' tiles (pending pixels grey), candidate 1 over the canvas with the
        drawing still to be replaced dimmed, the next pixel and its p(x = 1)."""
        a = self.completion
        shape = self.canvas.shape
        pending = a.pending
        tiles = candidate_tiles(a.x, a.known, pending, shape)
        highlight = None
        if a.pixel is not None and a.p is not None:
            colours = [p_colour(p) for p in a.p]
            highlight = (a.pixel, colours)
            r, c = divmod(a.pixel, shape[1])
            self.canvas.highlight = (r, c, colours[0])
            mean = f"; mean over {len(a.p)}: {np.nanmean(a.p):.3f}" if len(a.p) > 1 and np.isfinite(a.p).any() else ""
            self.prob_label.setText(f"pixel (row {r}, col {c}): p(x = 1) = {a.p[0]:.3f}{mean}"
                                    f"  [{a.done}/{a.total}]")
            col = colours[0]
            text = "black" if col.lightness() > 140 else "white"
            self.prob_label.setStyleSheet(f"QLabel#canvasProbLabel {{ background: {col.name()}; color: {text}; "
                                          "padding: 3px; }")
        self.grid.set_tiles(tiles, highlight)
        ghost = tiles[0].reshape(-1, 3).astype(np.float32)
        old = np.where(self.canvas.state.image.reshape(-1, 1) > 0, INK, PAPER)
        ghost[pending] = 0.35 * old[pending] + 0.65 * np.asarray(PENDING, np.float32)
        self.canvas.ghost = ghost.astype(np.uint8).reshape(*shape, 3)
        self.canvas.ghost_mask = (~a.known).reshape(shape)
        self.canvas.update()
        self.progress.setValue(a.done)
