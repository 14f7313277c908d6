"""Issue 14, "layout that stays put": nothing the user aims at moves because a tab changed or a
label's text changed length. Driven offscreen in the real window."""

from __future__ import annotations

from PySide6.QtCore import QPoint, Qt
from PySide6.QtWidgets import QApplication

LONG = ("a message long enough to wrap over several lines of the panel: " * 6).strip()


def settle(qtbot, ms: int = 50) -> None:
    QApplication.processEvents()
    qtbot.wait(ms)
    QApplication.processEvents()


def global_rect(w):
    top_left = w.mapToGlobal(QPoint(0, 0))
    return (top_left.x(), top_left.y(), w.width(), w.height())


def test_tab_bar_stays_put_on_every_tab(qtbot, window):
    window.resize(1280, 760)
    bar = window.tabs.tabBar()
    places = {}
    for i in (*range(window.tabs.count()), 0):
        window.tabs.setCurrentIndex(i)
        settle(qtbot)
        places.setdefault(global_rect(bar)[:2], []).append(window.tabs.tabText(i))
    assert len(places) == 1, places
    # the model list and run controls show with the Training tab only
    window.tabs.setCurrentWidget(window.playground)
    settle(qtbot)
    assert not window.picker.isVisible() and not window.panel.isVisible()
    window.tabs.setCurrentWidget(window.training_page)
    settle(qtbot)
    assert window.picker.isVisible() and window.panel.isVisible()


def test_view_menu_reaches_every_tab(qtbot, window):
    from PySide6.QtGui import QAction

    shown = []
    for name in ("actionTabTraining", "actionTabPlayground", "actionTabCanvas", "actionTabLatent",
                 "actionTabSequences"):
        window.findChild(QAction, name).trigger()
        shown.append(window.tabs.currentIndex())
    assert shown == list(range(window.tabs.count()))


def test_canvas_stays_put_whatever_the_messages_say(qtbot, window):
    window.resize(1280, 760)
    window.tabs.setCurrentWidget(window.canvas_scroll)
    c = window.canvas
    settle(qtbot, 200)
    labels = [c.message_label, c.prob_label, c.models_label, c.readouts_view.total_label,
              c.readouts_view.pct_label]
    aimed = (c.canvas, c.tool_buttons["pen"], c.complete_btn, c.grid)
    before = [global_rect(w) for w in aimed]
    for text in (LONG, "short", LONG + " " + LONG, ""):
        for label in labels:
            label.setText(text)
        settle(qtbot)
        assert [global_rect(w) for w in aimed] == before, text


# -- Sequences --------------------------------------------------------------------------------

def test_sequences_view_has_a_legend_limits_and_a_reset(qtbot, window):
    window.resize(1280, 760)
    window.tabs.setCurrentWidget(window.sequences)
    s = window.sequences
    qtbot.waitUntil(lambda: s.model is not None, timeout=5000)
    settle(qtbot)
    names = [label.text for _, label in s.plot.legend.items]
    assert any("real" in n for n in names) and any("candidate" in n for n in names), names
    pen = s.truth.opts["pen"]
    assert pen.widthF() >= 2 and pen.color().lightness() >= 200  # visible on black
    # before any sample, the next-step strip is laid out for the candidates (not a squashed axis)
    assert s.strip_plot.viewRange()[0] == [0.0, float(s.candidates.value())]
    length = s.model.data_shape[0]
    s.plot.getViewBox().translateBy(x=-3600)  # a wild drag
    s.plot.getViewBox().scaleBy(x=100)  # and a wild zoom out
    settle(qtbot)
    (x0, x1), (y0, y1) = s.plot.viewRange()
    assert x0 >= -0.1 * length and x1 <= 1.1 * length and y0 >= -1.5 and y1 <= 1.5
    s.plot.setXRange(10, 20)
    assert s.reset_btn.isVisible()
    qtbot.mouseClick(s.reset_btn, Qt.MouseButton.LeftButton)
    (x0, x1), _ = s.plot.viewRange()
    assert x0 <= 0 and x1 >= length - 1


def test_sequences_plot_stays_put_whatever_the_status_says(qtbot, window):
    window.resize(1280, 760)
    window.tabs.setCurrentWidget(window.sequences)
    s = window.sequences
    qtbot.waitUntil(lambda: s.model is not None, timeout=5000)
    settle(qtbot)
    before = global_rect(s.view), global_rect(s.sample_btn)
    for text in (LONG, "short", ""):
        s.status.setText(text)
        s.model_label.setText(text)
        settle(qtbot)
        assert (global_rect(s.view), global_rect(s.sample_btn)) == before, text


def test_latent_tab_stays_put_whatever_the_messages_say(qtbot, window):
    window.resize(1280, 760)
    window.tabs.setCurrentWidget(window.latent_scroll)
    lat = window.latent
    qtbot.waitUntil(lambda: lat.loaded, timeout=20000)
    settle(qtbot, 500)
    labels = [lat.models_label, lat.decode_label, lat.message_label, lat.map.caption, lat.encode_box.result_label,
              lat.interp_box.ab_label, lat.sliders.page_label]
    aimed = (lat.map.view, lat.image_view, lat.sliders.sliders[0], lat.encode_box.drawing_btn)
    before = [global_rect(w) for w in aimed]
    for text in (LONG, "short", LONG + " " + LONG, ""):
        for label in labels:
            label.setText(text)
        settle(qtbot)
        assert [global_rect(w) for w in aimed] == before, text


# -- Training ---------------------------------------------------------------------------------

def frame_at(step: int, loss: float, total: int = 10000, samples=None, image_shape=None):
    import numpy as np

    from core.control import Frame
    from core.protocol import Visuals
    from core.training import Snapshot

    snap = Snapshot(step=step, total_steps=total, epoch=step / 100, loss=loss, event="step", image_shape=image_shape)
    return Frame(snap, np.array([[step, loss]], np.float64), Visuals(samples=samples), 1)


def test_training_curve_axes_fit_the_data_with_a_log_option(qtbot):
    import math

    from gui.training_view import TrainingView

    view = TrainingView(fps=60)
    qtbot.addWidget(view)
    view.resize(900, 500)
    view.show()
    view.total_steps = 10000  # the whole run: the axis must not be scaled to it
    for step in range(1, 1001):  # a loss that drops from 550 to about 100 in its first steps
        view.push(frame_at(step, 100.0 + 450.0 * math.exp(-step / 8)))
    view._repaint()
    (x0, x1), (y0, y1) = view.plot.plotItem.vb.viewRange()
    assert x0 <= 1 and 1000 <= x1 <= 1500
    assert y0 <= 100.0 and y1 < 200.0  # fitted to the curve, not to its first moments at 550
    view.log_check.setChecked(True)
    view._repaint()
    assert view.plot.plotItem.ctrl.logYCheck.isChecked()
    _, (y0, y1) = view.plot.plotItem.vb.viewRange()
    assert y0 <= 2.0 <= y1 < 2.4  # log10 of the losses


def test_training_samples_are_few_big_tiles_filling_the_panel(qtbot):
    import numpy as np

    from gui.training_view import TrainingView

    view = TrainingView(fps=60)
    qtbot.addWidget(view)
    view.resize(900, 600)
    view.show()
    qtbot.waitExposed(view)
    samples = np.random.default_rng(0).random((64, 784)).astype(np.float32)
    view.push(frame_at(5, 1.0, samples=samples, image_shape=(28, 28)))
    view._repaint()
    settle(qtbot)
    panel = view.samples_widget
    gh, gw = view.image.shape
    scale = min(panel.width() / gw, panel.height() / gh)  # the grid is fitted, aspect kept
    shown = round((gw - 1) / 29) * round((gh - 1) / 29)
    assert 28 * scale >= 60, (view.image.shape, panel.size())  # tiles of at least 60 px
    assert 16 <= shown < 64 and f"{shown} of 64 samples" in view.caption.text()
    assert max(gw * scale / panel.width(), gh * scale / panel.height()) > 0.9


# -- Density playground -----------------------------------------------------------------------

def playground(qtbot, window):
    window.resize(1280, 760)
    window.tabs.setCurrentWidget(window.playground)
    p = window.playground
    p.set_combo.setCurrentIndex(p.set_combo.findData("8gaussians"))
    settle(qtbot)
    return p


def test_playground_model_list_shows_its_rows_and_keeps_its_wheel(qtbot, window):
    from PySide6.QtCore import QPointF
    from PySide6.QtGui import QWheelEvent

    p = playground(qtbot, window)
    models = p.model_list
    assert models.count() > 4
    rows = min(models.count(), 12)
    assert models.viewport().height() >= rows * models.sizeHintForRow(0)  # not a 4-row box
    scroll = p.findChild(type(window.canvas_scroll))
    bar = scroll.verticalScrollBar()
    assert bar.maximum() > 0  # the panel does scroll
    bar.setValue(bar.maximum() // 2)
    before = bar.value()
    centre = QPointF(models.viewport().rect().center())
    for delta in (-120, 120):  # the wheel on the list, both ways (at either end of its range)
        for _ in range(20):
            ev = QWheelEvent(centre, QPointF(models.viewport().mapToGlobal(centre.toPoint())), QPoint(0, 0),
                             QPoint(0, delta), Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier,
                             Qt.ScrollPhase.NoScrollPhase, False)
            QApplication.sendEvent(models.viewport(), ev)
        settle(qtbot, 10)
        assert bar.value() == before


def test_playground_hyperparameters_are_those_of_a_ticked_model(qtbot, window):
    from core import registry

    p = playground(qtbot, window)
    p.set_checked(["kde", "realnvp"])
    shown = p.model_list.currentItem().data(Qt.ItemDataRole.UserRole)
    assert shown in ("kde", "realnvp") and p.hp_box.title() == f"Hyperparameters: {registry.info(shown).name}"
    keys = [p.model_list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(p.model_list.count())]
    gan = p.model_list.item(keys.index("gan"))
    gan.setCheckState(Qt.CheckState.Checked)  # ticking a model shows its hyperparameters
    assert p.hp_box.title() == "Hyperparameters: GAN" and p.model_list.currentItem() is gan
    p.model_list.setCurrentRow(keys.index("rnade"))  # an unticked model may be looked at: the title says so
    assert p.hp_box.title() == "Hyperparameters: RNADE (not ticked: it will not train)"


def test_playground_tiles_share_one_linked_view_and_clip_the_warp(qtbot, window):
    import numpy as np

    from gui.density_tiles import clipped_lines

    p = playground(qtbot, window)
    p._make_tiles(["kde", "realnvp", "gan"])
    settle(qtbot)
    ranges = {tuple(map(tuple, t.vb.viewRange())) for t in p.tiles}
    assert len(ranges) == 1, ranges
    p.tiles[2].vb.setXRange(-1, 1, padding=0)
    settle(qtbot)
    assert all(np.allclose(t.vb.viewRange()[0], p.tiles[2].vb.viewRange()[0]) for t in p.tiles)
    # heatmaps fill their tiles: the tiles' shape is close to the data view's
    (x0, x1), (y0, y1) = p.dataset.meta["bounds"]
    vb = p.tiles[0].vb.sceneBoundingRect()
    assert 0.6 < (vb.width() / vb.height()) / ((x1 - x0) / (y1 - y0)) < 1.7
    warp = np.stack([np.stack([np.linspace(-20, 20, 50), np.full(50, y)], -1) for y in (0.0, 1.0)]).astype(np.float32)
    x, y = clipped_lines(warp, ((-4, 4), (-4, 4)))
    inside = np.isfinite(x)
    assert inside.any() and (np.abs(x[inside]) <= 4).all() and np.isnan(x[~inside]).all()


def test_sequences_strip_follows_the_candidates_before_sampling(qtbot, window):
    window.tabs.setCurrentWidget(window.sequences)
    s = window.sequences
    qtbot.waitUntil(lambda: s.model is not None, timeout=5000)
    s.candidates.setValue(6)
    assert s.strip_plot.viewRange()[0] == [0.0, 6.0]


def test_speed_sliders_stay_put_whatever_their_value_says(qtbot, window):
    window.resize(1280, 760)
    for page, slider in ((window.playground, window.playground.speed), (window.sequences, window.sequences.speed),
                         (window.canvas_scroll, window.canvas.speed)):
        window.tabs.setCurrentWidget(page)
        settle(qtbot)
        before = global_rect(slider)
        for v in range(slider.minimum(), slider.maximum() + 1):
            slider.setValue(v)
            settle(qtbot, 5)
            assert global_rect(slider) == before, (slider.objectName(), v)


def test_run_buttons_stay_put_whichever_model_is_picked(qtbot, window):
    window.resize(1280, 760)
    window.tabs.setCurrentIndex(0)  # the Training tab
    settle(qtbot)
    before = global_rect(window.panel.train_btn)
    for key in ("vae", "fvsbn", "pixelcnn", "gmm"):
        window.picker.select(key)
        settle(qtbot)
        assert global_rect(window.panel.train_btn) == before, key
    p = playground(qtbot, window)
    before = global_rect(p.train_btn)
    for row in range(p.model_list.count()):
        p.model_list.setCurrentRow(row)
        settle(qtbot, 5)
        assert global_rect(p.train_btn) == before, p.model_list.item(row).text()
