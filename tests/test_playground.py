"""The density playground tab, driven offscreen in the real window."""

from __future__ import annotations

import csv
import re
import time

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QImage
from PySide6.QtTest import QTest

from core.protocol import cell_area
from waiting import steady


@pytest.fixture
def pg_tab(window):
    window.tabs.setCurrentWidget(window.playground)
    p = window.playground
    p.steps_spin.setValue(150)
    return p


def choose_set(p, name):
    p.set_combo.setCurrentIndex(p.set_combo.findData(name))


def listed(p):
    return [p.model_list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(p.model_list.count())]


def run_to_end(qtbot, p, timeout=60000):
    session = p.play()
    assert session is not None, p.window().last_error
    with qtbot.waitSignal(session.finished, timeout=timeout):
        pass
    p._repaint()
    return session


def test_models_offered_follow_the_data_dimension(pg_tab):
    choose_set(pg_tab, "8gaussians")
    two_d = listed(pg_tab)
    assert "realnvp" in two_d and "fvsbn" not in two_d
    choose_set(pg_tab, "mixture1d")
    one_d = listed(pg_tab)
    assert "rnade" in one_d and "realnvp" not in one_d
    assert pg_tab.tiles[0].dim == 1


@pytest.mark.slow
def test_two_models_side_by_side_learn_and_fill_the_table(qtbot, pg_tab, tmp_path):
    choose_set(pg_tab, "8gaussians")
    pg_tab.set_checked(["rnade", "realnvp"])
    session = run_to_end(qtbot, pg_tab)
    assert {f.index for f in session.last_frames.values()} == {0, 1}
    assert all(f.snapshot.event == "finished" for f in session.last_frames.values())
    for i, curve in enumerate(pg_tab.curves):
        assert len(curve) >= 2, f"model {i}: a held-out NLL curve"
        assert curve[-1][1] < curve[0][1], f"model {i}: held-out NLL falls"
    rows = pg_tab.table_rows()
    assert [r[0] for r in rows] == ["RNADE", "RealNVP"]
    assert all(r[1] and r[2] and r[3] and r[4] for r in rows)
    assert float(rows[0][2]) == pytest.approx(2.83, abs=0.02), "true entropy of 8 gaussians"
    # both models sample and 8gaussians has modes: the coverage of its 8 modes is measured
    assert all(re.fullmatch(r"[0-8]/8( \([0-8] with any sample\))?", r[5]) for r in rows), rows
    assert all(re.fullmatch(r"[+-]\d+\.\d{4} ± \d+\.\d{4}", r[3]) for r in rows), rows
    bounds = pg_tab.dataset.meta["bounds"]
    for f in session.last_frames.values():
        dens = f.arrays.density
        assert dens is not None, "both models have a density to show"
        assert dens.dtype == np.float32 and dens.flags.c_contiguous
        assert dens.sum() * cell_area(bounds, dens.shape[0]) == pytest.approx(1.0, abs=0.08)
    assert pg_tab.repaints > 0

    table = tmp_path / "table.csv"
    pg_tab.export_table(str(table))
    with open(table) as f:
        got = list(csv.reader(f))
    assert got[0][0] == "model" and got[1:] == rows
    png = tmp_path / "view.png"
    assert pg_tab.export_png(str(png))
    img = QImage(str(png))
    assert img.width() > 100 and img.height() > 100


def test_pause_step_resume_stop_in_the_playground(qtbot, pg_tab):
    choose_set(pg_tab, "moons")
    pg_tab.steps_spin.setValue(100000)
    pg_tab.set_checked(["rnade"])
    session = pg_tab.play()
    qtbot.waitUntil(lambda: session.frames_received > 0, timeout=20000)
    qtbot.mouseClick(pg_tab.pause_btn, Qt.MouseButton.LeftButton)
    # the step in flight when pause was clicked finishes and is shown: then the count rests
    qtbot.waitUntil(steady(lambda: session.last_frame.snapshot.step), timeout=10000)
    at = session.last_frame.snapshot.step
    qtbot.wait(300)  # about time itself: no progress during 300 ms of pause
    assert session.last_frame.snapshot.step == at
    qtbot.mouseClick(pg_tab.step_btn, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: session.last_frame.snapshot.step == at + 1, timeout=5000)
    qtbot.mouseClick(pg_tab.pause_btn, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: session.last_frame.snapshot.step > at + 5, timeout=10000)
    with qtbot.waitSignal(session.finished, timeout=3000):
        qtbot.mouseClick(pg_tab.stop_btn, Qt.MouseButton.LeftButton)
    assert pg_tab.train_btn.isEnabled()


def test_speed_limits_the_pace(qtbot, pg_tab):
    choose_set(pg_tab, "8gaussians")
    pg_tab.steps_spin.setValue(100000)
    pg_tab.set_checked(["rnade"])
    pg_tab.speed.setValue(4)  # 8 steps/s
    assert "8 steps/s" in pg_tab.speed_label.text()
    session = pg_tab.play()
    qtbot.waitUntil(lambda: session.frames_received > 0, timeout=20000)
    start, t0 = session.last_frame.snapshot.step, time.perf_counter()
    qtbot.wait(1000)  # about time itself: the steps made in one second
    rate = (session.last_frame.snapshot.step - start) / (time.perf_counter() - t0)
    assert rate < 12
    session.stop()


def _click_data(qtbot, p, x, y):
    vb = p.tiles[0].vb
    scene = vb.mapViewToScene(pg_point(x, y))
    view = p.tiles_widget.mapFromScene(scene)
    QTest.mouseClick(p.tiles_widget.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                     QPoint(int(view.x()), int(view.y())))


def pg_point(x, y):
    from PySide6.QtCore import QPointF
    return QPointF(x, y)


def test_paint_undo_redo_clear_and_train_on_painted_points(qtbot, pg_tab):
    choose_set(pg_tab, "8gaussians")
    pg_tab.clear_points()
    assert pg_tab.set_name == "painted"
    qtbot.mouseClick(pg_tab.paint_btn, Qt.MouseButton.LeftButton)
    assert pg_tab.paint_btn.isChecked()
    pg_tab.intensity_spin.setValue(30)
    _click_data(qtbot, pg_tab, 0.0, 0.0)
    assert len(pg_tab.paint.points) == 30
    p0 = pg_tab.paint.points
    assert np.abs(p0).max() < 0.5, "points land where the mouse clicked"
    _click_data(qtbot, pg_tab, 1.5, 1.5)
    assert len(pg_tab.paint.points) == 60
    qtbot.keyClick(pg_tab, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert len(pg_tab.paint.points) == 30
    pg_tab.redo()
    assert len(pg_tab.paint.points) == 60
    pg_tab.erase_box.setChecked(True)
    pg_tab.radius_spin.setValue(0.5)
    _click_data(qtbot, pg_tab, 0.0, 0.0)
    assert len(pg_tab.paint.points) == 30
    pg_tab.erase_box.setChecked(False)
    qtbot.waitUntil(lambda: pg_tab.dataset is not None and pg_tab.dataset.name == "painted"
                    and len(pg_tab.dataset.train) + len(pg_tab.dataset.valid) == 30, timeout=3000)
    qtbot.mouseClick(pg_tab.paint_btn, Qt.MouseButton.LeftButton)
    pg_tab.set_checked(["rnade"])
    pg_tab.steps_spin.setValue(30)
    session = run_to_end(qtbot, pg_tab)
    assert session.last_frame.snapshot.event == "finished"


def test_bad_points_get_clear_messages(qtbot, pg_tab, tmp_path, window):
    bad = tmp_path / "bad.csv"
    bad.write_text("x,y\n1,2\n3,nan\n")
    assert not pg_tab.import_csv(str(bad))
    assert window.error_boxes and "line 3" in window.error_boxes[-1].text()

    one = tmp_path / "one.csv"
    one.write_text("x,y\n1,2\n")
    assert not pg_tab.import_csv(str(one))
    pg_tab.set_checked(["rnade"])
    assert pg_tab.play() is None
    assert "too few points" in window.error_boxes[-1].text()

    empty = tmp_path / "empty.csv"
    empty.write_text("")
    assert not pg_tab.import_csv(str(empty))


def test_csv_export_import_round_trip(pg_tab, tmp_path):
    choose_set(pg_tab, "moons")
    path = tmp_path / "pts.csv"
    pg_tab.export_csv(str(path))
    before = pg_tab.paint.points
    assert pg_tab.import_csv(str(path))
    assert pg_tab.set_name == "painted"
    np.testing.assert_array_equal(pg_tab.paint.points, before)
    assert len(pg_tab.dataset.train) + len(pg_tab.dataset.valid) == len(before)


def test_closing_mid_training_stops_the_playground_within_2s(qtbot, pg_tab, window):
    choose_set(pg_tab, "8gaussians")
    pg_tab.steps_spin.setValue(100000)
    pg_tab.set_checked(["realnvp", "rnade"])
    session = pg_tab.play()
    qtbot.waitUntil(lambda: session.frames_received > 2, timeout=20000)
    t0 = time.perf_counter()
    window.close()
    assert time.perf_counter() - t0 < 2.0
    assert session._thread.isFinished()


def test_zero_bandwidth_and_too_many_components_get_clear_messages(qtbot, pg_tab, window, tmp_path):
    choose_set(pg_tab, "8gaussians")
    pg_tab.set_checked(["kde"])
    pg_tab.set_hparam("kde", "bandwidth_rule", "manual")
    pg_tab.set_hparam("kde", "bandwidth", 0.0)
    assert pg_tab.play() is None
    assert "bandwidth" in window.error_boxes[-1].text()

    few = tmp_path / "few.csv"
    few.write_text("x,y\n0,0\n1,1\n2,0\n3,1\n4,0\n")
    assert pg_tab.import_csv(str(few))
    pg_tab.set_checked(["gmm"])
    pg_tab.set_hparam("gmm", "components", 10)
    shown = len(window.error_boxes)
    session = pg_tab.play()
    if session is not None:  # the model may refuse at build time or at its first fit
        with qtbot.waitSignal(session.finished, timeout=20000):
            pass
    assert len(window.error_boxes) > shown, "a new error dialog, not the bandwidth one"
    text = window.error_boxes[-1].text()
    assert "10" in text and ("component" in text or "K" in text), text
    assert pg_tab.train_btn.isEnabled()


@pytest.mark.slow
def test_every_point_model_trains_on_every_built_in_set_in_the_playground(qtbot, pg_tab):
    """Every family on every built-in set it accepts, side by side on the worker thread in the
    real tab: every run finishes and its frames reach its tile. (How well each learns is
    tests/test_model_matrix.py's job, through the same trainer generator.)"""
    from core.data import toy

    pg_tab.n_spin.setValue(300)
    for name in toy.TOY_SETS:
        choose_set(pg_tab, name)
        if name != "integers1d":
            pg_tab.n_spin.setValue(300)
            pg_tab.resample()
        keys = listed(pg_tab)
        pg_tab.set_checked(keys)
        pg_tab.steps_spin.setValue(8)
        session = run_to_end(qtbot, pg_tab, timeout=120000)
        assert {f.index for f in session.last_frames.values()} == set(range(len(keys))), name
        for i, f in session.last_frames.items():
            if f.snapshot.event == "error":  # only a model that cannot take this data may refuse
                assert name == "integers1d", (name, keys[i], f.snapshot.message)
                assert "ValueError" in f.snapshot.message
            else:
                assert f.snapshot.event == "finished", (name, keys[i], f.snapshot.message)
                assert pg_tab.rows[i]["step"] > 0
        assert len(pg_tab.tiles) == len(keys) + 1


def test_defaults_train_each_model_with_its_own_recipe(qtbot, pg_tab):
    """Steps and learning rate left at "each model's own": every model gets its recipe's steps,
    its own default rate and its schedule (the GAN: 20000 steps at 1e-3, held then decayed), as
    bench/defaults_2d.py measures them; a number typed in applies to all."""
    from core import registry
    choose_set(pg_tab, "ring8")
    pg_tab.steps_spin.setValue(0)
    assert pg_tab.steps_spin.text() == "each model's own" and pg_tab.lr_spin.text() == "each model's own"
    pg_tab.set_checked(["gan", "nsf"])
    session = pg_tab.play()
    assert session is not None, pg_tab.window().last_error
    runs = dict(zip(pg_tab.running_keys, session.runs))
    gan = runs["gan"]
    for key, run in runs.items():
        info = registry.info(key)
        assert run.trainer.total_steps == info.recipe.steps
        assert run.trainer.model.hparams["lr"] == info.defaults()["lr"]
        assert run.policy == run.policy.of(info.recipe) and run.policy.schedule == "cosine"
    assert gan.trainer.total_steps == 20000 and gan.base_lr == 1e-3
    assert gan.lr_at(9000) == 1e-3 and gan.lr_at(19999) < 1e-4
    with qtbot.waitSignal(session.finished, timeout=10000):
        pg_tab.stop_training()
    pg_tab.steps_spin.setValue(40)
    pg_tab.lr_spin.setValue(0.002)
    pg_tab.set_checked(["gan"])
    session = pg_tab.play()
    assert session.runs[0].trainer.total_steps == 40 and session.runs[0].base_lr == 0.002
    with qtbot.waitSignal(session.finished, timeout=10000):
        pg_tab.stop_training()


def test_a_pending_paint_commit_does_not_outlive_a_change_of_data_set(qtbot, pg_tab):
    """Found by the reliability fuzz: painted 2D points wait 300 ms before they become the data
    set; choosing a 1D set in that window used to commit the 2D points with the 1D set's view
    bounds a moment later (IndexError in the tiles, and the 1D set replaced by stale points)."""
    choose_set(pg_tab, "8gaussians")
    pg_tab.clear_points()
    qtbot.mouseClick(pg_tab.paint_btn, Qt.MouseButton.LeftButton)
    pg_tab.intensity_spin.setValue(30)
    _click_data(qtbot, pg_tab, 0.0, 0.0)
    assert len(pg_tab.paint.points) == 30
    choose_set(pg_tab, "mixture1d")  # before the painted points are committed
    assert pg_tab.dataset.name == "mixture1d" and pg_tab.tiles[0].dim == 1
    qtbot.wait(600)  # past the commit delay
    assert pg_tab.dataset.name == "mixture1d", "the stale painted points did not replace the chosen set"
    assert pg_tab.dataset.train.shape[1] == 1 and pg_tab.tiles[0].dim == 1
    assert len(pg_tab.tiles[0].bounds) == 1


def test_the_panel_learning_rate_gives_way_to_one_set_for_a_model(qtbot, pg_tab):
    """The panel's learning rate applies to the models whose rate the user did not set; a rate
    set in a model's form is kept, even when it equals that model's default (it used to be
    recognised by comparing with the default, so a default typed on purpose was overridden)."""
    from core import registry

    choose_set(pg_tab, "8gaussians")
    pg_tab.set_checked(["rnade", "realnvp"])
    own = registry.info("rnade").defaults()["lr"]
    pg_tab.set_hparam("rnade", "lr", own)  # the default, chosen on purpose
    pg_tab.set_hparam("realnvp", "layers", 4)  # another setting: its rate still follows the panel
    pg_tab.lr_spin.setValue(0.0123)
    pg_tab.steps_spin.setValue(5)
    session = pg_tab.play()
    assert session is not None
    rates = {registry.info(k).key: r.trainer.model.hparams["lr"] for k, r in zip(pg_tab.running_keys, session.runs)}
    assert rates == {"rnade": own, "realnvp": 0.0123}
    with qtbot.waitSignal(session.finished, timeout=20000):
        pg_tab.stop_training()
