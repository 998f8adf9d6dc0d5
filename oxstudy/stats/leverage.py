"""Hierarchy of leverage: how much each design factor moves the score.

Works on *cells* (one row per model x algorithm at one benchmark and metric, with n, mean,
sd) plus bootstrap replicates of each cell mean (B x C).

* **Spread** of a factor: the range (max - min) of its marginal means, where a level's
  marginal mean is the unweighted mean of the cell means at that level, in points. For
  ``loss_family`` (nested within ``paradigm``) it is the mean, over paradigms with at least two
  loss families, of the within-paradigm range. Its CI is the percentile interval of the same
  quantity over the bootstrap replicates of the cell means (the range is biased upward by
  noise; the CI shows by how much).
* **Share of variance** (eta-squared) of a factor: ``SS_between / SS_total`` of a one-way
  decomposition of the run-level values (recovered exactly from each cell's n, mean and sd),
  each factor on its own. For ``loss_family`` the between-SS is taken within paradigms
  (nested). Factors are correlated (online RL is one paradigm), so shares need not add up to 1.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from oxstudy.stats.bootstrap import percentile_interval

LEVERAGE_FACTORS = ("scale", "paradigm", "online", "loss_family")


def total_sum_of_squares(n: np.ndarray, mean: np.ndarray, sd: np.ndarray) -> tuple[float, float]:
    """(SS_total, grand mean) of the pooled run-level values from per-cell n, mean, sd."""
    n = np.asarray(n, float)
    mean = np.asarray(mean, float)
    sd = np.nan_to_num(np.asarray(sd, float))
    grand = float((n * mean).sum() / n.sum())
    within = float(((n - 1).clip(min=0) * sd**2).sum())
    between = float((n * (mean - grand) ** 2).sum())
    return within + between, grand


def between_sum_of_squares(n: np.ndarray, mean: np.ndarray, groups: np.ndarray) -> float:
    """SS between the levels in ``groups``: sum_l N_l (mean_l - grand)^2, run-weighted means."""
    n = np.asarray(n, float)
    weighted = n * np.asarray(mean, float)
    codes, _ = pd.factorize(pd.Series(groups, dtype=object))
    level_n = np.bincount(codes, weights=n)
    level_sum = np.bincount(codes, weights=weighted)
    grand = weighted.sum() / n.sum()
    return float((level_n * (level_sum / level_n - grand) ** 2).sum())


def marginal_matrix(levels: np.ndarray) -> tuple[list, np.ndarray]:
    """(level names, C x L averaging matrix) so that ``cell_means @ M`` gives marginal means."""
    names = list(pd.unique(pd.Series(levels, dtype=object)))
    index = {name: i for i, name in enumerate(names)}
    mat = np.zeros((len(levels), len(names)))
    for c, level in enumerate(levels):
        mat[c, index[level]] = 1.0
    mat /= mat.sum(axis=0, keepdims=True)
    return names, mat


def factor_spread(cell_means: np.ndarray, boot: np.ndarray, levels: np.ndarray, confidence: float = 0.95
                  ) -> dict:
    """Spread (range of marginal means) of one factor, observed and over replicates."""
    names, mat = marginal_matrix(levels)
    observed = cell_means @ mat
    reps = boot @ mat
    spread = float(observed.max() - observed.min())
    rep_spread = reps.max(axis=1) - reps.min(axis=1)
    low, high = percentile_interval(rep_spread, confidence)
    return {"levels": {str(k): float(v) for k, v in zip(names, observed, strict=False)}, "spread": spread,
            "ci_low": float(low), "ci_high": float(high), "replicates": rep_spread}


def nested_spread(cell_means: np.ndarray, boot: np.ndarray, outer: np.ndarray, inner: np.ndarray,
                  confidence: float = 0.95) -> dict | None:
    """Mean within-``outer`` range of ``inner`` marginal means (e.g. loss function within paradigm)."""
    observed, reps, per_outer = [], [], {}
    for group in pd.unique(pd.Series(outer, dtype=object)):
        sel = np.asarray(outer == group)
        if pd.Series(inner[sel], dtype=object).nunique() < 2:
            continue
        one = factor_spread(cell_means[sel], boot[:, sel], inner[sel], confidence)
        per_outer[str(group)] = {"levels": one["levels"], "spread": one["spread"]}
        observed.append(one["spread"])
        reps.append(one["replicates"])
    if not observed:
        return None
    rep_spread = np.mean(reps, axis=0)
    low, high = percentile_interval(rep_spread, confidence)
    return {"levels": per_outer, "spread": float(np.mean(observed)), "ci_low": float(low),
            "ci_high": float(high), "replicates": rep_spread}


def nested_between_sum_of_squares(n: np.ndarray, mean: np.ndarray, outer: np.ndarray, inner: np.ndarray
                                  ) -> float:
    """SS of ``inner`` levels about their ``outer`` group's mean (nested one-way decomposition)."""
    total = 0.0
    for group in pd.unique(pd.Series(outer, dtype=object)):
        sel = np.asarray(outer == group)
        total += between_sum_of_squares(n[sel], mean[sel], inner[sel])
    return total
