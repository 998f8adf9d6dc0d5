"""Hypothesis tests and effect sizes against scipy / statsmodels / hand computation."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from oxstudy.stats import tests as ht

RNG = np.random.default_rng(7)
A5 = np.array([0.61, 0.64, 0.59, 0.66, 0.63])
B5 = np.array([0.55, 0.58, 0.60, 0.54, 0.57])
B3 = np.array([0.52, 0.60, 0.57])


@pytest.mark.parametrize("a,b", [(A5, B5), (A5, B3), (B3, A5), (RNG.normal(0, 1, 8), RNG.normal(0.5, 3, 4))])
def test_welch_and_student_equal_scipy(a, b):
    welch = ht.welch(a, b)
    ref = stats.ttest_ind(a, b, equal_var=False)
    assert welch["test"] == "welch"
    assert welch["statistic"] == pytest.approx(ref.statistic, rel=1e-12)
    assert welch["p_value"] == pytest.approx(ref.pvalue, rel=1e-10)
    assert welch["df"] == pytest.approx(ref.df, rel=1e-12)
    student = ht.student(a, b)
    ref = stats.ttest_ind(a, b, equal_var=True)
    assert student["p_value"] == pytest.approx(ref.pvalue, rel=1e-10)
    assert student["df"] == len(a) + len(b) - 2


def test_from_summary_stats_equals_ttest_ind_from_stats():
    res = ht.t_test_from_stats(71.2, 1.3, 5, 69.9, 0.8, 3)
    ref = stats.ttest_ind_from_stats(71.2, 1.3, 5, 69.9, 0.8, 3, equal_var=False)
    assert res["p_value"] == pytest.approx(ref.pvalue, rel=1e-10)
    assert res["statistic"] == pytest.approx(ref.statistic, rel=1e-12)


def test_zero_variance_gives_a_note_not_nan():
    res = ht.welch(np.array([0.5, 0.5, 0.5]), np.array([0.4, 0.4, 0.4]))
    assert res["p_value"] is None and res["statistic"] is None
    assert "zero variance" in res["note"]
    # one arm constant, the other not: still a valid Welch test
    res = ht.welch(np.array([0.5, 0.5, 0.5]), np.array([0.4, 0.45, 0.41]))
    ref = stats.ttest_ind([0.5, 0.5, 0.5], [0.4, 0.45, 0.41], equal_var=False)
    assert res["p_value"] == pytest.approx(ref.pvalue)
    assert ht.t_test_from_stats(1.0, 0.1, 1, 0.0, 0.1, 5)["p_value"] is None


def test_mann_whitney_equals_scipy_including_ties_in_large_samples():
    a = np.array([1, 2, 2, 3, 5.0, 8, 9, 9, 10])
    b = np.array([2, 3, 3, 4, 6, 7.0, 11, 12, 12, 13])
    res = ht.mann_whitney(a, b)
    ref = stats.mannwhitneyu(a, b, alternative="two-sided")
    assert res["p_value"] == pytest.approx(ref.pvalue)
    assert res["statistic"] == ref.statistic
    same = ht.mann_whitney(np.ones(3), np.ones(4))
    assert same["p_value"] == 1.0 and "identical" in same["note"]
    small = ht.mann_whitney(np.array([0.5, 0.6, 0.7]), np.array([0.3, 0.4, 0.45]))  # no ties: scipy's exact
    assert small["p_value"] == pytest.approx(0.1) and small["note"] is None


def _exact_u_p(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided p of U over every split of the pooled values (midranks), written out."""
    pooled = np.concatenate([a, b])
    ranks = stats.rankdata(pooled)
    u = [ranks[list(idx)].sum() - a.size * (a.size + 1) / 2 for idx in itertools.combinations(range(pooled.size), a.size)]
    observed = ranks[: a.size].sum() - a.size * (a.size + 1) / 2
    u = np.array(u)
    return min(1.0, 2 * min(np.mean(u >= observed - 1e-9), np.mean(u <= observed + 1e-9)))


def test_mann_whitney_with_ties_in_small_samples_is_the_exact_permutation_distribution():
    # scipy's normal approximation says 0.059 here; no split of six values can give less than 2/20
    a, b = np.array([0.5, 0.5, 0.6]), np.array([0.3, 0.3, 0.3])
    res = ht.mann_whitney(a, b)
    assert res["p_value"] == pytest.approx(0.1) and "exact permutation" in res["note"]
    a, b = np.array([1, 2, 2, 3, 5.0]), np.array([2, 3, 3, 4, 6, 7.0])
    assert ht.mann_whitney(a, b)["p_value"] == pytest.approx(_exact_u_p(a, b))
    assert ht.mann_whitney(a, b)["statistic"] == stats.mannwhitneyu(a, b).statistic


def test_permutation_is_exact_for_five_vs_five():
    res = ht.permutation(A5, B5)
    # exact: count all 252 splits by hand
    pooled = np.concatenate([A5, B5])
    observed = A5.mean() - B5.mean()
    import itertools

    extreme = 0
    for idx in itertools.combinations(range(10), 5):
        mask = np.zeros(10, bool)
        mask[list(idx)] = True
        d = pooled[mask].mean() - pooled[~mask].mean()
        extreme += abs(d) >= abs(observed) - 1e-12
    assert res["p_value"] == pytest.approx(extreme / 252)
    assert res["note"].startswith("exact")


def test_effect_sizes_by_hand():
    sa, sb = A5.std(ddof=1), B3.std(ddof=1)
    pooled = math.sqrt((4 * sa**2 + 2 * sb**2) / 6)
    d = ht.cohens_d(A5.mean(), sa, 5, B3.mean(), sb, 3)
    assert d == pytest.approx((A5.mean() - B3.mean()) / pooled)
    assert ht.hedges_g(d, 5, 3) == pytest.approx(d * (1 - 3 / (4 * 8 - 9)))
    assert ht.cohens_d(1.0, 0.0, 3, 0.5, 0.0, 3) is None


def test_welch_difference_interval_by_hand():
    low, high = ht.diff_interval(A5.mean(), A5.std(ddof=1), 5, B3.mean(), B3.std(ddof=1), 3)
    ref = stats.ttest_ind(A5, B3, equal_var=False)
    ci = ref.confidence_interval(0.95)
    assert (low, high) == pytest.approx((ci.low, ci.high))


def test_mcnemar_matches_statsmodels():
    from statsmodels.stats.contingency_tables import mcnemar

    for only_a, only_b in [(3, 9), (0, 5), (30, 12), (100, 140)]:
        exact = only_a + only_b < 25
        ref = mcnemar([[50, only_a], [only_b, 40]], exact=exact, correction=True)
        res = ht.mcnemar(only_a, only_b)
        assert res["p_value"] == pytest.approx(ref.pvalue, rel=1e-10)
        assert res["test"] == ("mcnemar-exact" if exact else "mcnemar-chi2")
    assert ht.mcnemar(0, 0)["p_value"] == 1.0


def test_mcnemar_checkpoints_pairs_by_seed_and_never_combines():
    rng = np.random.default_rng(0)
    a = (rng.random((3, 200)) < 0.6).astype(float)
    b = (rng.random((5, 200)) < 0.5).astype(float)
    res = ht.mcnemar_checkpoints(a, b, [0, 1, 2], [2, 1, 0, 3, 4])
    assert [(p["seed_a"], p["seed_b"]) for p in res["pairs"]] == [(0, 0), (1, 1), (2, 2)]
    only_a = int(((a[0] == 1) & (b[2] == 0)).sum())
    assert res["pairs"][0]["only_a"] == only_a
    assert "unpaired" in res["note"] and "combined" not in res
    assert ht.mcnemar_checkpoints(a * 0.5, b, [0, 1, 2], [0, 1, 2, 3, 4])["pairs"] == []


def test_permutation_supports_scipy_before_and_after_the_rng_argument(monkeypatch):
    """Defect 6: scipy < 1.15 names the generator ``random_state``; pyproject allows scipy >= 1.11."""
    from scipy import stats as scipy_stats

    real = scipy_stats.permutation_test
    new = ht.permutation(A5, B3, n_resamples=20, rng_seed=3)  # 56 splits > 20: random splits

    def old_scipy(data, statistic, *, permutation_type="independent", vectorized=None, n_resamples=9999,
                  batch=None, alternative="two-sided", axis=0, random_state=None):
        return real(data, statistic, permutation_type=permutation_type, vectorized=vectorized,
                    n_resamples=n_resamples, batch=batch, alternative=alternative, axis=axis, rng=random_state)

    monkeypatch.setattr(scipy_stats, "permutation_test", old_scipy)
    old = ht.permutation(A5, B3, n_resamples=20, rng_seed=3)
    assert old["p_value"] == new["p_value"] and old["note"] == "20 random splits"


def test_welch_df_rule_hsu_for_two_seeds_or_a_small_arm_with_the_larger_sd_else_capped():
    assert ht.welch_df_rule(5, 5, 1.0, 9.0) == "satterthwaite"  # equal seeds: always Welch-Satterthwaite
    assert ht.welch_df_rule(5, 3, 1.0, 3.0) == "hsu"  # 3 seeds, larger sd
    assert ht.welch_df_rule(5, 2, 3.0, 1.0) == ht.welch_df_rule(2, 5, 1.0, 3.0) == "hsu"  # 2 seeds: any sd
    # 3 seeds with the smaller sd: Welch-Satterthwaite df 5.26 (by hand) > 2 * (3 - 1), but no cap
    # below twice the seeds
    assert ht.welch_df_rule(5, 3, 3.0, 1.0) == "satterthwaite"
    assert ht.welch_df_rule(6, 3, 3.0, 1.0) == "capped"  # df 6.65 > 4
    assert ht.welch_df_rule(10, 5, 1.0, 3.0) == "satterthwaite"  # df 4.45 < the cap 8
    res = ht.t_test_from_stats(0.6, 0.01, 5, 0.5, 0.05, 3, df_rule="hsu")
    ref = stats.ttest_ind_from_stats(0.6, 0.01, 5, 0.5, 0.05, 3, equal_var=False)
    assert res["test"] == "welch-hsu" and res["df"] == 2 and res["statistic"] == pytest.approx(ref.statistic)
    assert res["p_value"] == pytest.approx(2 * stats.t.sf(abs(ref.statistic), 2))


def test_capped_df_is_welch_satterthwaite_bounded_by_a_balanced_design_at_the_smaller_n():
    a, b = np.array([0.61, 0.52, 0.58, 0.66, 0.49, 0.57, 0.63, 0.55]), np.array([0.50, 0.54, 0.47])
    ref = stats.ttest_ind(a, b, equal_var=False)
    assert ref.df > 4  # the cap binds
    assert ht.welch_df_rule(a.size, b.size, a.std(ddof=1), b.std(ddof=1)) == "capped"
    res = ht.flag_test_values(a, b)
    assert res["test"] == "welch-capped" and res["df"] == 4
    assert res["statistic"] == pytest.approx(ref.statistic)
    assert res["p_value"] == pytest.approx(2 * stats.t.sf(abs(ref.statistic), 4))
    half = stats.t.ppf(0.975, 4) * np.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size)
    assert (res["ci_low"], res["ci_high"]) == pytest.approx((a.mean() - b.mean() - half, a.mean() - b.mean() + half))
    # without the cap it is scipy's Welch test
    plain = ht.t_test_from_stats(a.mean(), a.std(ddof=1), a.size, b.mean(), b.std(ddof=1), b.size)
    assert plain["df"] == pytest.approx(ref.df) and plain["p_value"] == pytest.approx(ref.pvalue)


@pytest.mark.parametrize("test", ["welch", "student", "mannwhitney", "permutation"])
def test_nan_input_is_an_error_not_a_p_value(test):
    with pytest.raises(ValueError, match="non-finite"):
        ht.run_test(test, np.array([0.5, np.nan, 0.6]), np.array([0.4, 0.45, 0.5]))
    with pytest.raises(ValueError, match="non-finite"):
        ht.flag_test_values(np.array([0.5, 0.55, 0.6]), np.array([0.4, np.inf]))
