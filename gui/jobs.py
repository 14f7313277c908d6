"""Work off the GUI thread, one way for each kind of work.

- **Training** runs on the QThread worker of :mod:`gui.worker` (a long run with frames).
- **A job** (load, save, score, complete, sample, evaluate, ...): :meth:`Jobs.run` runs a blocking
  function in the qasync loop's executor, or awaits a ``concurrent.futures.Future`` that another
  thread settles (a copy of a training model the trainer makes between two steps), and *always
  returns an asyncio.Task*. While it runs the
  owner's busy indicator is on (when the job has a busy text); afterwards ``done(result)`` or
  ``failed(message)`` is called in the GUI thread, and a failure is also shown through the owner's
  error callback with the job's title. ``done`` may return an awaitable (a follow-up job): the task
  then ends when that one does. A caller that decides not to start a job (nothing to do, busy,
  refused) says why to the user and returns None itself: "no job" is never a task or a boolean.
  Without a running event loop :meth:`Jobs.run` raises RuntimeError.
- **An animation** (a generator of steps drawn while the user watches): :class:`PacedPuller`
  pulls items on a QTimer at a chosen rate, within a time budget per tick, with a catch-up cap:
  one pacing formula for every tab.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import inspect
import math
import threading
import time
from typing import Any, Callable, Iterator

from PySide6.QtCore import QObject, Qt, QTimer, Signal, Slot
from PySide6.QtWidgets import QProgressDialog, QWidget

from core.protocol import abandon

#: errors whose text is written for the user (as are those of core's own exception classes)
PLAIN_ERRORS = (ValueError, OSError)


async def in_thread(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run ``fn`` off the GUI thread and await its result (exceptions are re-raised here)."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, functools.partial(fn, *args, **kwargs))


def error_message(exc: BaseException) -> str:
    """What a failed job shows: ``str(exc)`` for a ValueError, an OSError or an error class of
    ``core`` (DataError, DownloadError, CheckpointError: their text is written for the user),
    else ``"Type: text"`` (a bug's message needs its type)."""
    plain = isinstance(exc, PLAIN_ERRORS) or type(exc).__module__.split(".")[0] == "core"
    return str(exc) if plain else f"{type(exc).__name__}: {exc}"


class Jobs:
    """The jobs of one window or panel. ``report_error(title, message)`` shows a failure;
    ``busy(on, text)`` (optional) shows that a job with a busy text runs. :meth:`close` cancels
    what still runs and silences the callbacks (the widget is going away)."""

    def __init__(self, report_error: Callable[[str, str], None],
                 busy: Callable[[bool, str], None] | None = None):
        self.report_error = report_error
        self.busy = busy
        self.tasks: set[asyncio.Task] = set()
        self.closed = False
        self._abandon = threading.Event()  # set on close: the jobs' sampling loops end early

    def run(self, fn: Callable[..., Any] | concurrent.futures.Future, *args: Any, done: Callable[[Any], Any] | None = None,
            failed: Callable[[str], None] | None = None, title: str = "Error",
            busy: str | None = None) -> asyncio.Task:
        """Run ``fn(*args)`` in the executor (or, for a Future ``fn``, await it); then
        ``done(result)`` here (its exception counts as the job's), or on an exception
        ``failed(message)`` and the error shown under ``title``. With ``busy`` the owner's busy
        indicator is on from now until ``fn`` returns."""
        loop = asyncio.get_running_loop()  # RuntimeError without one: there is no task to give
        if busy is not None and self.busy is not None:
            self.busy(True, busy)
        task = loop.create_task(self._job(fn, args, done, failed, title, busy is not None))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def _job(self, fn, args, done, failed, title, busy) -> None:
        try:
            try:
                if isinstance(fn, concurrent.futures.Future):
                    result = await asyncio.wrap_future(fn)
                else:
                    context = contextvars.copy_context()
                    context.run(abandon.set, self._abandon)
                    result = await in_thread(context.run, fn, *args)
            finally:
                if busy and self.busy is not None and not self.closed:
                    self.busy(False, "")
            if self.closed:
                return
            follow = done(result) if done is not None else None
            if inspect.isawaitable(follow):
                await follow
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure is shown, none is lost
            if self.closed:
                return
            message = error_message(exc)
            if failed is not None:
                failed(message)
            self.report_error(title, message)

    def when_done(self, future: concurrent.futures.Future, then: Callable[[], Any], title: str = "Error") -> None:
        """``then()`` once ``future`` is settled (result or exception: ``then`` reads it): now when
        it already is (a copy made at once), else through a job that awaits it (a copy the worker
        makes when its step ends)."""
        if future.done():
            then()
        else:
            self.run(future, done=lambda _result: then(), failed=lambda _message: then(), title=title)

    def close(self) -> None:
        """Cancel the running jobs; their callbacks are no longer called."""
        self.closed = True
        self._abandon.set()
        for task in list(self.tasks):
            task.cancel()


class ProgressDialog(QObject):
    """A progress dialog fed from a worker thread: pass :meth:`report` and :meth:`cancelled` to
    the blocking function of a job; the dialog is updated in the GUI thread by a queued slot.
    :meth:`close` it when the job ends."""

    _progress = Signal(int, int)

    def __init__(self, parent: QWidget, title: str, label: str):
        super().__init__(parent)
        self._cancel = threading.Event()
        self._closed = False
        self.dialog = QProgressDialog(label, "Cancel", 0, 0, parent)
        self.dialog.setWindowTitle(title)
        self.dialog.setObjectName("progressDialog")
        self.dialog.setWindowModality(Qt.WindowModality.WindowModal)
        self.dialog.setMinimumDuration(300)
        self.dialog.canceled.connect(self._on_cancel)
        self._progress.connect(self._on_progress)

    def report(self, done: int, total: int | None) -> None:  # any thread
        self._progress.emit(min(done, 2**31 - 1) // 1024, (total or 0) // 1024)

    def cancelled(self) -> bool:  # any thread
        return self._cancel.is_set()

    @Slot()
    def _on_cancel(self) -> None:
        self._cancel.set()

    @Slot(int, int)
    def _on_progress(self, done_kib: int, total_kib: int) -> None:
        self.dialog.setMaximum(total_kib)
        self.dialog.setValue(min(done_kib, total_kib) if total_kib else 0)
        self.dialog.setLabelText(f"{self.dialog.labelText().split(' (')[0]} ({done_kib / 1024:.1f} MiB)")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.dialog.reset()
        self.dialog.close()
        self.deleteLater()


class ProgressRelay(QObject):
    """Progress of a job, reported from its worker thread through :meth:`report` (``done``,
    ``total``) and shown by ``show(done, total)`` in the GUI thread (a queued slot of this object,
    which lives in the GUI thread). After :meth:`close` nothing more is shown."""

    _progress = Signal(int, int)

    def __init__(self, parent: QObject, show: Callable[[int, int], None]):
        super().__init__(parent)
        self._show: Callable[[int, int], None] | None = show
        self._progress.connect(self._on_progress, Qt.ConnectionType.QueuedConnection)

    def report(self, done: int, total: int) -> None:  # any thread
        self._progress.emit(int(done), int(total))

    @Slot(int, int)
    def _on_progress(self, done: int, total: int) -> None:
        if self._show is not None:
            self._show(done, total)

    def close(self) -> None:
        """Show nothing more (a report still queued is dropped); safe to call twice."""
        if self._show is not None:
            self._show = None
            self.deleteLater()


class PacedPuller(QObject):
    """Pulls items from an iterator on a QTimer, ``rate()`` items a second (None: as fast as the
    budget allows), for at most ``budget_s`` per tick so the window stays smooth whatever an item
    costs. The pacing: a credit grows by ``rate * elapsed`` each tick, is capped at
    ``max(1, rate * catch_up_s)`` (a stalled tick builds no burst to catch up), and each pulled
    item spends one; the first item is due at once, and a tick with an item due pulls at least
    one however slow it is.

    ``on_item(item)`` takes each item and returns True when it was the last; ``on_pulled(n,
    finished)`` follows each batch (redraw there); ``on_error(exc)`` gets an exception the
    iterator raised. After the last item, an exhausted iterator or an error the puller has
    stopped (timer off, iterator closed) before calling back."""

    def __init__(self, parent: QObject | None = None, tick_ms: int = 16, budget_s: float = 0.01,
                 catch_up_s: float = 0.1, clock: Callable[[], float] = time.perf_counter):
        super().__init__(parent)
        self.budget_s, self.catch_up_s, self.clock = budget_s, catch_up_s, clock
        self.timer = QTimer(self)
        self.timer.setInterval(max(1, int(tick_ms)))
        self.timer.timeout.connect(self._tick)
        self._items: Iterator[Any] | None = None
        self._rate: Callable[[], float | None] = lambda: None
        self._on_item: Callable[[Any], bool | None] = lambda item: None
        self._on_pulled: Callable[[int, bool], None] = lambda n, finished: None
        self._on_error: Callable[[BaseException], None] = lambda exc: None
        self.credit = 0.0
        self._last = 0.0

    @property
    def running(self) -> bool:
        return self._items is not None

    def start(self, items: Iterator[Any], rate: Callable[[], float | None],
              on_item: Callable[[Any], bool | None], on_pulled: Callable[[int, bool], None],
              on_error: Callable[[BaseException], None]) -> None:
        """Pull from ``items`` from now on (a running pull is stopped first)."""
        self.stop()
        self._items, self._rate = items, rate
        self._on_item, self._on_pulled, self._on_error = on_item, on_pulled, on_error
        self.credit, self._last = 1.0, self.clock()  # the first item is due at once
        self.timer.start()

    def stop(self) -> None:
        """Stop pulling and close the iterator (a generator's ``finally`` runs now)."""
        self.timer.stop()
        items, self._items = self._items, None
        close = getattr(items, "close", None)
        if close is not None:
            close()

    def due(self, now: float) -> float:
        """Items due at ``now`` by the pacing (inf when the rate is None); updates the credit."""
        rate = self._rate()
        elapsed, self._last = now - self._last, now
        if rate is None:
            return math.inf
        self.credit = min(self.credit + rate * elapsed, max(1.0, rate * self.catch_up_s))
        return float(math.floor(self.credit))

    @Slot()
    def _tick(self) -> None:
        if self._items is None:
            self.timer.stop()
            return
        now = self.clock()
        allowance = self.due(now)
        if allowance >= 1:
            pulled = self.pull(allowance, deadline=now + self.budget_s)
            self.credit = max(0.0, self.credit - pulled)

    def pull(self, n: float, deadline: float | None = None) -> int:
        """Pull up to ``n`` items now (until ``deadline``, but at least one); the number pulled.
        Tests and callers that step by hand use it too: it does not touch the credit."""
        if self._items is None or n <= 0:
            return 0
        pulled, finished = 0, False
        try:
            while pulled < n and (pulled == 0 or deadline is None or self.clock() < deadline):
                item = next(self._items)
                pulled += 1
                if self._on_item(item):
                    finished = True
                    break
        except StopIteration:
            finished = True
        except Exception as exc:  # noqa: BLE001 - a model failing mid-way: say so, keep the window alive
            self.stop()
            self._on_error(exc)
            return pulled
        if finished:
            self.stop()
        self._on_pulled(pulled, finished)
        return pulled
