"""Start the app: a QApplication driven by qasync's event loop, and the main window."""

from __future__ import annotations

import asyncio
import gc
import os
import sys

import torch  # noqa: F401  (before Qt, see main.py)
import qasync
from PySide6.QtCore import QObject, QTimer, Slot
from PySide6.QtWidgets import QApplication

from gui import APP_NAME, ORG_NAME


class MainThreadGC(QObject):
    """Python's cyclic garbage collector runs in whichever thread happens to allocate. If it frees
    a Qt wrapper (a closed window's widgets, say) in a worker thread, PySide deadlocks: the
    QObject destructor there holds a Qt mutex and waits for the GIL, while the GUI thread holds
    the GIL and waits for that mutex (seen in CI: a checkpoint loading in qasync's executor
    collected a finished test's window). So automatic collection is off and the GUI thread
    collects on a timer, as pyqtgraph's GarbageCollector does."""

    def __init__(self, parent: QObject, interval_ms: int = 1000):
        super().__init__(parent)
        self.threshold = gc.get_threshold()
        gc.disable()
        self.timer = QTimer(self)
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self.collect)
        self.timer.start()

    @Slot()
    def collect(self) -> None:
        counts = gc.get_count()
        for gen in (2, 1, 0):  # the oldest generation whose count is over its threshold
            if counts[gen] > self.threshold[gen]:
                gc.collect(gen)
                return


def guard_gc(app: QApplication) -> MainThreadGC:
    """Collect garbage only in the GUI thread (once per application)."""
    guard = app.findChild(MainThreadGC)
    return guard if guard is not None else MainThreadGC(app)


def make_app(argv: list[str] | None = None) -> QApplication:
    app = QApplication.instance() or QApplication([sys.argv[0], *(argv or [])])
    app.setOrganizationName(ORG_NAME)
    app.setApplicationName(APP_NAME)
    guard_gc(app)
    return app


def before_exit() -> None:
    """Call once the window has closed (settings saved, runs stopped), just before the process
    exits. Python's exit runs its cyclic collector again and again over every object the session
    made (torch's, Qt's wrappers): 4-5 s after a short training session, more after a long one.
    Frozen objects are skipped by those collections; they are freed by reference counting or
    with the process."""
    gc.freeze()


#: set to 1, the app prints "window shown" once its window is on screen and quits (bench/cold_start.py)
QUIT_WHEN_SHOWN = "GMS_QUIT_WHEN_SHOWN"


class ShownReporter(QObject):
    """Prints "window shown" when the event loop first runs after the window was shown (its first
    expose and paint are queued before it), then quits: what a cold-start measurement waits for."""

    @Slot()
    def report(self) -> None:
        print("window shown", flush=True)
        QApplication.quit()


def run_app(argv: list[str] | None = None) -> int:
    from gui.main_window import MainWindow

    app = make_app(argv)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    closed = asyncio.Event()
    app.aboutToQuit.connect(closed.set)
    window = MainWindow()
    window.show()
    if os.environ.get(QUIT_WHEN_SHOWN) == "1":
        reporter = ShownReporter(app)
        QTimer.singleShot(0, reporter.report)
    with loop:
        loop.run_until_complete(closed.wait())
    before_exit()
    return 0
