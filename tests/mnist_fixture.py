"""A small stand-in for the MNIST files, made by the tests themselves, so that the download
paths and the labelled (class-conditional) paths run on a clean clone, without ``../shared``.

The digits are drawn procedurally: seven-segment figures 0-9 of random size, place and stroke
width, with a grey rim so that the stochastic binarization has something to decide. From them:

* ``binarized_mnist.npz``: ``train`` and ``valid`` (N, 784) uint8 arrays of 0/1, like the
  Larochelle split;
* ``originals/binarized_mnist_{train,valid}.amat``: the same arrays as the original text files;
* ``mnist/t10k-images-idx3-ubyte.gz`` and ``mnist/t10k-labels-idx1-ubyte.gz``: greyscale digits
  and their labels in the IDX format (gzip), like the MNIST test set.

The loaders check pinned digests of the real files. These are read at each call (never bound
at import), and :meth:`MnistFixture.pin` substitutes the fixture's own with ``monkeypatch``
for one test: a test-only override that leaves the check of real downloads as it is.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: the lit segments of each digit: a top, b top right, c bottom right, d bottom, e bottom left,
#: f top left, g middle
SEGMENTS = {0: "abcdef", 1: "bc", 2: "abged", 3: "abgcd", 4: "fgbc", 5: "afgcd", 6: "afgedc", 7: "abc",
            8: "abcdefg", 9: "abcdfg"}
N_BINARIZED = (640, 160)  # train, valid of binarized_mnist.npz
N_DIGITS = 500  # labelled digits in the t10k-style files: 450 train, 50 valid after the split


def draw_digits(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(N, 28, 28) uint8 greyscale seven-segment digits: strokes 255, a rim of 100 around them."""
    out = np.zeros((len(labels), 28, 28), np.uint8)
    for img, label in zip(out, labels):
        h, w, t = int(rng.integers(16, 23)), int(rng.integers(9, 15)), int(rng.integers(2, 4))
        top, left = int(rng.integers(2, 27 - h)), int(rng.integers(3, 26 - w))
        mid, bottom, right = top + h // 2, top + h, left + w
        boxes = {"a": (top, top + t, left, right), "g": (mid - t // 2, mid - t // 2 + t, left, right),
                 "d": (bottom - t, bottom, left, right), "f": (top, mid, left, left + t),
                 "b": (top, mid, right - t, right), "e": (mid, bottom, left, left + t),
                 "c": (mid, bottom, right - t, right)}
        stroke = np.zeros((28, 28), bool)
        for seg in SEGMENTS[int(label)]:
            r0, r1, c0, c1 = boxes[seg]
            stroke[r0:r1, c0:c1] = True
        rim = np.zeros_like(stroke)
        rim[1:] |= stroke[:-1]
        rim[:-1] |= stroke[1:]
        rim[:, 1:] |= stroke[:, :-1]
        rim[:, :-1] |= stroke[:, 1:]
        img[rim] = 100
        img[stroke] = 255
    return out


def binarize(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    flat = images.reshape(len(images), -1).astype(np.float64) / 255.0
    return (flat > rng.uniform(size=flat.shape)).astype(np.uint8)


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file of unsigned bytes, written from the format's description."""
    array = np.asarray(array, np.uint8)
    head = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return head + array.tobytes()


def _digest(path: Path, algorithm: str) -> str:
    return hashlib.new(algorithm, path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class MnistFixture:
    root: Path  # the folder a loopback mirror serves
    npz_sha256: str  # of binarized_mnist.npz, as the file
    content_sha256: dict[str, str]  # of its train / valid arrays' bytes (the .amat route's check)
    digits_md5: dict[str, str]  # file name -> MD5 of the t10k-style .gz files
    train: np.ndarray  # binarized_mnist's arrays
    valid: np.ndarray
    digit_labels: np.ndarray  # the labels of the t10k-style file

    @property
    def npz(self) -> Path:
        return self.root / "binarized_mnist.npz"

    @property
    def digits_dir(self) -> Path:
        """A folder holding the two t10k-style files (``--data-path``)."""
        return self.root / "mnist"

    @property
    def n_digits_valid(self) -> int:
        from core.data import mnist_digits as md

        return min(N_DIGITS - 1, max(1, round(N_DIGITS * md.VALID_FRACTION)))

    def pin(self, monkeypatch) -> None:
        """Make the loaders expect this fixture's digests instead of the real files', for one test."""
        import core.data
        from core.data import mnist_digits as md

        assert set(self.digits_md5) == set(md.MNIST_DIGITS_MD5)
        monkeypatch.setattr(core.data, "MNIST_NPZ_SHA256", self.npz_sha256)
        monkeypatch.setattr(core.data, "MNIST_CONTENT_SHA256", dict(self.content_sha256))
        monkeypatch.setattr(md, "MNIST_DIGITS_MD5", dict(self.digits_md5))


def make(root: Path, seed: int = 0) -> MnistFixture:
    """Write the fixture's files under ``root``."""
    from core.data import mnist_digits as md

    rng = np.random.default_rng(seed)
    n_train, n_valid = N_BINARIZED
    train = binarize(draw_digits(rng.integers(0, 10, n_train), rng), rng)
    valid = binarize(draw_digits(rng.integers(0, 10, n_valid), rng), rng)
    root.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(root / "binarized_mnist.npz", train=train, valid=valid)
    (root / "originals").mkdir()
    for split, arr in (("train", train), ("valid", valid)):
        text = "\n".join(" ".join(map(str, row)) for row in arr.tolist()) + "\n"
        (root / "originals" / f"binarized_mnist_{split}.amat").write_text(text)

    labels = np.arange(N_DIGITS) % 10  # every class, 50 of each
    rng.shuffle(labels)
    images = draw_digits(labels, rng)
    (root / "mnist").mkdir()
    for name, arr in ((md.IMAGES_FILE, images), (md.LABELS_FILE, labels)):
        (root / "mnist" / name).write_bytes(gzip.compress(idx_bytes(arr), mtime=0))

    return MnistFixture(
        root=root,
        npz_sha256=_digest(root / "binarized_mnist.npz", "sha256"),
        content_sha256={s: hashlib.sha256(np.ascontiguousarray(a, np.uint8).tobytes()).hexdigest()
                        for s, a in (("train", train), ("valid", valid))},
        digits_md5={name: _digest(root / "mnist" / name, "md5") for name in md.MNIST_DIGITS_MD5},
        train=train, valid=valid, digit_labels=labels.astype(np.int64),
    )
