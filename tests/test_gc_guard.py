"""Garbage is collected in the GUI thread only (PySide deadlocks when a worker thread's
collection frees a Qt wrapper)."""

from __future__ import annotations

import gc
import threading

from gui.app import MainThreadGC, guard_gc


def test_collection_runs_on_the_gui_thread_only(qtbot, aloop, qapp):
    guard = guard_gc(qapp)
    assert guard is guard_gc(qapp)  # one per application
    assert isinstance(guard, MainThreadGC) and not gc.isenabled()
    freed_in: list[threading.Thread] = []

    class Cycle:
        def __del__(self):
            freed_in.append(threading.current_thread())

    def make_garbage_in_a_worker():
        for _ in range(2000):  # more than the first generation's threshold: gc would run here
            a, b = Cycle(), Cycle()
            a.other, b.other = b, a

    worker = threading.Thread(target=make_garbage_in_a_worker)
    worker.start()
    worker.join()
    assert freed_in == []  # nothing collected in the worker
    qtbot.waitUntil(lambda: len(freed_in) >= 4000, timeout=5000)
    assert set(freed_in) == {threading.main_thread()}
