"""The shipped files as package data: found through importlib.resources in the checkout, in a
zip and in a wheel installed into a fresh venv outside the checkout (whose --self-test then
trains, renders and completes a digit with the shipped weights)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest

from core import shipped
from installed import clean_env

ROOT = Path(__file__).resolve().parents[1]


def test_every_package_is_listed_for_the_wheel():
    conf = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    on_disk = {p.parent.relative_to(ROOT).as_posix().replace("/", ".")
               for top in ("core", "gui") for p in (ROOT / top).rglob("__init__.py")}
    assert set(conf["packages"]) == on_disk | {"genmodel_resources"}
    assert conf["package-dir"]["genmodel_resources"] == "resources"
    patterns = conf["package-data"]["genmodel_resources"]
    shipped_files = [p for p in (ROOT / "resources").rglob("*") if p.is_file() and p.suffix not in (".py", ".pyc")]
    assert shipped_files and all(any(p.relative_to(ROOT / "resources").match(pat) for pat in patterns)
                                 for p in shipped_files)


def test_the_checkout_finds_its_own_resources_folder():
    assert shipped.root().resolve() == (ROOT / "resources").resolve()
    assert shipped.digits_file().is_file() and shipped.classifier_file().is_file()
    assert (shipped.weights_dir() / "nade.safetensors").is_file()


def test_an_unmarked_package_of_that_name_is_not_trusted(tmp_path, monkeypatch):
    fake = tmp_path / "resources"
    fake.mkdir()
    (fake / "__init__.py").write_text("")
    monkeypatch.setattr(sys, "path", [str(tmp_path)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT])
    # an editable install's import hook would map genmodel_resources to the checkout
    monkeypatch.setattr(sys, "meta_path", [f for f in sys.meta_path  # the finder is a class (setuptools >= 70) or an instance
                                            if "__editable__" not in f"{getattr(f, '__module__', '')} {type(f).__module__}"])
    for name in ("resources", "genmodel_resources"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    shipped.root.cache_clear()
    try:
        with pytest.raises(shipped.MissingResources, match="genmodel_resources"):
            shipped.root()
    finally:
        shipped.root.cache_clear()


def test_resources_inside_a_zip_are_unpacked_on_first_use(tmp_path, monkeypatch):
    archive = tmp_path / "app.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("genmodel_resources/__init__.py", "GENMODEL_RESOURCES = True\n")
        z.writestr("genmodel_resources/weights/x.json", '{"a": 1}')
        z.writestr("genmodel_resources/digits/valid_sample.npz", b"\x00\x01")
    monkeypatch.syspath_prepend(str(archive))
    monkeypatch.delitem(sys.modules, "genmodel_resources", raising=False)
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    shipped.root.cache_clear()
    try:
        root = shipped.root()
        assert root.is_dir() and root.is_relative_to(tmp_path / "tmp") and shipped.root() == root
        assert (shipped.weights_dir() / "x.json").read_text() == '{"a": 1}'
        assert shipped.digits_file().read_bytes() == b"\x00\x01"
        assert not (root / "__init__.py").exists()
    finally:
        shipped.root.cache_clear()
        sys.modules.pop("genmodel_resources", None)


def site_dirs() -> list[str]:
    """The running interpreter's site-packages: the dependencies (torch, PySide6...) a fresh venv
    borrows, offline, through a .pth file (which adds paths only: the project's editable-install
    hook there is not run, so the venv sees only its own installed copy of the app)."""
    paths = sysconfig.get_paths()
    return sorted({paths["purelib"], paths["platlib"]})


@pytest.fixture
def scratch(tmp_path):
    """A folder for the wheel and its venv, removed afterwards (they hold the weights twice)."""
    (tmp_path / "scratch").mkdir()
    yield tmp_path / "scratch"
    shutil.rmtree(tmp_path / "scratch", ignore_errors=True)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_wheel_carries_its_weights_and_passes_its_self_test_outside_the_checkout(scratch):
    tmp_path = scratch
    wheels = tmp_path / "wheels"
    wheel_cmd = [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-cache-dir", "-q", "-w", str(wheels)]
    # offline with the environment's own setuptools; where that one is too old for pyproject.toml
    # (a fresh venv's bundled copy), with pip's isolated build environment instead
    r = subprocess.run(wheel_cmd + ["--no-build-isolation"], capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        first = r.stdout + r.stderr
        r = subprocess.run(wheel_cmd, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, first + r.stdout + r.stderr
    (wheel,) = wheels.glob("genmodel_sandbox-*.whl")
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
    assert {"genmodel_resources/weights/nade.safetensors", "genmodel_resources/digits/valid_sample.npz",
            "genmodel_resources/classifier/digit-classifier.safetensors", "main.py"} <= names

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    py = env_dir / "bin" / "python"
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    Path(site, "project-deps.pth").write_text("\n".join(site_dirs()) + "\n")
    r = subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--no-index",
                        "--no-cache-dir", "-q", str(wheel)], capture_output=True, text=True, timeout=300,
                       env=clean_env(tmp_path / "home"))
    assert r.returncode == 0, r.stdout + r.stderr

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    where = subprocess.run([str(py), "-c", "import core, gui, genmodel_resources; from core import shipped; "
                            "print(core.__file__); print(shipped.root())"],
                           cwd=elsewhere, env=clean_env(tmp_path / "home"), capture_output=True, text=True, timeout=120)
    assert where.returncode == 0, where.stderr
    core_file, res_root = where.stdout.split()
    assert Path(core_file).is_relative_to(site) and Path(res_root) == Path(site) / "genmodel_resources"

    r = subprocess.run([str(env_dir / "bin" / "genmodel-sandbox"), "--self-test"], cwd=elsewhere,
                       env=clean_env(tmp_path / "home"), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "[ok] complete a digit with the shipped NADE" in r.stdout
    assert f"weights in {site}/genmodel_resources/weights" in r.stdout
    assert "[ok] train 40 steps" in r.stdout and "[ok] render the window offscreen" in r.stdout
    assert r.stdout.strip().endswith("self-test passed")


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_app_can_quit_once_its_window_is_shown(tmp_path):
    """GMS_QUIT_WHEN_SHOWN=1 (bench/cold_start.py): the real app starts, shows its window, says so, quits."""
    r = subprocess.run([sys.executable, str(ROOT / "main.py")], cwd=tmp_path,
                       env=clean_env(tmp_path, PYTHONPATH=str(ROOT), GMS_QUIT_WHEN_SHOWN="1"),
                       capture_output=True, text=True, timeout=280)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip().splitlines() == ["window shown"]
