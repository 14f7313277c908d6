"""Typicality is two-sided (Nalisnick et al. 2019): a drawing far MORE likely than the validation
digits (a blank canvas) is as atypical as one far less likely (a scribble, a full canvas), while
the held-out digits are typical. Scored with the shipped weights and the shipped held-out digits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from core.checkpoint import load_checkpoint
from core.readouts import ATYPICAL_PCT, likelier_than, load_digits, nll_percentiles, typicality

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    return load_digits()


def nlls(model, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        xt = torch.from_numpy(np.asarray(x, np.float32)).reshape(len(x), *model.data_shape)
        return -model.log_prob(xt).double().numpy()


@pytest.mark.parametrize("name", ["nade", "made"])
def test_blank_full_and_scribbles_are_atypical_and_held_out_digits_are_not(name, digits):
    torch.set_num_threads(1)
    model, meta = load_checkpoint(ROOT / "resources" / "weights" / f"{name}.safetensors")
    model.eval()
    q = meta.valid_percentiles  # recorded on the whole validation split
    assert q is not None and q.shape == (101,)
    rng = np.random.default_rng(0)
    odd = {"blank": np.zeros(784), "full": np.ones(784), "scribble": rng.random(784) < 0.5,
           "sparse scribble": rng.random(784) < 0.1}
    scores = dict(zip(odd, nlls(model, np.stack(list(odd.values())))))
    for what, nll in scores.items():
        assert typicality(nll, q) < ATYPICAL_PCT, (what, nll, typicality(nll, q))
    assert likelier_than(scores["blank"], q) > 99, "blank is MORE likely than the digits: atypical all the same"
    assert likelier_than(scores["full"], q) < 1
    # the held-out digits (a subset of the split the percentiles were measured on) are typical:
    # the two-sided test at the ATYPICAL_PCT level flags about that share of them, no more
    t = np.array([typicality(v, q) for v in nlls(model, digits)])
    assert np.mean(t < ATYPICAL_PCT) <= 2.5 * ATYPICAL_PCT / 100, np.mean(t < ATYPICAL_PCT)
    assert 35 < np.median(t) < 65  # uniform on [0, 100] for digits like the validation split


def test_typicality_is_two_sided():
    q = np.linspace(80.0, 180.0, 101)
    assert typicality(130.0, q) == pytest.approx(100.0)  # the median digit
    assert typicality(50.0, q) == 0.0 and typicality(500.0, q) == 0.0  # beyond every digit, either way
    assert typicality(81.0, q) == pytest.approx(2.0) and typicality(179.0, q) == pytest.approx(2.0)
    assert likelier_than(81.0, q) == pytest.approx(99.0) and likelier_than(179.0, q) == pytest.approx(1.0)
    assert typicality(100.0, np.full(101, 100.0)) == pytest.approx(100.0)  # ties take their middle


def test_percentiles_computed_from_the_digits_agree(digits):
    """A model without recorded percentiles is compared with the shipped digits instead."""
    model, _ = load_checkpoint(ROOT / "resources" / "weights" / "nade.safetensors")
    q = nll_percentiles(model, digits[:200])
    t = np.array([typicality(v, q) for v in nlls(model, digits[200:])])
    assert np.mean(t < ATYPICAL_PCT) < 0.06
    assert typicality(float(nlls(model, np.zeros((1, 784)))[0]), q) < ATYPICAL_PCT


def test_the_canvas_flags_a_blank_canvas_with_the_shipped_nade(qtbot, aloop, tmp_path, digits):
    """Today a blank canvas reads "more likely than 100 % of validation digits", as if the best."""
    import shutil

    from gui.canvas import CanvasPanel

    for suffix in (".safetensors", ".json"):
        shutil.copy(ROOT / "resources" / "weights" / f"nade{suffix}", tmp_path)
    panel = CanvasPanel(weights_dir=tmp_path)
    qtbot.addWidget(panel)
    panel.resize(1200, 720)
    panel.show()
    qtbot.waitUntil(lambda: panel.loaded, timeout=20000)
    try:
        assert panel.select_model("nade")
        view = panel.readouts_view
        shown = []
        for image in (np.zeros((28, 28), int), digits[0].reshape(28, 28)):
            panel.state.set_image(image)
            panel.update_readouts()
            qtbot.waitUntil(panel.readouts_current, timeout=20000)
            shown.append((view.percentile, view.pct_label.text()))
        (blank, blank_text), (digit, digit_text) = shown
        assert blank < ATYPICAL_PCT and "atypical for this model" in blank_text and "more likely" in blank_text
        assert digit >= ATYPICAL_PCT and "atypical for" not in digit_text and "median validation digit" in digit_text
    finally:
        panel.shutdown()
