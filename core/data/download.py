"""Downloads with checksums, progress and cancellation; files land atomically or not at all."""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

Progress = Callable[[int, int | None], None]  # (bytes so far, total bytes or None)


class DownloadError(RuntimeError):
    """A download failed or its checksum did not match; nothing was written."""


class Cancelled(DownloadError):
    pass


def file_digest(path: str | os.PathLike, algorithm: str = "sha256") -> str:
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def download(url: str, dest: str | os.PathLike, *, sha256: str | None = None, md5: str | None = None,
             progress: Progress | None = None, cancelled: Callable[[], bool] | None = None,
             timeout: float = 30.0) -> Path:
    """Fetch ``url`` to ``dest``, checking the digest(s) given; return ``dest``.

    The bytes go to a temporary file beside ``dest`` that replaces it only once every check has
    passed, so an interrupted or corrupt download never leaves a half file behind.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    hashers = {name: hashlib.new(name) for name, want in (("sha256", sha256), ("md5", md5)) if want}
    fd, tmp = tempfile.mkstemp(prefix=dest.name + ".", suffix=".part", dir=dest.parent)
    try:
        try:
            # the temporary file is wrapped first so that it is closed even when urlopen fails
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
                total = resp.headers.get("Content-Length")
                total = int(total) if total and total.isdigit() else None
                done = 0
                while True:
                    if cancelled is not None and cancelled():
                        raise Cancelled(f"download of {url} cancelled")
                    chunk = resp.read(1 << 16)
                    if not chunk:
                        break
                    out.write(chunk)
                    for h in hashers.values():
                        h.update(chunk)
                    done += len(chunk)
                    if progress is not None:
                        progress(done, total)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise DownloadError(f"could not download {url}: {exc}") from exc
        if total is not None and done != total:
            raise DownloadError(f"download of {url} stopped after {done} of {total} bytes")
        for name, want in (("sha256", sha256), ("md5", md5)):
            if want and hashers[name].hexdigest() != want.lower():
                raise DownloadError(
                    f"checksum mismatch for {url}: {name} {hashers[name].hexdigest()}, expected {want}"
                )
        os.replace(tmp, dest)
        return dest
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
