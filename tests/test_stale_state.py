"""Issue 14, "no stale or contradictory state": what a tab shows describes what is there now.
Driven offscreen in the real window."""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QApplication


def settle(qtbot, ms: int = 50) -> None:
    QApplication.processEvents()
    qtbot.wait(ms)
    QApplication.processEvents()


# -- Density playground -----------------------------------------------------------------------

def test_playground_table_goes_with_its_data_set(qtbot, window):
    window.tabs.setCurrentWidget(window.playground)
    p = window.playground
    p.set_combo.setCurrentIndex(p.set_combo.findData("8gaussians"))
    p.set_checked(["kde"])
    p.steps_spin.setValue(20)
    session = p.play()
    with qtbot.waitSignal(session.finished, timeout=60000):
        pass
    p._repaint()
    assert p.comparison.table.rowCount() == 1 and p.table_rows()[0][1]
    p.clear_points()  # new, painted data: the old set's results must go
    settle(qtbot, 400)
    p._repaint()
    assert p.comparison.table.rowCount() == 0 and p.table_rows() == [] and p.comparison.nll_lines == []


def test_painted_points_survive_a_restart(qtbot, aloop, tmp_path, monkeypatch):
    import gui.main_window as mw

    monkeypatch.setattr(mw, "app_data_dir", lambda: tmp_path / "appdata")
    ini = str(tmp_path / "settings.ini")
    w = mw.MainWindow(settings=QSettings(ini, QSettings.Format.IniFormat))
    qtbot.addWidget(w)
    csv = tmp_path / "pts.csv"
    pts = np.random.default_rng(1).normal(size=(40, 2)).astype(np.float32)
    np.savetxt(csv, pts, delimiter=",")
    assert w.playground.import_csv(str(csv))
    assert w.playground.set_name == "painted"
    w.close()

    w2 = mw.MainWindow(settings=QSettings(ini, QSettings.Format.IniFormat))
    qtbot.addWidget(w2)
    p = w2.playground
    assert p.set_name == "painted"
    got = np.concatenate([p.dataset.train, p.dataset.valid])
    assert got.shape == pts.shape
    np.testing.assert_allclose(np.sort(got, 0), np.sort(pts, 0), atol=1e-5)
    w2.close()
    # without the kept points the set does not claim to be the painted one
    (tmp_path / "playground-points.npy").unlink()
    w3 = mw.MainWindow(settings=QSettings(ini, QSettings.Format.IniFormat))
    qtbot.addWidget(w3)
    assert w3.playground.set_name != "painted" and w3.playground.dataset is not None
    assert "not found" in w3.statusBar().currentMessage()
