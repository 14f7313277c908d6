"""Labelled MNIST digits: IDX parsing (good, corrupt, truncated), binarization and split, loading
from a folder, and the checked download from a loopback HTTP server (nothing here touches the
network). The download tests serve the small stand-in of ``tests/mnist_fixture.py``; the tests
of the real files (from ``../shared/data/mnist``, when it is there) check the pinned digests."""

from __future__ import annotations

import functools
import gzip
import http.server
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from core import data as datasets
from core.data import DataError, DownloadError
from core.data import mnist_digits as md
from core.data.download import Cancelled, file_digest
from core.protocol import DataKind

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
needs_shared = pytest.mark.skipif(not (SHARED / md.IMAGES_FILE).is_file(),
                                  reason=f"its point is the real MNIST files: {SHARED} is not available")


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file of unsigned bytes, written from the format's description."""
    array = np.asarray(array, np.uint8)
    head = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return head + array.tobytes()


def write_set(folder: Path, images: np.ndarray, labels: np.ndarray, compress: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, arr in ((md.IMAGES_FILE, images), (md.LABELS_FILE, labels)):
        raw = idx_bytes(arr)
        if compress:
            (folder / name).write_bytes(gzip.compress(raw))
        else:
            (folder / name.removesuffix(".gz")).write_bytes(raw)
    return folder


# --------------------------------------------------------------------------------------------
# IDX parsing
# --------------------------------------------------------------------------------------------


def test_parse_idx_round_trip():
    a = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    out = md.parse_idx(idx_bytes(a), "a")
    assert out.dtype == np.uint8 and np.array_equal(out, a)
    assert np.array_equal(md.parse_idx(idx_bytes(np.array([7, 0, 9])), "l"), [7, 0, 9])


@pytest.mark.parametrize("raw, message", [
    (b"", "too short"),
    (b"\x00\x00", "too short"),
    (b"\x01\x00\x08\x01" + (1).to_bytes(4, "big") + b"\x05", "magic"),
    (b"\x00\x00\x0d\x01" + (1).to_bytes(4, "big") + b"\x05\x00\x00\x00", "type code"),  # float32
    (b"\x00\x00\x08\x00", "0 dimensions"),
    (b"\x00\x00\x08\x09" + b"\x00" * 36, "9 dimensions"),
    (b"\x00\x00\x08\x03" + (2).to_bytes(4, "big"), "header"),
    (idx_bytes(np.zeros((4, 28, 28)))[:-10], "truncated"),
    (idx_bytes(np.zeros((4, 28, 28))) + b"\x00", "longer than its header"),
    (b"\x00\x00\x08\x02" + (1 << 31).to_bytes(4, "big") * 2, "truncated"),  # a huge claim
])
def test_parse_idx_rejects_bad_files(raw, message):
    with pytest.raises(DataError, match=message):
        md.parse_idx(raw, "f")


def test_read_idx_gzip_plain_and_corrupt(tmp_path):
    a = np.arange(12, dtype=np.uint8).reshape(3, 4)
    (tmp_path / "a.gz").write_bytes(gzip.compress(idx_bytes(a)))
    (tmp_path / "a").write_bytes(idx_bytes(a))
    assert np.array_equal(md.read_idx(tmp_path / "a.gz"), a) and np.array_equal(md.read_idx(tmp_path / "a"), a)
    blob = gzip.compress(idx_bytes(np.zeros((50, 28, 28))))
    (tmp_path / "cut.gz").write_bytes(blob[: len(blob) // 2])  # a download that stopped half-way
    with pytest.raises(DataError, match="cut.gz"):
        md.read_idx(tmp_path / "cut.gz")
    (tmp_path / "junk.gz").write_bytes(b"\x1f\x8b" + bytes(range(256)) * 4)  # gzip magic, then garbage
    with pytest.raises(DataError, match="gzip"):
        md.read_idx(tmp_path / "junk.gz")
    with pytest.raises(DataError, match="not a readable"):
        md.read_idx(tmp_path / "missing.gz")


def test_read_idx_refuses_a_gzip_bomb(tmp_path, monkeypatch):
    monkeypatch.setattr(md, "_MAX_BYTES", 1000)
    (tmp_path / "big.gz").write_bytes(gzip.compress(idx_bytes(np.zeros((2, 28, 28)))))
    with pytest.raises(DataError, match="larger than any MNIST file"):
        md.read_idx(tmp_path / "big.gz")


@pytest.mark.parametrize("images, labels, message", [
    (np.zeros((5, 28, 27)), np.zeros(5), r"shape \(N, 28, 28\)"),
    (np.zeros((5, 784)), np.zeros(5), r"shape \(N, 28, 28\)"),
    (np.zeros((5, 28, 28)), np.zeros((5, 1)), "1-D"),
    (np.zeros((5, 28, 28)), np.zeros(4), "5 images but .* 4 labels"),
    (np.zeros((1, 28, 28)), np.zeros(1), "at least 2"),
    (np.zeros((5, 28, 28)), np.array([0, 1, 2, 3, 10]), "0..9"),
])
def test_read_digits_checks_images_against_labels(tmp_path, images, labels, message):
    write_set(tmp_path, images, labels)
    with pytest.raises(DataError, match=message):
        md.read_digits(tmp_path / md.IMAGES_FILE, tmp_path / md.LABELS_FILE)


# --------------------------------------------------------------------------------------------
# binarization, split, loading from a folder
# --------------------------------------------------------------------------------------------


def test_from_a_folder_binarizes_and_splits(tmp_path):
    # digits that are all white (label 1) or all black (label 0), and a grey one (128) of label 2
    labels = np.array([0, 1] * 45 + [2] * 10)
    images = np.zeros((100, 28, 28), np.uint8)
    images[labels == 1] = 255
    images[labels == 2] = 128
    ds = datasets.load("mnist_digits", path=write_set(tmp_path / "d", images, labels))
    assert ds.name == "mnist_digits" and ds.kind is DataKind.BINARY_IMAGE and ds.image_shape == (28, 28)
    assert ds.train.shape == (90, 784) and ds.valid.shape == (10, 784) and ds.train.dtype == np.uint8
    assert ds.train_labels.dtype == np.int64 and ds.valid_labels.dtype == np.int64
    assert sorted(np.concatenate([ds.train_labels, ds.valid_labels]).tolist()) == sorted(labels.tolist())
    for x, y in ((ds.train, ds.train_labels), (ds.valid, ds.valid_labels)):
        assert (x[y == 0] == 0).all() and (x[y == 1] == 1).all()  # labels follow their images
    grey = np.concatenate([ds.train[ds.train_labels == 2], ds.valid[ds.valid_labels == 2]])
    assert abs(grey.mean() - 128 / 255) < 0.02  # pixel/255 > u: a fair coin for mid-grey
    assert len(np.unique(grey, axis=0)) == len(grey)  # each digit its own draw
    # fixed: the same binary images and split every time, from plain IDX files as well
    again = datasets.load("mnist_digits", path=write_set(tmp_path / "plain", images, labels, compress=False))
    assert np.array_equal(again.train, ds.train) and np.array_equal(again.valid_labels, ds.valid_labels)
    # a path to one of the files names its folder
    one = datasets.load("mnist_digits", path=tmp_path / "d" / md.LABELS_FILE)
    assert np.array_equal(one.valid, ds.valid)


def test_folder_errors(tmp_path):
    with pytest.raises(DataError, match="no folder"):
        datasets.load("mnist_digits", path=tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz"):
        datasets.load("mnist_digits", path=tmp_path / "empty")
    folder = write_set(tmp_path / "bad", np.zeros((5, 28, 28)), np.zeros(5))
    (folder / md.IMAGES_FILE).write_bytes(b"<html>404</html>")
    with pytest.raises(DataError, match="magic"):
        datasets.load("mnist_digits", path=folder)


def test_registered_as_a_labelled_data_set():
    info = datasets.DATASETS["mnist_digits"]
    assert info.needs_file and info.labelled and info.kind is DataKind.BINARY_IMAGE
    assert not datasets.DATASETS["binarized_mnist"].labelled
    bars = datasets.load("bars", n=10)
    assert bars.train_labels is None and bars.valid_labels is None


@needs_shared
def test_the_real_files():
    for name, md5 in md.MNIST_DIGITS_MD5.items():
        assert file_digest(SHARED / name, "md5") == md5, f"the pinned MD5 of {name}"
    ds = datasets.load("mnist_digits", path=SHARED)
    assert ds.train.shape == (9000, 784) and ds.valid.shape == (1000, 784)
    assert set(np.unique(ds.train)) == {0, 1} and 0.1 < ds.train.mean() < 0.16
    assert np.bincount(ds.valid_labels, minlength=10).min() > 50  # every digit held out
    assert np.bincount(ds.train_labels).tolist() != [900] * 10  # the test set's own class counts
    assert ds.meta["classes"] == 10


# --------------------------------------------------------------------------------------------
# the checked download, from a loopback server
# --------------------------------------------------------------------------------------------


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    """A loopback HTTP server: ``GMS_DATA_MIRROR`` points at it, the public mirror at a folder of
    it that is empty until a test fills it; a fresh cache folder."""
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    root = tmp_path / "www"
    (root / "mnist").mkdir(parents=True)
    (root / "public").mkdir()
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self):
            requests.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    class Quiet(http.server.ThreadingHTTPServer):
        def handle_error(self, request, client_address):
            pass  # a cancelled client resets the connection: expected

    httpd = Quiet(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}"
    cache = tmp_path / "cache"
    monkeypatch.setenv("GMS_DATA_DIR", str(cache))
    monkeypatch.setenv("GMS_DATA_MIRROR", url + "/")
    monkeypatch.setattr(md, "PUBLIC_MIRROR", url + "/public/")
    yield root, requests, cache / "mnist"
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


def _debris(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.part")) if folder.exists() else []


def test_download_check_and_cache(mirror, mnist_fixture, monkeypatch):
    root, requests, cache = mirror
    mnist_fixture.pin(monkeypatch)
    for name in md.MNIST_DIGITS_MD5:
        shutil.copyfile(mnist_fixture.digits_dir / name, root / "mnist" / name)
    progress = []
    ds = datasets.load("mnist_digits", progress=lambda d, t: progress.append((d, t)))
    n_valid = mnist_fixture.n_digits_valid
    assert ds.train.shape == (len(mnist_fixture.digit_labels) - n_valid, 784) and ds.valid_labels.shape == (n_valid,)
    assert sorted(requests) == sorted(f"/mnist/{n}" for n in md.MNIST_DIGITS_MD5)
    for name, want in md.MNIST_DIGITS_MD5.items():
        assert file_digest(cache / name, "md5") == want
    assert progress and _debris(cache) == []
    # the same as from the folder itself
    direct = datasets.load("mnist_digits", path=mnist_fixture.digits_dir)
    assert np.array_equal(direct.train, ds.train) and np.array_equal(direct.valid_labels, ds.valid_labels)

    def no_network(*a, **kw):
        raise AssertionError("downloaded although the files are cached")

    monkeypatch.setattr(md, "download", no_network)
    again = datasets.load("mnist_digits")
    assert np.array_equal(again.valid, ds.valid)


def test_damaged_cache_is_fetched_again_and_public_mirror_is_the_fallback(mirror, mnist_fixture, monkeypatch):
    root, requests, cache = mirror
    mnist_fixture.pin(monkeypatch)
    monkeypatch.delenv("GMS_DATA_MIRROR")
    for name in md.MNIST_DIGITS_MD5:
        shutil.copyfile(mnist_fixture.digits_dir / name, root / "public" / name)
    cache.mkdir(parents=True)
    shutil.copyfile(mnist_fixture.digits_dir / md.LABELS_FILE, cache / md.LABELS_FILE)  # good: kept
    (cache / md.IMAGES_FILE).write_bytes(b"half a download")  # damaged: fetched again
    ds = datasets.load("mnist_digits")
    assert len(ds.train) + len(ds.valid) == len(mnist_fixture.digit_labels)
    assert requests == [f"/public/{md.IMAGES_FILE}"]
    assert file_digest(cache / md.IMAGES_FILE, "md5") == md.MNIST_DIGITS_MD5[md.IMAGES_FILE]


def test_md5_mismatch_leaves_nothing(mirror):
    root, requests, cache = mirror
    labels = np.zeros(5, np.uint8)
    for name, arr in ((md.IMAGES_FILE, np.zeros((5, 28, 28))), (md.LABELS_FILE, labels)):
        (root / "mnist" / name).write_bytes(gzip.compress(idx_bytes(arr)))  # valid IDX, wrong bytes
    with pytest.raises(DownloadError) as err:
        datasets.load("mnist_digits")
    msg = str(err.value)
    assert "checksum mismatch" in msg and "md5" in msg and "404" in msg and "--data-path" in msg
    assert not (cache / md.IMAGES_FILE).exists() and _debris(cache) == []
    assert requests[0] == f"/mnist/{md.IMAGES_FILE}" and f"/public/{md.IMAGES_FILE}" in requests


def test_cancel_does_not_fall_back(mirror):
    root, requests, cache = mirror
    (root / "mnist" / md.IMAGES_FILE).write_bytes(b"\x00" * 200_000)
    with pytest.raises(Cancelled):
        datasets.load("mnist_digits", cancelled=lambda: True)
    assert requests == [f"/mnist/{md.IMAGES_FILE}"] and _debris(cache) == []

