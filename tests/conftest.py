"""Shared fixtures. Qt runs offscreen; every Qt warning fails the test (pyproject)."""

from __future__ import annotations

import asyncio
import functools
import http.server
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

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
    monkeypatch.setattr(mw, "documents_dir", lambda: tmp_path / "documents")
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    w = mw.MainWindow(settings=settings)
    qtbot.addWidget(w)
    w.show()
    qtbot.waitExposed(w)
    yield w
    w.jobs.close()
    if w.session is not None and w.session.running:
        assert w.session.stop(5000)
    for box in w.error_boxes:
        box.close()


# --------------------------------------------------------------------------------------------
# a small MNIST stand-in (tests/mnist_fixture.py), served from a loopback HTTP mirror
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def mnist_fixture(tmp_path_factory):
    """The fixture's files, made once per session: see ``tests/mnist_fixture.py``."""
    import mnist_fixture

    return mnist_fixture.make(tmp_path_factory.mktemp("mnist_fixture") / "www")


@dataclass
class Mirror:
    url: str  # http://127.0.0.1:PORT, serving mnist_fixture.root
    requests: list[str] = field(default_factory=list)  # the paths asked for, in order
    cache: Path | None = None  # GMS_DATA_DIR of the test


@pytest.fixture(scope="session")
def _mnist_server(mnist_fixture):
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self):
            requests.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    class Quiet(http.server.ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request, client_address):
            pass  # a client that cancels mid-transfer resets the connection: expected

    httpd = Quiet(("127.0.0.1", 0), functools.partial(Handler, directory=str(mnist_fixture.root)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield Mirror(f"http://127.0.0.1:{httpd.server_address[1]}", requests)
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


@pytest.fixture
def mnist_mirror(_mnist_server, mnist_fixture, tmp_path, monkeypatch):
    """For one test: ``GMS_DATA_MIRROR`` is the loopback mirror of the fixture, ``GMS_DATA_DIR``
    an empty cache, the loaders expect the fixture's digests, and the public sources they fall
    back on point at the mirror's empty folders (404s): nothing reaches the network."""
    import core.data
    from core.data import mnist_digits as md

    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    url = _mnist_server.url
    cache = tmp_path / "data-cache"
    monkeypatch.setenv("GMS_DATA_MIRROR", url + "/")
    monkeypatch.setenv("GMS_DATA_DIR", str(cache))
    monkeypatch.setattr(core.data, "MNIST_AMAT_URLS",
                        {s: f"{url}/originals/binarized_mnist_{s}.amat" for s in ("train", "valid")})
    monkeypatch.setattr(md, "PUBLIC_MIRROR", url + "/public/")
    mnist_fixture.pin(monkeypatch)
    _mnist_server.requests.clear()
    return Mirror(url, _mnist_server.requests, cache)
