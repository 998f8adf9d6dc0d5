"""Rankings of algorithms, rank agreement between scales, and ranking inversions."""

from __future__ import annotations

import numpy as np
from scipy import stats


def ranks(means: np.ndarray) -> np.ndarray:
    """Ranks along the last axis, 1 = highest mean; ties share their average rank."""
    return stats.rankdata(-np.asarray(means, dtype=float), method="average", axis=-1)


def rank_intervals(boot_means: np.ndarray, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval of each algorithm's rank over bootstrap replicates (B x A means)."""
    boot_ranks = ranks(boot_means)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(boot_ranks, [tail, 100 - tail], axis=0)
    return low, high


def kendall_tau_b(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Kendall's tau-b between two rankings, vectorised over leading axes (... x A).

    ``tau_b = sum_{i<j} s^x_ij s^y_ij / sqrt(sum (s^x_ij)^2 * sum (s^y_ij)^2)`` with
    ``s_ij = sign(v_i - v_j)``; equals ``scipy.stats.kendalltau`` (variant 'b', ties
    handled). NaN where one ranking is constant (callers report that case).
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    i, j = np.triu_indices(x.shape[-1], k=1)
    sx = np.sign(x[..., i] - x[..., j])
    sy = np.sign(y[..., i] - y[..., j])
    num = (sx * sy).sum(axis=-1)
    den = np.sqrt((sx * sx).sum(axis=-1) * (sy * sy).sum(axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return num / den


def flip_probability(boot_a_small: np.ndarray, boot_b_small: np.ndarray, boot_a_large: np.ndarray,
                     boot_b_large: np.ndarray, sign_small: float, sign_large: float) -> float:
    """Bootstrap probability that an observed flip is real.

    The share of replicates in which a-b has the observed sign at the first scale *and* the
    (opposite) observed sign at the second scale, with the two scales resampled independently.
    """
    at_small = np.sign(boot_a_small - boot_b_small) == sign_small
    at_large = np.sign(boot_a_large - boot_b_large) == sign_large
    return float(np.mean(at_small & at_large))
