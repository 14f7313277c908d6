"""Checkpoints: a safetensors file whose header metadata holds the description (family,
hyperparameters, data set, step, metrics, app version), plus a readable JSON sidecar. Both are
written atomically; loading never unpickles anything.

:class:`CheckpointMeta` is the one typed view of that description, and
:meth:`CheckpointMeta.parse` the one parser (it reads every version of the metadata written so
far, the shipped weights' included).
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import struct
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

import core
from core import registry
from core.data import Dataset
from core.evaluation import NLL
from core.protocol import DataKind, GenerativeModel

FORMAT = "genmodel-sandbox/checkpoint"
FORMAT_VERSION = 1
_META_KEY = "genmodel_sandbox"


class CheckpointError(ValueError):
    """A checkpoint is missing, damaged, foreign or does not fit; nothing was changed."""


# --------------------------------------------------------------------------------------------
# the description
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DataInfo:
    """What a checkpoint says of the data set it was trained on."""

    name: str | None = None
    kind: DataKind | None = None
    image_shape: tuple[int, int] | None = None
    n_train: int | None = None


def _dict(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


def _data_info(raw: Any) -> DataInfo | None:
    if not isinstance(raw, Mapping):
        return None
    try:
        kind = DataKind(raw.get("kind")) if raw.get("kind") is not None else None
    except ValueError:
        kind = None
    shape = raw.get("image_shape")
    image_shape = (int(shape[0]), int(shape[1])) if isinstance(shape, (list, tuple)) and len(shape) == 2 else None
    n_train = raw.get("n_train")
    return DataInfo(raw.get("name"), kind, image_shape, int(n_train) if isinstance(n_train, int) else None)


def _percentiles(raw: Any) -> np.ndarray | None:
    """The held-out NLL (nats) at percentiles 0..100, never falling; None when absent or damaged."""
    if raw is None:
        return None
    try:
        arr = np.asarray(raw, np.float64)
    except (TypeError, ValueError):
        return None
    if arr.shape != (101,) or not np.isfinite(arr).all():
        return None
    return np.maximum.accumulate(arr)  # percentiles never fall; guard against a damaged list


@dataclass
class CheckpointMeta:
    """A checkpoint's description, typed. ``raw`` keeps the metadata exactly as stored (for
    the records this app does not interpret, and to write them back unchanged)."""

    family: str
    data_shape: tuple[int, ...] = ()
    hparams: dict[str, Any] = field(default_factory=dict)
    data: DataInfo | None = None
    step: int = 0
    epoch: float = 0.0
    metrics: dict[str, Any] = field(default_factory=dict)
    #: the recorded held-out evaluation (``main.py train --record``: the whole validation split)
    valid: NLL | None = None
    valid_percentiles: np.ndarray | None = None  # held-out NLL at percentiles 0..100
    training: dict[str, Any] | None = None  # how it was made (``main.py train --record``)
    app_version: str | None = None
    path: str | None = None  # where it was loaded from
    warnings: list[str] = field(default_factory=list)  # problems found on loading (a stale sidecar)
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def parse(cls, raw: Mapping[str, Any], path: str | os.PathLike | None = None) -> "CheckpointMeta":
        """The one parser of checkpoint metadata (a header's, a sidecar's, a payload's)."""
        raw = dict(raw)
        metrics = _dict(raw.get("metrics"))
        shape = raw.get("data_shape")
        training = raw.get("training")
        return cls(
            family=str(raw.get("family")),
            data_shape=tuple(int(s) for s in shape) if isinstance(shape, (list, tuple)) else (),
            hparams=_dict(raw.get("hparams")),
            data=_data_info(raw.get("data")),
            step=int(raw.get("step") or 0),
            epoch=float(raw.get("epoch") or 0.0),
            metrics=metrics,
            valid=NLL.from_record(raw.get("valid")),
            valid_percentiles=_percentiles(raw.get("valid_nll_percentiles")),
            training=dict(training) if isinstance(training, Mapping) else None,
            app_version=raw.get("app_version"),
            path=None if path is None else str(path),
            raw=raw,
        )

    @property
    def nll(self) -> NLL | None:
        """The best known held-out NLL: the recorded evaluation, else the trainer's last one."""
        return self.valid or NLL.from_metrics(self.metrics)

    @property
    def data_name(self) -> str | None:
        return self.data.name if self.data is not None else None

    @property
    def data_kind(self) -> DataKind | None:
        return self.data.kind if self.data is not None else None

    @property
    def image_shape(self) -> tuple[int, int] | None:
        return self.data.image_shape if self.data is not None else None


# --------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def sidecar_path(path: str | os.PathLike) -> Path:
    return Path(path).with_suffix(".json")


def jsonable(value: Any) -> Any:
    """``value`` with NaN and infinities as None, numpy scalars as Python ones, tuples as lists,
    and NLL results as their records: ready for ``json.dumps``."""
    if isinstance(value, NLL):
        return jsonable(value.record())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return value


def checkpoint_payload(model: GenerativeModel, *, data: Dataset | None = None, step: int = 0,
                       epoch: float = 0.0, metrics: dict | None = None,
                       extra: dict | None = None) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Copy the weights (on the CPU) and describe them; cheap, so the caller can take it between
    two training steps and write it elsewhere with :func:`write_checkpoint`."""
    tensors = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in model.state_dict().items()}
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "family": model.info.key,
        "hparams": model.hparams,
        "data_shape": list(model.data_shape),
        "data": None if data is None else {"name": data.name, "kind": data.kind.value,
                                           "image_shape": data.image_shape, "n_train": len(data.train)},
        "step": int(step),
        "epoch": float(epoch),
        "metrics": metrics or {},
        "app_version": core.__version__,
        "torch_version": torch.__version__,
        "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **(extra or {}),
    }
    return tensors, jsonable(meta)


def write_checkpoint(path: str | os.PathLike, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path:
    """Write ``path`` (.safetensors) and its ``.json`` sidecar, each atomically."""
    from safetensors.torch import save

    path = Path(path)
    if path.suffix != ".safetensors":
        raise CheckpointError(f"checkpoint files end in .safetensors, not {path.suffix or '(nothing)'}: {path}")
    blob = save(tensors, metadata={_META_KEY: json.dumps(meta)})
    _atomic_write(path, blob)
    side = dict(meta, tensors_sha256=hashlib.sha256(blob).hexdigest(), tensors_file=path.name)
    _atomic_write(sidecar_path(path), (json.dumps(side, indent=2) + "\n").encode())
    return path


def save_checkpoint(path: str | os.PathLike, model: GenerativeModel, **describe: Any) -> Path:
    """Save ``model`` to ``path``; ``describe`` as for :func:`checkpoint_payload`."""
    return write_checkpoint(path, *checkpoint_payload(model, **describe))


# --------------------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------------------


def _read_header(path: Path) -> tuple[dict, int, int]:
    """The safetensors header of ``path``, its length and the file's size; CheckpointError when
    the file is something else (a pickle, a zip) or truncated."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        (n,) = struct.unpack("<Q", head) if len(head) == 8 else (0,)
        first = f.read(1) if 0 < n <= size - 8 else b""
        if first != b"{":  # not a safetensors header: say what it is instead
            if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
                raise CheckpointError(f"{path} is a Python pickle, not a safetensors file. It was not "
                                      f"opened: unpickling a file can run arbitrary code.")
            if head[:4] == b"PK\x03\x04":
                raise CheckpointError(f"{path} is a zip archive (torch.save format?), not a safetensors "
                                      f"file. It was not opened: unpickling a file can run arbitrary code.")
            if len(head) < 8:
                raise CheckpointError(f"{path} is too short to be a checkpoint ({size} bytes)")
            raise CheckpointError(f"{path} is not a safetensors checkpoint, or it is truncated "
                                  f"(header says {n} bytes, the file has {size})")
        try:
            header = json.loads(first + f.read(n - 1))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"{path} is not a safetensors checkpoint, or it is truncated "
                                  f"(unreadable header: {exc})") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path} is not a safetensors checkpoint (bad header)")
    return header, n, size


#: bytes per element of every safetensors dtype
_DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U64": 8,
                "U32": 4, "U16": 2, "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}


def _tensor_bytes(path: Path, header: dict, n: int, size: int) -> int:
    """Check every tensor entry of the header against the file (a known dtype, a shape of whole
    numbers, offsets covering exactly its bytes, inside the file); return the bytes they take."""
    if not isinstance(header.get("__metadata__", {}), dict) or not all(
            isinstance(v, str) for v in header.get("__metadata__", {}).values()):
        raise CheckpointError(f"{path} is not a safetensors checkpoint (damaged header metadata)")
    room, total = size - 8 - n, 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (start, end) = entry["dtype"], entry["shape"], entry["data_offsets"]
            ok = (isinstance(dtype, str) and dtype in _DTYPE_BYTES and isinstance(shape, list)
                  and all(type(s) is int and 0 <= s < 2**62 for s in shape) and type(start) is int and type(end) is int)
        except (TypeError, KeyError, ValueError):
            ok = False
        if not ok:
            raise CheckpointError(f"{path} is damaged: the header's entry for tensor {name!r} is unreadable")
        if end > room:
            raise CheckpointError(f"{path} is truncated: {size} bytes, its header needs {8 + n + end}")
        if not 0 <= start <= end or math.prod(shape) * _DTYPE_BYTES[dtype] != end - start:
            raise CheckpointError(f"{path} is damaged: tensor {name!r} ({dtype} {shape}) does not fill "
                                  f"its bytes {start}..{end}")
        total += end - start
    return total


def _parse(raw: dict, path: Path, what: str) -> CheckpointMeta:
    try:
        return CheckpointMeta.parse(raw, path)
    except (TypeError, ValueError, OverflowError, AttributeError, KeyError, IndexError) as exc:
        raise CheckpointError(f"{what} damaged ({type(exc).__name__}: {exc})") from None


def _read_meta(path: Path) -> tuple[CheckpointMeta, int]:
    """The checked description of ``path`` and the bytes its tensors take."""
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    header, n, size = _read_header(path)
    tensor_bytes = _tensor_bytes(path, header, n, size)
    raw = header.get("__metadata__", {}).get(_META_KEY)
    if raw is None:
        raise CheckpointError(f"{path} is a safetensors file but not a checkpoint of this app "
                              f"(no {_META_KEY!r} metadata): it may belong to another program")
    try:
        meta = json.loads(raw)
    except json.JSONDecodeError:
        raise CheckpointError(f"{path}: its metadata are damaged") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: its metadata are damaged")
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: unknown checkpoint format {meta.get('format')!r}")
    try:
        version = int(meta.get("format_version", 0))
    except (TypeError, ValueError, OverflowError):
        raise CheckpointError(f"{path}: its metadata are damaged (format_version "
                              f"{meta.get('format_version')!r})") from None
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{path} was written by a newer version of the app "
                              f"(format {meta.get('format_version')}); please update")
    return _parse(meta, path, f"{path}: its metadata are"), tensor_bytes


def read_checkpoint_meta(path: str | os.PathLike) -> CheckpointMeta:
    """Read and check a checkpoint's header without loading tensors; raise CheckpointError."""
    return _read_meta(Path(path))[0]


def read_sidecar(path: str | os.PathLike) -> CheckpointMeta:
    """A checkpoint's JSON sidecar (``path`` is the sidecar or its .safetensors), parsed like the
    header, once checked against that header (the truth: :func:`sidecar_problems`).
    CheckpointError when it is missing, unreadable or disagrees with the checkpoint."""
    side = sidecar_path(path)
    problems = sidecar_problems(side.with_suffix(".safetensors"), missing_ok=False)
    if problems:
        raise CheckpointError(f"{side.name} cannot be trusted: " + "; ".join(problems))
    return _parse(json.loads(side.read_text()), side.with_suffix(".safetensors"), f"{side} is")


#: what a sidecar adds to the header's description
_SIDECAR_ONLY = ("tensors_sha256", "tensors_file")


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 60 else text[:57] + "..."


def sidecar_problems(path: str | os.PathLike, *, missing_ok: bool = True) -> list[str]:
    """How the JSON sidecar of the checkpoint ``path`` disagrees with the checkpoint, whose
    header is the truth: missing (a problem only when not ``missing_ok``), unreadable, written
    for another version of the weights (a renamed file is fine), or any field of the description that differs
    (another family, data shape, hyperparameters, step, record...). [] when it agrees."""
    path = Path(path)
    side = sidecar_path(path)
    if not side.is_file():
        return [] if missing_ok else [f"{path.name} has no sidecar {side.name}"]
    try:
        raw = json.loads(side.read_text())
    except (OSError, json.JSONDecodeError):
        raw = None
    if not isinstance(raw, dict):
        return [f"{side.name} is unreadable; the checkpoint's own metadata were used"]
    problems = []
    if raw.get("tensors_sha256") != hashlib.sha256(path.read_bytes()).hexdigest():
        problems.append(f"{side.name} describes another version of the weights")
    header = read_checkpoint_meta(path).raw
    for key in sorted((set(header) | set(raw)) - set(_SIDECAR_ONLY)):
        if json.dumps(header.get(key), sort_keys=True) != json.dumps(raw.get(key), sort_keys=True):  # NaN == NaN
            problems.append(f"{side.name} says {key} {_short(raw.get(key))}, the checkpoint "
                            f"{_short(jsonable(header.get(key)))}")
    return problems


def _check_fit(path: Path, model: GenerativeModel, tensors: dict[str, torch.Tensor]) -> None:
    own = model.state_dict()
    missing, unexpected = sorted(set(own) - set(tensors)), sorted(set(tensors) - set(own))
    wrong = sorted(k for k in set(own) & set(tensors)
                   if own[k].shape != tensors[k].shape and k not in model.resizable_buffers)
    # (floating weights may be stored at another precision: the shipped MADE mixture's are half)
    types = sorted(k for k in set(own) & set(tensors) if own[k].dtype != tensors[k].dtype
                   and not (own[k].is_floating_point() and tensors[k].is_floating_point()))
    if missing or unexpected or wrong or types:
        parts = []
        if missing:
            parts.append(f"missing {missing}")
        if unexpected:
            parts.append(f"unexpected {unexpected}")
        if wrong:
            parts.append("wrong shapes " + ", ".join(
                f"{k}: {tuple(tensors[k].shape)} vs {tuple(own[k].shape)}" for k in wrong))
        if types:
            parts.append("wrong dtypes " + ", ".join(f"{k}: {tensors[k].dtype} vs {own[k].dtype}" for k in types))
        raise CheckpointError(f"{path} does not fit a {model.info.key} model: " + "; ".join(parts))
    bad = sorted(k for k, v in tensors.items() if v.is_floating_point() and not torch.isfinite(v).all())
    if bad:
        raise CheckpointError(f"{path} holds NaN or infinite weights in {bad}")


def _build(path: Path, meta: CheckpointMeta, tensor_bytes: int) -> GenerativeModel:
    """The model ``meta`` describes, sized first without memory (on torch's "meta" device): a
    description claiming more weights than the file holds is refused before anything is built."""
    family, shape = meta.raw.get("family"), meta.raw.get("data_shape")
    if not (isinstance(shape, list) and 1 <= len(shape) <= 4 and all(type(s) is int and s > 0 for s in shape)):
        raise CheckpointError(f"{path} describes data of shape {shape!r}: not a list of positive whole numbers")
    if 4 * math.prod(shape) > tensor_bytes:  # every family has a float32 weight per data dimension at least
        raise CheckpointError(f"{path} describes data of shape {shape}, larger than its {tensor_bytes} bytes "
                              f"of weights can model: it is damaged")
    try:
        with torch.device("meta"):
            probe = registry.create(family, shape, **meta.hparams)
        need = sum(v.numel() * v.element_size() for k, v in probe.state_dict().items()
                   if k not in probe.resizable_buffers)
        if need > 2 * tensor_bytes + (1 << 20):  # a near miss is left to _check_fit, which names the tensors
            raise CheckpointError(f"{path} describes a {family} model of {need} bytes of weights, but holds "
                                  f"only {tensor_bytes}: it is damaged")
        return registry.create(family, shape, **meta.hparams)
    except (KeyError, ValueError, TypeError, OverflowError, RuntimeError, NotImplementedError) as exc:
        if isinstance(exc, CheckpointError):
            raise
        raise CheckpointError(f"{path} describes a model this app cannot build: {exc}") from None


def load_checkpoint(path: str | os.PathLike, *, family: str | None = None,
                    device: str | torch.device = "cpu") -> tuple[GenerativeModel, CheckpointMeta]:
    """Build the model a checkpoint describes and load its weights. ``family`` (optional) is
    the family the caller expects. Raises :class:`CheckpointError` with the reason."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    meta, tensor_bytes = _read_meta(path)
    if family is not None and meta.family != family:
        raise CheckpointError(f"{path} holds a {meta.family!r} model, not {family!r}")
    model = _build(path, meta, tensor_bytes)
    try:
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError, TypeError, OverflowError) as exc:
        raise CheckpointError(f"{path} is damaged or truncated: {exc}") from None
    _check_fit(path, model, tensors)
    try:
        model.load_state_dict(tensors)
    except (RuntimeError, ValueError, TypeError) as exc:
        raise CheckpointError(f"{path} does not fit a {model.info.key} model: {exc}") from None
    model.to(device)
    meta = copy.deepcopy(meta)
    meta.warnings.extend(sidecar_problems(path))
    return model, meta
