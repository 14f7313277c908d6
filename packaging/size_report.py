"""Where the bundle's bytes go: torch, Qt, the shipped weights, numpy and the rest.

    python packaging/size_report.py [--dist dist] [--write]

Measures the one-folder bundle ``dist/genmodel-sandbox/`` that ``packaging/build.sh`` built
(regular files only: the links PyInstaller puts in the top folder are not counted twice) and the
packages beside it. ``--write`` puts the table into BENCHMARKS.md (section ``bundle_size``), the
goal being <= 700 MB unpacked.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

NAME = "genmodel-sandbox"
GOAL_MB = 700
MIB = 2**20
#: (part, what it holds, predicate on a path relative to the bundle's _internal folder)
PARTS = [
    ("torch", "torch's Python bytecode is in the executable (\"Python and the rest\"); this is its "
              "libraries (libtorch_cpu.so, stripped of symbols) and data",
     lambda p: p.startswith("torch/")),
    ("Qt", "PySide6 and shiboken6: Qt's libraries (ICU's data is 30 MiB of it), the plugins kept",
     lambda p: p.startswith(("PySide6/", "shiboken6/")) or p.startswith(("libQt6", "libpyside6", "libshiboken6",
                                                                         "libicu"))),
    ("shipped weights and digits", "resources/ as the package genmodel_resources",
     lambda p: p.startswith("genmodel_resources/")),
    ("numpy", "numpy and its OpenBLAS", lambda p: p.startswith(("numpy/", "numpy.libs/", "libscipy_openblas",
                                                               "libgfortran", "libquadmath"))),
]
OTHER = ("Python and the rest", "the executable with every module's bytecode (the app, torch, pyqtgraph, "
                                "sympy...), libpython, the system libraries it links (X11/xcb, OpenSSL...)")


def measure(bundle: Path) -> dict[str, int]:
    """Bytes by part (regular files only)."""
    if not (bundle / NAME).is_file() and not (bundle / f"{NAME}.exe").is_file():
        raise SystemExit(f"no bundle at {bundle}: run bash packaging/build.sh first")
    inner = bundle / "_internal"
    sizes = {name: 0 for name, _, _ in PARTS}
    sizes[OTHER[0]] = 0
    for dirpath, _dirs, files in os.walk(bundle):
        for f in files:
            path = Path(dirpath) / f
            if path.is_symlink():
                continue
            rel = path.relative_to(inner).as_posix() if path.is_relative_to(inner) else ""
            part = next((name for name, _, match in PARTS if rel and match(rel)), OTHER[0])
            sizes[part] += path.stat().st_size
    return sizes


def table(sizes: dict[str, int], dist: Path) -> str:
    """Sizes in MiB (2^20 bytes: what ``du -sh`` calls M), the total also in MB (10^6)."""
    total = sum(sizes.values())
    notes = {name: note for name, note, _ in PARTS} | {OTHER[0]: OTHER[1]}
    lines = ["| part | MiB | share | what |", "| --- | ---: | ---: | --- |"]
    for name, size in sizes.items():
        lines.append(f"| {name} | {size / MIB:.0f} | {100 * size / total:.0f} % | {notes[name]} |")
    met = "met" if total / MIB <= GOAL_MB else "NOT met"
    lines.append(f"| **total unpacked** | **{total / MIB:.0f}** | | {total / 1e6:.0f} MB in units of 10^6 bytes; "
                 f"goal <= {GOAL_MB} (in du's M, MiB): {met} |")
    packages = sorted([*dist.glob(f"{NAME}*.deb"), *dist.glob(f"{NAME}*.tar.gz")])
    if packages:
        lines.append("")
        lines.append("Packages: " + ", ".join(f"`{p.name}` {p.stat().st_size / MIB:.0f} MiB" for p in packages) + ".")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dist", default="dist", help="the folder build.sh wrote (default: dist)")
    ap.add_argument("--write", action="store_true", help="write the table into BENCHMARKS.md")
    args = ap.parse_args(argv)
    dist = Path(args.dist)
    sizes = measure(dist / NAME)
    body = table(sizes, dist)
    print(body)
    if args.write:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from bench.report import write_section

        write_section("bundle_size", f"""## Bundle size (issue 11; goal <= {GOAL_MB} MB unpacked)

`bash packaging/build.sh && python packaging/size_report.py --write` on {platform.machine()},
{platform.system()}, Python {platform.python_version()}, {time.strftime('%Y-%m-%d')}: the one-folder
PyInstaller bundle `dist/{NAME}/` with the CPU torch. A plain PyInstaller build of the same app was
988 MB (torch 630, PySide6 130, scipy 78); left out here: scipy and the build and test tools, torch's
headers, test programs and test libraries, torch's Python sources (its bytecode stays; the config
modules keep theirs), CUDA
libraries (none in a CPU build), Qt's translations and the Qt modules and plugins the app does not
load (QML, Quick, WebEngine, 3D, Multimedia, PDF, Network, Wayland, EGLFS, GTK3 theme...);
libtorch_cpu.so is stripped of its symbol table (415 -> 330 MiB).

{body}""")
    return 0


if __name__ == "__main__":
    sys.exit(main())
