"""The main window's checkpoint, sampling and evaluation actions (Save, Load, Sample, Evaluate),
as a mixin of :class:`gui.main_window.MainWindow`: each runs its blocking part through the
window's one task helper (``self.jobs``) and shows the result in the Training tab or the status
bar."""

from __future__ import annotations

import asyncio
import functools
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import QFileDialog, QMessageBox

from core import data as datasets
from core.checkpoint import checkpoint_payload, load_checkpoint, write_checkpoint
from core.evaluation import evaluate
from core.protocol import DataKind, GenerativeModel
from core.training import clone_model
from gui.jobs import ProgressDialog, ProgressRelay


@dataclass
class DataMissing:
    """A data set that is neither given, cached nor downloadable: its name and why."""

    name: str
    message: str


def cached_or_downloaded(name: str, dialog: ProgressDialog) -> datasets.Dataset | DataMissing:
    """The data set from the cache or downloaded (blocking); DataMissing when it cannot be had."""
    try:
        return datasets.load(name, progress=dialog.report, cancelled=dialog.cancelled)
    except datasets.Cancelled:
        raise
    except datasets.DownloadError as exc:
        return DataMissing(datasets.DATASETS[name].description.split(" (")[0], str(exc))


class ModelActions:
    """Needs the window's ``model``, ``model_step``, ``dataset``, ``session``, ``jobs``, ``picker``,
    ``panel``, ``training_view``, ``show_error``, ``statusBar``, ``settings`` and ``_documents_dir``."""

    def checkpoint_folder(self) -> Path:
        """Where the Save and Load dialogs open: the folder last saved to or loaded from (kept in
        the settings), else ``<Documents>/genmodel-sandbox`` (made when missing), else home."""
        last = self.settings.value("paths/checkpoints", "")
        if last and Path(str(last)).is_dir():
            return Path(str(last))
        folder = self._documents_dir()
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            return Path.home()
        return folder

    def _remember_folder(self, path: str | Path) -> None:
        self.settings.setValue("paths/checkpoints", str(Path(path).resolve().parent))

    @Slot()
    def _ask_save(self) -> None:
        if self.model is None:
            self.show_error("Nothing to save", "Train or load a model first.")
            return
        default = str(self.checkpoint_folder() / f"{self.model.info.key}.safetensors")
        path, _ = QFileDialog.getSaveFileName(self, "Save checkpoint", default, "Checkpoints (*.safetensors)")
        if path:
            self._remember_folder(path)
            self.save(path if path.endswith(".safetensors") else path + ".safetensors")

    def save(self, path: str | Path) -> asyncio.Task | None:
        """Save the current model. While training runs (paused or not) the worker owns it: the
        trainer copies the weights between two steps; otherwise they are copied here. Either
        way they are written off the GUI thread."""
        if self.model is None:
            self.show_error("Nothing to save", "Train or load a model first.")
            return None
        trainer = self.session.trainer if self.session is not None else None
        if trainer is not None and self.session.running and trainer.model is self.model:
            payload = trainer.request_payload()
        else:
            payload = Future()
            payload.set_result(checkpoint_payload(self.model, data=self.dataset, step=self.model_step,
                                                  epoch=self.model_epoch,
                                                  metrics=trainer.checkpoint_metrics() if trainer else {}))
        return self.jobs.run(payload, done=lambda got: self._write(path, *got), title="Could not save")

    def _write(self, path, tensors: dict, meta: dict) -> asyncio.Task:
        return self.jobs.run(write_checkpoint, path, tensors, meta, title="Could not save",
                             done=lambda written: self.statusBar().showMessage(f"saved {written}", 5000))

    @Slot()
    def _ask_load(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load checkpoint", str(self.checkpoint_folder()),
                                              "Checkpoints (*.safetensors)")
        if path:
            self._remember_folder(path)
            self.load(path)

    def load(self, path: str | Path) -> asyncio.Task | None:
        if self.session is not None and self.session.running:
            self.show_error("Busy", "Stop training before loading a checkpoint.")
            return None
        return self.jobs.run(load_checkpoint, path, done=lambda got: self._loaded(path, *got),
                             title="Could not load the checkpoint")

    def _loaded(self, path, model: GenerativeModel, meta) -> asyncio.Task | None:
        """Show a loaded checkpoint; its samples follow (the task that draws them, or None)."""
        self.picker.select(model.info.key)
        self.panel.set_hparams(model.hparams)
        self.model, self.model_step, self.model_epoch = model, meta.step, meta.epoch
        self.model_nll = (meta.step, meta.valid.nats) if meta.valid is not None else None
        if self.dataset is not None and self.dataset.name != meta.data_name:
            self.dataset = None
        i = self.panel.data_combo.findData(meta.data_name)
        if i >= 0:
            self.panel.data_combo.setCurrentIndex(i)
        # nothing of the previous model stays: its curves, samples, progress and step
        self.training_view.reset()
        self.training_view.subject = model.info.name
        self.training_view.clear_samples(f"samples of {model.info.name} follow…")
        self.panel.progress_note(f"loaded at step {meta.step}: Train goes on from there")
        self.step_label.setText(f"step {meta.step}  epoch {meta.epoch:.2f}")
        self.speed_label.setText("")
        for w in meta.warnings:
            self.statusBar().showMessage(w, 8000)
        self.statusBar().showMessage(f"loaded {Path(path).name}: {model.info.name}, step {self.model_step}", 8000)
        return self._sample(model, meta.image_shape)

    @Slot()
    def sample(self) -> asyncio.Task | None:
        if self.model is None or (self.session is not None and self.session.running):
            return None
        shape = self.dataset.image_shape if self.dataset else None
        return self._sample(self.model, shape)

    def _sample(self, model: GenerativeModel, image_shape) -> asyncio.Task | None:
        """Draw samples off the GUI thread into the Training tab: the task, or None (and a
        message) when the model cannot draw them here."""
        sequence = DataKind.SEQUENCE in model.info.data_kinds
        if not (image_shape or sequence) or "sample" not in model.capabilities():
            self.statusBar().showMessage(f"{model.info.name} cannot draw samples here "
                                         "(the density playground shows point models)", 4000)
            return None
        return self.jobs.run(model.visuals, 16 if sequence else 64, title="Could not sample",
                             done=lambda arrays: self._show_samples(model, image_shape, arrays))

    def _show_samples(self, model: GenerativeModel, image_shape, arrays) -> None:
        samples = arrays.samples
        if DataKind.SEQUENCE in model.info.data_kinds:
            self.training_view.show_curves(samples, f"{len(samples)} samples from {model.info.name}")
            return
        self.training_view.show_samples(samples, tuple(image_shape), f"samples from {model.info.name}",
                                        labels=arrays.sample_labels)

    @Slot()
    def evaluate(self) -> asyncio.Task | None:
        """Score the held-out examples off the GUI thread, with progress under the curves and the
        result marked on them. While a run is active (paused or not) a copy the trainer makes
        between two steps is scored (at once while paused), and training goes on meanwhile."""
        if self.model is None or self.dataset is None:
            self.statusBar().showMessage("train or load a model, with its data set, first", 4000)
            return None
        if self._evaluating is not None and not self._evaluating.done():
            self.statusBar().showMessage("already evaluating: see the Training tab", 4000)
            return None
        trainer = self.session.trainer if self.session is not None else None
        if trainer is not None and self.session.running and trainer.model is self.model:
            # a copy and its step, between two steps
            got: Future = trainer.between_steps(lambda: (clone_model(trainer.model), trainer.step))
        else:
            got = Future()
            got.set_result((self.model, self.model_step))
        valid = self.dataset.valid
        labels = self.dataset.valid_labels if self.model.info.conditional else None  # p(x | y)
        view = self.training_view
        relay = ProgressRelay(self, view.evaluation_progress)
        view.evaluation_progress(0, len(valid))
        batch = max(1, min(1000, len(valid) // 40))  # about 40 moves of the bar
        score = lambda model_step: self.jobs.run(  # noqa: E731
            functools.partial(evaluate, model_step[0], valid, batch, labels=labels, progress=relay.report),
            done=lambda nll: (relay.close(), self._show_evaluation(nll, model_step[1])), failed=view.evaluation_failed,
            title="Could not evaluate")
        self._evaluating = self.jobs.run(got, done=score, failed=view.evaluation_failed, title="Could not evaluate")
        self._evaluating.add_done_callback(lambda _task: relay.close())
        return self._evaluating

    _evaluating: asyncio.Task | None = None

    def _show_evaluation(self, nll, step: int | None = None) -> None:
        self.training_view.show_evaluation(step, nll)
        self.statusBar().showMessage(f"held-out NLL {nll.nats:.2f} nats ({nll.bits_per_dim:.4f} bits/dim) on "
                                     f"{nll.n} examples", 15000)

    def _offer_data_file(self, missing: DataMissing) -> None:
        """The data set is neither given, cached nor downloadable (no network): say so and offer
        to choose a local copy; once chosen, training starts on it."""
        self.last_error = missing.message
        self.statusBar().showMessage(f"{missing.name} is not available: choose a local copy", 10000)
        box = QMessageBox(QMessageBox.Icon.Warning, "Data set not available",
                          f"{missing.name} is not on this computer and could not be downloaded.\n\n"
                          f"{missing.message}", QMessageBox.StandardButton.Cancel, self)
        box.setObjectName("dataMissingBox")
        choose = box.addButton("Choose a local file…", QMessageBox.ButtonRole.AcceptRole)
        choose.setObjectName("chooseDataFile")
        choose.clicked.connect(self._choose_data_and_train)
        box.setWindowModality(Qt.WindowModality.WindowModal)
        box.finished.connect(self._forget_box)
        self.error_boxes.append(box)
        box.open()

    @Slot()
    def _choose_data_and_train(self) -> None:
        before = self.panel.data_path.text()
        self._browse_data()
        if self.panel.data_path.text() and self.panel.data_path.text() != before:
            self.train()
