"""The Latent space tab, offscreen: sliders, the 2D map, encoding and projecting a drawing,
interpolation, conditional models, following the Training tab, and bad input.

Tiny models are made here and saved into a temporary weights folder: a VAE and an autoencoder
trained briefly on bar images (so that encoding and decoding mean something), an untrained
conditional VAE and DCGAN, and checkpoints the tab must refuse.
"""

from __future__ import annotations

from concurrent.futures import Future

import numpy as np
import pytest
import torch
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtTest import QTest

from core import latent, registry
from core.training import clone_model
from core.checkpoint import checkpoint_payload, save_checkpoint, write_checkpoint
from core.readouts import load_digits
from gui.latent_panel import DIGITS_FILE, LatentPanel
from gui.latent_state import TRAINING_KEY


def bar_images(n: int, seed: int = 0) -> np.ndarray:
    """(n, 784) binary images of one vertical bar (10 x 3 pixels) somewhere in the middle."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, 28, 28), np.float32)
    for i in range(n):
        r, c = rng.integers(4, 18, 2)
        x[i, r:r + 10, c:c + 3] = 1
    return x.reshape(n, 784)


def _train(model, x: np.ndarray, steps: int, lr: float = 3e-3):
    torch.manual_seed(0)
    model.configure_optimizer(lr)
    xt = torch.from_numpy(x)
    for i in range(steps):
        model.train_step(xt[(i % 8) * 50:(i % 8) * 50 + 50])
    return model.eval()


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("latent_weights")
    bars = bar_images(400)
    torch.manual_seed(0)
    vae = _train(registry.create("vae", (784,), "binary_image", latent=2, hidden=64, layers=1), bars, 400)
    save_checkpoint(folder / "vae.safetensors", vae)
    ae = _train(registry.create("ae", (784,), "binary_image", latent=3, hidden=64, layers=1), bars, 300)
    save_checkpoint(folder / "ae.safetensors", ae)
    save_checkpoint(folder / "cvae.safetensors", registry.create("cvae", (784,), latent=2, hidden=16, layers=1))
    save_checkpoint(folder / "dcgan.safetensors", registry.create("dcgan", (784,), latent=12, channels=8))
    # not latent models, or not this latent size
    save_checkpoint(folder / "nade.safetensors", registry.create("nade", (784,), hidden=4))
    tensors, _ = checkpoint_payload(registry.create("vae", (784,), latent=3, hidden=16, layers=1))
    _, meta = checkpoint_payload(registry.create("vae", (784,), latent=2, hidden=16, layers=1))
    write_checkpoint(folder / "vae-wrong-latent.safetensors", tensors, meta)
    return folder


class Drawing:
    """What the Canvas tab would hand over."""

    def __init__(self):
        self.image = bar_images(1, seed=5)[0].reshape(28, 28).astype(np.uint8)

    def __call__(self):
        return self.image.copy()


@pytest.fixture
def drawing():
    return Drawing()


@pytest.fixture
def panel(qtbot, aloop, weights, drawing):
    p = LatentPanel(weights_dir=weights, drawing=drawing, digits_loader=load_digits)
    qtbot.addWidget(p)
    p.resize(1300, 820)
    p.show()
    qtbot.waitExposed(p)
    qtbot.waitUntil(lambda: p.loaded, timeout=20000)
    yield p
    p.shutdown()


def choose(qtbot, panel, key):
    assert panel.select_model(key), [e.key for e in panel.entries]
    wait_map(qtbot, panel)
    return panel.entry


def wait_map(qtbot, panel):
    """Until the map shown is the current model's, for the current dimensions."""
    def ready():
        r = panel.map.result
        return (not panel._map_busy and r is not None and r.model_id == id(panel.entry.model)
                and r.dims == panel.state.dims)
    qtbot.waitUntil(ready, timeout=20000)


def wait(qtbot, task, timeout=20000):
    assert task not in (None, False)
    if task is not True:
        qtbot.waitUntil(task.done, timeout=timeout)
        assert task.exception() is None


def shown(panel) -> np.ndarray:
    return panel.image_view.images[0].copy()


# -- models -------------------------------------------------------------------------------------

def test_latent_models_load_others_are_passed_over_and_a_wrong_latent_size_is_said(panel):
    assert sorted(e.family for e in panel.entries) == ["ae", "cvae", "dcgan", "vae"]
    text = panel.models_label.text()
    assert "4 latent models" in text and "1 checkpoint of other families" in text
    assert "vae-wrong-latent.safetensors skipped" in text and "wrong shapes" in text
    # the default is the 2-dimensional VAE: the map is its whole latent space
    assert panel.entry.family == "vae" and panel.state.dim == 2


def test_a_checkpoint_of_another_family_is_refused_with_a_message(qtbot, panel, weights):
    before = panel.entry
    with qtbot.waitSignal(panel.error, timeout=20000) as sig:
        task = panel.open_checkpoint(weights / "nade.safetensors")
    assert "NADE" in sig.args[1] and "latent explorer shows" in sig.args[1]
    if task is not True and task is not False:
        qtbot.waitUntil(task.done)
    assert panel.entry is before and "NADE" in panel.message


# -- sliders ------------------------------------------------------------------------------------

def test_moving_a_slider_redraws_the_image_while_dragging(qtbot, panel):
    choose(qtbot, panel, "vae")
    s = panel.sliders
    first = int(panel.state.order[0])
    assert s.labels[0].text() == f"z{first}" and "by KL" in s.page_label.text()
    before = shown(panel)
    slider = s.sliders[0]
    # a drag: press on the handle, move; the image changes before the button is released
    centre = slider.rect().center()
    QTest.mousePress(slider, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, centre)
    QTest.mouseMove(slider, QPoint(slider.width() - 5, centre.y()))
    assert panel.state.z[first] > 1.0
    during = shown(panel)
    assert np.abs(during - before).max() > 0.05
    np.testing.assert_allclose(during, latent.decode(panel.entry.model, panel.state.z)[0])
    QTest.mouseRelease(slider, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier,
                       QPoint(slider.width() - 5, centre.y()))
    assert abs(s.spins[0].value() - panel.state.z[first]) < 0.01
    assert panel.decode_ms is not None and panel.decode_ms < 50


def test_the_drawn_pixels_are_pyqtgraphs_grey_levels_in_rgb32(qtbot, panel):
    """The image items draw RGB32 (Qt's fast scaling path) holding exactly the grey levels
    pyqtgraph's own Grayscale8 rendering gives, for the digit and the map alike."""
    import pyqtgraph as pg
    from PySide6.QtGui import QImage

    choose(qtbot, panel, "vae")
    panel.sliders.sliders[0].setValue(120)
    qtbot.waitUntil(lambda: panel.image_view.item.qimage is not None)
    for item, img in ((panel.image_view.item, panel.image_view.images[0]),
                      (panel.map.image, panel.map.result.mosaic[::-1])):
        item.render()
        assert item.qimage.format() == QImage.Format.Format_RGB32
        plain = pg.ImageItem(axisOrder="row-major")
        plain.setImage(np.ascontiguousarray(img, np.float32), levels=(0.0, 1.0), autoLevels=False)
        plain.render()
        assert plain.qimage.format() == QImage.Format.Format_Grayscale8
        assert plain.qimage.convertToFormat(QImage.Format.Format_RGB32) == item.qimage
    # out-of-range values are clipped as pyqtgraph clips them
    edge = np.linspace(-0.5, 1.5, 28 * 28, dtype=np.float32).reshape(28, 28)
    panel.image_view.set_image(edge)
    panel.image_view.item.render()
    plain.setImage(edge, levels=(0.0, 1.0), autoLevels=False)
    plain.render()
    assert plain.qimage.convertToFormat(QImage.Format.Format_RGB32) == panel.image_view.item.qimage


def test_a_slider_move_decodes_on_the_gui_threads_pinned_torch_threads(qtbot, panel):
    from gui.latent_state import DRAG_THREADS

    choose(qtbot, panel, "dcgan")
    before = torch.get_num_threads()
    torch.set_num_threads(DRAG_THREADS + 1)  # what torch starts with on a machine with more cores
    try:
        panel.sliders.sliders[0].setValue(77)
        assert torch.get_num_threads() == DRAG_THREADS
    finally:
        torch.set_num_threads(before)
    np.testing.assert_allclose(shown(panel), latent.decode(panel.entry.model, panel.state.z)[0])


def test_dragging_a_slider_does_not_relayout_the_tab(qtbot, panel):
    """A move repaints the digit, the slider, its value and the timing line; none of them asks the
    tab's layouts to recompute (a QLabel for the timing did, at every new text)."""
    from PySide6.QtCore import QEvent, QObject
    from PySide6.QtWidgets import QApplication

    class Count(QObject):
        n = 0

        def eventFilter(self, obj, ev):
            if ev.type() == QEvent.Type.LayoutRequest:
                Count.n += 1
            return False

    choose(qtbot, panel, "vae")
    qtbot.wait(100)
    counter = Count()
    QApplication.instance().installEventFilter(counter)
    try:
        for i in range(12):
            panel.sliders.sliders[0].setValue(40 * i - 200)
            qtbot.wait(45)  # the timing line's timer (ROW_MS) fires between moves
    finally:
        QApplication.instance().removeEventFilter(counter)
    assert panel.decode_label.text().startswith("decoded in")
    assert Count.n == 0


def test_reset_randomise_and_temperature(qtbot, panel):
    choose(qtbot, panel, "ae")
    s = panel.sliders
    s.temp_spin.setValue(0.5)
    qtbot.mouseClick(s.random_btn, Qt.MouseButton.LeftButton)
    z = panel.state.z.copy()
    assert z.shape == (3,) and np.abs(z).max() > 0 and np.abs(z).max() < 0.5 * 6
    for r in range(3):
        assert abs(s.spins[r].value() - z[s.dim_of_row(r)]) < 0.01
    assert not s.sliders[3].isVisible()  # only as many rows as dimensions
    qtbot.mouseClick(s.reset_btn, Qt.MouseButton.LeftButton)
    assert not panel.state.z.any()
    np.testing.assert_allclose(shown(panel), latent.decode(panel.entry.model, np.zeros(3))[0])


def test_a_value_typed_out_of_range_is_refused_with_a_message(qtbot, panel):
    choose(qtbot, panel, "vae")
    spin = panel.sliders.spins[1]
    dim = panel.sliders.dim_of_row(1)
    spin.lineEdit().selectAll()
    with qtbot.waitSignal(panel.error, timeout=5000) as sig:
        qtbot.keyClicks(spin.lineEdit(), "7.5")
        qtbot.keyClick(spin.lineEdit(), Qt.Key.Key_Return)
    assert "refused" in sig.args[1] and "-4 to 4" in sig.args[1]
    assert panel.state.z[dim] == 0.0 and spin.value() == 0.0 and "refused" in panel.message_label.text()
    spin.lineEdit().selectAll()
    qtbot.keyClicks(spin.lineEdit(), "-2.5")
    qtbot.keyClick(spin.lineEdit(), Qt.Key.Key_Return)
    assert panel.state.z[dim] == pytest.approx(-2.5)
    assert panel.sliders.sliders[1].value() == -250


def test_paging_reaches_every_dimension_of_a_large_latent(qtbot, panel):
    choose(qtbot, panel, "dcgan")
    s = panel.sliders
    assert panel.state.dim == 12 and s.prev_btn.isEnabled() is False
    assert [s.dim_of_row(r) for r in range(8)] == list(range(8))  # a GAN's noise: index order
    qtbot.mouseClick(s.next_btn, Qt.MouseButton.LeftButton)
    assert [s.dim_of_row(r) for r in range(4)] == [8, 9, 10, 11] and not s.sliders[4].isVisible()
    assert "9–12 of 12" in s.page_label.text() and not s.next_btn.isEnabled()
    s.sliders[3].setValue(-150)
    assert panel.state.z[11] == pytest.approx(-1.5)


# -- the map ------------------------------------------------------------------------------------

def test_map_mosaic_and_the_validation_digits_scatter(qtbot, panel):
    e = choose(qtbot, panel, "vae")
    r = panel.map.result
    assert r.mosaic.shape == (16 * 28, 16 * 28) and r.mosaic.dtype == np.float32
    np.testing.assert_array_equal(r.mosaic, latent.decode_map(e.model, np.zeros(2), (0, 1), 3.0, 16))
    xs, ys = panel.map.scatter.getData()
    assert len(xs) == 500
    expect = e.model.encode(torch.from_numpy(load_digits().astype(np.float32))).numpy()
    np.testing.assert_allclose(xs, expect[:, 0], rtol=1e-5, atol=1e-5)
    # the shipped digits carry the classifier's reading of each: one colour per digit
    assert "coloured by the digit" in panel.map.caption.text() and "decoded in" in panel.map.caption.text()
    labels = np.load(DIGITS_FILE)["labels"]
    brushes = panel.map.scatter.data["brush"]
    assert len({b.color().name() for b in brushes}) == len(set(labels.tolist())) == 10
    assert panel.map_ms is not None


def click_map(panel, x: float, y: float) -> None:
    view = panel.map.view
    pos = view.mapFromScene(panel.map.vb.mapViewToScene(QPointF(x, y)))
    QTest.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, pos)


def test_a_map_click_sets_z_to_the_clicked_point(qtbot, panel):
    choose(qtbot, panel, "vae")
    click_map(panel, 1.25, -2.0)
    z = panel.state.z
    tol = 2 * 6.0 / panel.map.vb.width() + 0.01  # a pixel or two of the view
    assert abs(z[0] - 1.25) < tol and abs(z[1] + 2.0) < tol
    np.testing.assert_allclose(shown(panel), latent.decode(panel.entry.model, z)[0])
    mx, my = panel.map.marker.getData()
    assert (mx[0], my[0]) == (pytest.approx(z[0]), pytest.approx(z[1]))
    row = panel.sliders.row_of_dim(0)
    assert abs(panel.sliders.spins[row].value() - z[0]) < 0.01


def test_the_image_under_a_click_is_the_map_tile_drawn_there(qtbot, panel):
    """What the map draws at a point (the view's y grows upwards) is what the point decodes to:
    the mosaic is neither mirrored nor shifted."""
    choose(qtbot, panel, "vae")
    ticks = np.linspace(-3, 3, 16)
    x, y = ticks[3], ticks[14]  # a tile's centre near the top left: the largest y, a small x
    click_map(panel, x, y)
    item = panel.map.image
    p = item.mapFromView(QPointF(x, y))  # (column, row) of the image data drawn there
    r, c = int(p.y()) // 28, int(p.x()) // 28
    drawn = item.image[r * 28:(r + 1) * 28, c * 28:(c + 1) * 28][::-1]  # as it looks with y up
    err = np.abs(shown(panel) - drawn).mean()
    assert err < 0.02 and err < 0.5 * np.abs(shown(panel) - drawn[::-1]).mean()


def test_changing_the_map_dimensions_and_redrawing_when_the_others_move(qtbot, panel):
    e = choose(qtbot, panel, "ae")
    panel.map.y_combo.setCurrentIndex(2)
    assert panel.state.dims == (0, 2)
    wait_map(qtbot, panel)
    panel.state.set_value(1, 1.5)  # a dimension off the map: the map is redrawn through it
    qtbot.waitUntil(lambda: panel.map.result is not None and panel.map.result.mosaic is not None
                    and np.array_equal(panel.map.result.mosaic,
                                       latent.decode_map(e.model, panel.state.z, (0, 2), 3.0, 16)), timeout=20000)
    panel.map.y_combo.setCurrentIndex(0)  # the same dimension twice: refused
    assert panel.state.dims == (0, 2) and "two different" in panel.message


# -- encoding -----------------------------------------------------------------------------------

@pytest.mark.parametrize("family", ["vae", "ae"])
def test_encoding_a_drawing_and_decoding_its_mean_gives_it_back(qtbot, panel, drawing, family):
    e = choose(qtbot, panel, family)
    wait(qtbot, panel.encode("drawing"))
    enc = panel.encoding
    np.testing.assert_array_equal(panel.state.z, enc.z)
    x = drawing.image.astype(np.float32)
    back = latent.decode(e.model, enc.z)[0]
    err = np.abs(back - x).mean()
    # close to the drawing, and much closer than the image of the centre of the latent space
    assert err < 0.06, err
    assert err < 0.5 * np.abs(latent.decode(e.model, np.zeros_like(enc.z))[0] - x).mean()
    np.testing.assert_allclose(panel.encode_box.view.images[1], back)
    np.testing.assert_array_equal(panel.encode_box.view.images[0], x)
    ex, ey = panel.map.encoded.getData()
    assert (ex[0], ey[0]) == (pytest.approx(enc.z[0]), pytest.approx(enc.z[1]))
    text = panel.encode_box.result_label.text()
    if family == "vae":
        assert text.startswith("ELBO ") and "IWAE (k=1000)" in text and text.endswith("nats")
        assert enc.iwae >= enc.elbo - 1.0
    else:
        assert "reconstruction only" in text


def test_an_empty_drawing_is_refused_with_a_message(qtbot, panel, drawing):
    choose(qtbot, panel, "vae")
    drawing.image[:] = 0
    z = panel.state.z.copy()
    with qtbot.waitSignal(panel.error, timeout=5000) as sig:
        assert panel.encode("drawing") is False
    assert "empty" in sig.args[1] and "empty" in panel.message_label.text()
    np.testing.assert_array_equal(panel.state.z, z)


def test_a_random_validation_digit_is_encoded(qtbot, panel):
    choose(qtbot, panel, "vae")
    wait(qtbot, panel.encode("random", index=3))
    np.testing.assert_array_equal(panel.encode_box.view.images[0], load_digits()[3].reshape(28, 28))
    assert panel.encoding is not None and "ELBO" in panel.encode_box.result_label.text()


def test_a_gan_projects_the_drawing_step_by_step_and_ends_with_z_set(qtbot, panel):
    choose(qtbot, panel, "dcgan")
    assert panel.encode_box.drawing_btn.text() == "Project my drawing"
    assert panel.encode("drawing") is True
    assert panel.puller.running and panel.encode_box.stop_btn.isEnabled()
    qtbot.waitUntil(lambda: panel.projection is not None and 1 < panel.projection.step, timeout=20000)
    assert "projecting: step" in panel.encode_box.result_label.text()
    qtbot.waitUntil(lambda: not panel.puller.running, timeout=60000)
    step = panel.projection
    assert step.step == 150 and "distance" in panel.encode_box.result_label.text()
    np.testing.assert_array_equal(panel.state.z, step.z)
    np.testing.assert_allclose(panel.encode_box.view.images[1], step.image)
    # the generator is left as it was: no gradients kept on
    assert all(p.requires_grad for p in panel.entry.model.parameters())


# -- interpolation ------------------------------------------------------------------------------

@pytest.mark.parametrize("spherical", [False, True])
def test_interpolation_strip_ends_are_decode_a_and_decode_b(qtbot, panel, spherical):
    e = choose(qtbot, panel, "ae")
    ib = panel.interp_box
    assert not ib.play_btn.isEnabled()
    a, b = np.array([1.0, -0.5, 2.0], np.float32), np.array([-2.0, 1.5, 0.25], np.float32)
    panel.state.set_z(a)
    qtbot.mouseClick(ib.a_btn, Qt.MouseButton.LeftButton)
    panel.state.set_z(b)
    qtbot.mouseClick(ib.b_btn, Qt.MouseButton.LeftButton)
    ib.mode_combo.setCurrentIndex(1 if spherical else 0)
    ib.steps_spin.setValue(7)
    qtbot.mouseClick(ib.play_btn, Qt.MouseButton.LeftButton)
    strip = ib.strip.images
    assert strip.shape == (7, 28, 28)
    # equal up to float rounding (the strip is decoded as one batch)
    np.testing.assert_allclose(strip[0], latent.decode(e.model, a)[0], atol=1e-6)
    np.testing.assert_allclose(strip[-1], latent.decode(e.model, b)[0], atol=1e-6)
    np.testing.assert_allclose(panel.frames, latent.interpolate(a, b, 7, spherical))
    qtbot.waitUntil(lambda: not panel.puller.running, timeout=20000)
    np.testing.assert_array_equal(panel.state.z, b)  # the animation ends at B


def test_sweep_along_one_slider(qtbot, panel):
    e = choose(qtbot, panel, "ae")
    panel.state.set_z(np.array([0.5, 0.5, 0.5], np.float32))
    ib = panel.interp_box
    ib.sweep_combo.setCurrentIndex(ib.sweep_combo.findData(2))
    ib.steps_spin.setValue(5)
    assert panel.sweep()
    path = panel.frames
    assert path[:, 2].tolist() == [-3.0, -1.5, 0.0, 1.5, 3.0] and (path[:, :2] == 0.5).all()
    np.testing.assert_allclose(ib.strip.images, latent.decode(e.model, path))
    qtbot.waitUntil(lambda: not panel.puller.running, timeout=20000)


def test_interpolating_without_a_and_b_says_so(qtbot, panel):
    choose(qtbot, panel, "vae")
    with qtbot.waitSignal(panel.error, timeout=5000) as sig:
        assert panel.interpolate() is False
    assert "A and B" in sig.args[1]


# -- conditional models -------------------------------------------------------------------------

def test_the_conditional_vae_keeps_z_when_the_digit_changes(qtbot, panel):
    e = choose(qtbot, panel, "cvae")
    assert panel.digit_combo.isEnabled() and panel.row_box.isVisible()
    z = np.array([0.7, -1.2], np.float32)
    panel.state.set_z(z)
    panel.digit_combo.setCurrentIndex(3)
    three = shown(panel)
    panel.digit_combo.setCurrentIndex(8)
    eight = shown(panel)
    np.testing.assert_array_equal(panel.state.z, z)
    assert np.abs(three - eight).max() > 1e-3
    np.testing.assert_allclose(eight, latent.decode(e.model, z, 8)[0])
    qtbot.waitUntil(lambda: panel.digit_row.images is not None and len(panel.digit_row.images) == 10, timeout=5000)
    qtbot.waitUntil(lambda: np.allclose(panel.digit_row.images[3], latent.decode(e.model, z, 3)[0], atol=1e-6),
                    timeout=5000)
    wait_map(qtbot, panel)
    # a conditional encoder reads each digit's label: the shipped digits carry them
    assert "500 validation digits encoded" in panel.map.caption.text()


def test_an_unconditional_model_has_no_digit_to_choose(qtbot, panel):
    choose(qtbot, panel, "vae")
    assert not panel.digit_combo.isEnabled() and not panel.row_box.isVisible()


# -- the Training tab's model ---------------------------------------------------------------------

def test_the_training_tabs_model_is_followed_live(qtbot, aloop, weights):
    model = registry.create("vae", (784,), latent=2, hidden=16, layers=1)
    step = [10]

    def copy(m):  # a future of a copy, as MainWindow.copy_model gives (here: made at once)
        done = Future()
        done.set_result(clone_model(m))
        return done

    p = LatentPanel(weights_dir=weights, training_model=lambda: (model, None, step[0]), copy_model=copy,
                    digits_loader=load_digits)
    qtbot.addWidget(p)
    p.show()
    qtbot.waitUntil(lambda: p.loaded, timeout=20000)
    try:
        assert p.select_model(TRAINING_KEY)
        wait_map(qtbot, p)
        first = p.map.result.mosaic.copy()
        assert "step 10" in p.entry.name and p.entry.model is not model
        assert p._follow_timer.isActive() and p._follow_timer.interval() <= 1000
        wait(qtbot, p.encode("random", index=0))
        p.state.set_z(np.array([0.5, 0.25], np.float32))
        with torch.no_grad():
            for q in model.decoder.parameters():
                q.add_(0.5)
        step[0] = 11
        p.refresh_training_model()  # what the follow timer calls every second
        assert "step 11" in p.entry.name
        np.testing.assert_array_equal(p.state.z, [0.5, 0.25])  # z kept, and the encoded point
        assert len(p.map.encoded.getData()[0]) == 1 and p.encoding is not None
        wait_map(qtbot, p)
        assert not np.array_equal(p.map.result.mosaic, first)
        np.testing.assert_allclose(shown(p), latent.decode(model, p.state.z)[0], atol=1e-6)
        p.hide()
        assert not p._follow_timer.isActive()  # only while the tab is shown
    finally:
        p.shutdown()


def test_nan_in_a_decoded_batch_is_a_message_not_a_crash(qtbot, aloop, weights):
    broken = registry.create("ae", (784,), latent=2, hidden=8, layers=1)
    with torch.no_grad():
        broken.decoder[0].weight.fill_(float("nan"))
    p = LatentPanel(weights_dir=weights, training_model=lambda: (broken, None, 3), digits_loader=load_digits)
    qtbot.addWidget(p)
    errors = []
    p.error.connect(lambda title, message: errors.append(message))
    p.show()
    qtbot.waitUntil(lambda: p.loaded, timeout=20000)
    try:
        assert p.select_model(TRAINING_KEY)
        qtbot.waitUntil(lambda: not p._map_busy and "failed" in p.map.caption.text(), timeout=20000)
        assert any("NaN" in m for m in errors) and "NaN" in p.message_label.text()
        n = len(errors)
        for v in (50, 100, 150):  # dragging over a broken model: one message, not one per move
            p.sliders.sliders[0].setValue(v)
        assert len(errors) == n
        assert p.select_model("vae")  # and the tab works on
        assert np.isfinite(shown(p)).all()
    finally:
        p.shutdown()


# -- in the window ----------------------------------------------------------------------------------

def test_latent_tab_in_the_window(qtbot, window, weights):
    lat = window.latent
    tabs = window.tabs
    assert tabs.tabText(tabs.indexOf(window.latent_scroll)) == "Latent space"
    assert tabs.indexOf(window.latent_scroll) == tabs.indexOf(window.canvas_scroll) + 1
    lat.weights_dir = weights
    window.canvas.state.set_image(Drawing().image)
    qtbot.keyClick(window, Qt.Key.Key_4, Qt.KeyboardModifier.ControlModifier)
    assert tabs.currentWidget() is window.latent_scroll
    qtbot.waitUntil(lambda: lat.loaded, timeout=20000)
    assert lat.select_model("vae")
    wait_map(qtbot, lat)
    wait(qtbot, lat.encode("drawing"))
    np.testing.assert_array_equal(lat.encode_box.view.images[0], Drawing().image)
    spin = lat.sliders.spins[0]
    spin.lineEdit().selectAll()
    qtbot.keyClicks(spin.lineEdit(), "-9")
    qtbot.keyClick(spin.lineEdit(), Qt.Key.Key_Return)
    assert "refused" in window.last_error  # shown by the window, in a message box
    window.model = registry.create("nade", (784,), hidden=4)  # not a latent model: not offered here
    window.model_step = 5
    lat.refresh_training_model()
    assert TRAINING_KEY not in [e.key for e in lat.entries]
    lat.sliders.temp_spin.setValue(0.7)
    lat.map.extent_spin.setValue(2.5)
    window.save_settings()
    s = window.settings
    assert s.value("latent/model") == str(weights / "vae.safetensors")
    assert float(s.value("latent/temperature")) == pytest.approx(0.7)
    assert float(s.value("latent/extent")) == pytest.approx(2.5) and s.value("latent/dims") == "0,1"
