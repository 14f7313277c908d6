# Windows: the one-folder bundle dist\genmodel-sandbox\ (PyInstaller), its self-test, then an
# Inno Setup installer dist\genmodel-sandbox-VERSION-windows-x64-setup.exe.
#   powershell -ExecutionPolicy Bypass -File packaging\build-windows.ps1
# Needs Python 3.11+ and Inno Setup 6 (iscc.exe on PATH or in its default folder). PyPI's torch
# wheel for Windows is the CPU build. NOT RUN on the project's Linux machines: see packaging\README.md;
# .github\workflows\installers.yml runs it on a hosted Windows runner.
$ErrorActionPreference = "Stop"
$Root = Split-Path -Parent $PSScriptRoot
Set-Location $Root
if (-not (Test-Path .venv\Scripts\python.exe)) {
    python -m venv .venv
}
$Py = Join-Path $Root ".venv\Scripts\python.exe"
& $Py -m pip install --disable-pip-version-check torch==2.13.0 -e ".[package]"
if ($LASTEXITCODE -ne 0) { throw "pip install failed" }
$Version = & $Py -c "import core; print(core.__version__)"

Remove-Item -Recurse -Force dist\genmodel-sandbox, build\pyinstaller -ErrorAction SilentlyContinue
& $Py -m PyInstaller --noconfirm --clean --log-level WARN --distpath dist --workpath build\pyinstaller packaging\genmodel-sandbox.spec
if ($LASTEXITCODE -ne 0) { throw "PyInstaller failed" }
Remove-Item -Recurse -Force build\pyinstaller -ErrorAction SilentlyContinue

# the bundle checks itself: trains, renders offscreen, completes a digit with the shipped weights
$env:QT_QPA_PLATFORM = "offscreen"
Push-Location $env:TEMP
& "$Root\dist\genmodel-sandbox\genmodel-sandbox.exe" --self-test
$ok = $LASTEXITCODE
Pop-Location
Remove-Item Env:\QT_QPA_PLATFORM
if ($ok -ne 0) { throw "the bundle's self-test failed" }

$Iscc = (Get-Command iscc.exe -ErrorAction SilentlyContinue).Source
if (-not $Iscc) { $Iscc = "${env:ProgramFiles(x86)}\Inno Setup 6\ISCC.exe" }
& $Iscc "/DAppVersion=$Version" "/DSourceDir=$Root\dist\genmodel-sandbox" packaging\windows\genmodel-sandbox.iss
if ($LASTEXITCODE -ne 0) { throw "Inno Setup failed" }
Compress-Archive -Force -Path dist\genmodel-sandbox -DestinationPath "dist\genmodel-sandbox-$Version-windows-x64.zip"
Get-ChildItem dist
