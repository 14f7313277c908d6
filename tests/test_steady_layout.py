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
    before = global_rect(c.canvas)
    for text in (LONG, "short", LONG + " " + LONG, ""):
        for label in labels:
            label.setText(text)
        settle(qtbot)
        assert global_rect(c.canvas) == before, text


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
