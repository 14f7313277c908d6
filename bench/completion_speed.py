"""Completion speed of the autoregressive image models against the naive loop.

    python -m bench.completion_speed [--threads 1] [--n 16] [--repeats 5] [--weights DIR] [--write]

The work (issue 4): complete the bottom half (rows 14-27, 392 pixels) of a validation digit for
``n`` = 16 candidates. Each model's own ``complete`` (NADE: a running hidden pre-activation,
O(H) per pixel; MADE: an incremental first layer; PixelCNN: cached convolution states, one
position per layer per pixel, all candidates in one batch; the row RNN: its state carried row by row) is timed against the naive
loop: one full forward pass of the whole image for every pixel drawn, the conditional read from
``pixel_log_prob`` with the pixel set to 1. Both draw from the same conditionals; the naive loop
is run once (it is slow), ours best of ``repeats``.

Goals: NADE and MADE <= 30 ms and >= 10x faster than the naive loop; PixelCNN faster than it.
The shipped weights are used when ``--weights`` holds them (their size is what the app runs),
else fresh models of the default size.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from bench.report import ROOT, add_write_flag, machine, write_section
from core import registry
from core.checkpoint import load_checkpoint
from core.protocol import DataKind

MODELS = [("nade", "nade.safetensors", {}), ("made", "made.safetensors", {}),
          ("pixelcnn", "pixelcnn.safetensors", {"channels": 32, "blocks": 12}),
          ("pixelrnn", "pixelrnn.safetensors", {}), ("fvsbn", "fvsbn.safetensors", {})]


@torch.no_grad()
def naive_complete(model, x: torch.Tensor, known: torch.Tensor, n: int, generator) -> torch.Tensor:
    """One full forward pass per drawn pixel, in raster order."""
    x, known = model.completion_inputs(x, known, n)
    for d in torch.nonzero(~known.all(0)).flatten().tolist():
        probe = x.clone()
        probe[:, d] = 1.0
        p = model.pixel_log_prob(probe)[:, d].exp()
        draw = torch.bernoulli(p, generator=generator)
        x[:, d] = torch.where(known[:, d], x[:, d], draw)
    return x


def _load(key: str, fname: str, hp: dict, weights: Path):
    path = weights / fname
    if path.exists():
        model, meta = load_checkpoint(path, family=key)
        return model, f"{path.name} ({', '.join(f'{k}={v}' for k, v in meta.hparams.items() if k not in ('lr', 'batch_size'))})"
    torch.manual_seed(0)
    return registry.create(key, (784,), DataKind.BINARY_IMAGE, **hp), "untrained, default size"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--weights", default=str(ROOT / "resources" / "weights"))
    ap.add_argument("--only", nargs="*")
    add_write_flag(ap)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    digits = np.load(ROOT / "resources" / "digits" / "valid_sample.npz")
    x = torch.from_numpy(np.unpackbits(digits["images"][:1], axis=1)[:, :784].astype(np.float32))
    known = torch.zeros_like(x, dtype=torch.bool)
    known[:, :392] = True
    rows = []
    for key, fname, hp in MODELS:
        if args.only and key not in args.only:
            continue
        model, what = _load(key, fname, hp, Path(args.weights))
        model.eval()
        # the first call also builds what a model caches (MADE's sorted weight tables)
        first = _timed(lambda: model.complete(x, known, args.n, torch.Generator().manual_seed(0)))
        ours = min(_timed(lambda: model.complete(x, known, args.n, torch.Generator().manual_seed(0)))
                   for _ in range(args.repeats))
        naive = _timed(lambda: naive_complete(model, x, known, args.n, torch.Generator().manual_seed(0)))
        rows.append((model.info.name, what, first, ours, naive))
        print(f"{model.info.name}: {1000 * ours:.1f} ms, naive {1000 * naive:.0f} ms, {naive / ours:.1f}x", flush=True)
    lines = [
        "## Completion speed (issue 4)",
        "",
        f"`python -m bench.completion_speed --threads {args.threads}` on {machine()}, {args.threads} torch "
        f"thread(s). The bottom half (392 pixels) of a validation digit, {args.n} candidates; ours best of "
        f"{args.repeats} after a first call (shown apart: it builds what a model caches, such as MADE's "
        "weight tables sorted by hidden-unit degree), the naive loop (a full forward pass per pixel) once, "
        "in the same run. "
        "Goals: NADE and MADE <= 30 ms and >= 10x; PixelCNN faster than naive.",
        "",
        "| model | weights | first call (ms) | ours (ms) | naive (ms) | speed-up |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, what, first, ours, naive in rows:
        lines.append(f"| {name} | {what} | {1000 * first:.1f} | {1000 * ours:.1f} | {1000 * naive:.0f} "
                     f"| {naive / ours:.1f}x |")
    if not args.no_write:
        write_section("completion_speed", "\n".join(lines))
    print("\n".join(lines))


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
