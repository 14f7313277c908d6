"""Headless command line: ``train`` and ``eval`` (``--self-test`` lives in ``gui.selftest``)."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Sequence, TextIO

import numpy as np

from core import data as datasets
from core import engine, registry
from core.data import DataError, DownloadError
from core.protocol import DataKind, Likelihood


class CliError(Exception):
    pass


def _load_data(spec: str) -> datasets.Dataset:
    """``spec`` is a built-in data set name or a path to an .npz with ``train`` and ``valid``."""
    if spec in datasets.DATASETS:
        return datasets.load(spec, progress=_download_progress)
    path = Path(spec)
    if not path.exists():
        raise CliError(f"--data: {spec!r} is neither a data set ({', '.join(datasets.DATASETS)}) nor a file")
    return datasets.binarized_mnist(path)


def _download_progress(done: int, total: int | None) -> None:
    if total:
        sys.stderr.write(f"\rdownloading: {done / 2**20:.1f} of {total / 2**20:.1f} MiB")
    else:
        sys.stderr.write(f"\rdownloading: {done / 2**20:.1f} MiB")
    sys.stderr.flush()


def _parse_hparams(items: Sequence[str]) -> dict[str, str]:
    out = {}
    for item in items:
        if "=" not in item:
            raise CliError(f"--hp takes NAME=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out


class ProgressBar:
    """A one-line progress bar on a terminal, plain lines elsewhere (every 10%)."""

    def __init__(self, total: int, stream: TextIO = sys.stderr, width: int = 30):
        self.total, self.stream, self.width = total, stream, width
        self.tty = stream.isatty()
        self._last = -1.0
        self._last_decile = -1

    def update(self, s: engine.Snapshot) -> None:
        now = time.perf_counter()
        frac = s.step / max(1, self.total)
        decile = int(frac * 10)
        if self.tty and now - self._last < 0.1 and s.step < self.total:
            return
        if not self.tty and decile == self._last_decile and s.step < self.total:
            return
        self._last, self._last_decile = now, decile
        fill = int(frac * self.width)
        eta = (self.total - s.step) / s.steps_per_s if s.steps_per_s > 0 else math.inf
        metrics = " ".join(f"{k} {v:.3f}" for k, v in s.metrics.items() if k.startswith("valid_"))
        line = (f"[{'#' * fill}{'-' * (self.width - fill)}] {100 * frac:5.1f}% step {s.step}/{self.total} "
                f"epoch {s.epoch:.2f} loss {s.loss:.3f} {metrics} {s.steps_per_s:.0f} steps/s "
                f"ETA {eta:.0f}s")
        self.stream.write(("\r" + line) if self.tty else (line + "\n"))
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")


def cmd_train(args: argparse.Namespace) -> int:
    info = registry.info(args.family)
    ds = _load_data(args.data or _default_data(info))
    hp = _parse_hparams(args.hp)
    if args.lr is not None:
        hp["lr"] = args.lr
    if args.batch_size is not None:
        hp["batch_size"] = args.batch_size
    model = registry.create(args.family, ds.shape, ds.kind, **hp)
    out = Path(args.out or f"runs/{args.family}-{ds.name}.safetensors")
    cfg = engine.TrainConfig(epochs=args.epochs, max_steps=args.max_steps, seed=args.seed, device=args.device,
                             eval_every=args.eval_every, eval_size=args.eval_size, visuals_every_s=None,
                             checkpoint_path=out, checkpoint_every=args.checkpoint_every)
    trainer = engine.Trainer(model, ds, cfg)
    bar = ProgressBar(trainer.total_steps)
    t0 = time.perf_counter()
    last = None
    for snap in trainer.run():
        if snap.message:
            sys.stderr.write(("\n" if bar.tty else "") + snap.message + "\n")
        if snap.event == "nonfinite":
            bar.close()
            trainer.save(out)
            raise CliError(f"training stopped: {snap.message}")
        bar.update(snap)
        last = snap
    bar.close()
    wall = time.perf_counter() - t0
    result = {"family": args.family, "data": ds.name, "checkpoint": str(out), "steps": trainer.step,
              "epochs": trainer.step / trainer.steps_per_epoch, "wall_s": round(wall, 2),
              "device": last.device if last else str(trainer.device),
              "final_loss": last.loss if last else None}
    if info.likelihood is not Likelihood.NONE:
        result["valid"] = engine.evaluate(model, ds.valid)
    print(json.dumps(engine._jsonable(result)))
    return 0


def _default_data(info) -> str:
    for name, d in datasets.DATASETS.items():
        if d.kind in info.data_kinds and not d.needs_file:
            return name
    raise CliError(f"{info.name} needs --data")


def cmd_eval(args: argparse.Namespace) -> int:
    model, meta = engine.load_checkpoint(args.checkpoint, device=engine.select_device(args.device)[0])
    x = datasets.load_npz_array(args.data, args.key)
    if model.info.data_kinds == (DataKind.BINARY_IMAGE,):
        x = datasets.check_binary_images(x, str(args.data), dim=model.dim)
    elif x.dtype.kind == "f" and not np.isfinite(x).all():
        raise CliError(f"{args.data} contains NaN or infinite values")
    result = engine.evaluate(model, x, batch_size=args.batch_size)
    result.update({"checkpoint": str(args.checkpoint), "data": str(args.data), "key": args.key,
                   "trained_steps": meta.get("step")})
    for w in meta.get("warnings", []):
        sys.stderr.write(f"warning: {w}\n")
    print(json.dumps(result))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="genmodel-sandbox", description="Train, watch and compare generative models.")
    p.add_argument("--self-test", action="store_true",
                   help="train a few steps of a small model, render one frame offscreen, exit 0 if all worked")
    sub = p.add_subparsers(dest="command")
    t = sub.add_parser("train", help="train a model headless, with a progress bar")
    t.add_argument("family", help="model family (see `list`)")
    t.add_argument("--data", help="data set name or an .npz file with 'train' and 'valid' arrays")
    t.add_argument("--epochs", type=float, default=1.0)
    t.add_argument("--max-steps", type=int)
    t.add_argument("--lr", type=float)
    t.add_argument("--batch-size", type=int)
    t.add_argument("--hp", action="append", default=[], metavar="NAME=VALUE", help="a model hyperparameter")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", help="auto, cpu or cuda (default: $GMS_DEVICE or auto)")
    t.add_argument("--eval-every", type=int, default=500)
    t.add_argument("--eval-size", type=int, default=1000)
    t.add_argument("--checkpoint-every", type=int, default=0)
    t.add_argument("--out", help="checkpoint path (.safetensors); default runs/FAMILY-DATA.safetensors")
    e = sub.add_parser("eval", help="score a checkpoint on a data file; prints one JSON object")
    e.add_argument("--checkpoint", required=True)
    e.add_argument("--data", required=True, help=".npz file")
    e.add_argument("--key", help="array in the .npz (default: its only array)")
    e.add_argument("--batch-size", type=int, default=1000)
    e.add_argument("--device")
    sub.add_parser("list", help="list the model families and data sets")
    return p


def cmd_list(args: argparse.Namespace) -> int:
    for group, infos in registry.grouped().items():
        print(group)
        for i in infos:
            print(f"  {i.key:12s} {i.name}: likelihood {i.likelihood.value}; data "
                  f"{', '.join(k.value for k in i.data_kinds)}")
    print("data sets")
    for d in datasets.DATASETS.values():
        print(f"  {d.name:16s} {d.kind.value}: {d.description}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:  # (--self-test is handled by main.py, which needs the gui)
        parser.error("choose a command: train, eval or list")
    commands = {"train": cmd_train, "eval": cmd_eval, "list": cmd_list}
    try:
        return commands[args.command](args)
    except BrokenPipeError:  # output piped into `head` and the like: not an error
        sys.stdout = open(os.devnull, "w")
        return 0
    except (CliError, DataError, DownloadError, engine.CheckpointError, KeyError, ValueError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        sys.stderr.write(f"error: {msg}\n")
        return 2
