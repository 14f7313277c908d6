"""Sample quality of image models, measured with the digit classifier (:mod:`core.classifier`).

* **Coverage**: the share of samples the classifier puts in each digit class; a model that drops
  a digit (mode collapse) shows a share near 0 for it.
* **Frechet distance** (FID-style; Heusel et al. 2017 use an Inception network, here the
  classifier's 128 hidden features): fit a Gaussian to the features of the samples (mean m_s,
  covariance C_s) and one to those of validation digits (m_v, C_v); the distance is

      d^2 = |m_s - m_v|^2 + Tr(C_s + C_v - 2 (C_s C_v)^(1/2)),

  0 for identical feature statistics, larger the further apart. It is comparable only between
  runs that use the same classifier weights, the same reference digits and the same number of
  samples (its estimate is biased upwards with few samples).
* **Conditional accuracy**: for class-conditional models, how often the classifier reads the
  digit that was asked for.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.classifier import DigitClassifier


def _sqrtm_psd(a: np.ndarray) -> np.ndarray:
    """The symmetric square root of a symmetric positive semi-definite matrix."""
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(feat_a: np.ndarray, feat_b: np.ndarray) -> float:
    """The Frechet distance between Gaussians fitted to two sets of feature rows (N, F)."""
    feat_a, feat_b = np.asarray(feat_a, np.float64), np.asarray(feat_b, np.float64)
    if feat_a.ndim != 2 or feat_b.ndim != 2 or feat_a.shape[1] != feat_b.shape[1]:
        raise ValueError(f"feature sets must be (N, F) with the same F, got {feat_a.shape} and {feat_b.shape}")
    if len(feat_a) < 2 or len(feat_b) < 2:
        raise ValueError("a Frechet distance needs at least 2 rows in each set")
    ma, mb = feat_a.mean(0), feat_b.mean(0)
    ca, cb = np.cov(feat_a, rowvar=False), np.cov(feat_b, rowvar=False)
    # Tr((Ca Cb)^1/2) = Tr((Ca^1/2 Cb Ca^1/2)^1/2), whose argument is symmetric PSD
    sa = _sqrtm_psd(ca)
    cross = np.trace(_sqrtm_psd(sa @ cb @ sa))
    return float(max(0.0, ((ma - mb) ** 2).sum() + np.trace(ca) + np.trace(cb) - 2 * cross))


@dataclass
class QualityReport:
    n: int
    coverage: np.ndarray  # (10,) share of samples per digit
    frechet: float
    conditional_accuracy: float | None = None

    @property
    def digits_found(self) -> int:
        return int((self.coverage > 0).sum())

    def min_share(self) -> float:
        return float(self.coverage.min())


def score_samples(clf: DigitClassifier, samples, reference_features: np.ndarray,
                  asked_labels: np.ndarray | None = None) -> QualityReport:
    """Coverage, Frechet distance to the reference features, and (given the digits asked for)
    the share classified as asked."""
    pred, feats = clf.predict(samples)
    coverage = np.bincount(pred, minlength=clf.classes)[: clf.classes] / max(1, len(pred))
    cond = None
    if asked_labels is not None:
        asked_labels = np.asarray(asked_labels)
        if asked_labels.shape != pred.shape:
            raise ValueError(f"expected {len(pred)} asked labels, got shape {asked_labels.shape}")
        cond = float((pred == asked_labels).mean())
    return QualityReport(len(pred), coverage, frechet_distance(feats, reference_features), cond)
