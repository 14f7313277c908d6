"""The sequence panel: watch an autoregressive sequence model (WaveNet) write waveforms step by
step, optionally continuing a real held-out sequence.

A self-contained widget: give it a weights folder (it loads the first sequence model it finds
there, ``wavenet-waves.safetensors`` first) or any SEQUENCE model with ``complete_steps`` through
:meth:`SequencePanel.set_model`. **Sample** starts ``model.complete_steps`` on the GUI thread;
the paced puller of :mod:`gui.jobs` pulls from it at the chosen speed (1 ... 1024 steps a second,
or full speed) and never for longer than a time budget per tick, so the window stays smooth
whatever the model's cost.
Each tick redraws the candidates' curves (``setData``), the primed prefix, the real continuation
(dashed) and, beside the curves on the same value axis, the next step's distribution of every
candidate as a heat strip (one column per candidate; the step's ``p`` is (M, levels), spread over
each bin's value range, so mu-law bins land where they belong).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyqtgraph as pg
import torch
from PySide6.QtCore import QRectF, Qt, Slot
from PySide6.QtWidgets import (QComboBox, QFormLayout, QHBoxLayout, QLabel, QPushButton, QSlider,
                               QSpinBox, QVBoxLayout, QWidget)

from core import data as datasets
from core.checkpoint import CheckpointError, load_checkpoint, read_checkpoint_meta
from core.protocol import CompletionStep, DataKind, GenerativeModel
from gui.jobs import PacedPuller
from gui.style import COLORS, SteadyLabel, fixed_width

MAX_CANDIDATES = len(COLORS)
#: value rows of the distribution strip over [-1, 1]
STRIP_ROWS = 256
#: the model file the panel looks for first in a weights folder
PREFERRED_WEIGHTS = "wavenet-waves.safetensors"
FULL_SPEED = 11  # the speed slider's top position


def speed_of(position: int) -> float | None:
    """Steps per second for a speed slider position: 1, 2, 4 ... 1024, or None (full speed)."""
    return None if position >= FULL_SPEED else 2.0 ** (position - 1)


def find_sequence_checkpoint(folder: str | os.PathLike) -> Path | None:
    """The first checkpoint in ``folder`` of a model trained on sequences (the preferred name
    first, then in name order); None when there is none. Unreadable files are skipped."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    files = sorted(folder.glob("*.safetensors"), key=lambda p: (p.name != PREFERRED_WEIGHTS, p.name))
    for path in files:
        try:
            meta = read_checkpoint_meta(path)
        except CheckpointError:
            continue
        if meta.data_kind is DataKind.SEQUENCE:
            return path
    return None


class SequencePanel(QWidget):
    """Sample or continue sequences with a SEQUENCE model, animated step by step."""

    def __init__(self, weights_dir: str | os.PathLike | None = None, parent: QWidget | None = None,
                 tick_ms: int = 16, budget_ms: float = 10.0):
        super().__init__(parent)
        self.model: GenerativeModel | None = None
        self.valid: np.ndarray | None = None  # real held-out sequences, for the prime
        self.budget_s = budget_ms / 1000.0
        self._x: np.ndarray | None = None  # (M, T) candidates drawn so far
        self._p: np.ndarray | None = None  # (M, levels) the last step's distribution
        self._t = -1  # the last time step drawn
        self._prefix = 0
        self._last: CompletionStep | None = None  # the last step pulled
        self._row_bins: np.ndarray | None = None  # (STRIP_ROWS,) bin of each strip row
        self._row_scale: np.ndarray | None = None  # (levels,) 1 / bin width
        self.drawn = 0  # steps drawn in the current run
        self._strip_columns = 0
        self._build()
        self.puller = PacedPuller(self, tick_ms, self.budget_s)
        self._set_running(False)
        if weights_dir is not None:
            self.load_weights(weights_dir)

    # -- layout ----------------------------------------------------------------------------------
    def _build(self) -> None:
        pg.setConfigOptions(antialias=False, imageAxisOrder="row-major")
        layout = QHBoxLayout(self)
        layout.addWidget(self._build_view(), 1)
        layout.addWidget(self._build_controls())

        self.sample_btn.clicked.connect(self.sample)
        self.stop_btn.clicked.connect(self.stop)
        self.speed.valueChanged.connect(self._on_speed)
        for w in (self.example, self.prefix):
            w.valueChanged.connect(self._on_prime_changed)
        self.prime.currentIndexChanged.connect(self._on_prime_changed)
        self.candidates.valueChanged.connect(self._on_candidates)
        self._on_speed(self.speed.value())
        self._update_prime_widgets()

    def _build_view(self) -> pg.GraphicsLayoutWidget:
        """The candidates' curves and, on the same value axis, the next step's distribution strip."""
        self.view = pg.GraphicsLayoutWidget()
        self.view.setObjectName("sequenceView")
        self.plot = self.view.addPlot(row=0, col=0)
        self.plot.setLabel("bottom", "time step")
        self.plot.setLabel("left", "value")
        self.plot.setMenuEnabled(False)
        self.plot.setYRange(-1.05, 1.05, padding=0)
        self.plot.addLegend(offset=(10, 10), labelTextColor="w")
        # the real sequence in a light, thick dash: visible on the black background
        self.truth = self.plot.plot(pen=pg.mkPen(235, 235, 235, 230, width=2, style=Qt.PenStyle.DashLine),
                                    name="real sequence (dashed)")
        self.prefix_curve = self.plot.plot(pen=pg.mkPen("w", width=3), name="prime given to the model")
        self.curves = [self.plot.plot(pen=pg.mkPen(c, width=1.5), name="candidates, one colour each" if i == 0
                                      else None) for i, c in enumerate(COLORS)]
        self.cursor = pg.InfiniteLine(angle=90, pen=pg.mkPen(255, 255, 255, 80))
        self.plot.addItem(self.cursor)
        self.strip_plot = self.view.addPlot(row=0, col=1)
        self.strip_plot.setMenuEnabled(False)
        self.strip_plot.setMouseEnabled(False, False)
        self.strip_plot.hideAxis("left")
        self.strip_plot.setLabel("bottom", "next step")
        self.strip_plot.setYLink(self.plot)
        self.view.ci.layout.setColumnStretchFactor(0, 6)
        self.view.ci.layout.setColumnStretchFactor(1, 1)
        self.strip = pg.ImageItem(axisOrder="row-major")
        self.strip.setLookupTable(pg.colormap.get("viridis").getLookupTable(nPts=256))
        self.strip_plot.addItem(self.strip)
        self._set_strip_columns(4)  # one column per candidate, before the first sample too
        return self.view

    def _set_strip_columns(self, columns: int) -> None:
        """The strip's x axis: one column per candidate, numbered under the columns' centres."""
        self._strip_columns = columns
        self.strip_plot.getAxis("bottom").setTicks([[(i + 0.5, str(i + 1)) for i in range(columns)]])
        self.strip_plot.setXRange(0, columns, padding=0)

    @Slot()
    def reset_view(self) -> None:
        """The whole sequence and value range in view again."""
        length = self.model.data_shape[0] if self.model is not None else 128
        self.plot.setXRange(0, length - 1, padding=0.01)
        self.plot.setYRange(-1.05, 1.05, padding=0)

    def _build_controls(self) -> QWidget:
        """The model line, prime, candidates, seed and speed, the buttons and the status line."""
        self.model_label = SteadyLabel("No model: train a WaveNet or load weights.", 2, objectName="sequenceModel")
        self.prime = QComboBox(objectName="sequencePrime")
        self.prime.addItem("nothing (sample from scratch)", "none")
        self.prime.addItem("a validation sequence", "valid")
        self.example = QSpinBox(objectName="sequenceExample")
        self.example.setToolTip("which held-out sequence primes the model")
        self.prefix = QSpinBox(objectName="sequencePrefix")
        self.prefix.setToolTip("time steps of the held-out sequence given to the model")
        self.candidates = QSpinBox(objectName="sequenceCandidates")
        self.candidates.setRange(1, MAX_CANDIDATES)
        self.candidates.setValue(4)
        self.seed = QSpinBox(objectName="sequenceSeed")
        self.seed.setRange(0, 2**31 - 1)
        self.speed = QSlider(Qt.Orientation.Horizontal, objectName="sequenceSpeed")
        self.speed.setRange(1, FULL_SPEED)
        self.speed.setValue(7)
        self.speed.setToolTip("steps per second: 1, 2, 4 … 1024, or full speed")
        self.speed_label = fixed_width(QLabel(), "1024 steps/s")
        self.sample_btn = QPushButton("Sample", objectName="sequenceSample")
        self.stop_btn = QPushButton("Stop", objectName="sequenceStop")
        self.status = SteadyLabel("", 3, objectName="sequenceStatus")
        self.reset_btn = QPushButton("Reset view", objectName="sequenceResetView",
                                     toolTip="show the whole sequence and value range again")
        self.reset_btn.clicked.connect(self.reset_view)

        form = QFormLayout()
        form.addRow("prime", self.prime)
        form.addRow("sequence", self.example)
        form.addRow("prefix steps", self.prefix)
        form.addRow("candidates", self.candidates)
        form.addRow("seed", self.seed)
        speed_row = QHBoxLayout()
        speed_row.addWidget(self.speed, 1)
        speed_row.addWidget(self.speed_label)
        form.addRow("speed", speed_row)
        buttons = QHBoxLayout()
        buttons.addWidget(self.sample_btn)
        buttons.addWidget(self.stop_btn)
        buttons.addWidget(self.reset_btn)
        side = QVBoxLayout()
        side.addWidget(self.model_label)
        side.addLayout(form)
        side.addLayout(buttons)
        side.addWidget(self.status)
        side.addStretch(1)
        side_w = QWidget()
        side_w.setLayout(side)
        side_w.setFixedWidth(300)  # its texts never move or resize the plot
        return side_w

    # -- model -----------------------------------------------------------------------------------
    def load_weights(self, folder: str | os.PathLike) -> bool:
        """Use the first sequence model in ``folder``; says why in the status line when none."""
        path = find_sequence_checkpoint(folder)
        if path is None:
            self.status.setText(f"No sequence model in {folder}.")
            return False
        try:
            model, meta = load_checkpoint(path)
            self.set_model(model, data_name=meta.data_name)
        except (CheckpointError, ValueError) as exc:
            self.status.setText(f"Could not use {path.name}: {exc}")
            return False
        self.model_label.setText(f"{model.info.name} from {path.name}")
        return True

    def set_model(self, model: GenerativeModel, valid: np.ndarray | None = None,
                  data_name: str | None = "waves") -> None:
        """Animate ``model`` (a SEQUENCE model with ``complete_steps``). ``valid`` (N, T) are the
        real sequences offered as primes; without it, the held-out split of the built-in data
        set ``data_name`` when its sequences have the model's length."""
        if DataKind.SEQUENCE not in model.info.data_kinds:
            raise ValueError(f"{model.info.name} is not a sequence model")
        if "complete_steps" not in model.capabilities():
            raise ValueError(f"{model.info.name} cannot draw a sequence step by step")
        self.stop()
        length = model.data_shape[0]
        if valid is None:
            valid = self._held_out(data_name, length)
        elif valid.ndim != 2 or valid.shape[1] != length:
            raise ValueError(f"the prime sequences have shape {valid.shape}, the model draws {length} steps")
        self.model = model.eval()
        self.valid = None if valid is None else np.ascontiguousarray(valid, dtype=np.float32)
        edges = getattr(model, "edges", None)
        self._edges = None if edges is None else edges.detach().cpu().double().numpy()
        self._row_bins = self._row_scale = None
        self._x, self._p, self._t, self.drawn = None, None, -1, 0
        self.model_label.setText(f"{model.info.name}: {length} steps")
        # drags and zooms stay within the sequence and its value range
        pad = max(1.0, 0.02 * length)
        self.plot.setLimits(xMin=-pad, xMax=length - 1 + pad, yMin=-1.2, yMax=1.2, minXRange=2.0, minYRange=0.02)
        self.reset_view()
        if self.valid is not None:
            self.example.setRange(0, len(self.valid) - 1)
        self.prefix.setRange(0, length - 1)
        self.prefix.setValue(min(max(self.prefix.value(), length // 4), length - 1))
        self.status.setText("Press Sample.")
        self._update_prime_widgets()
        self._set_running(False)

    @staticmethod
    def _held_out(name: str | None, length: int) -> np.ndarray | None:
        info = datasets.DATASETS.get(name or "")
        if info is None or info.kind is not DataKind.SEQUENCE or info.needs_file:
            return None
        try:
            ds = datasets.load(name)
        except ValueError:
            return None
        return ds.valid if ds.shape == (length,) else None

    # -- prime -----------------------------------------------------------------------------------
    def prime_length(self) -> int:
        if self.prime.currentData() != "valid" or self.valid is None:
            return 0
        return int(self.prefix.value())

    def prime_sequence(self) -> np.ndarray | None:
        if self.prime.currentData() != "valid" or self.valid is None:
            return None
        return self.valid[int(self.example.value())]

    def _update_prime_widgets(self) -> None:
        if self.valid is None and self.prime.currentData() == "valid":
            self.prime.setCurrentIndex(0)
        self.prime.model().item(1).setEnabled(self.valid is not None)
        on = self.prime.currentData() == "valid"
        self.example.setEnabled(on)
        self.prefix.setEnabled(on)

    @Slot(int)
    def _on_prime_changed(self, _value: int = 0) -> None:
        self._update_prime_widgets()
        if not self.puller.running:  # a preview of the prime; a running animation keeps its own
            self._x, self._p, self._t = None, None, -1
            self._prefix = self.prime_length()
            self._redraw()

    @Slot(int)
    def _on_candidates(self, m: int) -> None:
        if not self.puller.running and self._p is None:  # the strip's columns follow, before a sample
            self._set_strip_columns(m)

    # -- animation -------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self.puller.running

    @property
    def current_step(self) -> int:
        """The last time step drawn (-1 before the first)."""
        return self._t

    def candidates_array(self) -> np.ndarray | None:
        """(M, T) float32 copy of the candidates so far (steps after ``current_step`` are 0)."""
        return None if self._x is None else self._x.copy()

    @Slot(int)
    def _on_speed(self, position: int) -> None:
        rate = speed_of(position)
        self.speed_label.setText("full speed" if rate is None else f"{rate:g} steps/s")

    @Slot()
    def sample(self) -> None:
        """Start drawing ``candidates`` sequences after the chosen prime."""
        if self.model is None:
            self.status.setText("No model to sample from.")
            return
        self.stop()
        length = self.model.data_shape[0]
        m = int(self.candidates.value())
        x = torch.zeros(1, length)
        known = torch.zeros(1, length, dtype=torch.bool)
        self._prefix = self.prime_length()
        prime = self.prime_sequence()
        if prime is not None and self._prefix:
            x[0, :self._prefix] = torch.from_numpy(prime[:self._prefix])
            known[0, :self._prefix] = True
        gen = torch.Generator(device=self.model.device).manual_seed(int(self.seed.value()))
        try:
            steps = self.model.complete_steps(x.to(self.model.device), known.to(self.model.device), m, gen)
        except (ValueError, NotImplementedError) as exc:
            self.status.setText(f"Cannot sample: {exc}")
            return
        self._x = np.zeros((m, length), np.float32)
        self._x[:, :self._prefix] = x[0, :self._prefix].numpy()
        self._p, self._t, self.drawn = None, self._prefix - 1, 0
        self.puller.start(steps, lambda: speed_of(self.speed.value()), self._take, self._pulled, self._failed)
        self._set_running(True)
        self.status.setText(f"Drawing {m} candidate(s) from step {self._prefix}…")
        self._redraw()

    @Slot()
    def stop(self) -> None:
        """Stop the animation where it is; the curves stay."""
        if not self.puller.running:
            return
        self.puller.stop()
        self._set_running(False)
        if self.model is not None:
            self.status.setText(f"Stopped at step {self._t + 1} of {self.model.data_shape[0]}.")

    def _set_running(self, running: bool) -> None:
        self.sample_btn.setEnabled(not running and self.model is not None)
        self.stop_btn.setEnabled(running)
        for w in (self.prime, self.example, self.prefix, self.candidates, self.seed):
            w.setEnabled(not running)
        if not running:
            self._update_prime_widgets()

    def _take(self, step: CompletionStep) -> bool:
        """One step pulled (only the last of a tick is drawn); True when it is the last."""
        self._last = step
        return step.done >= step.total

    def _pulled(self, pulled: int, finished: bool) -> None:
        """Draw the last step pulled in this tick."""
        last, self._last = self._last, None
        if last is not None:
            self._x = last.x.detach().cpu().numpy().astype(np.float32, copy=True)
            self._p = last.p.detach().cpu().numpy().astype(np.float64)
            self._t = int(last.pixel)
            self.drawn += pulled
        length = self._x.shape[1]
        if finished:
            self._set_running(False)
            self.status.setText(f"Done: {self._x.shape[0]} candidate(s) of {length} steps.")
        elif last is not None:
            self.status.setText(f"Step {self._t + 1} of {length}.")
        self._redraw()

    def _failed(self, exc: BaseException) -> None:
        """A model that fails mid-way: say so, keep the window alive."""
        self._set_running(False)
        self.status.setText(f"Sampling failed: {type(exc).__name__}: {exc}")

    # -- drawing ---------------------------------------------------------------------------------
    def _strip_image(self, p: np.ndarray) -> np.ndarray:
        """(STRIP_ROWS, M) density of each candidate's next value over [-1, 1], scaled so each
        column's peak is 1: probability over bin width, read at each row's value."""
        levels = p.shape[1]
        if self._row_bins is None or len(self._row_scale) != levels:
            edges = self._edges if self._edges is not None and len(self._edges) == levels + 1 \
                else np.linspace(-1.0, 1.0, levels + 1)
            rows = -1.0 + (np.arange(STRIP_ROWS) + 0.5) * 2.0 / STRIP_ROWS
            self._row_bins = np.clip(np.searchsorted(edges, rows, side="right") - 1, 0, levels - 1)
            self._row_scale = 1.0 / np.maximum(np.diff(edges), 1e-12)
        dens = (p * self._row_scale)[:, self._row_bins].T  # (rows, M)
        peak = np.maximum(dens.max(0, keepdims=True), 1e-30)
        return np.ascontiguousarray(dens / peak, dtype=np.float32)

    def _redraw(self) -> None:
        prime = self.prime_sequence()
        n_prefix = self._prefix
        if prime is not None:
            self.truth.setData(np.arange(len(prime), dtype=np.float64), prime.astype(np.float64))
            self.prefix_curve.setData(np.arange(n_prefix, dtype=np.float64), prime[:n_prefix].astype(np.float64))
        else:
            self.truth.setData([], [])
            self.prefix_curve.setData([], [])
        x = self._x
        for i, curve in enumerate(self.curves):
            if x is None or i >= len(x) or self._t < 0:
                curve.setData([], [])
            else:
                # from the last known step on, so that each candidate visibly leaves the prefix
                start = max(0, n_prefix - 1)
                curve.setData(np.arange(start, self._t + 1, dtype=np.float64),
                              x[i, start:self._t + 1].astype(np.float64))
        self.cursor.setValue(max(self._t, 0))
        if self._p is not None:
            img = self._strip_image(self._p)
            self.strip.setImage(img, levels=(0.0, 1.0), autoLevels=False)
            self.strip.setRect(QRectF(0.0, -1.0, float(img.shape[1]), 2.0))
            if img.shape[1] != self._strip_columns:
                self._set_strip_columns(img.shape[1])
            self.strip.show()
        else:
            self.strip.hide()
