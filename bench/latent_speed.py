"""The latent explorer's speed, on the shipped latent models (issue 10's goals).

    python -m bench.latent_speed [--write] [--moves 300]

* **Slider move to a decoded frame**: the Latent space tab offscreen, one slider moved ``--moves``
  times; each move is timed from ``setValue`` to the image item holding the new frame and the
  events processed (what a drag costs the GUI thread). Goal: <= 5 ms.
* **Dragging**: the same moves driven by a 60 Hz timer for 3 s; the GUI thread's frame interval
  (time between two timer ticks that moved the slider) at p50 / p99. Goal: >= 60 frames a second,
  i.e. p99 interval <= 16.7 ms + the timer's own jitter (measured idle, without moves, as the
  baseline in the same run).
* **The map**: 16 x 16 decoded images (``core.latent.decode_map``), best of 5. Goal: <= 50 ms.
One torch thread, as the GUI uses.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import torch

from bench.report import add_write_flag, machine, write_section
from core import latent
from core.readouts import DEFAULT_WEIGHTS
from gui.latent_state import scan_latent_weights


def _interval_run(app, panel, moves: bool, seconds: float = 3.0) -> np.ndarray:
    from PySide6.QtCore import QTimer

    ticks: list[float] = []
    slider = panel.sliders.sliders[0]
    values = (np.sin(np.linspace(0, 12 * np.pi, 100_000)) * 300).astype(int)

    def tick() -> None:
        ticks.append(time.perf_counter())
        if moves:
            slider.setValue(int(values[len(ticks) % len(values)]))

    timer = QTimer(interval=16)
    timer.timeout.connect(tick)
    timer.start()
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        app.processEvents()
    timer.stop()
    return np.diff(np.asarray(ticks)) * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    add_write_flag(ap)
    ap.add_argument("--moves", type=int, default=300)
    args = ap.parse_args()
    torch.set_num_threads(1)
    import asyncio

    import qasync
    from PySide6.QtWidgets import QApplication

    from gui.latent_panel import LatentPanel

    app = QApplication.instance() or QApplication([])
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    with loop:
        rows = loop.run_until_complete(_measure(app, args, LatentPanel))
    _report(rows, args)


async def _measure(app, args, LatentPanel) -> list[tuple]:
    import asyncio

    entries, _, _ = scan_latent_weights(DEFAULT_WEIGHTS)
    rows = []
    for e in entries:
        best_map = min(_time(lambda: latent.decode_map(e.model, np.zeros(e.model.latent_dim), (0, 1), 3.0, 16,
                                                        0 if e.model.info.conditional else None)) for _ in range(5))
        panel = LatentPanel()
        panel.resize(1200, 800)
        panel.show()
        while not panel.loaded:
            await asyncio.sleep(0.05)
        panel.select_model(e.key)
        app.processEvents()
        slider = panel.sliders.sliders[0]
        moves = []
        for i in range(args.moves):
            t0 = time.perf_counter()
            slider.setValue(int(300 * np.sin(i / 7)))
            app.processEvents()
            moves.append((time.perf_counter() - t0) * 1000)
        idle = _interval_run(app, panel, moves=False)
        drag = _interval_run(app, panel, moves=True)
        panel.shutdown()
        panel.close()
        await asyncio.sleep(0.05)  # the cancelled jobs end before the next panel
        rows.append((e.name, np.percentile(moves, 50), np.percentile(moves, 95), best_map * 1000,
                     np.percentile(idle, 99), np.percentile(drag, 50), np.percentile(drag, 99)))
        print(rows[-1], flush=True)
    return rows


def _report(rows: list[tuple], args) -> None:
    lines = ["## Latent explorer speed (issue 10; goals: slider move <= 5 ms, >= 60 frames/s dragging, "
             "16x16 map <= 50 ms)", "",
             f"`python -m bench.latent_speed` on {machine()}, one torch thread, offscreen. A move: "
             "`setValue` to the new image drawn and the events processed. Dragging: a 60 Hz timer moving "
             "the slider for 3 s; the GUI thread's interval between two ticks, against the same timer "
             "idle in the same run (the baseline).", "",
             "| model | move p50 (ms) | move p95 (ms) | 16x16 map (ms, best of 5) | idle p99 interval (ms) "
             "| dragging p50 / p99 interval (ms) | p99 / idle p99 |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, m50, m95, mp, i99, d50, d99 in rows:
        lines.append(f"| {name} | {m50:.2f} | {m95:.2f} | {mp:.1f} | {i99:.1f} | {d50:.1f} / {d99:.1f} "
                     f"| {d99 / i99:.2f} |")
    text = "\n".join(lines)
    if args.write:
        write_section("latent_speed", text)
    print(text)


def _time(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
