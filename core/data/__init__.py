"""Data sets: built-in synthetic ones (bars, and the 1D/2D toy sets of :mod:`core.data.toy`),
point sets from CSV files or painted by hand (:func:`from_points`), and binarized MNIST from a
path or a checked download.

Nothing here reads ``../shared``: binarized MNIST comes from a file the user names, from the
cache, or from a download whose content is checked against pinned SHA-256 digests.
"""

from __future__ import annotations

import hashlib
import os
import threading
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from core.data import toy, waves
from core.data.download import Cancelled, DownloadError, Progress, download
from core.data.errors import DataError
from core.protocol import DataKind

__all__ = ["Dataset", "DataError", "DATASETS", "load", "load_npz_array", "cache_dir",
           "binarized_mnist", "DownloadError", "from_points", "dataset_true_entropy", "TOY_SETS"]

TOY_SETS = toy.TOY_SETS


@dataclass
class Dataset:
    name: str
    kind: DataKind
    train: np.ndarray
    valid: np.ndarray
    image_shape: tuple[int, int] | None = None
    meta: dict = field(default_factory=dict)
    #: class labels (int64, one per example) of labelled sets, for class-conditional models
    train_labels: np.ndarray | None = None
    valid_labels: np.ndarray | None = None
    #: values derived on first use, from any thread (the playground computes the true entropy
    #: in an executor): kept here, under ``_lock``, never written into ``meta``
    _true_entropy: tuple[float | None] | None = field(default=None, init=False, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.train.shape[1:])

    def known_true_entropy(self) -> tuple[bool, float | None]:
        """``(computed, value)``: whether :func:`dataset_true_entropy` has run, and its result."""
        with self._lock:
            cached = self._true_entropy
        return (False, None) if cached is None else (True, cached[0])


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    kind: DataKind
    description: str
    needs_file: bool  # True when it must be downloaded or given as a path
    labelled: bool = False  # True when it has train_labels / valid_labels


# --------------------------------------------------------------------------------------------
# binarized MNIST
# --------------------------------------------------------------------------------------------

# The pinned digests below (and ``MNIST_DIGITS_MD5`` in mnist_digits.py) are read at each call,
# never bound at import: the only override is the tests' (tests/mnist_fixture.py), which patches
# them with monkeypatch for one test to serve a small stand-in from a loopback mirror. Nothing a
# user can set (argument, environment variable, setting) changes them.

#: SHA-256 of the C-contiguous uint8 arrays (not of a container file), so that the original
#: ``.amat`` text files and an ``.npz`` mirror are checked the same way.
MNIST_CONTENT_SHA256 = {
    "train": "43490d4d6ac9002727af4426d8748609fdb7e4094fa65ad8d681ea60082a7a5a",
    "valid": "069b4f0beb389b776478c3e872b4df71c95ac4be64d7cbe6d32e24ebac8e6d5e",
}
MNIST_NPZ_SHA256 = "4e2570ed229eb0a1e288e651e6494396300d53803acc82e50e8b346316cc1723"
#: The Larochelle & Murray (2011) originals. ``GMS_DATA_MIRROR`` (a base URL holding
#: ``binarized_mnist.npz``) is tried first when set.
MNIST_AMAT_URLS = {
    split: f"http://www.cs.toronto.edu/~larocheh/public/datasets/binarized_mnist/binarized_mnist_{split}.amat"
    for split in ("train", "valid")
}


def cache_dir() -> Path:
    base = os.environ.get("GMS_DATA_DIR")
    if base:
        return Path(base)
    xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(xdg) / "genmodel-sandbox"


def load_npz_array(path: str | os.PathLike, key: str | None = None) -> np.ndarray:
    """Read one array from an ``.npz`` without ever unpickling; ``key`` may be left out when
    the file holds exactly one array."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    if not zipfile.is_zipfile(path):  # numpy would try to unpickle it and suggest allow_pickle
        with open(path, "rb") as f:
            head = f.read(6)
        what = ("a single .npy array" if head == b"\x93NUMPY"
                else "a Python pickle (never loaded: unpickling can run code)" if head[:1] == b"\x80"
                else "a text file" if head and all(32 <= c < 127 or c in b"\t\r\n" for c in head) else "another format")
        raise DataError(f"{path} is not an .npz archive of named arrays (as numpy.savez writes): it looks like {what}")
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):  # a bare .npy array has no keys (nor close())
            raise DataError(f"{path} holds a single .npy array, not an .npz archive of named arrays")
        with loaded as z:
            keys = list(z.files)
            if key is None:
                if len(keys) != 1:
                    raise DataError(f"{path} holds arrays {keys}: choose one with --key")
                key = keys[0]
            if key not in keys:
                raise DataError(f"{path} has no array {key!r}; it holds {keys}")
            return z[key]
    except DataError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise DataError(f"{path} is not a readable .npz file ({exc})") from exc


def check_binary_images(x: np.ndarray, what: str, dim: int = 784) -> np.ndarray:
    """Check an (N, dim) array of {0,1} values and return it as uint8."""
    if x.ndim != 2 or x.shape[1] != dim:
        raise DataError(f"{what}: expected an (N, {dim}) array of binary pixels, got shape {x.shape}")
    if x.shape[0] == 0:
        raise DataError(f"{what}: the array is empty")
    if x.dtype.kind not in "biuf":
        raise DataError(f"{what}: expected numbers, got dtype {x.dtype}")
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        raise DataError(f"{what}: contains NaN or infinite values")
    if not np.isin(x, (0, 1)).all():
        raise DataError(f"{what}: pixels must be 0 or 1 (binarized); found values in [{x.min()}, {x.max()}]")
    return x.astype(np.uint8, copy=False)


def _content_ok(arrays: dict[str, np.ndarray]) -> bool:
    return all(
        split in arrays
        and hashlib.sha256(np.ascontiguousarray(arrays[split], dtype=np.uint8).tobytes()).hexdigest() == digest
        for split, digest in MNIST_CONTENT_SHA256.items()
    )


def _parse_amat(path: Path) -> np.ndarray:
    return np.loadtxt(path, dtype=np.uint8)


def binarized_mnist(path: str | os.PathLike | None = None, *, mirror: str | None = None,
                    progress: Progress | None = None,
                    cancelled: Callable[[], bool] | None = None) -> Dataset:
    """Binarized MNIST (Larochelle split): from ``path`` (an .npz with ``train`` and ``valid``),
    else from the cache, else downloaded (``mirror`` or ``$GMS_DATA_MIRROR`` first, then the
    original .amat files) and checked against pinned content digests."""
    if path is not None:
        path = Path(path)
        train = check_binary_images(load_npz_array(path, "train"), f"{path}[train]")
        valid = check_binary_images(load_npz_array(path, "valid"), f"{path}[valid]")
        return Dataset("binarized_mnist", DataKind.BINARY_IMAGE, train, valid, (28, 28), {"source": str(path)})

    cached = cache_dir() / "binarized_mnist.npz"
    if cached.is_file():
        try:
            return binarized_mnist(cached)
        except DataError:
            cached.unlink()  # a damaged cache is fetched again
    errors: list[str] = []
    mirror = mirror or os.environ.get("GMS_DATA_MIRROR")
    if mirror:
        try:
            download(mirror.rstrip("/") + "/binarized_mnist.npz", cached, sha256=MNIST_NPZ_SHA256,
                     progress=progress, cancelled=cancelled)
            return binarized_mnist(cached)
        except Cancelled:
            raise  # the user cancelled: do not go on to the fallback
        except DownloadError as exc:
            errors.append(str(exc))
    try:
        arrays = {}
        for split, url in MNIST_AMAT_URLS.items():
            amat = download(url, cache_dir() / f"binarized_mnist_{split}.amat", progress=progress,
                            cancelled=cancelled)
            try:
                arrays[split] = _parse_amat(amat)
            finally:  # an unparsable download must not stay in the cache either
                amat.unlink()
        if not _content_ok(arrays):
            raise DownloadError("downloaded binarized MNIST does not match the pinned checksums")
        tmp = cached.with_suffix(".tmp.npz")
        np.savez_compressed(tmp, **arrays)
        os.replace(tmp, cached)
        return binarized_mnist(cached)
    except Cancelled:
        raise
    except (DownloadError, ValueError, OSError) as exc:
        errors.append(str(exc))
    raise DownloadError("binarized MNIST is not available: " + "; ".join(errors)
                        + ". Use a local copy instead: an .npz file with 'train' and 'valid' arrays.")


# --------------------------------------------------------------------------------------------
# built-in synthetic sets (always available, offline)
# --------------------------------------------------------------------------------------------

def bars(n: int = 4000, size: int = 28, seed: int = 0) -> np.ndarray:
    """Binary images of one or two random horizontal or vertical bars, 4 pixels thick."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, size, size), np.uint8)
    for i in range(n):
        for _ in range(rng.integers(1, 3)):
            start = rng.integers(0, size - 4)
            if rng.random() < 0.5:
                x[i, start:start + 4, :] = 1
            else:
                x[i, :, start:start + 4] = 1
    return x.reshape(n, size * size)


_TOY_KIND = {1: DataKind.POINTS_1D, 2: DataKind.POINTS_2D}

DATASETS: dict[str, DatasetInfo] = {
    "bars": DatasetInfo("bars", DataKind.BINARY_IMAGE,
                        "28x28 binary images of random bars (built in, instant)", False),
    "binarized_mnist": DatasetInfo("binarized_mnist", DataKind.BINARY_IMAGE,
                                   "binarized MNIST, Larochelle split (50k train / 10k valid)", True),
    "mnist_digits": DatasetInfo("mnist_digits", DataKind.BINARY_IMAGE,
                                "labelled MNIST digits, binarized (9k train / 1k valid, with labels)", True,
                                labelled=True),
    **{name: DatasetInfo(name, _TOY_KIND[spec.dim], spec.description, False) for name, spec in TOY_SETS.items()},
    "waves": DatasetInfo("waves", DataKind.SEQUENCE, waves.DESCRIPTION, False),
}


def _check_points(x, what: str) -> np.ndarray:
    """Finite (N, d) float32 points, d in {1, 2}, N >= 2; (N,) is read as 1D."""
    x = np.asarray(x)
    if x.dtype.kind not in "biuf":
        raise DataError(f"{what}: expected numbers, got dtype {x.dtype}")
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[1] not in (1, 2):
        raise DataError(f"{what}: expected points of shape (N, 1) or (N, 2), got {x.shape}")
    if len(x) == 0:
        raise DataError(f"{what}: there are no points")
    if len(x) < 2:
        raise DataError(f"{what}: only one point; at least 2 are needed (one to train on, one to hold out)")
    bad = ~np.isfinite(x).all(1)
    if bad.any():
        raise DataError(f"{what}: point {int(np.flatnonzero(bad)[0])} is NaN or infinite "
                        f"({int(bad.sum())} such point(s))")
    return np.ascontiguousarray(x, dtype=np.float32)


def _point_meta(train: np.ndarray, **extra) -> dict:
    return {"noise": None, "bounds": [list(b) for b in toy.view_bounds(train)], "has_density": False,
            "modes": None, **extra}


def from_points(x, name: str = "painted", valid_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """A point data set from (N, 1), (N,) or (N, 2) finite points (N >= 2), split at random
    (seeded) into train and held-out parts; at least one point goes to each."""
    x = _check_points(x, name)
    if not (isinstance(valid_fraction, (int, float)) and 0 < valid_fraction < 1):
        raise DataError(f"valid_fraction must lie strictly between 0 and 1, got {valid_fraction!r}")
    n_valid = min(len(x) - 1, max(1, round(len(x) * valid_fraction)))
    perm = np.random.default_rng(seed).permutation(len(x))
    train, valid = x[perm[n_valid:]], x[perm[:n_valid]]
    return Dataset(name, _TOY_KIND[x.shape[1]], train, valid, None, _point_meta(train, source="points"))


def _load_toy(name: str, n: int | None, seed: int, noise: float | None, text: str | None) -> Dataset:
    spec = TOY_SETS[name]
    try:
        noise = toy.resolve_noise(name, noise)
        if n is not None:
            toy._check_n(n)
        if name == "integers1d":
            text = toy.DEFAULT_INTEGERS_TEXT if text is None else text
            values = toy.parse_integers(text)
            if len(values) < 2:
                raise DataError("type at least 2 integers (one to train on, one to hold out)")
    except DataError:
        raise
    except ValueError as exc:
        raise DataError(f"{name}: {exc}") from None
    valid_seed = np.random.SeedSequence(seed).spawn(1)[0]  # a stream independent of the training one
    if name == "integers1d" and n is None:
        # train on the typed sample itself; hold out a resample of it (its empirical distribution)
        jitter = noise * np.random.default_rng(seed).standard_normal(values.shape)
        train = (values + jitter).astype(np.float32)
        valid = toy.sample(name, max(1, len(values) // 4), noise, valid_seed, text=text)
    else:
        n = spec.default_n if n is None else int(n)
        train = toy.sample(name, n, noise, seed, text=text)
        valid = toy.sample(name, max(1, n // 4), noise, valid_seed, text=text)
    m = toy.modes(name, noise)
    meta = _point_meta(train, source="toy", noise=noise, seed=seed, has_density=toy.density_known(name, noise),
                       modes=None if m is None else [m[0].tolist(), float(m[1])])
    if name == "integers1d":
        meta["text"] = text
    return Dataset(name, _TOY_KIND[spec.dim], np.ascontiguousarray(train, np.float32), valid, None, meta)


def dataset_true_entropy(ds: Dataset, n_mc: int = 200_000) -> float | None:
    """The true entropy (nats) of a toy data set's distribution, the best held-out NLL a model
    can reach; None when unknown. Computed on first use (Monte Carlo, from any thread, outside
    the lock) and cached on the data set (see :meth:`Dataset.known_true_entropy`)."""
    computed, value = ds.known_true_entropy()
    if computed:
        return value
    known = ds.meta.get("source") == "toy" and ds.name in TOY_SETS
    value = toy.true_entropy(ds.name, ds.meta.get("noise"), n_mc=n_mc) if known else None
    with ds._lock:
        if ds._true_entropy is None:  # the first to finish wins: every caller returns one value
            ds._true_entropy = (value,)
        return ds._true_entropy[0]


def load(name: str, path: str | os.PathLike | None = None, *, n: int | None = None, seed: int = 0,
         noise: float | None = None, progress: Progress | None = None,
         cancelled: Callable[[], bool] | None = None, text: str | None = None) -> Dataset:
    """Load a data set by name; ``path`` overrides where a file-backed one comes from.

    Toy sets (``TOY_SETS``) draw ``n`` training points (default: the set's) and ``n // 4``
    held-out ones from independent seeded streams; ``noise`` overrides the set's default;
    ``text`` is the hand-typed sample of ``integers1d`` (without ``n`` its points are the
    training set as typed). Their ``meta`` holds ``noise``, ``bounds``, ``has_density``,
    ``modes`` ([centres, std] or None); see :func:`dataset_true_entropy`.
    """
    if name not in DATASETS:
        raise DataError(f"unknown data set {name!r}; known: {sorted(DATASETS)}")
    if name == "binarized_mnist":
        return binarized_mnist(path, progress=progress, cancelled=cancelled)
    if name == "mnist_digits":
        from core.data.mnist_digits import mnist_digits  # imports this package: loaded on use

        return mnist_digits(path, progress=progress, cancelled=cancelled)
    if name in TOY_SETS:
        return _load_toy(name, n, seed, noise, text)
    if name == "waves":  # sequences (core.data.waves); ``noise`` overrides its default
        train, valid, meta = waves.load(n, seed, noise)
        return Dataset(name, DataKind.SEQUENCE, train, valid, None, meta)
    n = n or 4000
    n_valid = max(1, n // 4)
    x = bars(n + n_valid, seed=seed)
    return Dataset(name, DataKind.BINARY_IMAGE, x[:n], x[n:], (28, 28))
