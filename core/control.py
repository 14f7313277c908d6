"""Consumers of a trainer: :class:`RunControl`, the thread-safe pause / resume / single step /
stop switch a consumer on another thread waits on, and :func:`throttled` /
:func:`round_robin`, which pace snapshots into :class:`Frame` s for a view."""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

from core.training import CURVE, URGENT, Event, Snapshot, Visuals


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
    arrays: Visuals
    steps: int  # snapshots folded into this frame
    index: int = 0  # which run, when several train side by side (round_robin)


def throttled(snapshots: Iterator[Snapshot], control: RunControl | None = None, fps: float = 30.0,
              clock: Callable[[], float] = time.perf_counter) -> Iterator[Frame]:
    """Pull from ``snapshots`` as fast as training goes; yield at most ``fps`` frames a second
    (plus one for every eval, message and the end) and obey ``control``. Closes ``snapshots``."""
    control = control or RunControl()
    interval = 1.0 / fps
    curve: list[tuple[float, float]] = []
    arrays = Visuals()
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
            if snap.event in CURVE and math.isfinite(snap.loss):
                curve.append((snap.step, snap.loss))
            if snap.arrays:
                arrays = snap.arrays
            now = clock()
            if snap.event in URGENT or control.paused or now - last_emit >= interval:
                yield Frame(snap, np.asarray(curve, np.float64).reshape(-1, 2), arrays, count)
                curve, arrays, pending, count, last_emit = [], Visuals(), None, 0, now
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
                    snap = Snapshot(step=0, total_steps=0, epoch=0.0, loss=math.nan, event=Event.ERROR,
                                    message=f"{type(exc).__name__}: {exc}")
                    yield Frame(snap, np.zeros((0, 2)), Visuals(), 0, index=i)
                    continue
                frame.index = i
                yield frame
    finally:
        for it in live.values():
            it.close()


class StepRate:
    """Steps per second over the last ``window_s`` seconds of a run, and the time left: what
    the Training tab shows beside its progress bar. Call :meth:`reset` when the run pauses or
    resumes (a pause is not slowness), :meth:`add` with each frame's step and clock."""

    def __init__(self, window_s: float = 10.0, min_span_s: float = 0.5):
        if window_s <= 0 or min_span_s < 0:
            raise ValueError(f"window_s must be > 0 and min_span_s >= 0, got {window_s}, {min_span_s}")
        self.window_s, self.min_span_s = float(window_s), float(min_span_s)
        self._points: list[tuple[float, int]] = []

    def reset(self) -> None:
        self._points = []

    def add(self, step: int, now: float) -> None:
        if self._points and step < self._points[-1][1]:
            self.reset()  # another run
        self._points.append((float(now), int(step)))
        while len(self._points) > 2 and now - self._points[1][0] >= self.window_s:
            self._points.pop(0)

    @property
    def rate(self) -> float | None:
        """Steps per second, or None before ``min_span_s`` of a run has been seen."""
        if len(self._points) < 2:
            return None
        (t0, s0), (t1, s1) = self._points[0], self._points[-1]
        if t1 - t0 < self.min_span_s or s1 <= s0:
            return None
        return (s1 - s0) / (t1 - t0)

    def seconds_left(self, total: int) -> float | None:
        rate = self.rate
        if rate is None or not self._points:
            return None
        return max(0, int(total) - self._points[-1][1]) / rate


def duration_text(seconds: float) -> str:
    """A rough duration for people: "8 s", "1 min 20 s", "2 h 5 min"."""
    s = int(round(max(0.0, seconds)))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"
