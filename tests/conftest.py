"""Shared fixtures. Qt runs offscreen; every Qt warning fails the test (pyproject)."""

from __future__ import annotations

import asyncio
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import torch  # noqa: E402  (torch before Qt, as in main.py)
import pytest  # noqa: E402

# One intra-op thread, as the app's training worker uses: on 2-core machines two threads per
# test only fight the GUI thread and each other (a 2 s fit took 25 s under contention).
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def aloop(qapp):
    """One qasync loop over pytest-qt's QApplication, marked running, so the window's
    coroutines run while qtbot waits. Stopped only at the very end: its stop() calls
    QApplication.exit(), which would end every later local event loop at once."""
    import qasync

    from gui.app import guard_gc

    guard_gc(qapp)  # garbage collected only in the GUI thread, as in the app
    loop = qasync.QEventLoop(qapp, already_running=True)
    asyncio.set_event_loop(loop)
    yield loop
    for task in asyncio.all_tasks(loop):
        task.cancel()
    loop.stop()
    asyncio.events._set_running_loop(None)
    loop.close()  # joins the executor's threads
    asyncio.set_event_loop(None)


@pytest.fixture
def window(qtbot, aloop, tmp_path, monkeypatch):
    """The real main window, with settings and autosaves in a temporary folder."""
    from PySide6.QtCore import QSettings

    import gui.main_window as mw

    monkeypatch.setattr(mw, "app_data_dir", lambda: tmp_path / "appdata")
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    w = mw.MainWindow(settings=settings)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    yield w
    for task in list(w._tasks):
        task.cancel()
    if w.session is not None and w.session.running:
        assert w.session.stop(5000)
    for box in w.error_boxes:
        box.close()
