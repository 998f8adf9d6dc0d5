"""Cross-dataset transfer: training dataset x evaluation dataset, with CIs on each difference.

Pure numpy / scipy / pandas. Input ``runs``: one row per run and evaluation benchmark with
columns ``model, train, benchmark, seed, value``, where ``train`` names the training dataset
(an arm's ``data.source``, or any label such as ``gsm8k`` / ``math``).
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from oxstudy.stats.descriptives import describe
from oxstudy.stats.tests import flag_test_values


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
    """``mean(a) - mean(b)`` with the two-sided t-interval and p-value of the flag rule's Welch test
    (``oxstudy.stats.tests.flag_test``: scipy's ``ttest_ind(equal_var=False)`` with equal seeds; Hsu's
    or the capped df with unequal seeds, as ``oxstudy analyze``). Zero variance in both arms gives a
    point interval and no p-value; NaN values raise ``ValueError``."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    out = {"difference": float(a.mean() - b.mean()), "ci_low": None, "ci_high": None, "p_value": None,
           "df": None, "test": None, "note": None}
    if a.size < 2 or b.size < 2:
        out["note"] = "needs at least 2 seeds per arm"
        return out
    result = flag_test_values(a, b, confidence)
    out.update({key: result[key] for key in ("ci_low", "ci_high", "p_value", "df", "test")})
    if result["p_value"] is None:
        out["note"] = "zero variance in both arms"
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
