"""First run with no network: a data set that is not on the computer is said so in the window,
which offers to choose a local copy (a file dialog, not a command-line flag) and trains on it."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox, QPushButton


def _offline(monkeypatch, tmp_path):
    import core.data

    def unreachable(url, *args, **kwargs):
        raise core.data.DownloadError(f"cannot download {url}: [Errno 101] Network is unreachable")

    monkeypatch.setenv("GMS_DATA_DIR", str(tmp_path / "empty-cache"))
    monkeypatch.delenv("GMS_DATA_MIRROR", raising=False)
    monkeypatch.setattr(core.data, "download", unreachable)


def _open_box(window):
    box = window.findChild(QMessageBox, "dataMissingBox")
    return box if box is not None and box.isVisible() else None


def test_a_missing_data_set_offers_a_local_file_and_trains_on_it(qtbot, window, mnist_fixture, tmp_path,
                                                                  monkeypatch):
    import gui.main_window as mw

    _offline(monkeypatch, tmp_path)
    asked: list[str] = []

    def pick(parent, caption, folder, filters):
        asked.append(filters)
        return str(mnist_fixture.npz), filters.split(";;")[0]

    monkeypatch.setattr(mw.QFileDialog, "getOpenFileName", staticmethod(pick))
    window.picker.select("fvsbn")
    window.panel.data_combo.setCurrentIndex(window.panel.data_combo.findData("binarized_mnist"))
    window.panel.data_path.setText("")
    window.panel.epochs.setValue(0.2)
    qtbot.mouseClick(window.panel.train_btn, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: _open_box(window) is not None, timeout=20000)
    box = _open_box(window)
    assert "binarized MNIST" in box.text() and "could not be downloaded" in box.text()
    assert "Network is unreachable" in box.text() and "--data" not in box.text()
    assert window.session is None and window.panel.train_btn.isEnabled()  # back to idle, nothing runs

    qtbot.mouseClick(box.findChild(QPushButton, "chooseDataFile"), Qt.MouseButton.LeftButton)
    assert asked and "*.npz" in asked[0]
    assert window.panel.data_path.text() == str(mnist_fixture.npz)
    qtbot.waitUntil(lambda: window.session is not None and window.session.frames_received > 0, timeout=20000)
    with qtbot.waitSignal(window.session.finished, timeout=30000):
        pass
    assert window.dataset.name == "binarized_mnist"
    assert np.array_equal(window.dataset.train, mnist_fixture.train)


def test_cancelling_the_offer_leaves_the_window_idle(qtbot, window, tmp_path, monkeypatch):
    import gui.main_window as mw

    _offline(monkeypatch, tmp_path)
    monkeypatch.setattr(mw.QFileDialog, "getOpenFileName", staticmethod(lambda *a: ("", "")))
    window.picker.select("fvsbn")
    window.panel.data_combo.setCurrentIndex(window.panel.data_combo.findData("binarized_mnist"))
    window.panel.data_path.setText("")
    qtbot.mouseClick(window.panel.train_btn, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: _open_box(window) is not None, timeout=20000)
    qtbot.mouseClick(_open_box(window).findChild(QPushButton, "chooseDataFile"), Qt.MouseButton.LeftButton)
    assert window.panel.data_path.text() == "" and window.session is None
    assert window.panel.train_btn.isEnabled()
