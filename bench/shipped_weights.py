"""The table of the weights that ship in resources/weights, from their own records.

    python -m bench.shipped_weights [--write]

Every shipped checkpoint was trained with ``python main.py train ... --record``, which writes
the command, wall time, threads, device and the held-out NLL (the whole validation split) into
the checkpoint and its JSON sidecar. This script only gathers them into BENCHMARKS.md, beside the
issue-4 goals (validation NLL, nats).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.report import ROOT, add_write_flag, write_section
from core.checkpoint import read_sidecar

#: issue 4's goals on the binarized MNIST validation split (nats), by file name
GOALS = {"fvsbn": 98.0, "nade": 89.5, "made": 89.5, "made-ensemble": 88.0, "made-mixture": 88.0, "pixelcnn": 86.0}


def rows(folder: Path = ROOT / "resources" / "weights") -> list[dict]:
    """One row per checkpoint in ``folder``, from its sidecar once checked against the checkpoint's
    header (CheckpointError when a sidecar is missing or disagrees: the table would be false)."""
    out = []
    for side in sorted(p.with_suffix(".json") for p in Path(folder).glob("*.safetensors")):
        meta = read_sidecar(side)
        training = meta.training or {}
        valid = meta.valid
        out.append({
            "file": side.with_suffix(".safetensors").name, "family": meta.family,
            "data": meta.data_name,
            "hparams": {k: v for k, v in meta.hparams.items() if k not in ("lr", "batch_size")},
            "command": training.get("command"), "wall_s": training.get("wall_s"),
            "threads": training.get("threads"), "device": training.get("device"),
            "steps": training.get("steps"), "best_step": training.get("best_step"),
            "nll": valid.nats if valid else None, "n": valid.n if valid else None, "goal": GOALS.get(side.stem),
            "chain": _chain(training),
        })
    return out


def _chain(training: dict) -> list[dict]:
    """The training records from the first run to this one (``--init`` fine-tuning nests them;
    a mixture's record holds its members' records, each a chain of its own)."""
    if not training:
        return []
    members = [r for m in training.get("members") or [] for r in _chain(m.get("training") or {})]
    return members + _chain((training.get("init") or {}).get("training") or {}) + [training]


def main() -> None:
    ap = argparse.ArgumentParser()
    add_write_flag(ap)
    args = ap.parse_args()
    lines = [
        "## Shipped weights",
        "",
        "`python -m bench.shipped_weights`: gathered from the records that `main.py train --record` wrote "
        "into each checkpoint in `resources/weights` (held-out NLL on the whole validation split, in nats; "
        "for the WaveNet, nats per 128-step sequence of the continuous density; for the conditional NADE, "
        "log p(x | digit) on the 1000 held-out digits of its own labelled set). Every one was trained on "
        "this project's CPU machine (2 cores shared with other jobs), one torch thread; no GPU was lent. "
        "A mixture's wall time is the sum of its members' runs (trained two at a time, one per core) and its "
        "assembly; its steps are its members' together.",
        "",
        "| file | data | valid NLL | goal | met | steps (best) | wall time | hyperparameters |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows():
        nll = "n/a" if r["nll"] is None else f"{r['nll']:.2f}"
        goal = "" if r["goal"] is None else f"<= {r['goal']:g}"
        met = "" if r["goal"] is None or r["nll"] is None else ("yes" if r["nll"] <= r["goal"] else "**no**")
        walls = [t.get("wall_s") for t in r["chain"]]
        wall = "n/a" if None in walls or not walls else f"{sum(walls) / 60:.1f} min"
        if len(walls) > 1:
            wall += f" ({len(walls)} runs)"
        hp = ", ".join(f"{k}={v}" for k, v in r["hparams"].items())
        steps = r["steps"] if r["best_step"] is None else f"{r['steps']} ({r['best_step']})"
        lines.append(f"| `{r['file']}` | {r['data']} | {nll} | {goal} | {met} | {steps} "
                     f"| {wall} | {hp} |")
    lines += ["", "Commands, exactly as recorded:", ""]
    for r in rows():
        cmds = [t.get("command") for t in r["chain"]] or [None]
        if r["family"] == "made-mixture":  # the members were trained side by side, then assembled
            lines.append(f"- `{r['file']}`: the members " + "; ".join(f"`{c}`" for c in cmds[:-1])
                         + f"; then `{cmds[-1]}`")
        else:
            lines.append(f"- `{r['file']}`: " + ", then ".join(f"`{c}`" for c in cmds))
    text = "\n".join(lines)
    if not args.no_write:
        write_section("shipped_weights", text)
    print(text)


if __name__ == "__main__":
    main()
