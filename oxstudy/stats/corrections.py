"""Multiple-comparison corrections over a family of p-values.

A *family* is the set of comparisons made at one model x benchmark x metric: every
algorithm vs the baseline (``vs-baseline``, k-1 comparisons) or every pair of algorithms
(``pairwise``, k(k-1)/2). Adjusted p-values equal
``statsmodels.stats.multitest.multipletests`` (methods ``bonferroni``, ``holm``, ``fdr_bh``).
"""

from __future__ import annotations

import numpy as np

CORRECTIONS = ("bonferroni", "holm", "bh", "none")


_METHODS = {"bonferroni": "bonferroni", "holm": "holm", "bh": "fdr_bh"}


def adjust(p_values: np.ndarray, method: str) -> np.ndarray:
    """Adjusted p-values (``multipletests(p, method=...)[1]``), each at most 1.

    * ``bonferroni``: ``min(1, m p)``;
    * ``holm``: step-down, ``max_{j<=i} min(1, (m - j + 1) p_(j))`` over sorted p;
    * ``bh``: Benjamini-Hochberg step-up, ``min_{j>=i} min(1, m p_(j) / j)`` (controls FDR);
    * ``none``: unchanged.
    """
    p = np.asarray(p_values, dtype=float)
    if method not in _METHODS and method != "none":
        raise ValueError(f"unknown correction {method!r}; expected one of {', '.join(CORRECTIONS)}")
    if p.size == 0 or method == "none":
        return p.copy()
    from statsmodels.stats.multitest import multipletests

    return np.asarray(multipletests(p, method=_METHODS[method], is_sorted=False)[1], dtype=float)


def reject(p_adjusted: np.ndarray, alpha: float) -> np.ndarray:
    """Significance decisions: ``p_adjusted <= alpha`` (as multipletests decides)."""
    return np.asarray(p_adjusted, dtype=float) <= alpha
