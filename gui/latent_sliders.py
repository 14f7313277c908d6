"""The Latent space tab's sliders: one per latent dimension, the dimensions that matter most first
(by KL for a VAE), ROWS at a time with buttons to page through the rest; a spin box beside each
for typing a value; Reset (z = 0) and Randomise (z ~ N(0, T^2 I)) with the temperature T.

The sliders write into the shared :class:`LatentState` and follow it (a map click, an encoding,
an animation move them too). A slider move changes z at once (valueChanged, while dragging)."""

from __future__ import annotations

import functools

import numpy as np
from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (QDoubleSpinBox, QGridLayout, QHBoxLayout, QLabel, QPushButton, QSlider,
                               QVBoxLayout, QWidget)

from core.latent import LatentError
from gui.latent_state import LATENT_RANGE, LatentState
from gui.style import SteadyLabel

ROWS = 8  # sliders shown at a time
SCALE = 100  # slider steps per unit of z
TYPE_LIMIT = 999.0  # what the spin boxes let one type (values beyond LATENT_RANGE are refused)


class LatentSliders(QWidget):
    """``refused(message)``: a typed value (or temperature) was refused; the panel shows it."""

    refused = Signal(str)

    def __init__(self, state: LatentState, parent: QWidget | None = None):
        super().__init__(parent)
        self.state = state
        self.page = 0  # first shown rank = page * ROWS
        self._rng = np.random.default_rng()
        self._build()
        state.observe(self._on_state)
        self._relabel()

    # -- layout ----------------------------------------------------------------------------------
    def _build(self) -> None:
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        grid = QGridLayout()
        self.labels: list[QLabel] = []
        self.sliders: list[QSlider] = []
        self.spins: list[QDoubleSpinBox] = []
        for r in range(ROWS):
            label = QLabel(objectName=f"latentLabel{r}")
            label.setMinimumWidth(44)
            slider = QSlider(Qt.Orientation.Horizontal, objectName=f"latentSlider{r}")
            slider.setRange(int(-LATENT_RANGE * SCALE), int(LATENT_RANGE * SCALE))
            slider.setSingleStep(5)
            slider.setPageStep(50)
            slider.valueChanged.connect(functools.partial(self._on_slider, r))
            spin = QDoubleSpinBox(objectName=f"latentSpin{r}")
            spin.setRange(-TYPE_LIMIT, TYPE_LIMIT)
            spin.setDecimals(2)
            spin.setSingleStep(0.1)
            spin.setKeyboardTracking(False)  # a typed value counts when Enter is pressed or focus leaves
            spin.setToolTip(f"type a value in [{-LATENT_RANGE:g}, {LATENT_RANGE:g}] and press Enter")
            spin.valueChanged.connect(functools.partial(self._on_spin, r))
            for c, w in enumerate((label, slider, spin)):
                grid.addWidget(w, r, c)
            self.labels.append(label)
            self.sliders.append(slider)
            self.spins.append(spin)
        grid.setColumnStretch(1, 1)
        layout.addLayout(grid)
        pager = QHBoxLayout()
        self.prev_btn = QPushButton("◀", objectName="latentPrev", toolTip=f"the previous {ROWS} dimensions")
        self.next_btn = QPushButton("▶", objectName="latentNext", toolTip=f"the next {ROWS} dimensions")
        self.page_label = SteadyLabel(lines=1, objectName="latentPageLabel")
        self.prev_btn.clicked.connect(self.previous_page)
        self.next_btn.clicked.connect(self.next_page)
        pager.addWidget(self.prev_btn)
        pager.addWidget(self.page_label, 1)
        pager.addWidget(self.next_btn)
        layout.addLayout(pager)
        layout.addLayout(self._build_buttons())

    def _build_buttons(self) -> QHBoxLayout:
        row = QHBoxLayout()
        self.reset_btn = QPushButton("Reset", objectName="latentReset", toolTip="z = 0")
        self.random_btn = QPushButton("Randomise", objectName="latentRandom",
                                      toolTip="z ~ N(0, T² I), T the temperature")
        self.temp_spin = QDoubleSpinBox(objectName="latentTemperature", prefix="T = ")
        self.temp_spin.setRange(0.05, LATENT_RANGE)
        self.temp_spin.setSingleStep(0.1)
        self.temp_spin.setValue(self.state.temperature)
        self.temp_spin.setToolTip("temperature of random draws: the spread of z around 0")
        self.reset_btn.clicked.connect(self.reset)
        self.random_btn.clicked.connect(self.randomise)
        self.temp_spin.valueChanged.connect(self._on_temperature)
        for w in (self.reset_btn, self.random_btn, self.temp_spin):
            row.addWidget(w)
        return row

    # -- what the rows show ----------------------------------------------------------------------
    def dim_of_row(self, r: int) -> int | None:
        rank = self.page * ROWS + r
        return int(self.state.order[rank]) if rank < len(self.state.order) else None

    def row_of_dim(self, dim: int) -> int | None:
        ranks = np.flatnonzero(self.state.order == dim)
        if not len(ranks) or ranks[0] // ROWS != self.page:
            return None
        return int(ranks[0] % ROWS)

    def _relabel(self) -> None:
        d = self.state.dim
        pages = max(1, -(-d // ROWS))
        self.page = min(self.page, pages - 1)
        for r in range(ROWS):
            dim = self.dim_of_row(r)
            for w in (self.labels[r], self.sliders[r], self.spins[r]):
                w.setVisible(dim is not None)
            if dim is not None:
                self.labels[r].setText(f"z{dim}")
        first, last = self.page * ROWS + 1, min(d, (self.page + 1) * ROWS)
        order = "by KL per dimension" if self.state.entry is not None and self.state.entry.is_bound else "in order"
        self.page_label.setText(f"dimensions {first}–{last} of {d} ({order})" if d else "no model")
        self.prev_btn.setEnabled(self.page > 0)
        self.next_btn.setEnabled(self.page < pages - 1)
        for w in (self.reset_btn, self.random_btn):
            w.setEnabled(d > 0)
        self._show_values()

    def _show_values(self) -> None:
        z = self.state.z
        for r in range(ROWS):
            dim = self.dim_of_row(r)
            if dim is None:
                continue
            v = float(z[dim])
            slider, spin = self.sliders[r], self.spins[r]
            tick = int(round(np.clip(v, -LATENT_RANGE, LATENT_RANGE) * SCALE))
            if slider.value() != tick:
                slider.blockSignals(True)
                slider.setValue(tick)
                slider.blockSignals(False)
            if abs(spin.value() - v) > 5e-3:
                spin.blockSignals(True)
                spin.setValue(v)
                spin.blockSignals(False)

    def _on_state(self, what: str) -> None:
        if what in ("model", "order"):
            if what == "model":
                self.page = 0
            self._relabel()
        elif what == "z":
            self._show_values()

    # -- user input ------------------------------------------------------------------------------
    def _on_slider(self, r: int, tick: int) -> None:
        dim = self.dim_of_row(r)
        if dim is not None:
            self.state.set_value(dim, tick / SCALE)  # always in range: the slider's own

    def _on_spin(self, r: int, value: float) -> None:
        dim = self.dim_of_row(r)
        if dim is None:
            return
        try:
            self.state.set_value(dim, value)
        except LatentError as exc:
            spin = self.spins[r]
            spin.blockSignals(True)
            spin.setValue(float(self.state.z[dim]))
            spin.blockSignals(False)
            self.refused.emit(str(exc))

    @Slot(float)
    def _on_temperature(self, t: float) -> None:
        try:
            self.state.set_temperature(t)
        except LatentError as exc:
            self.refused.emit(str(exc))

    @Slot()
    def reset(self) -> None:
        self.state.reset()

    @Slot()
    def randomise(self) -> None:
        self.state.randomise(self._rng)

    @Slot()
    def next_page(self) -> None:
        if (self.page + 1) * ROWS < self.state.dim:
            self.page += 1
            self._relabel()

    @Slot()
    def previous_page(self) -> None:
        if self.page > 0:
            self.page -= 1
            self._relabel()

    def show_dim(self, dim: int) -> None:
        """Page to the slider of dimension ``dim``."""
        ranks = np.flatnonzero(self.state.order == dim)
        if len(ranks):
            self.page = int(ranks[0]) // ROWS
            self._relabel()
