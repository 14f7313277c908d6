"""Short jobs as coroutines on the qasync loop: the blocking part runs in the loop's executor,
progress comes back through a GUI-thread QObject's slot, and the window never blocks."""

from __future__ import annotations

import asyncio
import functools
import threading
from typing import Any, Callable

from PySide6.QtCore import QObject, Qt, Signal, Slot
from PySide6.QtWidgets import QProgressDialog, QWidget


async def in_thread(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run ``fn`` off the GUI thread and await its result (exceptions are re-raised here)."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, functools.partial(fn, *args, **kwargs))


class ProgressJob(QObject):
    """A progress dialog fed from a worker thread: pass :meth:`report` and :meth:`cancelled`
    to the blocking function; the dialog is updated in the GUI thread by a queued slot."""

    _progress = Signal(int, int)

    def __init__(self, parent: QWidget, title: str, label: str):
        super().__init__(parent)
        self._cancel = threading.Event()
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

    async def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return await in_thread(fn, *args, progress=self.report, cancelled=self.cancelled, **kwargs)
        finally:
            self.dialog.reset()
            self.dialog.close()
            self.deleteLater()
