"""Runs the real app window in this process and drives it through one scenario, for the
reliability suite's subprocess cases (lifecycle, interaction fuzz, soak). Not a test file.

    python tests/reliability/app_driver.py SCENARIO [--seed N] [--events N] [--snapshots N]
        [--idle S] [--out DIR]

Scenarios: ``train``, ``sample``, ``save`` (close while that runs), ``idle`` (a long session: open,
trained, then idle for ``--idle`` s, then closed while training), ``fuzz`` (``--events`` random
GUI events with ``--seed``), ``soak`` (``--snapshots`` training snapshots of a tiny model).

Just before it closes the window it prints ``CLOSING``; the caller measures the time from that
line to the process's exit. Its last line is a JSON report: events sent, exceptions, Qt warnings,
error dialogs, memory and object counts.
"""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import gc
import json
import os
import random
import sys
import threading
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402  (before Qt, as in main.py)

torch.set_num_threads(1)

import qasync  # noqa: E402
from PySide6.QtCore import QEvent, QObject, QPointF, QSettings, Qt, QThread, QtMsgType, qInstallMessageHandler  # noqa: E402
from PySide6.QtGui import QMouseEvent  # noqa: E402
from PySide6.QtWidgets import (QAbstractButton, QAbstractSlider, QAbstractSpinBox, QApplication, QCheckBox,  # noqa: E402
                               QComboBox, QFileDialog, QGraphicsView, QWidget)

#: the offscreen platform plugin's own limits (a popup's raise, a keyboard grab), not the app's warnings
IGNORED = ("This plugin does not support",)
REPORT: dict = {"events": 0, "exceptions": [], "qt_warnings": [], "error_dialogs": []}


def _qt_message(mode, context, message):
    if mode != QtMsgType.QtDebugMsg and mode != QtMsgType.QtInfoMsg and not any(s in message for s in IGNORED):
        REPORT["qt_warnings"].append(message)
        print(f"QT: {message}", file=sys.stderr, flush=True)


def _excepthook(kind, value, tb):
    REPORT["exceptions"].append("".join(traceback.format_exception(kind, value, tb))[-2000:])
    print(REPORT["exceptions"][-1], file=sys.stderr, flush=True)


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def qobject_kinds(app: QApplication, window: QWidget) -> dict[str, int]:
    """Class name -> count, over the window's objects and the top-level widgets."""
    kinds: dict[str, int] = {}
    for o in window.findChildren(QObject) + app.topLevelWidgets():
        kinds[type(o).__name__] = kinds.get(type(o).__name__, 0) + 1
    return kinds


def qobjects(app: QApplication, window: QWidget) -> int:
    return sum(qobject_kinds(app, window).values())


def qthreads(window: QWidget) -> int:
    return len(QApplication.instance().findChildren(QThread)) + len(window.findChildren(QThread))


class Driver:
    def __init__(self, args, app, window):
        self.args, self.app, self.w = args, app, window
        self.rng = random.Random(args.seed)

    async def pause(self, s: float) -> None:
        await asyncio.sleep(s)

    async def until(self, pred, timeout: float = 30.0) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if pred():
                return True
            await asyncio.sleep(0.02)
        return bool(pred())

    async def start_training(self, family="fvsbn", data="bars", epochs=30.0) -> None:
        w = self.w
        w.picker.select(family)
        w.panel.data_combo.setCurrentIndex(w.panel.data_combo.findData(data))
        w.panel.epochs.setValue(epochs)
        old = w.session
        w.train()
        await self.until(lambda: w.session is not old and w.session.frames_received > 0)

    # -- scenarios -------------------------------------------------------------------------------
    async def train(self) -> None:
        await self.start_training()
        await self.until(lambda: self.w.session.last_frame.snapshot.step > 20, 10)

    async def sample(self) -> None:
        w = self.w
        w.tabs.setCurrentWidget(w.canvas_scroll)
        await self.until(lambda: w.canvas.entry is not None, 30)
        for _ in range(3):
            w.canvas.sample()
            await self.pause(0.05)

    async def save(self) -> None:
        await self.start_training()
        path = Path(self.args.out) / "ckpt.safetensors"
        for _ in range(3):
            self.w.save(path)
            await self.pause(0.03)

    async def idle(self) -> None:
        await self.start_training(epochs=0.2)
        await self.until(lambda: not self.w.session.running, 60)
        end = time.monotonic() + self.args.idle
        while time.monotonic() < end:  # idle, as a window left open
            await self.pause(0.5)
        await self.start_training()

    async def soak(self) -> None:
        """FVSBN on bars (~2 ms a step) until ``--snapshots`` snapshots, then stopped."""
        w = self.w
        await self.start_training(epochs=1000.0)
        trainer = w.session.trainer
        target = self.args.snapshots
        await self.until(lambda: trainer.step >= min(1000, target // 5), 600)
        gc.collect()
        self.kinds = qobject_kinds(self.app, w)
        REPORT["start"] = {"step": trainer.step, "rss_mb": rss_mb(), "qobjects": qobjects(self.app, w),
                           "qthreads": qthreads(w), "threads": threading.active_count()}
        await self.until(lambda: trainer.step >= target, 1200)
        gc.collect()  # measured while training still, as at the start
        self.kinds_end = qobject_kinds(self.app, w)
        REPORT["end"] = {"step": trainer.step, "rss_mb": rss_mb(), "qobjects": qobjects(self.app, w),
                         "qthreads": qthreads(w), "threads": threading.active_count()}
        w.stop()
        await self.until(lambda: not w.session.running, 30)
        REPORT["snapshots"] = trainer.step
        before, after = self.kinds, self.kinds_end
        REPORT["qobject_changes"] = {k: after.get(k, 0) - before.get(k, 0) for k in set(before) | set(after)
                                     if after.get(k, 0) != before.get(k, 0)}

    async def fuzz(self) -> None:
        actions = [self.a_tab, self.a_model, self.a_train, self.a_stop, self.a_pause, self.a_button,
                   self.a_slider, self.a_combo, self.a_drag, self.a_drag, self.a_drag, self.a_data]
        weights = [2, 1, 1, 1, 1, 4, 4, 2, 6, 0, 0, 1]
        for i in range(self.args.events):
            action = self.rng.choices(actions, weights)[0]
            if i % 50 == 0 or os.environ.get("GMS_DRIVER_TRACE"):
                print(f"event {i}: {action.__name__}", file=sys.stderr, flush=True)
            try:
                action()
            except Exception:  # noqa: BLE001 - counted, and the fuzz goes on
                _excepthook(*sys.exc_info())
            REPORT["events"] += 1
            await self.pause(self.rng.choice((0, 0, 0.001, 0.005, 0.02)))

    # -- fuzz actions ----------------------------------------------------------------------------
    def _visible(self, kind):
        page = self.w.tabs.currentWidget()
        return [x for x in page.findChildren(kind) if x.isVisible() and x.isEnabled()]

    def a_tab(self):
        self.w.tabs.setCurrentIndex(self.rng.randrange(self.w.tabs.count()))

    def a_model(self):
        self.w.picker.select(self.rng.choice(self.w.picker.keys()))

    def a_data(self):
        combo = self.w.panel.data_combo
        allowed = [i for i in range(combo.count()) if combo.itemData(i) not in ("binarized_mnist", "mnist_digits")]
        if allowed:  # (a family may take only downloaded sets: they are left alone, as is the network)
            combo.setCurrentIndex(self.rng.choice(allowed))

    def a_train(self):
        self.w.panel.epochs.setValue(self.rng.choice((0.05, 0.2, 1.0)))
        self.w.train()
        if os.environ.get("GMS_DRIVER_TRACE"):
            print(f"  train {self.w.panel.family} {self.w.panel.hparams()}", file=sys.stderr, flush=True)

    def a_stop(self):
        self.w.stop()

    def a_pause(self):
        self.w.toggle_pause()

    def a_button(self):
        buttons = self._visible(QAbstractButton)
        if buttons:
            b = self.rng.choice(buttons)
            if isinstance(b, QCheckBox) or self.rng.random() < 0.5:
                b.click()
            else:
                b.animateClick()

    def a_slider(self):
        controls = self._visible(QAbstractSlider) + self._visible(QAbstractSpinBox)
        if not controls:
            return
        c = self.rng.choice(controls)
        if isinstance(c, QAbstractSlider):
            c.setValue(self.rng.randint(c.minimum(), c.maximum()))
        elif hasattr(c, "setValue") and hasattr(c, "minimum"):
            lo, hi = c.minimum(), c.maximum()
            hi = min(hi, lo + 100) if isinstance(lo, int) else hi
            c.setValue(type(lo)(lo + (hi - lo) * self.rng.random()))

    def a_combo(self):
        combos = [c for c in self._visible(QComboBox) if c.count()]
        if combos:
            c = self.rng.choice(combos)
            c.setCurrentIndex(self.rng.randrange(c.count()))

    def a_drag(self):
        """A press, a few moves and a release on a canvas, a map or a plot of the current tab."""
        page = self.w.tabs.currentWidget()
        targets = [v.viewport() for v in page.findChildren(QGraphicsView) if v.isVisible()]
        targets += [x for x in page.findChildren(QWidget) if x.isVisible() and type(x).__module__.startswith("gui.")
                    and "mousePressEvent" in type(x).__dict__]
        if not targets:
            return
        t = self.rng.choice(targets)
        size = t.size()
        button = self.rng.choice((Qt.MouseButton.LeftButton, Qt.MouseButton.LeftButton, Qt.MouseButton.RightButton))

        def point():
            return QPointF(self.rng.uniform(-5, size.width() + 5), self.rng.uniform(-5, size.height() + 5))

        def send(kind, pos, buttons):
            ev = QMouseEvent(kind, pos, t.mapToGlobal(pos), button if kind != QEvent.Type.MouseMove
                             else Qt.MouseButton.NoButton, buttons, Qt.KeyboardModifier.NoModifier)
            QApplication.sendEvent(t, ev)

        send(QEvent.Type.MouseButtonPress, point(), button)
        for _ in range(self.rng.randint(0, 6)):
            send(QEvent.Type.MouseMove, point(), button)
        send(QEvent.Type.MouseButtonRelease, point(), Qt.MouseButton.NoButton)


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("scenario", choices=["train", "sample", "save", "idle", "fuzz", "soak"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--events", type=int, default=1000)
    p.add_argument("--snapshots", type=int, default=10000)
    p.add_argument("--idle", type=float, default=30.0)
    p.add_argument("--out", default=".")
    p.add_argument("--watchdog", type=float, default=0, help="dump every thread's stack and exit after S s")
    args = p.parse_args(argv)
    faulthandler.enable()  # a crash dumps every thread's stack
    if args.watchdog:
        faulthandler.dump_traceback_later(args.watchdog, exit=True)
    os.environ.setdefault("GMS_DATA_DIR", str(Path(args.out) / "data"))
    os.environ.setdefault("GMS_DATA_MIRROR", "http://127.0.0.1:9/")  # never the network
    for name in ("getOpenFileName", "getSaveFileName", "getExistingDirectory"):  # no modal dialog
        setattr(QFileDialog, name, staticmethod(lambda *a, _d="Directory" in name, **k: "" if _d else ("", "")))
    qInstallMessageHandler(_qt_message)
    sys.excepthook = _excepthook

    import core.data
    import core.data.mnist_digits as md
    import gui.main_window as mw
    from gui.app import make_app

    # the public sources the loaders fall back on: a closed local port (the fuzz may pick them)
    core.data.MNIST_AMAT_URLS = {s: f"http://127.0.0.1:9/{s}.amat" for s in ("train", "valid")}
    md.PUBLIC_MIRROR = "http://127.0.0.1:9/public/"

    mw.app_data_dir = lambda: Path(args.out) / "appdata"
    app = make_app()
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    loop.set_exception_handler(lambda _loop, ctx: _excepthook(type(ctx.get("exception")), ctx.get("exception"),
                                                              None) if ctx.get("exception") else None)
    window = mw.MainWindow(settings=QSettings(str(Path(args.out) / "settings.ini"), QSettings.Format.IniFormat))
    window.show()
    driver = Driver(args, app, window)
    closed = asyncio.Event()
    app.aboutToQuit.connect(closed.set)

    async def scenario():
        await asyncio.sleep(0.2)
        try:
            await getattr(driver, args.scenario)()
        except Exception:  # noqa: BLE001 - reported; the window is closed all the same
            _excepthook(*sys.exc_info())
        REPORT["error_dialogs"] = [f"{b.windowTitle()}: {b.text()[:200]}" for b in window.error_boxes]
        REPORT["tracebacks_in_dialogs"] = sum("Traceback" in (b.detailedText() or "") for b in window.error_boxes)
        REPORT["rss_mb"] = rss_mb()
        print("CLOSING", flush=True)
        t0 = REPORT["closing_at"] = time.perf_counter()
        window.close()
        if os.environ.get("GMS_DRIVER_CLOSE_TRACE"):  # what the exit waits for
            faulthandler.dump_traceback_later(float(os.environ["GMS_DRIVER_CLOSE_TRACE"]))
        REPORT["close_s"] = time.perf_counter() - t0
        app.quit()

    with loop:
        loop.create_task(scenario())
        loop.run_until_complete(closed.wait())
        REPORT["loop_done_s"] = time.perf_counter()
    REPORT["loop_closed_s"] = time.perf_counter()
    print(json.dumps(REPORT), flush=True)
    if not os.environ.get("GMS_DRIVER_NO_FAST_EXIT"):
        from gui.app import before_exit

        before_exit()  # as gui.app.run_app does
    if os.environ.get("GMS_DRIVER_GC_PROBE"):
        t = time.perf_counter(); n = gc.collect()
        print(f"gc: {n} collected in {time.perf_counter() - t:.2f} s; {len(gc.get_objects())} tracked; "
              f"counts {gc.get_count()}", file=sys.stderr, flush=True)
    if os.environ.get("GMS_DRIVER_EXIT_TRACE"):  # where the interpreter's exit waits
        faulthandler.dump_traceback_later(float(os.environ["GMS_DRIVER_EXIT_TRACE"]), repeat=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
