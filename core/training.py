"""The trainer: :class:`Trainer` turns a model and a data set into a generator of
:class:`Snapshot` s, one per step. Whoever pulls from it decides the pace: the GUI worker
(through :func:`core.control.throttled`) and the CLI iterate it, pause by not pulling, and stop
by closing it at the next yield.

Who owns the model: while a run is in progress (between a ``next()`` on :meth:`Trainer.run`
and the snapshot it answers with) the model belongs to the thread that trains it. Any other
thread reads it only through :meth:`Trainer.between_steps` (:meth:`Trainer.request_copy`,
:meth:`Trainer.request_payload`), which runs the read between two steps.
"""

from __future__ import annotations

import enum
import math
import os
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

import numpy as np
import torch

from core.checkpoint import CheckpointError, checkpoint_payload, save_checkpoint
from core.data import Dataset
from core.device import is_cuda_failure, select_device
from core.evaluation import NLL, check_labelled, nll_of
from core.protocol import Abandoned, DataKind, GenerativeModel, Likelihood, NonFiniteError, Visuals

__all__ = ["Event", "Snapshot", "TrainConfig", "Trainer", "Visuals", "clone_model"]

T = TypeVar("T")


class Event(str, enum.Enum):
    """What a :class:`Snapshot` reports (a ``str``: ``Event.EVAL == "eval"``)."""

    STEP = "step"  # a training step
    EVAL = "eval"  # a step followed by a held-out evaluation
    FINISHED = "finished"  # the last step (evaluated)
    NONFINITE = "nonfinite"  # the loss or weights became NaN: the last good weights were restored; the run ends
    DEVICE = "device"  # a device change (``message`` says why)
    SAVED = "saved"  # a requested checkpoint was written (``message``: where)
    ERROR = "error"  # something failed (``message``)

    def __str__(self) -> str:
        return self.value


#: events a consumer shows at once, whatever its frame rate (tuples: a plain string compares equal)
URGENT = (Event.EVAL, Event.FINISHED, Event.NONFINITE, Event.DEVICE, Event.SAVED, Event.ERROR)
#: events whose loss belongs on the training curve
CURVE = (Event.STEP, Event.EVAL, Event.FINISHED)
#: events after which the held-out NLL is new
EVALUATED = (Event.EVAL, Event.FINISHED)


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
    ``visuals_every_s``; ``nll`` is the latest held-out NLL (None before the first evaluation);
    ``metrics`` the model's own (a GAN's losses, mode coverage, ...)."""

    step: int
    total_steps: int
    epoch: float
    loss: float
    metrics: dict[str, float] = field(default_factory=dict)
    arrays: Visuals = field(default_factory=Visuals)
    event: Event = Event.STEP
    message: str | None = None
    elapsed: float = 0.0
    steps_per_s: float = 0.0
    device: str = "cpu"
    image_shape: tuple[int, int] | None = None
    bounds: tuple[tuple[float, float], ...] | None = None  # view bounds, for point data
    step_ms: float = 0.0  # mean wall time of this run's own training steps (not its waits)
    nll: NLL | None = None


def _bounds(data: Dataset) -> tuple[tuple[float, float], ...]:
    """View bounds for point data: the data set's own, else the padded 0.5-99.5 % range."""
    if data.meta.get("bounds") is not None:
        return tuple((float(lo), float(hi)) for lo, hi in data.meta["bounds"])
    x = np.asarray(data.train, np.float64).reshape(len(data.train), -1)
    lo, hi = np.percentile(x, 0.5, axis=0), np.percentile(x, 99.5, axis=0)
    pad = 0.1 * np.maximum(hi - lo, 1e-3)
    return tuple((float(a - p), float(b + p)) for a, b, p in zip(lo, hi, pad))


def clone_model(model: GenerativeModel) -> GenerativeModel:
    """A copy of ``model`` with its current weights, on the CPU, in eval mode, decoupled from
    the original. Call it where nothing steps ``model`` (see :meth:`Trainer.request_copy`)."""
    clone = type(model)(model.data_shape, dict(model.hparams))
    clone.load_state_dict({k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()})
    return clone.eval()


def _settle(future: Future, fn: Callable[[], Any]) -> None:
    if not future.set_running_or_notify_cancel():
        return
    try:
        future.set_result(fn())
    except Exception as exc:
        future.set_exception(exc)


class Trainer:
    """Trains ``model`` on ``data``. Iterate :meth:`run` (a generator) to make progress."""

    def __init__(self, model: GenerativeModel, data: Dataset, config: TrainConfig | None = None,
                 *, start_step: int = 0):
        if data.shape != model.data_shape:
            raise ValueError(f"data set {data.name} has shape {data.shape}, the model expects {model.data_shape}")
        if len(data.train) == 0:
            raise ValueError(f"data set {data.name} has no training examples")
        if model.info.conditional:
            check_labelled(model, data)
        self.model = model
        self.data = data
        self.config = config or TrainConfig()
        self.step = start_step
        self.metrics: dict[str, float] = {}
        self.nll: NLL | None = None  # the latest held-out NLL
        self._pending: dict[str, Any] = {}  # live hyperparameter changes, applied between steps
        self._lock = threading.Lock()
        self.device, self.device_message = select_device(self.config.device)
        self._last_good: dict[str, torch.Tensor] | None = None
        self._save_requests: list[Path] = []
        self.points = data.kind in (DataKind.POINTS_1D, DataKind.POINTS_2D)
        self.bounds = _bounds(data) if self.points else None
        # who owns the model: the training thread while ``_stepping``; readers while ``_readers``
        self._owner = threading.Condition()
        self._stepping = False
        self._readers = 0
        self._reads: list[tuple[Callable[[], Any], Future]] = []

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

    # -- reading the model from other threads ----------------------------------------------------
    def between_steps(self, fn: Callable[[], T]) -> "Future[T]":
        """Run ``fn`` (which may read, not change, the model) between two training steps, from
        any thread; returns a future of its result. When no step is in progress (no run, or a
        run waiting at a yield) ``fn`` runs at once on the calling thread, and the next step
        waits for it; otherwise the training thread runs it as soon as its step ends."""
        future: Future = Future()
        with self._owner:
            if self._stepping:
                self._reads.append((fn, future))
                return future
            self._readers += 1
        try:
            _settle(future, fn)
        finally:
            with self._owner:
                self._readers -= 1
                self._owner.notify_all()
        return future

    def request_copy(self) -> "Future[GenerativeModel]":
        """A copy of the model (CPU, eval mode) made between two steps: see :meth:`between_steps`."""
        return self.between_steps(lambda: clone_model(self.model))

    def request_payload(self) -> "Future[tuple[dict[str, torch.Tensor], dict[str, Any]]]":
        """The weights and description of a checkpoint, taken between two steps; write them
        anywhere with :func:`core.checkpoint.write_checkpoint`."""
        return self.between_steps(self.payload)

    def _own(self) -> None:
        """The training thread takes the model (waiting for readers in progress)."""
        with self._owner:
            self._owner.wait_for(lambda: self._readers == 0)
            self._stepping = True

    def _hand_back(self) -> None:
        """The training thread serves the reads asked for during its step, then lets go."""
        while True:
            with self._owner:
                reads, self._reads = self._reads, []
                if not reads:
                    self._stepping = False
                    return
            for fn, future in reads:
                _settle(future, fn)

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
    def evaluate_valid(self) -> NLL | None:
        """Score the held-out examples: sets :attr:`nll` (and returns it) and, for data with
        modes, the mode-coverage metrics."""
        self.model.eval()
        if self.model.info.likelihood is not Likelihood.NONE and len(self._valid):
            self.nll = nll_of(self.model, self._valid, labels=self._valid_labels)
        modes = self.data.meta.get("modes")
        if modes is not None and "sample" in self.model.capabilities():
            from core.data.toy import mode_coverage, quality_min_count

            gen = torch.Generator(device=self.device).manual_seed(self.config.seed + 2)
            s = self.model.sample(self.config.coverage_samples, generator=gen).cpu().numpy()
            centres, std = np.asarray(modes[0], np.float32), float(modes[1])
            cov = mode_coverage(s, centres, std)  # PacGAN's count: any one high-quality sample
            self.metrics.update({k: float(v) for k, v in cov.items()})
            # the count the app shows: only modes with enough high-quality samples (a ring of
            # samples through the modes and the gaps between them does not cover them)
            gated = mode_coverage(s, centres, std, min_count=quality_min_count(len(s), len(centres)))
            self.metrics["modes_quality"] = float(gated["modes_covered"])
        return self.nll

    def checkpoint_metrics(self) -> dict[str, float]:
        """The metrics a checkpoint records: the model's own and the held-out NLL."""
        return {**self.metrics, **(self.nll.metrics() if self.nll is not None else {})}

    def _snapshot(self, loss: float, event: Event, message: str | None = None,
                  arrays: Visuals | None = None) -> Snapshot:
        elapsed = time.perf_counter() - self._t0
        done = self._done
        return Snapshot(
            step=self.step, total_steps=self.total_steps, epoch=self.step / self.steps_per_epoch,
            loss=loss, metrics=dict(self.metrics), arrays=arrays or Visuals(), event=event, message=message,
            elapsed=elapsed, steps_per_s=done / elapsed if elapsed > 0 else 0.0,
            step_ms=1000.0 * self._busy / done if done else 0.0,
            device=str(self.device), image_shape=self.data.image_shape, bounds=self.bounds, nll=self.nll,
        )

    def _visuals(self) -> Visuals:
        gen = torch.Generator(device=self.device).manual_seed(self.config.seed + 1)
        if self.points:
            return self.model.visuals(self.config.visuals_n, generator=gen, bounds=self.bounds,
                                      res=self.config.visuals_res)
        if self.model.info.conditional:  # classes 0, 1, ..., C-1, 0, ...: a grid C wide, a class a column
            n = self.config.visuals_n
            labels = torch.arange(n, device=self.device) % int(self.model.hparams["classes"])
            return self.model.visuals(n, generator=gen, labels=labels)
        return self.model.visuals(self.config.visuals_n, generator=gen)

    # -- one step, in parts ----------------------------------------------------------------------
    def _start(self) -> None:
        cfg = self.config
        if cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)
        torch.manual_seed(cfg.seed)
        self._rng = np.random.default_rng(cfg.seed)
        self._to_device(self.device)
        self._remember_good()
        self._t0 = time.perf_counter()
        self._done, self._busy, self._last_visual = 0, 0.0, -math.inf
        self._order, self._pos = self._rng.permutation(len(self._train)), 0

    def _apply_pending(self) -> None:
        if self._pending:
            with self._lock:
                changes, self._pending = self._pending, {}
            self.model.hparams.update(changes)
            if "lr" in changes:
                self.model.set_lr(changes["lr"])

    def _train_step(self) -> dict[str, float]:
        """Draw the next batch and take one optimizer step."""
        if self._pos >= len(self._order):
            self._order, self._pos = self._rng.permutation(len(self._train)), 0
        labels = self._train_labels
        if self.model.info.full_batch:
            batch = self._train
        else:
            idx = torch.from_numpy(self._order[self._pos:self._pos + self.batch_size]).to(self.device)
            self._pos += self.batch_size
            batch = self._train.index_select(0, idx)
            if labels is not None:
                labels = labels.index_select(0, idx)
        t_step = time.perf_counter()
        if labels is None:
            out = self.model.train_step(batch.float())
        else:
            out = self.model.train_step(batch.float(), labels=labels)
        self._busy += time.perf_counter() - t_step
        return out

    def _eval_due(self) -> bool:
        every = self.config.eval_every
        return self.step == self.total_steps or bool(every and self.step % every == 0)

    def _visuals_due(self) -> Visuals | None:
        every = self.config.visuals_every_s
        now = time.perf_counter()
        if every is None or (now - self._last_visual < every and self.step != self.total_steps):
            return None
        try:
            arrays = self._visuals()
        except Abandoned:  # the run is being stopped (the window closes): no pictures this step
            return None
        # a slow sampler (PixelCNN: a pass per pixel) must not starve training: the views get
        # at most ~10 % of the time (0 s asks for visuals at every step)
        cost = time.perf_counter() - now if every > 0 else 0.0
        self._last_visual = now + max(0.0, 9 * cost - every)
        return arrays

    def _saves(self, loss: float) -> Iterator[Snapshot]:
        """The periodic checkpoint, then the requested ones (a snapshot each)."""
        cfg = self.config
        if cfg.checkpoint_path and (self.step == self.total_steps
                                    or (cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0)):
            self.save(cfg.checkpoint_path)
        for path in self._pending_saves():
            try:
                yield self._snapshot(loss, Event.SAVED, f"saved {self.save(path)}")
            except (OSError, CheckpointError) as exc:
                yield self._snapshot(loss, Event.ERROR, f"could not save {path}: {exc}")

    # -- the generator ---------------------------------------------------------------------------
    def run(self) -> Iterator[Snapshot]:
        """Train, yielding a :class:`Snapshot` after each step. The model is this generator's
        from each ``next()`` to the snapshot it returns (see :meth:`between_steps`)."""
        steps = self._steps()
        try:
            while True:
                self._own()
                try:
                    snap = next(steps)
                except StopIteration:
                    return
                finally:
                    self._hand_back()
                yield snap
        finally:
            steps.close()

    def _steps(self) -> Iterator[Snapshot]:
        self._start()
        if self.device_message:
            yield self._snapshot(math.nan, Event.DEVICE, self.device_message)
        loss = math.nan
        while self.step < self.total_steps:
            self._apply_pending()
            try:
                out = self._train_step()
            except NonFiniteError as exc:
                self._restore_good()
                yield self._snapshot(math.nan, Event.NONFINITE, f"training stopped at step {self.step + 1}: "
                                     f"{exc}. The last good weights were restored.")
                return
            except RuntimeError as exc:
                if self.device.type != "cuda" or not is_cuda_failure(exc):
                    raise
                self._restore_good()
                self._to_device(torch.device("cpu"))
                yield self._snapshot(loss, Event.DEVICE, f"CUDA failed ({exc}): continuing on the CPU")
                continue
            self.step += 1
            self._done += 1
            loss = float(out["loss"])
            self.metrics.update({k: float(v) for k, v in out.items() if k != "loss"})
            event = Event.STEP
            if self._eval_due():
                if not self._weights_finite():
                    self._restore_good()
                    yield self._snapshot(math.nan, Event.NONFINITE, f"the weights became NaN or infinite by step "
                                         f"{self.step}; the last good weights were restored.")
                    return
                self._remember_good()
                self.evaluate_valid()
                event = Event.EVAL
            arrays = self._visuals_due()
            yield from self._saves(loss)
            yield self._snapshot(loss, Event.FINISHED if self.step == self.total_steps else event, arrays=arrays)

    def payload(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """A checkpoint of the model as it stands (call it between steps: :meth:`request_payload`)."""
        return checkpoint_payload(self.model, data=self.data, step=self.step, epoch=self.step / self.steps_per_epoch,
                                  metrics=self.checkpoint_metrics())

    def save(self, path: str | os.PathLike, extra: dict | None = None) -> Path:
        return save_checkpoint(path, self.model, data=self.data, step=self.step,
                               epoch=self.step / self.steps_per_epoch, metrics=self.checkpoint_metrics(), extra=extra)
