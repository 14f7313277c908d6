"""Start the app: a QApplication driven by qasync's event loop, and the main window."""

from __future__ import annotations

import asyncio
import sys

import torch  # noqa: F401  (before Qt, see main.py)
import qasync
from PySide6.QtWidgets import QApplication

from gui import APP_NAME, ORG_NAME


def make_app(argv: list[str] | None = None) -> QApplication:
    app = QApplication.instance() or QApplication([sys.argv[0], *(argv or [])])
    app.setOrganizationName(ORG_NAME)
    app.setApplicationName(APP_NAME)
    return app


def run_app(argv: list[str] | None = None) -> int:
    from gui.main_window import MainWindow

    app = make_app(argv)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    closed = asyncio.Event()
    app.aboutToQuit.connect(closed.set)
    window = MainWindow()
    window.show()
    with loop:
        loop.run_until_complete(closed.wait())
    return 0
