"""The Canvas tab's models: the checkpoints scanned from the weights folder and a snapshot of
the Training tab's model (its step and last held-out NLL in its name), in the model box."""

from __future__ import annotations

import asyncio

from PySide6.QtCore import Slot

from core.protocol import DataKind, GenerativeModel
from core.readouts import TRAINING_KEY, CanvasModel, image_shape_of, scan_weights
from gui.training_copy import TrainingCopyMixin


class CanvasModelsMixin(TrainingCopyMixin):
    """For :class:`gui.canvas.CanvasPanel`: fills ``entries`` and the model box."""

    @Slot()
    def reload_models(self) -> asyncio.Task | None:
        """Scan the weights folder (off the GUI thread) and take the Training tab's model."""
        if self.loading:
            return None
        self.loading = True
        self.models_label.setText(f"loading models from {self.weights_dir}…")
        return self.jobs.run(scan_weights, self.weights_dir, self.shape, done=self._on_scanned,
                             failed=self._on_scan_failed, title="Cannot load the models", busy="loading models…")

    def _on_scanned(self, result: tuple[list[CanvasModel], list[str]]) -> None:
        models, problems = result
        self.loading, self.loaded = False, True
        keep = self._wanted_key or (self.entry.key if self.entry else None)
        trained = [e for e in self.entries if e.key == TRAINING_KEY]
        self.entries = models + trained
        self.problems = problems
        self._training_id = None if not trained else self._training_id
        self._fill_combo(keep)
        self.refresh_training_model()
        self._show_model_summary()

    def _on_scan_failed(self, message: str) -> None:
        self.loading, self.loaded = False, True
        self.problems = [message]
        self._show_model_summary()

    def _show_model_summary(self) -> None:
        self.model_box.summary(len(self.entries), self.problems, self.weights_dir)
        if self.problems:
            self._say("; ".join(self.problems))

    def _fill_combo(self, keep: str | None) -> None:
        idx = self.model_box.fill(self.entries, keep)
        if keep is not None and idx >= 0 and self.entries[idx].key == keep:
            self._wanted_key = None
        self._on_model_changed(idx)

    def refresh_training_model(self) -> None:
        """Offer a snapshot of the Training tab's model when it is a binary-image model that fits."""
        got = self.training_model() if self.training_model is not None else None
        if got is None:
            return
        model, image_shape, step = got
        ident = (id(model), int(step))
        if ident == self._training_id:
            return
        if DataKind.BINARY_IMAGE not in model.info.data_kinds:
            return
        if image_shape_of(model.data_shape, image_shape) != self.shape:
            self._say(f"the Training tab's {model.info.name} is not for {self.shape[0]}x{self.shape[1]} images: "
                      "not on the canvas")
            self._training_id = ident
            return
        self._ask_training_copy(model, ident, self.copy_model)

    def _use_training_copy(self, clone: GenerativeModel, model: GenerativeModel, ident: tuple) -> None:
        measured = self.training_nll() if self.training_nll is not None else None
        at = f", NLL at step {measured[0]}" if measured is not None and measured[0] != ident[1] else ""
        entry = CanvasModel(TRAINING_KEY, f"{model.info.name} (Training tab, step {ident[1]}{at})", clone,
                            valid_nll=None if measured is None else measured[1])
        keep = self.entry.key if self.entry else None
        self.entries = [e for e in self.entries if e.key != TRAINING_KEY] + [entry]
        self._fill_combo(keep if keep is not None else TRAINING_KEY)
        self._show_model_summary()

    def select_model(self, key_or_family: str) -> bool:
        """Select by checkpoint path, TRAINING_KEY, file name or family key."""
        for i, e in enumerate(self.entries):
            if key_or_family in (e.key, e.path.name if e.path else None, e.model.info.key):
                self.model_combo.setCurrentIndex(i)
                return True
        return False
