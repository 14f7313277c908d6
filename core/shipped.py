"""Where the shipped files are: weights, the digit classifier, the sample validation digits.

They are package data of the package ``genmodel_resources`` (the folder ``resources/`` of the
source tree, mapped to that name in ``pyproject.toml``), found through :mod:`importlib.resources`:
in a wheel installed anywhere, in an editable install, in a frozen PyInstaller bundle (which
collects the folder under the same name) and, unpacked on first use, in a zip. A source
checkout run without installing (``PYTHONPATH=.``, ``python main.py``) has no package of that
name on its path, but has the same folder as the top-level package ``resources``, which is
trusted only if it carries the marker ``GENMODEL_RESOURCES``. No path is computed from
``__file__``.
"""

from __future__ import annotations

import atexit
import importlib
import importlib.resources
import shutil
import tempfile
from functools import cache
from importlib.abc import Traversable
from pathlib import Path

PACKAGE = "genmodel_resources"
#: the source tree's name of the same folder (running from a checkout without installing)
SOURCE_PACKAGE = "resources"


class MissingResources(RuntimeError):
    """The shipped files cannot be found: the install is broken."""


def _package_files() -> Traversable:
    for name in (PACKAGE, SOURCE_PACKAGE):
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError:
            continue
        if getattr(module, "GENMODEL_RESOURCES", False):
            return importlib.resources.files(module)
    raise MissingResources(f"the shipped files are missing: no package {PACKAGE!r} (install the app, or run it "
                           f"from its source folder)")


def _copy_tree(src: Traversable, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for item in src.iterdir():
        if item.is_dir():
            _copy_tree(item, dest / item.name)
        elif not item.name.endswith((".py", ".pyc")):
            (dest / item.name).write_bytes(item.read_bytes())


@cache
def root() -> Path:
    """The folder of the shipped files, as a real path (readers open files, glob and mmap)."""
    files = _package_files()
    if isinstance(files, Path):
        return files
    # inside a zip: unpacked on first use into a private temporary folder, removed at exit
    dest = Path(tempfile.mkdtemp(prefix=f"{PACKAGE}-"))
    atexit.register(shutil.rmtree, dest, True)
    _copy_tree(files, dest)
    return dest


def weights_dir() -> Path:
    """The shipped model checkpoints (``*.safetensors`` with their ``.json`` sidecars)."""
    return root() / "weights"


def digits_file() -> Path:
    """500 binarized validation digits with labels (``images`` packed bits, ``shape``, ``labels``)."""
    return root() / "digits" / "valid_sample.npz"


def classifier_file() -> Path:
    """The digit classifier that measures sample quality."""
    return root() / "classifier" / "digit-classifier.safetensors"
