"""Every latent family trains from the Training tab (the worker, its curves and samples) and the
Latent space tab follows the model being trained; a GAN's two losses are plotted."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import Qt

from gui.hparam_editors import set_editor_value
from gui.latent_state import TRAINING_KEY

SMALL = {
    "vae": {"hidden": 16, "latent": 2},
    "ae": {"hidden": 16, "latent": 2},
    "dcgan": {"channels": 8, "latent": 4},
    "cvae": {"hidden": 16, "latent": 2},
    "cgan": {"channels": 8, "latent": 4},
}


def _train(qtbot, window, family: str, data: str, epochs: float) -> None:
    assert window.picker.select(family)
    window.panel.data_combo.setCurrentIndex(window.panel.data_combo.findData(data))
    if data == "mnist_digits":
        window.panel.data_path.setText("")  # the checked download, from the tests' loopback mirror
    for name, value in SMALL[family].items():
        set_editor_value(window.panel.editors[name], value)
    window.panel.editors["batch_size"].setValue(16)
    window.panel.epochs.setValue(epochs)
    old = window.session
    qtbot.mouseClick(window.panel.train_btn, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.session is not old, timeout=10000)
    with qtbot.waitSignal(window.session.finished, timeout=60000):
        pass
    snap = window.session.last_frame.snapshot
    assert snap.event == "finished" and snap.step == window.session.trainer.total_steps
    assert window.model.info.key == family
    qtbot.waitUntil(lambda: window.training_view.image is not None, timeout=10000)


def _latent_tab_follows(qtbot, window, family: str) -> None:
    window.tabs.setCurrentWidget(window.latent_scroll)
    qtbot.waitUntil(lambda: window.latent.loaded, timeout=20000)
    qtbot.waitUntil(lambda: any(e.key == TRAINING_KEY and e.family == family for e in window.latent.entries),
                    timeout=20000)
    assert window.latent.select_model(TRAINING_KEY)
    assert window.latent.entry.model is not window.model  # a copy, not the trained model itself
    assert "Training tab" in window.latent.entry.name


@pytest.mark.parametrize("family", ["vae", "ae", "dcgan"])
def test_latent_family_trains_in_the_training_tab_and_reaches_the_latent_tab(qtbot, window, family):
    _train(qtbot, window, family, "bars", 0.02)  # 5 steps of the 4000 bars
    snap = window.session.last_frame.snapshot
    if family == "vae":  # a bound, named as one
        assert snap.nll is not None and snap.nll.is_bound and np.isfinite(snap.nll.nats)
    gan = window.training_view.gan
    if family == "dcgan":  # both losses plotted beside their sum
        assert gan["d_loss"].n > 0 and gan["g_loss"].n > 0
        assert window.training_view.gan_curves["d_loss"].scene() is not None
        legend = window.training_view.plot.plotItem.legend
        assert {"discriminator loss", "generator loss"} <= {label.text for _, label in legend.items}
    else:
        assert gan["d_loss"].n == 0
    _latent_tab_follows(qtbot, window, family)


@pytest.mark.parametrize("family", ["cvae", "cgan"])
def test_conditional_latent_family_trains_on_labelled_digits(qtbot, window, mnist_mirror, family):
    _train(qtbot, window, family, "mnist_digits", 0.1)
    assert "one class per column" in window.training_view.caption.text()
    _latent_tab_follows(qtbot, window, family)
