"""The main window: model picker (left), workspace tabs (centre), hyperparameters and run
controls (right), status bar with device and speed. Talks only to core."""

from __future__ import annotations

import asyncio
import functools
import json
import math
import time
from concurrent.futures import Future
from pathlib import Path

from PySide6.QtCore import QSettings, QStandardPaths, Qt, Slot
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (QFileDialog, QFrame, QLabel, QMainWindow, QMessageBox, QScrollArea, QSizePolicy,
                               QSplitter, QTabWidget)

from core import data as datasets
from core import registry
from core.control import Frame, StepRate, duration_text
from core.device import select_device
from core.training import EVALUATED, Event, TrainConfig, Trainer, clone_model
from core.protocol import DataKind, GenerativeModel
from core.readouts import DEFAULT_WEIGHTS, load_digits
from gui import APP_NAME, ORG_NAME
from gui.canvas import CanvasPanel
from gui.latent_panel import LatentPanel
from gui.sequence_panel import SequencePanel
from gui.tooltips import explain
from gui.jobs import Jobs, ProgressDialog
from gui.model_actions import DataMissing, ModelActions, cached_or_downloaded
from gui.model_picker import ModelPicker
from gui.playground import PlaygroundPanel
from gui.point_data import PAINTED
from gui.train_panel import TrainPanel
from gui.training_view import TrainingView
from gui.worker import TrainingSession

DEFAULT_MODEL = "fvsbn"


def app_data_dir() -> Path:
    """The app's own data folder (autosaves): ``<the user's data folder>/genmodel-sandbox``.
    (Qt's AppDataLocation appends the organisation and the application name, both
    ``genmodel-sandbox``: ``.../genmodel-sandbox/genmodel-sandbox``.)"""
    return Path(QStandardPaths.writableLocation(QStandardPaths.StandardLocation.GenericDataLocation)) / APP_NAME


def documents_dir() -> Path:
    """Where checkpoints are saved and loaded from until the user picks another folder:
    ``<Documents>/genmodel-sandbox`` (the home folder when there is no Documents folder)."""
    docs = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.DocumentsLocation)
    return Path(docs or Path.home()) / APP_NAME


class MainWindow(ModelActions, QMainWindow):
    def __init__(self, settings: QSettings | None = None, fps: float = 30.0):
        super().__init__()
        self.setObjectName("mainWindow")
        self.setWindowTitle("Generative model sandbox")
        self.settings = settings or QSettings(ORG_NAME, APP_NAME)
        self.fps = fps
        self.session: TrainingSession | None = None
        self._starting = False  # a training start is loading its data set
        self.model: GenerativeModel | None = None
        self.dataset: datasets.Dataset | None = None
        self.model_step = 0
        self.model_epoch = 0.0  # the model's fractional epoch (saved with it)
        self.model_nll: tuple[int, float] | None = None  # (step, nats) of its last held-out evaluation
        self._data_key: tuple | None = None
        self.last_error: str | None = None
        self.error_boxes: list[QMessageBox] = []
        self.jobs = Jobs(self.show_error)  # loading, saving, sampling, evaluating: off the GUI thread

        self.picker = ModelPicker()
        self.panel = TrainPanel()
        self.tabs = QTabWidget(objectName="workspace")
        self.training_view = TrainingView(fps=fps)
        # the model list and run controls live in the Training tab's own page (not in docks shown
        # per tab), so the tab bar stays where it is on every tab
        self.training_page = QSplitter(Qt.Orientation.Horizontal, objectName="trainingPage")
        for w in (self.picker, self.training_view, self.panel):
            self.training_page.addWidget(w)
        self.training_page.setStretchFactor(1, 1)
        self.training_page.setChildrenCollapsible(False)
        self.training_page.setSizes([210, 700, 340])
        self.tabs.addTab(self.training_page, "Training")
        self.playground = PlaygroundPanel(fps=fps)
        self.tabs.addTab(self.playground, "Density playground")
        self.playground.error.connect(self._on_panel_error)
        self.playground.status.connect(self._on_panel_status)
        self.canvas = CanvasPanel(fps=fps, training_model=self.canvas_model, copy_model=self.copy_model,
                                  training_nll=lambda: self.model_nll)
        # in a scroll area, so that the canvas's controls never set the window's minimum width
        self.canvas_scroll = QScrollArea()
        self.canvas_scroll.setWidget(self.canvas)
        self.canvas_scroll.setWidgetResizable(True)
        self.canvas_scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.tabs.addTab(self.canvas_scroll, "Canvas")
        self.canvas.error.connect(self._on_panel_error)
        self.canvas.status.connect(self._on_panel_status)
        self.canvas.fine_tune_requested.connect(self._fine_tune)
        self._add_latent_tab(fps)
        self.sequences = SequencePanel()
        self.tabs.addTab(self.sequences, "Sequences")
        self._sequence_model_id: tuple[int, int] | None = None
        self.setCentralWidget(self.tabs)
        self.tabs.currentChanged.connect(self._on_tab)

        self.device_label = QLabel(objectName="deviceLabel")
        self.speed_label = QLabel(objectName="speedLabel")
        self.step_label = QLabel(objectName="stepLabel")
        self.step_rate = StepRate()  # the Training tab's steps/s and time left
        for w in (self.step_label, self.speed_label, self.device_label):
            self.statusBar().addPermanentWidget(w)
        self._show_device(None)

        self.picker.model_selected.connect(self._on_model_selected)
        self.panel.train_clicked.connect(self.train)
        self.panel.pause_clicked.connect(self.toggle_pause)
        self.panel.step_clicked.connect(self.step)
        self.panel.stop_clicked.connect(self.stop)
        self.panel.save_clicked.connect(self._ask_save)
        self.panel.load_clicked.connect(self._ask_load)
        self.panel.browse_clicked.connect(self._browse_data)
        self.panel.live_changed.connect(self._on_live)
        self.panel.device_combo.currentIndexChanged.connect(self._on_device_choice)
        self.panel.data_combo.currentIndexChanged.connect(self._on_data_choice)
        self._make_actions()
        self._restore_settings()
        explain(self)  # every metric, plot and tile says what it is and what to watch

    # -- layout ----------------------------------------------------------------------------------
    def _make_actions(self) -> None:
        def action(menu, text, slot, shortcut, name):
            a = QAction(text, self, objectName=name)
            a.setShortcut(QKeySequence(shortcut))
            a.triggered.connect(slot)
            menu.addAction(a)
            return a

        file_menu = self.menuBar().addMenu("&File")
        action(file_menu, "&Load checkpoint…", self._ask_load, "Ctrl+O", "actionLoad")
        action(file_menu, "&Save checkpoint…", self._ask_save, "Ctrl+S", "actionSave")
        file_menu.addSeparator()
        action(file_menu, "&Quit", self.close, "Ctrl+Q", "actionQuit")
        run_menu = self.menuBar().addMenu("&Run")
        action(run_menu, "&Train", self.train, "Ctrl+Return", "actionTrain")
        action(run_menu, "&Pause / resume", self.toggle_pause, "Ctrl+P", "actionPause")
        action(run_menu, "S&tep", self.step, "Ctrl+.", "actionStep")
        action(run_menu, "St&op", self.stop, "Ctrl+Shift+X", "actionStop")
        action(run_menu, "&Evaluate on held-out data", self.evaluate, "Ctrl+E", "actionEvaluate")
        action(run_menu, "Sa&mple", self.sample, "Ctrl+M", "actionSample")
        view_menu = self.menuBar().addMenu("&View")
        for i, (text, name) in enumerate((("&Training", "actionTabTraining"), ("&Density playground", "actionTabPlayground"),
                                          ("&Canvas", "actionTabCanvas"), ("&Latent space", "actionTabLatent"),
                                          ("S&equences", "actionTabSequences"))):
            action(view_menu, text, self._show_tab, f"Ctrl+{i + 1}", name).setData(i)

    def _add_latent_tab(self, fps: float) -> None:
        """The Latent space tab: it follows the Training tab's model (a copy) and encodes the
        Canvas tab's drawing; in a scroll area, like the canvas."""
        self.latent = LatentPanel(fps=fps, training_model=self.canvas_model, copy_model=self.copy_model,
                                  drawing=self.canvas_drawing, digits_loader=load_digits)
        self.latent_scroll = QScrollArea()
        self.latent_scroll.setWidget(self.latent)
        self.latent_scroll.setWidgetResizable(True)
        self.latent_scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.tabs.addTab(self.latent_scroll, "Latent space")
        self.latent.error.connect(self._on_panel_error)
        self.latent.status.connect(self._on_panel_status)

    # -- settings --------------------------------------------------------------------------------
    def _restore_settings(self) -> None:
        s = self.settings
        # the tab first: it decides how small the window may be
        self.tabs.setCurrentIndex(int(s.value("window/tab", 0)))
        self._on_tab(self.tabs.currentIndex())
        geometry, state = s.value("window/geometry"), s.value("window/state")
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1280, 760)
        if state is not None:
            self.restoreState(state)
        self.panel.set_device(str(s.value("run/device", "auto")))
        key = str(s.value("model/last", DEFAULT_MODEL))
        if not self.picker.select(key):
            self.picker.select(DEFAULT_MODEL)
        self.panel.data_path.setText(str(s.value("data/path", "")))
        data_name = s.value("data/name")
        if data_name:
            i = self.panel.data_combo.findData(data_name)
            if i >= 0:
                self.panel.data_combo.setCurrentIndex(i)
        self.panel.epochs.setValue(float(s.value("run/epochs", 5.0)))
        self.panel.restore_policy(s)
        pg_set = s.value("playground/set")
        if pg_set == PAINTED:  # the points themselves are kept beside the settings
            if not self.playground.data.restore_points(self._painted_points_path()):
                self.statusBar().showMessage("the painted points of the last session were not found: "
                                             "the playground shows a built-in set", 8000)
        elif pg_set and self.playground.set_combo.findData(pg_set) >= 0:
            self.playground.set_combo.setCurrentIndex(self.playground.set_combo.findData(pg_set))
        try:
            self.playground.set_checked(json.loads(s.value("playground/models", "[]")))
        except (TypeError, ValueError):
            pass
        self.canvas.restore_settings(s)
        self.latent.restore_settings(s)

    def save_settings(self) -> None:
        s = self.settings
        s.setValue("window/geometry", self.saveGeometry())
        s.setValue("window/state", self.saveState())
        s.setValue("run/device", self.panel.device())
        s.setValue("run/epochs", self.panel.epochs.value())
        self.panel.save_policy(s)
        if self.panel.family:
            s.setValue("model/last", self.panel.family)
            s.setValue(f"hparams/{self.panel.family}", json.dumps(self.panel.hparams()))
        s.setValue("data/name", self.panel.data_name() or "")
        s.setValue("data/path", self.panel.data_path.text())
        s.setValue("window/tab", self.tabs.currentIndex())
        painted = self.playground.set_name == PAINTED
        kept = painted and self.playground.data.save_points(self._painted_points_path())
        s.setValue("playground/set", self.playground.set_name if kept or not painted else "")
        s.setValue("playground/models", json.dumps(self.playground.checked_models()))
        self.canvas.save_settings(s)
        self.latent.save_settings(s)
        s.sync()

    # -- picker / panel --------------------------------------------------------------------------
    @Slot(str)
    def _on_model_selected(self, key: str) -> None:
        if (self.session is not None and self.session.running) or self._starting:
            self.picker.select(self.panel.family)  # no switching mid-run (nor while its data loads)
            self.statusBar().showMessage("Stop training before picking another model", 4000)
            return
        if self.panel.family:
            self.settings.setValue(f"hparams/{self.panel.family}", json.dumps(self.panel.hparams()))
        self.panel.set_family(key)
        saved = self.settings.value(f"hparams/{key}")
        if saved:
            try:
                self.panel.set_hparams(json.loads(saved))
            except (TypeError, ValueError):
                pass
        self.panel.set_state("idle")

    @Slot(str, object)
    def _on_live(self, name: str, value) -> None:
        if self.session is not None and self.session.running:
            try:
                self.session.set_hparams({name: value})
            except ValueError as exc:
                self.statusBar().showMessage(str(exc), 5000)
                return
            self.statusBar().showMessage(f"{name} set to {value:g} from the next step" if isinstance(value, float)
                                         else f"{name} set to {value} from the next step", 3000)

    @Slot(int)
    def _on_data_choice(self, _index: int) -> None:
        if self.session is None or not self.session.running:  # the last run's count was on other data
            self.panel.progress_note(f"no run on {self.panel.data_name() or 'this data set'} yet")

    @Slot(int)
    def _on_device_choice(self, _index: int) -> None:
        device, message = select_device(self.panel.device())
        self._show_device(device)
        if message:
            self.statusBar().showMessage(message, 8000)

    def _show_device(self, device) -> None:
        if device is None:
            device, _ = select_device(self.panel.device())
        name = "CPU" if device.type == "cpu" else f"GPU ({device})"
        self.device_label.setText(f"device: {name}")

    @Slot()
    def _browse_data(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Data file", "", "NumPy archives (*.npz);;"
                                              "MNIST IDX files, in their folder (*-ubyte.gz *-ubyte)")
        if path:
            self.panel.data_path.setText(path)

    # -- errors ----------------------------------------------------------------------------------
    def show_error(self, title: str, message: str, details: str | None = None) -> None:
        """A window-modal message box that does not block the event loop (or the tests)."""
        self.last_error = message
        self.statusBar().showMessage(message, 10000)
        box = QMessageBox(QMessageBox.Icon.Warning, title, message, QMessageBox.StandardButton.Ok, self)
        box.setObjectName("errorBox")
        if details:
            box.setDetailedText(details)
        box.setWindowModality(Qt.WindowModality.WindowModal)
        box.finished.connect(self._forget_box)
        self.error_boxes.append(box)
        box.open()

    @Slot(int)
    def _on_tab(self, index: int) -> None:
        """Only the shown page sets how small the window may be (the others are ignored)."""
        for i in range(self.tabs.count()):
            policy = QSizePolicy.Policy.Preferred if i == index else QSizePolicy.Policy.Ignored
            self.tabs.widget(i).setSizePolicy(policy, policy)
        if self.tabs.widget(index) is self.sequences:
            self._refresh_sequences()

    def _refresh_sequences(self) -> None:
        """The Sequences tab animates the Training tab's sequence model (a snapshot of its
        weights), else the sequence model shipped in resources/weights."""
        model = self.model
        if model is not None and DataKind.SEQUENCE in model.info.data_kinds \
                and "complete_steps" in model.capabilities():
            ident = (id(model), int(self.model_step))
            if ident != self._sequence_model_id:
                self._sequence_model_id = ident
                copy = self.copy_model(model)
                self.jobs.when_done(copy, lambda: self._take_sequence_model(copy, model, ident),
                                    "Sequences: cannot take the Training tab's model")
        elif self.sequences.model is None:
            self.sequences.load_weights(DEFAULT_WEIGHTS)

    def _take_sequence_model(self, copy: Future, model: GenerativeModel, ident: tuple[int, int]) -> None:
        if ident != self._sequence_model_id:
            return  # a newer model was asked for meanwhile
        try:
            clone = copy.result()
            valid = self.dataset.valid if self.dataset is not None else None
            self.sequences.set_model(clone, valid=valid)
        except (ValueError, RuntimeError, KeyError) as exc:
            self._sequence_model_id = None
            self.statusBar().showMessage(f"Sequences: cannot take the Training tab's model: {exc}", 8000)
            return
        self.sequences.model_label.setText(f"{model.info.name} from the Training tab (step {ident[1]})")

    @Slot(str, str)
    def _on_panel_error(self, title: str, message: str) -> None:
        self.show_error(title, message)

    @Slot(str)
    def _on_panel_status(self, message: str) -> None:
        self.statusBar().showMessage(message, 8000)

    @Slot()
    def _show_tab(self) -> None:
        self.tabs.setCurrentIndex(int(self.sender().data()))

    # -- the canvas tab's view of this window ----------------------------------------------------
    def canvas_model(self) -> tuple[GenerativeModel, tuple[int, int] | None, int] | None:
        """The Training tab's model, its image shape (if known) and step, for the Canvas tab."""
        if self.model is None:
            return None
        shape = self.dataset.image_shape if self.dataset is not None else None
        return self.model, shape, self.model_step

    def canvas_drawing(self):
        """The Canvas tab's drawing (H, W) uint8, for the Latent space tab to encode."""
        return self.canvas.state.image.copy()

    def copy_model(self, model: GenerativeModel) -> Future:
        """A future of a copy of ``model`` (CPU, eval mode). While it trains, the worker owns it:
        the copy is made between two of its steps (done at once when none is in progress)."""
        if self.session is not None and self.session.running and self.session.trainer.model is model:
            return self.session.trainer.request_copy()
        done: Future = Future()
        try:
            done.set_result(clone_model(model))
        except Exception as exc:
            done.set_exception(exc)
        return done

    @Slot(str)
    def _fine_tune(self, path: str) -> None:
        """The Canvas tab hands a checkpoint over: load it here to train it further."""
        self.tabs.setCurrentWidget(self.training_page)
        self.load(path)

    @Slot(int)
    def _forget_box(self, _result: int) -> None:
        self.error_boxes = [b for b in self.error_boxes if b.isVisible()]

    # -- training ---------------------------------------------------------------------------------
    @Slot()
    def train(self) -> asyncio.Task | None:
        """Load the data set off the GUI thread, then start training: the job's task, or None when
        training runs already or the form is not valid (the error is shown)."""
        if (self.session is not None and self.session.running) or self._starting:
            return None  # (a second start while the first loads its data would orphan a running thread)
        self.panel.train_btn.setEnabled(False)
        try:
            key, name = self.panel.family, self.panel.data_name()
            if key is None or name is None:
                raise ValueError("pick a model and a data set first")
            hp = registry.info(key).validate(self.panel.hparams())
            policy = self.panel.policy()  # (as the form is now: the data loads meanwhile)
        except Exception as exc:
            self.panel.set_state("idle")
            self.show_error("Cannot train", str(exc))
            return None
        load, data_key, dialog = self._dataset_loader(name)
        self._starting = True

        def loaded(ds: datasets.Dataset | DataMissing) -> None:
            self._starting = False
            if dialog is not None:
                dialog.close()
            if isinstance(ds, DataMissing):
                self.panel.set_state("idle")
                self._offer_data_file(ds)
                return
            self._data_key = data_key
            self._start_training(key, hp, ds, policy)

        def failed(_message: str) -> None:
            self._starting = False
            if dialog is not None:
                dialog.close()
            self.panel.set_state("idle")

        return self.jobs.run(load, done=loaded, failed=failed, title="Cannot train")

    def _dataset_loader(self, name: str) -> tuple:
        """(a blocking function returning the data set, its key, the download's progress dialog
        or None); the data set in hand when the key is the same."""
        path = self.panel.data_path.text().strip() or None
        info = datasets.DATASETS[name]
        if not info.needs_file:
            path = None
        key = (name, path, self.panel.seed.value())
        if self.dataset is not None and self._data_key == key:
            ds = self.dataset
            return (lambda: ds), key, None
        if info.needs_file and path is None:
            dialog = ProgressDialog(self, "Data", f"Getting {name}")
            return functools.partial(cached_or_downloaded, name, dialog), key, dialog
        return functools.partial(datasets.load, name, path, seed=key[2]), key, None

    def _start_training(self, key: str, hp: dict, ds: datasets.Dataset, policy) -> None:
        """Build the trainer (a new model, or the current one continued) and start it. An
        exception here fails the training job: the error is shown and the panel goes idle."""
        info = registry.info(key)
        same = (self.model is not None and self.model.info.key == key and self.dataset is not None
                and self.dataset.shape == ds.shape and not info.structure_changes(self.model.hparams, hp))
        if same:  # training goes on: only what does not shape the model may change
            self.model.hparams.update({h.name: hp[h.name] for h in info.all_hparams() if not h.structural})
            model, start = self.model, self.model_step
        else:
            model, start = registry.create(key, ds.shape, ds.kind, **hp), 0
            self.training_view.reset()
            self.training_view.clear_samples("samples follow as it trains…")
            self.model_nll, self.model_epoch = None, 0.0
        autosave = app_data_dir() / "autosave" / f"{key}-{ds.name}.safetensors"
        cfg = TrainConfig(epochs=self.panel.epochs.value(), seed=self.panel.seed.value(),
                          device=self.panel.device(), eval_every=200, checkpoint_path=autosave,
                          checkpoint_every=1000)
        trainer = Trainer(model, ds, cfg, start_step=start)
        cfg.max_steps = start + trainer.total_steps  # epochs more, from where it stands
        self.model, self.dataset = model, ds
        self.training_view.subject = model.info.name
        self.session = TrainingSession(trainer, fps=self.fps, parent=self, policy=policy)
        self.panel.show_schedule(*self.session.runs[0].curve())
        self.panel.show_lr(start, self.session.runs[0].lr_at(start))
        self.session.frame.connect(self._on_frame)
        self.session.failed.connect(self._on_failed)
        self.session.finished.connect(self._on_finished)
        self.panel.start_progress(start, cfg.max_steps)
        self.training_view.total_steps = cfg.max_steps
        self.step_rate.reset()
        self.panel.set_state("running")
        self._show_device(trainer.device)
        self.statusBar().showMessage(
            f"training {model.info.name} on {ds.name}" + (f", continuing from step {start}" if start else ""), 5000)
        self.session.start()

    def _show_time_left(self, step: int, event) -> None:
        """Steps per second over the last seconds of running, and the time left, on the progress bar."""
        bar, rate = self.panel.progress, self.step_rate
        if self.session is not None and self.session.running and not self.session.paused and event == Event.STEP:
            rate.add(step, time.monotonic())
        left = rate.seconds_left(bar.maximum())
        if self.session is None or not self.session.running or event == Event.FINISHED:
            bar.setFormat("%p%  (%v / %m steps)")
        elif self.session.paused:
            bar.setFormat("%p%  (%v / %m steps), paused")
        elif left is None:
            bar.setFormat("%p%  (%v / %m steps), measuring the speed…")
        else:
            bar.setFormat(f"%p%  (%v / %m steps), {rate.rate:.3g} steps/s, about {duration_text(left)} left")

    @Slot()
    def toggle_pause(self) -> None:
        if self.session is None or not self.session.running:
            return
        self.step_rate.reset()  # a pause is not slowness
        if self.session.paused:
            self.session.resume()
            self.panel.set_state("running")
        else:
            self.session.pause()
            self.panel.set_state("paused")
        self.panel.progress.setFormat("%p%  (%v / %m steps)" + ("" if not self.session.paused else ", paused"))

    @Slot()
    def step(self) -> None:
        if self.session is not None and self.session.running:
            self.session.step()
            self.panel.set_state("paused")

    @Slot()
    def stop(self) -> None:
        if self.session is not None and self.session.running:
            self.session.control.stop()
            self.statusBar().showMessage("stopping at the next step…", 3000)

    @Slot(object)
    def _on_frame(self, frame: Frame) -> None:
        s = frame.snapshot
        self.training_view.push(frame)
        self.model_step, self.model_epoch = s.step, s.epoch
        if s.event in EVALUATED and s.nll is not None and math.isfinite(s.nll.nats):
            self.model_nll = (s.step, s.nll.nats)
            if self.canvas.isVisible():  # the canvas's copy of this model moves on with it
                self.canvas.refresh_training_model()
            elif self.sequences.isVisible() and not self.sequences.running:  # so does the sequences tab's
                self._refresh_sequences()
        bar = self.panel.progress
        if abs(s.step - bar.value()) * 500 >= bar.maximum() or s.event != Event.STEP:  # repaint per 0.2 %
            bar.setValue(min(s.step, bar.maximum()))
            if self.session is not None:  # the rate the schedule sets for the next step
                self.panel.show_lr(s.step, self.session.runs[frame.index].lr_at(s.step))
        self.step_label.setText(f"step {s.step}  epoch {s.epoch:.2f}")
        self.speed_label.setText(f"{s.steps_per_s:.0f} steps/s")
        self._show_time_left(s.step, s.event)
        if s.event == Event.NONFINITE:
            self.show_error("Training stopped", s.message or "the loss became NaN")
        elif s.event == Event.ERROR:
            self.show_error("Error", s.message or "error")
        elif s.event == Event.DEVICE:
            self._show_device(self.session.trainer.device if self.session else None)
            self.show_error("Device", s.message or "device changed")
        elif s.message:
            self.statusBar().showMessage(s.message, 5000)

    @Slot(str, str)
    def _on_failed(self, message: str, details: str) -> None:
        self.show_error("Training failed", message, details)

    @Slot()
    def _on_finished(self) -> None:
        self.panel.set_state("idle")
        self.panel.progress.setFormat("%p%  (%v / %m steps)")
        frame = self.session.last_frame if self.session else None
        if frame is not None:
            nll = frame.snapshot.nll
            text = f"stopped at step {frame.snapshot.step}"
            if frame.snapshot.event == Event.FINISHED:
                text = f"finished {frame.snapshot.step} steps"
            if nll is not None and math.isfinite(nll.nats):
                text += f"; held-out NLL {nll.nats:.2f} nats"
            if self.session.stop_reason:
                text += f" ({self.session.stop_reason})"
            self.statusBar().showMessage(text, 10000)

    def _painted_points_path(self) -> Path:
        """Where the playground's painted / imported points are kept: beside the settings."""
        return Path(self.settings.fileName()).parent / "playground-points.npy"

    def _app_data_dir(self) -> Path:
        return app_data_dir()

    def _documents_dir(self) -> Path:
        return documents_dir()

    # -- closing ---------------------------------------------------------------------------------
    def closeEvent(self, event: QCloseEvent) -> None:
        # everything is told to stop first (both runs, and the tabs' jobs, whose long passes end
        # at their next check), then the runs are waited for: together within 2 s
        for s in (self.session, self.playground.session):
            if s is not None and s.running:
                s.request_stop()
        self.canvas.shutdown()
        self.latent.shutdown()
        self.sequences.stop()
        self.playground.jobs.close()
        self.jobs.close()
        for s in (self.session, self.playground.session):
            if s is not None and s.running and not s.stop(2000):
                # a pass with no abandon check: wait for it (Qt aborts the process when a
                # running thread is destroyed with its window)
                self.statusBar().showMessage("Closing: training is finishing a step…")
                self.statusBar().repaint()
                s.stop(None)
        self.save_settings()
        super().closeEvent(event)

