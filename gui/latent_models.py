"""The Latent space tab's model chooser, as a mixin of :class:`gui.latent_panel.LatentPanel`:
the latent models in the weights folder (scanned off the GUI thread), checkpoints opened by hand,
and a copy of the Training tab's model when it is a latent model (taken again as it trains)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from PySide6.QtWidgets import QFileDialog

from core.readouts import copied_now
from gui.latent_state import (TRAINING_KEY, LatentEntry, check_model, load_latent_checkpoint,
                              scan_latent_weights)
from gui.training_copy import TrainingCopyMixin


class ModelsMixin(TrainingCopyMixin):
    """Needs the panel's ``state``, ``entries``, ``model_combo``, ``models_label``, ``jobs``,
    ``_activate``, ``_say`` and the callables it was given."""

    def reload_models(self) -> asyncio.Task | bool | None:
        """Scan the weights folder (off the GUI thread) and take the Training tab's model."""
        if self.loading:
            return None
        self.loading = True
        self.models_label.setText(f"loading latent models from {self.weights_dir}…")
        return self.jobs.run(scan_latent_weights, self.weights_dir, done=self._on_scanned,
                             failed=self._on_scan_failed, title="Cannot load the models")

    def _on_scanned(self, result: tuple[list[LatentEntry], list[str], int]) -> None:
        found, problems, others = result
        self.loading, self.loaded = False, True
        keep = self._wanted_key or (self.entry.key if self.entry else None)
        paths = {e.key for e in found}
        # files opened by hand and the Training tab's copy stay
        self.entries = found + [e for e in self.entries if e.key not in paths]
        self._training_id = None
        n = len(self.entries)
        text = f"{n} latent model{'s' if n != 1 else ''}" if n else (
            f"No latent model: put VAE, cVAE, AE, DCGAN or cGAN checkpoints in {self.weights_dir} "
            "or train one in the Training tab.")
        if others:
            text += f" ({others} checkpoint{'s' if others != 1 else ''} of other families not listed)"
        self.models_label.setText("\n".join([text] + problems))
        if problems:
            self._say("; ".join(problems))
        self._fill_combo(keep)
        self.refresh_training_model()

    def _on_scan_failed(self, message: str) -> None:
        self.loading, self.loaded = False, True
        self.models_label.setText(message)

    def _fill_combo(self, keep: str | None) -> None:
        self.model_combo.blockSignals(True)
        self.model_combo.clear()
        for e in self.entries:
            self.model_combo.addItem(e.label, e.key)
        idx = next((i for i, e in enumerate(self.entries) if e.key == keep), -1)
        if idx < 0 and self.entries:  # default: the classroom's 2-dimensional VAE, else the first
            idx = next((i for i, e in enumerate(self.entries) if e.family == "vae" and e.latent_dim == 2), 0)
        self.model_combo.setCurrentIndex(idx)
        self.model_combo.blockSignals(False)
        if keep is not None and idx >= 0 and self.entries[idx].key == keep:
            self._wanted_key = None
        chosen = self.entries[idx] if idx >= 0 else None
        if chosen is not self.entry:
            self._activate(chosen)

    def select_model(self, key: str) -> bool:
        """Select by checkpoint path, file name, TRAINING_KEY or family key."""
        for i, e in enumerate(self.entries):
            if key in (e.key, e.path.name if e.path else None, e.family):
                self.model_combo.setCurrentIndex(i)
                return True
        return False

    def _on_model_changed(self, index: int) -> None:
        self._activate(self.entries[index] if 0 <= index < len(self.entries) else None)

    def refresh_training_model(self) -> None:
        """Take a copy of the Training tab's model when it is a latent model and has moved on."""
        got = self.training_model() if self.training_model is not None else None
        if got is None or self._closed:
            return
        model, _shape, step = got
        ident = (id(model), int(step))
        if ident == self._training_id:
            return
        if check_model(model) is not None:
            self._training_id = ident
            return  # the Training tab trains every family; only latent models come here
        self._ask_training_copy(model, ident, self.copy_model or copied_now)

    def _use_training_copy(self, clone, model, ident: tuple) -> None:
        entry = LatentEntry(TRAINING_KEY, f"{model.info.name} (Training tab, step {ident[1]})", clone)
        current = self.entry
        i = next((k for k, e in enumerate(self.entries) if e.key == TRAINING_KEY), -1)
        if i < 0:
            self.entries.append(entry)
            self._fill_combo(current.key if current is not None else TRAINING_KEY)
            return
        self.entries[i] = entry  # in place: the combo stays as it is (it may be open)
        self.model_combo.blockSignals(True)
        self.model_combo.setItemText(i, entry.label)
        self.model_combo.blockSignals(False)
        if current is not None and current.key == TRAINING_KEY:
            self._activate(entry, keep=current.family == entry.family)

    def _ask_open(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Explore a checkpoint", str(self.weights_dir),
                                              "Checkpoints (*.safetensors)")
        if path:
            self.open_checkpoint(path)

    def open_checkpoint(self, path: str | Path) -> asyncio.Task | bool:
        """Load one checkpoint (off the GUI thread) and explore it; a wrong family or a model that
        does not fit its weights is a message."""
        return self.jobs.run(load_latent_checkpoint, path, done=self._on_opened, title="Cannot explore the checkpoint")

    def _on_opened(self, entry: LatentEntry) -> None:
        self.entries = [e for e in self.entries if e.key != entry.key] + [entry]
        self._fill_combo(entry.key)
        self._say(f"exploring {entry.label}")
