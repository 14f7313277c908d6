"""Labelled MNIST digits, binarized: the data set of the class-conditional models.

Source: the MNIST test set (LeCun et al.), 10,000 28x28 greyscale digits with their labels, in
the original IDX format (gzip):

* ``t10k-images-idx3-ubyte.gz``: magic ``00 00 08 03`` (unsigned bytes, 3 dimensions), then the
  dimensions N, 28, 28 as big-endian uint32, then N * 784 pixel bytes;
* ``t10k-labels-idx1-ubyte.gz``: magic ``00 00 08 01``, then N, then N label bytes (0..9).

They come from a directory the user names, else from the cache (``cache_dir()/mnist``), else
from a download (``$GMS_DATA_MIRROR/mnist/<file>`` first when that is set, then a public MNIST
mirror) checked against pinned MD5 digests. Every file is parsed defensively: a bad gzip
stream, a wrong magic number, impossible dimensions or a size that does not match the header
is a :class:`DataError` that says which.

The greyscale pixels are binarized once, stochastically, as in the binarized MNIST of
Larochelle & Murray (2011): ``x = pixel / 255 > u`` with ``u ~ U(0, 1)`` drawn from
``np.random.default_rng(0)``, so that every machine sees the same binary images; then the same
generator draws one permutation that puts 9,000 digits in ``train`` and 1,000 in ``valid``.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path
from typing import Callable

import numpy as np

from core.data.download import Cancelled, DownloadError, Progress, download, file_digest
from core.data.errors import DataError
from core.protocol import DataKind

#: file -> MD5 of the gzip file as published (read at each call: see core/data/__init__.py on the
#: tests' override)
MNIST_DIGITS_MD5 = {
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
IMAGES_FILE, LABELS_FILE = MNIST_DIGITS_MD5
#: tried after ``$GMS_DATA_MIRROR``: a public mirror of the original files (the one torchvision uses)
PUBLIC_MIRROR = "https://ossci-datasets.s3.amazonaws.com/mnist/"
#: held-out share of the digits (1,000 of the 10,000)
VALID_FRACTION = 0.1
CLASSES = 10
#: IDX type codes this reader accepts (MNIST uses only unsigned bytes)
_IDX_UBYTE = 0x08
#: no MNIST file decompresses to more: a bound against a gzip bomb posing as one
_MAX_BYTES = 64 << 20


# --------------------------------------------------------------------------------------------
# IDX parsing
# --------------------------------------------------------------------------------------------


def parse_idx(raw: bytes, what: str) -> np.ndarray:
    """Parse the bytes of an (uncompressed) IDX file of unsigned bytes into an array of the
    dimensions its header declares; raise :class:`DataError` for anything else."""
    if len(raw) < 4:
        raise DataError(f"{what}: too short to be an IDX file ({len(raw)} bytes)")
    zero, dtype, ndim = int.from_bytes(raw[:2], "big"), raw[2], raw[3]
    if zero != 0:
        raise DataError(f"{what}: not an IDX file (magic number {raw[:4].hex()}, expected 0000 08 0N)")
    if dtype != _IDX_UBYTE:
        raise DataError(f"{what}: IDX type code 0x{dtype:02x}, expected unsigned bytes (0x08)")
    if not 1 <= ndim <= 4:
        raise DataError(f"{what}: IDX header declares {ndim} dimensions (expected 1 to 4)")
    head = 4 + 4 * ndim
    if len(raw) < head:
        raise DataError(f"{what}: truncated in the IDX header ({len(raw)} bytes)")
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    size = int(np.prod(dims, dtype=np.int64)) if dims else 0
    if len(raw) - head != size:
        state = "truncated" if len(raw) - head < size else "longer than its header says"
        raise DataError(f"{what}: {state}: dimensions {dims} need {size} bytes of data, "
                        f"the file has {len(raw) - head}")
    return np.frombuffer(raw, dtype=np.uint8, offset=head).reshape(dims).copy()


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file, gzip-compressed (``.gz``) or not."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            if f.read(2) == b"\x1f\x8b":  # the gzip magic: decompress, at most _MAX_BYTES
                f.seek(0)
                with gzip.GzipFile(fileobj=f) as g:
                    raw = g.read(_MAX_BYTES + 1)
            else:
                f.seek(0)
                raw = f.read(_MAX_BYTES + 1)
    except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError
        raise DataError(f"{path}: not a readable gzip/IDX file ({type(exc).__name__}: {exc})") from None
    if len(raw) > _MAX_BYTES:
        raise DataError(f"{path}: larger than any MNIST file ({_MAX_BYTES >> 20} MiB decompressed)")
    return parse_idx(raw, str(path))


def read_digits(images_path: str | os.PathLike, labels_path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """The digits (N, 28, 28) uint8 and their labels (N,) int64, checked against each other."""
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DataError(f"{images_path}: expected images of shape (N, 28, 28), got {images.shape}")
    if labels.ndim != 1:
        raise DataError(f"{labels_path}: expected a 1-D array of labels, got shape {labels.shape}")
    if len(images) != len(labels):
        raise DataError(f"{images_path} holds {len(images)} images but {labels_path} {len(labels)} labels")
    if len(images) < 2:
        raise DataError(f"{images_path}: at least 2 digits are needed (one to train on, one to hold out)")
    if labels.max() >= CLASSES:
        raise DataError(f"{labels_path}: labels must be digits 0..9, found {int(labels.max())}")
    return images, labels.astype(np.int64)


# --------------------------------------------------------------------------------------------
# binarization and split
# --------------------------------------------------------------------------------------------


def binarize_and_split(images: np.ndarray, labels: np.ndarray):
    """Fixed stochastic binarization (``default_rng(0)``) and permutation into train / valid;
    returns ``(train, train_labels, valid, valid_labels)``, images as uint8 (N, 784)."""
    n = len(images)
    rng = np.random.default_rng(0)
    x = (images.reshape(n, -1).astype(np.float64) / 255.0 > rng.uniform(size=(n, images[0].size))).astype(np.uint8)
    perm = rng.permutation(n)
    n_valid = min(n - 1, max(1, round(n * VALID_FRACTION)))
    tr, va = np.sort(perm[n_valid:]), np.sort(perm[:n_valid])
    return (np.ascontiguousarray(x[tr]), np.ascontiguousarray(labels[tr]),
            np.ascontiguousarray(x[va]), np.ascontiguousarray(labels[va]))


# --------------------------------------------------------------------------------------------
# finding the files
# --------------------------------------------------------------------------------------------


def _find(folder: Path, name: str) -> Path | None:
    """``name`` in ``folder``, or its decompressed twin (``name`` without ``.gz``)."""
    for candidate in (folder / name, folder / name.removesuffix(".gz")):
        if candidate.is_file():
            return candidate
    return None


def _from_folder(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    found = {name: _find(folder, name) for name in MNIST_DIGITS_MD5}
    missing = [name for name, p in found.items() if p is None]
    if missing:
        raise DataError(f"{folder} does not hold the MNIST file(s) {missing} (or their uncompressed "
                        f"versions without .gz)")
    return read_digits(found[IMAGES_FILE], found[LABELS_FILE])


def _cache_ok(folder: Path) -> bool:
    return all((folder / name).is_file() and file_digest(folder / name, "md5") == md5
               for name, md5 in MNIST_DIGITS_MD5.items())


def _download_all(folder: Path, mirror: str | None, progress: Progress | None,
                  cancelled: Callable[[], bool] | None) -> None:
    """Fetch both files into ``folder`` from the first source that serves the pinned bytes."""
    bases = [m.rstrip("/") + "/mnist/" for m in (mirror,) if m] + [PUBLIC_MIRROR]
    errors: list[str] = []
    for base in bases:
        try:
            for name, md5 in MNIST_DIGITS_MD5.items():
                if not ((folder / name).is_file() and file_digest(folder / name, "md5") == md5):
                    download(base.rstrip("/") + "/" + name, folder / name, md5=md5, progress=progress,
                             cancelled=cancelled)
            return
        except Cancelled:
            raise  # the user cancelled: do not go on to the next source
        except DownloadError as exc:
            errors.append(str(exc))
    raise DownloadError("MNIST digits are not available: " + "; ".join(errors)
                        + f". Put {IMAGES_FILE} and {LABELS_FILE} in a folder and pass it "
                          f"(--data-path in the CLI, the data file field in the window).")


def mnist_digits(path: str | os.PathLike | None = None, *, mirror: str | None = None,
                 progress: Progress | None = None, cancelled: Callable[[], bool] | None = None):
    """The labelled, binarized MNIST digits: from ``path`` (a folder holding the two IDX files,
    or one of the files), else the cache, else a checked download. Returns a
    :class:`core.data.Dataset` with ``train_labels`` and ``valid_labels``."""
    from core import data as datasets  # the package imports this module lazily

    if path is not None:
        folder = Path(path)
        if folder.is_file():
            folder = folder.parent
        if not folder.is_dir():
            raise DataError(f"no folder at {folder}: pass the folder that holds {IMAGES_FILE} and {LABELS_FILE}")
        images, labels = _from_folder(folder)
        source = str(folder)
    else:
        folder = datasets.cache_dir() / "mnist"
        if not _cache_ok(folder):  # missing or damaged: fetched (again), each file checked
            _download_all(folder, mirror or os.environ.get("GMS_DATA_MIRROR"), progress, cancelled)
        images, labels = read_digits(folder / IMAGES_FILE, folder / LABELS_FILE)
        source = "cache"
    train, train_labels, valid, valid_labels = binarize_and_split(images, labels)
    meta = {"source": source, "classes": CLASSES, "class_names": [str(c) for c in range(CLASSES)]}
    return datasets.Dataset("mnist_digits", DataKind.BINARY_IMAGE, train, valid, (28, 28), meta,
                            train_labels=train_labels, valid_labels=valid_labels)
