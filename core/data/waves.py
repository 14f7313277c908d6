"""The built-in ``waves`` set: short 1D waveforms for sequence models (WaveNet).

Each example is a sequence of ``length`` (default 128) float32 samples,

    x_t = sum_{k=1..K} a_k sin(2 pi f_k t / length + phi_k) + sigma eps_t,   K ~ U{1, 2, 3},

with frequencies f_k uniform in [1, 8] cycles per sequence (periods of 16 to 128 steps, inside a
WaveNet's receptive field), phases uniform in [0, 2 pi), and positive amplitudes drawn from a
Dirichlet(1, ..., 1) split of a total peak amplitude uniform in [0.3, 0.9], so the clean signal
stays inside [-0.9, 0.9]. The noise eps_t is standard normal (sigma 0.02 by default); the sum is
clipped to [-1, 1], the support of the quantised models that read it.

Training and held-out sequences come from independent seeded streams (as the toy sets do): the
same ``seed`` and ``n`` always give the same split.
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np

from core.data.errors import DataError

LENGTH = 128
DEFAULT_N = 4000
DEFAULT_NOISE = 0.02
MAX_WAVES = 3
FREQ_RANGE = (1.0, 8.0)  # cycles per sequence
PEAK_RANGE = (0.3, 0.9)  # total peak amplitude of the clean signal
DESCRIPTION = (f"{LENGTH}-step waveforms: sums of 1-{MAX_WAVES} random sinusoids plus a little noise, "
               f"in [-1, 1] (built in, instant)")


def _check(n, length, noise) -> tuple[int, int, float]:
    if isinstance(n, bool) or not isinstance(n, Integral) or n < 1:
        raise DataError(f"waves: n must be a whole number >= 1, got {n!r}")
    if isinstance(length, bool) or not isinstance(length, Integral) or not 2 <= length <= 65536:
        raise DataError(f"waves: length must be a whole number in [2, 65536], got {length!r}")
    if isinstance(noise, bool) or not isinstance(noise, Real) or not 0 <= noise <= 1:
        raise DataError(f"waves: noise must be a number in [0, 1], got {noise!r}")
    return int(n), int(length), float(noise)


def sample(n: int, seed: int | np.random.SeedSequence = 0, length: int = LENGTH,
           noise: float = DEFAULT_NOISE) -> np.ndarray:
    """``n`` waveforms, float32 (n, length) in [-1, 1], from a seeded stream."""
    n, length, noise = _check(n, length, noise)
    rng = np.random.default_rng(seed)
    k = rng.integers(1, MAX_WAVES + 1, size=n)
    active = np.arange(MAX_WAVES)[None, :] < k[:, None]  # (n, 3): which of the 3 slots are used
    freq = rng.uniform(*FREQ_RANGE, size=(n, MAX_WAVES))
    phase = rng.uniform(0.0, 2 * np.pi, size=(n, MAX_WAVES))
    # a Dirichlet split of the peak over the active waves: |sum| <= peak <= 0.9 before the noise
    share = rng.exponential(size=(n, MAX_WAVES)) * active
    share /= share.sum(1, keepdims=True)
    amp = share * rng.uniform(*PEAK_RANGE, size=(n, 1))
    t = np.arange(length, dtype=np.float64) / length
    x = np.einsum("nk,nkt->nt", amp, np.sin(2 * np.pi * freq[:, :, None] * t + phase[:, :, None]))
    x += noise * rng.standard_normal((n, length))
    return np.ascontiguousarray(np.clip(x, -1.0, 1.0), dtype=np.float32)


def load(n: int | None = None, seed: int = 0, noise: float | None = None,
         length: int = LENGTH) -> tuple[np.ndarray, np.ndarray, dict]:
    """``n`` training sequences (default 4000) and ``max(1, n // 4)`` held-out ones from an
    independent stream, and the set's description for ``Dataset.meta``."""
    n = DEFAULT_N if n is None else n
    noise = DEFAULT_NOISE if noise is None else noise
    n, length, noise = _check(n, length, noise)
    valid_seed = np.random.SeedSequence(seed).spawn(1)[0]
    train = sample(n, seed, length, noise)
    valid = sample(max(1, n // 4), valid_seed, length, noise)
    meta = {"source": "waves", "seed": seed, "noise": noise, "length": length, "range": [-1.0, 1.0]}
    return train, valid, meta
