"""Two-sample hypothesis tests and effect sizes, each reproducing a reference implementation.

Every function returns a plain dict with ``test`` (which test produced the p-value),
``statistic``, ``p_value`` (two-sided) and ``note``. Degenerate inputs (zero variance in
both arms, identical samples) give ``p_value=None`` and a note saying why, never NaN.
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
    """``hsu`` or ``satterthwaite``: which df Welch's statistic is referred to.

    Hsu's df where Welch-Satterthwaite is too liberal: unequal seeds, the smaller arm has at
    most :data:`HSU_MAX_SEEDS` seeds and the larger sample sd. When the small arm has the smaller
    sd, Welch-Satterthwaite holds its level (0.045-0.057 at 3 vs 5 seeds, 3x sd in the 5-seed arm)
    and Hsu's df would only cost power (0.23 instead of 0.62 there).
    """
    if n_a == n_b or min(n_a, n_b) > HSU_MAX_SEEDS:
        return "satterthwaite"
    small_sd, large_sd = (sd_a, sd_b) if n_a < n_b else (sd_b, sd_a)
    return "hsu" if small_sd > large_sd else "satterthwaite"


def t_test_from_stats(mean_a: float, sd_a: float, n_a: int, mean_b: float, sd_b: float, n_b: int,
                      equal_var: bool = False, df_rule: str = "satterthwaite") -> dict:
    """Welch's (default) or Student's two-sample t-test from means, sample sds and ns.

    Equals ``scipy.stats.ttest_ind_from_stats`` (and ``ttest_ind`` on the raw values).
    Welch's df is the Welch-Satterthwaite approximation, or Hsu's ``min(n_a, n_b) - 1`` with
    ``df_rule="hsu"`` (test name ``welch-hsu``; see :func:`hsu_df`).
    """
    test = "student" if equal_var else ("welch-hsu" if df_rule == "hsu" else "welch")
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
        df = (va + vb) ** 2 / (va**2 / (n_a - 1) + vb**2 / (n_b - 1)) if df_rule != "hsu" else hsu_df(n_a, n_b)
        se = math.sqrt(va + vb)
    statistic = (mean_a - mean_b) / se
    p_value = float(min(1.0, 2.0 * stats.t.sf(abs(statistic), df)))
    return _result(test, statistic, p_value, df)


def welch(a: np.ndarray, b: np.ndarray) -> dict:
    """Welch's unequal-variance t-test; equals ``scipy.stats.ttest_ind(a, b, equal_var=False)``."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    return t_test_from_stats(a.mean(), _sd(a), a.size, b.mean(), _sd(b), b.size, equal_var=False)


def student(a: np.ndarray, b: np.ndarray) -> dict:
    """Student's pooled-variance t-test; equals ``scipy.stats.ttest_ind(a, b)``."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    return t_test_from_stats(a.mean(), _sd(a), a.size, b.mean(), _sd(b), b.size, equal_var=True)


def mann_whitney(a: np.ndarray, b: np.ndarray) -> dict:
    """Mann-Whitney U test (two-sided); equals ``scipy.stats.mannwhitneyu(a, b)``.

    scipy picks the exact distribution for small samples without ties and the normal
    approximation with tie correction otherwise.
    """
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.size < 1 or b.size < 1:
        return _result("mannwhitney", None, None, note="empty arm")
    if np.unique(np.concatenate([a, b])).size == 1:
        return _result("mannwhitney", a.size * b.size / 2.0, 1.0,
                       note="every value is identical: no evidence of a difference (p = 1)")
    res = stats.mannwhitneyu(a, b, alternative="two-sided")
    return _result("mannwhitney", res.statistic, res.pvalue)


def permutation(a: np.ndarray, b: np.ndarray, n_resamples: int = 10_000, rng_seed: int = 0) -> dict:
    """Two-sided permutation test of the difference in means.

    Uses ``scipy.stats.permutation_test`` (independent samples); it enumerates every
    split exactly when there are at most ``n_resamples`` of them (5 vs 5 seeds: 252) and
    samples ``n_resamples`` random splits with ``rng_seed`` otherwise.
    """
    a, b = np.asarray(a, float), np.asarray(b, float)
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
    """t-interval for ``mean_a - mean_b`` (Welch-Satterthwaite or Hsu df, or pooled for Student).

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
        df = (va + vb) ** 2 / (va**2 / (n_a - 1) + vb**2 / (n_b - 1)) if df_rule != "hsu" else hsu_df(n_a, n_b)
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
