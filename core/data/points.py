"""CSV import and export of 1D and 2D point sets.

Reading accepts an optional header line (a first line none of whose cells is a number), blank
lines and ``#`` comment lines, and one separator per file: ``;`` if any line has one (then a
decimal comma, ``1,5``, is read as ``1.5``), else ``,``, else whitespace.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import numpy as np

from core.data.errors import DataError

__all__ = ["read_csv", "write_csv"]

_WS = re.compile(r"\s+")


def _split(line: str, sep: str | None) -> list[str]:
    if sep is None:
        return _WS.split(line)
    cells = [c.strip() for c in line.split(sep)]
    return [c.replace(",", ".") for c in cells] if sep == ";" else cells


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def read_csv(path: str | os.PathLike, dim: int | None = None) -> np.ndarray:
    """Read points from a CSV file into float32 (N, d), d in {1, 2}; raises :class:`DataError`
    with the line number for cells that are not numbers, NaN or infinite values and ragged rows."""
    path = Path(path)
    if dim is not None and dim not in (1, 2):
        raise ValueError(f"dim must be 1, 2 or None, got {dim!r}")
    if not path.is_file():
        raise DataError(f"CSV file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not a text (UTF-8) file: {exc}") from None
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc}") from None
    # (line number, stripped text) of the lines that hold something
    lines = [(i, s) for i, raw in enumerate(text.splitlines(), 1) if (s := raw.strip()) and not s.startswith("#")]
    if not lines:
        raise DataError(f"{path} is empty: it holds no points")
    body = "\n".join(s for _, s in lines)
    sep = ";" if ";" in body else ("," if "," in body else None)
    rows = [(i, _split(s, sep)) for i, s in lines]
    if not any(_is_number(c) for c in rows[0][1]):  # a header line
        header_line = rows[0][0]
        rows = rows[1:]
        if not rows:
            raise DataError(f"{path} has a header (line {header_line}) but no points")
    lengths = np.array([len(cells) for _, cells in rows])
    ncol = int(lengths[0])
    ragged = np.flatnonzero(lengths != ncol)
    if len(ragged):
        i, cells = rows[ragged[0]]
        raise DataError(f"{path}, line {i}: {len(cells)} columns where line {rows[0][0]} has {ncol} (ragged rows)")
    if ncol > 2:
        raise DataError(f"{path} has {ncol} columns; point data have 1 (x) or 2 (x, y)")
    if dim is not None and ncol != dim:
        raise DataError(f"{path} has {ncol} column{'s' if ncol > 1 else ''}; expected {dim}-dimensional points")
    try:
        x = np.array([cells for _, cells in rows], dtype=str).astype(np.float64).reshape(len(rows), ncol)
    except ValueError:
        i, cell = next((i, c) for i, cs in rows for c in cs if not _is_number(c))
        what = "an empty cell" if cell == "" else f"{cell!r} is not a number"
        raise DataError(f"{path}, line {i}: {what}") from None
    finite = np.isfinite(x).all(1)
    if not finite.all():
        k = int(np.flatnonzero(~finite)[0])
        raise DataError(f"{path}, line {rows[k][0]}: NaN or infinite value ({', '.join(rows[k][1])})")
    if np.abs(x).max() > np.finfo(np.float32).max:
        k = int(np.flatnonzero((np.abs(x) > np.finfo(np.float32).max).any(1))[0])
        raise DataError(f"{path}, line {rows[k][0]}: value too large for float32")
    return np.ascontiguousarray(x, dtype=np.float32)


def write_csv(path: str | os.PathLike, x) -> Path:
    """Write (N, 1), (N,) or (N, 2) finite points to ``path`` with a header ``x`` or ``x,y``;
    atomically (a temporary file beside it replaces it). Returns the path."""
    path = Path(path)
    x = np.asarray(x)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[1] not in (1, 2):
        raise DataError(f"expected points of shape (N, 1) or (N, 2), got {x.shape}")
    if x.dtype.kind not in "biuf":
        raise DataError(f"expected numbers, got dtype {x.dtype}")
    if not np.isfinite(x).all():
        raise DataError("cannot write NaN or infinite values")
    if x.dtype.kind != "f":
        x = x.astype(np.float64)
    fmt = "%.17g" if x.dtype == np.float64 else "%.9g"  # enough digits for an exact round trip
    try:
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise DataError(f"cannot write {path}: {exc}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            np.savetxt(f, x, fmt=fmt, delimiter=",", header="x" if x.shape[1] == 1 else "x,y", comments="")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path
