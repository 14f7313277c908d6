"""The latent explorer's speed, on the shipped latent models (issue 10's goals).

    python -m bench.latent_speed [--write] [--moves 300]

* **Slider move to a decoded frame**: the Latent space tab offscreen, one slider moved ``--moves``
  times by a Qt timer (20 ms apart, as a drag delivers them); each move is timed from ``setValue``
  to the image item holding the new frame, drawn, and the events processed (what a drag costs the
  GUI thread). Goal: <= 5 ms.
* **Dragging**: the same moves driven by a 60 Hz timer for 3 s; the GUI thread's frame interval
  (time between two timer ticks that moved the slider) at p50 / p99. Goal: >= 60 frames a second,
  i.e. p99 interval <= 16.7 ms + the timer's own jitter (measured idle, without moves, as the
  baseline in the same run).
* **The map**: 16 x 16 decoded images, as the tab computes it (``compute_map`` in the tab's
  background job, on ``MAP_THREADS`` torch threads), best of 5; beside it the same
  ``core.latent.decode_map`` on 1 and on 2 torch threads. Goal: <= 50 ms.

Torch threads as the app sets them: single-image decodes in the GUI thread on ``DRAG_THREADS``,
the map's job on ``MAP_THREADS`` (``gui.latent_state``). Every timing is on the machine as it is
(shared with other work), so the median is given beside the best where it matters.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import os
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import torch

from bench.report import add_write_flag, machine, write_section
from core import latent
from core.readouts import DEFAULT_WEIGHTS
from gui.latent_state import DRAG_THREADS, MAP_THREADS, scan_latent_weights

MOVE_MS = 20  # between two timed moves
MAP_RUNS = 5


def _mover(app, slider, period_ms: int, moves: int | None, seconds: float, timed: bool):
    """A QObject whose timer moves ``slider`` (``moves`` None: never) and stamps each tick; a
    slot of a GUI-thread object, as a drag's mouse events are (not a coroutine step)."""
    from PySide6.QtCore import QObject, Qt, QTimer, Slot

    values = (np.sin(np.arange(100_000) / 7) * 300).astype(int)

    class Mover(QObject):
        def __init__(self) -> None:
            super().__init__()
            self.stamps: list[float] = []
            self.costs: list[float] = []
            self.cpu: list[float] = []
            self.timer = QTimer(self)
            self.timer.setTimerType(Qt.TimerType.PreciseTimer)
            self.timer.setInterval(period_ms)
            self.timer.timeout.connect(self.tick)
            self.done = asyncio.get_event_loop().create_future()
            self.end = time.perf_counter() + seconds

        @Slot()
        def tick(self) -> None:
            t0, c0 = time.perf_counter(), time.thread_time()
            self.stamps.append(t0)
            if moves is not None:
                slider.setValue(int(values[len(self.stamps) % len(values)]))
                if timed:
                    app.processEvents()
                    self.costs.append((time.perf_counter() - t0) * 1000)
                    self.cpu.append((time.thread_time() - c0) * 1000)
            n = moves if (moves is not None and timed) else None
            if (n is not None and len(self.stamps) >= n) or (n is None and t0 >= self.end):
                self.timer.stop()
                if not self.done.done():
                    self.done.set_result(None)

    return Mover()


async def _run(mover) -> None:
    mover.timer.start()
    await mover.done


def _intervals(mover) -> np.ndarray:
    return np.diff(np.asarray(mover.stamps)) * 1000


def _map_times(model) -> dict:
    """``decode_map`` on 1 and on 2 torch threads, each in a thread of its own (a thread's count
    is set once: see ``core.latent.pin_torch_threads``)."""
    digit = 0 if model.info.conditional else None
    z = np.zeros(model.latent_dim, np.float32)

    def times(threads: int) -> list[float]:
        latent.pin_torch_threads(threads)
        latent.decode_map(model, z, (0, 1), 3.0, 16, digit)  # warm-up
        return [_time(lambda: latent.decode_map(model, z, (0, 1), 3.0, 16, digit)) for _ in range(MAP_RUNS)]

    def cpu_times() -> list[float]:  # the 1-thread job's own CPU time: what it costs without others' load
        latent.pin_torch_threads(1)
        return [_time(lambda: latent.decode_map(model, z, (0, 1), 3.0, 16, digit), time.thread_time)
                for _ in range(MAP_RUNS)]

    def baseline_cpu_times() -> list[float]:
        """A GAN's map through its generator as trained (batch norm in eval mode, the transposed
        convolutions as they are): the baseline of the folded generator ``decode`` uses."""
        latent.pin_torch_threads(1)
        zs = torch.from_numpy(latent.grid_latents(z, (0, 1), 3.0, 16))
        labels = torch.full((len(zs),), digit) if digit is not None else None

        def plain() -> None:
            with torch.inference_mode():
                latent.mosaic(model.generate(zs, labels).reshape(-1, 28, 28).numpy(), 16)
        plain()
        return [_time(plain, time.thread_time) for _ in range(MAP_RUNS)]

    out = {}
    for threads in (1, 2):
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            out[threads] = pool.submit(times, threads).result()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        out["cpu"] = pool.submit(cpu_times).result()
        if hasattr(model, "generator"):
            out["baseline_cpu"] = pool.submit(baseline_cpu_times).result()
    return out


async def _panel_map_times(panel) -> list[float]:
    """The tab's own map job, ``MAP_RUNS`` times (its ``map_ms``: the decode inside the job)."""
    times = []
    for _ in range(MAP_RUNS):
        while panel._map_busy:
            await asyncio.sleep(0.01)
        task = panel.request_map()
        if task in (None, False):
            break
        await task
        times.append(panel.map_ms)
    return times


async def _measure(app, args, LatentPanel) -> list[dict]:
    entries, _, _ = scan_latent_weights(DEFAULT_WEIGHTS)
    rows = []
    for e in entries:
        row = {"name": e.name, "map": _map_times(e.model)}
        panel = LatentPanel()
        panel.resize(1200, 800)
        panel.show()
        while not panel.loaded:
            await asyncio.sleep(0.05)
        panel.select_model(e.key)
        await asyncio.sleep(0.3)
        row["gui_map"] = await _panel_map_times(panel)
        await asyncio.sleep(0.3)  # the map's job done: a drag starts from a drawn tab
        slider = panel.sliders.sliders[0]
        mover = _mover(app, slider, MOVE_MS, args.moves, 0, timed=True)
        await _run(mover)
        row["moves"], row["moves_cpu"] = mover.costs, mover.cpu
        idle = _mover(app, slider, 16, None, 3.0, timed=False)
        await _run(idle)
        drag = _mover(app, slider, 16, 0, 3.0, timed=False)
        await _run(drag)
        row["idle"], row["drag"] = _intervals(idle), _intervals(drag)
        panel.shutdown()
        panel.close()
        await asyncio.sleep(0.05)  # the cancelled jobs end before the next panel
        rows.append(row)
        print(e.name, {k: (f"{np.median(v):.2f}" if not isinstance(v, (str, dict)) else v)
                       for k, v in row.items() if k != "map"}, flush=True)
    return rows


def _report(rows: list[dict], args, load: tuple[float, float]) -> None:
    lines = ["## Latent explorer speed (issue 10; goals: slider move <= 5 ms, >= 60 frames/s dragging, "
             "16x16 map <= 50 ms)", "",
             f"`python -m bench.latent_speed` on {machine()}, offscreen, on a machine shared with other "
             f"work (load average {load[0]:.1f} at the start, {load[1]:.1f} at the end: wall times are "
             "stretched by whatever else runs, so each one's CPU time, in the GUI thread for a move and in "
             "the job's thread for the map, is given beside it). Torch threads as the app sets them: a slider move's decode in the GUI thread on "
             f"{DRAG_THREADS}, the map's background job on {MAP_THREADS}. A move: `setValue` to the new "
             f"image drawn and the events processed ({args.moves} moves, {MOVE_MS} ms apart). Dragging: "
             "a 60 Hz timer moving the slider for 3 s; the GUI thread's interval between two ticks, "
             "against the same timer idle in the same run (the baseline). The map: as the tab computes "
             f"it (its job, {MAP_THREADS} thread), best / median of {MAP_RUNS}; beside it "
             "`core.latent.decode_map` on 1 and on 2 threads, its CPU time on 1 thread, and for the GANs "
             "the CPU time of the same map through the generator as trained (the baseline: batch norm "
             "unfolded, the transposed convolutions as they are), all best of 5.", "",
             "| model | move p50 (ms) | move p95 (ms) | move CPU p50 / p95 (ms) "
             "| 16x16 map in the tab (ms, best / median) | map on 1 / 2 threads (ms) | map CPU, 1 thread (ms) "
             "| map CPU, generator as trained (baseline, ms) | baseline / map CPU "
             "| idle p99 interval (ms) | dragging p50 / p99 interval (ms) | p99 / idle p99 |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        m50, m95 = np.percentile(r["moves"], 50), np.percentile(r["moves"], 95)
        gm = r["gui_map"]
        gui = f"{min(gm):.1f} / {np.median(gm):.1f}" if gm else "n/a"
        i99, d50, d99 = np.percentile(r["idle"], 99), np.percentile(r["drag"], 50), np.percentile(r["drag"], 99)
        c50, c95 = np.percentile(r["moves_cpu"], 50), np.percentile(r["moves_cpu"], 95)
        cpu, base = min(r["map"]["cpu"]), r["map"].get("baseline_cpu")
        base_cols = f"{min(base):.1f} | {min(base) / cpu:.2f}" if base else "(no generator) | "
        lines.append(f"| {r['name']} | {m50:.2f} | {m95:.2f} | {c50:.2f} / {c95:.2f} | {gui} "
                     f"| {min(r['map'][1]):.1f} / {min(r['map'][2]):.1f} | {cpu:.1f} | {base_cols} "
                     f"| {i99:.1f} | {d50:.1f} / {d99:.1f} | {d99 / i99:.2f} |")
    text = "\n".join(lines)
    if args.write:
        write_section("latent_speed", text)
    print(text)


def _time(fn, clock=time.perf_counter) -> float:
    t0 = clock()
    fn()
    return (clock() - t0) * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    add_write_flag(ap)
    ap.add_argument("--moves", type=int, default=300)
    args = ap.parse_args()
    import qasync
    from PySide6.QtWidgets import QApplication

    from gui.latent_panel import LatentPanel

    app = QApplication.instance() or QApplication([])
    app.setQuitOnLastWindowClosed(False)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    with loop:
        load0 = os.getloadavg()[0]
        rows = loop.run_until_complete(_measure(app, args, LatentPanel))
    _report(rows, args, (load0, os.getloadavg()[0]))


if __name__ == "__main__":
    main()
