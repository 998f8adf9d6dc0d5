"""Per-cell descriptive statistics: n, mean, sample sd, standard error, t-interval."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats


def t_interval(mean: float, se: float, df: float, confidence: float = 0.95) -> tuple[float, float]:
    """Two-sided ``confidence`` interval ``mean +- t_{df, (1+c)/2} * se``.

    Over 5 seeds a t-interval covers ~95% of the time, where a percentile bootstrap
    covers only ~84%, hence the default everywhere in oxstudy.
    """
    half = float(stats.t.ppf(0.5 + confidence / 2.0, df)) * se
    return mean - half, mean + half


def describe_from_stats(mean: float, sd: float | None, n: int, confidence: float = 0.95) -> dict:
    """Describe a cell given only its mean, sample sd and number of seeds.

    Returns ``n, mean, sd, se, ci_low, ci_high`` (the CI is ``None`` for n < 2, where no
    spread can be estimated) and ``note`` explaining any degenerate case.
    """
    out: dict = {"n": int(n), "mean": float(mean), "sd": None, "se": None, "ci_low": None, "ci_high": None,
                 "note": None}
    if n < 2 or sd is None or (isinstance(sd, float) and math.isnan(sd)):
        out["note"] = "single seed: no spread, no confidence interval" if n < 2 else "sd unknown"
        return out
    se = float(sd) / math.sqrt(n)
    out["sd"] = float(sd)
    out["se"] = se
    if se == 0.0:
        out["ci_low"] = out["ci_high"] = float(mean)
        out["note"] = "zero variance across seeds: the interval is a single point"
        return out
    out["ci_low"], out["ci_high"] = t_interval(float(mean), se, n - 1, confidence)
    return out


def sample_sd(values: np.ndarray) -> float:
    """Sample sd (ddof=1); exactly 0 when every value is identical (numpy can leave ~1e-17 there,
    which would turn a degenerate t-test into a spurious p ~ 1e-31)."""
    values = np.asarray(values, dtype=float)
    if values.size < 2:
        return float("nan")
    if np.all(values == values[0]):
        return 0.0
    return float(values.std(ddof=1))


def describe(values: np.ndarray, confidence: float = 0.95) -> dict:
    """Describe one cell's per-seed values: mean, sample sd (ddof=1), se = sd/sqrt(n), t-CI."""
    values = np.asarray(values, dtype=float)
    n = values.size
    sd = sample_sd(values) if n >= 2 else None
    return describe_from_stats(float(values.mean()), sd, n, confidence)


def item_standard_error(scores: np.ndarray) -> float:
    """Standard error of a cell mean due to sampling of test items.

    ``scores`` is a (runs x items) matrix whose runs were all scored on the same items. The cell
    mean is the mean over items of each item's mean score across the runs, so the items are the
    independent units and the se clusters by item: ``sd_items(mean_runs(score)) / sqrt(n_items)``
    (sample sd, ddof=1; the clustered se of Miller 2024, "Adding Error Bars to Evals"). It covers
    which items were drawn and each item's run-to-run noise, not a seed's shift common to every
    item (that is the seed-level se). With one run it is lm-eval's per-run stderr. Summing the
    runs' variances as if their item errors were independent would understate it by about
    sqrt(runs) when items differ in difficulty.
    """
    scores = np.asarray(scores, dtype=float)
    n_items = scores.shape[1]
    if n_items < 2:
        return 0.0
    return float(scores.mean(axis=0).std(ddof=1) / math.sqrt(n_items))
