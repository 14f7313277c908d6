"""Training engine and checkpoints.

* :class:`Trainer` turns a model and a data set into a generator of :class:`Snapshot` s, one per
  step. Whoever pulls from it decides the pace: the GUI worker (through :func:`throttled`) and
  the CLI iterate it, pause by not pulling, and stop by closing it at the next yield.
* :class:`RunControl` is the thread-safe pause / resume / single step / stop switch that a
  consumer on another thread waits on.
* Checkpoints are a safetensors file whose header metadata holds the description (family,
  hyperparameters, data set, step, metrics, app version), plus a readable JSON sidecar. Both are
  written atomically; loading never unpickles anything.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import struct
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch

import core
from core import registry
from core.data import Dataset
from core.protocol import DataKind, GenerativeModel, Likelihood, NonFiniteError

# --------------------------------------------------------------------------------------------
# devices
# --------------------------------------------------------------------------------------------


def select_device(preference: str | None = None) -> tuple[torch.device, str | None]:
    """Pick the device: ``"auto"`` (CUDA if it works, else CPU), ``"cpu"`` or ``"cuda[:N]"``.

    ``$GMS_DEVICE`` gives the preference when none is passed, and ``GMS_FORCE_CPU=1`` overrides
    everything. Returns the device and a message for the user when the choice was not honoured.
    """
    if os.environ.get("GMS_FORCE_CPU", "").lower() in ("1", "true", "yes"):
        return torch.device("cpu"), None
    pref = (preference or os.environ.get("GMS_DEVICE") or "auto").lower()
    if pref == "cpu":
        return torch.device("cpu"), None
    if pref != "auto" and not pref.startswith("cuda"):
        raise ValueError(f"unknown device {pref!r}: use auto, cpu or cuda")
    if not torch.cuda.is_available():
        if pref == "auto":
            return torch.device("cpu"), None
        return torch.device("cpu"), f"{pref} was asked for but no CUDA device is available: training on the CPU"
    device = torch.device("cuda" if pref == "auto" else pref)
    try:
        torch.zeros(1, device=device).sum().item()
    except Exception as exc:  # a broken driver, a wrong index, out of memory...
        return torch.device("cpu"), f"CUDA failed ({exc}): training on the CPU"
    return device, None


def _is_cuda_failure(exc: BaseException) -> bool:
    text = str(exc)
    return isinstance(exc, RuntimeError) and any(s in text for s in ("CUDA", "cuda", "cuDNN", "CUBLAS"))


# --------------------------------------------------------------------------------------------
# snapshots and the trainer
# --------------------------------------------------------------------------------------------


@dataclass
class TrainConfig:
    epochs: float = 1.0
    max_steps: int | None = None  # overrides epochs when set
    seed: int = 0
    device: str | None = None  # None: $GMS_DEVICE or auto
    eval_every: int = 200  # steps between held-out evaluations (0: only at the end)
    eval_size: int = 1000  # held-out examples used by those evaluations
    visuals_every_s: float | None = 0.5  # seconds between arrays for the views (None: never)
    visuals_n: int = 64
    visuals_res: int = 96  # density grid per axis, for point data
    coverage_samples: int = 2500  # samples for the mode-coverage metric (data with modes)
    checkpoint_path: str | os.PathLike | None = None
    checkpoint_every: int = 0  # steps between checkpoints (0: only at the end)
    num_threads: int | None = None  # torch intra-op threads in the training thread


@dataclass
class Snapshot:
    """What a trainer yields after each step. ``arrays`` is empty except every
    ``visuals_every_s``; ``event`` is ``step``, ``eval``, ``finished``, ``nonfinite``, ``device``
    (a device change), ``saved`` or ``error`` (with ``message``)."""

    step: int
    total_steps: int
    epoch: float
    loss: float
    metrics: dict[str, float] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    event: str = "step"
    message: str | None = None
    elapsed: float = 0.0
    steps_per_s: float = 0.0
    device: str = "cpu"
    image_shape: tuple[int, int] | None = None
    bounds: tuple[tuple[float, float], ...] | None = None  # view bounds, for point data
    step_ms: float = 0.0  # mean wall time of this run's own training steps (not its waits)


def _bounds(data: Dataset) -> tuple[tuple[float, float], ...]:
    """View bounds for point data: the data set's own, else the padded 0.5-99.5 % range."""
    if data.meta.get("bounds") is not None:
        return tuple((float(lo), float(hi)) for lo, hi in data.meta["bounds"])
    x = np.asarray(data.train, np.float64).reshape(len(data.train), -1)
    lo, hi = np.percentile(x, 0.5, axis=0), np.percentile(x, 99.5, axis=0)
    pad = 0.1 * np.maximum(hi - lo, 1e-3)
    return tuple((float(a - p), float(b + p)) for a, b, p in zip(lo, hi, pad))


class Trainer:
    """Trains ``model`` on ``data``. Iterate :meth:`run` (a generator) to make progress."""

    def __init__(self, model: GenerativeModel, data: Dataset, config: TrainConfig | None = None,
                 *, start_step: int = 0):
        if data.shape != model.data_shape:
            raise ValueError(f"data set {data.name} has shape {data.shape}, the model expects {model.data_shape}")
        if len(data.train) == 0:
            raise ValueError(f"data set {data.name} has no training examples")
        if model.info.conditional:
            _check_labelled(model, data)
        self.model = model
        self.data = data
        self.config = config or TrainConfig()
        self.step = start_step
        self.metrics: dict[str, float] = {}
        self._pending: dict[str, Any] = {}  # live hyperparameter changes, applied between steps
        self._lock = threading.Lock()
        self.device, self.device_message = select_device(self.config.device)
        self._last_good: dict[str, torch.Tensor] | None = None
        self._save_requests: list[Path] = []
        self.points = data.kind in (DataKind.POINTS_1D, DataKind.POINTS_2D)
        self.bounds = _bounds(data) if self.points else None

    # -- live changes (any thread) ---------------------------------------------------------------
    def set_lr(self, lr: float) -> None:
        self.set_hparams({"lr": lr})

    def set_hparams(self, values: dict[str, Any]) -> None:
        """Change live hyperparameters (``HParam.live``) from any thread; applied before the
        next step. Raises ValueError for unknown, invalid or not-live ones."""
        specs = {h.name: h for h in self.model.info.all_hparams()}
        checked = {}
        for name, value in values.items():
            if name not in specs:
                raise ValueError(f"{self.model.info.name} has no hyperparameter {name!r}")
            if not specs[name].live:
                raise ValueError(f"{name} cannot change while training; stop first")
            checked[name] = specs[name].validate(value)
        with self._lock:
            self._pending.update(checked)

    def request_save(self, path: str | os.PathLike) -> None:
        """Save to ``path`` after the current step (from any thread); a ``saved`` snapshot
        (or an ``error`` one) reports it."""
        with self._lock:
            self._save_requests.append(Path(path))

    def _pending_saves(self) -> list[Path]:
        with self._lock:
            out, self._save_requests = self._save_requests, []
        return out

    # -- helpers ---------------------------------------------------------------------------------
    @property
    def batch_size(self) -> int:
        return int(self.model.hparams.get("batch_size", 64))

    @property
    def steps_per_epoch(self) -> int:
        if self.model.info.full_batch:
            return 1
        return max(1, math.ceil(len(self.data.train) / self.batch_size))

    @property
    def total_steps(self) -> int:
        if self.config.max_steps is not None:
            return int(self.config.max_steps)
        return max(1, math.ceil(self.config.epochs * self.steps_per_epoch))

    def _remember_good(self) -> None:
        self._last_good = {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}

    def _restore_good(self) -> None:
        if self._last_good is not None:
            self.model.load_state_dict(self._last_good)

    def _weights_finite(self) -> bool:
        return all(bool(torch.isfinite(p).all()) for p in self.model.parameters())

    def _to_device(self, device: torch.device) -> None:
        self.device = device
        self.model.to(device)
        self._train = torch.from_numpy(np.ascontiguousarray(self.data.train)).to(device)
        self._valid = torch.from_numpy(np.ascontiguousarray(self.data.valid[: self.config.eval_size])).to(device)
        self._train_labels = self._valid_labels = None  # (class-conditional models only)
        if self.model.info.conditional:
            self._train_labels = torch.from_numpy(np.asarray(self.data.train_labels, np.int64)).to(device)
            self._valid_labels = torch.from_numpy(
                np.asarray(self.data.valid_labels[: self.config.eval_size], np.int64)).to(device)
        lr = float(self.model.hparams.get("lr", 1e-3))
        if self.model.optimizer is not None:
            lr = self.model.optimizer.param_groups[0]["lr"]
        self.model.configure_optimizer(lr)

    @torch.no_grad()
    def evaluate_valid(self) -> dict[str, float]:
        self.model.eval()
        out: dict[str, float] = {}
        if self.model.info.likelihood is not Likelihood.NONE and len(self._valid):
            out.update(_nll_metrics(self.model, self._valid, self.model.info.likelihood, prefix="valid_",
                                    labels=self._valid_labels))
        modes = self.data.meta.get("modes")
        if modes is not None and "sample" in self.model.capabilities():
            from core.data.toy import mode_coverage

            gen = torch.Generator(device=self.device).manual_seed(self.config.seed + 2)
            s = self.model.sample(self.config.coverage_samples, generator=gen).cpu().numpy()
            centres, std = modes
            cov = mode_coverage(s, np.asarray(centres, np.float32), float(std))
            out.update({k: float(v) for k, v in cov.items()})
        return out

    def _snapshot(self, loss: float, event: str, t0: float, steps_done: int, message: str | None = None,
                  arrays: dict | None = None) -> Snapshot:
        elapsed = time.perf_counter() - t0
        return Snapshot(
            step=self.step, total_steps=self.total_steps, epoch=self.step / self.steps_per_epoch,
            loss=loss, metrics=dict(self.metrics), arrays=arrays or {}, event=event, message=message,
            elapsed=elapsed, steps_per_s=steps_done / elapsed if elapsed > 0 else 0.0,
            step_ms=1000.0 * self._busy / steps_done if steps_done else 0.0,
            device=str(self.device), image_shape=self.data.image_shape, bounds=self.bounds,
        )

    def _visuals(self) -> dict[str, np.ndarray]:
        gen = torch.Generator(device=self.device).manual_seed(self.config.seed + 1)
        if self.points:
            return self.model.visuals(self.config.visuals_n, generator=gen, bounds=self.bounds,
                                      res=self.config.visuals_res)
        if self.model.info.conditional:  # classes 0, 1, ..., C-1, 0, ...: a grid C wide, a class a column
            n = self.config.visuals_n
            labels = torch.arange(n, device=self.device) % int(self.model.hparams["classes"])
            return self.model.visuals(n, generator=gen, labels=labels)
        return self.model.visuals(self.config.visuals_n, generator=gen)

    # -- the generator ---------------------------------------------------------------------------
    def run(self) -> Iterator[Snapshot]:
        cfg = self.config
        if cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)
        torch.manual_seed(cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        self._to_device(self.device)
        self._remember_good()
        t0 = time.perf_counter()
        if self.device_message:
            yield self._snapshot(math.nan, "device", t0, 0, self.device_message)
        last_visual = -math.inf
        order = rng.permutation(len(self._train))
        pos, loss, done = 0, math.nan, 0
        self._busy = 0.0
        while self.step < self.total_steps:
            if self._pending:
                with self._lock:
                    changes, self._pending = self._pending, {}
                self.model.hparams.update(changes)
                if "lr" in changes:
                    self.model.set_lr(changes["lr"])
            if pos >= len(order):
                order, pos = rng.permutation(len(self._train)), 0
            try:
                labels = self._train_labels
                if self.model.info.full_batch:
                    batch = self._train
                else:
                    idx = torch.from_numpy(order[pos:pos + self.batch_size]).to(self.device)
                    pos += self.batch_size
                    batch = self._train.index_select(0, idx)
                    if labels is not None:
                        labels = labels.index_select(0, idx)
                t_step = time.perf_counter()
                if labels is None:
                    out = self.model.train_step(batch.float())
                else:
                    out = self.model.train_step(batch.float(), labels=labels)
                self._busy += time.perf_counter() - t_step
            except NonFiniteError as exc:
                self._restore_good()
                yield self._snapshot(math.nan, "nonfinite", t0, done,
                                     f"training stopped at step {self.step + 1}: {exc}. "
                                     f"The last good weights were restored.")
                return
            except RuntimeError as exc:
                if self.device.type != "cuda" or not _is_cuda_failure(exc):
                    raise
                self._restore_good()
                self._to_device(torch.device("cpu"))
                yield self._snapshot(loss, "device", t0, done, f"CUDA failed ({exc}): continuing on the CPU")
                continue
            self.step += 1
            done += 1
            loss = float(out["loss"])
            self.metrics.update({k: float(v) for k, v in out.items() if k != "loss"})
            event = "step"
            if self.step == self.total_steps or (cfg.eval_every and self.step % cfg.eval_every == 0):
                if not self._weights_finite():
                    self._restore_good()
                    yield self._snapshot(math.nan, "nonfinite", t0, done,
                                         f"the weights became NaN or infinite by step {self.step}; "
                                         f"the last good weights were restored.")
                    return
                self._remember_good()
                self.metrics.update(self.evaluate_valid())
                event = "eval"
            arrays = None
            now = time.perf_counter()
            if cfg.visuals_every_s is not None and (now - last_visual >= cfg.visuals_every_s
                                                    or self.step == self.total_steps):
                arrays = self._visuals()
                # a slow sampler (PixelCNN: a pass per pixel) must not starve training: the
                # views get at most ~10 % of the time (0 s asks for visuals at every step)
                cost = time.perf_counter() - now if cfg.visuals_every_s > 0 else 0.0
                last_visual = now + max(0.0, 9 * cost - cfg.visuals_every_s)
            if cfg.checkpoint_path and (self.step == self.total_steps
                                        or (cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0)):
                self.save(cfg.checkpoint_path)
            for path in self._pending_saves():
                try:
                    yield self._snapshot(loss, "saved", t0, done, f"saved {self.save(path)}")
                except (OSError, CheckpointError) as exc:
                    yield self._snapshot(loss, "error", t0, done, f"could not save {path}: {exc}")
            if self.step == self.total_steps:
                event = "finished"
            yield self._snapshot(loss, event, t0, done, arrays=arrays)

    def save(self, path: str | os.PathLike, extra: dict | None = None) -> Path:
        return save_checkpoint(path, self.model, data=self.data, step=self.step,
                               epoch=self.step / self.steps_per_epoch, metrics=self.metrics, extra=extra)


# --------------------------------------------------------------------------------------------
# consumers: pause / resume / step / stop, and throttling to a frame rate
# --------------------------------------------------------------------------------------------


class RunControl:
    """Thread-safe switch a consumer of a trainer waits on before pulling the next snapshot."""

    def __init__(self, paused: bool = False):
        self._cond = threading.Condition()
        self._paused = paused
        self._stopped = False
        self._grants = 0
        self._interval = 0.0  # seconds between steps, 0: as fast as possible
        self._next = 0.0

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def stopped(self) -> bool:
        return self._stopped

    def pause(self) -> None:
        with self._cond:
            self._paused = True
            self._cond.notify_all()

    def resume(self) -> None:
        with self._cond:
            self._paused = False
            self._cond.notify_all()

    def step(self, n: int = 1) -> None:
        """While paused, let ``n`` more steps through."""
        with self._cond:
            self._paused = True
            self._grants += n
            self._cond.notify_all()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    def set_speed(self, steps_per_s: float | None) -> None:
        """Limit the pace (a teaching aid: watch each step); ``None`` or 0: full speed."""
        with self._cond:
            self._interval = 1.0 / steps_per_s if steps_per_s else 0.0
            self._cond.notify_all()

    def wait(self, timeout: float | None = None) -> bool:
        """Block while paused with no step granted; ``False`` once stopped (or on timeout)."""
        if not (self._paused or self._stopped or self._interval):  # fast path, once per step
            return True
        if self._interval and not self._paused:
            with self._cond:  # pace: sleep until the next step is due, waking for stop/pause
                delay = self._next - time.perf_counter()
                if delay > 0:
                    self._cond.wait_for(lambda: self._stopped or self._paused or not self._interval, delay)
                self._next = max(self._next, time.perf_counter() - self._interval) + self._interval
        with self._cond:
            ok = self._cond.wait_for(lambda: self._stopped or not self._paused or self._grants > 0, timeout)
            if not ok or self._stopped:
                return False
            if self._paused:
                self._grants -= 1
            return True


@dataclass
class Frame:
    """What a throttled consumer hands to a view: the latest snapshot, the (step, loss) points
    since the previous frame, and the newest arrays and eval metrics seen in between."""

    snapshot: Snapshot
    curve: np.ndarray  # (k, 2) float64: step, loss
    arrays: dict[str, np.ndarray]
    steps: int  # snapshots folded into this frame
    index: int = 0  # which run, when several train side by side (round_robin)


_URGENT = {"eval", "finished", "nonfinite", "device", "saved", "error"}


def throttled(snapshots: Iterator[Snapshot], control: RunControl | None = None, fps: float = 30.0,
              clock: Callable[[], float] = time.perf_counter) -> Iterator[Frame]:
    """Pull from ``snapshots`` as fast as training goes; yield at most ``fps`` frames a second
    (plus one for every eval, message and the end) and obey ``control``. Closes ``snapshots``."""
    control = control or RunControl()
    interval = 1.0 / fps
    curve: list[tuple[float, float]] = []
    arrays: dict[str, np.ndarray] = {}
    last_emit = -math.inf
    pending: Snapshot | None = None
    count = 0
    try:
        while control.wait():
            try:
                snap = next(snapshots)
            except StopIteration:
                break
            pending, count = snap, count + 1
            if snap.event in ("step", "eval", "finished") and math.isfinite(snap.loss):
                curve.append((snap.step, snap.loss))
            if snap.arrays:
                arrays = snap.arrays
            now = clock()
            if snap.event in _URGENT or control.paused or now - last_emit >= interval:
                yield Frame(snap, np.asarray(curve, np.float64).reshape(-1, 2), arrays, count)
                curve, arrays, pending, count, last_emit = [], {}, None, 0, now
        if pending is not None:
            yield Frame(pending, np.asarray(curve, np.float64).reshape(-1, 2), arrays, count)
    finally:
        snapshots.close()


def round_robin(frames: list[Iterator[Frame]]) -> Iterator[Frame]:
    """Interleave several throttled runs on one thread (models trained side by side): each
    yields its next frame in turn, tagged with its ``index``; a finished run drops out, and a
    run that raises ends with an ``error`` frame carrying the message, without stopping the
    others (one model refusing the data must not end the comparison)."""
    live = dict(enumerate(frames))
    try:
        while live:
            for i in list(live):
                try:
                    frame = next(live[i])
                except StopIteration:
                    del live[i]
                    continue
                except Exception as exc:
                    del live[i]
                    snap = Snapshot(step=0, total_steps=0, epoch=0.0, loss=math.nan, event="error",
                                    message=f"{type(exc).__name__}: {exc}")
                    yield Frame(snap, np.zeros((0, 2)), {}, 0, index=i)
                    continue
                frame.index = i
                yield frame
    finally:
        for it in live.values():
            it.close()


# --------------------------------------------------------------------------------------------
# evaluation
# --------------------------------------------------------------------------------------------


def _check_labelled(model: GenerativeModel, data: Dataset) -> None:
    """A class-conditional model trains only on a data set with one label per example."""
    if data.train_labels is None or data.valid_labels is None:
        from core.data import DATASETS

        labelled = sorted(name for name, d in DATASETS.items() if d.labelled and d.kind in model.info.data_kinds)
        raise ValueError(f"{model.info.name} is class-conditional and needs labelled data, but the data set "
                         f"{data.name} has no labels; use one that has: {', '.join(labelled) or '(none)'}")
    for split, x, y in (("train", data.train, data.train_labels), ("valid", data.valid, data.valid_labels)):
        if len(y) != len(x):
            raise ValueError(f"data set {data.name}: {len(x)} {split} examples but {len(y)} labels")
        classes = model.hparams.get("classes")
        if classes is not None and len(y) and not 0 <= int(np.min(y)) <= int(np.max(y)) < int(classes):
            raise ValueError(f"data set {data.name} has {split} labels {int(np.min(y))} .. {int(np.max(y))}; "
                             f"the {model.info.name} has classes 0 .. {int(classes) - 1} (set its 'classes')")


def _nll_metrics(model: GenerativeModel, x: torch.Tensor, kind: Likelihood, prefix: str = "",
                 batch_size: int = 1000, labels: torch.Tensor | None = None) -> dict[str, float]:
    total, n = 0.0, 0
    for i in range(0, len(x), batch_size):
        if labels is None:
            lp = model.log_prob(x[i:i + batch_size].float())
        else:
            lp = model.log_prob(x[i:i + batch_size].float(), labels=labels[i:i + batch_size])
        total += float(lp.double().sum())
        n += len(lp)
    nll = -total / n
    if not math.isfinite(nll):
        raise NonFiniteError(f"the model's log-likelihood is {nll}")
    bpd = nll / (model.dim * math.log(2))
    if kind is Likelihood.EXACT:
        return {f"{prefix}nll": nll, f"{prefix}bpd": bpd}
    return {f"{prefix}nll_bound": nll, f"{prefix}bpd_bound": bpd}


@torch.no_grad()
def evaluate(model: GenerativeModel, x: np.ndarray, batch_size: int = 1000,
             labels: np.ndarray | None = None) -> dict[str, Any]:
    """Score ``x`` (N, *data_shape): ``nll_nats`` and ``bits_per_dim`` for exact models,
    ``nll_bound_nats`` / ``bits_per_dim_bound`` (an upper bound on the NLL) for bound models.
    Class-conditional models score ``-log p(x | labels)`` given ``labels`` (N,), and report
    whether they had them (``"labels"``); other models take no labels."""
    kind = model.info.likelihood
    if kind is Likelihood.NONE:
        raise ValueError(f"{model.info.name} has no likelihood to evaluate")
    if tuple(x.shape[1:]) != model.data_shape:
        raise ValueError(f"the data have shape {x.shape}, the model expects (N, "
                         f"{', '.join(map(str, model.data_shape))})")
    if len(x) == 0:
        raise ValueError("the data are empty")
    if labels is not None:
        if not model.info.conditional:
            raise ValueError(f"{model.info.name} is not class-conditional: it takes no labels")
        labels = np.asarray(labels)
        if labels.shape != (len(x),) or labels.dtype.kind not in "iu":
            raise ValueError(f"expected {len(x)} integer labels, one per example, got {labels.dtype} "
                             f"of shape {labels.shape}")
        labels = torch.from_numpy(labels.astype(np.int64)).to(model.device)
    model.eval()
    t = torch.from_numpy(np.ascontiguousarray(x)).to(model.device)
    m = _nll_metrics(model, t, kind, batch_size=batch_size, labels=labels)
    if kind is Likelihood.EXACT:
        out = {"nll_nats": m["nll"], "bits_per_dim": m["bpd"]}
    else:
        out = {"nll_bound_nats": m["nll_bound"], "bits_per_dim_bound": m["bpd_bound"]}
    out.update({"likelihood": kind.value, "n": int(len(x)), "family": model.info.key})
    if model.info.conditional:
        out["labels"] = labels is not None
    return out


# --------------------------------------------------------------------------------------------
# checkpoints
# --------------------------------------------------------------------------------------------

FORMAT = "genmodel-sandbox/checkpoint"
FORMAT_VERSION = 1
_META_KEY = "genmodel_sandbox"


class CheckpointError(ValueError):
    """A checkpoint is missing, damaged, foreign or does not fit; nothing was changed."""


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def sidecar_path(path: str | os.PathLike) -> Path:
    return Path(path).with_suffix(".json")


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return value


def checkpoint_payload(model: GenerativeModel, *, data: Dataset | None = None, step: int = 0,
                       epoch: float = 0.0, metrics: dict | None = None,
                       extra: dict | None = None) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Copy the weights (on the CPU) and describe them; cheap, so the caller can take it between
    two training steps and write it elsewhere with :func:`write_checkpoint`."""
    tensors = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "family": model.info.key,
        "hparams": model.hparams,
        "data_shape": list(model.data_shape),
        "data": None if data is None else {"name": data.name, "kind": data.kind.value,
                                           "image_shape": data.image_shape, "n_train": len(data.train)},
        "step": int(step),
        "epoch": float(epoch),
        "metrics": metrics or {},
        "app_version": core.__version__,
        "torch_version": torch.__version__,
        "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **(extra or {}),
    }
    return tensors, _jsonable(meta)


def write_checkpoint(path: str | os.PathLike, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path:
    """Write ``path`` (.safetensors) and its ``.json`` sidecar, each atomically."""
    from safetensors.torch import save

    path = Path(path)
    if path.suffix != ".safetensors":
        raise CheckpointError(f"checkpoint files end in .safetensors, not {path.suffix or '(nothing)'}: {path}")
    blob = save(tensors, metadata={_META_KEY: json.dumps(meta)})
    _atomic_write(path, blob)
    side = dict(meta, tensors_sha256=hashlib.sha256(blob).hexdigest(), tensors_file=path.name)
    _atomic_write(sidecar_path(path), (json.dumps(side, indent=2) + "\n").encode())
    return path


def save_checkpoint(path: str | os.PathLike, model: GenerativeModel, **describe: Any) -> Path:
    """Save ``model`` to ``path``; ``describe`` as for :func:`checkpoint_payload`."""
    return write_checkpoint(path, *checkpoint_payload(model, **describe))


def read_checkpoint_meta(path: str | os.PathLike) -> dict[str, Any]:
    """Read and check a checkpoint's header without loading tensors; raise CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        (n,) = struct.unpack("<Q", head) if len(head) == 8 else (0,)
        first = f.read(1) if 0 < n <= size - 8 else b""
        if first != b"{":  # not a safetensors header: say what it is instead
            if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
                raise CheckpointError(f"{path} is a Python pickle, not a safetensors file. It was not "
                                      f"opened: unpickling a file can run arbitrary code.")
            if head[:4] == b"PK\x03\x04":
                raise CheckpointError(f"{path} is a zip archive (torch.save format?), not a safetensors "
                                      f"file. It was not opened: unpickling a file can run arbitrary code.")
            if len(head) < 8:
                raise CheckpointError(f"{path} is too short to be a checkpoint ({size} bytes)")
            raise CheckpointError(f"{path} is not a safetensors checkpoint, or it is truncated "
                                  f"(header says {n} bytes, the file has {size})")
        try:
            header = json.loads(first + f.read(n - 1))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"{path} is not a safetensors checkpoint, or it is truncated "
                                  f"(unreadable header: {exc})") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path} is not a safetensors checkpoint (bad header)")
    ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__" and isinstance(v, dict)
            and "data_offsets" in v]
    if ends and 8 + n + max(ends) > size:
        raise CheckpointError(f"{path} is truncated: {size} bytes, its header needs {8 + n + max(ends)}")
    raw = (header.get("__metadata__") or {}).get(_META_KEY)
    if raw is None:
        raise CheckpointError(f"{path} is a safetensors file but not a checkpoint of this app "
                              f"(no {_META_KEY!r} metadata): it may belong to another program")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError:
        raise CheckpointError(f"{path}: its metadata are damaged") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: unknown checkpoint format {meta.get('format')!r}")
    if int(meta.get("format_version", 0)) > FORMAT_VERSION:
        raise CheckpointError(f"{path} was written by a newer version of the app "
                              f"(format {meta.get('format_version')}); please update")
    return meta


def load_checkpoint(path: str | os.PathLike, *, family: str | None = None,
                    device: str | torch.device = "cpu") -> tuple[GenerativeModel, dict[str, Any]]:
    """Build the model a checkpoint describes and load its weights. ``family`` (optional) is
    the family the caller expects. Raises :class:`CheckpointError` with the reason."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    meta = read_checkpoint_meta(path)
    if family is not None and meta.get("family") != family:
        raise CheckpointError(f"{path} holds a {meta.get('family')!r} model, not {family!r}")
    try:
        model = registry.create(meta["family"], meta["data_shape"], **meta.get("hparams", {}))
    except (KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{path} describes a model this app cannot build: {exc}") from None
    try:
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path} is damaged or truncated: {exc}") from None
    own = model.state_dict()
    missing, unexpected = sorted(set(own) - set(tensors)), sorted(set(tensors) - set(own))
    wrong = sorted(k for k in set(own) & set(tensors)
                   if own[k].shape != tensors[k].shape and k not in model.resizable_buffers)
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {missing}")
        if unexpected:
            parts.append(f"unexpected {unexpected}")
        if wrong:
            parts.append("wrong shapes " + ", ".join(
                f"{k}: {tuple(tensors[k].shape)} vs {tuple(own[k].shape)}" for k in wrong))
        raise CheckpointError(f"{path} does not fit a {meta['family']} model: " + "; ".join(parts))
    bad = sorted(k for k, v in tensors.items() if v.is_floating_point() and not torch.isfinite(v).all())
    if bad:
        raise CheckpointError(f"{path} holds NaN or infinite weights in {bad}")
    model.load_state_dict(tensors)
    model.to(device)
    meta = copy.deepcopy(meta)
    meta["path"] = str(path)
    side = sidecar_path(path)
    if side.is_file():
        try:
            sidemeta = json.loads(side.read_text())
            if sidemeta.get("tensors_sha256") != hashlib.sha256(path.read_bytes()).hexdigest():
                meta.setdefault("warnings", []).append(f"{side.name} describes another version of the weights")
        except (OSError, json.JSONDecodeError, AttributeError):
            meta.setdefault("warnings", []).append(f"{side.name} is unreadable; the checkpoint's own metadata were used")
    return model, meta
