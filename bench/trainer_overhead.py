"""Trainer overhead: the engine's generator (snapshots, finite-loss guard, live-lr check,
throttled frames) against a bare torch loop training the same model on the same batches.

    python -m bench.trainer_overhead [--steps 400] [--repeats 5] [--data PATH.npz]

Goal (issue 2): overhead <= 5 %.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch

from bench.report import machine, write_section
from core import data as datasets
from core import engine, registry


def bare_loop(model, train: np.ndarray, steps: int, batch_size: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    x = torch.from_numpy(train)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    order, pos = rng.permutation(len(x)), 0
    t0 = time.perf_counter()
    for _ in range(steps):
        if pos >= len(order):
            order, pos = rng.permutation(len(x)), 0
        batch = x.index_select(0, torch.from_numpy(order[pos:pos + batch_size])).float()
        pos += batch_size
        opt.zero_grad(set_to_none=True)
        loss = -model.log_prob(batch).mean()
        loss.backward()
        opt.step()
        loss.item()
    return time.perf_counter() - t0


def engine_loop(model, ds, steps: int, seed: int) -> float:
    cfg = engine.TrainConfig(max_steps=steps, seed=seed, device="cpu", eval_every=0, eval_size=0,
                             visuals_every_s=None)
    trainer = engine.Trainer(model, ds, cfg)
    t0 = time.perf_counter()
    for _frame in engine.throttled(trainer.run(), engine.RunControl(), fps=30):
        pass
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--data", help="binarized MNIST .npz (default: the built-in bars set)")
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(1)
    ds = datasets.binarized_mnist(args.data) if args.data else datasets.load("bars", n=4000)
    bare, eng = [], []
    for r in range(args.repeats):  # interleaved, so drift hits both alike
        m1 = registry.create("fvsbn", ds.shape, batch_size=args.batch_size)
        bare.append(bare_loop(m1, ds.train, args.steps, args.batch_size, seed=r))
        m2 = registry.create("fvsbn", ds.shape, batch_size=args.batch_size)
        eng.append(engine_loop(m2, ds, args.steps, seed=r))
    b, e = statistics.median(bare), statistics.median(eng)
    result = {"steps": args.steps, "repeats": args.repeats, "bare_s": b, "engine_s": e,
              "overhead": e / b - 1, "bare_steps_per_s": args.steps / b, "engine_steps_per_s": args.steps / e}
    print(json.dumps(result))
    if not args.no_write:
        write_section("trainer_overhead", f"""
## Trainer overhead (issue 2; goal <= 5 %)

`python -m bench.trainer_overhead --steps {args.steps} --repeats {args.repeats}{' --data ' + args.data if args.data else ''}`
on {machine()}, one torch thread. FVSBN on {ds.name}, batch {args.batch_size}; median of
{args.repeats} interleaved runs of each loop.

| loop | time for {args.steps} steps | steps/s |
| --- | --- | --- |
| bare torch (zero_grad, NLL, backward, Adam step, loss.item) | {b:.3f} s | {args.steps / b:.0f} |
| `Trainer.run()` through `throttled()` (snapshots, finite guard, live lr, frames) | {e:.3f} s | {args.steps / e:.0f} |

**Overhead: {100 * (e / b - 1):+.1f} %** (ratio {e / b:.3f}).
""")


if __name__ == "__main__":
    main()
