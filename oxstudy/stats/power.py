"""Power and seed planning for two-sample t-tests (the noncentral-t power of ``TTestIndPower``).

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


def power_two_sample(effect_size, n_per_arm, alpha: float):
    """Power of the two-sided two-sample t-test (equal n) at Cohen's d, vectorised over d and n.

    ``P(|T| > t_{1-alpha/2, df})`` with ``T`` noncentral t, ``df = 2n - 2``, noncentrality
    ``d sqrt(n / 2)``: the formula of ``statsmodels TTestIndPower().power(d, n, alpha, ratio=1)``.
    ``scipy.stats.nct`` gives it; where its lower tail ``P(T < -t)`` is NaN (large noncentrality,
    e.g. d = 10 at 3 seeds, where statsmodels returns NaN and its solver stops at d = 10) that tail
    is below ``Phi(-nc)`` and counted as 0; where the upper tail is not finite it is integrated,
    ``P(T > c) = E_V[Phi(nc - c sqrt(V / df))]``, V ~ chi2(df).
    """
    from scipy import stats

    d = np.abs(np.asarray(effect_size, dtype=float))
    n = np.asarray(n_per_arm, dtype=float)
    d, n = np.broadcast_arrays(d, n)
    df = 2.0 * n - 2.0
    nc = d * np.sqrt(n / 2.0)
    crit = stats.t.isf(alpha / 2.0, df)
    with np.errstate(all="ignore"):
        upper = np.array(stats.nct.sf(crit, df, nc), dtype=float, ndmin=1)
        lower = np.array(stats.nct.cdf(-crit, df, nc), dtype=float, ndmin=1)
    lower = np.where(np.isfinite(lower), lower, 0.0)
    for k in np.flatnonzero(~np.isfinite(upper)):
        upper[k] = _power_by_integration(float(np.ravel(nc)[k]), float(np.ravel(df)[k]), float(np.ravel(crit)[k]))
    out = np.minimum(1.0, upper + lower).reshape(d.shape)
    return out if out.ndim else float(out)


def _power_by_integration(nc: float, df: float, crit: float) -> float:
    from scipy import integrate, stats

    def integrand(v: float) -> float:
        return stats.norm.cdf(nc - crit * math.sqrt(v / df)) * stats.chi2.pdf(v, df)

    value, _ = integrate.quad(integrand, 0.0, np.inf, limit=200)
    return float(min(1.0, max(0.0, value)))


@functools.lru_cache(maxsize=1024)
def minimum_detectable_effect(n_per_arm: float, alpha: float, power: float = 0.8) -> float | None:
    """Smallest Cohen's d detectable with ``power`` by a two-sided two-sample t-test.

    The root in d of :func:`power_two_sample` ``= power`` (``scipy.optimize.brentq`` on a bracket
    grown until it holds the root; no upper cap). ``None`` below 2 seeds per arm.
    """
    if n_per_arm < 2:
        return None
    from scipy.optimize import brentq

    def gap(d: float) -> float:
        return float(power_two_sample(d, n_per_arm, alpha)) - power

    high = 1.0
    while gap(high) < 0:
        high *= 2.0
        if high > 1e6:
            return None
    return float(brentq(gap, 0.0, high, xtol=1e-10, rtol=1e-12))


@functools.lru_cache(maxsize=4096)
def seeds_needed(effect_size: float, alpha: float, power: float = 0.8, max_seeds: int = 100_000) -> int | None:
    """Seeds per arm needed to detect Cohen's d = ``effect_size`` with ``power``.

    The smallest integer n >= 2 with :func:`power_two_sample` ``(d, n, alpha) >= power``. Power
    rises with n; the search starts just below the normal-approximation
    ``n0 = 2 ((z_{1-alpha/2} + z_power) / d)^2`` (the t-test needs at least that many) and
    evaluates a vector of candidates above it. ``None`` when the effect is zero or needs more
    than ``max_seeds``.
    """
    if not effect_size or not math.isfinite(effect_size):
        return None
    from scipy import stats

    d = abs(float(effect_size))
    n0 = 2.0 * ((stats.norm.isf(alpha / 2.0) + stats.norm.ppf(power)) / d) ** 2
    low = max(2, int(math.floor(n0)) - 1)
    while low <= max_seeds:
        candidates = np.arange(low, min(max_seeds, low + 15) + 1)
        hit = np.flatnonzero(np.asarray(power_two_sample(d, candidates, alpha)) >= power)
        if hit.size:
            return int(candidates[hit[0]])
        low = int(candidates[-1]) + 1
    return None


def achieved_power(effect_size: float, n_per_arm: float, alpha: float) -> float | None:
    """Power of the two-sided test at Cohen's d = ``effect_size`` with ``n_per_arm`` seeds."""
    if n_per_arm < 2 or not math.isfinite(effect_size):
        return None
    return float(power_two_sample(effect_size, n_per_arm, alpha))
