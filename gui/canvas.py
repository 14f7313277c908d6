"""The Canvas tab: draw part of a digit on a binary canvas and let an autoregressive model finish it.

An autoregressive model factorises an image's probability by the chain rule in a pixel order,

    log p(x) = sum_d log p(x_d | x_<d),

so it can *complete* a partial drawing exactly when the known pixels come first in its order:
sample each unknown pixel from its conditional, in order, given the known pixels and the ones
already drawn. Raster-order models (FVSBN, NADE, MADE in raster mode) can therefore only
complete the rows below some row k given the rows above it; a MADE trained over random orderings
(``order_agnostic``) moves the known pixels to the front of its ordering and can fill any painted
region. An empty canvas (nothing known) makes completion plain sampling.

The same terms give the live readouts: the drawing's log-likelihood in nats and in bits per
dimension, ``-log p(x) / (D ln 2)``; the per-pixel NLL heatmap ``-log p(x_d | x_<d)`` (which sums
to ``-log p(x)``: where the drawing surprised the model); and a typicality score, the percentage
of validation digits the drawing is *more* likely than (from the checkpoint's NLL percentiles of
the validation set, or from the 500 shipped validation digits): a scribble scores near 0 %.

The canvas, the candidate grid and the readouts are thin Qt views; every model call that can
take long (loading, completing, sampling, the readouts) runs off the GUI thread as a qasync
coroutine (:func:`gui.jobs.in_thread`); the pixel-by-pixel animation pulls
``model.complete_steps`` from a QTimer with a per-tick time budget.
"""

from __future__ import annotations

import asyncio
import math
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import pyqtgraph as pg
import torch
from PySide6.QtCore import QPointF, QRectF, QSettings, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QColor, QImage, QKeySequence, QMouseEvent, QPainter, QPen, QShortcut
from PySide6.QtWidgets import (QButtonGroup, QComboBox, QFormLayout, QGroupBox, QHBoxLayout,
                               QLabel, QProgressBar, QPushButton, QScrollArea, QSizePolicy,
                               QSlider, QSpinBox, QSplitter, QTableWidget, QTableWidgetItem,
                               QVBoxLayout, QWidget)

from core import registry
from core.checkpoint import CheckpointError, CheckpointMeta, load_checkpoint, read_checkpoint_meta
from core.protocol import DataKind, GenerativeModel, Likelihood
from core.training import clone_model
from gui.jobs import in_thread

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_WEIGHTS = ROOT / "resources" / "weights"
DIGITS_FILE = ROOT / "resources" / "digits" / "valid_sample.npz"
CANVAS_SHAPE = (28, 28)
#: the digits a class-conditional model can be asked for
N_CLASSES = 10
#: the animation's speed slider: 2**v pixels per second for v < SPEED_MAX, SPEED_MAX = flat out
SPEED_MAX = 13
#: time an animation tick may spend pulling pixels, so the window stays responsive at any speed
TICK_BUDGET_S = 0.02
#: a drawing less likely than this percentage of validation digits is flagged as unusual
UNUSUAL_PCT = 2.0
UNDO_DEPTH = 200
TRAINING_KEY = "training-tab"

# tile colours (RGB): what was drawn, what the model drew, what it has not drawn yet
INK, PAPER = (235, 235, 235), (18, 18, 18)
MODEL_INK, MODEL_PAPER = (110, 175, 255), (16, 26, 48)
PENDING = (70, 70, 70)
REGION_TINT = np.array([60, 110, 210], np.float32)


# --------------------------------------------------------------------------------------------
# models on the canvas (no Qt below this line until the widgets)
# --------------------------------------------------------------------------------------------

@dataclass
class CanvasModel:
    """A model the canvas can use: from a checkpoint in the weights folder, or a snapshot of
    the Training tab's model."""

    key: str  # stable id for the settings: the checkpoint's path, or TRAINING_KEY
    name: str
    model: GenerativeModel
    meta: CheckpointMeta | None = None
    path: Path | None = None
    percentiles: np.ndarray | None = None  # validation NLL (nats) at percentiles 0..100
    valid_nll: float | None = None

    @property
    def caps(self) -> set[str]:
        return self.model.capabilities()

    @property
    def exact(self) -> bool:
        return self.model.info.likelihood is Likelihood.EXACT and "log_prob" in self.caps

    @property
    def conditional(self) -> bool:
        return bool(self.model.info.conditional)

    @property
    def any_order(self) -> bool:
        """Can it condition on an arbitrary set of pixels (known ones first in its order)?"""
        return bool(self.model.hparams.get("order_agnostic", False))

    @property
    def label(self) -> str:
        nll = f"valid NLL {self.valid_nll:.2f} nats" if self.valid_nll is not None else "valid NLL unknown"
        where = self.path.name if self.path is not None else "Training tab"
        extra = ", any order" if self.any_order else ""
        return f"{self.name} — {nll} ({where}{extra})"


def image_shape_of(data_shape: tuple[int, ...], image_shape: Any = None) -> tuple[int, int] | None:
    """The (H, W) a binary-image model's flat or 2D data shape stands for: its own 2D shape,
    the data set's image shape when it fits, else a square; None when there is none."""
    if len(data_shape) == 2:
        return int(data_shape[0]), int(data_shape[1])
    d = int(np.prod(data_shape))
    if image_shape is not None and len(image_shape) == 2 and int(image_shape[0]) * int(image_shape[1]) == d:
        return int(image_shape[0]), int(image_shape[1])
    side = math.isqrt(d)
    return (side, side) if side * side == d else None


def check_meta(meta: CheckpointMeta, canvas_shape: tuple[int, int]) -> str | None:
    """Why a checkpoint cannot go on the canvas (family, kind or shape), or None if it can."""
    family = meta.family
    try:
        info = registry.info(family)
    except KeyError:
        return f"unknown model family {family!r}"
    if DataKind.BINARY_IMAGE not in info.data_kinds:
        kinds = ", ".join(k.value.replace("_", " ") for k in info.data_kinds)
        return f"{info.name} is a model of {kinds}, not of binary images"
    shape = meta.data_shape
    image = image_shape_of(shape, meta.image_shape) if shape else None
    if image != tuple(canvas_shape):
        got = "x".join(map(str, image)) if image else f"shape {shape}"
        return f"it is for {got} images; the canvas is {canvas_shape[0]}x{canvas_shape[1]}"
    return None


def scan_weights(folder: Path, canvas_shape: tuple[int, int] = CANVAS_SHAPE) -> tuple[list[CanvasModel], list[str]]:
    """Load every binary-image checkpoint in ``folder`` that fits the canvas (blocking: run it off
    the GUI thread). Returns the models and one message per file skipped."""
    models, problems = [], []
    folder = Path(folder)
    if not folder.is_dir():
        return [], [f"no weights folder at {folder}"]
    for path in sorted(folder.glob("*.safetensors")):
        try:
            meta = read_checkpoint_meta(path)
            if meta.data_kind is DataKind.SEQUENCE:
                continue  # the Sequences tab's models share the folder: not a problem
            reason = check_meta(meta, canvas_shape)
            if reason is not None:
                problems.append(f"{path.name} skipped: {reason}")
                continue
            model, meta = load_checkpoint(path)
        except CheckpointError as exc:
            problems.append(f"{path.name} skipped: {exc}")
            continue
        model.eval()
        # the file name tells two checkpoints of one family apart ("MADE (made-ensemble)")
        name = model.info.name if path.stem == model.info.key else f"{model.info.name} ({path.stem})"
        nll = meta.nll
        models.append(CanvasModel(str(path), name, model, meta, path, meta.valid_percentiles,
                                  nll.nats if nll is not None else None))
    return models, problems


def _copied_now(model: GenerativeModel) -> Future:
    """A done future of a copy of ``model`` (for a model that nothing trains)."""
    done: Future = Future()
    done.set_result(clone_model(model))
    return done


def load_digits(path: Path = DIGITS_FILE) -> np.ndarray:
    """The shipped validation digits, uint8 (N, 784) in {0, 1}; ValueError if the file is bad."""
    try:
        with np.load(path, allow_pickle=False) as f:
            packed, shape = f["images"], tuple(int(s) for s in f["shape"])
    except (OSError, KeyError, ValueError) as exc:
        raise ValueError(f"cannot read the validation digits in {path}: {exc}") from None
    d = shape[0] * shape[1]
    images = np.unpackbits(packed, axis=1)[:, :d]
    if images.ndim != 2 or images.shape[1] != d:
        raise ValueError(f"{path}: the digits do not have {shape[0]}x{shape[1]} pixels")
    return np.ascontiguousarray(images, dtype=np.uint8)


# -- likelihood terms -----------------------------------------------------------------------------

def _batch(model: GenerativeModel, x: np.ndarray) -> torch.Tensor:
    """(N, H, W) or (N, D) values as float rows of the model's data shape."""
    return torch.as_tensor(np.asarray(x, np.float32)).reshape(len(x), *model.data_shape).to(model.device)


def label_kwargs(entry: CanvasModel, digit: int | None, n: int) -> dict[str, Any]:
    """``labels=`` for a class-conditional model when a digit is chosen: ``n`` copies of it.
    With no digit ("Any") none are passed: the model then scores the uniform class mixture
    p(x) = 1/C sum_y p(x | y) and samples a random class (the protocol's default)."""
    if not entry.conditional or digit is None:
        return {}
    return {"labels": torch.full((n,), int(digit), dtype=torch.long, device=entry.model.device)}


@torch.no_grad()
def log_prob(entry: CanvasModel, x: np.ndarray, digit: int | None = None) -> np.ndarray:
    """log p(x) (nats, float64 (N,)), of the chosen digit for a conditional model."""
    xt = _batch(entry.model, x)
    return entry.model.log_prob(xt, **label_kwargs(entry, digit, len(xt))).double().cpu().numpy()


@torch.no_grad()
def pixel_nll(entry: CanvasModel, x: np.ndarray, digit: int | None = None) -> np.ndarray:
    """-log p(x_d | x_<d) of one flat drawing, float64 (D,): the chain-rule terms of -log p(x)."""
    xt = _batch(entry.model, x[None])
    return -entry.model.pixel_log_prob(xt, **label_kwargs(entry, digit, 1)).double().reshape(-1).cpu().numpy()


def nll_percentiles(entry: CanvasModel, digits: np.ndarray, batch: int = 250) -> np.ndarray:
    """The validation digits' NLL (nats) at percentiles 0..100 (for a model whose checkpoint
    does not record them)."""
    nll = np.concatenate([-log_prob(entry, digits[i:i + batch]) for i in range(0, len(digits), batch)])
    return np.percentile(nll, np.arange(101))


def typicality(nll: float, percentiles: np.ndarray) -> float:
    """The percentage of validation digits whose NLL is higher (less likely) than ``nll``: 0 for
    a drawing less likely than every one of them, 100 for one more likely than all."""
    q = np.asarray(percentiles, np.float64)
    if nll < q[0]:
        return 100.0
    if nll > q[-1]:
        return 0.0
    # linear interpolation in the inverse CDF; ties (flat runs) take their middle
    lo = np.searchsorted(q, nll, side="left")
    hi = np.searchsorted(q, nll, side="right")
    if hi > lo:
        return float(100.0 - (lo + hi - 1) / 2)
    p = (lo - 1) + (nll - q[lo - 1]) / (q[lo] - q[lo - 1])
    return float(np.clip(100.0 - p, 0.0, 100.0))


@dataclass
class Readouts:
    """What the readouts show for one drawing."""

    version: int
    rows: list[dict[str, Any]]  # one per exact model: name, log_p, bpd, typicality
    heat: np.ndarray | None  # (H, W) float32 per-pixel NLL of the selected model
    total: float | None  # its sum (float64 of the float32 heat) = -log p(x) of the selected model
    digit: int | None  # the digit it was conditioned on (conditional models), None: all digits
    percentiles: dict[int, np.ndarray]  # computed here for models that lacked them
    notes: list[str]


def compute_readouts(version: int, entries: list[CanvasModel], selected: int, image: np.ndarray,
                     digit: int | None, digits: np.ndarray | None) -> Readouts:
    """Every exact model's log p of ``image`` and the selected model's per-pixel NLL (blocking)."""
    rows, notes, computed = [], [], {}
    heat, total, used = None, None, None
    flat = image.reshape(-1).astype(np.float32)
    for i, e in enumerate(entries):
        if not e.exact:
            continue
        lp = float(log_prob(e, flat[None], digit)[0])
        pct = e.percentiles
        if pct is None and digits is not None and digits.shape[1] == e.model.dim:
            pct = computed[i] = nll_percentiles(e, digits)
        rows.append({"index": i, "name": e.name, "log_p": lp, "bpd": -lp / (e.model.dim * math.log(2)),
                     "typicality": None if pct is None else typicality(-lp, pct)})
    if 0 <= selected < len(entries):
        e = entries[selected]
        if "pixel_log_prob" in e.caps:
            terms = pixel_nll(e, flat, digit)
            used = digit if e.conditional else None
            heat = np.ascontiguousarray(terms.reshape(image.shape), dtype=np.float32)
            total = float(heat.astype(np.float64).sum())
        else:
            notes.append(f"{e.name} has no per-pixel likelihood terms: no heatmap")
    return Readouts(version, rows, heat, total, used, computed, notes)


def candidate_tiles(x: np.ndarray, known: np.ndarray, pending: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray:
    """RGB tiles (M, H, W, 3) uint8 of candidates ``x`` (M, D): the known pixels as drawn, the
    model's pixels in blue, the ones it has not drawn yet grey."""
    xb = np.asarray(x).reshape(len(x), -1) > 0.5
    known = np.broadcast_to(np.asarray(known, bool).reshape(-1), xb.shape[1:])
    out = np.empty((*xb.shape, 3), np.uint8)
    out[:] = np.where(xb[..., None], MODEL_INK, MODEL_PAPER)
    k = np.broadcast_to(known, xb.shape)
    out[k] = np.where(xb[k][:, None], INK, PAPER)
    if pending is not None:
        out[np.broadcast_to(np.asarray(pending, bool).reshape(-1), xb.shape)] = PENDING
    return np.ascontiguousarray(out.reshape(len(x), *shape, 3))


def p_colour(p: float) -> QColor:
    """Blue for p(x = 1) = 0, grey at 1/2, orange-red at 1 (grey for NaN: a candidate that does
    not draw this pixel)."""
    if not math.isfinite(float(p)):
        return QColor(150, 150, 150)
    p = float(np.clip(p, 0.0, 1.0))
    lo, mid, hi = np.array([40, 100, 235]), np.array([150, 150, 150]), np.array([245, 90, 30])
    c = lo + (mid - lo) * (p / 0.5) if p < 0.5 else mid + (hi - mid) * ((p - 0.5) / 0.5)
    return QColor(int(c[0]), int(c[1]), int(c[2]))


def _qimage(rgb: np.ndarray) -> QImage:
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    h, w = rgb.shape[:2]
    data = rgb.tobytes()  # QImage only borrows the buffer: keep it alive until the copy
    image = QImage(data, w, h, 3 * w, QImage.Format.Format_RGB888)
    return image.copy()


# --------------------------------------------------------------------------------------------
# widgets
# --------------------------------------------------------------------------------------------

class PixelCanvas(QWidget):
    """The drawing: an (H, W) binary image and an (H, W) region of pixels to fill, edited with
    the mouse (left button: the tool; right button: its opposite), one undo step per stroke.
    Overlays: the row split, the model's preview ("ghost") and a highlighted pixel."""

    edited = Signal()  # the image or region changed (during a stroke too)
    TOOLS = ("pen", "eraser", "region", "unregion")
    OPPOSITE = {"pen": "eraser", "eraser": "pen", "region": "unregion", "unregion": "region"}

    def __init__(self, shape: tuple[int, int] = CANVAS_SHAPE, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("pixelCanvas")
        self.shape = tuple(shape)
        self.image = np.zeros(self.shape, np.uint8)
        self.region = np.zeros(self.shape, bool)
        self.tool = "pen"
        self.brush = 1
        self.show_region = False
        self.split_row: int | None = None
        self.ghost: np.ndarray | None = None  # (H, W, 3) uint8 over the unknown pixels, or None
        self.ghost_mask: np.ndarray | None = None
        self.highlight: tuple[int, int, QColor] | None = None
        self.undo_stack: list[tuple[np.ndarray, np.ndarray]] = []
        self.redo_stack: list[tuple[np.ndarray, np.ndarray]] = []
        self._stroke: str | None = None  # the tool of the stroke in progress
        self._stroke_changed = False
        self._last: tuple[int, int] | None = None
        self.setMinimumSize(224, 224)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMouseTracking(False)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)

    # -- geometry --------------------------------------------------------------------------------
    def cell(self) -> tuple[float, float, float]:
        """Side of one pixel on screen and the canvas's top-left corner."""
        h, w = self.shape
        side = max(1.0, min(self.width() / w, self.height() / h))
        return side, (self.width() - side * w) / 2, (self.height() - side * h) / 2

    def cell_at(self, pos: QPointF) -> tuple[int, int] | None:
        side, ox, oy = self.cell()
        r, c = math.floor((pos.y() - oy) / side), math.floor((pos.x() - ox) / side)
        return (r, c) if 0 <= r < self.shape[0] and 0 <= c < self.shape[1] else None

    def cell_centre(self, r: int, c: int) -> QPointF:
        side, ox, oy = self.cell()
        return QPointF(ox + (c + 0.5) * side, oy + (r + 0.5) * side)

    # -- editing ---------------------------------------------------------------------------------
    def _state(self) -> tuple[np.ndarray, np.ndarray]:
        return self.image.copy(), self.region.copy()

    def _push_undo(self) -> None:
        self.undo_stack.append(self._state())
        del self.undo_stack[:-UNDO_DEPTH]
        self.redo_stack.clear()

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

    def _line_to(self, cell: tuple[int, int]) -> bool:
        """Dab every pixel on the segment from the last one, so a fast drag leaves no gaps."""
        r1, c1 = cell
        r0, c0 = self._last if self._last is not None else cell
        n = max(abs(r1 - r0), abs(c1 - c0), 1)
        changed = False
        for t in range(1 if self._last is not None else 0, n + 1):
            changed |= self._dab(round(r0 + (r1 - r0) * t / n), round(c0 + (c1 - c0) * t / n), self._stroke)
        self._last = cell
        return changed

    def mousePressEvent(self, ev: QMouseEvent) -> None:
        if ev.button() not in (Qt.MouseButton.LeftButton, Qt.MouseButton.RightButton):
            return super().mousePressEvent(ev)
        cell = self.cell_at(ev.position())
        self._stroke = self.tool if ev.button() == Qt.MouseButton.LeftButton else self.OPPOSITE[self.tool]
        self._push_undo()
        self._stroke_changed = False
        self._last = None
        if cell is not None:
            self._apply(cell)
        ev.accept()

    def mouseMoveEvent(self, ev: QMouseEvent) -> None:
        if self._stroke is None:
            return super().mouseMoveEvent(ev)
        cell = self.cell_at(ev.position())
        if cell is not None:
            self._apply(cell)
        else:
            self._last = None  # left the canvas: do not join across the outside
        ev.accept()

    def mouseReleaseEvent(self, ev: QMouseEvent) -> None:
        if self._stroke is None:
            return super().mouseReleaseEvent(ev)
        if not self._stroke_changed and self.undo_stack:
            self.undo_stack.pop()  # a click that changed nothing is no undo step
        self._stroke, self._last = None, None
        ev.accept()

    def _apply(self, cell: tuple[int, int]) -> None:
        if self._line_to(cell):
            self._stroke_changed = True
            self.update()
            self.edited.emit()

    def set_image(self, image: np.ndarray, region: np.ndarray | None = None) -> None:
        """Replace the drawing (and optionally the region) as one undoable step."""
        image = np.asarray(image).reshape(self.shape)
        self._push_undo()
        self.image = (image > 0.5).astype(np.uint8)
        if region is not None:
            self.region = np.asarray(region, bool).reshape(self.shape).copy()
        self.update()
        self.edited.emit()

    def clear(self) -> None:
        if self.image.any() or self.region.any():
            self._push_undo()
            self.image[:] = 0
            self.region[:] = False
            self.update()
            self.edited.emit()

    def clear_region(self) -> None:
        if self.region.any():
            self._push_undo()
            self.region[:] = False
            self.update()
            self.edited.emit()

    def undo(self) -> bool:
        if not self.undo_stack:
            return False
        self.redo_stack.append(self._state())
        self.image, self.region = self.undo_stack.pop()
        self.update()
        self.edited.emit()
        return True

    def redo(self) -> bool:
        if not self.redo_stack:
            return False
        self.undo_stack.append(self._state())
        self.image, self.region = self.redo_stack.pop()
        self.update()
        self.edited.emit()
        return True

    # -- painting --------------------------------------------------------------------------------
    def paintEvent(self, _ev) -> None:
        rgb = np.where(self.image[..., None] > 0, INK, PAPER).astype(np.float32)
        if self.ghost is not None and self.ghost_mask is not None:
            rgb[self.ghost_mask] = self.ghost[self.ghost_mask]
        if self.show_region:
            rgb[self.region] = 0.55 * rgb[self.region] + 0.45 * REGION_TINT
        side, ox, oy = self.cell()
        h, w = self.shape
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(40, 40, 40))
        target = QRectF(ox, oy, side * w, side * h)
        p.drawImage(target, _qimage(rgb))  # nearest-neighbour: no smoothing hint
        if side >= 8:
            p.setPen(QPen(QColor(255, 255, 255, 22), 1))
            for i in range(1, w):
                p.drawLine(QPointF(ox + i * side, oy), QPointF(ox + i * side, oy + h * side))
            for i in range(1, h):
                p.drawLine(QPointF(ox, oy + i * side), QPointF(ox + w * side, oy + i * side))
        if self.split_row is not None and 0 < self.split_row < h:
            p.setPen(QPen(QColor(240, 80, 80), 2, Qt.PenStyle.DashLine))
            y = oy + self.split_row * side
            p.drawLine(QPointF(ox, y), QPointF(ox + w * side, y))
        if self.highlight is not None:
            r, c, colour = self.highlight
            p.setPen(QPen(colour, max(2.0, side / 6)))
            p.setBrush(Qt.BrushStyle.NoBrush)
            p.drawRect(QRectF(ox + c * side, oy + r * side, side, side))
        p.end()


class CandidateGrid(QWidget):
    """The model's candidates as a grid of RGB tiles; the pixel being drawn is outlined in each
    tile with the colour of its p(x = 1). Click a tile to preview it on the canvas, double-click
    to take it as the drawing."""

    clicked = Signal(int)
    double_clicked = Signal(int)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("candidateGrid")
        self.tiles: np.ndarray | None = None  # (M, H, W, 3) uint8
        self.highlight: tuple[int, list[QColor]] | None = None  # flat pixel, colour per tile
        self.selected = 0
        self.setMinimumSize(200, 200)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def set_tiles(self, tiles: np.ndarray | None, highlight: tuple[int, list[QColor]] | None = None) -> None:
        self.tiles, self.highlight = tiles, highlight
        if tiles is None or self.selected >= len(tiles):
            self.selected = 0
        self.update()

    def _layout(self) -> tuple[int, float, float, float]:
        n = len(self.tiles)
        cols = max(1, math.ceil(math.sqrt(n)))
        rows = math.ceil(n / cols)
        h, w = self.tiles.shape[1:3]
        gap = 4.0
        side = max(1.0, min((self.width() - gap * (cols + 1)) / (cols * w), (self.height() - gap * (rows + 1)) / (rows * h)))
        return cols, side, gap, side * w + gap

    def tile_at(self, pos: QPointF) -> int | None:
        if self.tiles is None or not len(self.tiles):
            return None
        cols, side, gap, step = self._layout()
        h, w = self.tiles.shape[1:3]
        c, r = int((pos.x() - gap / 2) // step), int((pos.y() - gap / 2) // (side * h + gap))
        i = r * cols + c
        return i if 0 <= c < cols and 0 <= i < len(self.tiles) else None

    def mousePressEvent(self, ev: QMouseEvent) -> None:
        i = self.tile_at(ev.position())
        if i is not None:
            self.selected = i
            self.update()
            self.clicked.emit(i)

    def mouseDoubleClickEvent(self, ev: QMouseEvent) -> None:
        i = self.tile_at(ev.position())
        if i is not None:
            self.double_clicked.emit(i)

    def paintEvent(self, _ev) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(40, 40, 40))
        if self.tiles is not None and len(self.tiles):
            cols, side, gap, step = self._layout()
            h, w = self.tiles.shape[1:3]
            for i, tile in enumerate(self.tiles):
                r, c = divmod(i, cols)
                x0, y0 = gap + c * step, gap + r * (side * h + gap)
                p.drawImage(QRectF(x0, y0, side * w, side * h), _qimage(tile))
                if i == self.selected and len(self.tiles) > 1:
                    p.setPen(QPen(QColor(255, 255, 255, 120), 1))
                    p.setBrush(Qt.BrushStyle.NoBrush)
                    p.drawRect(QRectF(x0 - 1.5, y0 - 1.5, side * w + 3, side * h + 3))
                if self.highlight is not None:
                    pix, colours = self.highlight
                    pr, pc = divmod(pix, w)
                    p.setPen(QPen(colours[min(i, len(colours) - 1)], max(1.5, side / 4)))
                    p.setBrush(Qt.BrushStyle.NoBrush)
                    p.drawRect(QRectF(x0 + pc * side, y0 + pr * side, side, side))
        p.end()


@dataclass
class _Animation:
    steps: Iterator[Any]
    known: np.ndarray  # (D,) bool
    entry: CanvasModel
    total: int
    done: int = 0
    carry: float = 0.0
    t_last: float = 0.0
    drawn: np.ndarray | None = None  # (D,) bool: pixels drawn so far
    x: np.ndarray | None = None  # (M, D) the candidates as of the last step
    pixel: int | None = None
    p: np.ndarray | None = None
    note: str | None = None  # what the user was told at the start (sampling, full canvas)


class CanvasPanel(QWidget):
    """The Canvas tab. ``training_model`` (optional) returns the Training tab's model as
    ``(model, image_shape or None, step)`` or None, and ``copy_model(model)`` a future of a copy
    of it (the worker owns a model while it trains: it copies between two steps; the default
    copies at once); ``fine_tune_requested(path)`` asks the main window to load a checkpoint
    into the Training tab."""

    error = Signal(str, str)  # title, message: the main window shows it
    status = Signal(str)
    fine_tune_requested = Signal(str)

    def __init__(self, fps: float = 30.0, weights_dir: str | Path | None = None,
                 training_model: Callable[[], tuple[GenerativeModel, Any, int] | None] | None = None,
                 copy_model: Callable[[GenerativeModel], Future] | None = None,
                 shape: tuple[int, int] = CANVAS_SHAPE, digits_file: str | Path = DIGITS_FILE,
                 parent: QWidget | None = None):
        super().__init__(parent)
        self.fps = fps
        self.weights_dir = Path(weights_dir) if weights_dir is not None else DEFAULT_WEIGHTS
        self.training_model = training_model
        self.copy_model = copy_model or _copied_now
        self.shape = tuple(shape)
        self.digits_file = Path(digits_file)
        self.entries: list[CanvasModel] = []
        self.problems: list[str] = []
        self.loaded = False  # the weights folder has been scanned
        self.loading = False
        self.message = ""  # the last status message (also emitted)
        self.candidates: np.ndarray | None = None  # (M, H, W) uint8: the last completion or samples
        self.candidates_known: np.ndarray | None = None  # (H, W) bool: what they were conditioned on
        self.readouts: Readouts | None = None
        self.heat: np.ndarray | None = None
        self.total_nll: float | None = None
        self.percentile: float | None = None
        self.anim: _Animation | None = None
        self.busy = False
        self._digits: np.ndarray | None = None
        self._rng = np.random.default_rng()
        self._edit_version = 0
        self._readout_task: asyncio.Task | None = None
        self._readout_again = False
        self._shown_key: tuple | None = None
        self._training_id: tuple | None = None
        self._wanted_key: str | None = None
        self._tasks: set[asyncio.Task] = set()
        self._closed = False
        self._build()
        self._anim_timer = QTimer(self)
        self._anim_timer.setInterval(max(10, int(1000 / fps)))
        self._anim_timer.timeout.connect(self._tick)
        self._readout_timer = QTimer(self, singleShot=True, interval=120)  # debounce while drawing
        self._readout_timer.timeout.connect(self.update_readouts)
        self._update_controls()

    # -- layout ----------------------------------------------------------------------------------
    def _build(self) -> None:
        h, w = self.shape
        self.model_combo = QComboBox(objectName="canvasModel")
        self.model_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.model_combo.setMinimumContentsLength(24)
        self.model_combo.currentIndexChanged.connect(self._on_model_changed)
        self.models_label = QLabel("models load when the tab opens", objectName="canvasModelsLabel", wordWrap=True)
        reload_btn = QPushButton("Reload", objectName="canvasReload")
        reload_btn.setToolTip(f"scan {self.weights_dir} again and take the Training tab's current weights")
        reload_btn.clicked.connect(self.reload_models)
        self.finetune_btn = QPushButton("Fine-tune in Training tab", objectName="canvasFineTune")
        self.finetune_btn.setToolTip("load this checkpoint in the Training tab to train it further")
        self.finetune_btn.clicked.connect(self._on_fine_tune)
        self.digit_combo = QComboBox(objectName="canvasDigit")
        self.digit_combo.addItem("Any", None)
        for d in range(N_CLASSES):
            self.digit_combo.addItem(str(d), d)
        self.digit_combo.setToolTip("the digit a class-conditional model draws or is conditioned on")
        self.digit_combo.currentIndexChanged.connect(self._schedule_readouts)
        model_box = QGroupBox("Model")
        f = QFormLayout(model_box)
        f.addRow(self.model_combo)
        row = QHBoxLayout()
        row.addWidget(reload_btn)
        row.addWidget(self.finetune_btn)
        f.addRow(row)
        f.addRow("Digit", self.digit_combo)
        f.addRow(self.models_label)

        self.tool_buttons: dict[str, QPushButton] = {}
        self.tool_group = QButtonGroup(self)
        tools_row = QHBoxLayout()
        for tool, text, tip in (("pen", "Pen", "draw ink (P)"), ("eraser", "Eraser", "erase ink (E)"),
                                ("region", "Region", "mark pixels for the model to fill (F); order-agnostic models"),
                                ("unregion", "Unmark", "remove pixels from the region (Shift+F)")):
            b = QPushButton(text, objectName=f"tool_{tool}", checkable=True)
            b.setToolTip(tip + "; the right mouse button does the opposite")
            b.clicked.connect(lambda _=False, t=tool: self.set_tool(t))
            self.tool_group.addButton(b)
            self.tool_buttons[tool] = b
            tools_row.addWidget(b)
        self.tool_buttons["pen"].setChecked(True)
        self.brush_spin = QSpinBox(objectName="canvasBrush", minimum=1, maximum=3, value=1)
        self.brush_spin.setToolTip("brush size in pixels (1, 2 or 3)")
        self.brush_spin.valueChanged.connect(self._on_brush)
        self.undo_btn = QPushButton("Undo", objectName="canvasUndo")
        self.redo_btn = QPushButton("Redo", objectName="canvasRedo")
        clear_btn = QPushButton("Clear", objectName="canvasClear")
        clear_btn.setToolTip("clear the drawing and the region (Delete)")
        clear_region_btn = QPushButton("Clear region", objectName="canvasClearRegion")
        digit_btn = QPushButton("Random digit", objectName="canvasRandomDigit")
        digit_btn.setToolTip("a random digit of the validation set (R)")
        self.undo_btn.clicked.connect(self.undo)
        self.redo_btn.clicked.connect(self.redo)
        clear_btn.clicked.connect(self.clear)
        clear_region_btn.clicked.connect(self.clear_region)
        digit_btn.clicked.connect(self._on_random_digit)
        draw_box = QGroupBox("Draw")
        f = QFormLayout(draw_box)
        f.addRow(tools_row)
        f.addRow("Brush", self.brush_spin)
        row = QHBoxLayout()
        for b in (self.undo_btn, self.redo_btn, clear_btn):
            row.addWidget(b)
        f.addRow(row)
        row = QHBoxLayout()
        row.addWidget(clear_region_btn)
        row.addWidget(digit_btn)
        f.addRow(row)

        self.mode_combo = QComboBox(objectName="canvasMode")
        self.mode_combo.addItem("Complete the rows below row k", "rows")
        self.mode_combo.addItem("Complete the painted region", "region")
        self.mode_combo.currentIndexChanged.connect(self._on_mode)
        self.row_spin = QSpinBox(objectName="canvasRow", minimum=0, maximum=h, value=h // 2)
        self.row_spin.setToolTip("rows above k are kept as drawn; the model draws the rest")
        self.row_spin.valueChanged.connect(self._on_row)
        self.n_spin = QSpinBox(objectName="canvasN", minimum=1, maximum=64, value=4)
        self.n_spin.setToolTip("candidates to draw")
        self.complete_btn = QPushButton("Complete", objectName="canvasComplete")
        self.complete_btn.setToolTip("complete the drawing N times at once (Space)")
        self.animate_btn = QPushButton("Animate", objectName="canvasAnimate")
        self.animate_btn.setToolTip("draw the completion pixel by pixel (A)")
        self.stop_btn = QPushButton("Stop", objectName="canvasStop")
        self.stop_btn.setToolTip("stop the animation (Esc)")
        self.sample_btn = QPushButton("Sample", objectName="canvasSample")
        self.sample_btn.setToolTip("N samples from the model, ignoring the drawing (S)")
        self.complete_btn.clicked.connect(self.complete)
        self.animate_btn.clicked.connect(self.animate)
        self.stop_btn.clicked.connect(self.stop_animation)
        self.sample_btn.clicked.connect(self.sample)
        self.speed = QSlider(Qt.Orientation.Horizontal, objectName="canvasSpeed")
        self.speed.setRange(0, SPEED_MAX)
        self.speed.setValue(6)
        self.speed.setToolTip("pixels per second of the animation: 1, 2, 4 … 4096, or flat out")
        self.speed_label = QLabel()
        self.speed.valueChanged.connect(self._on_speed)
        self._on_speed(self.speed.value())
        self.progress = QProgressBar(objectName="canvasProgress")
        self.progress.setTextVisible(True)
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        complete_box = QGroupBox("Complete")
        f = QFormLayout(complete_box)
        f.addRow(self.mode_combo)
        f.addRow("Row k", self.row_spin)
        f.addRow("Candidates", self.n_spin)
        row = QHBoxLayout()
        for b in (self.complete_btn, self.animate_btn, self.stop_btn):
            row.addWidget(b)
        f.addRow(row)
        row = QHBoxLayout()
        row.addWidget(self.speed, 1)
        row.addWidget(self.speed_label)
        f.addRow("Speed", row)
        f.addRow(self.sample_btn)
        f.addRow(self.progress)

        controls = QWidget()
        cl = QVBoxLayout(controls)
        for b in (model_box, draw_box, complete_box):
            cl.addWidget(b)
        cl.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidget(controls)
        scroll.setWidgetResizable(True)
        scroll.setMinimumWidth(300)

        self.canvas = PixelCanvas(self.shape)
        self.canvas.edited.connect(self._on_edited)
        self.prob_label = QLabel("", objectName="canvasProbLabel")
        self.prob_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.message_label = QLabel("", objectName="canvasMessage", wordWrap=True)
        centre = QWidget()
        v = QVBoxLayout(centre)
        v.setContentsMargins(0, 0, 0, 0)
        v.addWidget(self.canvas, 1)
        v.addWidget(self.prob_label)
        v.addWidget(self.message_label)

        self.grid = CandidateGrid()
        self.grid.clicked.connect(self._on_tile_clicked)
        self.grid.double_clicked.connect(self.use_candidate)
        self.heat_widget = pg.GraphicsLayoutWidget()
        self.heat_widget.setObjectName("nllHeatmap")
        self.heat_plot = self.heat_widget.addPlot(title="per-pixel NLL")
        self.heat_plot.setMenuEnabled(False)
        self.heat_plot.hideButtons()
        self.heat_plot.hideAxis("left")
        self.heat_plot.hideAxis("bottom")
        self.heat_plot.invertY(True)
        self.heat_plot.setAspectLocked(True)
        self.heat_plot.setMouseEnabled(False, False)
        self.heat_image = pg.ImageItem(axisOrder="row-major")
        self.heat_plot.addItem(self.heat_image)
        self.heat_plot.setRange(xRange=(0, w), yRange=(0, h), padding=0)
        self.colour_bar = pg.ColorBarItem(values=(0.0, 1.0), colorMap=pg.colormap.get("inferno"),
                                          interactive=False, label="nats")
        self.colour_bar.setImageItem(self.heat_image, insert_in=self.heat_plot)
        self.total_label = QLabel("", objectName="canvasTotal")
        self.pct_label = QLabel("", objectName="canvasPercentile", wordWrap=True)
        self.table = QTableWidget(0, 4, objectName="canvasReadouts")
        self.table.setHorizontalHeaderLabels(["model", "log p (nats)", "bits/dim", "typicality %"])
        self.table.verticalHeader().setVisible(False)
        readouts = QWidget()
        rl = QVBoxLayout(readouts)
        rl.setContentsMargins(0, 0, 0, 0)
        rl.addWidget(self.heat_widget, 3)
        rl.addWidget(self.total_label)
        rl.addWidget(self.pct_label)
        rl.addWidget(self.table, 2)
        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(self.grid)
        right.addWidget(readouts)
        right.setSizes([380, 420])
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(centre)
        split.addWidget(right)
        split.setSizes([520, 420])
        layout = QHBoxLayout(self)
        layout.addWidget(scroll)
        layout.addWidget(split, 1)

        # single keys are free in this tab (the main window's shortcuts all take Ctrl); they fire
        # only while the tab is shown, and a focused spin box keeps its typed digits
        for keys, slot in ((QKeySequence.StandardKey.Undo, self.undo), (QKeySequence.StandardKey.Redo, self.redo),
                           ("Ctrl+Y", self.redo), ("Delete", self.clear), ("R", self._on_random_digit),
                           ("P", lambda: self.set_tool("pen")), ("E", lambda: self.set_tool("eraser")),
                           ("F", lambda: self.set_tool("region")), ("Shift+F", lambda: self.set_tool("unregion")),
                           ("1", lambda: self.brush_spin.setValue(1)), ("2", lambda: self.brush_spin.setValue(2)),
                           ("3", lambda: self.brush_spin.setValue(3)), ("Space", self.complete),
                           ("A", self.animate), ("Escape", self.stop_animation), ("S", self.sample)):
            QShortcut(QKeySequence(keys), self, slot)

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
        if self._closed:
            return
        if not self.loaded and not self.loading:
            self.reload_models()
        else:
            self.refresh_training_model()

    @Slot()
    def reload_models(self) -> asyncio.Task | None:
        """Scan the weights folder (off the GUI thread) and take the Training tab's model."""
        if self.loading:
            return None
        self.loading = True
        self.models_label.setText(f"loading models from {self.weights_dir}…")
        self._busy(True, "loading models…")
        return self._job(scan_weights, (self.weights_dir, self.shape), self._on_scanned, "Cannot load the models",
                         self._on_scan_failed)

    def _on_scanned(self, result: tuple[list[CanvasModel], list[str]]) -> None:
        models, problems = result
        self.loading, self.loaded = False, True
        self._busy(False)
        keep = self._wanted_key or (self.entry.key if self.entry else None)
        trained = [e for e in self.entries if e.key == TRAINING_KEY]
        self.entries = models + trained
        self.problems = problems
        self._training_id = None if not trained else self._training_id
        self._fill_combo(keep)
        self.refresh_training_model()
        self._show_model_summary()

    def _on_scan_failed(self, message: str) -> None:
        self.loading, self.loaded = False, True
        self._busy(False)
        self.problems = [message]
        self._show_model_summary()

    def _show_model_summary(self) -> None:
        n = len(self.entries)
        text = f"{n} model{'s' if n != 1 else ''} on the canvas" if n else (
            f"No model: put binary-image checkpoints in {self.weights_dir} or train one in the Training tab.")
        if self.problems:
            text += "\n" + "\n".join(self.problems)
        self.models_label.setText(text)
        if self.problems:
            self._say("; ".join(self.problems))

    def _fill_combo(self, keep: str | None) -> None:
        self.model_combo.blockSignals(True)
        self.model_combo.clear()
        for e in self.entries:
            self.model_combo.addItem(e.label, e.key)
        idx = next((i for i, e in enumerate(self.entries) if e.key == keep), -1)
        if idx < 0 and self.entries:  # default: the best held-out likelihood
            scored = [(e.valid_nll if e.valid_nll is not None else math.inf, i) for i, e in enumerate(self.entries)]
            idx = min(scored)[1]
        self.model_combo.setCurrentIndex(idx)
        self.model_combo.blockSignals(False)
        if keep is not None and idx >= 0 and self.entries[idx].key == keep:
            self._wanted_key = None
        self._on_model_changed(idx)

    def refresh_training_model(self) -> None:
        """Offer a snapshot of the Training tab's model when it is a binary-image model that fits."""
        got = self.training_model() if self.training_model is not None else None
        if got is None:
            return
        model, image_shape, step = got
        ident = (id(model), int(step))
        if ident == self._training_id:
            return
        if DataKind.BINARY_IMAGE not in model.info.data_kinds:
            return
        if image_shape_of(model.data_shape, image_shape) != self.shape:
            self._say(f"the Training tab's {model.info.name} is not for {self.shape[0]}x{self.shape[1]} images: "
                      "not on the canvas")
            self._training_id = ident
            return
        self._training_id = ident
        copy = self.copy_model(model)
        if copy.done():
            self._take_training_copy(copy, model, ident)
        else:  # a step is in progress: the worker copies the model when it ends
            task = asyncio.ensure_future(self._await_training_copy(copy, model, ident))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _await_training_copy(self, copy: Future, model: GenerativeModel, ident: tuple) -> None:
        await asyncio.wrap_future(copy)
        if not self._closed:
            self._take_training_copy(copy, model, ident)

    def _take_training_copy(self, copy: Future, model: GenerativeModel, ident: tuple) -> None:
        if ident != self._training_id:
            return  # a newer one was asked for meanwhile
        try:
            clone = copy.result()
        except (ValueError, RuntimeError, KeyError) as exc:
            self._training_id = None
            self._say(f"cannot take the Training tab's model: {exc}")
            return
        entry = CanvasModel(TRAINING_KEY, f"{model.info.name} (Training tab, step {ident[1]})", clone)
        keep = self.entry.key if self.entry else None
        self.entries = [e for e in self.entries if e.key != TRAINING_KEY] + [entry]
        self._fill_combo(keep if keep is not None else TRAINING_KEY)
        self._show_model_summary()

    def select_model(self, key_or_family: str) -> bool:
        """Select by checkpoint path, TRAINING_KEY, file name or family key."""
        for i, e in enumerate(self.entries):
            if key_or_family in (e.key, e.path.name if e.path else None, e.model.info.key):
                self.model_combo.setCurrentIndex(i)
                return True
        return False

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
        return self.mode_combo.currentData()

    def set_tool(self, tool: str) -> None:
        if tool in ("region", "unregion") and self.mode != "region":
            e = self.entry
            if e is None or not e.any_order:
                self._say("the region brush needs an order-agnostic model (MADE with order_agnostic): "
                          "this one completes the rows below row k")
                self.tool_buttons[self.canvas.tool].setChecked(True)
                return
            self.mode_combo.setCurrentIndex(1)
        self.canvas.tool = tool
        self.tool_buttons[tool].setChecked(True)

    @Slot(int)
    def _on_brush(self, size: int) -> None:
        self.canvas.brush = int(size)

    @Slot(int)
    def _on_mode(self, _i: int) -> None:
        region = self.mode == "region"
        self.canvas.show_region = region
        self.canvas.split_row = None if region else self.row_spin.value()
        self.row_spin.setEnabled(not region)
        if not region and self.canvas.tool in ("region", "unregion"):
            self.set_tool("pen")
        self.canvas.update()

    @Slot(int)
    def _on_row(self, k: int) -> None:
        if self.mode == "rows":
            self.canvas.split_row = k
            self.canvas.update()

    @Slot()
    def _on_edited(self) -> None:
        self._edit_version += 1
        if self.anim is not None:
            self.stop_animation()  # the animation completes a drawing that no longer exists
        self.canvas.ghost = self.canvas.ghost_mask = None
        self.canvas.highlight = None
        self.undo_btn.setEnabled(bool(self.canvas.undo_stack))
        self.redo_btn.setEnabled(bool(self.canvas.redo_stack))
        self._schedule_readouts()

    @Slot()
    def undo(self) -> None:
        self.canvas.undo()

    @Slot()
    def redo(self) -> None:
        self.canvas.redo()

    @Slot()
    def clear(self) -> None:
        self.canvas.clear()

    @Slot()
    def clear_region(self) -> None:
        self.canvas.clear_region()

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
        self.canvas.set_image(digits[i].reshape(self.shape))
        self._say(f"validation digit {i}")
        return i

    # -- completion ------------------------------------------------------------------------------
    def known_mask(self) -> tuple[np.ndarray | None, str | None]:
        """The pixels kept as drawn (bool (H, W)), or None and why there is nothing to complete;
        plus a note for the user (sampling, full canvas)."""
        h, _ = self.shape
        image, note = self.canvas.image, None
        if self.mode == "region":
            region = self.canvas.region
            if not region.any():
                return None, ("nothing to complete: paint the pixels the model should fill with the "
                              "region brush (F)")
            known = ~region
            if region.all():
                note = "the region covers the whole canvas: nothing of the drawing is kept, so this is plain sampling"
        else:
            k = self.row_spin.value()
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

    def _generator(self) -> torch.Generator:
        return torch.Generator().manual_seed(int(self._rng.integers(2**62)))

    def _inputs(self, e: CanvasModel, known: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """(x, known, label kwargs) for complete / complete_steps: one input row, its n
        candidates drawn by the model (of the chosen digit, or each of a random one)."""
        x = torch.as_tensor(self.canvas.image.astype(np.float32)).reshape(1, *e.model.data_shape)
        k = torch.as_tensor(known).reshape(1, *e.model.data_shape)
        return x.to(e.model.device), k.to(e.model.device), label_kwargs(e, self.digit_combo.currentData(), 1)

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
    def complete(self) -> asyncio.Task | bool | None:
        """N completions of the drawing at once, off the GUI thread."""
        e = self._ready("complete")
        if e is None:
            return None
        known, note = self.known_mask()
        if known is None:
            self._say(note)
            return None
        self.stop_animation()
        n = self.n_spin.value()
        x, k, kw = self._inputs(e, known)
        gen = self._generator()
        self._busy(True, f"completing {n}…")
        self._say(note or f"completing with {e.name}")

        def run() -> np.ndarray:
            with torch.no_grad():
                return e.model.complete(x, k, n, gen, **kw).reshape(n, -1).float().cpu().numpy()

        return self._job(run, (), lambda out: self._show_candidates(out, known, f"{n} completions by {e.name}"
                                                                  + (f" ({note})" if note else "")),
                         "Cannot complete", lambda msg: self._busy(False))

    @Slot()
    def sample(self) -> asyncio.Task | bool | None:
        """N unconditional samples (of the chosen digit, for a conditional model)."""
        e = self._ready("sample")
        if e is None:
            return None
        self.stop_animation()
        n = self.n_spin.value()
        kw, gen = label_kwargs(e, self.digit_combo.currentData(), n), self._generator()
        self._busy(True, f"sampling {n}…")

        def run() -> np.ndarray:
            with torch.no_grad():
                return e.model.sample(n, gen, **kw).reshape(n, -1).float().cpu().numpy()

        return self._job(run, (), lambda out: self._show_candidates(out, np.zeros(self.shape, bool),
                                                                     f"{n} samples from {e.name}"),
                         "Cannot sample", lambda msg: self._busy(False))

    def _show_candidates(self, out: np.ndarray, known: np.ndarray, text: str) -> None:
        self._busy(False)
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

    @Slot(int)
    def _on_tile_clicked(self, i: int) -> None:
        if self.anim is None:
            self._preview(i)

    @Slot(int)
    def use_candidate(self, i: int) -> None:
        """Take candidate ``i`` as the drawing (undoable)."""
        if self.candidates is not None and 0 <= i < len(self.candidates) and self.anim is None:
            self.canvas.set_image(self.candidates[i])
            self._say(f"candidate {i + 1} is now the drawing (Ctrl+Z undoes it)")

    # -- animation -------------------------------------------------------------------------------
    def pixels_per_s(self) -> float | None:
        v = self.speed.value()
        return None if v >= SPEED_MAX else float(2 ** v)

    @Slot(int)
    def _on_speed(self, _v: int) -> None:
        rate = self.pixels_per_s()
        self.speed_label.setText("flat out" if rate is None else f"{rate:g} px/s")

    @Slot()
    def animate(self) -> bool:
        """Start drawing the completion pixel by pixel: each tick shows the next pixel outlined in
        the colour of its p(x = 1), then draws it."""
        if self.anim is not None:
            return False
        e = self._ready("complete_steps")
        if e is None:
            return False
        known, note = self.known_mask()
        if known is None:
            self._say(note)
            return False
        n = self.n_spin.value()
        x, k, kw = self._inputs(e, known)
        try:
            steps = e.model.complete_steps(x, k, n, self._generator(), **kw)
        except (ValueError, NotImplementedError) as exc:
            self.error.emit("Cannot animate", str(exc))
            return False
        flat_known = known.reshape(-1)
        total = int((~flat_known).sum())
        start = np.repeat(np.where(flat_known, self.canvas.image.reshape(-1), 0)[None].astype(np.float32), n, 0)
        self.anim = _Animation(steps, flat_known, e, total, t_last=time.perf_counter(),
                               drawn=np.zeros_like(flat_known), x=start, note=note)
        self.candidates = None
        self.progress.setRange(0, max(1, total))
        self.progress.setValue(0)
        self._say(note or f"{e.name} draws {total} pixels in its order")
        self._render_animation()
        self._update_controls()
        self._anim_timer.start()
        return True

    @property
    def anim_done(self) -> int:
        return self.anim.done if self.anim is not None else 0

    @Slot()
    def _tick(self) -> None:
        a = self.anim
        if a is None:
            self._anim_timer.stop()
            return
        now = time.perf_counter()
        rate = self.pixels_per_s()
        if rate is None:
            budget = 1 << 30
        else:
            a.carry = min(a.carry + rate * (now - a.t_last), rate * 0.5 + 1)  # no burst after a stall
            budget = int(a.carry)
            a.carry -= budget
        a.t_last = now
        self.advance(budget, deadline=now + TICK_BUDGET_S)

    def advance(self, n: int, deadline: float | None = None) -> int:
        """Pull up to ``n`` pixels of the running animation (stopping at ``deadline``); the
        number pulled. The last one pulled is shown as the next pixel, not yet revealed."""
        a = self.anim
        if a is None or n <= 0:
            return 0
        got = 0
        try:
            while got < n and (deadline is None or time.perf_counter() < deadline or got == 0):
                step = next(a.steps)
                if a.pixel is not None:
                    a.drawn[a.pixel] = True
                a.pixel, a.p = int(step.pixel), step.p.detach().float().cpu().numpy().reshape(-1)
                a.x = step.x.detach().float().cpu().numpy().reshape(len(step.x), -1).copy()
                a.done = int(step.done)
                got += 1
                if step.done >= step.total:
                    break
        except StopIteration:
            pass
        except Exception as exc:  # a model failing mid-way: say so, keep the window alive
            self.stop_animation()
            self.error.emit("Completion failed", f"{type(exc).__name__}: {exc}")
            return got
        if a.done >= a.total:
            self._render_animation()
            self._finish_animation()
        else:
            self._render_animation()
        return got

    def _render_animation(self) -> None:
        a = self.anim
        h, w = self.shape
        pending = ~a.known & ~a.drawn
        tiles = candidate_tiles(a.x, a.known, pending, self.shape)
        highlight = None
        if a.pixel is not None and a.p is not None:
            colours = [p_colour(p) for p in a.p]
            highlight = (a.pixel, colours)
            r, c = divmod(a.pixel, w)
            self.canvas.highlight = (r, c, colours[0])
            mean = f"; mean over {len(a.p)}: {np.nanmean(a.p):.3f}" if len(a.p) > 1 and np.isfinite(a.p).any() else ""
            self.prob_label.setText(f"pixel (row {r}, col {c}): p(x = 1) = {a.p[0]:.3f}{mean}"
                                    f"  [{a.done}/{a.total}]")
            col = colours[0]
            text = "black" if col.lightness() > 140 else "white"
            self.prob_label.setStyleSheet(f"QLabel#canvasProbLabel {{ background: {col.name()}; color: {text}; "
                                          "padding: 3px; }")
        self.grid.set_tiles(tiles, highlight)
        # on the canvas: candidate 1's pixels so far; the drawing still to be replaced, dimmed
        ghost = tiles[0].reshape(-1, 3).astype(np.float32)
        old = np.where(self.canvas.image.reshape(-1, 1) > 0, INK, PAPER)
        ghost[pending] = 0.35 * old[pending] + 0.65 * np.asarray(PENDING, np.float32)
        self.canvas.ghost = ghost.astype(np.uint8).reshape(*self.shape, 3)
        self.canvas.ghost_mask = (~a.known).reshape(self.shape)
        self.canvas.update()
        self.progress.setValue(a.done)

    def _finish_animation(self) -> None:
        a = self.anim
        self._anim_timer.stop()
        self.anim = None
        a.drawn[:] = ~a.known
        out = a.x
        self.candidates = (out.reshape(len(out), *self.shape) > 0.5).astype(np.uint8)
        self.candidates_known = a.known.reshape(self.shape)
        self.grid.set_tiles(candidate_tiles(out, a.known, None, self.shape))
        self._preview(0)
        self.prob_label.setStyleSheet("")
        self._say(f"{a.entry.name} drew {a.total} pixels" + (f" ({a.note})" if a.note else ""))
        self._update_controls()

    @Slot()
    def stop_animation(self) -> None:
        if self.anim is None:
            return
        self._anim_timer.stop()
        steps, self.anim = self.anim.steps, None
        close = getattr(steps, "close", None)
        if close is not None:
            close()
        self.canvas.highlight = None
        self.canvas.update()
        self.prob_label.setStyleSheet("")
        self._say("animation stopped")
        self._update_controls()

    # -- readouts --------------------------------------------------------------------------------
    @Slot()
    def _schedule_readouts(self, *_args) -> None:
        self._readout_timer.start()

    def _readout_key(self) -> tuple:
        """What the readouts depend on: the drawing, the selected model and digit, the models."""
        return (self._edit_version, self.model_combo.currentIndex(), self.digit_combo.currentData(),
                tuple(id(e) for e in self.entries))

    def readouts_current(self) -> bool:
        """True when the readouts shown are those of the drawing and model as they are now."""
        return self._readout_task is None and self._shown_key == self._readout_key()

    @Slot()
    def update_readouts(self) -> asyncio.Task | bool | None:
        """Score the drawing with every exact model, off the GUI thread. One job at a time: an
        edit meanwhile runs another when it ends (while drawing, at most one is ever waiting)."""
        self._readout_timer.stop()
        if not self.entries:
            return None
        if self._readout_task is not None:
            self._readout_again = True
            return self._readout_task
        key = self._readout_key()
        entries = list(self.entries)
        selected, digit = key[1], key[2]
        digits = self.digits if any(e.exact and e.percentiles is None for e in entries) else None
        task = self._job(compute_readouts, (key[0], entries, selected, self.canvas.image.copy(), digit, digits),
                         lambda r: self._show_readouts(r, entries, key), "Cannot score the drawing",
                         lambda _msg: self._readouts_ended(key))
        if isinstance(task, asyncio.Task):
            self._readout_task = task
        return task

    def _readouts_ended(self, key: tuple) -> None:
        self._readout_task = None
        if self._readout_again or key != self._readout_key():
            self._readout_again = False
            self._readout_timer.start()

    def _show_readouts(self, r: Readouts, entries: list[CanvasModel], key: tuple) -> None:
        for i, pct in r.percentiles.items():
            entries[i].percentiles = pct  # cached: computed once per model
        self._readouts_ended(key)
        if key != self._readout_key():
            return  # the drawing or the model changed meanwhile: a newer job follows
        self.readouts = r
        self._shown_key = key
        self.table.setRowCount(len(r.rows))
        for i, row in enumerate(r.rows):
            pct = row["typicality"]
            cells = [row["name"], f"{row['log_p']:.2f}", f"{row['bpd']:.4f}", "" if pct is None else f"{pct:.1f}"]
            for j, text in enumerate(cells):
                self.table.setItem(i, j, QTableWidgetItem(text))
        self.table.resizeColumnsToContents()
        self.heat, self.total_nll = r.heat, r.total
        if r.heat is not None:
            top = max(float(r.heat.max()), 1e-3)
            self.heat_image.setImage(r.heat, autoLevels=False, levels=(0.0, top))
            self.colour_bar.setLevels((0.0, top))
            given = f" given digit {r.digit}" if r.digit is not None else ""
            self.total_label.setText(f"total −log p(x){given} = {r.total:.4f} nats "
                                     f"(the sum of the heatmap; {r.total / (r.heat.size * math.log(2)):.4f} bits/dim)")
        else:
            self.heat_image.clear()
            self.total_label.setText("; ".join(r.notes))
        sel = next((row for row in r.rows if entries[row["index"]] is self.entry), None)
        self.percentile = None if sel is None else sel["typicality"]
        if self.percentile is None:
            self.pct_label.setText("typicality: needs an exact-likelihood model")
        else:
            flag = "  — unusual for this model" if self.percentile < UNUSUAL_PCT else ""
            self.pct_label.setText(f"typicality ({sel['name']}): more likely than {self.percentile:.1f} % "
                                   f"of validation digits{flag}")

    # -- jobs ------------------------------------------------------------------------------------
    def _job(self, fn: Callable[..., Any], args: tuple, done: Callable[[Any], None], title: str,
             failed: Callable[[str], None] | None = None) -> asyncio.Task | bool:
        """Run ``fn(*args)`` off the GUI thread and hand its result to ``done`` here; an error
        becomes a message. Without a running event loop (a plain script) it runs right here."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            try:
                result = fn(*args)
            except Exception as exc:
                self._job_failed(title, exc, failed)
                return False
            done(result)
            return True
        task = asyncio.ensure_future(self._run_job(fn, args, done, title, failed))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _run_job(self, fn, args, done, title, failed) -> None:
        try:
            result = await in_thread(fn, *args)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not self._closed:
                self._job_failed(title, exc, failed)
            return
        if not self._closed:
            done(result)

    def _job_failed(self, title: str, exc: Exception, failed: Callable[[str], None] | None) -> None:
        message = f"{type(exc).__name__}: {exc}" if not isinstance(exc, ValueError) else str(exc)
        if failed is not None:
            failed(message)
        self.error.emit(title, message)

    def _busy(self, on: bool, text: str = "") -> None:
        self.busy = on
        if on:
            self.progress.setRange(0, 0)  # indeterminate while a job runs
            self.progress.setFormat(text)
        else:
            self.progress.setRange(0, 1)
            self.progress.setValue(0)
            self.progress.setFormat("%p%")
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
        self.undo_btn.setEnabled(bool(self.canvas.undo_stack))
        self.redo_btn.setEnabled(bool(self.canvas.redo_stack))

    def _say(self, message: str | None) -> None:
        if message:
            self.message = message
            self.message_label.setText(message)
            self.status.emit(message)

    # -- settings and closing --------------------------------------------------------------------
    def restore_settings(self, s: QSettings) -> None:
        def number(key: str, default: int) -> int:
            try:
                return int(s.value(key, default))
            except (TypeError, ValueError):
                return default

        self.brush_spin.setValue(number("canvas/brush", 1))
        self.n_spin.setValue(number("canvas/n", 4))
        self.speed.setValue(number("canvas/speed", 6))
        self.row_spin.setValue(number("canvas/row", self.shape[0] // 2))
        key = s.value("canvas/model")
        if key:
            self._wanted_key = str(key)
            if self.entries:
                self.select_model(self._wanted_key)

    def save_settings(self, s: QSettings) -> None:
        s.setValue("canvas/brush", self.brush_spin.value())
        s.setValue("canvas/n", self.n_spin.value())
        s.setValue("canvas/speed", self.speed.value())
        s.setValue("canvas/row", self.row_spin.value())
        key = self.entry.key if self.entry is not None else self._wanted_key
        if key:
            s.setValue("canvas/model", key)

    def shutdown(self) -> None:
        """Stop the timers and the animation and drop pending jobs (the window is closing)."""
        self._closed = True
        self._anim_timer.stop()
        self._readout_timer.stop()
        if self.anim is not None:
            self.stop_animation()
        for task in list(self._tasks):
            task.cancel()
