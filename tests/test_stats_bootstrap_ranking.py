"""Bootstrap, rankings, factorial ANOVA and leverage helpers against references."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from oxstudy.stats import bootstrap as bs
from oxstudy.stats import factorial, leverage, ranking


def test_t_replicates_give_the_t_interval_and_points_for_single_seeds():
    rng = bs.generator(0, 1)
    reps = bs.t_replicates(np.array([0.5, 0.7, 0.3]), np.array([0.02, 0.05, np.nan]), np.array([5, 3, 1]),
                           200_000, rng)
    assert reps.shape == (200_000, 3)
    for c, (mean, sd, n) in enumerate([(0.5, 0.02, 5), (0.7, 0.05, 3)]):
        low, high = bs.percentile_interval(reps[:, c])
        ref = stats.t.interval(0.95, n - 1, loc=mean, scale=sd / np.sqrt(n))
        assert (low, high) == pytest.approx(ref, rel=0.01)
    assert np.all(reps[:, 2] == 0.3)  # one seed: no spread to draw from
    np.testing.assert_array_equal(bs.t_replicates(0.5, 0.02, 5, 10, bs.generator(0, 1)),
                                  bs.t_replicates(0.5, 0.02, 5, 10, bs.generator(0, 1)))


def test_percentile_interval():
    low, high = bs.percentile_interval(np.arange(101.0))
    assert (low, high) == pytest.approx((2.5, 97.5))


def test_kendall_tau_b_equals_scipy_with_ties():
    rng = np.random.default_rng(3)
    for _ in range(20):
        x = rng.integers(0, 4, 8).astype(float)
        y = rng.integers(0, 4, 8).astype(float)
        ref = stats.kendalltau(x, y).statistic
        ours = ranking.kendall_tau_b(x, y)
        if np.isnan(ref):
            assert np.isnan(ours)
        else:
            assert ours == pytest.approx(ref)
    batch = rng.random((5, 6))
    other = rng.random((5, 6))
    np.testing.assert_allclose(ranking.kendall_tau_b(batch, other),
                               [stats.kendalltau(batch[i], other[i]).statistic for i in range(5)])


def test_ranks_best_is_one_and_ties_average():
    np.testing.assert_array_equal(ranking.ranks(np.array([0.5, 0.7, 0.5, 0.1])), [2.5, 1, 2.5, 4])
    low, high = ranking.rank_intervals(np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 0.0]]), 0.5)
    assert low[0] == 1 and high[1] == 2


def test_anova_equals_statsmodels_and_summary_pseudo_observations():
    import statsmodels.formula.api as smf
    from statsmodels.stats.anova import anova_lm

    rng = np.random.default_rng(5)
    rows = []
    for scale in (1, 7):
        for ft in ("full", "lora"):
            for _seed in range(4 if ft == "lora" else 3):  # unbalanced
                rows.append({"params": scale, "finetune": ft,
                             "value": 0.3 + 0.1 * (scale == 7) + 0.05 * (ft == "lora") * (scale == 7) + rng.normal(0, 0.02)})
    data = pd.DataFrame(rows)
    res = factorial.anova(data, ["params", "finetune"])
    ref = anova_lm(smf.ols("value ~ C(params) * C(finetune)", data=data).fit(), typ=2)
    terms = {t["term"]: t for t in res["terms"]}
    assert set(terms) == {"params", "finetune", "params:finetune"}
    assert terms["params:finetune"]["sum_sq"] == pytest.approx(ref.loc["C(params):C(finetune)", "sum_sq"])
    assert terms["params"]["p_value"] == pytest.approx(ref.loc["C(params)", "PR(>F)"])
    ss_res = ref.loc["Residual", "sum_sq"]
    assert terms["finetune"]["partial_eta_sq"] == pytest.approx(
        ref.loc["C(finetune)", "sum_sq"] / (ref.loc["C(finetune)", "sum_sq"] + ss_res))
    # the same ANOVA from each cell's n, mean and sd only
    pseudo = []
    for (p, f), sub in data.groupby(["params", "finetune"]):
        for v in factorial.pseudo_observations(sub["value"].mean(), sub["value"].std(ddof=1), len(sub)):
            pseudo.append({"params": p, "finetune": f, "value": v})
    res2 = factorial.anova(pd.DataFrame(pseudo), ["params", "finetune"])
    for t1, t2 in zip(res["terms"], res2["terms"], strict=True):
        assert t1["F"] == pytest.approx(t2["F"]) and t1["p_value"] == pytest.approx(t2["p_value"])
    assert len(res["cell_means"]) == 4


def test_anova_with_one_seed_per_cell_is_descriptive():
    data = pd.DataFrame({"a": [1, 1, 2, 2], "b": ["x", "y", "x", "y"], "value": [0.1, 0.2, 0.3, 0.5]})
    res = factorial.anova(data, ["a", "b"])
    assert res["terms"] == [] and "no inference" in res["note"]
    assert len(res["cell_means"]) == 4


def test_leverage_sums_of_squares_by_hand():
    values = {"x": [1.0, 2.0, 3.0], "y": [5.0, 6.0], "z": [9.0, 9.5, 10.0, 10.5]}
    n = np.array([len(v) for v in values.values()])
    mean = np.array([np.mean(v) for v in values.values()])
    sd = np.array([np.std(v, ddof=1) for v in values.values()])
    flat = np.concatenate(list(values.values()))
    ss_total, grand = leverage.total_sum_of_squares(n, mean, sd)
    assert ss_total == pytest.approx(((flat - flat.mean()) ** 2).sum())
    groups = np.array(["g1", "g1", "g2"], dtype=object)
    g1 = np.concatenate([values["x"], values["y"]])
    g2 = np.array(values["z"])
    expected = len(g1) * (g1.mean() - flat.mean()) ** 2 + len(g2) * (g2.mean() - flat.mean()) ** 2
    assert leverage.between_sum_of_squares(n, mean, groups) == pytest.approx(expected)
    spread = leverage.factor_spread(mean, np.tile(mean, (10, 1)), groups)
    assert spread["spread"] == pytest.approx(9.75 - (2.0 + 5.5) / 2)


def test_factorial_with_an_empty_cell_tests_main_effects_only():
    import statsmodels.formula.api as smf
    from statsmodels.stats.anova import anova_lm

    from oxstudy.stats.factorial import anova

    rng = np.random.default_rng(5)
    rows = [{"lr": lr, "beta": beta, "value": 0.5 + 0.02 * (lr == "hi") + rng.normal(0, 0.01)}
            for lr in ("lo", "hi") for beta in ("0.1", "0.3", "1.0") for _ in range(3)
            if not (lr == "hi" and beta == "1.0")]  # one of the six combinations has no runs
    data = pd.DataFrame(rows)
    result = anova(data, ["lr", "beta"])
    assert result["fit"] == "main effects only" and "1 of 6 factor combinations have no runs" in result["note"]
    assert "lr=hi, beta=1.0" in result["note"]
    reference = anova_lm(smf.ols("value ~ C(lr) + C(beta)", data=data).fit(), typ=2)
    terms = {t["term"]: t for t in result["terms"]}
    assert set(terms) == {"lr", "beta"}  # no interaction row
    for term in ("lr", "beta"):
        row = reference.loc[f"C({term})"]
        assert terms[term]["df"] == row["df"] and terms[term]["F"] == pytest.approx(row["F"])
        assert terms[term]["p_value"] == pytest.approx(row["PR(>F)"])
    full = data[data["beta"] != "1.0"]  # complete 2 x 2: the full factorial with its interaction
    assert anova(full, ["lr", "beta"])["fit"] == "full factorial"
    assert {t["term"] for t in anova(full, ["lr", "beta"])["terms"]} == {"lr", "beta", "lr:beta"}
