"""Data sets: built-in synthetic ones, and binarized MNIST from a path or a checked download.

Nothing here reads ``../shared``: binarized MNIST comes from a file the user names, from the
cache, or from a download whose content is checked against pinned SHA-256 digests.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from core.data.download import Cancelled, DownloadError, Progress, download
from core.protocol import DataKind

__all__ = ["Dataset", "DataError", "DATASETS", "load", "load_npz_array", "cache_dir",
           "binarized_mnist", "DownloadError"]


class DataError(ValueError):
    """A data file is missing, unreadable or of the wrong shape or values."""


@dataclass
class Dataset:
    name: str
    kind: DataKind
    train: np.ndarray
    valid: np.ndarray
    image_shape: tuple[int, int] | None = None
    meta: dict = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.train.shape[1:])


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    kind: DataKind
    description: str
    needs_file: bool  # True when it must be downloaded or given as a path


# --------------------------------------------------------------------------------------------
# binarized MNIST
# --------------------------------------------------------------------------------------------

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
                        + ". Pass the .npz file with --data (keys 'train' and 'valid').")


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


def eight_gaussians(n: int, noise: float = 0.5, seed: int = 0) -> np.ndarray:
    """FFJORD's 8 gaussians: centres on a circle of radius 4, std ``noise``, all divided by 1.414."""
    rng = np.random.default_rng(seed)
    angles = np.arange(8) * np.pi / 4
    centres = 4 * np.stack([np.cos(angles), np.sin(angles)], 1)
    x = centres[rng.integers(0, 8, n)] + noise * rng.standard_normal((n, 2))
    return (x / 1.414).astype(np.float32)


def moons(n: int, noise: float = 0.1, seed: int = 0) -> np.ndarray:
    """Two interleaved half circles (as sklearn's make_moons), x2 then shifted by (-1, -0.2)."""
    rng = np.random.default_rng(seed)
    n_out = n // 2
    t_out, t_in = rng.uniform(0, np.pi, n_out), rng.uniform(0, np.pi, n - n_out)
    outer = np.stack([np.cos(t_out), np.sin(t_out)], 1)
    inner = np.stack([1 - np.cos(t_in), 1 - np.sin(t_in) - 0.5], 1)
    x = np.concatenate([outer, inner]) + noise * rng.standard_normal((n, 2))
    x = x * 2 + np.array([-1.0, -0.2])
    return rng.permutation(x).astype(np.float32)


DATASETS: dict[str, DatasetInfo] = {
    "bars": DatasetInfo("bars", DataKind.BINARY_IMAGE,
                        "28x28 binary images of random bars (built in, instant)", False),
    "binarized_mnist": DatasetInfo("binarized_mnist", DataKind.BINARY_IMAGE,
                                   "binarized MNIST, Larochelle split (50k train / 10k valid)", True),
    "8gaussians": DatasetInfo("8gaussians", DataKind.POINTS_2D, "8 gaussians on a circle (2D)", False),
    "moons": DatasetInfo("moons", DataKind.POINTS_2D, "two moons (2D)", False),
}


def load(name: str, path: str | os.PathLike | None = None, *, n: int | None = None, seed: int = 0,
         progress: Progress | None = None, cancelled: Callable[[], bool] | None = None) -> Dataset:
    """Load a data set by name; ``path`` overrides where a file-backed one comes from."""
    if name not in DATASETS:
        raise DataError(f"unknown data set {name!r}; known: {sorted(DATASETS)}")
    if name == "binarized_mnist":
        return binarized_mnist(path, progress=progress, cancelled=cancelled)
    n = n or 4000
    n_valid = max(1, n // 4)
    if name == "bars":
        x = bars(n + n_valid, seed=seed)
        return Dataset(name, DataKind.BINARY_IMAGE, x[:n], x[n:], (28, 28))
    gen = {"8gaussians": eight_gaussians, "moons": moons}[name]
    x = gen(n + n_valid, seed=seed)
    return Dataset(name, DataKind.POINTS_2D, x[:n], x[n:])
