"""Class-conditional NADE: exact per-class normalisation, the labels' effect, sampling and
completion given a class, training through the engine on labelled data, checkpoints and the
CLI's ``eval --labels-key``."""

from __future__ import annotations

import itertools
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from core import cli, registry
from core.data import Dataset
from core.checkpoint import load_checkpoint, save_checkpoint
from core.evaluation import evaluate
from core.training import TrainConfig, Trainer
from core.protocol import CompletionStep, DataKind


def _random_cnade(shape=(3, 3), hidden: int = 4, classes: int = 3, seed: int = 0, scale: float = 1.5):
    model = registry.create("cnade", shape, hidden=hidden, classes=classes)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(scale * torch.randn(p.shape, generator=g))
    return model


def _all_binary(d: int) -> torch.Tensor:
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=d)))


def _brute_force(model, x: torch.Tensor, y: int) -> torch.Tensor:
    """sum_d log p(x_d | x_<d, y), h_d = sigmoid(c + E_c[y] + W[:, :d] x_<d),
    p = sigmoid(b_d + E_b[y, d] + V_d . h_d), one pixel at a time in float64."""
    W, c, V, b = (p.detach().double() for p in (model.W, model.c, model.V, model.b))
    c = c + model.class_hidden.detach().double()[y]
    b = b + model.class_output.detach().double()[y]
    out = []
    for row in x.double().reshape(len(x), -1):
        total = 0.0
        for d in range(len(row)):
            p1 = torch.sigmoid(b[d] + V[d] @ torch.sigmoid(c + W[:, :d] @ row[:d])).item()
            total += math.log(p1 if row[d] == 1 else 1 - p1)
        out.append(total)
    return torch.tensor(out, dtype=torch.float64)


def _labelled(n_train=300, n_valid=100, seed=0) -> Dataset:
    """4x4 images: class 0 a random full row, class 1 a random full column, 5 % pixel noise."""
    rng = np.random.default_rng(seed)

    def draw(n):
        y = rng.integers(0, 2, n)
        x = np.zeros((n, 4, 4), np.uint8)
        for i in range(n):
            k = rng.integers(0, 4)
            if y[i] == 0:
                x[i, k, :] = 1
            else:
                x[i, :, k] = 1
        flip = rng.random(x.shape) < 0.05
        return (x ^ flip).reshape(n, 16).astype(np.uint8), y.astype(np.int64)

    xt, yt = draw(n_train)
    xv, yv = draw(n_valid)
    return Dataset("lines", DataKind.BINARY_IMAGE, xt, xv, (4, 4), {}, train_labels=yt, valid_labels=yv)


def _cfg(**kw):
    kw.setdefault("device", "cpu")
    kw.setdefault("visuals_every_s", None)
    return TrainConfig(**kw)


# --------------------------------------------------------------------------------------------
# the model
# --------------------------------------------------------------------------------------------


def test_registered_as_conditional():
    info = registry.info("cnade")
    assert info.name == "Conditional NADE" and info.conditional and info.likelihood.value == "exact"
    assert not registry.info("nade").conditional
    specs = {h.name: h for h in info.all_hparams()}
    assert specs["classes"].default == 10 and specs["hidden"].default == 500 and specs["lr"].live
    caps = registry.model_class("cnade").capabilities()
    assert {"log_prob", "sample", "complete", "complete_steps", "pixel_log_prob"} <= caps
    model = registry.create("cnade", (2, 2), hidden=3)
    assert model.class_hidden.shape == (10, 3) and model.class_output.shape == (10, 4)


def test_each_class_is_normalised_exactly():
    model = _random_cnade((3, 3), hidden=4, classes=3, seed=1)
    x = _all_binary(9).reshape(-1, 3, 3)
    for y in range(3):
        lp = model.log_prob(x, labels=torch.full((len(x),), y))
        assert torch.logsumexp(lp.double(), 0).item() == pytest.approx(0.0, abs=1e-5)
        some = x[::7]  # the formula, pixel by pixel, on a spread of the 512 images
        torch.testing.assert_close(lp[::7].double(), _brute_force(model, some, y), atol=1e-5, rtol=1e-5)
    # without labels: the uniform mixture of the classes, also normalised
    mix = model.log_prob(x).double()
    assert torch.logsumexp(mix, 0).item() == pytest.approx(0.0, abs=1e-5)
    per_class = torch.stack([model.log_prob(x, labels=y).double() for y in range(3)])
    torch.testing.assert_close(mix, torch.logsumexp(per_class, 0) - math.log(3), atol=1e-5, rtol=1e-5)


def test_pixel_log_prob_sums_to_log_prob():
    model = _random_cnade((3, 3), seed=2)
    x = torch.bernoulli(torch.full((12, 3, 3), 0.5), generator=torch.Generator().manual_seed(0))
    labels = torch.arange(12) % 3
    terms = model.pixel_log_prob(x, labels=labels)
    assert terms.shape == (12, 9) and (terms <= 0).all()
    torch.testing.assert_close(terms.sum(1), model.log_prob(x, labels=labels), atol=1e-5, rtol=1e-5)
    mix = model.pixel_log_prob(x)  # the mixture's chain-rule terms: logs of probabilities, too
    assert (mix <= 1e-6).all()
    torch.testing.assert_close(mix.sum(1), model.log_prob(x), atol=1e-5, rtol=1e-5)


def test_labels_change_the_distribution():
    model = _random_cnade((3, 3), seed=3)
    x = _all_binary(9).reshape(-1, 3, 3)
    p0 = model.log_prob(x, labels=0).exp()
    p1 = model.log_prob(x, labels=1).exp()
    assert 0.5 * (p0 - p1).abs().sum().item() > 0.05  # total variation between the classes


def test_zero_embeddings_are_a_plain_nade():
    model = _random_cnade((3, 3), classes=4, seed=4)
    nade = registry.create("nade", (3, 3), hidden=4)
    nade.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("class_")})
    with torch.no_grad():
        model.class_hidden.zero_()
        model.class_output.zero_()
    x = _all_binary(9).reshape(-1, 3, 3)
    for y in range(4):
        torch.testing.assert_close(model.log_prob(x, labels=y), nade.log_prob(x), atol=1e-5, rtol=1e-5)
    # a fresh model starts there: both embeddings at zero
    fresh = registry.create("cnade", (3, 3), hidden=4)
    assert not fresh.class_hidden.any() and not fresh.class_output.any()


def test_samples_follow_each_class():
    model = _random_cnade((2,), hidden=3, classes=2, seed=5, scale=2.0)
    states = _all_binary(2)
    g = torch.Generator().manual_seed(0)
    for y in range(2):
        s = model.sample(6000, generator=g, labels=y)
        assert s.shape == (6000, 2)
        counts = torch.stack([(s == st).all(1).float().mean() for st in states])
        torch.testing.assert_close(counts, model.log_prob(states, labels=y).exp(), atol=0.025, rtol=0)
    mixed = model.sample(6000, generator=g)  # no labels: the mixture
    counts = torch.stack([(mixed == st).all(1).float().mean() for st in states])
    torch.testing.assert_close(counts, model.log_prob(states).exp(), atol=0.025, rtol=0)


def test_complete_keeps_known_pixels_and_steps_agree():
    model = _random_cnade((3, 3), seed=6)
    x = torch.bernoulli(torch.full((2, 3, 3), 0.5), generator=torch.Generator().manual_seed(1))
    known = torch.zeros(2, 3, 3, dtype=torch.bool)
    known[0, 0] = True  # the first row of image 0
    known[1, :, 0] = True  # the first column of image 1
    out = model.complete(x, known, n=3, generator=torch.Generator().manual_seed(2), labels=[2, 0])
    assert out.shape == (6, 9)
    flat_x, flat_k = x.reshape(2, 9).repeat_interleave(3, 0), known.reshape(2, 9).repeat_interleave(3, 0)
    assert torch.equal(out[flat_k], flat_x[flat_k])
    steps = list(model.complete_steps(x, known, n=3, generator=torch.Generator().manual_seed(2), labels=[2, 0]))
    assert all(isinstance(s, CompletionStep) for s in steps)
    unknown_somewhere = (~flat_k).any(0)
    assert [s.pixel for s in steps] == torch.nonzero(unknown_somewhere).flatten().tolist()
    assert [s.done for s in steps] == list(range(1, len(steps) + 1)) and steps[-1].total == len(steps)
    assert all(((s.p >= 0) & (s.p <= 1)).all() for s in steps)
    assert torch.equal(steps[-1].x, out)  # same generator seed: the same draws


def test_completion_uses_the_class():
    # one pixel, whose probability depends only on the class: complete draws from that class
    model = registry.create("cnade", (1,), hidden=2, classes=2)
    with torch.no_grad():
        model.class_output.copy_(torch.tensor([[-6.0], [6.0]]))
    x, known = torch.zeros(1), torch.zeros(1, dtype=torch.bool)
    g = torch.Generator().manual_seed(0)
    assert model.complete(x, known, n=200, generator=g, labels=0).mean() < 0.05
    assert model.complete(x, known, n=200, generator=g, labels=1).mean() > 0.95


@pytest.mark.parametrize("bad", [[0, 3], [-1, 0], [0.5, 1.0], ["a", "b"], [0], [[0, 1]], [True, False]])
def test_bad_labels_are_value_errors(bad):
    model = _random_cnade((3, 3), classes=3)
    x = torch.zeros(2, 3, 3)
    for call in (lambda: model.log_prob(x, labels=bad), lambda: model.pixel_log_prob(x, labels=bad),
                 lambda: model.sample(2, labels=bad),
                 lambda: model.complete(x, torch.zeros_like(x, dtype=torch.bool), labels=bad)):
        with pytest.raises(ValueError, match="Conditional NADE"):
            call()


def test_training_needs_labels():
    model = _random_cnade((3, 3))
    model.configure_optimizer(1e-2)
    with pytest.raises(ValueError, match="needs labels"):
        model.train_step(torch.zeros(4, 3, 3))
    with pytest.raises(ValueError, match="needs labels"):
        model.loss(torch.zeros(4, 3, 3))
    out = model.train_step(torch.zeros(4, 3, 3), labels=[0, 1, 2, 0])
    assert math.isfinite(out["loss"])


# --------------------------------------------------------------------------------------------
# the engine
# --------------------------------------------------------------------------------------------


def test_trainer_learns_the_classes():
    torch.manual_seed(0)
    data = _labelled()
    model = registry.create("cnade", data.shape, data.kind, hidden=16, classes=2, lr=0.05, batch_size=32)
    snaps = list(Trainer(model, data, _cfg(max_steps=300, eval_every=20)).run())
    assert snaps[-1].event == "finished"
    nll = [s.nll.nats for s in snaps if s.event in ("eval", "finished")]
    assert nll[-1] < nll[0] - 1.0, nll
    # the labels carry information: the true class scores the held-out images better than the other
    x = torch.from_numpy(data.valid).float()
    y = torch.from_numpy(data.valid_labels)
    with torch.no_grad():
        right, wrong = model.log_prob(x, labels=y), model.log_prob(x, labels=1 - y)
    assert (right > wrong).float().mean() > 0.85 and (right - wrong).mean() > 1.0
    # and the trainer's metric is the conditional NLL of those labels
    assert nll[-1] == pytest.approx(-right.mean().item(), rel=1e-4)


def test_trainer_uses_the_batch_labels(monkeypatch):
    # every batch's labels are those of its own images (drawn with the same indices): over two
    # epochs the (image, label) pairs seen are the data set's pairs, each twice
    from collections import Counter

    data = _labelled(n_train=50, n_valid=10)
    model = registry.create("cnade", data.shape, hidden=4, classes=2, batch_size=8)
    seen = []
    step = type(model).train_step

    def spy(self, batch, labels=None):
        seen.extend((tuple(b.to(torch.uint8).tolist()), int(y)) for b, y in zip(batch, labels))
        return step(self, batch, labels=labels)

    monkeypatch.setattr(type(model), "train_step", spy)
    list(Trainer(model, data, _cfg(max_steps=14, eval_every=0)).run())  # 7 steps an epoch
    pairs = Counter((tuple(x.tolist()), int(y)) for x, y in zip(data.train, data.train_labels))
    assert Counter(seen) == Counter({k: 2 * v for k, v in pairs.items()})


def test_trainer_refuses_unlabelled_data():
    data = _labelled()
    data.train_labels = data.valid_labels = None
    model = registry.create("cnade", data.shape, hidden=4, classes=2)
    with pytest.raises(ValueError) as err:
        Trainer(model, data, _cfg(max_steps=1))
    msg = str(err.value)
    assert "Conditional NADE" in msg and "labels" in msg and "mnist_digits" in msg and "lines" in msg


def test_trainer_refuses_labels_of_the_wrong_length():
    data = _labelled()
    data.valid_labels = data.valid_labels[:-1]
    with pytest.raises(ValueError, match="labels"):
        Trainer(registry.create("cnade", data.shape, hidden=4, classes=2), data, _cfg(max_steps=1))
    data = _labelled()
    data.train_labels = data.train_labels + 1  # classes 1 and 2: one too many for the model
    with pytest.raises(ValueError, match="classes 0 .. 1"):
        Trainer(registry.create("cnade", data.shape, hidden=4, classes=2), data, _cfg(max_steps=1))


def test_visuals_show_the_classes_in_turn():
    data = _labelled(n_train=40, n_valid=10)
    model = registry.create("cnade", data.shape, hidden=4, classes=2)
    snaps = list(Trainer(model, data, _cfg(max_steps=2, visuals_every_s=0.0, visuals_n=7)).run())
    arrays = snaps[-1].arrays
    assert arrays.samples.shape == (7, 16) and arrays.samples.dtype == np.float32
    assert arrays.sample_labels.tolist() == [0, 1, 0, 1, 0, 1, 0]


def test_unconditional_models_ignore_labels_and_keep_their_behaviour():
    data = _labelled(n_train=64, n_valid=16)
    a = registry.create("nade", data.shape, hidden=4, batch_size=16)
    b = registry.create("nade", data.shape, hidden=4, batch_size=16)
    b.load_state_dict(a.state_dict())
    bare = Dataset("lines", data.kind, data.train, data.valid, data.image_shape)
    sa = list(Trainer(a, data, _cfg(max_steps=8, eval_every=4, seed=3)).run())
    sb = list(Trainer(b, bare, _cfg(max_steps=8, eval_every=4, seed=3)).run())
    assert [s.loss for s in sa] == [s.loss for s in sb]
    with pytest.raises(ValueError, match="not class-conditional"):
        evaluate(a, data.valid, labels=data.valid_labels)


def test_evaluate_with_and_without_labels():
    model = _random_cnade((16,), hidden=4, classes=2, scale=0.5)
    data = _labelled(n_train=10, n_valid=30)
    x = torch.from_numpy(data.valid).float()
    with_labels = evaluate(model, data.valid, labels=data.valid_labels)
    assert with_labels.labels is True and not with_labels.is_bound
    assert with_labels.nats == pytest.approx(
        -model.log_prob(x, labels=torch.from_numpy(data.valid_labels)).mean().item(), rel=1e-5)
    marginal = evaluate(model, data.valid)
    assert marginal.labels is False
    assert marginal.nats == pytest.approx(-model.log_prob(x).mean().item(), rel=1e-5)
    with pytest.raises(ValueError, match="labels"):
        evaluate(model, data.valid, labels=data.valid_labels[:5])


# --------------------------------------------------------------------------------------------
# checkpoints and the CLI
# --------------------------------------------------------------------------------------------


def test_checkpoint_round_trip(tmp_path):
    model = _random_cnade((3, 3), hidden=5, classes=4, seed=7)
    path = save_checkpoint(tmp_path / "c.safetensors", model)
    loaded, meta = load_checkpoint(path, family="cnade")
    assert meta.family == "cnade" and loaded.info.conditional and loaded.classes == 4
    x = _all_binary(9).reshape(-1, 3, 3)
    for y in range(4):
        torch.testing.assert_close(loaded.log_prob(x, labels=y), model.log_prob(x, labels=y))
    assert torch.equal(loaded.class_output, model.class_output)


def test_cli_eval_reads_the_labels(tmp_path, capsys):
    model = _random_cnade((16,), hidden=4, classes=2, scale=0.5)
    ckpt = save_checkpoint(tmp_path / "c.safetensors", model)
    data = _labelled(n_train=10, n_valid=25)
    npz = tmp_path / "digits.npz"
    np.savez(npz, images=data.valid, labels=data.valid_labels, classes=data.valid_labels)
    assert cli.main(["eval", "--checkpoint", str(ckpt), "--data", str(npz), "--key", "images"]) == 0
    result = json.loads(capsys.readouterr().out)
    want = evaluate(model, data.valid, labels=data.valid_labels).nats
    assert result["labels"] is True and result["nll_nats"] == pytest.approx(want, rel=1e-6)
    # another key for the labels; and with only images and labels, the images are found alone
    swapped = tmp_path / "swapped.npz"
    np.savez(swapped, x=data.valid, y=1 - data.valid_labels)
    assert cli.main(["eval", "--checkpoint", str(ckpt), "--data", str(swapped), "--labels-key", "y"]) == 0
    other = json.loads(capsys.readouterr().out)
    assert other["key"] == "x"
    assert other["nll_nats"] == pytest.approx(evaluate(model, data.valid, labels=1 - data.valid_labels).nats)


@pytest.mark.parametrize("labels, message", [
    (None, "class-conditional.*'labels'.*--labels-key"),
    (np.zeros(3, np.int64), "expected 25 labels"),
    (np.full(25, 0.5), "integers"),
    (np.full(25, 7, np.int64), "out of range"),
])
def test_cli_eval_label_errors(tmp_path, capsys, labels, message):
    ckpt = save_checkpoint(tmp_path / "c.safetensors", _random_cnade((16,), hidden=4, classes=2))
    x = _labelled(n_train=10, n_valid=25).valid
    npz = tmp_path / "d.npz"
    np.savez(npz, images=x, **({} if labels is None else {"labels": labels}))
    assert cli.main(["eval", "--checkpoint", str(ckpt), "--data", str(npz), "--key", "images"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and re.search(message, err), err


def test_cli_trains_on_mnist_digits_from_a_folder(tmp_path, capsys, mnist_fixture):
    out = tmp_path / "c.safetensors"
    code = cli.main(["train", "cnade", "--data", "mnist_digits", "--data-path", str(mnist_fixture.digits_dir),
                     "--max-steps", "3", "--eval-every", "0", "--eval-size", "50", "--hp", "hidden=8",
                     "--device", "cpu", "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    result = json.loads(captured.out)
    assert result["data"] == "mnist_digits" and result["steps"] == 3
    assert result["valid"]["labels"] is True and result["valid"]["n"] == mnist_fixture.n_digits_valid
    model, meta = load_checkpoint(out)
    assert meta.family == "cnade" and meta.data_name == "mnist_digits" and model.classes == 10


def test_cli_train_refuses_unlabelled_data_and_misplaced_data_path(tmp_path, capsys):
    assert cli.main(["train", "cnade", "--data", "bars", "--max-steps", "1", "--hp", "hidden=4",
                     "--out", str(tmp_path / "c.safetensors")]) == 2
    assert "needs labelled data" in capsys.readouterr().err
    assert cli.main(["train", "nade", "--data", str(tmp_path / "x.npz"), "--data-path", str(tmp_path)]) == 2
    assert "--data-path goes with a data set name" in capsys.readouterr().err
    assert cli.main(["train", "cnade", "--data", "mnist_digits", "--data-path", str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# the window's Training tab
# --------------------------------------------------------------------------------------------


def test_window_picks_labelled_data_for_cnade(window):
    window.picker.select("cnade")
    names = [window.panel.data_combo.itemData(i) for i in range(window.panel.data_combo.count())]
    assert names == ["mnist_digits"]  # only labelled sets
    window.picker.select("nade")
    names = [window.panel.data_combo.itemData(i) for i in range(window.panel.data_combo.count())]
    assert "mnist_digits" in names and "bars" in names  # unconditional models take it too


def test_window_trains_cnade_on_mnist_digits_one_class_per_column(qtbot, window, mnist_mirror, mnist_fixture):
    """Downloaded (from the tests' loopback mirror of a small stand-in), checked, trained on."""
    from PySide6.QtCore import Qt

    window.picker.select("cnade")
    window.panel.data_combo.setCurrentIndex(window.panel.data_combo.findData("mnist_digits"))
    window.panel.data_path.setText("")  # no folder: the checked download
    window.panel.editors["hidden"].setValue(8)
    window.panel.epochs.setValue(0.25)  # 2 of the 8 steps of 64 an epoch of 450 digits takes
    qtbot.mouseClick(window.panel.train_btn, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.session is not None and window.session.last_frame is not None
                    and window.session.last_frame.snapshot.event == "finished", timeout=30000)
    assert window.session.last_frame.snapshot.step == 2
    assert sorted(mnist_mirror.requests) == sorted(f"/mnist/{name}" for name in mnist_fixture.digits_md5)
    assert window.dataset.name == "mnist_digits" and window.dataset.valid_labels is not None
    assert window.session.last_frame.snapshot.nll is not None
    tile = 28 + 1  # a tile and its padding
    qtbot.waitUntil(lambda: window.training_view.image is not None
                    and "one class per column" in window.training_view.caption.text(), timeout=10000)
    assert window.training_view.image.shape[1] == 10 * tile + 1
    qtbot.waitUntil(lambda: not window.session.running, timeout=10000)
    window.training_view.image = None
    task = window.sample()
    qtbot.waitUntil(task.done, timeout=10000)
    assert window.training_view.image.shape[1] == 10 * tile + 1
    task = window.evaluate()
    qtbot.waitUntil(task.done, timeout=10000)
    assert f"on {mnist_fixture.n_digits_valid} examples" in window.statusBar().currentMessage()
