"""Two-sample hypothesis tests and effect sizes, each reproducing a reference implementation.

Every function returns a plain dict with ``test`` (which test produced the p-value),
``statistic``, ``p_value`` (two-sided) and ``note``. Degenerate inputs (zero variance in
both arms, identical samples) give ``p_value=None`` and a note saying why, never NaN; NaN or
infinite input values raise ``ValueError``.
"""

from __future__ import annotations

import inspect
import math

import numpy as np
from scipy import stats

TESTS = ("welch", "student", "mannwhitney", "permutation")


def _result(test: str, statistic: float | None, p_value: float | None, df: float | None = None,
            note: str | None = None) -> dict:
    return {"test": test, "statistic": None if statistic is None else float(statistic),
            "p_value": None if p_value is None else float(p_value),
            "df": None if df is None else float(df), "note": note}


def hsu_df(n_a: int, n_b: int) -> int:
    """Hsu's conservative df for Welch's statistic: ``min(n_a, n_b) - 1``.

    With few seeds in one arm and a larger variance there, the Welch-Satterthwaite df
    overstates the information: 5 vs 3 seeds with a 3x sd in the 3-seed arm rejected in 7.2-7.7% of
    null studies and its interval covered 92.3% (``benchmarks/bench_calibration.py``). With this
    df the test's size is at most alpha whatever the variance ratio (normal seed scores).
    """
    return min(n_a, n_b) - 1


#: Welch comparisons with unequal seeds whose smaller arm has at most this many seeds (and the larger
#: sample sd) use Hsu's df.
HSU_MAX_SEEDS = 4


def welch_df_rule(n_a: int, n_b: int, sd_a: float, sd_b: float) -> str:
    """``satterthwaite``, ``hsu`` or ``capped``: which df Welch's statistic is referred to.

    The flag rule's df, chosen so that the test holds its level with few and unequal seeds
    (``benchmarks/bench_calibration.py``; normal seed scores):

    - equal seeds: Welch-Satterthwaite (scipy's ``ttest_ind(equal_var=False)``);
    - unequal seeds with 2 in one arm: Hsu's df (1). One df cannot say which arm's variance
      dominates, and Welch-Satterthwaite rejected 6.4% of null studies at 2 vs 5 seeds with equal
      sds and 9.9% with a 3x sd in the 2-seed arm;
    - unequal seeds, the smaller arm has at most :data:`HSU_MAX_SEEDS` seeds and the larger sample
      sd: Hsu's df (Welch-Satterthwaite: 7.2-7.7% at 5 vs 3 with a 3x sd in the 3-seed arm);
    - otherwise Welch-Satterthwaite; when the larger arm has at least twice the seeds, capped at
      ``2 (min(n_a, n_b) - 1)`` (``capped`` where the cap binds): never more df than a balanced
      design with the smaller arm's seeds has. Uncapped, a small arm whose sample sd is low by
      chance gets the larger arm's df: 7.6% at 3 vs 20 seeds with equal sds (5.7% capped).

    Hsu's df and the cap cost power only where they are needed: at 3 vs 5 seeds (no cap) the rule
    is plain Welch-Satterthwaite unless the 3-seed arm has the larger sample sd. Type-I error of
    this rule in normal simulations (60,000 null studies each, sd ratios 1/3, 1 and 3): at most
    0.058 from 3 vs 4 to 8 vs 30 seeds; Hsu's df with 2 seeds is conservative (< 0.01).
    """
    if n_a == n_b:
        return "satterthwaite"
    n_small = min(n_a, n_b)
    small_sd, large_sd = (sd_a, sd_b) if n_a < n_b else (sd_b, sd_a)
    if n_small == 2 or (n_small <= HSU_MAX_SEEDS and small_sd > large_sd):
        return "hsu"
    if max(n_a, n_b) >= 2 * n_small and satterthwaite_df(sd_a**2 / n_a, sd_b**2 / n_b, n_a, n_b) > capped_df(n_a, n_b):
        return "capped"
    return "satterthwaite"


def satterthwaite_df(va: float, vb: float, n_a: int, n_b: int) -> float:
    """Welch-Satterthwaite df from the squared standard errors ``va = s_a^2 / n_a``, ``vb``."""
    denominator = va**2 / (n_a - 1) + vb**2 / (n_b - 1)
    return (va + vb) ** 2 / denominator if denominator > 0 else float(n_a + n_b - 2)


def capped_df(n_a: int, n_b: int) -> int:
    """The cap of the ``capped`` rule: ``2 (min(n_a, n_b) - 1)``, a balanced design's df at the smaller n."""
    return 2 * (min(n_a, n_b) - 1)


def welch_df(va: float, vb: float, n_a: int, n_b: int, df_rule: str = "satterthwaite") -> float:
    """The df of Welch's statistic under ``df_rule`` (see :func:`welch_df_rule`)."""
    if df_rule == "hsu":
        return float(hsu_df(n_a, n_b))
    df = satterthwaite_df(va, vb, n_a, n_b)
    return min(df, float(capped_df(n_a, n_b))) if df_rule == "capped" else df


WELCH_TEST_NAMES = {"satterthwaite": "welch", "hsu": "welch-hsu", "capped": "welch-capped"}


def t_test_from_stats(mean_a: float, sd_a: float, n_a: int, mean_b: float, sd_b: float, n_b: int,
                      equal_var: bool = False, df_rule: str = "satterthwaite") -> dict:
    """Welch's (default) or Student's two-sample t-test from means, sample sds and ns.

    Equals ``scipy.stats.ttest_ind_from_stats`` (and ``ttest_ind`` on the raw values).
    Welch's df is the Welch-Satterthwaite approximation, Hsu's ``min(n_a, n_b) - 1`` with
    ``df_rule="hsu"`` (test name ``welch-hsu``; see :func:`hsu_df`), or Welch-Satterthwaite capped
    at ``2 (min(n_a, n_b) - 1)`` with ``df_rule="capped"`` (``welch-capped``).
    """
    test = "student" if equal_var else WELCH_TEST_NAMES[df_rule]
    if n_a < 2 or n_b < 2:
        return _result(test, None, None, note="a t-test needs at least 2 seeds per arm")
    va, vb = sd_a**2 / n_a, sd_b**2 / n_b
    if va + vb == 0.0:
        note = ("both arms have zero variance across seeds (identical values per arm): "
                f"the t statistic is undefined; the means differ by {mean_a - mean_b:g}")
        return _result(test, None, None, note=note)
    # the formulas of scipy.stats.ttest_ind_from_stats, written out (scipy's wrapper costs ~1 ms a call)
    if equal_var:
        df = n_a + n_b - 2
        pooled = ((n_a - 1) * sd_a**2 + (n_b - 1) * sd_b**2) / df
        se = math.sqrt(pooled * (1.0 / n_a + 1.0 / n_b))
    else:
        df = welch_df(va, vb, n_a, n_b, df_rule)
        se = math.sqrt(va + vb)
    statistic = (mean_a - mean_b) / se
    p_value = float(min(1.0, 2.0 * stats.t.sf(abs(statistic), df)))
    return _result(test, statistic, p_value, df)


def flag_test(mean_a: float, sd_a: float, n_a: int, mean_b: float, sd_b: float, n_b: int,
              confidence: float = 0.95) -> dict:
    """The test behind every significance flag and claim verdict: Welch's t-test of
    ``mean_a - mean_b`` on the df of :func:`welch_df_rule`, with its two-sided t-interval.

    Returns :func:`t_test_from_stats`'s dict plus ``df_rule``, ``difference``, ``ci_low``,
    ``ci_high`` (``None`` bounds with fewer than 2 seeds in an arm).
    """
    rule = welch_df_rule(n_a, n_b, sd_a, sd_b) if n_a >= 2 and n_b >= 2 else "satterthwaite"
    result = t_test_from_stats(mean_a, sd_a, n_a, mean_b, sd_b, n_b, df_rule=rule)
    low, high = diff_interval(mean_a, sd_a, n_a, mean_b, sd_b, n_b, confidence, df_rule=rule)
    return {**result, "df_rule": rule, "difference": mean_a - mean_b, "ci_low": low, "ci_high": high}


def flag_test_values(a: np.ndarray, b: np.ndarray, confidence: float = 0.95) -> dict:
    """:func:`flag_test` on per-seed values (sample sds exactly 0 for identical values).

    Raises ``ValueError`` on NaN or infinite values: a p-value over them would be meaningless.
    """
    a, b = _finite(a), _finite(b)
    if not a.size or not b.size:
        raise ValueError("an arm has no values")
    return flag_test(float(a.mean()), _sd(a), a.size, float(b.mean()), _sd(b), b.size, confidence)


def _finite(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=float)
    if not np.all(np.isfinite(values)):
        raise ValueError(f"non-finite value in a test's input: {values[~np.isfinite(values)][:3].tolist()}")
    return values


def welch(a: np.ndarray, b: np.ndarray) -> dict:
    """Welch's unequal-variance t-test; equals ``scipy.stats.ttest_ind(a, b, equal_var=False)``."""
    a, b = _finite(a), _finite(b)
    return t_test_from_stats(a.mean(), _sd(a), a.size, b.mean(), _sd(b), b.size, equal_var=False)


def student(a: np.ndarray, b: np.ndarray) -> dict:
    """Student's pooled-variance t-test; equals ``scipy.stats.ttest_ind(a, b)``."""
    a, b = _finite(a), _finite(b)
    return t_test_from_stats(a.mean(), _sd(a), a.size, b.mean(), _sd(b), b.size, equal_var=True)


#: An arm with at most this many values: scipy's exact Mann-Whitney distribution (as its ``auto``).
MW_EXACT_MAX = 8


def mann_whitney(a: np.ndarray, b: np.ndarray) -> dict:
    """Mann-Whitney U test (two-sided); equals ``scipy.stats.mannwhitneyu(a, b)``, except with ties in
    small samples.

    scipy picks the exact distribution for small samples (an arm with <= 8 values) without ties and the normal
    approximation with tie correction otherwise. With ties in small samples that approximation is
    anti-conservative (3 vs 3 seeds, ``[.5, .5, .6]`` vs ``[.3, .3, .3]``: p = 0.059 where no split of
    six values can give less than 0.1), so there the p-value is the exact permutation distribution
    of U over every split of the tied values (``method=PermutationMethod()``, all splits).
    """
    a, b = _finite(a), _finite(b)
    if a.size < 1 or b.size < 1:
        return _result("mannwhitney", None, None, note="empty arm")
    pooled = np.concatenate([a, b])
    if np.unique(pooled).size == 1:
        return _result("mannwhitney", a.size * b.size / 2.0, 1.0,
                       note="every value is identical: no evidence of a difference (p = 1)")
    splits = math.comb(a.size + b.size, a.size)
    if min(a.size, b.size) <= MW_EXACT_MAX and np.unique(pooled).size < pooled.size and splits <= 10_000:
        res = stats.mannwhitneyu(a, b, alternative="two-sided",
                                 method=stats.PermutationMethod(n_resamples=splits))
        return _result("mannwhitney", res.statistic, min(1.0, res.pvalue),
                       note="ties: exact permutation distribution of U (all splits)")
    res = stats.mannwhitneyu(a, b, alternative="two-sided")
    return _result("mannwhitney", res.statistic, res.pvalue)


def permutation(a: np.ndarray, b: np.ndarray, n_resamples: int = 10_000, rng_seed: int = 0) -> dict:
    """Two-sided permutation test of the difference in means.

    Uses ``scipy.stats.permutation_test`` (independent samples); it enumerates every
    split exactly when there are at most ``n_resamples`` of them (5 vs 5 seeds: 252) and
    samples ``n_resamples`` random splits with ``rng_seed`` otherwise.
    """
    a, b = _finite(a), _finite(b)
    if np.unique(np.concatenate([a, b])).size == 1:
        return _result("permutation", 0.0, 1.0,
                       note="every value is identical: no evidence of a difference (p = 1)")
    res = stats.permutation_test(
        (a, b), lambda x, y, axis: np.mean(x, axis=axis) - np.mean(y, axis=axis),
        permutation_type="independent", vectorized=True, n_resamples=n_resamples,
        alternative="two-sided", **_rng_argument(np.random.default_rng(rng_seed)),
    )
    exact = math.comb(a.size + b.size, a.size) <= n_resamples
    return _result("permutation", res.statistic, min(1.0, res.pvalue),
                   note="exact (all splits)" if exact else f"{n_resamples} random splits")


def _rng_argument(rng: np.random.Generator) -> dict:
    """``rng=`` for scipy >= 1.15, ``random_state=`` before (same generator, same splits)."""
    params = inspect.signature(stats.permutation_test).parameters
    return {"rng": rng} if "rng" in params else {"random_state": rng}


def run_test(test: str, a: np.ndarray, b: np.ndarray, *, n_resamples: int = 10_000, rng_seed: int = 0) -> dict:
    """Dispatch to one of :data:`TESTS` by name."""
    if test == "welch":
        return welch(a, b)
    if test == "student":
        return student(a, b)
    if test == "mannwhitney":
        return mann_whitney(a, b)
    if test == "permutation":
        return permutation(a, b, n_resamples=n_resamples, rng_seed=rng_seed)
    raise ValueError(f"unknown test {test!r}; expected one of {', '.join(TESTS)}")


def _sd(x: np.ndarray) -> float:
    from oxstudy.stats.descriptives import sample_sd

    return sample_sd(x) if x.size >= 2 else 0.0


def diff_interval(mean_a: float, sd_a: float, n_a: int, mean_b: float, sd_b: float, n_b: int,
                  confidence: float = 0.95, equal_var: bool = False, df_rule: str = "satterthwaite"
                  ) -> tuple[float | None, float | None]:
    """t-interval for ``mean_a - mean_b`` (Welch's under ``df_rule``, or pooled for Student).

    ``None`` bounds when it cannot be estimated (an arm with one seed). Zero variance in
    both arms gives a point interval.
    """
    diff = mean_a - mean_b
    if n_a < 2 or n_b < 2:
        return None, None
    va, vb = sd_a**2 / n_a, sd_b**2 / n_b
    if va + vb == 0.0:
        return diff, diff
    if equal_var:
        df = n_a + n_b - 2
        sp2 = ((n_a - 1) * sd_a**2 + (n_b - 1) * sd_b**2) / df
        se = math.sqrt(sp2 * (1 / n_a + 1 / n_b))
    else:
        df = welch_df(va, vb, n_a, n_b, df_rule)
        se = math.sqrt(va + vb)
    half = float(stats.t.ppf(0.5 + confidence / 2, df)) * se
    return diff - half, diff + half


def cohens_d(mean_a: float, sd_a: float, n_a: int, mean_b: float, sd_b: float, n_b: int) -> float | None:
    """Cohen's d = (mean_a - mean_b) / s_pooled, s_pooled^2 = ((n_a-1)s_a^2 + (n_b-1)s_b^2)/(n_a+n_b-2).

    ``None`` when the pooled sd is zero or there are fewer than 3 values in all.
    """
    if n_a + n_b < 3:
        return None
    pooled = math.sqrt(((n_a - 1) * sd_a**2 + (n_b - 1) * sd_b**2) / (n_a + n_b - 2))
    if pooled == 0.0:
        return None
    return (mean_a - mean_b) / pooled


def hedges_g(d: float | None, n_a: int, n_b: int) -> float | None:
    """Hedges' g = d * J with the small-sample correction J = 1 - 3 / (4 (n_a + n_b) - 9)."""
    if d is None:
        return None
    return d * (1.0 - 3.0 / (4.0 * (n_a + n_b) - 9.0))


# ---------------------------------------------------------------------------------------------
# McNemar between two checkpoints


def mcnemar(only_a: int, only_b: int) -> dict:
    """McNemar's test from the discordant counts of one 2x2 paired table (two checkpoints).

    ``only_a``: items checkpoint a got right and b wrong; ``only_b`` the reverse. H0: the two
    checkpoints solve these items equally often (conditional on these two runs). Exact binomial
    (two-sided, p = 0.5) when ``only_a + only_b < 25``, otherwise the chi-square statistic with
    continuity correction on 1 df: ``statsmodels.stats.contingency_tables.mcnemar(table,
    exact=..., correction=True)``.
    """
    from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar

    discordant = only_a + only_b
    exact = discordant < 25
    name = "mcnemar-exact" if exact else "mcnemar-chi2"
    if discordant == 0:
        return {"test": name, "statistic": 0.0, "p_value": 1.0, "only_a": 0, "only_b": 0,
                "note": "no discordant items: the two checkpoints agree on every item"}
    res = sm_mcnemar([[0, int(only_a)], [int(only_b), 0]], exact=exact, correction=True)
    return {"test": name, "statistic": float(res.statistic), "p_value": float(min(1.0, res.pvalue)),
            "only_a": int(only_a), "only_b": int(only_b), "note": None}


def mcnemar_checkpoints(scores_a: np.ndarray, scores_b: np.ndarray, seeds_a: list, seeds_b: list) -> dict:
    """McNemar's test for each pair of checkpoints (one run of each arm), on the same items.

    ``scores_a`` (S_a x I) and ``scores_b`` (S_b x I) are 0/1 outcomes on the same items
    (columns aligned). Runs are paired by equal seed value; seeds present in only one arm are
    paired in sorted order with the remaining ones. Each test is about two particular trained
    runs, not about the algorithms: the seeds' variance is not in it, so these are never combined
    over seed pairs, corrected, or turned into a significance flag (summed over seed pairs the
    test rejects in 50-70% of null studies at realistic seed variance; docs/analysis.md).
    """
    a = np.asarray(scores_a)
    b = np.asarray(scores_b)
    if not (np.isin(a, (0, 1)).all() and np.isin(b, (0, 1)).all()):
        return {"pairs": [], "note": "item scores are not binary (0/1): McNemar does not apply"}
    common = [s for s in seeds_a if s in set(seeds_b)]
    pairs = [(seeds_a.index(s), seeds_b.index(s)) for s in common]
    rest_a = sorted((i for i in range(len(seeds_a)) if seeds_a[i] not in common), key=lambda i: seeds_a[i])
    rest_b = sorted((j for j in range(len(seeds_b)) if seeds_b[j] not in common), key=lambda j: seeds_b[j])
    pairs += list(zip(rest_a, rest_b, strict=False))
    out = []
    for i, j in pairs:
        only_a = int(np.sum((a[i] == 1) & (b[j] == 0)))
        only_b = int(np.sum((a[i] == 0) & (b[j] == 1)))
        res = mcnemar(only_a, only_b)
        res.update({"seed_a": _plain(seeds_a[i]), "seed_b": _plain(seeds_b[j])})
        out.append(res)
    note = None
    if len(pairs) < max(len(seeds_a), len(seeds_b)):
        note = f"{max(len(seeds_a), len(seeds_b)) - len(pairs)} unpaired seed-run(s) left out (unequal seeds)"
    return {"pairs": out, "note": note}


def _plain(x):
    return x.item() if hasattr(x, "item") else x
