"""Cross-dataset transfer: training dataset x evaluation dataset, with CIs on each difference.

Pure numpy / scipy / pandas. Input ``runs``: one row per run and evaluation benchmark with
columns ``model, train, benchmark, seed, value``, where ``train`` names the training dataset
(an arm's ``data.source``, or any label such as ``gsm8k`` / ``math``).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
from scipy import stats

from oxstudy.stats.descriptives import describe, t_interval


def transfer_matrix(runs: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Mean accuracy per (model, train, benchmark) with a t-interval across seeds.

    Returns ``model, train, benchmark, n_seeds, mean, ci_low, ci_high`` (the matrix in long form).
    """
    rows = []
    for (model, train, benchmark), group in runs.groupby(["model", "train", "benchmark"], sort=True):
        summary = describe(group["value"].to_numpy(), confidence)
        rows.append(
            {
                "model": model,
                "train": train,
                "benchmark": benchmark,
                "n_seeds": summary["n"],
                "mean": summary["mean"],
                "ci_low": summary["ci_low"],
                "ci_high": summary["ci_high"],
            }
        )
    return pd.DataFrame(rows, columns=["model", "train", "benchmark", "n_seeds", "mean", "ci_low", "ci_high"])


def welch_difference(a: np.ndarray, b: np.ndarray, confidence: float = 0.95) -> dict:
    """``mean(a) - mean(b)`` with Welch's t-interval and two-sided p-value (scipy's ``ttest_ind``,
    ``equal_var=False``)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    diff = float(a.mean() - b.mean())
    out = {"difference": diff, "ci_low": None, "ci_high": None, "p_value": None, "df": None, "note": None}
    if a.size < 2 or b.size < 2:
        out["note"] = "needs at least 2 seeds per arm"
        return out
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    if va + vb == 0.0:
        out.update(ci_low=diff, ci_high=diff, note="zero variance in both arms")
        return out
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    out["ci_low"], out["ci_high"] = t_interval(diff, se, df, confidence)
    out["p_value"] = float(2 * stats.t.sf(abs(diff / se), df))
    out["df"] = float(df)
    return out


def transfer_differences(runs: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Every pair of training datasets compared on every evaluation benchmark, per model.

    Estimated: ``mean_seeds(train A on C) - mean_seeds(train B on C)``; Welch's t-interval and
    p-value over seeds (unpaired: different training data gives unrelated runs even at one seed).
    Returns ``model, benchmark, train_a, train_b, difference, ci_low, ci_high, p_value``; each
    unordered pair appears once (A before B in sorted order).
    """
    rows = []
    for (model, benchmark), group in runs.groupby(["model", "benchmark"], sort=True):
        trains = sorted(group["train"].unique())
        for a, b in itertools.combinations(trains, 2):
            result = welch_difference(
                group.loc[group["train"] == a, "value"].to_numpy(),
                group.loc[group["train"] == b, "value"].to_numpy(),
                confidence,
            )
            rows.append(
                {
                    "model": model,
                    "benchmark": benchmark,
                    "train_a": a,
                    "train_b": b,
                    **{k: result[k] for k in ("difference", "ci_low", "ci_high", "p_value")},
                }
            )
    return pd.DataFrame(
        rows,
        columns=["model", "benchmark", "train_a", "train_b", "difference", "ci_low", "ci_high", "p_value"],
    )
