"""Difficulty and data-regime statistics: accuracy by level, the plateau test, steps-to-match.

Pure numpy / scipy / pandas. Seeds are the replicates throughout: per-level accuracies are
computed per seed-run, then summarised across seeds with a t-interval (over 5 seeds a
percentile bootstrap covers only ~84%; the t-interval ~95%).

Inputs are tidy frames:

- items: one row per (run, item): ``model, algorithm, seed, benchmark, level, score``
  (score 0/1, or any per-item metric in [0, 1]);
- runs: one row per run and benchmark: ``model, algorithm, seed, benchmark, value, steps``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from oxstudy.stats.descriptives import describe
from oxstudy.stats.tests import flag_test_values

GROUP = ["model", "algorithm", "benchmark"]


def per_seed_level_accuracy(items: pd.DataFrame) -> pd.DataFrame:
    """Mean score per (model, algorithm, benchmark, seed, level): one accuracy per seed-run and level."""
    frame = items.dropna(subset=["level"])
    return frame.groupby([*GROUP, "seed", "level"], as_index=False).agg(
        accuracy=("score", "mean"), n_items=("score", "size")
    )


def accuracy_by_level(items: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Accuracy by difficulty level per (model, algorithm, benchmark), with a t-interval across seeds.

    Estimated: the expected accuracy of an arm's trained checkpoints on the items of one level.
    How: the per-seed accuracy on the level's items, then mean, sample sd and a two-sided
    t-interval over seeds (no interval with one seed).
    Returns columns ``model, algorithm, benchmark, level, n_seeds, n_items, mean, sd, ci_low, ci_high``.
    """
    per_seed = per_seed_level_accuracy(items)
    rows = []
    for key, group in per_seed.groupby([*GROUP, "level"], sort=True):
        summary = describe(group["accuracy"].to_numpy(), confidence)
        rows.append(
            {
                **dict(zip([*GROUP, "level"], key, strict=True)),
                "n_seeds": summary["n"],
                "n_items": int(group["n_items"].iloc[0]),
                "mean": summary["mean"],
                "sd": summary["sd"],
                "ci_low": summary["ci_low"],
                "ci_high": summary["ci_high"],
            }
        )
    return pd.DataFrame(
        rows, columns=[*GROUP, "level", "n_seeds", "n_items", "mean", "sd", "ci_low", "ci_high"]
    )


def run_accuracy_by_level(levels: list, scores: list) -> dict[str, dict[str, float | int]]:
    """One run's accuracy on the items of each difficulty level (e.g. a zoo model's base accuracy).

    Estimated: the run's mean score over the level's items. How: the plain mean with the
    binomial standard error ``sqrt(p (1 - p) / n)`` (items as the sample, this one checkpoint
    fixed: no seed variance). Items without a level are left out. Returns
    ``{level: {"accuracy", "stderr", "n"}}`` keyed by the level as text, in level order.
    """
    frame = pd.DataFrame({"level": levels, "score": scores}).dropna(subset=["level"])
    out = {}
    for level, group in frame.groupby("level", sort=True):
        n = int(group["score"].size)
        p = float(group["score"].mean())
        key = str(int(level)) if float(level).is_integer() else str(level)
        out[key] = {"accuracy": p, "stderr": math.sqrt(p * (1 - p) / n), "n": n}
    return out


def level_gains(items: pd.DataFrame, arm: str, reference: pd.DataFrame | str) -> pd.DataFrame:
    """Per-seed gain over a reference by level: ``acc_arm(seed, level) - acc_ref(level)``.

    ``reference`` is an algorithm id in ``items`` (paired by seed when both arms share seeds,
    otherwise its mean over seeds) or a frame ``model, benchmark, level, accuracy`` (the base
    model, one value per level). Returns ``model, benchmark, seed, level, gain``.
    """
    per_seed = per_seed_level_accuracy(items)
    mine = per_seed[per_seed["algorithm"] == arm]
    if isinstance(reference, str):
        ref = per_seed[per_seed["algorithm"] == reference]
        if set(ref["seed"]) >= set(mine["seed"]):
            merged = mine.merge(ref, on=["model", "benchmark", "seed", "level"], suffixes=("", "_ref"))
        else:
            ref_mean = ref.groupby(["model", "benchmark", "level"], as_index=False)["accuracy"].mean()
            merged = mine.merge(ref_mean, on=["model", "benchmark", "level"], suffixes=("", "_ref"))
    else:
        merged = mine.merge(
            reference.rename(columns={"accuracy": "accuracy_ref"}), on=["model", "benchmark", "level"]
        )
    merged["gain"] = merged["accuracy"] - merged["accuracy_ref"]
    return merged[["model", "benchmark", "seed", "level", "gain"]]


def plateau_test(gains: pd.DataFrame, confidence: float = 0.95) -> dict:
    """Does the gain over the reference shrink as difficulty rises?

    Estimated: the slope of gain on level (accuracy points per level).
    How: an ordinary least-squares slope of ``gain ~ level`` per seed (over that seed's levels),
    then the mean slope across seeds with a t-interval and a two-sided one-sample t-test of
    slope = 0 (seeds are the replicates; levels within a seed are not treated as independent).
    ``plateau`` is True when the whole interval lies below 0.
    """
    slopes = []
    for _, group in gains.groupby("seed"):
        if group["level"].nunique() < 2:
            continue
        slopes.append(stats.linregress(group["level"].astype(float), group["gain"].astype(float)).slope)
    slopes_arr = np.asarray(slopes, dtype=float)
    out = {
        "estimate": "slope of (arm - reference) accuracy on level, per seed, t-interval across seeds",
        "n_seeds": int(slopes_arr.size),
        "slope": None,
        "ci_low": None,
        "ci_high": None,
        "p_value": None,
        "plateau": None,
        "slopes": slopes_arr.tolist(),
        "note": None,
    }
    if slopes_arr.size == 0:
        out["note"] = "no seed has two or more levels"
        return out
    summary = describe(slopes_arr, confidence)
    out.update(
        slope=summary["mean"], ci_low=summary["ci_low"], ci_high=summary["ci_high"], note=summary["note"]
    )
    if slopes_arr.size >= 2 and summary["sd"]:
        out["p_value"] = float(stats.ttest_1samp(slopes_arr, 0.0).pvalue)
    if out["ci_high"] is not None:
        out["plateau"] = bool(out["ci_high"] < 0)
    return out


def non_inferiority(candidate: np.ndarray, full: np.ndarray, margin: float, confidence: float = 0.95) -> dict:
    """Is the candidate arm no worse than the full arm by more than ``margin``?

    Estimated: ``mean(candidate) - mean(full)`` over seeds.
    How: the flag rule's Welch t-interval of the difference (``oxstudy.stats.tests.flag_test``;
    two-sided ``confidence``, i.e. a one-sided test at ``(1 - confidence) / 2``); non-inferior when
    the lower bound exceeds ``-margin``. Zero variance in both arms gives a point interval.
    """
    a, b = np.asarray(candidate, dtype=float), np.asarray(full, dtype=float)
    diff = float(a.mean() - b.mean())
    out = {
        "difference": diff,
        "ci_low": None,
        "ci_high": None,
        "margin": float(margin),
        "non_inferior": None,
        "n_candidate": int(a.size),
        "n_full": int(b.size),
        "note": None,
    }
    if a.size < 2 or b.size < 2:
        out["note"] = "needs at least 2 seeds per arm"
        return out
    result = flag_test_values(a, b, confidence)
    out["ci_low"], out["ci_high"] = result["ci_low"], result["ci_high"]
    out["non_inferior"] = bool(out["ci_low"] > -margin)
    if result["p_value"] is None:
        out["note"] = "zero variance in both arms"
    return out


def matches_with_fewer_steps(
    runs: pd.DataFrame, candidate: str, full: str, margin: float, confidence: float = 0.95
) -> dict:
    """A subset / curriculum arm against the full-data arm on final accuracy and steps taken.

    Estimated: the non-inferiority of the candidate's final accuracy (:func:`non_inferiority`)
    and the fraction of the full arm's optimizer steps the candidate took
    (``mean steps_candidate / mean steps_full``, steps as recorded per run). With final
    evaluations only, "steps-to-match" is this fraction for a non-inferior arm; a budget ladder
    (the same arm at several ``max_steps``) gives the smallest matching fraction, see
    :func:`steps_to_match_ladder`. ``runs`` holds one benchmark.
    """
    a = runs[runs["algorithm"] == candidate]
    b = runs[runs["algorithm"] == full]
    result = non_inferiority(a["value"].to_numpy(), b["value"].to_numpy(), margin, confidence)
    steps_a, steps_b = a["steps"].astype(float).mean(), b["steps"].astype(float).mean()
    result["fraction"] = float(steps_a / steps_b) if steps_b else None
    result["steps_candidate"], result["steps_full"] = float(steps_a), float(steps_b)
    return result


def steps_to_match_ladder(
    runs: pd.DataFrame, candidates: list[str], full: str, margin: float, confidence: float = 0.95
) -> dict:
    """The smallest step fraction at which an arm of a budget ladder is non-inferior to the full arm.

    ``candidates`` are arms differing only in their step budget. Each is tested with
    :func:`matches_with_fewer_steps`; the answer is the smallest fraction among the non-inferior
    ones (None when none is). Each rung is its own test (no multiplicity correction: the claim is
    about the one rung named)."""
    rungs = [
        {"algorithm": c, **matches_with_fewer_steps(runs, c, full, margin, confidence)} for c in candidates
    ]
    matching = [r["fraction"] for r in rungs if r["non_inferior"] and r["fraction"] is not None]
    return {
        "fraction": min(matching) if matching else None,
        "rungs": sorted(rungs, key=lambda r: r["fraction"] or 0),
    }


def steps_to_match_curve(
    curve: pd.DataFrame, full_final: np.ndarray, full_steps: float, margin: float, confidence: float = 0.95
) -> dict:
    """Steps-to-match from intermediate evaluations of the candidate arm.

    ``curve``: ``seed, step, accuracy`` (evaluations during training). Per seed, the first step at
    which accuracy >= ``mean(full_final) - margin``, as a fraction of ``full_steps``; seeds that
    never match are counted in ``never_matched`` and left out of the mean. Estimated: the mean
    fraction over the seeds that match, with a t-interval. oxstudy records the curve with
    ``measure.eval_every`` (``train.eval_curve`` of each run record, plus the final evaluation).
    """
    target = float(np.mean(full_final)) - margin
    fractions = []
    never = 0
    for _, group in curve.sort_values("step").groupby("seed"):
        hit = group[group["accuracy"] >= target]
        if hit.empty:
            never += 1
            fractions.append(math.inf)
        else:
            fractions.append(float(hit["step"].iloc[0]) / full_steps)
    finite = np.asarray([f for f in fractions if math.isfinite(f)], dtype=float)
    summary = describe(finite, confidence) if finite.size else {"mean": None, "ci_low": None, "ci_high": None}
    return {
        "target": target,
        "fractions": fractions,
        "never_matched": never,
        "mean_fraction": summary["mean"],
        "ci_low": summary["ci_low"],
        "ci_high": summary["ci_high"],
    }
