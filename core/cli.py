"""Headless command line: ``train`` and ``eval`` (``--self-test`` lives in ``gui.selftest``)."""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import time
from pathlib import Path
from typing import Sequence, TextIO

import numpy as np

from core import data as datasets
from core import registry
from core.checkpoint import (CheckpointError, checkpoint_payload, jsonable, load_checkpoint, save_checkpoint,
                             write_checkpoint)
from core.data import DataError, DownloadError
from core.device import select_device
from core.evaluation import evaluate
from core.policy import PolicyRun, TrainingPolicy
from core.protocol import DataKind, Likelihood
from core.readouts import nll_percentiles
from core.training import Event, Snapshot, TrainConfig, Trainer


class CliError(Exception):
    pass


class ArgumentParser(argparse.ArgumentParser):
    """argparse with one clear line on a bad argument (``error: ...``, exit 2), not the usage."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


def _number(kind: type, low: float, what: str, *, inclusive: bool = True):
    """An argparse type: a finite ``kind`` number >= ``low`` (> ``low`` when not ``inclusive``)."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not math.isfinite(value) or value < low or (not inclusive and value == low):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    parse.__name__ = what  # argparse names the type in its messages
    return parse


POSITIVE_INT = _number(int, 1, "a whole number, at least 1")
COUNT = _number(int, 0, "a whole number, at least 0")
POSITIVE = _number(float, 0.0, "a number above 0", inclusive=False)


def _existing_file(*suffixes: str):
    """An argparse type: the path of an existing file, ending in one of ``suffixes`` (if given)."""

    def parse(text: str) -> str:
        path = Path(text)
        if suffixes and path.suffix.lower() not in suffixes:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {' or '.join(suffixes)} file")
        if not path.is_file():
            raise argparse.ArgumentTypeError(f"no such file: {text!r}" if not path.exists()
                                             else f"{text!r} is not a file")
        return text

    parse.__name__ = "file"
    return parse


def _new_file(*suffixes: str):
    """An argparse type: a path to write, ending in one of ``suffixes``."""

    def parse(text: str) -> str:
        if Path(text).suffix.lower() not in suffixes:
            raise argparse.ArgumentTypeError(f"{text!r}: the file must end in {' or '.join(suffixes)}")
        if Path(text).is_dir():
            raise argparse.ArgumentTypeError(f"{text!r} is a folder, not a file")
        return text

    parse.__name__ = "file"
    return parse


def _device(text: str) -> str:
    pref = text.lower()
    if pref not in ("auto", "cpu") and not re.fullmatch(r"cuda(:\d+)?", pref):
        raise argparse.ArgumentTypeError(f"unknown device {text!r}: use auto, cpu, cuda or cuda:N")
    return pref


def _warn_device(preference: str | None):
    """The device ``select_device`` picks; says on stderr when the one asked for is not used."""
    device, message = select_device(preference)
    if message:
        sys.stderr.write(f"warning: {message}\n")
    return device


def _load_data(spec: str, data_path: str | None = None) -> datasets.Dataset:
    """``spec`` is a built-in data set name (read from ``data_path`` when given: a file or
    folder) or a path to an .npz with ``train`` and ``valid``."""
    if spec in datasets.DATASETS:
        if data_path is not None and not Path(data_path).exists():
            raise CliError(f"--data-path: {data_path} does not exist")
        return datasets.load(spec, data_path, progress=_download_progress)
    if data_path is not None:
        raise CliError(f"--data-path goes with a data set name ({', '.join(datasets.DATASETS)}), not {spec!r}")
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

    def update(self, s: Snapshot) -> None:
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
        metrics = " ".join(f"{k} {v:.3f}" for k, v in (s.nll.metrics() if s.nll else {}).items())
        line = (f"[{'#' * fill}{'-' * (self.width - fill)}] {100 * frac:5.1f}% step {s.step}/{self.total} "
                f"epoch {s.epoch:.2f} loss {s.loss:.3f} {metrics} {s.steps_per_s:.0f} steps/s "
                f"ETA {eta:.0f}s")
        self.stream.write(("\r" + line) if self.tty else (line + "\n"))
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")


def _make_model(args: argparse.Namespace, info, ds: datasets.Dataset, hp: dict) -> tuple:
    """A new model, or with ``--init`` the checkpoint's (fine-tuning: its weights and
    hyperparameters, with the ones given here on top, none of them structural) and its record."""
    if not args.init:
        return registry.create(args.family, ds.shape, ds.kind, **hp), None
    model, meta = load_checkpoint(args.init, family=args.family)
    init_record = {"checkpoint": str(args.init), "training": meta.training, "valid": meta.raw.get("valid")}
    merged = info.validate({**meta.hparams, **hp})
    changed = info.structure_changes(model.hparams, merged)
    if changed:
        raise CliError(f"--init: {', '.join(changed)} shape(s) the model and cannot change when fine-tuning")
    model.hparams.update(merged)
    if tuple(model.data_shape) != tuple(ds.shape):
        raise CliError(f"--init {args.init} was trained on data of shape {model.data_shape}, "
                       f"--data has {ds.shape}")
    return model, init_record


def cmd_train(args: argparse.Namespace) -> int:
    info = registry.info(args.family)
    ds = _load_data(args.data or _default_data(info), args.data_path)
    hp = _parse_hparams(args.hp)
    if args.lr is not None:
        hp["lr"] = args.lr
    if args.batch_size is not None:
        hp["batch_size"] = args.batch_size
    if args.num_threads:
        import torch

        torch.set_num_threads(args.num_threads)
    model, init_record = _make_model(args, info, ds, hp)
    out = Path(args.out or f"runs/{args.family}-{ds.name}.safetensors")
    keep_best = args.keep_best and info.likelihood is not Likelihood.NONE
    cfg = TrainConfig(epochs=args.epochs, max_steps=args.max_steps, seed=args.seed, device=args.device,
                             eval_every=args.eval_every, eval_size=args.eval_size, visuals_every_s=None,
                             checkpoint_path=None if keep_best else out, checkpoint_every=args.checkpoint_every,
                             num_threads=args.num_threads)
    trainer = Trainer(model, ds, cfg)
    base_lr = float(model.hparams["lr"])
    policy = TrainingPolicy(schedule=args.schedule, warmup=args.warmup, keep_best=keep_best,
                            patience=args.patience if keep_best else 0)
    run = PolicyRun(trainer, policy, base_lr, best_path=out)
    bar = ProgressBar(trainer.total_steps)
    t0 = time.perf_counter()
    last = None
    for snap in run.run():
        if snap.message:
            sys.stderr.write(("\n" if bar.tty else "") + snap.message + "\n")
        if snap.event == Event.NONFINITE:
            bar.close()
            if not keep_best:
                trainer.save(out)
            raise CliError(f"training stopped: {snap.message}")
        bar.update(snap)
        last = snap
    if run.stop_reason:
        sys.stderr.write(("\n" if bar.tty else "") + run.stop_reason + "\n")
    bar.close()
    wall = time.perf_counter() - t0
    result = {"family": args.family, "data": ds.name, "checkpoint": str(out), "steps": trainer.step,
              "epochs": trainer.step / trainer.steps_per_epoch, "wall_s": round(wall, 2),
              "device": last.device if last else str(trainer.device),
              "final_loss": last.loss if last else None}
    if keep_best:
        if run.best_step == 0:
            trainer.save(out)
        model, _ = load_checkpoint(out, device=trainer.device)
        result["best_step"] = run.best_step
    if info.likelihood is not Likelihood.NONE:
        result["valid"] = evaluate(model, ds.valid, labels=ds.valid_labels if info.conditional else None)
    if args.record:
        # the checkpoint describes how it was made (the model card): command, time, score
        extra = {"training": {"command": "python main.py " + " ".join(args.argv), "wall_s": round(wall, 1),
                              "device": result["device"], "steps": trainer.step, "best_step": result.get("best_step"),
                              "threads": args.num_threads, "cpu_count": os.cpu_count()},
                 "valid": result.get("valid")}
        if args.init:  # fine-tuned: how the starting weights were made, too
            extra["training"]["init"] = init_record
        if info.likelihood is not Likelihood.NONE and ds.kind is DataKind.BINARY_IMAGE:
            extra["valid_nll_percentiles"] = nll_percentiles(model, ds.valid).tolist()
        metrics = trainer.checkpoint_metrics()
        model.hparams["lr"] = base_lr  # the schedule's last value is no start for fine-tuning
        save_checkpoint(out, model, data=ds, step=result.get("best_step") or trainer.step,
                               epoch=(result.get("best_step") or trainer.step) / trainer.steps_per_epoch,
                               metrics=metrics, extra=extra)
    print(json.dumps(jsonable(result)))
    return 0


def cmd_mixture(args: argparse.Namespace) -> int:
    """Assemble a MADE mixture from MADE checkpoints trained separately (what fits together is
    the mixture's to say: ``MADEMixture.assemble``), score it on the validation split and write
    it, with the members' records."""
    import torch

    from core.models.made_mixture import MADEMixture

    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    t0 = time.perf_counter()
    if Path(args.out).suffix != ".safetensors":
        raise CliError(f"--out: checkpoint files end in .safetensors, not {Path(args.out).suffix or '(nothing)'}")
    loaded = [(path, *load_checkpoint(path, family="made")) for path in args.members]
    mix, order = MADEMixture.assemble([(path, model) for path, model, _ in loaded])
    loaded = [loaded[i] for i in order]  # by seed, as in the mixture
    seeds = [int(m.hparams["seed"]) for _, m, _ in loaded]
    ds = _load_data(args.data, args.data_path)
    if tuple(ds.shape) != tuple(mix.data_shape):
        raise CliError(f"the members were trained on data of shape {mix.data_shape}, --data has {ds.shape}")
    if ds.kind not in mix.info.data_kinds:
        raise CliError(f"{mix.info.name} does not accept {ds.kind.value} data")
    if args.half:  # what a float16 file holds, so the score is the stored weights'
        with torch.no_grad():
            for w in mix.parameters():
                w.copy_(w.half().float())
    result = {"family": "made-mixture", "checkpoint": str(args.out), "members": [str(p) for p, _, _ in loaded],
              "seeds": seeds, "valid": evaluate(mix, ds.valid),
              "member_valid": [meta.valid.nats if meta.valid else None for _, _, meta in loaded]}
    extra = {}
    if args.record:
        extra = {"training": {"command": "python main.py " + " ".join(args.argv),
                              "wall_s": round(time.perf_counter() - t0, 1), "device": "cpu",
                              "steps": sum(meta.step for _, _, meta in loaded),
                              "threads": args.num_threads, "cpu_count": os.cpu_count(),
                              "members": [{"checkpoint": str(p), "training": meta.training,
                                           "valid": meta.raw.get("valid")} for p, _, meta in loaded]},
                 "valid": result["valid"], "valid_nll_percentiles": nll_percentiles(mix, ds.valid).tolist()}
    tensors, meta = checkpoint_payload(mix, data=ds, metrics=result["valid"].metrics(),
                                              extra=extra)
    if args.half:
        tensors = {k: v.half() if v.is_floating_point() else v for k, v in tensors.items()}
    write_checkpoint(args.out, tensors, meta)
    print(json.dumps(jsonable(result)))
    return 0


def _default_data(info) -> str:
    if info.conditional:  # only a labelled set will do, even one that must be fetched
        for name, d in datasets.DATASETS.items():
            if d.kind in info.data_kinds and d.labelled:
                return name
    for name, d in datasets.DATASETS.items():
        if d.kind in info.data_kinds and not d.needs_file:
            return name
    raise CliError(f"{info.name} needs --data")


def cmd_eval(args: argparse.Namespace) -> int:
    model, meta = load_checkpoint(args.checkpoint, device=_warn_device(args.device))
    key = args.key
    if model.info.conditional and key is None:  # images and labels side by side: the images
        key = _other_key(args.data, args.labels_key)
    x = datasets.load_npz_array(args.data, key)
    labels = None
    if model.info.conditional:
        labels = _eval_labels(args, len(x), model.info.name)
    if model.info.data_kinds == (DataKind.BINARY_IMAGE,):
        x = datasets.check_binary_images(x, str(args.data), dim=model.dim)
    elif x.dtype.kind == "f" and not np.isfinite(x).all():
        raise CliError(f"{args.data} contains NaN or infinite values")
    bound = _set_importance_samples(model, args.k)
    result = evaluate(model, x, batch_size=args.batch_size, labels=labels).record()
    result.update({"checkpoint": str(args.checkpoint), "data": str(args.data), "key": key,
                   "trained_steps": meta.step, **bound})
    for w in meta.warnings:
        sys.stderr.write(f"warning: {w}\n")
    print(json.dumps(result))
    return 0


def _set_importance_samples(model, k: int | None) -> dict:
    """A latent-variable model's bound is the IWAE bound with ``k`` importance samples (default:
    its own ``eval_k``); what the output says of it."""
    if "eval_k" not in model.hparams:
        if k is not None:
            raise CliError(f"--k sets the importance samples of a latent-variable model's bound; "
                           f"{model.info.name}'s likelihood is {model.info.likelihood.value}")
        return {}
    if k is not None:
        if k < 1:
            raise CliError(f"--k must be at least 1, got {k}")
        model.hparams["eval_k"] = int(k)
    k = int(model.hparams["eval_k"])
    return {"bound": f"IWAE bound with k={k} importance samples (a lower bound on log p(x))", "k": k}


def _other_key(path: str, labels_key: str) -> str | None:
    """The one array of an .npz besides ``labels_key``; None (let the loader explain) otherwise."""
    try:
        with np.load(path, allow_pickle=False) as z:
            others = [k for k in z.files if k != labels_key]
    except Exception:  # not an .npz, unreadable...: load_npz_array says what
        return None
    return others[0] if len(others) == 1 else None


def _eval_labels(args: argparse.Namespace, n: int, name: str) -> np.ndarray:
    """The labels a class-conditional checkpoint is scored with: the .npz's ``--labels-key``
    array, n whole numbers (their range is the model's to check)."""
    try:
        labels = datasets.load_npz_array(args.data, args.labels_key)
    except DataError as exc:
        raise CliError(f"{name} is class-conditional: it is scored given each example's label, read from "
                       f"the array {args.labels_key!r} of {args.data} (choose it with --labels-key): {exc}") from None
    if labels.ndim != 1 or len(labels) != n:
        raise CliError(f"{args.data}[{args.labels_key}]: expected {n} labels, one per example, got shape {labels.shape}")
    if labels.dtype.kind not in "iu":
        raise CliError(f"{args.data}[{args.labels_key}]: labels must be integers, got dtype {labels.dtype}")
    return labels.astype(np.int64)


def build_parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="main.py", description="Train, watch and compare generative models.")
    p.add_argument("--self-test", action="store_true",
                   help="train a few steps of a small model, render one frame offscreen, exit 0 if all worked")
    sub = p.add_subparsers(dest="command")
    t = sub.add_parser("train", help="train a model headless, with a progress bar")
    t.add_argument("family", help="model family (see `list`)")
    t.add_argument("--data", help="data set name or an .npz file with 'train' and 'valid' arrays")
    t.add_argument("--data-path", metavar="DIR",
                   help="where a named data set's files are (mnist_digits: the folder with the IDX files)")
    t.add_argument("--epochs", type=POSITIVE, default=1.0)
    t.add_argument("--max-steps", type=POSITIVE_INT)
    t.add_argument("--lr", type=POSITIVE)
    t.add_argument("--batch-size", type=POSITIVE_INT)
    t.add_argument("--hp", action="append", default=[], metavar="NAME=VALUE", help="a model hyperparameter")
    t.add_argument("--seed", type=COUNT, default=0)
    t.add_argument("--device", type=_device, help="auto, cpu or cuda (default: $GMS_DEVICE or auto)")
    t.add_argument("--eval-every", type=COUNT, default=500, help="steps between held-out evaluations (0: only at the end)")
    t.add_argument("--eval-size", type=POSITIVE_INT, default=1000)
    t.add_argument("--checkpoint-every", type=COUNT, default=0, help="steps between checkpoints (0: only at the end)")
    t.add_argument("--out", type=_new_file(".safetensors"), help="checkpoint path (.safetensors); default runs/FAMILY-DATA.safetensors")
    t.add_argument("--schedule", choices=("constant", "cosine"), default="constant",
                   help="learning-rate schedule after the warm-up")
    t.add_argument("--warmup", type=COUNT, default=0, help="steps of linear learning-rate warm-up")
    t.add_argument("--keep-best", action="store_true",
                   help="keep the weights with the best held-out NLL (early stopping), not the last ones")
    t.add_argument("--patience", type=COUNT, default=0,
                   help="with --keep-best: stop after this many evaluations without improvement")
    t.add_argument("--init", type=_existing_file(".safetensors"), help="a checkpoint of this family to start from (fine-tuning)")
    t.add_argument("--num-threads", type=POSITIVE_INT, help="torch threads (default: torch's choice)")
    t.add_argument("--record", action="store_true",
                   help="write the command, wall time, held-out NLL and its percentiles into the checkpoint")
    e = sub.add_parser("eval", help="score a checkpoint on a data file; prints one JSON object")
    e.add_argument("--checkpoint", required=True, type=_existing_file(".safetensors"))
    e.add_argument("--data", required=True, type=_existing_file(".npz"), help=".npz file")
    e.add_argument("--key", help="array in the .npz (default: its only array)")
    e.add_argument("--labels-key", default="labels",
                   help="class-conditional models: the array of labels in the .npz (default: labels)")
    e.add_argument("--batch-size", type=POSITIVE_INT, default=1000)
    e.add_argument("--k", type=POSITIVE_INT, help="latent-variable models: importance samples of the IWAE bound "
                                        "(default: the model's eval_k)")
    e.add_argument("--device", type=_device, help="auto, cpu or cuda (default: $GMS_DEVICE or auto)")
    m = sub.add_parser("mixture", help="assemble a MADE mixture from one-mask MADE checkpoints trained separately")
    m.add_argument("members", nargs="+", type=_existing_file(".safetensors"), help="checkpoints of one-mask raster MADEs with consecutive mask seeds")
    m.add_argument("--data", required=True, help="data set name or .npz (its 'valid' split scores the mixture)")
    m.add_argument("--data-path", metavar="DIR")
    m.add_argument("--out", required=True, type=_new_file(".safetensors"), help="the mixture's checkpoint (.safetensors)")
    m.add_argument("--half", action="store_true", help="store the weights as float16 (half the file; scored as stored)")
    m.add_argument("--num-threads", type=POSITIVE_INT)
    m.add_argument("--record", action="store_true", help="write the command, the members' records and the score")
    c = sub.add_parser("classifier", help="train the digit classifier that scores image models' samples")
    c.add_argument("--data-path", metavar="DIR", help="the folder with the MNIST t10k IDX files (mnist_digits)")
    c.add_argument("--epochs", type=POSITIVE_INT, default=30)
    c.add_argument("--lr", type=POSITIVE, default=1e-3)
    c.add_argument("--seed", type=COUNT, default=0)
    c.add_argument("--num-threads", type=POSITIVE_INT)
    c.add_argument("--out", required=True, type=_new_file(".safetensors"), help="the classifier's checkpoint (.safetensors)")
    c.add_argument("--record", action="store_true", help="write the command, wall time and accuracy into it")
    sub.add_parser("list", help="list the model families and data sets")
    return p


def cmd_classifier(args: argparse.Namespace) -> int:
    """Train the digit classifier on the labelled digits (held-out accuracy after every epoch)."""
    import torch

    from core.classifier import DigitClassifier, save_classifier, train_classifier

    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    if args.epochs < 1:
        raise CliError(f"--epochs must be at least 1, got {args.epochs}")
    ds = _load_data("mnist_digits", args.data_path)
    model, t0, last = DigitClassifier(), time.perf_counter(), None
    for p in train_classifier(model, ds.train, ds.train_labels, ds.valid, ds.valid_labels,
                              epochs=args.epochs, lr=args.lr, seed=args.seed):
        sys.stderr.write(f"epoch {p.epoch}/{args.epochs} loss {p.loss:.4f} held-out accuracy "
                         f"{p.valid_accuracy:.4f} ({p.elapsed_s:.0f} s)\n")
        last = p
    result = {"checkpoint": str(args.out), "valid_accuracy": last.valid_accuracy, "n_valid": len(ds.valid),
              "n_train": len(ds.train), "epochs": args.epochs, "wall_s": round(time.perf_counter() - t0, 1)}
    extra = {"valid": {"accuracy": last.valid_accuracy, "n": len(ds.valid)}, "data": {"name": ds.name}}
    if args.record:
        extra["training"] = {"command": "python main.py " + " ".join(args.argv), "wall_s": result["wall_s"],
                             "device": "cpu", "steps": last.step, "threads": args.num_threads,
                             "cpu_count": os.cpu_count()}
    save_classifier(args.out, model, extra)
    print(json.dumps(result))
    return 0


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
    """Run one command; returns the exit status (2, with one ``error:`` line on stderr, for any
    bad argument: argparse's own errors included)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        args.argv = list(sys.argv[1:] if argv is None else argv)
        if args.self_test:  # main.py runs `--self-test` alone (it needs the gui)
            parser.error("--self-test takes no other arguments")
        if args.command is None:
            parser.error("choose a command: train, eval, mixture, classifier or list")
    except SystemExit as exc:  # --help (0) or a bad argument (2, already said)
        return exc.code if isinstance(exc.code, int) else 2
    commands = {"train": cmd_train, "eval": cmd_eval, "mixture": cmd_mixture, "list": cmd_list,
                "classifier": cmd_classifier}
    try:
        return commands[args.command](args)
    except BrokenPipeError:  # output piped into `head` and the like: not an error
        sys.stdout = open(os.devnull, "w")
        return 0
    except (CliError, DataError, DownloadError, CheckpointError, KeyError, ValueError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        sys.stderr.write(f"error: {msg}\n")
        return 2
