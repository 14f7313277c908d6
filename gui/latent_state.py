"""What the Latent space tab shows, without Qt: the models it can explore (from a weights folder
or the Training tab), and the explorer's state (the current z, the digit, the map's dimensions and
extent, the points A and B, the temperature) that the widgets observe.

Everything here runs in plain Python (tests, scripts, a worker thread); the widgets call the
setters in the GUI thread and redraw from the notifications (``observe``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from core import latent, registry
from core.checkpoint import CheckpointError, load_checkpoint, read_checkpoint_meta
from core.latent import LATENT_FAMILIES, LatentError
from core.protocol import GenerativeModel, Likelihood

#: sliders and typed values live in [-LATENT_RANGE, LATENT_RANGE]
LATENT_RANGE = 4.0
#: the explorer shows 28x28 digits
PIXELS = 28 * 28
#: the map's grid: MAP_N x MAP_N decoded images
MAP_N = 16
#: the digits a conditional model can be asked for
CLASSES = 10
TRAINING_KEY = "training-tab"
#: torch threads of the map's job (off the GUI thread; ``core.latent.pin_torch_threads``): one,
#: like training (``gui.worker``), so that on a 2-core machine the GUI thread keeps a core while
#: the map is drawn during a drag (two threads are faster on an idle machine, and much slower
#: when the other core is busy)
MAP_THREADS = 1
#: torch threads of the GUI thread, where a slider move decodes one image: a 28x28 image gains
#: nothing from a second thread, and on a busy 2-core machine an OpenMP fork/join there can
#: stall a drag for 100 ms
DRAG_THREADS = 1


def family_names() -> str:
    return ", ".join(registry.info(f).name for f in LATENT_FAMILIES)


@dataclass
class LatentEntry:
    """A model the explorer can show: a checkpoint in the weights folder or the Training tab's."""

    key: str  # stable id for the settings: the checkpoint's path, or TRAINING_KEY
    name: str
    model: GenerativeModel
    path: Path | None = None

    @property
    def family(self) -> str:
        return self.model.info.key

    @property
    def conditional(self) -> bool:
        return bool(self.model.info.conditional)

    @property
    def has_encoder(self) -> bool:
        return "encode" in self.model.capabilities()

    @property
    def is_bound(self) -> bool:
        """A VAE: encoding a drawing scores it (ELBO and IWAE bound)."""
        return self.model.info.likelihood is Likelihood.LOWER_BOUND

    @property
    def latent_dim(self) -> int:
        return latent.latent_dim(self.model)

    @property
    def label(self) -> str:
        where = self.path.name if self.path is not None else "Training tab"
        return f"{self.name} — {self.latent_dim} latent dims ({where})"


def check_latent_meta(family: str, data_shape) -> str | None:
    """Why a model of ``family`` for data of ``data_shape`` cannot go in the explorer (family,
    image size), or None if it can."""
    if family not in LATENT_FAMILIES:
        try:
            what = registry.info(str(family)).name
        except KeyError:
            what = f"an unknown {family!r}"
        return f"it holds a {what} model; the latent explorer shows {family_names()}"
    shape = [int(s) for s in data_shape or ()]
    if int(np.prod(shape)) != PIXELS:
        return f"it is for data of shape {tuple(shape)}; the latent explorer shows 28x28 digits"
    return None


def check_model(model: GenerativeModel) -> str | None:
    """Why a model (say the Training tab's) cannot go in the explorer, or None if it can."""
    return check_latent_meta(model.info.key, model.data_shape)


def load_latent_checkpoint(path: str | Path) -> LatentEntry:
    """Load one checkpoint for the explorer; raise CheckpointError or LatentError with the reason."""
    path = Path(path)
    meta = read_checkpoint_meta(path)
    reason = check_latent_meta(meta.family, meta.data_shape)
    if reason is not None:
        raise LatentError(f"{path.name} cannot be explored: {reason}")
    model, _meta = load_checkpoint(path)
    model.eval()
    name = model.info.name if path.stem == model.info.key else f"{model.info.name} ({path.stem})"
    return LatentEntry(str(path), name, model, path)


def scan_latent_weights(folder: str | Path) -> tuple[list[LatentEntry], list[str], int]:
    """Every latent-model checkpoint in ``folder`` (blocking: run it off the GUI thread): the
    models, one message per latent checkpoint that failed to load, and how many checkpoints of
    other families were passed over."""
    folder = Path(folder)
    if not folder.is_dir():
        return [], [f"no weights folder at {folder}"], 0
    entries, problems, others = [], [], 0
    for path in sorted(folder.glob("*.safetensors")):
        try:
            if read_checkpoint_meta(path).family not in LATENT_FAMILIES:
                others += 1
                continue
            entries.append(load_latent_checkpoint(path))
        except (CheckpointError, LatentError) as exc:
            problems.append(f"{path.name} skipped: {exc}")
    return entries, problems, others


def read_digit_labels(path: str | Path, n: int) -> np.ndarray | None:
    """The digits' labels (0..9) when the digits file holds them (key ``labels``), else None."""
    try:
        with np.load(path, allow_pickle=False) as f:
            if "labels" not in f.files:
                return None
            labels = np.asarray(f["labels"]).astype(np.int64).reshape(-1)
    except (OSError, ValueError):
        return None
    if len(labels) != n or labels.min(initial=0) < 0 or labels.max(initial=0) >= CLASSES:
        return None
    return labels


@torch.no_grad()
def decode_digits(model: GenerativeModel, z: np.ndarray) -> np.ndarray:
    """(CLASSES, 28, 28): one latent ``z`` decoded as every digit (a conditional model's style row)."""
    if not model.info.conditional:
        raise LatentError(f"{model.info.name} is not conditional: it has no digit to choose")
    z = np.asarray(z, np.float32).reshape(1, -1)
    latent.decode(model, z, 0)  # checks the latent's size and values
    zs = torch.from_numpy(np.repeat(z, CLASSES, 0))
    out = model.decode(zs, labels=torch.arange(CLASSES)).reshape(CLASSES, 28, 28).detach().cpu().numpy()
    if not np.isfinite(out).all():
        raise LatentError("the decoder returned NaN or infinite values for these latents")
    return np.ascontiguousarray(out, np.float32)


@torch.no_grad()
def encode_digits(model: GenerativeModel, digits: np.ndarray | None,
                  labels: np.ndarray | None) -> np.ndarray | None:
    """The codes (N, latent) of the validation digits for the map's scatter; None for a model
    without an encoder, or a conditional one when the digits have no labels."""
    if digits is None or "encode" not in model.capabilities():
        return None
    kw = {}
    if model.info.conditional:
        if labels is None:
            return None
        kw["labels"] = torch.from_numpy(labels)
    codes = model.encode(torch.from_numpy(np.asarray(digits, np.float32)), **kw).cpu().numpy()
    return np.ascontiguousarray(codes, np.float32) if np.isfinite(codes).all() else None


@dataclass
class MapResult:
    mosaic: np.ndarray | None  # (n*28, n*28) float32, top row = the largest y; None: no map (1 dim)
    dims: tuple[int, int] | None
    extent: float
    n: int
    seconds: float  # time to decode the mosaic
    model_id: int  # id() of the model it was computed with
    prepared: bool = False  # order and codes were computed (codes may still be None)
    codes: np.ndarray | None = None  # the validation digits' codes
    order: np.ndarray | None = None  # the slider order


def compute_map(model: GenerativeModel, base: np.ndarray, dims: tuple[int, int] | None, extent: float,
                digit: int | None, n: int = MAP_N, digits: np.ndarray | None = None,
                labels: np.ndarray | None = None, prepare: bool = False) -> MapResult:
    """The 2D map (blocking; ``dims`` None: no map); with ``prepare`` also the slider order and
    the validation digits' codes."""
    latent.pin_torch_threads(MAP_THREADS)
    t0 = time.perf_counter()
    mosaic = latent.decode_map(model, base, dims, extent, n, digit) if dims is not None else None
    out = MapResult(mosaic, None if dims is None else tuple(dims), float(extent), n,
                    time.perf_counter() - t0, id(model), prepare)
    if prepare:
        out.order = latent.dimension_order(model, digits, digit)
        out.codes = encode_digits(model, digits, labels)
    return out


class LatentState:
    """The explorer's state; every change is announced to the observers with one word:
    ``model`` (another model: z = 0), ``refresh`` (newer weights of the same model: z kept),
    ``z``, ``digit``, ``dims``, ``order``, ``ab``."""

    def __init__(self) -> None:
        self.entry: LatentEntry | None = None
        self.z = np.zeros(0, np.float32)
        self.digit = 0
        self.dims = (0, 1)
        self.extent = 3.0
        self.temperature = 1.0
        self.a: np.ndarray | None = None
        self.b: np.ndarray | None = None
        self.order = np.zeros(0, np.int64)
        self._observers: list[Callable[[str], None]] = []

    def observe(self, fn: Callable[[str], None]) -> None:
        self._observers.append(fn)

    def _emit(self, what: str) -> None:
        for fn in self._observers:
            fn(what)

    @property
    def dim(self) -> int:
        return len(self.z)

    @property
    def model(self) -> GenerativeModel | None:
        return self.entry.model if self.entry is not None else None

    def digit_or_none(self) -> int | None:
        return self.digit if self.entry is not None and self.entry.conditional else None

    def set_entry(self, entry: LatentEntry | None, keep: bool = False) -> None:
        """Show ``entry``; ``keep`` keeps z, A and B when the latent size is the same (a newer
        snapshot of the model being trained)."""
        d = entry.latent_dim if entry is not None else 0
        self.entry = entry
        if keep and d == self.dim and entry is not None:
            self._emit("refresh")  # the same latent space, newer weights
            return
        self.z = np.zeros(d, np.float32)
        self.a = self.b = None
        self.order = np.arange(d)
        i, j = self.dims
        if not (i != j and max(i, j) < d):
            self.dims = (0, 1) if d >= 2 else (0, 0)
        self._emit("model")

    def set_order(self, order: np.ndarray) -> None:
        order = np.asarray(order, np.int64)
        if sorted(order.tolist()) != list(range(self.dim)):
            raise LatentError(f"a slider order must list the {self.dim} dimensions once each")
        self.order = order
        self._emit("order")

    def set_value(self, i: int, value: float) -> None:
        """One dimension, as typed or dragged: refused outside [-LATENT_RANGE, LATENT_RANGE]."""
        if not 0 <= i < self.dim:
            raise LatentError(f"the model has {self.dim} latent dimensions, there is no z{i}")
        value = float(value)
        if not np.isfinite(value) or abs(value) > LATENT_RANGE:
            raise LatentError(f"z{i} = {value:g} refused: latent values go from "
                              f"{-LATENT_RANGE:g} to {LATENT_RANGE:g}")
        if self.z[i] != value:
            self.z[i] = value
            self._emit("z")

    def set_z(self, z: np.ndarray) -> None:
        z = np.asarray(z, np.float32).reshape(-1)
        if z.shape != self.z.shape:
            raise LatentError(f"the model has {self.dim} latent dimensions, got a latent of size {z.size}")
        if not np.isfinite(z).all():
            raise LatentError("latent values must be finite numbers")
        self.z = z.copy()
        self._emit("z")

    def set_point(self, x: float, y: float) -> None:
        """The map's point (x, y) in its two dimensions (a click or drag on the map)."""
        if self.dim < 2:
            raise LatentError("the map needs at least two latent dimensions")
        z = self.z.copy()
        z[self.dims[0]], z[self.dims[1]] = x, y
        self.set_z(z)

    def reset(self) -> None:
        self.set_z(np.zeros(self.dim, np.float32))

    def randomise(self, rng: np.random.Generator) -> None:
        """z ~ N(0, T^2 I), T the temperature."""
        self.set_z((self.temperature * rng.standard_normal(self.dim)).astype(np.float32))

    def set_temperature(self, t: float) -> None:
        if not (np.isfinite(t) and 0 < t <= LATENT_RANGE):
            raise LatentError(f"the temperature must be in (0, {LATENT_RANGE:g}], got {t:g}")
        self.temperature = float(t)

    def set_digit(self, digit: int) -> None:
        if not 0 <= int(digit) < CLASSES:
            raise LatentError(f"digits go from 0 to {CLASSES - 1}, got {digit}")
        if int(digit) != self.digit:
            self.digit = int(digit)
            self._emit("digit")

    def set_dims(self, i: int, j: int) -> None:
        if i == j or not (0 <= i < self.dim and 0 <= j < self.dim):
            raise LatentError(f"the map needs two different dimensions of {self.dim}, got z{i} and z{j}")
        if (i, j) != self.dims:
            self.dims = (int(i), int(j))
            self._emit("dims")

    def set_extent(self, extent: float) -> None:
        if not (np.isfinite(extent) and 0 < extent <= LATENT_RANGE):
            raise LatentError(f"the map's extent must be in (0, {LATENT_RANGE:g}], got {extent:g}")
        if float(extent) != self.extent:
            self.extent = float(extent)
            self._emit("dims")

    def set_end(self, which: str, z: np.ndarray | None = None) -> None:
        """Point A or B of the interpolation: ``z`` or the current point."""
        z = np.array(self.z if z is None else z, np.float32).reshape(-1)
        if z.shape != self.z.shape:
            raise LatentError(f"the model has {self.dim} latent dimensions, got a latent of size {z.size}")
        setattr(self, {"A": "a", "B": "b"}[which], z)
        self._emit("ab")

    def path(self, steps: int, spherical: bool) -> np.ndarray:
        """(steps, latent) from A to B, linear or spherical."""
        if self.a is None or self.b is None:
            raise LatentError("set the two ends first: A and B (from the current point or an encoded drawing)")
        return latent.interpolate(self.a, self.b, steps, spherical)

    def sweep(self, i: int, steps: int) -> np.ndarray:
        """(steps, latent): the current z with dimension ``i`` swept over [-extent, extent]."""
        if not 0 <= i < self.dim:
            raise LatentError(f"the model has {self.dim} latent dimensions, there is no z{i}")
        if steps < 2:
            raise LatentError(f"a sweep needs at least 2 steps, got {steps}")
        out = np.repeat(self.z[None], steps, 0)
        out[:, i] = np.linspace(-self.extent, self.extent, steps, dtype=np.float32)
        return out
