"""Multiple-comparison corrections over a family of p-values.

A *family* is the set of comparisons made at one model x benchmark x metric: every
algorithm vs the baseline (``vs-baseline``, k-1 comparisons) or every pair of algorithms
(``pairwise``, k(k-1)/2). Adjusted p-values equal
``statsmodels.stats.multitest.multipletests`` (methods ``bonferroni``, ``holm``, ``fdr_bh``).
"""

from __future__ import annotations

import numpy as np

CORRECTIONS = ("bonferroni", "holm", "bh", "none")


def adjust(p_values: np.ndarray, method: str) -> np.ndarray:
    """Adjusted p-values, each clipped to 1; equal to ``multipletests(p, method=...)[1]``.

    * ``bonferroni``: ``min(1, m p)``;
    * ``holm``: step-down, ``max_{j<=i} min(1, (m - j + 1) p_(j))`` over sorted p;
    * ``bh``: Benjamini-Hochberg step-up, ``min_{j>=i} min(1, m p_(j) / j)`` (controls FDR);
    * ``none``: unchanged.

    Written out rather than calling statsmodels: ``multipletests`` runs ``gc.collect()`` on every
    call, which cost 0.1-0.8 s per family once a study's item tables are in memory
    (``benchmarks/bench_stats.py``: 24 families, most of the analysis time). The test suite
    checks equality with ``multipletests``, ties included.
    """
    p = np.asarray(p_values, dtype=float)
    m = p.size
    if method not in ("bonferroni", "holm", "bh", "none"):
        raise ValueError(f"unknown correction {method!r}; expected one of {', '.join(CORRECTIONS)}")
    if m == 0 or method == "none":
        return p.copy()
    if method == "bonferroni":
        return np.minimum(1.0, p * m)
    order = np.argsort(p, kind="mergesort")
    sorted_p = p[order]
    if method == "holm":
        adj_sorted = np.maximum.accumulate(np.minimum(1.0, sorted_p * (m - np.arange(m))))
    else:
        ranks = np.arange(1, m + 1)
        adj_sorted = np.minimum(1.0, np.minimum.accumulate((sorted_p * m / ranks)[::-1])[::-1])
    out = np.empty(m)
    out[order] = adj_sorted
    return out


def reject(p_adjusted: np.ndarray, alpha: float) -> np.ndarray:
    """Significance decisions: ``p_adjusted <= alpha`` (as multipletests decides)."""
    return np.asarray(p_adjusted, dtype=float) <= alpha
