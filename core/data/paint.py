"""Painting a point set by hand: a brush, an eraser, undo and redo (pure numpy, no Qt).

Every action that changes the points (``brush``, ``erase``, ``clear``, ``set_points``) is one
undoable step; an action that changes nothing (an erase that hits no point, say) is not
recorded. A new action clears the redo history.
"""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Sequence

import numpy as np

__all__ = ["PaintBuffer"]


class PaintBuffer:
    """Points in ``dim`` (1 or 2) dimensions inside ``bounds`` ((lo, hi) per dimension)."""

    def __init__(self, dim: int, bounds: Sequence[Sequence[float]], seed: int = 0, max_history: int = 1000):
        if isinstance(dim, bool) or dim not in (1, 2):
            raise ValueError(f"dim must be 1 or 2, got {dim!r}")
        b = np.asarray(bounds, dtype=np.float64)
        if b.shape != (dim, 2) or not np.isfinite(b).all() or not (b[:, 0] < b[:, 1]).all():
            raise ValueError(f"bounds must be {dim} finite (lo, hi) pair(s) with lo < hi, got {bounds!r}")
        if isinstance(max_history, bool) or not isinstance(max_history, Integral) or max_history < 1:
            raise ValueError(f"max_history must be a whole number >= 1, got {max_history!r}")
        self.dim = dim
        self.bounds: tuple[tuple[float, float], ...] = tuple((float(lo), float(hi)) for lo, hi in b)
        self._lo, self._hi = b[:, 0], b[:, 1]
        self._rng = np.random.default_rng(seed)
        self._points = np.zeros((0, dim), np.float32)
        self._undo: list[np.ndarray] = []
        self._redo: list[np.ndarray] = []
        self._max_history = int(max_history)

    # -- state ---------------------------------------------------------------------------------
    @property
    def points(self) -> np.ndarray:
        """A float32 (N, dim) copy of the points."""
        return self._points.copy()

    def __len__(self) -> int:
        return len(self._points)

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    def _commit(self, new: np.ndarray, merge: bool = False) -> None:
        if not (merge and self._undo):  # merge: part of the same stroke, one undo step for all
            self._undo.append(self._points)
            del self._undo[:-self._max_history]
        self._redo.clear()
        self._points = new

    def undo(self) -> bool:
        """Go back one action; False when there is none."""
        if not self._undo:
            return False
        self._redo.append(self._points)
        self._points = self._undo.pop()
        return True

    def redo(self) -> bool:
        """Redo the last undone action; False when there is none."""
        if not self._redo:
            return False
        self._undo.append(self._points)
        self._points = self._redo.pop()
        return True

    # -- checks --------------------------------------------------------------------------------
    def _centre(self, center) -> np.ndarray:
        c = np.asarray(center, dtype=np.float64).reshape(-1)
        if c.shape != (self.dim,):
            raise ValueError(f"center must have {self.dim} coordinate(s), got {center!r}")
        if not np.isfinite(c).all():
            raise ValueError(f"center must be finite, got {center!r}")
        return c

    @staticmethod
    def _radius(radius) -> float:
        if isinstance(radius, bool) or not isinstance(radius, Real) or not math.isfinite(radius) or radius <= 0:
            raise ValueError(f"radius must be a finite number > 0, got {radius!r}")
        return float(radius)

    # -- actions -------------------------------------------------------------------------------
    def brush(self, center, radius: float, intensity: int = 1, merge: bool = False) -> int:
        """Add ``intensity`` points uniform in the disc (2D) or interval (1D) of ``radius`` around
        ``center``, restricted to the bounds (uniform on their intersection). Returns the number
        added: 0 when the brush lies wholly outside the bounds (then nothing is recorded).
        ``merge`` folds this dab into the previous undo step (the rest of a mouse stroke)."""
        c, r = self._centre(center), self._radius(radius)
        if isinstance(intensity, bool) or not isinstance(intensity, Integral) or intensity < 1:
            raise ValueError(f"intensity must be a whole number >= 1, got {intensity!r}")
        k = int(intensity)
        lo, hi = np.maximum(c - r, self._lo), np.minimum(c + r, self._hi)  # box of brush & bounds
        if (lo > hi).any():
            return 0
        if self.dim == 1:
            new = lo + (hi - lo) * self._rng.random((k, 1))
        else:
            if np.sum((np.clip(c, lo, hi) - c) ** 2) > r * r:  # the box misses the disc
                return 0
            # uniform in the box, kept when inside the disc: uniform on disc & bounds
            got: list[np.ndarray] = []
            have = 0
            for round_ in range(32):
                m = min(1 << 20, max(64, 2 * (k - have)) << min(round_, 12))
                u = lo + (hi - lo) * self._rng.random((m, 2))
                u = u[((u - c) ** 2).sum(1) <= r * r]
                got.append(u)
                have += len(u)
                if have >= k:
                    break
            new = np.concatenate(got)[:k]
            if len(new) < k:  # a sliver of a disc: place the rest at the nearest point of it
                new = np.concatenate([new, np.repeat(np.clip(c, lo, hi)[None], k - len(new), 0)])
        new = np.clip(new, self._lo, self._hi).astype(np.float32)
        self._commit(np.concatenate([self._points, new]), merge)
        return k

    def erase(self, center, radius: float, merge: bool = False) -> int:
        """Remove the points within ``radius`` of ``center``; returns how many. ``merge`` as
        for :meth:`brush`."""
        c, r = self._centre(center), self._radius(radius)
        hit = ((self._points.astype(np.float64) - c) ** 2).sum(1) <= r * r
        n = int(hit.sum())
        if n:
            self._commit(self._points[~hit], merge)
        return n

    def clear(self) -> None:
        """Remove every point (one undoable step)."""
        if len(self._points):
            self._commit(np.zeros((0, self.dim), np.float32))

    def set_points(self, x) -> None:
        """Replace the points with ``x`` ((N, dim), or (N,) in 1D; finite); kept as given, even
        outside the bounds."""
        x = np.asarray(x, dtype=np.float64)
        if self.dim == 1 and x.ndim == 1:
            x = x[:, None]
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"expected points of shape (N, {self.dim}), got {x.shape}")
        if not np.isfinite(x).all():
            raise ValueError("points must be finite (no NaN or infinite values)")
        self._commit(np.ascontiguousarray(x, dtype=np.float32))
