"""The one model protocol every family implements.

A model is a ``torch.nn.Module`` subclass of :class:`GenerativeModel`. The engine only ever calls
what is declared here:

* ``train_step(batch)`` -> dict of floats (must hold ``"loss"``); the default runs
  ``loss(batch)``, backward, a finite-gradient check and one optimizer step;
* ``log_prob(x)`` -> per-example log-likelihood in nats (exact models) or its lower bound
  (``Likelihood.LOWER_BOUND``); models with ``Likelihood.NONE`` raise ``NotImplementedError``;
* ``sample(n, generator=None)`` -> ``n`` samples shaped like the data;
* optional ``complete(x, known_mask, n)``, ``encode(x)``, ``decode(z)``; ``capabilities()`` says
  which of them a model has, so the GUI can grey out what a model cannot do;
* optional for autoregressive image models: ``complete_steps(x, known, n)``, a generator of
  :class:`CompletionStep` (one per drawn pixel, for the canvas's pixel-by-pixel animation), and
  ``pixel_log_prob(x)``, the (N, D) chain-rule terms whose sum over D is ``log_prob(x)`` (the
  canvas's per-pixel NLL heatmap);
* class-conditional families (``info.conditional``) take ``labels=`` (int64 (N,)) on ``loss``,
  ``train_step``, ``log_prob``, ``pixel_log_prob``, ``sample``, ``complete`` and
  ``complete_steps``; the engine passes the data set's labels to them;
* ``visuals(n)`` -> a :class:`Visuals`: small numpy arrays for the views (samples, densities, ...).

Models that are fitted rather than trained by gradient (histogram, KDE, EM) override
``train_step`` and ``configure_optimizer``; the engine treats them the same way.
"""

from __future__ import annotations

import contextvars
import enum
import math
import threading
from dataclasses import dataclass, field, fields, replace
from typing import Any, ClassVar, Iterator, Sequence

import numpy as np
import torch


class Likelihood(str, enum.Enum):
    """What ``log_prob`` returns."""

    EXACT = "exact"
    LOWER_BOUND = "lower_bound"
    NONE = "none"


class DataKind(str, enum.Enum):
    """The kinds of data a model accepts; data sets declare one."""

    BINARY_IMAGE = "binary_image"  # flattened {0,1} pixels, shape (D,), with an image shape
    POINTS_1D = "points_1d"
    POINTS_2D = "points_2d"
    SEQUENCE = "sequence"


@dataclass(eq=False)
class Visuals:
    """What ``GenerativeModel.visuals`` returns: small arrays for the views, each None when the
    model has none. Falsy when it holds nothing."""

    samples: np.ndarray | None = None  # (n, *data shape) float32
    sample_labels: np.ndarray | None = None  # (n,) int64: the class of each sample (conditional models)
    density: np.ndarray | None = None  # (res,) or (res, res) float32: the density on the view's grid (points)
    disc: np.ndarray | None = None  # (res, res) float32: a GAN discriminator's p(real) on that grid
    cdf: np.ndarray | None = None  # (res,) float32: the model's CDF on that grid (1D)
    warp: np.ndarray | None = None  # (L, P, 2) float32: a flow's image of a regular grid of lines
    chain: np.ndarray | None = None  # (T, D) float32: a DAE's sampling chain

    def __bool__(self) -> bool:
        return any(getattr(self, f.name) is not None for f in fields(self))

    def as_dict(self) -> dict[str, np.ndarray]:
        """The arrays it holds, by field name."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    def updated(self, newer: "Visuals") -> "Visuals":
        """These visuals with every array that ``newer`` has replaced by its."""
        return replace(self, **{f.name: getattr(newer, f.name) for f in fields(newer)
                                if getattr(newer, f.name) is not None})

    @property
    def heat(self) -> np.ndarray | None:
        """The grid a heatmap shows: the density, else the discriminator."""
        return self.density if self.density is not None else self.disc


class NonFiniteError(FloatingPointError):
    """A loss or gradient became NaN or infinite; the engine restores the last good weights."""


@dataclass(frozen=True)
class HParam:
    """One hyperparameter: its type, default and allowed range, for the GUI form and validation.

    ``live`` marks the ones that can change while training (the learning rate, say).
    ``structural`` marks the ones that shape the model (its layers, masks, fitted tables): a model
    keeps training, or is fine-tuned, only with the same values of these. Every hyperparameter is
    structural unless declared otherwise; a live one never is (it changes while training).
    """

    name: str
    kind: str  # "int", "float", "choice" or "bool"
    default: Any
    low: float | None = None
    high: float | None = None
    choices: Sequence[Any] = ()
    log: bool = False
    live: bool = False
    help: str = ""
    structural: bool = True

    def __post_init__(self) -> None:
        if self.live and self.structural:
            raise ValueError(f"{self.name}: a live hyperparameter cannot shape the model (structural=False)")

    def validate(self, value: Any) -> Any:
        """Return ``value`` converted to this parameter's type, or raise ``ValueError``."""
        if self.kind == "bool":
            if isinstance(value, str):
                if value.lower() in ("1", "true", "yes", "on"):
                    return True
                if value.lower() in ("0", "false", "no", "off"):
                    return False
                raise ValueError(f"{self.name}: expected true or false, got {value!r}")
            return bool(value)
        if self.kind == "choice":
            if value not in self.choices:
                raise ValueError(f"{self.name}: {value!r} is not one of {list(self.choices)}")
            return value
        try:
            number = int(value) if self.kind == "int" else float(value)
        except (TypeError, ValueError, OverflowError):  # int(inf) raises OverflowError
            raise ValueError(f"{self.name}: expected a number, got {value!r}") from None
        if self.kind == "int" and float(value) != number:
            raise ValueError(f"{self.name}: expected a whole number, got {value!r}")
        if not math.isfinite(number):
            raise ValueError(f"{self.name}: must be finite, got {value!r}")
        if self.low is not None and number < self.low:
            raise ValueError(f"{self.name}: {number} is below the minimum {self.low}")
        if self.high is not None and number > self.high:
            raise ValueError(f"{self.name}: {number} is above the maximum {self.high}")
        return number


def lr_hparam(default: float = 1e-3, *, help: str = "learning rate", live: bool = True) -> HParam:
    """The learning rate every family declares (its own default and help); live unless the
    model is fitted rather than trained."""
    return HParam("lr", "float", default, 1e-6, 1.0, log=True, live=live, help=help, structural=False)


def batch_size_hparam(default: int = 64, *, help: str = "examples per step") -> HParam:
    """The batch size every family declares (its own default and help)."""
    return HParam("batch_size", "int", default, 1, 4096, help=help, structural=False)


#: Hyperparameters the engine itself reads; every model spec gets them.
TRAINING_HPARAMS: tuple[HParam, ...] = (lr_hparam(), batch_size_hparam())


@dataclass(frozen=True)
class Recipe:
    """How a family trains when nobody says otherwise (the playground's defaults): ``steps``, and
    the learning-rate schedule (:mod:`core.policy`): a linear warm-up over ``warmup`` steps, then
    the rate held for a fraction ``hold`` of the remaining steps, then ``schedule`` ("constant"
    or "cosine", a decay to 2 % of the rate at the last step). ``bench/defaults_2d.py`` checks the
    recipes of the 2D families on every built-in 2D set."""

    steps: int = 3000
    schedule: str = "constant"
    warmup: int = 0
    hold: float = 0.0

    def __post_init__(self) -> None:
        if int(self.steps) < 1 or int(self.warmup) < 0 or not 0.0 <= float(self.hold) < 1.0:
            raise ValueError(f"a recipe needs steps >= 1, warmup >= 0 and 0 <= hold < 1, got {self}")


@dataclass(frozen=True)
class ModelInfo:
    """What the registry knows of a family: for the picker, the CLI and the checkpoints."""

    key: str  # stable id, stored in checkpoints ("fvsbn")
    name: str  # shown to people ("FVSBN")
    group: str  # picker group ("Autoregressive")
    description: str
    likelihood: Likelihood
    data_kinds: tuple[DataKind, ...]
    hparams: tuple[HParam, ...] = field(default_factory=tuple)
    #: Fitted on the whole training set at every step (histogram, KDE, EM, ...): the trainer
    #: passes all training data as the batch, and "epochs" counts steps (EM iterations).
    full_batch: bool = False
    #: Class-conditional: trained on labelled data, every method takes ``labels=``.
    conditional: bool = False
    #: The steps and learning-rate schedule the playground trains with by default.
    recipe: Recipe = field(default_factory=Recipe)

    def all_hparams(self) -> tuple[HParam, ...]:
        own = {h.name for h in self.hparams}
        return self.hparams + tuple(h for h in TRAINING_HPARAMS if h.name not in own)

    def defaults(self) -> dict[str, Any]:
        return {h.name: h.default for h in self.all_hparams()}

    def structure_changes(self, old: dict[str, Any], new: dict[str, Any]) -> list[str]:
        """The structural hyperparameters (``HParam.structural``) whose values differ between
        ``old`` and ``new``, sorted: a model made with ``old`` cannot go on with ``new`` if any."""
        return sorted(h.name for h in self.all_hparams() if h.structural and old.get(h.name) != new.get(h.name))

    def validate(self, values: dict[str, Any]) -> dict[str, Any]:
        """Fill defaults and check every value; unknown names are an error."""
        specs = {h.name: h for h in self.all_hparams()}
        unknown = sorted(set(values) - set(specs))
        if unknown:
            raise ValueError(f"{self.name} has no hyperparameter(s) {unknown}; known: {sorted(specs)}")
        out = self.defaults()
        for name, value in values.items():
            out[name] = specs[name].validate(value)
        return out


class GenerativeModel(torch.nn.Module):
    """Base class of every family. Subclasses set ``info`` and implement the methods they have."""

    info: ClassVar[ModelInfo]
    #: Buffers whose size depends on the data (a KDE's points, say): a checkpoint's tensor
    #: replaces them whatever its shape.
    resizable_buffers: ClassVar[tuple[str, ...]] = ()

    def __init__(self, data_shape: Sequence[int], hparams: dict[str, Any]):
        super().__init__()
        self.data_shape = tuple(int(s) for s in data_shape)
        self.hparams = dict(hparams)
        self.optimizer: torch.optim.Optimizer | None = None

    # -- shape -------------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        return int(np.prod(self.data_shape))

    @property
    def device(self) -> torch.device:
        for p in self.parameters():
            return p.device
        for b in self.buffers():
            return b.device
        return torch.device("cpu")

    def check_latent(self, z: Any) -> torch.Tensor:
        """Latents (N, latent_dim) as float32 on the model's device, for ``decode``: a clear
        ``ValueError`` for another shape or a value that is not finite."""
        z = torch.as_tensor(z, dtype=torch.float32)
        dim = int(getattr(self, "latent_dim"))
        if z.dim() != 2 or z.shape[1] != dim:
            raise ValueError(f"{self.info.name} decodes latents of shape (N, {dim}), got {tuple(z.shape)}")
        if not torch.isfinite(z).all():
            raise ValueError(f"{self.info.name}: latent values must be finite")
        return z.to(self.device)

    def check_batch(self, x: torch.Tensor) -> torch.Tensor:
        """Raise a clear ``ValueError`` if ``x`` does not have the data shape; return it as float."""
        if tuple(x.shape[1:]) != self.data_shape:
            raise ValueError(
                f"{self.info.name} expects data of shape (N, {', '.join(map(str, self.data_shape))}), "
                f"got {tuple(x.shape)}"
            )
        return x.to(self.device, torch.float32)

    def check_point_dims(self, dims: Sequence[int] = (1, 2), who: str | None = None) -> None:
        """For point-data families: raise a clear ``ValueError`` unless the data are points of
        one of ``dims`` dimensions (``who``: the model as the message names it)."""
        if self.dim not in dims:
            what = " or ".join(f"{d}D" for d in dims)
            raise ValueError(f"{who or self.info.name} takes {what} points, got data of shape {self.data_shape}")

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        for name in self.resizable_buffers:
            if name in state_dict:
                setattr(self, name, getattr(self, name).new_empty(state_dict[name].shape))
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    # -- training ----------------------------------------------------------------------------
    def configure_optimizer(self, lr: float) -> torch.optim.Optimizer | None:
        """Adam over the trainable parameters; none for fitted models (buffers only)."""
        params = [p for p in self.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(params, lr=lr) if params else None
        return self.optimizer

    def set_lr(self, lr: float) -> None:
        if self.optimizer is not None:
            for group in self.optimizer.param_groups:
                group["lr"] = lr

    def loss(self, batch: torch.Tensor) -> torch.Tensor:
        """Scalar to minimise; by default the mean negative log-likelihood in nats."""
        return -self.log_prob(batch).mean()

    def train_step(self, batch: torch.Tensor) -> dict[str, float]:
        assert self.optimizer is not None, "configure_optimizer() first"
        self.train()
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss(batch)
        loss.backward()
        # A non-finite loss or gradient is caught before it reaches the weights. The sum of all
        # gradient entries is NaN or infinite if any entry is, at a fraction of a norm's cost
        # (float32: a float64 sum cost 7 % of an FVSBN step; a float32 sum overflows only when
        # the gradients are ~1e34 anyway, which is a divergence worth stopping for).
        grads = [p.grad.sum() for p in self.parameters() if p.grad is not None]
        loss_value = float(loss.detach())
        grad_value = float(torch.stack(grads).sum()) if grads else 0.0
        if not (math.isfinite(loss_value) and math.isfinite(grad_value)):
            self.optimizer.zero_grad(set_to_none=True)
            raise NonFiniteError(f"loss={loss_value}, gradient sum={grad_value}")
        self.optimizer.step()
        return {"loss": loss_value}

    # -- the protocol ------------------------------------------------------------------------
    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{self.info.name} has no likelihood")

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError(f"{self.info.name} cannot sample")

    def complete(self, x: torch.Tensor, known: torch.Tensor, n: int = 1,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """(N * n, D): ``n`` candidates per row of ``x`` (those of row i at ``i*n:(i+1)*n``), the
        ``known`` pixels kept, the others drawn. By default what ``complete_steps`` ends with."""
        if type(self).complete_steps is GenerativeModel.complete_steps:
            raise NotImplementedError(f"{self.info.name} cannot complete a partial input")
        return last_completion(self.complete_steps(x, known, n, generator), self.completion_inputs(x, known, n)[0])

    def complete_steps(self, x: torch.Tensor, known: torch.Tensor, n: int = 1,
                       generator: torch.Generator | None = None) -> Iterator["CompletionStep"]:
        """Like ``complete`` but a generator: one :class:`CompletionStep` after each drawn pixel,
        in the model's order; the last step's ``x`` is the completion."""
        raise NotImplementedError(f"{self.info.name} cannot complete pixel by pixel")

    def pixel_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """(N, D) log-probability terms, one per dimension, summing to ``log_prob(x)``."""
        raise NotImplementedError(f"{self.info.name} has no per-pixel likelihood")

    def completion_inputs(self, x: torch.Tensor, known: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Check and flatten the arguments of ``complete``: ``x`` and ``known`` of the data shape
        or (N, *data shape) (or flat: (D,) or (N, D)), ``n`` >= 1; returns float ``x`` (N * n, D), the candidates of row i
        at ``i*n:(i+1)*n``, with the unknown pixels zeroed, and bool ``known`` (N * n, D)."""
        n = int(n)
        if n < 1:
            raise ValueError(f"the number of candidates must be at least 1, got {n}")
        if tuple(known.shape) != tuple(x.shape):
            raise ValueError(f"the known-pixel mask has shape {tuple(known.shape)}, the input {tuple(x.shape)}")
        if tuple(x.shape) in (self.data_shape, (self.dim,)):
            x, known = x.unsqueeze(0), known.unsqueeze(0)
        if x.dim() == 2 and x.shape[1] == self.dim and len(self.data_shape) > 1:  # flat rows
            x, known = x.reshape(len(x), *self.data_shape), known.reshape(len(x), *self.data_shape)
        x = self.check_batch(x).reshape(len(x), self.dim)
        known = known.reshape(len(known), self.dim).to(self.device, torch.bool)
        x = torch.where(known, x, torch.zeros_like(x)).repeat_interleave(n, 0)
        return x, known.repeat_interleave(n, 0)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{self.info.name} has no encoder")

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{self.info.name} has no decoder")

    @classmethod
    def capabilities(cls) -> set[str]:
        """Names of the optional methods this family overrides."""
        names = {
            name for name in ("log_prob", "sample", "complete", "encode", "decode", "complete_steps",
                              "pixel_log_prob")
            if getattr(cls, name) is not getattr(GenerativeModel, name)
        }
        if "complete_steps" in names:  # the default complete() runs them
            names.add("complete")
        return names

    @torch.no_grad()
    def density_grid(self, bounds: Sequence[tuple[float, float]], res: int) -> np.ndarray:
        """The model's density (not its log) on a regular grid over ``bounds``: shape (res,) for
        1D data, (res, res) for 2D with rows along y and columns along x (pixel centres at
        ``grid_points``). By default ``exp(log_prob)`` in batches; KDE overrides it with FFT."""
        pts = torch.from_numpy(grid_points(bounds, res)).to(self.device)
        out = torch.cat([self.log_prob(pts[i:i + 16384]) for i in range(0, len(pts), 16384)]).exp()
        shape = (res,) * len(bounds)
        return np.ascontiguousarray(out.reshape(shape).cpu().numpy(), dtype=np.float32)

    @torch.no_grad()
    def visuals(self, n: int = 64, generator: torch.Generator | None = None,
                bounds: Sequence[tuple[float, float]] | None = None, res: int = 96) -> Visuals:
        """Small arrays for the views: ``n`` samples (float32) when the model samples, and for
        point data (``bounds`` given) the density on a ``res`` grid when it has a likelihood.
        Families add their own (a flow's warped grid, a GAN's discriminator)."""
        self.eval()
        out = Visuals()
        if "sample" in self.capabilities():
            s = self.sample(n, generator=generator)
            out.samples = np.ascontiguousarray(s.detach().cpu().numpy(), dtype=np.float32)
        if bounds is not None and self.info.likelihood is not Likelihood.NONE:
            out.density = self.density_grid(bounds, res)
        return out


@dataclass
class CompletionStep:
    """One pixel of a completion in progress (see ``GenerativeModel.complete_steps``).
    For categorical sequence models (WaveNet) ``pixel`` is the time step and ``p`` is (M, levels)."""

    pixel: int  # flat index of the pixel just drawn
    p: torch.Tensor  # (M,) its probability of being 1, before the draw, per candidate
    x: torch.Tensor  # (M, D) the candidates so far (the model's working tensor: copy to keep)
    done: int  # pixels drawn so far, this one included
    total: int  # pixels to draw in all


#: An event that, once set, abandons the sampling loops run in this context (checked at every
#: drawn pixel): the GUI's jobs set it for their work, and set the event when their window
#: closes, so that closing never waits for a slow sampler (PixelCNN: a pass per pixel).
abandon: contextvars.ContextVar[threading.Event | None] = contextvars.ContextVar("abandon", default=None)


class Abandoned(Exception):
    """A sampling loop was abandoned: whoever wanted its result is going away."""


def check_abandoned() -> None:
    """Raise :class:`Abandoned` if the work running in this context was abandoned (a check
    between the parts of a long computation)."""
    flag = abandon.get()
    if flag is not None and flag.is_set():
        raise Abandoned("abandoned")


def drain(steps: Iterator[Any]) -> Any:
    """Run a sampling loop to its end (abandoned if :data:`abandon` is set); its last item or None."""
    flag, last = abandon.get(), None
    for last in steps:
        if flag is not None and flag.is_set():
            raise Abandoned("sampling abandoned")
    return last


def last_completion(steps: Iterator[CompletionStep], start: torch.Tensor) -> torch.Tensor:
    """What a completion ends with: the last step's candidates, or ``start`` when no pixel is drawn."""
    last = drain(steps)
    return start if last is None else last.x


def grid_points(bounds: Sequence[tuple[float, float]], res: int) -> np.ndarray:
    """Pixel centres of a ``res``-per-axis grid over ``bounds``, float32 (res**d, d); for 2D in
    row-major order with y along rows: point k is (x[k % res], y[k // res])."""
    axes = [np.linspace(lo, hi, res, endpoint=False, dtype=np.float64) + (hi - lo) / (2 * res)
            for lo, hi in bounds]
    if len(axes) == 1:
        return axes[0].astype(np.float32).reshape(-1, 1)
    yy, xx = np.meshgrid(axes[1], axes[0], indexing="ij")
    return np.ascontiguousarray(np.stack([xx.ravel(), yy.ravel()], 1), dtype=np.float32)


def cell_area(bounds: Sequence[tuple[float, float]], res: int) -> float:
    """Area (length in 1D) of one grid cell: ``density_grid(...).sum() * cell_area`` ~ 1."""
    return float(np.prod([(hi - lo) / res for lo, hi in bounds]))
