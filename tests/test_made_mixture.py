"""The MADE mixture: separately weighted one-mask MADEs averaged in likelihood; its members are
the MADEs of the same seeds; completion follows the mixture's conditional; ``main.py mixture``
assembles one from separately trained checkpoints and refuses members that do not fit."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
import torch

from core import cli
from core import data as datasets
from core import registry
from core.evaluation import evaluate
from core.checkpoint import load_checkpoint, save_checkpoint
from core.training import TrainConfig, Trainer


def _all_binary(d: int) -> torch.Tensor:
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=d)))


def _randomise(model, seed: int, scale: float = 1.0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(scale * torch.randn(p.shape, generator=g))
    return model.eval()


def _mixture(d: int, init: int = 0, scale: float = 1.0, **hp):
    """A mixture with random weights (drawn with seed ``init``), so conditionals are far from 1/2."""
    return _randomise(registry.create("made-mixture", (d,), **{"hidden": 8, "members": 3, **hp}), init, scale)


def test_members_are_the_mades_of_their_seeds_and_the_likelihood_their_mean():
    mix = _mixture(6, init=1, members=3, direct=True, seed=4)
    x = _all_binary(6)
    singles = []
    for k, member in enumerate(mix.members):
        alone = registry.create("made", (6,), hidden=8, seed=4 + k, direct=True)
        assert torch.equal(alone.orders, member.orders) and torch.equal(alone.degrees0, member.degrees0)
        alone.load_state_dict(member.state_dict())
        singles.append(alone.log_prob(x))
    singles = torch.stack(singles)
    torch.testing.assert_close(mix.log_prob(x), torch.logsumexp(singles, 0) - math.log(3), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(mix.log_prob(x), singles[0])  # the members differ
    assert mix.log_prob(x).double().exp().sum().item() == pytest.approx(1.0, abs=1e-5)
    # the members' connectivities differ (their own seeds)
    assert not torch.equal(mix.members[0].degrees0, mix.members[1].degrees0)


def test_completion_draws_from_the_mixtures_conditional_with_every_candidate_at_once():
    mix = _mixture(4, init=2, hidden=6, members=3)
    allx = _all_binary(4)
    joint = mix.log_prob(allx).double().exp().reshape(4, 4)  # rows (x0, x1), columns (x2, x3)
    first = mix.members[0].log_prob(allx).double().exp().reshape(4, 4)
    x = torch.tensor([[0.0, 1.0, 0.0, 0.0]])
    known = torch.tensor([[True, True, False, False]])
    want = joint[1] / joint[1].sum()
    assert (first[1] / first[1].sum() - want).abs().max().item() > 0.1  # the check has teeth
    out = mix.complete(x, known, n=8000, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out[:, :2], x[:, :2].expand(len(out), -1))
    freq = torch.bincount((out[:, 2] * 2 + out[:, 3]).long(), minlength=4).double() / len(out)
    assert (freq - want).abs().max().item() < 0.025, (freq, want)
    steps = list(mix.complete_steps(x, known, n=8000, generator=torch.Generator().manual_seed(0)))
    # the members' candidates advance together: one step per unknown pixel, each for every row
    assert [s.pixel for s in steps] == [2, 3] and steps[-1].done == steps[-1].total == 2
    assert torch.isfinite(steps[0].p).all()
    torch.testing.assert_close(steps[-1].x, out)  # the same draws as complete()


def test_mirrored_members_complete_from_the_mixtures_conditional():
    """Members reading rows right to left still put the top row first: the posterior over
    members given it is exact, and each member draws the rest in its own ordering."""
    mix = registry.create("made-mixture", (2, 3), hidden=6, members=2, mirror=1, direct=True)
    _randomise(mix, 5, scale=1.2)
    assert mix.members[0].orders[0].tolist() == [1, 2, 3, 4, 5, 6]
    assert mix.members[1].orders[0].tolist() == [3, 2, 1, 6, 5, 4]
    allx = _all_binary(6).reshape(-1, 2, 3)
    joint = mix.log_prob(allx).double().exp().reshape(8, 8)  # rows: the top row, columns: the bottom
    top = torch.tensor([1.0, 0.0, 1.0])
    code = int(top[0] * 4 + top[1] * 2 + top[2])
    want = joint[code] / joint[code].sum()
    x = torch.cat([top, torch.zeros(3)]).reshape(1, 2, 3)
    known = torch.tensor([[True] * 3 + [False] * 3]).reshape(1, 2, 3)
    out = mix.complete(x, known, n=12000, generator=torch.Generator().manual_seed(3))
    assert torch.equal(out[:, :3], top.expand(len(out), -1))
    bottom = (out[:, 3] * 4 + out[:, 4] * 2 + out[:, 5]).long()
    freq = torch.bincount(bottom, minlength=8).double() / len(out)
    assert (freq - want).abs().max().item() < 0.025, (freq, want)
    lone = [m.log_prob(allx).double().exp().reshape(8, 8)[code] for m in mix.members]
    assert min((p / p.sum() - want).abs().max().item() for p in lone) > 0.03  # neither member alone
    # the step-by-step path: the members' rows one ordering after the other, the same draws
    steps = list(mix.complete_steps(x, known, n=12000, generator=torch.Generator().manual_seed(3)))
    assert [s.pixel for s in steps] == [3, 4, 5, 5, 4, 3]
    assert steps[-1].done == steps[-1].total == 6
    torch.testing.assert_close(steps[-1].x, out)


def test_sample_frequencies_match_the_mixture():
    mix = _mixture(3, init=3, scale=1.5, members=2)
    s = mix.sample(6000, generator=torch.Generator().manual_seed(1))
    assert s.shape == (6000, 3) and set(s.unique().tolist()) <= {0.0, 1.0}
    freq = torch.bincount((s[:, 0] * 4 + s[:, 1] * 2 + s[:, 2]).long(), minlength=8).double() / len(s)
    probs = mix.log_prob(_all_binary(3)).double().exp()
    assert (freq - probs).abs().max().item() < 0.03, (freq, probs)
    with pytest.raises(ValueError, match=">= 0"):
        mix.sample(-1)


def test_training_teaches_every_member_its_own_likelihood(tmp_path):
    torch.manual_seed(0)
    ds = datasets.load("bars", n=256)
    mix = registry.create("made-mixture", ds.shape, ds.kind, hidden=32, members=2, lr=0.01, batch_size=64)
    x = torch.from_numpy(ds.valid[:100]).float()
    before = mix.member_log_probs(x).mean(1)
    batch = torch.from_numpy(ds.train[:64]).float()
    assert mix.loss(batch).item() == pytest.approx(
        torch.stack([m.loss(batch) for m in mix.members]).mean().item(), rel=1e-6)
    cfg = TrainConfig(max_steps=12, eval_every=4, eval_size=100, visuals_every_s=None, device="cpu")
    snaps = list(Trainer(mix, ds, cfg).run())
    assert snaps[-1].event == "finished", snaps[-1].message
    after = mix.member_log_probs(x).mean(1)
    assert (after > before + 20).all(), (before, after)
    path = save_checkpoint(tmp_path / "mix.safetensors", mix)
    loaded, meta = load_checkpoint(path, family="made-mixture")
    assert meta.hparams["members"] == 2
    torch.testing.assert_close(loaded.log_prob(x), mix.log_prob(x))


def test_bad_inputs():
    mix = _mixture(6)
    with pytest.raises(ValueError, match="shape"):
        mix.log_prob(torch.zeros(2, 5))
    with pytest.raises(ValueError, match="at least 1"):
        mix.complete(torch.zeros(6), torch.zeros(6, dtype=torch.bool), n=0)
    with pytest.raises(ValueError, match="members"):
        registry.create("made-mixture", (6,), members=0)
    with pytest.raises(ValueError, match="mirror"):
        registry.create("made-mixture", (9,), members=2, mirror=3)
    full = torch.ones(6, dtype=torch.bool)  # nothing to draw
    assert list(mix.complete_steps(torch.ones(6), full, 2)) == []
    assert torch.equal(mix.complete(torch.ones(6), full, 2), torch.ones(2, 6))


# -- main.py mixture ---------------------------------------------------------------------------

def _member(tmp_path, name: str, capsys, *hp: str, seed: int = 0) -> str:
    out = tmp_path / f"{name}.safetensors"
    argv = ["train", "made", "--data", "bars", "--max-steps", "6", "--eval-every", "0", "--batch-size", "32",
            "--lr", "0.01", "--hp", "hidden=16", "--hp", f"seed={seed}", "--seed", str(seed), "--record",
            "--out", str(out)]
    for h in hp:
        argv += ["--hp", h]
    assert cli.main(argv) == 0, capsys.readouterr().err
    capsys.readouterr()
    return str(out)


def test_mixture_command_assembles_scores_and_records(tmp_path, capsys):
    a = _member(tmp_path, "a", capsys, seed=3)
    b = _member(tmp_path, "b", capsys, seed=2)
    out = tmp_path / "mix.safetensors"
    assert cli.main(["mixture", a, b, "--data", "bars", "--out", str(out), "--record", "--half"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["seeds"] == [2, 3]  # sorted by seed: member k has seed 2 + k
    mix, meta = load_checkpoint(out, family="made-mixture")
    assert meta.hparams["members"] == 2 and meta.hparams["seed"] == 2
    ds = datasets.load("bars")
    # scored as stored (float16 weights), and the record says what was scored
    got = evaluate(mix, ds.valid).nats
    assert got == pytest.approx(meta.valid.nats, rel=1e-5)
    members = [load_checkpoint(p)[0] for p in (b, a)]
    x = torch.from_numpy(ds.valid[:50]).float()
    lps = torch.stack([m.log_prob(x) for m in members])
    torch.testing.assert_close(mix.log_prob(x), torch.logsumexp(lps, 0) - math.log(2), atol=0.05, rtol=0)
    from safetensors import safe_open
    with safe_open(str(out), "pt") as f:
        assert f.get_tensor("members.0.out.weight").dtype == torch.float16
    training = meta.training
    assert training["command"].startswith("python main.py mixture ")
    assert [m["training"]["command"].startswith("python main.py train made") for m in training["members"]] == [True] * 2
    assert len(meta.raw["valid_nll_percentiles"]) == 101


def test_mixture_command_refuses_members_that_do_not_fit(tmp_path, capsys):
    a = _member(tmp_path, "a", capsys, seed=0)
    wide = _member(tmp_path, "wide", capsys, "hidden=20", seed=1)
    gap = _member(tmp_path, "gap", capsys, seed=2)
    agnostic = _member(tmp_path, "ag", capsys, "masks=2", "order_agnostic=true", seed=1)
    nade = tmp_path / "nade.safetensors"
    assert cli.main(["train", "nade", "--data", "bars", "--max-steps", "1", "--hp", "hidden=4",
                     "--out", str(nade)]) == 0
    capsys.readouterr()
    mirrored = _member(tmp_path, "mirrored", capsys, "mirror=true", seed=1)
    late = _member(tmp_path, "late", capsys, seed=2)
    out = tmp_path / "mix.safetensors"
    assert cli.main(["mixture", mirrored, a, "--data", "bars", "--out", str(out)]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["seeds"] == [0, 1]
    mix, meta = load_checkpoint(out)
    assert meta.hparams["mirror"] == 1 and mix.members[1].hparams["mirror"] and not mix.members[0].hparams["mirror"]
    out.unlink()
    for members, needle in [((a, wide), "hidden"), ((a, gap), "consecutive"), ((a, agnostic), "one-mask"),
                            ((a, mirrored, late), "highest seeds"),
                            ((a, str(nade)), "not 'made'"), ((a, str(tmp_path / "none.safetensors")), "no such file")]:
        assert cli.main(["mixture", *members, "--data", "bars", "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error:") and needle in err, (needle, err)
        assert not out.exists()
    assert cli.main(["mixture", a, "--data", "bars", "--out", str(tmp_path / "mix.pt")]) == 2
    assert "safetensors" in capsys.readouterr().err
    np.savez(tmp_path / "small.npz", train=np.zeros((4, 100), np.uint8), valid=np.zeros((4, 100), np.uint8))
    assert cli.main(["mixture", a, "--data", str(tmp_path / "small.npz"), "--out", str(out)]) == 2
    assert "shape" in capsys.readouterr().err
