"""Held-out evaluation: the one NLL result type (:class:`NLL`, exact or a bound) and
:func:`evaluate`, and the check that a class-conditional model has labelled data."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np
import torch

from core.data import Dataset
from core.protocol import GenerativeModel, Likelihood, NonFiniteError, check_abandoned


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


@dataclass(frozen=True)
class NLL:
    """A held-out negative log-likelihood: nats per example and bits per dimension, exact or
    (``is_bound``, for lower-bound models) an upper bound on the true NLL.

    The one way to read it from stored records: :meth:`from_record` (an ``evaluate`` result or a
    checkpoint's ``valid``: ``nll_nats`` / ``nll_bound_nats``) and :meth:`from_metrics` (the
    trainer's metrics: ``valid_nll`` / ``valid_nll_bound``); :meth:`record` and :meth:`metrics`
    write those keys.
    """

    nats: float
    bits_per_dim: float
    is_bound: bool = False
    n: int = 0  # examples scored (0: not recorded)
    family: str | None = None
    labels: bool | None = None  # class-conditional models: scored given the labels?
    #: the standard error of the mean (nats): how much the held-out sample's own noise moves
    #: ``nats`` (the per-example NLLs' std / sqrt(n)); NaN when not measured. Not compared.
    stderr: float = field(default=math.nan, compare=False)

    @property
    def likelihood(self) -> Likelihood:
        return Likelihood.LOWER_BOUND if self.is_bound else Likelihood.EXACT

    @classmethod
    def of(cls, nats: float, dim: int, is_bound: bool, **more: Any) -> "NLL":
        return cls(nats, nats / (dim * math.log(2)), is_bound, **more)

    # -- records: evaluate() results, a checkpoint's "valid" ------------------------------------
    def record(self) -> dict[str, Any]:
        """The JSON record (the CLI's output, a checkpoint's ``valid``)."""
        out: dict[str, Any] = ({"nll_bound_nats": self.nats, "bits_per_dim_bound": self.bits_per_dim}
                               if self.is_bound else {"nll_nats": self.nats, "bits_per_dim": self.bits_per_dim})
        out.update({"likelihood": self.likelihood.value, "n": self.n, "family": self.family})
        if self.labels is not None:
            out["labels"] = self.labels
        return out

    @classmethod
    def from_record(cls, record: Any) -> "NLL | None":
        """Read :meth:`record`'s keys; None when there is no finite NLL."""
        if not isinstance(record, Mapping):
            return None
        for key, bpd_key, bound in (("nll_nats", "bits_per_dim", False), ("nll_bound_nats", "bits_per_dim_bound", True)):
            nats = _finite(record.get(key))
            if nats is not None:
                bpd = _finite(record.get(bpd_key))
                labels = record.get("labels")
                return cls(nats, math.nan if bpd is None else bpd, bound, int(record.get("n") or 0),
                           record.get("family"), labels if isinstance(labels, bool) else None)
        return None

    # -- the trainer's metrics (a snapshot's, a checkpoint's "metrics") -------------------------
    def metrics(self, prefix: str = "valid_") -> dict[str, float]:
        if self.is_bound:
            return {f"{prefix}nll_bound": self.nats, f"{prefix}bpd_bound": self.bits_per_dim}
        return {f"{prefix}nll": self.nats, f"{prefix}bpd": self.bits_per_dim}

    @classmethod
    def from_metrics(cls, metrics: Any, prefix: str = "valid_") -> "NLL | None":
        if not isinstance(metrics, Mapping):
            return None
        for suffix, bound in (("", False), ("_bound", True)):
            nats = _finite(metrics.get(f"{prefix}nll{suffix}"))
            if nats is not None:
                bpd = _finite(metrics.get(f"{prefix}bpd{suffix}"))
                return cls(nats, math.nan if bpd is None else bpd, bound)
        return None


def check_labelled(model: GenerativeModel, data: Dataset) -> None:
    """A class-conditional model trains only on a data set with one label per example."""
    if data.train_labels is None or data.valid_labels is None:
        from core.data import DATASETS

        labelled = sorted(name for name, d in DATASETS.items() if d.labelled and d.kind in model.info.data_kinds)
        raise ValueError(f"{model.info.name} is class-conditional and needs labelled data, but the data set "
                         f"{data.name} has no labels; use one that has: {', '.join(labelled) or '(none)'}")
    for split, x, y in (("train", data.train, data.train_labels), ("valid", data.valid, data.valid_labels)):
        if len(y) != len(x):
            raise ValueError(f"data set {data.name}: {len(x)} {split} examples but {len(y)} labels")
        classes = model.hparams.get("classes")
        if classes is not None and len(y) and not 0 <= int(np.min(y)) <= int(np.max(y)) < int(classes):
            raise ValueError(f"data set {data.name} has {split} labels {int(np.min(y))} .. {int(np.max(y))}; "
                             f"the {model.info.name} has classes 0 .. {int(classes) - 1} (set its 'classes')")


def nll_of(model: GenerativeModel, x: torch.Tensor, batch_size: int = 1000,
           labels: torch.Tensor | None = None, progress: Callable[[int, int], None] | None = None) -> NLL:
    """The mean NLL of ``x`` (a tensor on the model's device), in batches; NonFiniteError when
    it is not finite. ``progress(examples scored, examples)`` is called after each batch."""
    total, squares, n = 0.0, 0.0, 0
    for i in range(0, len(x), batch_size):
        check_abandoned()  # (a closing window does not wait for the rest of the held-out set)
        if labels is None:
            lp = model.log_prob(x[i:i + batch_size].float())
        else:
            lp = model.log_prob(x[i:i + batch_size].float(), labels=labels[i:i + batch_size])
        lp = lp.double()
        total += float(lp.sum())
        squares += float((lp * lp).sum())
        n += len(lp)
        if progress is not None:
            progress(n, len(x))
    nll = -total / n
    if not math.isfinite(nll):
        raise NonFiniteError(f"the model's log-likelihood is {nll}")
    var = max(0.0, squares / n - nll * nll) * n / (n - 1) if n > 1 else math.nan
    return NLL.of(nll, model.dim, model.info.likelihood is not Likelihood.EXACT, n=n,
                  stderr=math.sqrt(var / n) if n > 1 else math.nan)


@torch.no_grad()
def evaluate(model: GenerativeModel, x: np.ndarray, batch_size: int = 1000,
             labels: np.ndarray | None = None, progress: Callable[[int, int], None] | None = None) -> NLL:
    """Score ``x`` (N, *data_shape): the :class:`NLL` (``is_bound`` for bound models);
    ``progress(examples scored, examples)`` after each batch.
    Class-conditional models score ``-log p(x | labels)`` given ``labels`` (N,), and record
    whether they had them (``labels``); other models take no labels."""
    kind = model.info.likelihood
    if kind is Likelihood.NONE:
        raise ValueError(f"{model.info.name} has no likelihood to evaluate")
    if tuple(x.shape[1:]) != model.data_shape:
        raise ValueError(f"the data have shape {x.shape}, the model expects (N, "
                         f"{', '.join(map(str, model.data_shape))})")
    if len(x) == 0:
        raise ValueError("the data are empty")
    if labels is not None:
        if not model.info.conditional:
            raise ValueError(f"{model.info.name} is not class-conditional: it takes no labels")
        labels = np.asarray(labels)
        if labels.shape != (len(x),) or labels.dtype.kind not in "iu":
            raise ValueError(f"expected {len(x)} integer labels, one per example, got {labels.dtype} "
                             f"of shape {labels.shape}")
        labels = torch.from_numpy(labels.astype(np.int64)).to(model.device)
    model.eval()
    t = torch.from_numpy(np.ascontiguousarray(x)).to(model.device)
    nll = nll_of(model, t, batch_size=batch_size, labels=labels, progress=progress)
    return NLL(nll.nats, nll.bits_per_dim, nll.is_bound, int(len(x)), model.info.key,
               (labels is not None) if model.info.conditional else None, nll.stderr)
