"""The digit classifier and the sample-quality measures built on it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from core.classifier import DigitClassifier, accuracy, random_shift, train_classifier
from core.sample_quality import frechet_distance, score_samples


def test_frechet_distance_of_gaussians_matches_the_closed_form():
    rng = np.random.default_rng(0)
    a = rng.normal([0, 1, 2], [1.0, 2.0, 0.5], size=(200_000, 3))
    b = rng.normal([1, 1, 0], [2.0, 2.0, 0.5], size=(200_000, 3))
    # diagonal covariances: d^2 = |ma - mb|^2 + sum (sa - sb)^2
    expected = (1 + 0 + 4) + (1.0 ** 2 + 0 + 0)
    assert frechet_distance(a, b) == pytest.approx(expected, rel=0.02)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    # a rotation of a correlated set keeps its distance to itself at 0 and is symmetric
    c = a @ np.array([[1, 0.5, 0], [0, 1, 0.3], [0, 0, 1]])
    assert frechet_distance(a, c) == pytest.approx(frechet_distance(c, a), rel=1e-6)
    with pytest.raises(ValueError, match="same F"):
        frechet_distance(a, b[:, :2])
    with pytest.raises(ValueError, match="at least 2"):
        frechet_distance(a[:1], b)


def test_random_shift_moves_whole_images_by_at_most_the_shift():
    x = torch.zeros(50, 1, 28, 28)
    x[:, 0, 10:14, 12:15] = 1
    out = random_shift(x, 2, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and torch.equal(out.sum((1, 2, 3)), x.sum((1, 2, 3)))
    rows = out[:, 0].sum(2).nonzero()[:, 1].reshape(50, -1)[:, 0]
    assert set(rows.tolist()) <= set(range(8, 13)) and len(set(rows.tolist())) > 1


def _bars(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Ten easy classes: a vertical bar in column band y (a stand-in for digits)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 10, n)
    x = np.zeros((n, 28, 28), np.uint8)
    for i, c in enumerate(y):
        r = rng.integers(2, 10)
        x[i, r:r + 14, 2 + 2 * c:4 + 2 * c] = 1
    return x.reshape(n, 784), y


def test_classifier_learns_and_scores_coverage_and_conditional_accuracy():
    torch.manual_seed(0)
    train, ty = _bars(600, 0)
    valid, vy = _bars(200, 1)
    clf = DigitClassifier(dropout=0.0)
    progress = list(train_classifier(clf, train, ty, valid, vy, epochs=3, batch_size=50, max_shift=0))
    assert [p.epoch for p in progress] == [1, 2, 3]
    assert progress[-1].valid_accuracy > 0.9
    assert accuracy(clf, valid, vy) == progress[-1].valid_accuracy
    _, ref = clf.predict(valid)
    # samples of only two classes: coverage finds those two, and the distance grows
    only = valid[np.isin(vy, [3, 7])]
    rep = score_samples(clf, only, ref, asked_labels=vy[np.isin(vy, [3, 7])])
    assert rep.digits_found <= 3 and rep.coverage[3] + rep.coverage[7] > 0.9
    assert rep.conditional_accuracy > 0.9
    full = score_samples(clf, valid[:100], ref)
    assert full.digits_found == 10 and full.frechet < rep.frechet
    with pytest.raises(ValueError, match="28x28"):
        clf.predict(np.zeros((3, 10)))
    with pytest.raises(ValueError, match="NaN"):
        clf.predict(np.full((3, 784), np.nan))
