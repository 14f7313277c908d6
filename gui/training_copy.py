"""Taking a copy of the Training tab's model into another tab (the Canvas and Latent space tabs
do it the same way): asked for with an identity (the model and its step), the copy made off the
GUI thread (or at the worker's next step), and used only if no newer copy was asked for since."""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any, Callable

from core.protocol import GenerativeModel


class TrainingCopyMixin:
    """Needs the tab's ``jobs``, ``_say(text)`` and ``_training_id``; the tab implements
    ``_use_training_copy(clone, model, ident)``."""

    def _ask_training_copy(self, model: GenerativeModel, ident: tuple,
                           copier: Callable[[GenerativeModel], Future]) -> None:
        """Ask for a copy of ``model`` (at ``ident``); it comes to ``_use_training_copy``."""
        self._training_id = ident
        copy = copier(model)
        self.jobs.when_done(copy, lambda: self._take_training_copy(copy, model, ident),
                            "Cannot take the Training tab's model")

    def _take_training_copy(self, copy: Future, model: GenerativeModel, ident: tuple) -> None:
        if ident != self._training_id:
            return  # a newer one was asked for meanwhile
        try:
            clone = copy.result()
        except (ValueError, RuntimeError, KeyError) as exc:
            self._training_id = None
            self._say(f"cannot take the Training tab's model: {exc}")
            return
        self._use_training_copy(clone, model, ident)

    def _use_training_copy(self, clone: GenerativeModel, model: GenerativeModel, ident: tuple) -> Any:
        raise NotImplementedError
