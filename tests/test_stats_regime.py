"""Difficulty, transfer and alignment statistics against scipy / statsmodels / hand-computed values,
plus a calibration simulation of the shortcut x alignment interaction test."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from scipy import stats

from oxstudy.stats.alignment import interaction_test, shortcut_effects, simulate_interaction_rejections
from oxstudy.stats.difficulty import (
    accuracy_by_level,
    level_gains,
    matches_with_fewer_steps,
    non_inferiority,
    plateau_test,
    steps_to_match_curve,
)
from oxstudy.stats.transfer import transfer_differences, transfer_matrix, welch_difference


def items_frame(spec):
    """spec: {(algorithm, seed, level): [scores...]} -> a tidy items frame."""
    rows = []
    for (algorithm, seed, level), scores in spec.items():
        rows += [
            {"model": "m", "algorithm": algorithm, "seed": seed, "benchmark": "b", "level": level, "score": s}
            for s in scores
        ]
    return pd.DataFrame(rows)


def test_accuracy_by_level_is_a_t_interval_over_per_seed_accuracies():
    items = items_frame(
        {
            ("A", 1, 1): [1, 1, 0, 1],
            ("A", 2, 1): [1, 0, 0, 1],
            ("A", 3, 1): [1, 1, 1, 1],
            ("A", 1, 2): [0, 0, 1, 0],
            ("A", 2, 2): [0, 0, 0, 0],
            ("A", 3, 2): [1, 0, 1, 0],
        }
    )
    table = accuracy_by_level(items).set_index("level")
    per_seed = np.array([0.75, 0.5, 1.0])
    low, high = stats.t.interval(0.95, 2, loc=per_seed.mean(), scale=stats.sem(per_seed))
    assert table.loc[1, "mean"] == pytest.approx(0.75)
    assert (table.loc[1, "ci_low"], table.loc[1, "ci_high"]) == pytest.approx((low, high))
    assert table.loc[2, "mean"] == pytest.approx(0.25) and table.loc[2, "n_items"] == 4


def test_plateau_slope_is_the_mean_per_seed_ols_slope_with_t_interval():
    rng = np.random.default_rng(3)
    spec = {}
    for seed in range(5):
        for level, p_arm in zip((1, 2, 3, 4), (0.9, 0.7, 0.5, 0.35), strict=True):
            spec[("A", seed, level)] = list(rng.random(200) < p_arm)
            spec[("R", seed, level)] = list(rng.random(200) < 0.3)
    items = items_frame(spec)
    gains = level_gains(items, "A", "R")
    result = plateau_test(gains)
    slopes = [np.polyfit(g["level"], g["gain"], 1)[0] for _, g in gains.groupby("seed")]
    assert result["slope"] == pytest.approx(np.mean(slopes))
    low, high = stats.t.interval(0.95, 4, loc=np.mean(slopes), scale=stats.sem(slopes))
    assert (result["ci_low"], result["ci_high"]) == pytest.approx((low, high))
    assert result["p_value"] == pytest.approx(stats.ttest_1samp(slopes, 0).pvalue)
    assert result["plateau"] is True
    # paired by seed: seed s's gain at level l is its own accuracy minus R's at the same seed
    one = gains[(gains["seed"] == 0) & (gains["level"] == 1)]["gain"].iloc[0]
    assert one == pytest.approx(np.mean(spec[("A", 0, 1)]) - np.mean(spec[("R", 0, 1)]))


def test_flat_gains_are_no_plateau():
    gains = pd.DataFrame(
        [
            {"model": "m", "benchmark": "b", "seed": s, "level": lv, "gain": 0.1 + 0.01 * ((s + lv) % 3 - 1)}
            for s in range(5)
            for lv in (1, 2, 3)
        ]
    )
    assert plateau_test(gains)["plateau"] is False


def test_non_inferiority_uses_the_flag_rules_welch_interval():
    candidate, full = np.array([0.50, 0.52, 0.49, 0.55, 0.51]), np.array([0.53, 0.54, 0.50, 0.56, 0.52])
    result = non_inferiority(candidate, full, margin=0.05)
    reference = stats.ttest_ind(candidate, full, equal_var=False).confidence_interval(0.95)
    assert (result["ci_low"], result["ci_high"]) == pytest.approx((reference.low, reference.high))
    assert result["non_inferior"] == (reference.low > -0.05)
    assert non_inferiority(candidate, full, margin=0.001)["non_inferior"] is False
    # unequal seeds, the 4-seed arm with the larger sd: Hsu's df = 3, as oxstudy analyze's flag rule
    full = full[:4]
    assert full.std(ddof=1) > candidate.std(ddof=1)
    result = non_inferiority(candidate, full, margin=0.05)
    diff = candidate.mean() - full.mean()
    half = stats.t.ppf(0.975, 3) * np.sqrt(candidate.var(ddof=1) / 5 + full.var(ddof=1) / 4)
    assert (result["ci_low"], result["ci_high"]) == pytest.approx((diff - half, diff + half))


def test_matches_with_fewer_steps_reports_the_step_fraction():
    runs = pd.DataFrame(
        [{"algorithm": "easy", "value": v, "steps": 45} for v in (0.50, 0.51, 0.52)]
        + [{"algorithm": "full", "value": v, "steps": 100} for v in (0.50, 0.52, 0.51)]
    )
    result = matches_with_fewer_steps(runs, "easy", "full", margin=0.03)
    assert result["fraction"] == pytest.approx(0.45) and result["non_inferior"] is True


def test_steps_to_match_from_a_curve():
    curve = pd.DataFrame(
        {
            "seed": [0, 0, 0, 1, 1, 1],
            "step": [10, 20, 30, 10, 20, 30],
            "accuracy": [0.2, 0.48, 0.6, 0.49, 0.5, 0.5],
        }
    )
    result = steps_to_match_curve(curve, np.array([0.5, 0.5]), full_steps=40, margin=0.02)
    assert result["target"] == pytest.approx(0.48)
    assert result["fractions"] == [0.5, 0.25] and result["never_matched"] == 0


def test_transfer_differences_match_scipy_welch():
    rng = np.random.default_rng(0)
    rows = [
        {"model": "m", "train": train, "benchmark": bench, "seed": s, "value": mu + rng.normal(0, 0.02)}
        for train, bench, mu in (
            ("gsm8k", "math_numeric", 0.40),
            ("math", "math_numeric", 0.35),
            ("gsm8k", "gsm8k", 0.6),
            ("math", "gsm8k", 0.55),
        )
        for s in range(5)
    ]
    runs = pd.DataFrame(rows)
    matrix = transfer_matrix(runs)
    assert len(matrix) == 4 and matrix["n_seeds"].tolist() == [5] * 4
    table = transfer_differences(runs).set_index("benchmark")
    for bench in ("gsm8k", "math_numeric"):
        a = runs[(runs["train"] == "gsm8k") & (runs["benchmark"] == bench)]["value"]
        b = runs[(runs["train"] == "math") & (runs["benchmark"] == bench)]["value"]
        reference = stats.ttest_ind(a, b, equal_var=False)
        ci = reference.confidence_interval(0.95)
        row = table.loc[bench]
        assert row["difference"] == pytest.approx(a.mean() - b.mean())
        assert row["p_value"] == pytest.approx(reference.pvalue)
        assert (row["ci_low"], row["ci_high"]) == pytest.approx((ci.low, ci.high))


def alignment_study(gamma, seed=0):
    rng = np.random.default_rng(seed)
    passk = {("qwen", "math"): 0.9, ("qwen", "logic"): 0.3, ("llama", "math"): 0.6, ("llama", "logic"): 0.1}
    rows = []
    for (model, task), p in passk.items():
        level = rng.uniform(0.3, 0.7)
        for algorithm, mean in (("GRPO", level), ("OneShot", level - 0.05 + gamma * (p - 0.475))):
            rows += [(model, task, algorithm, s, mean + rng.normal(0, 0.02)) for s in range(5)]
    runs = pd.DataFrame(rows, columns=["model", "task", "algorithm", "seed", "value"])
    alignment = pd.DataFrame([{"model": m, "task": t, "pass_at_k": p} for (m, t), p in passk.items()])
    return runs, alignment


def test_interaction_test_equals_statsmodels_ols():
    runs, alignment = alignment_study(gamma=0.2)
    result = interaction_test(runs, alignment, "GRPO", "OneShot")
    frame = runs.merge(alignment, on=["model", "task"])
    frame["S"] = (frame["algorithm"] == "OneShot").astype(float)
    frame["pc"] = frame["pass_at_k"] - alignment["pass_at_k"].mean()
    frame["cell"] = frame["model"] + "|" + frame["task"]
    fit = smf.ols("value ~ 0 + C(cell) + S + S:pc", data=frame).fit()
    assert result["gamma"] == pytest.approx(fit.params["S:pc"])
    assert result["se"] == pytest.approx(fit.bse["S:pc"])
    assert result["p_value"] == pytest.approx(fit.pvalues["S:pc"])
    assert result["df"] == fit.df_resid == 40 - 6
    low, high = fit.conf_int().loc["S:pc"]
    assert (result["ci_low"], result["ci_high"]) == pytest.approx((low, high))
    assert result["beta"] == pytest.approx(fit.params["S"])


def test_shortcut_effects_are_stratified_by_alignment():
    runs, alignment = alignment_study(gamma=0.2)
    effects = shortcut_effects(runs, alignment, "GRPO", ["OneShot"], threshold=0.5).set_index(
        ["model", "task"]
    )
    assert effects.loc[("qwen", "math"), "aligned"] and not effects.loc[("llama", "logic"), "aligned"]
    a = runs[(runs.model == "qwen") & (runs.task == "math") & (runs.algorithm == "OneShot")]["value"]
    b = runs[(runs.model == "qwen") & (runs.task == "math") & (runs.algorithm == "GRPO")]["value"]
    assert effects.loc[("qwen", "math"), "difference"] == pytest.approx(a.mean() - b.mean())
    assert effects.loc[("qwen", "math"), "p_value"] == pytest.approx(
        stats.ttest_ind(a, b, equal_var=False).pvalue
    )


def test_interaction_test_is_calibrated_and_has_power():
    null = simulate_interaction_rejections(2000, gamma=0.0, rng_seed=1)
    assert 0.034 <= null <= 0.066  # binomial 99.9% range around 0.05 at n=2000 is ~[0.034, 0.066]
    power = simulate_interaction_rejections(200, gamma=0.1, rng_seed=2)
    assert power >= 0.8


def test_interaction_test_over_rejects_with_unexplained_cell_effects():
    """The documented limitation: inference is over seeds for these cells, so shortcut effects that
    vary between cells for reasons other than pass@k look like an interaction."""
    assert simulate_interaction_rejections(1000, gamma=0.0, cell_effect_sd=0.02, rng_seed=4) > 0.1


def test_transfer_difference_of_constant_arms_has_no_p_value():
    # numpy's var of [0.813] * 3 is ~1e-32, not 0: without the exact-zero sd this gave p ~ 6e-32
    result = welch_difference(np.array([0.813] * 3), np.array([0.5] * 3))
    assert result["p_value"] is None and result["note"] == "zero variance in both arms"
    assert result["ci_low"] == result["ci_high"] == pytest.approx(0.313)
    # 2 vs 4 seeds: Hsu's df = 1, as oxstudy analyze
    a, b = np.array([0.61, 0.60]), np.array([0.50, 0.55, 0.52, 0.58])
    result = welch_difference(a, b)
    t = (a.mean() - b.mean()) / np.sqrt(a.var(ddof=1) / 2 + b.var(ddof=1) / 4)
    assert result["test"] == "welch-hsu" and result["p_value"] == pytest.approx(2 * stats.t.sf(abs(t), 1))
