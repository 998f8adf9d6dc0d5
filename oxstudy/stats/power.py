"""Power and seed planning for two-sample t-tests (statsmodels ``TTestIndPower``).

The per-comparison alpha accounts for the correction over a family of ``m`` comparisons:
``alpha / m`` for Bonferroni and Holm (Holm's first, strictest step equals Bonferroni, so
this is the conservative planning value), ``alpha / m`` for Benjamini-Hochberg too (its
threshold for the smallest p-value; the FDR procedure is less strict for later ones) and
``alpha`` without correction. Effect sizes are Cohen's d; differences in points are
``d * sd`` with ``sd`` the observed pooled sd across the family's arms.
"""

from __future__ import annotations

import functools
import math

import numpy as np


def per_comparison_alpha(alpha: float, correction: str, m: int) -> float:
    """The alpha one comparison is tested at when planning (see the module docstring)."""
    if correction == "none" or m <= 1:
        return alpha
    return alpha / m


def pooled_sd(sds: np.ndarray, ns: np.ndarray) -> float | None:
    """Pooled sample sd over arms: ``sqrt(sum (n_i - 1) s_i^2 / sum (n_i - 1))``; None without df."""
    sds = np.asarray(sds, float)
    ns = np.asarray(ns, float)
    keep = (ns >= 2) & np.isfinite(sds)
    df = (ns[keep] - 1).sum()
    if df <= 0:
        return None
    return float(math.sqrt(((ns[keep] - 1) * sds[keep] ** 2).sum() / df))


@functools.lru_cache(maxsize=1024)
def minimum_detectable_effect(n_per_arm: float, alpha: float, power: float = 0.8) -> float | None:
    """Smallest Cohen's d detectable with ``power`` by a two-sided two-sample t-test.

    ``TTestIndPower().solve_power(effect_size=None, nobs1=n, alpha=alpha, power=power,
    ratio=1)``; ``None`` below 2 seeds per arm.
    """
    if n_per_arm < 2:
        return None
    from statsmodels.stats.power import TTestIndPower

    d = TTestIndPower().solve_power(effect_size=None, nobs1=n_per_arm, alpha=alpha, power=power, ratio=1.0,
                                    alternative="two-sided")
    d = float(np.asarray(d).item())
    return d if math.isfinite(d) else None


def seeds_needed(effect_size: float, alpha: float, power: float = 0.8, max_seeds: int = 100_000) -> int | None:
    """Seeds per arm needed to detect Cohen's d = ``effect_size`` with ``power``.

    The smallest integer n with ``TTestIndPower().power(d, n, alpha) >= power`` (i.e.
    ``ceil(solve_power(nobs1=None, ...))``), found by evaluating the power function on a
    vector of candidate n. ``None`` when the effect is zero or needs more than ``max_seeds``.
    """
    if not effect_size or not math.isfinite(effect_size):
        return None
    from statsmodels.stats.power import TTestIndPower

    analysis = TTestIndPower()
    low = 2
    while low <= max_seeds:
        high = min(max_seeds, low * 8)
        candidates = np.arange(low, high + 1)
        powers = np.asarray(analysis.power(abs(effect_size), candidates, alpha, ratio=1.0))
        hit = np.flatnonzero(powers >= power)
        if hit.size:
            return int(candidates[hit[0]])
        low = high + 1
    return None


def achieved_power(effect_size: float, n_per_arm: float, alpha: float) -> float | None:
    """Power of the two-sided test at Cohen's d = ``effect_size`` with ``n_per_arm`` seeds."""
    if n_per_arm < 2 or not math.isfinite(effect_size):
        return None
    from statsmodels.stats.power import TTestIndPower

    return float(TTestIndPower().power(abs(effect_size), n_per_arm, alpha, ratio=1.0))
