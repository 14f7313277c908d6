"""Open the real window, train a model for a while, then leave it for a screenshot.

    xvfb-run -a -s "-screen 0 1400x860x24" python packaging/demo.py --data PATH.npz --seconds 20 --shot docs/window.png
    xvfb-run -a -s "-screen 0 1400x860x24" python packaging/demo.py --playground realnvp,rnade,kde,gan --toy 8gaussians --seconds 40 --shot docs/playground.png
    xvfb-run -a -s "-screen 0 1400x860x24" python packaging/demo.py --canvas made --shot docs/canvas.png
    xvfb-run -a -s "-screen 0 1800x1350x24" python packaging/demo.py --latent vae-2d --digit 3 --width 1800 --height 1350 --shot docs/latent.png

Used to make the README's screenshot; ``--shot`` saves the window with ``import -window root``
(ImageMagick) when it is installed, else with Qt's own grab.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402,F401  (before Qt)
import qasync  # noqa: E402
from PySide6.QtCore import QSettings  # noqa: E402

from gui.app import make_app  # noqa: E402


async def canvas_demo(window, args) -> None:
    """The Canvas tab: a random validation digit, its top half kept, the model drawing the rest
    pixel by pixel; the screenshot is taken when ``--fraction`` of the pixels are drawn."""
    c = window.canvas
    window.tabs.setCurrentWidget(window.canvas_scroll)
    for _ in range(600):  # the models load off the GUI thread once the tab shows
        if c.loaded:
            break
        await asyncio.sleep(0.1)
    if not c.entries:
        raise SystemExit(f"no model for the canvas: {c.models_label.text()}")
    if args.canvas and not c.select_model(args.canvas):
        raise SystemExit(f"no {args.canvas!r} model in {c.weights_dir}; there are: "
                         + ", ".join(e.model.info.key for e in c.entries))
    c.random_digit(args.digit)
    c.mode_combo.setCurrentIndex(c.mode_combo.findData("rows"))
    c.row_spin.setValue(c.shape[0] // 2)
    c.n_spin.setValue(args.candidates)
    c.speed.setValue(args.speed)
    for _ in range(300):  # the readouts (heatmap, typicality) of the whole digit
        await asyncio.sleep(0.1)
        if c.readouts_current():
            break
    if not c.animate():
        raise SystemExit(f"cannot animate: {c.message}")
    total = c.anim.total
    for _ in range(int(args.seconds * 10)):
        if c.anim is None or c.anim_done >= args.fraction * total:
            break
        await asyncio.sleep(0.1)
    await shoot(window, args)
    c.stop_animation()


async def latent_demo(window, args) -> None:
    """The Latent space tab: the chosen model's map with the validation digits on it, a random
    digit encoded, and the first slider held down mid-drag when the screenshot is taken."""
    lat = window.latent
    window.tabs.setCurrentWidget(window.latent_scroll)
    for _ in range(600):
        if lat.loaded:
            break
        await asyncio.sleep(0.1)
    lat.select_model(args.latent)
    await asyncio.sleep(1.0)
    task = lat.encode("random", index=args.digit or 0)
    if task is not None and not isinstance(task, bool):
        await task
    slider = lat.sliders.sliders[0]
    slider.setSliderDown(True)  # held, as in a drag
    for v in range(slider.value(), slider.value() + 120, 4):
        slider.setValue(v)
        await asyncio.sleep(0.02)
    await asyncio.sleep(1.0)
    await shoot(window, args)
    slider.setSliderDown(False)


async def demo(window, args) -> None:
    if args.latent:
        await latent_demo(window, args)
        return
    if args.canvas is not None:
        await canvas_demo(window, args)
        return
    if args.playground:
        p = window.playground
        window.tabs.setCurrentWidget(p)
        p.set_combo.setCurrentIndex(p.set_combo.findData(args.toy))
        p.steps_spin.setValue(args.steps)
        p.set_checked(args.playground.split(","))
        p.play()
        await asyncio.sleep(args.seconds)
        await shoot(window, args)
        p.stop()
        return
    window.picker.select(args.model)
    if args.data:
        window.panel.data_combo.setCurrentIndex(window.panel.data_combo.findData("binarized_mnist"))
        window.panel.data_path.setText(args.data)
    window.panel.epochs.setValue(args.epochs)
    await window.train()
    await asyncio.sleep(args.seconds)
    await shoot(window, args)
    if window.session is not None:
        window.session.stop()


async def shoot(window, args) -> None:
    if args.shot:
        Path(args.shot).parent.mkdir(parents=True, exist_ok=True)
        if shutil.which("import") and os.environ.get("DISPLAY"):
            subprocess.run(["import", "-window", "root", args.shot], check=True)
        else:
            window.grab().save(args.shot)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="fvsbn")
    p.add_argument("--data")
    p.add_argument("--epochs", type=float, default=3)
    p.add_argument("--seconds", type=float, default=15)
    p.add_argument("--shot")
    p.add_argument("--playground", help="models to train side by side in the density playground")
    p.add_argument("--toy", default="8gaussians")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--canvas", nargs="?", const="", metavar="FAMILY",
                   help="open the Canvas tab and animate a completion (with the FAMILY model, if given)")
    p.add_argument("--width", type=int, default=1400)
    p.add_argument("--height", type=int, default=860)
    p.add_argument("--latent", metavar="KEY", help="open the Latent space tab on this model (e.g. vae)")
    p.add_argument("--digit", type=int, help="canvas: which validation digit (default: a random one)")
    p.add_argument("--fraction", type=float, default=0.5, help="canvas: shoot when this share of pixels is drawn")
    p.add_argument("--speed", type=int, default=7, help="canvas: speed slider, 2**SPEED pixels per second")
    p.add_argument("--candidates", type=int, default=9, help="canvas: completions drawn side by side")
    args = p.parse_args()
    app = make_app()
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    from gui.main_window import MainWindow

    tmp = tempfile.mkdtemp(prefix="gms-demo-")
    window = MainWindow(settings=QSettings(os.path.join(tmp, "s.ini"), QSettings.Format.IniFormat))
    window.setGeometry(0, 0, args.width, args.height)
    window.show()
    with loop:
        loop.run_until_complete(demo(window, args))
    window.close()


if __name__ == "__main__":
    main()
