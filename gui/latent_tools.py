"""The Latent space tab's tools: encoding a drawing (or projecting it onto a GAN's output) and
interpolating (A to B, linear or spherical, or a sweep along one slider). The tool boxes are
widgets; what their buttons do is :class:`ToolsMixin`, a part of the panel."""

from __future__ import annotations

import asyncio
import functools

import numpy as np
from PySide6.QtWidgets import (QComboBox, QGridLayout, QGroupBox, QHBoxLayout, QPushButton, QSpinBox,
                               QVBoxLayout, QWidget)

from core import latent
from core.latent import LatentError
from core.protocol import GenerativeModel
from gui.latent_views import ImageStrip
from gui.style import SteadyLabel

DEFAULT_STEPS = 10
IWAE_K = 1000  # importance samples for the bound of an encoded drawing
PROJECT_STEPS = 150  # Adam steps of a GAN projection
FRAME_MS = 90  # an interpolation frame
PULL_BUDGET_S = 0.015  # time one projection tick may take


class EncodeBox(QGroupBox):
    """Encode my drawing / a random validation digit; the drawing, its reconstruction (or the
    projection's image) side by side, and the bounds in nats."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__("Encode a drawing", parent)
        self.setObjectName("encodeBox")
        layout = QVBoxLayout(self)
        row = QHBoxLayout()
        self.drawing_btn = QPushButton("Encode my drawing", objectName="encodeDrawing")
        self.drawing_btn.setToolTip("encode the Canvas tab's drawing, mark it on the map and reconstruct it")
        self.random_btn = QPushButton("Encode a random digit", objectName="encodeRandom")
        self.random_btn.setToolTip("the same with a random validation digit")
        self.stop_btn = QPushButton("Stop", objectName="encodeStop", toolTip="stop the projection here")
        for w in (self.drawing_btn, self.random_btn, self.stop_btn):
            row.addWidget(w)
        layout.addLayout(row)
        self.view = ImageStrip(tiles=2, min_height=90)
        self.view.setToolTip("left: the drawing; right: its reconstruction (or the generator's closest image)")
        layout.addWidget(self.view)
        self.result_label = SteadyLabel(lines=3, objectName="encodeResult")
        layout.addWidget(self.result_label)

    def set_gan(self, gan: bool) -> None:
        """A GAN has no encoder: the buttons project the drawing onto its output instead."""
        verb = "Project" if gan else "Encode"
        self.setTitle("Project a drawing onto the generator" if gan else "Encode a drawing")
        self.drawing_btn.setText(f"{verb} my drawing")
        self.random_btn.setText(f"{verb} a random digit")


class InterpolateBox(QGroupBox):
    """A and B from the current point; an animated strip from A to B (linear or spherical), or
    a sweep along one dimension."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__("Interpolate", parent)
        self.setObjectName("interpolateBox")
        grid = QGridLayout(self)
        self.a_btn = QPushButton("A ← here", objectName="setA", toolTip="point A = the current z")
        self.b_btn = QPushButton("B ← here", objectName="setB", toolTip="point B = the current z")
        self.ab_label = SteadyLabel("A and B not set", 2, objectName="abLabel")
        grid.addWidget(self.a_btn, 0, 0)
        grid.addWidget(self.b_btn, 0, 1)
        grid.addWidget(self.ab_label, 0, 2, 1, 3)
        self.steps_spin = QSpinBox(objectName="interpSteps", prefix="steps ")
        self.steps_spin.setRange(2, 24)
        self.steps_spin.setValue(DEFAULT_STEPS)
        self.mode_combo = QComboBox(objectName="interpMode")
        self.mode_combo.addItem("linear", False)
        self.mode_combo.addItem("spherical (slerp)", True)
        self.play_btn = QPushButton("Play A → B", objectName="playAB")
        self.sweep_combo = QComboBox(objectName="sweepDim", toolTip="the dimension to sweep over the map's extent")
        self.sweep_btn = QPushButton("Sweep", objectName="sweep")
        self.stop_btn = QPushButton("Stop", objectName="interpStop")
        grid.addWidget(self.steps_spin, 1, 0)
        grid.addWidget(self.mode_combo, 1, 1)
        grid.addWidget(self.play_btn, 1, 2)
        grid.addWidget(self.sweep_combo, 1, 3)
        grid.addWidget(self.sweep_btn, 1, 4)
        grid.addWidget(self.stop_btn, 1, 5)
        self.strip = ImageStrip(tiles=DEFAULT_STEPS, min_height=60)
        self.strip.setObjectName("latentInterpolation")
        grid.addWidget(self.strip, 2, 0, 1, 6)

    @property
    def spherical(self) -> bool:
        return bool(self.mode_combo.currentData())


class ToolsMixin:
    """Encoding, projection and interpolation, as a mixin of :class:`gui.latent_panel.LatentPanel`
    (its ``state``, ``map``, ``encode_box``, ``interp_box``, ``jobs``, ``_animate``, ``_fail``)."""

    # -- encoding --------------------------------------------------------------------------------
    def _on_encode_drawing(self) -> None:
        self.encode("drawing")

    def _on_encode_random(self) -> None:
        self.encode("random")

    def _source_image(self, source: str, index: int | None = None) -> np.ndarray | None:
        if source == "random":
            digits = self.digits()
            if digits is None:
                self._say("no validation digits to pick from")
                return None
            i = int(self._rng.integers(len(digits))) if index is None else int(index) % len(digits)
            return digits[i].reshape(28, 28)
        image = self.drawing() if self.drawing is not None else None
        if image is None:
            self._say("no drawing: the Canvas tab is not connected")
        return image

    def encode(self, source: str = "drawing", index: int | None = None) -> asyncio.Task | bool | None:
        """Encode the Canvas tab's drawing (or a random validation digit) with the model's
        encoder, or project it onto a GAN's output (animated)."""
        e = self.entry
        if e is None:
            self._say("choose a latent model first")
            return None
        image = self._source_image(source, index)
        if image is None:
            return None
        try:
            x = latent.check_drawing(image)
        except LatentError as exc:
            self._fail("Cannot encode", exc)
            return False
        self.stop_animation()
        self.encode_box.view.set_images(np.stack([x.reshape(28, 28), np.zeros((28, 28), np.float32)]))
        if not e.has_encoder:
            items = latent.project(e.model, x, self.state.digit_or_none(), steps=PROJECT_STEPS)
            self.encode_box.result_label.setText("projecting…")
            self._animate(items, self._on_projection_step, self._on_projection_done, "Projection failed", None)
            self._update_controls()
            return True
        self.encode_box.result_label.setText("encoding…")
        return self.jobs.run(latent.encode_drawing, e.model, x, self.state.digit_or_none(), IWAE_K,
                             done=functools.partial(self._on_encoded, e.model), title="Cannot encode the drawing")

    def _on_encoded(self, model: GenerativeModel, enc: latent.Encoding) -> None:
        e = self.entry
        if e is None or e.model is not model:
            return  # the model changed meanwhile
        self.encoding = enc
        self.state.set_z(enc.z)
        self.map.show_encoded(enc.z)
        self.encode_box.view.set_images(np.stack([self.encode_box.view.images[0], enc.reconstruction]))
        if enc.elbo is not None:
            text = f"ELBO {enc.elbo:.2f} nats, IWAE (k={enc.iwae_k}) {enc.iwae:.2f} nats"
        else:
            text = f"{e.name} gives no likelihood: reconstruction only"
        self.encode_box.result_label.setText(text)
        self._say(f"encoded: {text}")

    def _on_projection_step(self, step: latent.ProjectionStep) -> None:
        self.projection = step
        view = self.encode_box.view
        view.set_images(np.stack([view.images[0], step.image]))
        self.encode_box.result_label.setText(f"projecting: step {step.step}/{PROJECT_STEPS}, "
                                             f"distance {step.distance:.4f} (mean squared pixel difference)")
        self.state.set_z(step.z)

    def _on_projection_done(self) -> None:
        step = self.projection
        self._update_controls()
        if step is None:
            return
        self.state.set_z(step.z)
        self.map.show_encoded(step.z)
        text = f"projected in {step.step} steps: distance {step.distance:.4f} (mean squared pixel difference)"
        self.encode_box.result_label.setText(text)
        self._say(text)

    # -- interpolation ---------------------------------------------------------------------------
    def _on_set_a(self) -> None:
        self.state.set_end("A")

    def _on_set_b(self) -> None:
        self.state.set_end("B")

    def interpolate(self) -> bool:
        """Play the strip from A to B (linear or slerp)."""
        try:
            path = self.state.path(self.interp_box.steps_spin.value(), self.interp_box.spherical)
        except LatentError as exc:
            self._fail("Cannot interpolate", exc)
            return False
        return self._play(path)

    def sweep(self) -> bool:
        """Play a sweep of one dimension over the map's extent, the others kept."""
        dim = self.interp_box.sweep_combo.currentData()
        try:
            path = self.state.sweep(int(dim) if dim is not None else -1, self.interp_box.steps_spin.value())
        except LatentError as exc:
            self._fail("Cannot sweep", exc)
            return False
        self.sliders.show_dim(int(dim))
        return self._play(path)

    def _play(self, path: np.ndarray) -> bool:
        e = self.entry
        if e is None:
            return False
        try:
            images = latent.decode(e.model, path, self.state.digit_or_none())
        except LatentError as exc:
            self._fail("Cannot decode", exc)
            return False
        self.stop_animation()
        self.frames = path
        self.interp_box.strip.set_images(images)
        self.map.show_path(path)
        self._animate(iter(range(len(path))), self._show_frame, self._on_play_done, "Animation failed",
                      1000.0 / FRAME_MS)
        self._update_controls()
        return True

    def _show_frame(self, k: int) -> None:
        self.interp_box.strip.mark(k)
        self.state.set_z(self.frames[k])

    def _on_play_done(self) -> None:
        self._update_controls()
