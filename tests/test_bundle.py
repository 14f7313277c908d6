"""packaging/build.sh: the PyInstaller one-folder bundle runs its --self-test from another folder
with the network unreachable and no Python environment of the project in sight (it trains,
renders offscreen and completes a digit with the shipped weights); it leaves out what the app
does not use; the .deb installs into a separate root with dpkg and its launcher runs the
self-test; the .tar.gz holds the folder.

Slow: one build (about 2 minutes on a free 2-core machine, 7 under load), shared by the tests
of this file. ``GMS_TEST_BUNDLE_REUSE=1`` reuses an existing dist/ instead (while working on
the tests only)."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from installed import clean_env, interfaces, offline_prefix

ROOT = Path(__file__).resolve().parents[1]
DIST = ROOT / "dist"
NAME = "genmodel-sandbox"
BUNDLE = DIST / NAME
EXE = BUNDLE / NAME

pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400),
              pytest.mark.skipif(platform.system() != "Linux", reason="build.sh's packages are Linux's")]


@pytest.fixture(scope="module")
def built():
    reuse = os.environ.get("GMS_TEST_BUNDLE_REUSE") == "1" and EXE.is_file() and any(DIST.glob("*.deb"))
    if not reuse:
        env = dict(os.environ, PYTHON=sys.executable)
        env.pop("PYTHONPATH", None)
        r = subprocess.run(["bash", str(ROOT / "packaging" / "build.sh")], cwd=ROOT, env=env, capture_output=True,
                           text=True, timeout=2000)
        assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    assert EXE.is_file() and os.access(EXE, os.X_OK)
    return BUNDLE


def _self_test_ok(out: str, weights: Path) -> None:
    assert "[ok] train 40 steps of FVSBN on the worker thread" in out and "[ok] the loss fell" in out, out
    assert "[ok] render the window offscreen" in out, out
    assert f"[ok] complete a digit with the shipped NADE" in out, out
    assert f"weights in {weights}" in out, out
    assert "[FAIL]" not in out and out.strip().endswith("self-test passed"), out


def test_the_bundle_passes_its_self_test_offline_from_elsewhere(built, tmp_path):
    prefix, why = offline_prefix()
    if prefix is None:
        pytest.skip(why)
    assert interfaces(prefix) == ["lo"]  # what the bundle sees: no way out
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = clean_env(tmp_path / "home")
    assert "PYTHONPATH" not in env and str(Path(sys.prefix).resolve()) not in env["PATH"]
    r = subprocess.run(prefix + [str(EXE), "--self-test"], cwd=elsewhere, env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    _self_test_ok(r.stdout, EXE.parent / "_internal" / "genmodel_resources" / "weights")


def test_the_bundle_leaves_out_what_the_app_does_not_use(built):
    inner = built / "_internal"
    files = [p.relative_to(inner).as_posix() for p in inner.rglob("*") if p.is_file() or p.is_symlink()]
    assert not [p for p in inner.rglob("*") if p.is_symlink() and not p.exists()], "dangling links"
    shipped = sorted(p.relative_to(ROOT / "resources").as_posix() for p in (ROOT / "resources").rglob("*")
                     if p.is_file() and p.suffix in (".safetensors", ".json", ".npz"))
    for rel in shipped:
        assert (inner / "genmodel_resources" / rel).stat().st_size == (ROOT / "resources" / rel).stat().st_size
    unwanted = ("scipy/", "torch/include/", "torch/test/", "PySide6/Qt/translations/", "nvidia/")
    assert not [f for f in files if f.startswith(unwanted)]
    names = [f.rsplit("/", 1)[-1] for f in files]
    assert not [n for n in names if n.startswith(("libcudnn", "libcublas", "libnccl", "libcudart", "libtorch_cuda"))]
    assert not [n for n in names if n.startswith(("libQt6Qml", "libQt6Quick", "libQt6WebEngine", "libQt6Pdf",
                                                  "libQt63D", "libQt6Multimedia", "libQt6Network"))]
    assert not [f for f in files if f.endswith((".h", ".hpp", ".cuh", ".pyi"))]
    assert [f for f in files if f.startswith("torch/bin/")] == ["torch/bin/torch_shm_manager"]
    sources = [f for f in files if f.startswith("torch/") and f.endswith(".py")]  # bytecode only, but
    assert sources and all(f.endswith(("config.py", "config_comms.py")) for f in sources)  # the config modules
    plugins = {f.split("PySide6/Qt/plugins/", 1)[1] for f in files if "PySide6/Qt/plugins/" in f}
    assert {"platforms/libqxcb.so", "platforms/libqoffscreen.so"} <= plugins
    assert {p.split("/")[0] for p in plugins} <= {"platforms", "xcbglintegrations", "platformthemes",
                                                  "platforminputcontexts", "imageformats", "iconengines"}
    assert "platformthemes/libqgtk3.so" not in plugins


def _deb() -> Path:
    (deb,) = DIST.glob(f"{NAME}_*.deb")
    return deb


def test_the_deb_holds_the_folder_a_launcher_a_desktop_entry_and_an_icon(built):
    if shutil.which("dpkg-deb") is None:
        pytest.skip("no dpkg-deb here")
    info = subprocess.run(["dpkg-deb", "--info", str(_deb())], capture_output=True, text=True, check=True).stdout
    fields = dict(line.strip().split(": ", 1) for line in info.splitlines() if ": " in line and line.startswith(" "))
    assert fields["Package"] == NAME and fields["Architecture"] and int(fields["Installed-Size"]) > 100_000
    assert "libxcb-cursor0" in fields["Depends"] and "libegl1" in fields["Depends"]
    listing = subprocess.run(["dpkg-deb", "--contents", str(_deb())], capture_output=True, text=True,
                             check=True).stdout
    paths = {line.split()[5] for line in listing.splitlines()}
    assert {f"./opt/{NAME}/{NAME}", f"./usr/bin/{NAME}", f"./usr/share/applications/{NAME}.desktop",
            f"./usr/share/icons/hicolor/scalable/apps/{NAME}.svg",
            f"./usr/share/icons/hicolor/256x256/apps/{NAME}.png",
            f"./opt/{NAME}/_internal/genmodel_resources/weights/nade.safetensors"} <= paths
    outside = [p for p in paths if not p.startswith(("./opt/", "./usr/bin/", "./usr/share/applications/",
                                                     "./usr/share/icons/")) and p not in ("./", "./opt/", "./usr/",
                                                                                           "./usr/bin/", "./usr/share/")]
    assert not outside
    owners = {line.split()[1] for line in listing.splitlines()}
    assert owners == {"root/root"}


@pytest.fixture
def fake_root(tmp_path):
    """An empty root for dpkg --root; removed afterwards (the installed copy is 700 MB)."""
    root = tmp_path / "root"
    yield root
    shutil.rmtree(root, ignore_errors=True)


def test_the_deb_installs_into_a_separate_root_and_its_launcher_passes_the_self_test(built, tmp_path, fake_root):
    if shutil.which("dpkg") is None:
        pytest.skip("no dpkg here")
    root = fake_root
    (root / "var/lib/dpkg/info").mkdir(parents=True)
    (root / "var/lib/dpkg/updates").mkdir()
    (root / "var/lib/dpkg/status").write_text("")
    r = subprocess.run(["dpkg", f"--root={root}", "--force-depends", "--force-not-root", "--force-script-chrootless",
                        f"--log={tmp_path / 'dpkg.log'}", "-i", str(_deb())], capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    status = subprocess.run(["dpkg", f"--root={root}", "-s", NAME], capture_output=True, text=True).stdout
    assert "Status: install ok installed" in status
    desktop = (root / f"usr/share/applications/{NAME}.desktop").read_text()
    entry = dict(line.split("=", 1) for line in desktop.splitlines() if "=" in line)
    assert entry["Exec"].split()[0] == NAME and entry["Icon"] == NAME and entry["Type"] == "Application"
    assert (root / f"usr/share/icons/hicolor/scalable/apps/{entry['Icon']}.svg").read_text().startswith("<svg")
    launcher = root / "usr/bin" / entry["Exec"].split()[0]
    assert os.access(launcher, os.X_OK) and f"/opt/{NAME}/{NAME}" in launcher.read_text()

    # the launcher runs /opt/genmodel-sandbox/genmodel-sandbox: in a private mount namespace the
    # installed folder is mounted there (nothing changes outside), with the network unreachable
    prefix, why = offline_prefix(mount=True)
    if prefix is None:
        pytest.skip(why)
    script = (f"mount -t tmpfs tmpfs /opt && mkdir /opt/{NAME} && mount --bind '{root}/opt/{NAME}' /opt/{NAME} "
              f"&& cd '{tmp_path}' && exec '{launcher}' --self-test")
    r = subprocess.run(prefix + ["sh", "-c", script], env=clean_env(tmp_path / "home"), capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    _self_test_ok(r.stdout, Path(f"/opt/{NAME}/_internal/genmodel_resources/weights"))


def test_the_tarball_holds_the_folder(built):
    (tarball,) = DIST.glob(f"{NAME}-*-linux-*.tar.gz")
    with tarfile.open(tarball) as tar:
        names = set(tar.getnames())
    assert {f"{NAME}/{NAME}", f"{NAME}/_internal/genmodel_resources/digits/valid_sample.npz"} <= names
    on_disk = {f"{NAME}/" + p.relative_to(built).as_posix() for p in built.rglob("*") if p.is_file()}
    assert on_disk <= names


def test_the_bundle_shows_its_window_on_x11(built, tmp_path):
    """The X11 platform plugin and the libraries it needs are in the bundle: the real window
    opens under Xvfb (GMS_QUIT_WHEN_SHOWN=1: it says so once shown, and quits)."""
    if shutil.which("xvfb-run") is None:
        pytest.skip("no xvfb-run here")
    env = clean_env(tmp_path / "home", GMS_QUIT_WHEN_SHOWN="1", QT_QPA_PLATFORM="xcb")
    r = subprocess.run(["xvfb-run", "-a", "-s", "-screen 0 1400x900x24", str(EXE)], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip().splitlines()[-1] == "window shown", r.stdout + r.stderr
