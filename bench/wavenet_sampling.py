"""WaveNet sampling: the Fast-WaveNet cache against a full forward pass per step.

    python -m bench.wavenet_sampling [--n 16] [--repeats 3] [--checkpoint PATH] [--write]

The work: ``n`` sequences of the ``waves`` length (128 steps) from the default WaveNet (64 bins,
32 residual and 64 skip channels, 2 stacks of dilations 1..32), or from a checkpoint's weights.
``sample`` (cached: O(layers) per step) and ``sample_naive`` (a forward pass over the whole
sequence per step: O(T * layers) per step) are timed with the same generator seed; both must give
the identical samples. Each timing is the fastest of ``repeats`` (noise on these shared machines
only ever adds time), the two interleaved.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch

from bench.report import add_write_flag, machine, write_section
from core import registry
from core.data import waves
from core.checkpoint import load_checkpoint


def timed(fn) -> tuple[float, torch.Tensor]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=16, help="sequences per sampling call")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--checkpoint", help="a wavenet checkpoint (default: fresh default weights)")
    add_write_flag(p)
    args = p.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    if args.checkpoint:
        model, _ = load_checkpoint(args.checkpoint, family="wavenet")
        source = f"the weights of `{args.checkpoint}`"
    else:
        model = registry.create("wavenet", (waves.LENGTH,))
        source = "fresh default weights (seeded)"
    model.eval()
    t_len = model.data_shape[0]
    cached, naive, same = [], [], True
    for r in range(args.repeats):
        tc, a = timed(lambda: model.sample(args.n, generator=torch.Generator().manual_seed(r)))
        tn, b = timed(lambda: model.sample_naive(args.n, generator=torch.Generator().manual_seed(r)))
        cached.append(tc)
        naive.append(tn)
        same = same and torch.equal(a, b)
    if not same:
        raise SystemExit("the cached and the naive sampler gave different samples")
    ratio = min(naive) / min(cached)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    hp = model.hparams
    result = {"n": args.n, "length": t_len, "layers": len(model.dilations), "levels": model.levels,
              "cached_s": min(cached), "naive_s": min(naive), "speedup": ratio, "identical": same,
              "cached_ms_per_step": 1e3 * min(cached) / t_len, "naive_ms_per_step": 1e3 * min(naive) / t_len,
              "load_avg": load}
    print(json.dumps(result))
    if args.no_write:
        return
    cmd = f"python -m bench.wavenet_sampling --n {args.n} --repeats {args.repeats}" + (
        f" --checkpoint {args.checkpoint}" if args.checkpoint else "")
    write_section("wavenet_sampling", f"""
## WaveNet sampling: Fast-WaveNet cache vs a full forward pass per step

`{cmd}`
on {machine()}, one torch thread; load average {load:.1f} at the end (shared machine: the ratio is
from the same run). {args.n} sequences of {t_len} steps from {source}: {hp['levels']} bins,
{hp['channels']} residual / {hp['skip_channels']} skip channels, {len(model.dilations)} layers
(dilations {', '.join(map(str, model.dilations))}; receptive field {model.receptive_field}).

| sampler | time ({args.n} x {t_len} steps) | per step | how |
| --- | --- | --- | --- |
| `sample`: per-layer queues of past activations, O(layers) per step | {1e3 * min(cached):.0f} ms | {1e3 * min(cached) / t_len:.2f} ms | fastest of {args.repeats} |
| `sample_naive`: the whole sequence through the network at every step | {min(naive):.2f} s | {1e3 * min(naive) / t_len:.1f} ms | fastest of {args.repeats} |

**Speed-up: {ratio:.1f}x**, with identical samples (same generator seed, same uniforms per step).
The naive sampler's work grows with T at every step (O(T^2) in all), the cache's stays constant.
""")


if __name__ == "__main__":
    main()
