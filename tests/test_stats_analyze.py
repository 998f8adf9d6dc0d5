"""The assembled analysis (oxstudy.stats.analyze) on small tables."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from oxstudy.errors import InputError
from oxstudy.stats.analyze import analyze
from oxstudy.stats.synthetic import synthetic_study

TOP_KEYS = {"schema", "conventions", "cells", "comparisons", "rankings", "inversions", "factorial", "leverage",
            "power", "warnings"}


@pytest.fixture(scope="module")
def study():
    runs, items = synthetic_study(n_algorithms=4, n_models=2, n_seeds=5, n_benchmarks=2, n_items=120, rng_seed=2)
    return runs, items


@pytest.fixture(scope="module")
def result(study):
    runs, items = study
    return analyze(runs, items=items, baseline="dpo", correction="holm", n_resamples=2000, factors=["params"])


def _values(runs, model, alg, bench):
    sel = runs[(runs.model == model) & (runs.algorithm == alg) & (runs.benchmark == bench)]
    return sel["value"].to_numpy()


def test_schema_and_json_without_nan(result):
    assert set(result) >= TOP_KEYS
    assert result["schema"] == "oxstudy.analysis/2"
    json.dumps(result, allow_nan=False)  # raises on any NaN/inf left in


def test_cells_and_comparisons_equal_scipy_and_statsmodels(study, result):
    runs, _ = study
    cell = next(c for c in result["cells"] if (c["model"], c["algorithm"], c["benchmark"]) == ("m0.5b", "ipo", "bench0"))
    v = _values(runs, "m0.5b", "ipo", "bench0")
    assert cell["mean"] == pytest.approx(v.mean()) and cell["sd"] == pytest.approx(v.std(ddof=1))
    half = stats.t.ppf(0.975, 4) * v.std(ddof=1) / np.sqrt(5)
    assert (cell["ci_low"], cell["ci_high"]) == pytest.approx((v.mean() - half, v.mean() + half))
    assert cell["n_items"] == 120 and cell["item_se"] > 0
    from statsmodels.stats.multitest import multipletests

    rows = [r for r in result["comparisons"] if r["model"] == "m0.5b" and r["benchmark"] == "bench0"]
    assert {r["b"] for r in rows} == {"dpo"} and len(rows) == 3
    p = []
    for r in rows:
        ref = stats.ttest_ind(_values(runs, "m0.5b", r["a"], "bench0"), _values(runs, "m0.5b", "dpo", "bench0"),
                              equal_var=False)
        assert r["p_value"] == pytest.approx(ref.pvalue) and r["test"] == "welch"
        assert r["flag_set_by"] == "welch" and "seeds" in r["conditions_on"]
        p.append(ref.pvalue)
    adjusted = multipletests(p, method="holm")[1]
    np.testing.assert_allclose([r["p_adjusted"] for r in rows], adjusted)
    # item outcomes give McNemar between checkpoints only: labelled, no flag, no correction
    block = rows[0]["checkpoints"]
    assert block["scope"] == "checkpoint-vs-checkpoint" and block["sets_significant"] is False
    assert len(block["pairs"]) == 5 and all(p["p_value"] is not None for p in block["pairs"])
    assert not any(k in block for k in ("significant", "p_adjusted", "combined"))
    assert "paired" not in rows[0]


def test_summary_table_gives_the_same_tests_as_long_table(study):
    runs, _ = study
    long = analyze(runs, baseline="dpo", sections=["comparisons"])
    summary = (runs.groupby(["model", "algorithm", "benchmark", "metric"], sort=False)["value"]
               .agg(mean="mean", sd=lambda s: s.std(ddof=1), n="size").reset_index())
    summ = analyze(summary, baseline="dpo", sections=["comparisons"])
    for r1, r2 in zip(long["comparisons"], summ["comparisons"], strict=True):
        assert r1["p_value"] == pytest.approx(r2["p_value"]) and r1["cohens_d"] == pytest.approx(r2["cohens_d"])
    with pytest.raises(InputError, match="needs per-seed values"):
        analyze(summary, baseline="dpo", test="mannwhitney")


def test_unequal_seeds_three_vs_five(study):
    runs, _ = study
    drop = (runs.algorithm == "ipo") & (runs.seed >= 3)
    res = analyze(runs[~drop], baseline="dpo", sections=["comparisons", "power"])
    row = next(r for r in res["comparisons"] if r["a"] == "ipo" and r["model"] == "m1b" and r["benchmark"] == "bench1")
    keep = runs[~drop]
    ref = stats.ttest_ind(_values(keep, "m1b", "ipo", "bench1"), _values(keep, "m1b", "dpo", "bench1"), equal_var=False)
    assert (row["n_a"], row["n_b"]) == (3, 5) and row["p_value_welch_satterthwaite"] == pytest.approx(ref.pvalue)
    # with 3 seeds in one arm the flag comes from Welch's statistic on Hsu's df = min(n) - 1 = 2
    assert row["test"] == row["flag_set_by"] == "welch-hsu" and "Hsu" in row["note"]
    assert row["p_value"] == pytest.approx(2 * stats.t.sf(abs(ref.statistic), 2))
    low, high = stats.t.interval(0.95, 2, loc=row["diff"], scale=row["diff"] / ref.statistic)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((low, high))
    assert res["power"][0]["n_per_arm"] == 3


def test_rankings_inversions_leverage(study, result):
    ranks = result["rankings"]
    assert ranks["scale_order"] == ["m0.5b", "m1b"]
    for row in ranks["ranks"]:
        assert 1 <= row["rank_ci_low"] <= row["rank_ci_high"] <= 4
    assert all(-1 <= t["tau"] <= 1 for t in ranks["kendall_tau"])
    for inv in result["inversions"]:
        assert np.sign(inv["diff_from"]) != np.sign(inv["diff_to"])
        assert inv["kind"] in ("significant", "point-estimate") and 0 <= inv["posterior_probability"] <= 1
    lev = result["leverage"]["benchmarks"][0]
    runs, _ = study
    cell_means = runs[runs.benchmark == "bench0"].groupby(["model", "algorithm"])["value"].mean()
    by_model = cell_means.groupby("model").mean()
    scale = next(f for f in lev["factors"] if f["factor"] == "scale")
    assert scale["spread_points"] == pytest.approx(100 * (by_model.max() - by_model.min()))
    assert scale["ci_low"] <= scale["spread_points"] <= scale["ci_high"] + 1e-9
    assert 0 <= scale["eta_sq"] <= 1
    spreads = [f["spread_points"] for f in lev["factors"]]
    assert spreads == sorted(spreads, reverse=True)
    assert result["leverage"]["compression"][0]["ratio"] > 1
    assert result["factorial"] and result["factorial"][0]["terms"][0]["term"] == "params"


def test_degenerate_and_bad_inputs():
    base = pd.DataFrame({"model": "m", "algorithm": ["a"] * 3 + ["b"] * 3, "seed": [0, 1, 2] * 2,
                         "benchmark": "x", "value": [0.5] * 3 + [0.4] * 3})
    res = analyze(base, baseline="b", n_resamples=200)
    row = res["comparisons"][0]
    assert row["p_value"] is None and row["significant"] is None and "zero variance" in row["note"]
    json.dumps(res, allow_nan=False)
    with pytest.raises(InputError, match="unknown baseline 'zz'"):
        analyze(base, baseline="zz")
    for diff in (0.0, -1.0, float("nan")):
        with pytest.raises(InputError, match="--power-diff: .* positive number of points"):
            analyze(base, baseline="b", power_diffs=[1.0, diff])
    # one arm with a single seed: that comparison is descriptive, the rest of the analysis goes on
    single = base.assign(seed=[0, 1, 2, 0, 0, 0]).drop_duplicates(["algorithm", "seed"])
    single = pd.concat([single, base.assign(algorithm="c", value=[0.45, 0.46, 0.44] * 2).iloc[:3]])
    res = analyze(single, baseline="b", n_resamples=200)
    rows = {r["a"]: r for r in res["comparisons"]}
    assert rows["a"]["p_value"] is None and "single seed for b" in rows["a"]["note"]
    assert rows["a"]["n_b"] == 1 and rows["a"]["diff"] == pytest.approx(0.1)
    assert any("single seed" in w for w in res["warnings"]) and res["power"] and res["rankings"]
    mixed = base.assign(metric=["acc"] * 3 + ["f1"] * 3)
    with pytest.raises(InputError, match="mixed metrics"):
        analyze(mixed, baseline="b")
    dup = base.assign(seed=[0, 0, 1, 0, 1, 2])
    with pytest.raises(InputError, match="duplicate run"):
        analyze(dup, baseline="b")
    one_seed = base.drop_duplicates("algorithm")
    res = analyze(one_seed, baseline="b", n_resamples=100)
    assert any("single seed" in w for w in res["warnings"])
    assert res["comparisons"][0]["p_value"] is None


def test_deterministic(study):
    runs, items = study
    a = analyze(runs, items=items, baseline="dpo", n_resamples=500, sections=["comparisons", "rankings"])
    b = analyze(runs, items=items, baseline="dpo", n_resamples=500, sections=["rankings", "comparisons"])
    assert a == b


# 5 seeds with a small sd against 3 seeds with a 10x larger sd: the regime where Student rejected in
# 0.138 of null studies (bench_calibration). Student's pooled p is 0.014; Welch on Hsu's df 2 is 0.128.
NARROW_5 = [0.50, 0.51, 0.49, 0.50, 0.52]
WIDE_3 = [0.55, 0.75, 0.65]


def _unequal_study() -> pd.DataFrame:
    return pd.DataFrame([{"model": "m", "algorithm": alg, "seed": s, "benchmark": "x", "value": v}
                         for alg, vals in (("wide", WIDE_3), ("narrow", NARROW_5)) for s, v in enumerate(vals)])


@pytest.mark.parametrize("test", ["student", "mannwhitney", "permutation"])
def test_a_chosen_uncalibrated_test_is_reported_and_welch_sets_the_flag(test):
    """--test student|mannwhitney|permutation: Welch (Hsu) sets significant/flag_set_by; the chosen test
    is computed (equal to scipy) and reported as p_value_<test>, labelled as setting no flag."""
    res = analyze(_unequal_study(), baseline="narrow", test=test, correction="none", sections=["comparisons"])
    row = res["comparisons"][0]
    welch = stats.ttest_ind(WIDE_3, NARROW_5, equal_var=False)
    hsu_p = 2 * stats.t.sf(abs(welch.statistic), 2)  # Hsu's df = min(3, 5) - 1, written out
    reference = {"student": stats.ttest_ind(WIDE_3, NARROW_5).pvalue,
                 # ties in NARROW_5, small arms: U's exact permutation distribution, the most extreme split
                 "mannwhitney": 2 / 56,
                 "permutation": 2 / 56}  # the one most extreme split of C(8, 3) = 56, either sign
    assert row[f"p_value_{test}"] == pytest.approx(reference[test])
    assert row["reported_test"] == test and row["test"] == row["flag_set_by"] == "welch-hsu"
    assert row["p_value"] == pytest.approx(hsu_p) and hsu_p > 0.05
    assert row[f"p_value_{test}"] < 0.05  # the chosen test alone would set the flag ...
    assert row["significant"] is False  # ... but sets no flag
    assert "sets no flag" in row["note"]
    conv = res["conventions"]
    assert conv["test"] == "welch" and conv["reported_test"]["test"] == test
    assert "sets no flag" in conv["reported_test"]["label"] and "welch" in conv["significance"]["rule"]
    json.dumps(res, allow_nan=False)


def test_chosen_test_reported_from_summary_statistics():
    """A summary table with --test student: Student's p from the sds, Welch sets the flag."""
    summary = pd.DataFrame([{"model": "m", "algorithm": alg, "benchmark": "x", "mean": np.mean(v),
                             "sd": np.std(v, ddof=1), "n": len(v)}
                            for alg, v in (("wide", WIDE_3), ("narrow", NARROW_5))])
    row = analyze(summary, baseline="narrow", test="student", sections=["comparisons"])["comparisons"][0]
    assert row["p_value_student"] == pytest.approx(stats.ttest_ind(WIDE_3, NARROW_5).pvalue)
    assert row["flag_set_by"] == "welch-hsu" and row["significant"] is False


def test_item_standard_error_clusters_by_item():
    from oxstudy.stats.descriptives import item_standard_error

    # 2 runs x 4 items: item means 1, 0.5, 0, 0.5 -> sd 0.4082 (ddof 1) / sqrt(4)
    scores = np.array([[1, 1, 0, 0], [1, 0, 0, 1]], dtype=float)
    assert item_standard_error(scores) == pytest.approx(np.std([1, 0.5, 0, 0.5], ddof=1) / 2)
    assert item_standard_error(scores[:1]) == pytest.approx(np.std([1, 1, 0, 0], ddof=1) / 2)  # lm-eval's


def test_item_standard_error_matches_the_spread_over_fresh_item_sets():
    # 5 runs share 200 items of Beta(0.5, 0.5) difficulty: the se must estimate how the cell mean
    # varies when another item set is drawn (the old per-run formula gave ~0.016 against ~0.028)
    from oxstudy.stats.descriptives import item_standard_error

    rng = np.random.default_rng(0)
    means, ses = [], []
    for _ in range(400):
        difficulty = rng.beta(0.5, 0.5, 200)
        scores = (rng.random((5, 200)) < difficulty).astype(float)
        means.append(scores.mean())
        ses.append(item_standard_error(scores))
    assert np.mean(ses) == pytest.approx(np.std(means, ddof=1), rel=0.1)


def test_a_metric_outside_zero_one_does_not_change_the_units_of_the_proportions(study, result):
    runs, _ = study
    mixed = runs.copy()
    bleu = mixed["benchmark"] == "bench0"
    mixed.loc[bleu, "value"] = mixed.loc[bleu, "value"] * 40  # a BLEU-like metric around 20
    mixed_result = analyze(mixed, baseline="dpo", correction="holm", n_resamples=2000, factors=["params"])
    conventions = mixed_result["conventions"]
    assert conventions["points_per_unit_by_benchmark"] == {"bench0/exact_match": 1.0, "bench1/exact_match": 100.0}
    assert any("different scales" in w for w in mixed_result["warnings"])

    def power_rows(res, bench):
        return [(r["model"], r["mde_points"], [s["seeds_per_arm"] for s in r["seeds_needed"]])
                for r in res["power"] if r["benchmark"] == bench]

    # bench1 (a proportion) is planned in points exactly as without the other metric
    for mixed_row, row in zip(power_rows(mixed_result, "bench1"), power_rows(result, "bench1"), strict=True):
        assert mixed_row[0] == row[0] and mixed_row[1] == pytest.approx(row[1]) and mixed_row[2] == row[2]
    # bench0 in its own units: its MDE is 40 x the proportion's, divided by the 100 points per unit
    for (_, mde_mixed, _), (_, mde, _) in zip(power_rows(mixed_result, "bench0"), power_rows(result, "bench0"), strict=True):
        assert mde_mixed == pytest.approx(mde * 40 / 100)
    spreads = {b["benchmark"]: b["algorithm_spread"]["spread_points"] for b in mixed_result["leverage"]["benchmarks"]}
    reference = {b["benchmark"]: b["algorithm_spread"]["spread_points"] for b in result["leverage"]["benchmarks"]}
    assert spreads["bench1"] == pytest.approx(reference["bench1"])
    assert not [c for c in mixed_result["leverage"]["compression"] if {c["in_domain"], c["other"]} == {"bench0", "bench1"}]
