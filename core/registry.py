"""The registry the model picker, the CLI and the checkpoint loader read.

Each file in ``core/models`` decorates its class with :func:`register`; importing
``core.models`` imports them all.
"""

from __future__ import annotations

from typing import Any, Sequence

from core.protocol import DataKind, GenerativeModel, ModelInfo

_REGISTRY: dict[str, type[GenerativeModel]] = {}


def register(cls: type[GenerativeModel]) -> type[GenerativeModel]:
    key = cls.info.key
    if key in _REGISTRY and _REGISTRY[key] is not cls:
        raise ValueError(f"two model families registered as {key!r}")
    _REGISTRY[key] = cls
    return cls


def _load() -> None:
    import core.models  # noqa: F401  (registers every family)


def families() -> list[ModelInfo]:
    """Every registered family, ordered by group then name."""
    _load()
    return sorted((c.info for c in _REGISTRY.values()), key=lambda i: (i.group, i.name))


def grouped() -> dict[str, list[ModelInfo]]:
    out: dict[str, list[ModelInfo]] = {}
    for info in families():
        out.setdefault(info.group, []).append(info)
    return out


def model_class(key: str) -> type[GenerativeModel]:
    _load()
    try:
        return _REGISTRY[key]
    except KeyError:
        raise KeyError(f"unknown model family {key!r}; known: {sorted(_REGISTRY)}") from None


def info(key: str) -> ModelInfo:
    return model_class(key).info


def create(key: str, data_shape: Sequence[int], data_kind: DataKind | str | None = None,
           **hparams: Any) -> GenerativeModel:
    """Build a model of family ``key`` for data of ``data_shape``, with validated hyperparameters."""
    cls = model_class(key)
    if data_kind is not None and DataKind(data_kind) not in cls.info.data_kinds:
        accepted = ", ".join(k.value for k in cls.info.data_kinds)
        raise ValueError(f"{cls.info.name} does not accept {DataKind(data_kind).value} data (it takes: {accepted})")
    return cls(data_shape, cls.info.validate(hparams))
