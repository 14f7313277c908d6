"""``python main.py --self-test``: train a few steps of a small model on the worker thread,
save and reload it, render one frame of the real window offscreen, complete a digit with a
shipped model; exit 0 only if all worked. Used by packaging to check an installed build (a
wheel in a fresh venv, the PyInstaller bundle, the .deb)."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Callable

Check = Callable[..., bool]


def _train(check: Check):
    """40 steps of FVSBN on the built-in bars, on the worker thread; returns (model, data, trainer, frame)."""
    import numpy as np
    from PySide6.QtCore import QEventLoop, QTimer

    from core import data, registry, training
    from gui.worker import TrainingSession

    ds = data.load("bars", n=512)
    model = registry.create("fvsbn", ds.shape, ds.kind, lr=3e-3, batch_size=32)
    trainer = training.Trainer(model, ds, training.TrainConfig(max_steps=40, eval_every=20, visuals_every_s=0.0,
                                                               visuals_n=16, device="cpu"))
    session = TrainingSession(trainer)
    loop = QEventLoop()
    session.finished.connect(loop.quit)
    QTimer.singleShot(60_000, loop.quit)
    t0 = time.perf_counter()
    session.start()
    loop.exec()
    frame = session.last_frame
    ok = frame is not None and frame.snapshot.event == training.Event.FINISHED and np.isfinite(frame.snapshot.loss)
    check("train 40 steps of FVSBN on the worker thread", ok,
          f"{session.frames_received} frames, loss {frame.snapshot.loss:.1f} nats, "
          f"{time.perf_counter() - t0:.1f} s" if frame else "no frame arrived")
    first = 784 * np.log(2)
    check("the loss fell", bool(frame and frame.snapshot.loss < first), f"from {first:.1f}")
    return model, ds, trainer, frame


def _save_and_load(check: Check, app, model, ds, trainer, tmp: Path) -> None:
    """Save and load as the window does: coroutines on the qasync loop, work in its executor."""
    import qasync
    import torch

    from core import checkpoint
    from gui.jobs import in_thread

    path = tmp / "selftest.safetensors"

    async def save_and_load():
        await in_thread(checkpoint.save_checkpoint, path, model, data=ds, step=trainer.step)
        return await in_thread(checkpoint.load_checkpoint, path)

    aloop = qasync.QEventLoop(app)
    with aloop:
        again, meta = aloop.run_until_complete(save_and_load())
    x = torch.from_numpy(ds.valid[:64]).float()
    same = torch.allclose(model.log_prob(x), again.log_prob(x))
    check("checkpoint save and load on the qasync loop", same and meta.step == 40, path.name)


def _render(check: Check, frame, tmp: Path, out: str | None) -> None:
    import numpy as np
    from PySide6.QtCore import QCoreApplication, QSettings

    from gui.main_window import MainWindow

    window = MainWindow(settings=QSettings(str(tmp / "settings.ini"), QSettings.Format.IniFormat))
    window.resize(1100, 650)
    window.show()
    window.training_view.push(frame)
    QCoreApplication.processEvents()
    window.training_view._repaint()
    image = window.grab().toImage()
    if out:
        image.save(out)
    ptr = image.constBits()
    pixels = np.frombuffer(ptr, np.uint8, image.sizeInBytes()) if ptr is not None else np.zeros(1)
    check("render the window offscreen", image.width() > 0 and pixels.std() > 5,
          f"{image.width()}x{image.height()}, pixel std {pixels.std():.1f}")
    window.close()


def _complete(check: Check) -> None:
    """The shipped NADE completes the bottom half of a shipped validation digit: the kept half
    stays, and its completions are far likelier under it than the same half with noise below."""
    import numpy as np
    import torch

    from core import readouts, shipped
    from core.checkpoint import load_checkpoint

    path = shipped.weights_dir() / "nade.safetensors"
    model, meta = load_checkpoint(path)
    model.eval()
    entry = readouts.CanvasModel(str(path), model.info.name, model, meta, path)
    digit = readouts.load_digits(shipped.digits_file())[0].astype(np.float32)
    known = np.zeros(784, bool)
    known[:392] = True
    gen = torch.Generator().manual_seed(0)
    done = readouts.complete_drawing(entry, digit, known, 8, gen)
    noise = np.tile(digit, (8, 1))
    noise[:, 392:] = np.random.default_rng(0).integers(0, 2, (8, 392))
    kept = bool(np.array_equal(done[:, :392], np.tile(digit[:392], (8, 1))))
    binary = bool(np.isin(done, (0.0, 1.0)).all())
    lp, lp_noise = readouts.log_prob(entry, done), readouts.log_prob(entry, noise)
    check("complete a digit with the shipped NADE", kept and binary and lp.min() > lp_noise.max() + 50,
          f"log p {lp.mean():.1f} nats vs {lp_noise.mean():.1f} with noise below; weights in {path.parent}")


def self_test(out: str | None = None) -> int:
    """Run the checks in a temporary folder, removed at the end, pass or fail."""
    tmp = Path(tempfile.mkdtemp(prefix="gms-selftest-"))
    try:
        return _self_test(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _self_test(tmp: Path, out: str | None) -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    steps: list[tuple[str, bool, str]] = []

    def check(name: str, ok: bool, detail: str = "") -> bool:
        steps.append((name, ok, detail))
        print(f"[{'ok' if ok else 'FAIL'}] {name}{': ' + detail if detail else ''}", flush=True)
        return ok

    try:
        from gui.app import make_app

        app = make_app()
        model, ds, trainer, frame = _train(check)
        _save_and_load(check, app, model, ds, trainer, tmp)
        _render(check, frame, tmp, out)
        _complete(check)
    except Exception as exc:
        check("self-test", False, f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")
    ok = all(s[1] for s in steps)
    print("self-test passed" if ok else "self-test FAILED", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(self_test(sys.argv[1] if len(sys.argv) > 1 else None))
