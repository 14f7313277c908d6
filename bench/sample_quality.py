"""Likelihood next to sample quality, for every shipped image model, on the same data.

    python -m bench.sample_quality [--write] [--n 1000] [--iwae-k 5000] [--valid PATH] [--only NAMES]

The digit classifier (``resources/classifier``, trained by ``main.py classifier``) scores 1000
samples of every image model in ``resources/weights``: the share of each digit it reads
(coverage), and the Frechet distance between its 128 hidden features of the samples and of the
first 1000 validation digits of binarized MNIST (FID-style; see ``core.sample_quality``). For the
class-conditional models, 100 samples of each digit, and the share read as the digit asked for.
The VAEs' IWAE bound with ``--iwae-k`` samples on the whole validation split (10,000 digits) is
the likelihood column for them; the others' is their recorded exact NLL. As a yardstick, the
same classifier's distance between two disjoint sets of 1000 validation digits is on the first
line (what a perfect model would score with this many samples).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from bench.report import ROOT, add_write_flag, machine, write_section
from core.checkpoint import load_checkpoint
from core.classifier import load_classifier
from core.sample_quality import frechet_distance, score_samples

WEIGHTS = ROOT / "resources" / "weights"
CLASSIFIER = ROOT / "resources" / "classifier" / "digit-classifier.safetensors"
#: issue 10's goals
GAN_MIN_SHARE, CGAN_MIN_ACCURACY, VAE_GOAL = 0.05, 0.90, 89.5


def _samples(model, n: int, seed: int) -> tuple[np.ndarray, np.ndarray | None]:
    gen = torch.Generator().manual_seed(seed)
    if model.info.conditional:
        labels = torch.arange(n) % int(model.hparams["classes"])
        with torch.no_grad():
            x = torch.cat([model.sample(100, generator=gen, labels=labels[i:i + 100]) for i in range(0, n, 100)])
        return x.reshape(n, 784).cpu().numpy(), labels.numpy()
    with torch.no_grad():
        x = torch.cat([model.sample(min(100, n - i), generator=gen) for i in range(0, n, 100)])
    return x.reshape(n, 784).cpu().numpy(), None


def iwae_on_valid(model, valid: np.ndarray, k: int, batch: int = 50) -> float:
    torch.manual_seed(0)
    model.eval()
    total = 0.0
    with torch.no_grad():
        for i in range(0, len(valid), batch):
            total += float(model.iwae_bound(torch.from_numpy(valid[i:i + batch]).float(), k).double().sum())
    return -total / len(valid)


def run(args) -> list[dict]:
    clf, clf_meta = load_classifier(CLASSIFIER)
    valid = np.load(args.valid)["valid"]
    _, ref = clf.predict(valid[:1000])
    _, ref2 = clf.predict(valid[1000:2000])
    rows = [{"file": "(1000 other validation digits)", "family": "data", "frechet": frechet_distance(ref2, ref),
             "coverage": np.bincount(clf.predict(valid[1000:2000])[0], minlength=10) / 1000}]
    for path in sorted(WEIGHTS.glob("*.safetensors")):
        if args.only and path.stem not in args.only:
            continue
        model, meta = load_checkpoint(path)
        if "sample" not in model.capabilities() or model.dim != 784:
            continue
        t0 = time.perf_counter()
        x, asked = _samples(model, args.n, seed=0)
        rep = score_samples(clf, x, ref, asked)
        row = {"file": path.name, "family": model.info.key, "frechet": rep.frechet, "coverage": rep.coverage,
               "cond_acc": rep.conditional_accuracy, "sample_s": time.perf_counter() - t0,
               "nll": meta.valid.nats if meta.valid is not None else None, "bound": model.info.likelihood.value,
               "recorded_k": model.hparams.get("eval_k")}
        if model.info.key == "vae" and args.iwae_k:
            t0 = time.perf_counter()
            row["nll"] = iwae_on_valid(model, valid, args.iwae_k)
            row["iwae_k"], row["iwae_s"] = args.iwae_k, time.perf_counter() - t0
        rows.append(row)
        print(json.dumps({k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in row.items()}), flush=True)
    return rows


def report(rows: list[dict], args, clf_acc: float | None) -> str:
    lines = ["## Sample quality next to likelihood (issue 10)", "",
             f"`python -m bench.sample_quality{' --iwae-k ' + str(args.iwae_k) if args.iwae_k else ''}` on {machine()}. "
             f"The digit classifier reads {clf_acc:.1%} of its 1000 held-out labelled digits right. Frechet distance: "
             f"the classifier's 128 features of {args.n} samples against those of the first 1000 validation "
             "digits (lower is better). Coverage: the smallest share of any digit among the samples "
             "(0.100 is a uniform spread). NLL: nats on the validation split (a bound for the VAEs: IWAE with "
             "the k shown).", "",
             "| model | family | NLL (nats) | Frechet distance | digits found | smallest share | asked digit drawn |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        nll = "" if r.get("nll") is None else f"{r['nll']:.2f}"
        if r.get("iwae_k"):
            nll += f" (IWAE k={r['iwae_k']})"
        elif r.get("bound") == "lower_bound":
            nll += f" (IWAE k={r.get('recorded_k')}, as recorded)"
        cov = np.asarray(r["coverage"])
        acc = "" if r.get("cond_acc") is None else f"{r['cond_acc']:.1%}"
        lines.append(f"| `{r['file']}` | {r['family']} | {nll} | {r['frechet']:.2f} | {(cov > 0).sum()}/10 "
                     f"| {cov.min():.3f} | {acc} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    add_write_flag(ap)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--iwae-k", type=int, default=5000)
    ap.add_argument("--valid", default=str(ROOT.parent / "shared" / "data" / "binarized_mnist.npz"))
    ap.add_argument("--only", nargs="*")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = run(args)
    _, meta = load_classifier(CLASSIFIER)
    text = report(rows, args, (meta.raw.get("valid") or {}).get("accuracy"))
    if args.write:
        write_section("sample_quality", text)
    print(text)


if __name__ == "__main__":
    main()
