"""The Canvas tab's models and readouts, without Qt: which checkpoints fit the canvas, and the
likelihood terms it shows.

An autoregressive model factorises an image's probability by the chain rule in a pixel order,
``log p(x) = sum_d log p(x_d | x_<d)``. The readouts are these terms: the drawing's log-likelihood
in nats and in bits per dimension, ``-log p(x) / (D ln 2)``; the per-pixel NLL heatmap
``-log p(x_d | x_<d)`` (which sums to ``-log p(x)``: where the drawing surprised the model); and a
two-sided typicality score (:func:`typicality`): how central the drawing's ``-log p(x)`` lies among
the validation digits' NLLs, from the NLL percentiles of the validation set
(:func:`nll_percentiles`, recorded in the checkpoint by the CLI or computed here from the 500
shipped validation digits). A high likelihood is not typicality (Nalisnick et al. 2019, "Do deep
generative models know what they don't know?", and their typicality test, Nalisnick et al.
2019b): a blank canvas is more likely than every digit, yet no digit looks like it, so it is
flagged as atypical just as a scribble is. Everything here blocks: the canvas runs it off the GUI
thread.
"""

from __future__ import annotations

import math
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch

from core import registry, shipped
from core.checkpoint import CheckpointError, CheckpointMeta, load_checkpoint, read_checkpoint_meta
from core.protocol import DataKind, GenerativeModel, Likelihood, check_abandoned
from core.training import clone_model

DEFAULT_WEIGHTS = shipped.weights_dir()
DIGITS_FILE = shipped.digits_file()
CANVAS_SHAPE = (28, 28)
#: the key of the Training tab's model among the canvas's models (a checkpoint's is its path)
TRAINING_KEY = "training-tab"

# tile colours (RGB): what was drawn, what the model drew, what it has not drawn yet
INK, PAPER = (235, 235, 235), (18, 18, 18)
MODEL_INK, MODEL_PAPER = (110, 175, 255), (16, 26, 48)
PENDING = (70, 70, 70)


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


def copied_now(model: GenerativeModel) -> Future:
    """A done future of a copy of ``model`` (for a model that nothing trains; a trained one is
    copied between two steps: :meth:`core.training.Trainer.request_copy`)."""
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


def _inputs(entry: CanvasModel, image: np.ndarray, known: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """One input row of the drawing and its known mask, in the model's data shape."""
    model = entry.model
    x = torch.as_tensor(np.asarray(image, np.float32)).reshape(1, *model.data_shape)
    k = torch.as_tensor(np.asarray(known, bool)).reshape(1, *model.data_shape)
    return x.to(model.device), k.to(model.device)


#: (pixels drawn, pixels to draw): what a completion or sampling job reports as it goes
Progress = Callable[[int, int], None]


def _with_progress(steps: Iterator[Any], start: torch.Tensor, every: int, progress: Progress) -> torch.Tensor:
    """Run a model's ``complete_steps`` to the end, calling ``progress(pixels drawn, pixels to draw)``
    at the first step, after every ``every`` pixels (a row's worth) and at the end; the last step's x."""
    out = start
    for step in steps:
        out = step.x
        if step.done == 1 or step.done % every == 0 or step.done == step.total:
            progress(step.done, step.total)
    return out


@torch.no_grad()
def complete_drawing(entry: CanvasModel, image: np.ndarray, known: np.ndarray, n: int, gen: torch.Generator,
                     digit: int | None = None, progress: Progress | None = None) -> np.ndarray:
    """``n`` completions (float32 (n, D)) of ``image`` keeping its ``known`` pixels, of the chosen
    digit (or each of a random one) for a conditional model. ``progress(pixels drawn, pixels to
    draw)`` (any thread), for a model that completes pixel by pixel, is called row by row."""
    x, k = _inputs(entry, image, known)
    if progress is not None and "complete_steps" in entry.caps:
        steps = entry.model.complete_steps(x, k, n, gen, **label_kwargs(entry, digit, 1))
        width = (image_shape_of(entry.model.data_shape) or (1, 28))[1]
        out = _with_progress(steps, entry.model.completion_inputs(x, k, n)[0], width, progress)
    else:
        out = entry.model.complete(x, k, n, gen, **label_kwargs(entry, digit, 1))
    return out.reshape(n, -1).float().cpu().numpy()


def completion_steps(entry: CanvasModel, image: np.ndarray, known: np.ndarray, n: int, gen: torch.Generator,
                     digit: int | None = None) -> Iterator[Any]:
    """The model's ``complete_steps`` for the same inputs: one CompletionStep per pixel drawn."""
    x, k = _inputs(entry, image, known)
    return entry.model.complete_steps(x, k, n, gen, **label_kwargs(entry, digit, 1))


@torch.no_grad()
def sample_drawings(entry: CanvasModel, n: int, gen: torch.Generator, digit: int | None = None,
                    progress: Progress | None = None) -> np.ndarray:
    """``n`` samples (float32 (n, D)), of the chosen digit for a conditional model. With
    ``progress``, a raster model that completes pixel by pixel samples as the completion of ``n``
    blank images with no pixel known (what its ``sample`` does), reporting row by row."""
    model = entry.model
    # (an order-agnostic model completes in one order; it samples from all of its orders)
    if progress is not None and "complete_steps" in entry.caps and not entry.any_order \
            and image_shape_of(model.data_shape) is not None:
        zeros = torch.zeros(n, model.dim, device=model.device)
        steps = model.complete_steps(zeros, torch.zeros_like(zeros, dtype=torch.bool), 1, gen,
                                     **label_kwargs(entry, digit, n))
        width = image_shape_of(model.data_shape)[1]
        return _with_progress(steps, zeros, width, progress).reshape(n, -1).float().cpu().numpy()
    return model.sample(n, gen, **label_kwargs(entry, digit, n)).reshape(n, -1).float().cpu().numpy()


@torch.no_grad()
def nll_percentiles(model: GenerativeModel, x: np.ndarray, batch_size: int = 100) -> np.ndarray:
    """The held-out examples' NLL (nats) at percentiles 0, 1, ..., 100, float64 (101,): what the
    canvas's typicality compares a drawing with. ``x`` (N, ...) is reshaped to the model's data
    shape (flat digits fit a 2D model); a class-conditional model scores the class mixture. The
    model is put in eval mode. The CLI records this in a checkpoint; the canvas computes it for a
    model whose checkpoint does not."""
    model.eval()
    x = np.asarray(x)
    nll = []
    for i in range(0, len(x), batch_size):
        check_abandoned()  # (a few thousand digits through a big model: seconds)
        nll.append(-model.log_prob(_batch(model, x[i:i + batch_size])).double().cpu().numpy())
    return np.percentile(np.concatenate(nll), np.arange(101))


#: a drawing whose typicality is below this (%) is flagged atypical: the two-sided test at the
#: 2 % level, so 2 % of the validation digits themselves are flagged
ATYPICAL_PCT = 2.0


def typicality(nll: float, percentiles: np.ndarray) -> float:
    """Two-sided typicality (%) of a drawing of NLL ``nll`` (nats) against the validation NLLs
    given at percentiles 0..100 (Nalisnick et al. 2019's typicality test, with the validation
    set's own spread as the reference): ``2 min(F, 100 - F)`` where ``F`` is
    :func:`likelier_than`. 100 for the median validation digit's NLL, falling towards 0 in BOTH
    directions: 0 for a drawing more likely than every validation digit (a blank canvas) as for
    one less likely than all (a scribble, a full canvas). Below :data:`ATYPICAL_PCT` it is
    atypical for the model."""
    f = likelier_than(nll, percentiles)
    return float(2.0 * min(f, 100.0 - f))


def likelier_than(nll: float, percentiles: np.ndarray) -> float:
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
    rows: list[dict[str, Any]]  # one per exact model: name, log_p, bpd, typicality, likelier_than
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
        check_abandoned()  # (a model's pass each: seconds in all with the big ones)
        if not e.exact:
            continue
        lp = float(log_prob(e, flat[None], digit)[0])
        pct = e.percentiles
        if pct is None and digits is not None and digits.shape[1] == e.model.dim:
            pct = computed[i] = nll_percentiles(e.model, digits)
        rows.append({"index": i, "name": e.name, "log_p": lp, "bpd": -lp / (e.model.dim * math.log(2)),
                     "typicality": None if pct is None else typicality(-lp, pct),
                     "likelier_than": None if pct is None else likelier_than(-lp, pct)})
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
