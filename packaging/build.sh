#!/usr/bin/env bash
# One build command: the self-contained one-folder bundle dist/genmodel-sandbox/ (PyInstaller), and
# on Linux a .deb (installs to /opt/genmodel-sandbox, with a launcher in /usr/bin, a desktop entry
# and an icon) and a .tar.gz of the folder. Run from anywhere:
#
#     bash packaging/build.sh            # PYTHON=/path/to/python to build with another environment
#
# The Python that builds is the project's environment (torch, PySide6... installed): $PYTHON, else
# .venv/bin/python of the checkout, else python3. PyInstaller (the "package" extra of pyproject.toml)
# is installed into it when missing. The bundle holds what that environment holds: build from an
# environment with the CPU torch wheel for a CPU bundle. Windows and macOS: see packaging/README.md.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
NAME=genmodel-sandbox
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
say() { printf '==> %s\n' "$*"; }
if ! "$PYTHON" -c 'import torch, PySide6, pyqtgraph, qasync, safetensors, numpy' 2>/dev/null; then
    echo "build.sh: $PYTHON lacks the app's dependencies; set up .venv as the README says, or set PYTHON" >&2
    exit 2
fi
VERSION="$("$PYTHON" -c 'import core; print(core.__version__)')"

if ! "$PYTHON" -m PyInstaller --version >/dev/null 2>&1; then
    say "installing PyInstaller into $PYTHON's environment"
    "$PYTHON" -m pip install --disable-pip-version-check "pyinstaller>=6.10"
fi

say "bundle: dist/$NAME/ (PyInstaller $("$PYTHON" -m PyInstaller --version))"
rm -rf "dist/$NAME" build/pyinstaller
"$PYTHON" -m PyInstaller --noconfirm --clean --log-level WARN --distpath dist --workpath build/pyinstaller \
    packaging/genmodel-sandbox.spec
[[ -x "dist/$NAME/$NAME" ]] || { echo "no executable at dist/$NAME/$NAME" >&2; exit 1; }
rm -rf build/pyinstaller
if [[ "$(uname -s)" == Linux ]] && command -v strip >/dev/null; then
    # symbol tables only (libtorch_cpu.so: 415 -> 330 MiB, a self-built libpython: 23 -> 5 MiB);
    # not every library: numpy's OpenBLAS (patched by auditwheel) no longer loads once stripped
    for lib in "dist/$NAME"/_internal/torch/lib/*.so* "dist/$NAME"/_internal/torch/_C.*.so \
               "dist/$NAME"/_internal/libpython3*.so* "dist/$NAME"/_internal/python3*/lib-dynload/*.so; do
        if [[ -f "$lib" && ! -L "$lib" ]]; then strip --strip-unneeded "$lib"; fi
    done
fi

case "$(uname -s)" in
    Linux) ;;
    *) say "not Linux: the bundle is built; see packaging/README.md for the installer"; exit 0 ;;
esac

ARCH="$(dpkg --print-architecture 2>/dev/null || uname -m)"
say "tarball: dist/$NAME-$VERSION-linux-$(uname -m).tar.gz"
tar -C dist -czf "dist/$NAME-$VERSION-linux-$(uname -m).tar.gz" "$NAME"

if ! command -v dpkg-deb >/dev/null; then
    say "no dpkg-deb: .deb skipped"
    exit 0
fi
say "deb: dist/${NAME}_${VERSION}_${ARCH}.deb"
STAGE=build/deb/root
rm -rf build/deb
mkdir -p "$STAGE/DEBIAN" "$STAGE/opt" "$STAGE/usr/bin" "$STAGE/usr/share/applications" \
    "$STAGE/usr/share/icons/hicolor/scalable/apps" "$STAGE/usr/share/icons/hicolor/256x256/apps"
cp -a "dist/$NAME" "$STAGE/opt/$NAME"
cat > "$STAGE/usr/bin/$NAME" <<LAUNCH
#!/bin/sh
exec /opt/$NAME/$NAME "\$@"
LAUNCH
chmod 755 "$STAGE/usr/bin/$NAME"
install -m 644 packaging/linux/$NAME.desktop "$STAGE/usr/share/applications/$NAME.desktop"
install -m 644 packaging/icons/$NAME.svg "$STAGE/usr/share/icons/hicolor/scalable/apps/$NAME.svg"
install -m 644 packaging/icons/$NAME.png "$STAGE/usr/share/icons/hicolor/256x256/apps/$NAME.png"
SIZE_KB="$(du -sk --exclude=DEBIAN "$STAGE" | cut -f1)"
sed -e "s/@VERSION@/$VERSION/" -e "s/@ARCH@/$ARCH/" -e "s/@SIZE@/$SIZE_KB/" packaging/linux/control.in \
    > "$STAGE/DEBIAN/control"
# gzip: every dpkg reads it (xz takes minutes on this size, zstd needs dpkg >= 1.21.18)
fakeroot dpkg-deb -Zgzip --build "$STAGE" "dist/${NAME}_${VERSION}_${ARCH}.deb" >/dev/null
rm -rf build/deb
say "done: $(du -sh "dist/$NAME" | cut -f1) unpacked; $(ls dist/*.deb dist/*.tar.gz | tr '\n' ' ')"
