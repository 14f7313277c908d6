"""Runs a core trainer on a QThread and hands throttled frames to the GUI thread.

Signals emitted in the worker thread are connected only to ``@Slot`` methods of
:class:`TrainingSession`, a QObject that lives in the GUI thread, so Qt queues them (a lambda or
plain function receiver would run in the worker thread and can deadlock a shown window).
"""

from __future__ import annotations

import threading
import traceback

import torch
from PySide6.QtCore import QObject, QThread, Signal, Slot

from core.control import Frame, RunControl, round_robin, throttled
from core.policy import PolicyRun, TrainingPolicy
from core.protocol import Abandoned, abandon
from core.training import Trainer

#: torch threads for training: one, so the GUI thread keeps a core on a 2-core machine.
TRAIN_THREADS = 1


class _Worker(QObject):
    frame = Signal(object)
    failed = Signal(str, str)
    done = Signal()

    def __init__(self, runs: list[PolicyRun], control: RunControl, fps: float):
        super().__init__()
        self.runs, self.control, self.fps = runs, control, fps
        self.abandon = threading.Event()  # set by TrainingSession.stop: a step's slow visuals end early

    @Slot()
    def run(self) -> None:
        torch.set_num_threads(TRAIN_THREADS)
        abandon.set(self.abandon)  # (this thread's context)
        try:
            runs = [throttled(r.run(), self.control, self.fps) for r in self.runs]
            for frame in (runs[0] if len(runs) == 1 else round_robin(runs)):
                self.frame.emit(frame)
        except Abandoned:  # stopped (the window closes) inside a long pass: not a failure
            pass
        except Exception as exc:  # shown to the user; the trainer's weights are left as they were
            self.failed.emit(f"{type(exc).__name__}: {exc}", traceback.format_exc())
        finally:
            self.done.emit()
            # end the thread's event loop as soon as run() returns (exec() then exits at once),
            # so that stop() can wait on the thread without the GUI thread's help
            QThread.currentThread().quit()


def policy_run(trainer: Trainer, policy: TrainingPolicy | None = None) -> PolicyRun:
    """``policy`` (by default none: the model's own rate, no early stopping) applied to
    ``trainer`` from the step it starts at, with its model's learning rate as the base."""
    model = trainer.model
    return PolicyRun(trainer, policy or TrainingPolicy(), float(model.hparams.get("lr", 1e-3)), start=trainer.step)


class TrainingSession(QObject):
    """One training run (or several side by side, interleaved on the one worker thread): owns
    the thread, the worker and the pause/step/stop control.

    Re-emits everything in the GUI thread: ``frame(Frame)`` (``frame.index`` says which
    trainer), ``failed(message, details)`` and ``finished()`` (always last, after the thread
    has ended).
    """

    frame = Signal(object)
    failed = Signal(str, str)
    finished = Signal()

    def __init__(self, trainer: Trainer | list[Trainer], fps: float = 30.0, parent: QObject | None = None,
                 policy: TrainingPolicy | list[TrainingPolicy] | None = None):
        super().__init__(parent)
        self.trainers = list(trainer) if isinstance(trainer, (list, tuple)) else [trainer]
        self.trainer = self.trainers[0]
        policies = list(policy) if isinstance(policy, (list, tuple)) else [policy] * len(self.trainers)
        if len(policies) != len(self.trainers):
            raise ValueError(f"{len(policies)} training policies for {len(self.trainers)} trainers")
        # the training policy, per trainer (one for all, or one each)
        self.runs = [policy_run(t, p) for t, p in zip(self.trainers, policies)]
        self.control = RunControl()
        self.frames_received = 0
        self.last_frame: Frame | None = None
        self.last_frames: dict[int, Frame] = {}
        self._thread = QThread()
        self._thread.setObjectName("training")
        self._worker = _Worker(self.runs, self.control, fps)
        self._worker.moveToThread(self._thread)
        self._thread.started.connect(self._worker.run)
        self._worker.frame.connect(self._on_frame)
        self._worker.failed.connect(self._on_failed)
        self._worker.done.connect(self._on_done)
        self._running = False

    # -- control (GUI thread) --------------------------------------------------------------------
    def start(self) -> None:
        self._running = True
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._running

    @property
    def paused(self) -> bool:
        return self.control.paused

    def pause(self) -> None:
        self.control.pause()

    def resume(self) -> None:
        self.control.resume()

    def step(self) -> None:
        """One step of every model still training."""
        self.control.step(len(self.trainers))

    def set_speed(self, steps_per_s: float | None) -> None:
        self.control.set_speed(steps_per_s)

    def set_hparams(self, values: dict, index: int | None = None) -> None:
        """Live hyperparameter changes for every trainer (or the one at ``index``). A new
        learning rate is the base rate of the schedule, where one runs."""
        for run in self.runs if index is None else [self.runs[index]]:
            rest = dict(values)
            if "lr" in rest and run.scheduled:
                run.set_base_lr(rest.pop("lr"))  # the schedule scales to it from the next step
            if rest:
                run.trainer.set_hparams(rest)
            if "lr" in rest:
                run.set_base_lr(rest["lr"])

    @property
    def stop_reason(self) -> str | None:
        """Why the policy ended a run early (early stopping), if it did."""
        return next((r.stop_reason for r in self.runs if r.stop_reason), None)

    def request_stop(self) -> None:
        """Ask the worker to stop at its next yield, and a long pass in its step (a slow
        sampler's pixels, an ensemble's masks) to end at its next check; returns at once."""
        self.control.stop()
        self._worker.abandon.set()

    def stop(self, wait_ms: int | None = 2000) -> bool:
        """Ask the worker to stop at its next yield; wait up to ``wait_ms`` (None: until it
        has ended). True if it ended."""
        self.request_stop()
        if not self._thread.isRunning():
            return True
        return self._thread.wait() if wait_ms is None else self._thread.wait(wait_ms)

    # -- from the worker (queued into the GUI thread) ----------------------------------------
    @Slot(object)
    def _on_frame(self, frame: Frame) -> None:
        self.frames_received += 1
        self.last_frame = frame
        self.last_frames[frame.index] = frame
        self.frame.emit(frame)

    @Slot(str, str)
    def _on_failed(self, message: str, details: str) -> None:
        self.failed.emit(message, details)

    @Slot()
    def _on_done(self) -> None:
        self._thread.quit()
        self._thread.wait()
        self._running = False
        self.finished.emit()
