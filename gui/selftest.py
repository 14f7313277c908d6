"""``python main.py --self-test``: train a few steps of a small model on the worker thread,
save and reload it, render one frame of the real window offscreen; exit 0 only if all worked.
Used by packaging to check an installed build."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path


def self_test(out: str | None = None) -> int:
    """Run the checks in a temporary folder, removed at the end, pass or fail."""
    tmp = Path(tempfile.mkdtemp(prefix="gms-selftest-"))
    try:
        return _self_test(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _self_test(tmp: Path, out: str | None) -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import numpy as np
    import torch

    from core import checkpoint, data, registry, training

    steps: list[tuple[str, bool, str]] = []

    def check(name: str, ok: bool, detail: str = "") -> bool:
        steps.append((name, ok, detail))
        print(f"[{'ok' if ok else 'FAIL'}] {name}{': ' + detail if detail else ''}", flush=True)
        return ok

    try:
        from PySide6.QtCore import QCoreApplication, QEventLoop, QSettings, QTimer

        from gui.app import make_app
        from gui.main_window import MainWindow
        from gui.worker import TrainingSession

        app = make_app()
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

        # save and load as the window does: coroutines on the qasync loop, work in its executor
        import qasync

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
        check("checkpoint save and load on the qasync loop", same and meta.step == 40, str(path))

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
    except Exception as exc:
        check("self-test", False, f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")
    ok = all(s[1] for s in steps)
    print("self-test passed" if ok else "self-test FAILED", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(self_test(sys.argv[1] if len(sys.argv) > 1 else None))
