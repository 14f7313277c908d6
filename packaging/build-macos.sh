#!/usr/bin/env bash
# macOS: the one-folder bundle dist/genmodel-sandbox/ and the app "dist/Generative Model Sandbox.app"
# (PyInstaller's BUNDLE step of the spec), the bundle's self-test, then a drag-to-Applications .dmg
# made with hdiutil: dist/genmodel-sandbox-VERSION-macos-ARCH.dmg.
#   bash packaging/build-macos.sh
# Needs Python 3.11+ (python3), Xcode's command-line tools (iconutil, sips, hdiutil are in macOS).
# PyPI's torch wheel for macOS is the CPU (and MPS) build. The app is not signed or notarized:
# first launch is right-click > Open (or codesign/notarytool with a Developer ID, not done here).
# NOT RUN on the project's Linux machines: see packaging/README.md; .github/workflows/installers.yml
# runs it on a hosted macOS runner.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
APP="Generative Model Sandbox.app"
[[ -x .venv/bin/python ]] || python3 -m venv .venv
PY=.venv/bin/python
"$PY" -m pip install --disable-pip-version-check torch==2.13.0 -e ".[package]"
VERSION="$("$PY" -c 'import core; print(core.__version__)')"

# the .icns the spec's BUNDLE step uses, from the 256 px PNG (and the SVG-drawn sizes below it)
ICONSET=build/genmodel-sandbox.iconset
rm -rf "$ICONSET" && mkdir -p "$ICONSET"
for s in 16 32 64 128 256; do
    sips -z "$s" "$s" packaging/icons/genmodel-sandbox.png --out "$ICONSET/icon_${s}x${s}.png" >/dev/null
done
cp "$ICONSET/icon_32x32.png" "$ICONSET/icon_16x16@2x.png"
cp "$ICONSET/icon_64x64.png" "$ICONSET/icon_32x32@2x.png"
cp "$ICONSET/icon_256x256.png" "$ICONSET/icon_128x128@2x.png"
rm "$ICONSET/icon_64x64.png"
iconutil -c icns "$ICONSET" -o packaging/icons/genmodel-sandbox.icns

rm -rf dist/genmodel-sandbox "dist/$APP" build/pyinstaller
"$PY" -m PyInstaller --noconfirm --clean --log-level WARN --distpath dist --workpath build/pyinstaller \
    packaging/genmodel-sandbox.spec
rm -rf build/pyinstaller

# the bundle checks itself: trains, renders offscreen, completes a digit with the shipped weights
(cd "${TMPDIR:-/tmp}" && QT_QPA_PLATFORM=offscreen "$ROOT/dist/genmodel-sandbox/genmodel-sandbox" --self-test)
(cd "${TMPDIR:-/tmp}" && QT_QPA_PLATFORM=offscreen "$ROOT/dist/$APP/Contents/MacOS/genmodel-sandbox" --self-test)

STAGE=build/dmg
rm -rf "$STAGE" && mkdir -p "$STAGE"
cp -R "dist/$APP" "$STAGE/"
ln -s /Applications "$STAGE/Applications"
DMG="dist/genmodel-sandbox-$VERSION-macos-$(uname -m).dmg"
rm -f "$DMG"
hdiutil create -volname "Generative Model Sandbox" -srcfolder "$STAGE" -ov -format UDZO "$DMG"
rm -rf "$STAGE"
ls -la dist
