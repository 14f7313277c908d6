"""Data: .npz reading, binary-image checks, built-in sets, and checked downloads from a
loopback HTTP server (nothing here touches the network)."""

from __future__ import annotations

import functools
import hashlib
import http.server
import os
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

import core.data
from core import data as datasets
from core.data import DataError, DownloadError, check_binary_images, load_npz_array
from core.data import toy
from core.data.download import Cancelled, download, file_digest
from core.protocol import DataKind
from waiting import steady, wait_until

SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "binarized_mnist.npz"

# --------------------------------------------------------------------------------------------
# a loopback HTTP server
# --------------------------------------------------------------------------------------------


@dataclass
class Server:
    root: Path
    url: str
    httpd: http.server.HTTPServer
    requests: list[str] = field(default_factory=list)
    running: bool = True

    def stop(self) -> None:
        if self.running:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.running = False


@pytest.fixture
def server(tmp_path, monkeypatch):
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    root = tmp_path / "www"
    root.mkdir()
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self):
            requests.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    class QuietServer(http.server.ThreadingHTTPServer):
        def handle_error(self, request, client_address):
            pass  # a client that cancels mid-transfer resets the connection: expected here

    httpd = QuietServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    srv = Server(root, f"http://127.0.0.1:{httpd.server_address[1]}", httpd, requests)
    yield srv
    srv.stop()
    thread.join(5)


def debris(folder: Path) -> list[str]:
    if not folder.exists():
        return []
    return sorted(p.name for p in folder.rglob("*") if p.name.endswith((".part", ".tmp", ".amat", ".tmp.npz")))


# a pickle that writes a file when (and only when) it is unpickled
def _write_marker(path: str) -> int:
    Path(path).write_text("unpickled")
    return 0


class Trap:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (_write_marker, (str(self.marker),))


# --------------------------------------------------------------------------------------------
# load_npz_array
# --------------------------------------------------------------------------------------------


def test_load_npz_array_single_and_named(tmp_path):
    a, b = np.arange(6).reshape(2, 3), np.ones((4, 2), np.uint8)
    np.savez(tmp_path / "one.npz", only=a)
    np.savez_compressed(tmp_path / "two.npz", first=a, second=b)
    assert np.array_equal(load_npz_array(tmp_path / "one.npz"), a)
    assert np.array_equal(load_npz_array(str(tmp_path / "one.npz"), "only"), a)
    out = load_npz_array(tmp_path / "two.npz", "second")
    assert np.array_equal(out, b) and out.dtype == np.uint8


def test_load_npz_array_missing_file(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_npz_array(tmp_path / "absent.npz")


@pytest.mark.parametrize("content", [b"just some text\n", b"", b"PK\x03\x04broken zip", os.urandom(300)])
def test_load_npz_array_not_an_npz(tmp_path, content):
    path = tmp_path / "bad.npz"
    path.write_bytes(content)
    with pytest.raises(DataError, match="bad.npz"):
        load_npz_array(path)


def test_load_npz_array_bare_npy(tmp_path):
    path = tmp_path / "array.npz"
    with open(path, "wb") as f:
        np.save(f, np.zeros((3, 784), np.uint8))
    with pytest.raises(DataError, match="array.npz"):
        load_npz_array(path)


def test_load_npz_array_never_unpickles(tmp_path):
    marker = tmp_path / "marker"
    objects = np.empty(1, dtype=object)
    objects[0] = Trap(marker)
    np.savez(tmp_path / "obj.npz", x=objects)
    with pytest.raises(DataError):
        load_npz_array(tmp_path / "obj.npz")
    assert not marker.exists()
    import pickle
    (tmp_path / "p.npz").write_bytes(pickle.dumps(Trap(marker)))
    with pytest.raises(DataError):
        load_npz_array(tmp_path / "p.npz")
    assert not marker.exists()


def test_load_npz_array_several_keys_need_a_key(tmp_path):
    np.savez(tmp_path / "two.npz", train=np.zeros(2), valid=np.zeros(3))
    with pytest.raises(DataError) as err:
        load_npz_array(tmp_path / "two.npz")
    assert "train" in str(err.value) and "valid" in str(err.value) and "--key" in str(err.value)


def test_load_npz_array_unknown_key(tmp_path):
    np.savez(tmp_path / "two.npz", train=np.zeros(2), valid=np.zeros(3))
    with pytest.raises(DataError, match="'test'") as err:
        load_npz_array(tmp_path / "two.npz", "test")
    assert "train" in str(err.value)


# --------------------------------------------------------------------------------------------
# check_binary_images
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.uint8, np.int64, np.float32, np.float64, bool])
def test_check_binary_images_accepts_binary(dtype):
    x = (np.random.default_rng(0).random((5, 784)) < 0.3).astype(dtype)
    out = check_binary_images(x, "x")
    assert out.dtype == np.uint8 and out.shape == (5, 784)
    assert np.array_equal(out, x.astype(np.uint8))


@pytest.mark.parametrize("shape", [(5, 100), (784,), (5, 28, 28), (5, 785)])
def test_check_binary_images_rejects_shapes(shape):
    with pytest.raises(DataError, match=r"shape") as err:
        check_binary_images(np.zeros(shape, np.uint8), "mydata")
    assert "mydata" in str(err.value) and "784" in str(err.value)


def test_check_binary_images_other_dim():
    assert check_binary_images(np.ones((2, 6)), "x", dim=6).shape == (2, 6)
    with pytest.raises(DataError):
        check_binary_images(np.ones((2, 784)), "x", dim=6)


@pytest.mark.parametrize("bad", [2, 255, -1, 0.5])
def test_check_binary_images_rejects_non_binary(bad):
    x = np.zeros((3, 784), np.float32 if isinstance(bad, float) else np.int64)
    x[1, 7] = bad
    with pytest.raises(DataError, match="0 or 1"):
        check_binary_images(x, "x")


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_check_binary_images_rejects_non_finite(bad):
    x = np.zeros((3, 784), np.float64)
    x[2, 0] = bad
    with pytest.raises(DataError, match="NaN"):
        check_binary_images(x, "x")


def test_check_binary_images_rejects_empty_and_non_numbers():
    with pytest.raises(DataError, match="empty"):
        check_binary_images(np.zeros((0, 784), np.uint8), "x")
    with pytest.raises(DataError, match="dtype"):
        check_binary_images(np.full((2, 784), "1"), "x")


# --------------------------------------------------------------------------------------------
# built-in sets
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["bars", "8gaussians", "moons"])
def test_builtin_sets_have_the_declared_kind_and_shape(name):
    info = datasets.DATASETS[name]
    assert not info.needs_file
    ds = datasets.load(name, n=200)
    assert ds.name == name and ds.kind is info.kind
    assert len(ds.train) == 200 and len(ds.valid) == 50
    if info.kind is DataKind.BINARY_IMAGE:
        assert ds.shape == (784,) and ds.image_shape == (28, 28)
        assert ds.train.dtype == np.uint8 and set(np.unique(ds.train)) <= {0, 1}
        assert check_binary_images(ds.train, name).shape == (200, 784)
        assert (ds.train.sum(1) > 0).all()  # every image has a bar
    else:
        assert ds.shape == (2,) and ds.image_shape is None
        assert ds.train.dtype == np.float32 and np.isfinite(ds.train).all() and np.isfinite(ds.valid).all()


@pytest.mark.parametrize("name", ["bars", "8gaussians", "moons"])
def test_builtin_sets_are_seeded(name):
    a, b = datasets.load(name, n=100, seed=5), datasets.load(name, n=100, seed=5)
    c = datasets.load(name, n=100, seed=6)
    assert np.array_equal(a.train, b.train) and np.array_equal(a.valid, b.valid)
    assert not np.array_equal(a.train, c.train)
    assert not np.array_equal(a.train[:25], a.valid)  # train and valid are different draws


def test_eight_gaussians_geometry():
    x = toy.sample("8gaussians", 4000, noise=0.01, seed=0)
    r = np.linalg.norm(x, axis=1)
    np.testing.assert_allclose(r, 4 / 1.414, atol=0.05)
    angles = np.round(np.degrees(np.arctan2(x[:, 1], x[:, 0])) / 45) % 8
    assert sorted(set(angles.astype(int))) == list(range(8))


def test_moons_geometry():
    x = toy.sample("moons", 2000, noise=0.0, seed=0)
    assert x.shape == (2000, 2) and np.isfinite(x).all()
    # without noise: each point is on one of the two (scaled, shifted) unit half circles
    u = (x + np.array([1.0, 0.2])) / 2
    outer = np.abs(np.linalg.norm(u, axis=1) - 1) < 1e-5
    inner = np.abs(np.linalg.norm(u - np.array([1.0, 0.5]), axis=1) - 1) < 1e-5
    assert (outer | inner).all() and outer.sum() == 1000 and inner.sum() == 1000


def test_unknown_data_set():
    with pytest.raises(DataError, match="bars"):
        datasets.load("no-such-set")


def test_binarized_mnist_from_a_path(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "m.npz", train=(rng.random((20, 784)) < 0.5).astype(np.uint8),
             valid=(rng.random((5, 784)) < 0.5).astype(np.uint8))
    ds = datasets.load("binarized_mnist", tmp_path / "m.npz")
    assert ds.kind is DataKind.BINARY_IMAGE and ds.train.shape == (20, 784) and ds.valid.shape == (5, 784)
    assert ds.image_shape == (28, 28)
    np.savez(tmp_path / "bad.npz", train=np.full((20, 784), 3, np.uint8), valid=np.zeros((5, 784), np.uint8))
    with pytest.raises(DataError, match="train"):
        datasets.binarized_mnist(tmp_path / "bad.npz")
    np.savez(tmp_path / "nokey.npz", train=np.zeros((20, 784), np.uint8))
    with pytest.raises(DataError, match="valid"):
        datasets.binarized_mnist(tmp_path / "nokey.npz")


# --------------------------------------------------------------------------------------------
# download()
# --------------------------------------------------------------------------------------------


@pytest.fixture
def payload(server) -> tuple[str, bytes]:
    body = os.urandom(300_000)  # several 64 KiB chunks
    (server.root / "blob.bin").write_bytes(body)
    return server.url + "/blob.bin", body


def test_download_with_good_checksums(payload, tmp_path):
    url, body = payload
    dest = tmp_path / "out" / "sub" / "blob.bin"
    got = download(url, dest, sha256=hashlib.sha256(body).hexdigest().upper(), md5=hashlib.md5(body).hexdigest())
    assert got == dest and dest.read_bytes() == body
    assert file_digest(dest) == hashlib.sha256(body).hexdigest()
    assert debris(dest.parent) == []


@pytest.mark.parametrize("which", ["sha256", "md5"])
def test_download_with_a_wrong_checksum_leaves_nothing(payload, tmp_path, which):
    url, _ = payload
    dest = tmp_path / "out" / "blob.bin"
    with pytest.raises(DownloadError, match="checksum mismatch"):
        download(url, dest, **{which: "0" * (64 if which == "sha256" else 32)})
    assert not dest.exists() and list(dest.parent.iterdir()) == []


def test_failed_download_keeps_the_previous_file(payload, tmp_path):
    url, _ = payload
    dest = tmp_path / "blob.bin"
    dest.write_bytes(b"the old, good file")
    with pytest.raises(DownloadError):
        download(url, dest, sha256="f" * 64)
    assert dest.read_bytes() == b"the old, good file" and debris(tmp_path) == []


def test_download_progress(payload, tmp_path):
    url, body = payload
    calls = []
    download(url, tmp_path / "b.bin", progress=lambda done, total: calls.append((done, total)))
    done = [d for d, _ in calls]
    assert len(calls) >= 3
    assert done == sorted(done) and len(set(done)) == len(done) and done[-1] == len(body)
    assert all(total == len(body) for _, total in calls)


def test_download_cancellation(payload, tmp_path):
    url, _ = payload
    calls = []
    dest = tmp_path / "out" / "b.bin"
    with pytest.raises(Cancelled, match="cancelled"):
        download(url, dest, progress=lambda d, t: calls.append(d), cancelled=lambda: len(calls) >= 1)
    assert calls and calls[-1] < 300_000
    assert issubclass(Cancelled, DownloadError)
    assert not dest.exists() and list(dest.parent.iterdir()) == []


def test_download_http_error_and_refused_connection(server, tmp_path):
    with pytest.raises(DownloadError, match="404"):
        download(server.url + "/missing.bin", tmp_path / "x.bin")
    url = server.url
    server.stop()
    with pytest.raises(DownloadError):
        download(url + "/anything", tmp_path / "y.bin", timeout=5)
    assert list(tmp_path.glob("[xy].bin*")) == []


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts open files through /proc")
def test_failed_downloads_do_not_leak_file_descriptors(server, tmp_path):
    def open_fds():
        return len(os.listdir("/proc/self/fd"))

    download(server.url + "/", tmp_path / "warmup.html")  # the directory listing
    # the server thread closes its side of the warm-up connection a moment later
    assert wait_until(steady(open_fds, quiet=0.05), timeout=5)
    before = open_fds()
    for i in range(8):
        with pytest.raises(DownloadError):
            download(server.url + f"/missing{i}", tmp_path / "x.bin")
    assert wait_until(lambda: open_fds() <= before, timeout=2), (open_fds(), before)


# --------------------------------------------------------------------------------------------
# binarized MNIST, downloaded from a (loopback) mirror
# --------------------------------------------------------------------------------------------


@pytest.fixture
def mnist_env(server, tmp_path, monkeypatch):
    """GMS_DATA_MIRROR -> the loopback server; a fresh cache; the original URLs -> loopback 404s."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("GMS_DATA_DIR", str(cache))
    monkeypatch.setenv("GMS_DATA_MIRROR", server.url + "/")
    monkeypatch.setattr(core.data, "MNIST_AMAT_URLS",
                        {s: f"{server.url}/originals/binarized_mnist_{s}.amat" for s in ("train", "valid")})
    return server, cache


def test_binarized_mnist_download_and_cache(mnist_env, mnist_fixture, monkeypatch):
    server, cache = mnist_env
    shutil.copyfile(mnist_fixture.npz, server.root / "binarized_mnist.npz")
    mnist_fixture.pin(monkeypatch)
    assert datasets.cache_dir() == cache
    progress = []
    ds = datasets.binarized_mnist(progress=lambda d, t: progress.append((d, t)))
    assert np.array_equal(ds.train, mnist_fixture.train) and np.array_equal(ds.valid, mnist_fixture.valid)
    assert ds.train.dtype == np.uint8 and ds.kind is DataKind.BINARY_IMAGE and ds.image_shape == (28, 28)
    cached = cache / "binarized_mnist.npz"
    assert cached.is_file() and file_digest(cached) == mnist_fixture.npz_sha256
    assert server.requests == ["/binarized_mnist.npz"]
    assert progress[-1] == (mnist_fixture.npz.stat().st_size,) * 2
    assert debris(cache) == []

    # a second call reads the cache: no server, and no download at all
    server.stop()

    def no_network(*a, **kw):
        raise AssertionError("binarized_mnist() downloaded although the file is cached")

    monkeypatch.setattr(core.data, "download", no_network)
    again = datasets.load("binarized_mnist")
    assert np.array_equal(again.train, ds.train) and np.array_equal(again.valid, ds.valid)


def test_binarized_mnist_damaged_cache_is_fetched_again(mnist_env, mnist_fixture, monkeypatch):
    server, cache = mnist_env
    shutil.copyfile(mnist_fixture.npz, server.root / "binarized_mnist.npz")
    mnist_fixture.pin(monkeypatch)
    cache.mkdir()
    (cache / "binarized_mnist.npz").write_bytes(b"half a download")
    ds = datasets.binarized_mnist()
    assert np.array_equal(ds.valid, mnist_fixture.valid)
    assert file_digest(cache / "binarized_mnist.npz") == mnist_fixture.npz_sha256
    assert server.requests == ["/binarized_mnist.npz"]


def test_binarized_mnist_from_the_originals_when_there_is_no_mirror(mnist_mirror, mnist_fixture, monkeypatch):
    """The .amat route: parsed, checked against the pinned content digests, cached as .npz."""
    monkeypatch.delenv("GMS_DATA_MIRROR")
    ds = datasets.binarized_mnist()
    assert np.array_equal(ds.train, mnist_fixture.train) and np.array_equal(ds.valid, mnist_fixture.valid)
    assert sorted(mnist_mirror.requests) == [f"/originals/binarized_mnist_{s}.amat" for s in ("train", "valid")]
    assert (mnist_mirror.cache / "binarized_mnist.npz").is_file() and debris(mnist_mirror.cache) == []


@pytest.mark.skipif(not SHARED_MNIST.is_file(),
                    reason=f"its point is the real file: checks the pinned digest against {SHARED_MNIST}")
def test_pinned_digests_are_those_of_the_real_file():
    assert file_digest(SHARED_MNIST) == core.data.MNIST_NPZ_SHA256
    real = datasets.binarized_mnist(SHARED_MNIST)
    assert real.train.shape == (50000, 784) and real.valid.shape == (10000, 784)
    assert core.data._content_ok({"train": real.train, "valid": real.valid})


def test_binarized_mnist_corrupted_mirror_and_no_fallback(mnist_env):
    server, cache = mnist_env
    blob = np.zeros(10, np.uint8)  # a valid .npz, but not the pinned one
    with open(server.root / "binarized_mnist.npz", "wb") as f:
        np.savez(f, train=blob, valid=blob)
    with pytest.raises(DownloadError) as err:
        datasets.binarized_mnist()
    msg = str(err.value)
    assert "checksum mismatch" in msg and "404" in msg and "local copy" in msg and ".npz" in msg
    assert not (cache / "binarized_mnist.npz").exists()
    assert debris(cache) == []
    assert server.requests[0] == "/binarized_mnist.npz"
    assert any(r.startswith("/originals/") for r in server.requests)


def test_binarized_mnist_originals_with_wrong_content(mnist_env, monkeypatch):
    server, cache = mnist_env
    monkeypatch.delenv("GMS_DATA_MIRROR")
    (server.root / "originals").mkdir()
    for split in ("train", "valid"):
        (server.root / "originals" / f"binarized_mnist_{split}.amat").write_text("0 1 0 1\n1 1 0 0\n")
    with pytest.raises(DownloadError, match="pinned checksums"):
        datasets.binarized_mnist()
    assert not (cache / "binarized_mnist.npz").exists() and debris(cache) == []


def test_binarized_mnist_unparsable_originals_leave_nothing(mnist_env, monkeypatch):
    server, cache = mnist_env
    monkeypatch.delenv("GMS_DATA_MIRROR")
    (server.root / "originals").mkdir()
    for split in ("train", "valid"):
        (server.root / "originals" / f"binarized_mnist_{split}.amat").write_text("<html>not found</html>\n")
    with pytest.raises(DownloadError, match="not available"):
        datasets.binarized_mnist()
    assert debris(cache) == [] and not (cache / "binarized_mnist.npz").exists()


def test_binarized_mnist_cancel_does_not_fall_back(mnist_env):
    server, cache = mnist_env
    (server.root / "binarized_mnist.npz").write_bytes(os.urandom(200_000))
    with pytest.raises(Cancelled):
        datasets.binarized_mnist(cancelled=lambda: True)
    assert server.requests == ["/binarized_mnist.npz"]  # the originals were not tried
    assert debris(cache) == []
