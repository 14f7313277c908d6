"""Every binary-image family trains from the Training tab (on the worker, with progress), shows
its samples, and can then be used on the canvas."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt

from gui.hparam_editors import set_editor_value

SMALL = {
    "fvsbn": {},
    "nade": {"hidden": 8},
    "made": {"hidden": 16, "masks": 2, "order_agnostic": True, "direct": True},
    "made-mixture": {"hidden": 8, "members": 2},
    "pixelcnn": {"channels": 8, "blocks": 1},
    "pixelrnn": {"hidden": 8, "row_hidden": 8},
}


#: the families whose run here takes more than ~3 s
SLOW = {"pixelcnn"}


@pytest.mark.parametrize("family", [pytest.param(f, marks=pytest.mark.slow) if f in SLOW else f for f in sorted(SMALL)])
def test_image_family_trains_in_the_training_tab(qtbot, window, family):
    assert window.picker.select(family)
    window.panel.data_combo.setCurrentIndex(window.panel.data_combo.findData("bars"))
    for name, value in SMALL[family].items():
        set_editor_value(window.panel.editors[name], value)
    window.panel.editors["batch_size"].setValue(16)
    window.panel.epochs.setValue(0.02)  # 5 steps of the 4000 bars
    old = window.session
    qtbot.mouseClick(window.panel.train_btn, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.session is not old, timeout=10000)
    session = window.session
    with qtbot.waitSignal(session.finished, timeout=60000):
        pass
    snap = session.last_frame.snapshot
    assert snap.event == "finished" and snap.step == session.trainer.total_steps
    assert np.isfinite(snap.nll.nats)
    assert window.model.info.key == family
    assert {k: window.model.hparams[k] for k in SMALL[family]} == SMALL[family]
    qtbot.waitUntil(lambda: window.training_view.image is not None, timeout=10000)
    assert window.training_view.image.dtype == np.uint8
    # the canvas offers the trained model
    window.tabs.setCurrentWidget(window.canvas_scroll)
    qtbot.waitUntil(lambda: any(e.model.info.key == family and "Training tab" in e.name
                                for e in window.canvas.entries), timeout=20000)
