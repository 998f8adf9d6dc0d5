"""Calibration of every test and interval oxstudy reports, by simulating null and alternative studies.

A simulated study compares two algorithms (arms A and B) on one benchmark of ``I`` items shared by
every run, as in a real study: item ``i`` has a difficulty ``delta_i ~ N(0, 1.5)`` (logit scale)
drawn once per study; each training run (seed) has a run effect ``u ~ N(0, sigma_run)``; the run's
outcome on item ``i`` is ``Bernoulli(expit(base + u - delta_i))`` and its score is the mean over
items (lm-eval's exact_match). Options per regime: seeds per arm, items, run-level sd, accuracy
(``base``), an item x algorithm interaction (arm B's item logits are those of A permuted over a
fraction of the items, so B solves *different* items equally often), and unequal run-level sds.

The null holds exactly on the study's item set: arm B's offset is solved (Newton, per study) so
that both arms have the same expected score on these items, averaged over seeds. That is the
hypothesis oxstudy's tests are about: the benchmark (its items) is fixed, seeds are random.
Under the alternative, arm A's offset is solved so that the true difference is ``2 x`` the
regime's run-level sd (d ~ 2), the same standardised effect in every regime.

Printed per regime: type-I error at alpha 0.05 of the flag rule (Welch over seeds, Hsu's or the capped df where
oxstudy uses it: the only test that sets a ``significant`` flag, report marker or claim verdict,
whatever ``--test`` is), of Student, Mann-Whitney and permutation (reported beside it, no flag), of
McNemar between two checkpoints (which oxstudy reports, labelled, with no flag) and of the two item-level methods oxstudy no longer uses
for inference (McNemar summed over seed pairs, the hierarchical seeds x items bootstrap); their power
at the fixed difference; the coverage of the 95% cell-mean and difference intervals, of the old
percentile seed bootstrap and of the t replicates that now feed rankings, Kendall tau, leverage
spreads, compression ratios and inversion probabilities. A second table measures the coverage of
those derived intervals on multi-algorithm, multi-scale studies.

Before measuring, the vectorised implementations used here are checked against oxstudy's own
functions on the first simulated studies (they must agree to 1e-9), so the table measures what
oxstudy computes.

Usage: python benchmarks/bench_calibration.py [--quick] [--sims 1000] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import dataclass
from itertools import combinations

import numpy as np
from scipy import special, stats

ALPHA = 0.05
GH_NODES, GH_WEIGHTS = np.polynomial.hermite_e.hermegauss(24)
GH_WEIGHTS = GH_WEIGHTS / GH_WEIGHTS.sum()


@dataclass
class Regime:
    name: str
    seeds: int = 5
    items: int = 500
    run_sd: float = 0.3  # logit scale; the printed run-level sd in points is measured
    accuracy: float = 0.5  # target mean accuracy over items (sets the base logit)
    interaction: float = 0.0  # fraction of items whose logits arm B permutes
    sd_ratio: float = 1.0  # run sd of arm B / arm A
    seeds_b: int | None = None
    hierarchical: bool = False  # also measure the removed item bootstrap (slow) in this regime

    @property
    def n_b(self) -> int:
        return self.seeds_b or self.seeds


REGIMES = [
    Regime("no seed effect", run_sd=0.0, hierarchical=True),
    Regime("run sd small", run_sd=0.1, hierarchical=True),
    Regime("run sd medium", run_sd=0.3, hierarchical=True),
    Regime("run sd large", run_sd=0.6, hierarchical=True),
    Regime("2 seeds", seeds=2, hierarchical=True),
    Regime("3 seeds", seeds=3),
    Regime("10 seeds", seeds=10),
    Regime("2 seeds, sd large", seeds=2, run_sd=0.6),
    Regime("100 items", items=100),
    Regime("1500 items", items=1500),
    Regime("1500 items, no seed effect", items=1500, run_sd=0.0),
    Regime("item x algorithm", interaction=0.5, hierarchical=True),
    Regime("item x algorithm, no seed eff.", interaction=0.5, run_sd=0.0),
    Regime("3 vs 5 seeds, equal sd", seeds=3, seeds_b=5),
    Regime("unequal sd (x3)", sd_ratio=3.0),
    Regime("unequal sd, 3 vs 5 seeds", sd_ratio=3.0, seeds=3, seeds_b=5),
    Regime("unequal sd, 5 vs 3 (large sd, few)", sd_ratio=3.0, seeds=5, seeds_b=3),
    Regime("5 vs 2 seeds, equal sd", seeds=5, seeds_b=2),
    Regime("unequal sd, 5 vs 2 (large sd, few)", sd_ratio=3.0, seeds=5, seeds_b=2),
    Regime("10 vs 3 seeds, equal sd", seeds=10, seeds_b=3),
    Regime("accuracy 0.05", accuracy=0.05),
    Regime("accuracy 0.95", accuracy=0.95),
    Regime("accuracy 0.05, 2 seeds", accuracy=0.05, seeds=2, items=100),
]


# ----------------------------------------------------------------------------------------- simulation


def expected_score(logits: np.ndarray, sd: float | np.ndarray) -> np.ndarray:
    """E_u[mean_i expit(logit_i + u)], u ~ N(0, sd): the true cell mean on these items (S,)."""
    sd = np.broadcast_to(np.asarray(sd, float), logits.shape[:1])
    grid = logits[:, :, None] + sd[:, None, None] * GH_NODES[None, None, :]
    return (special.expit(grid) * GH_WEIGHTS).sum(axis=2).mean(axis=1)


def solve_offset(logits: np.ndarray, sd: float, target: np.ndarray) -> np.ndarray:
    """Per-study offset c with expected_score(logits + c, sd) = target (Newton, vectorised)."""
    c = np.zeros(logits.shape[0])
    for _ in range(8):
        grid = (logits + c[:, None])[:, :, None] + sd * GH_NODES
        p = special.expit(grid)
        f = (p * GH_WEIGHTS).sum(axis=2).mean(axis=1) - target
        slope = (p * (1 - p) * GH_WEIGHTS).sum(axis=2).mean(axis=1)
        c -= f / np.maximum(slope, 1e-9)
    return c


def base_logit(accuracy: float, difficulty_sd: float = 1.5) -> float:
    from scipy.optimize import brentq

    return brentq(
        lambda b: float((special.expit(b - difficulty_sd * GH_NODES) * GH_WEIGHTS).sum()) - accuracy, -20, 20
    )


def simulate(
    reg: Regime, n_sims: int, rng: np.random.Generator, effect: float | None = None, need_items: bool = True
) -> dict:
    """Simulate ``n_sims`` studies at once. ``effect``: true difference A - B (None: null)."""
    base = base_logit(reg.accuracy)
    sd_a, sd_b = reg.run_sd, reg.run_sd * reg.sd_ratio
    difficulty = rng.normal(0.0, 1.5, (n_sims, reg.items))
    logit_a = base - difficulty
    logit_b = logit_a.copy()
    if reg.interaction > 0:
        k = int(round(reg.interaction * reg.items))
        for s in range(n_sims):  # permute k of the items' logits: same multiset, other items solved
            idx = rng.choice(reg.items, k, replace=False)
            logit_b[s, idx] = logit_b[s, rng.permutation(idx)]
    true_b = expected_score(logit_b, sd_b) if sd_b == sd_a else None
    true_a = expected_score(logit_a, sd_a)
    # B's offset makes both arms' true means equal on these items (exact null) ...
    logit_b = logit_b + solve_offset(logit_b, sd_b, true_a)[:, None] if true_b is None else logit_b
    true_b = expected_score(logit_b, sd_b)
    if effect is not None:  # ... and A's offset puts the true difference at ``effect``
        logit_a = logit_a + solve_offset(logit_a, sd_a, true_b + effect)[:, None]
        true_a = expected_score(logit_a, sd_a)
    out = {"true_a": true_a, "true_b": true_b}
    for arm, logits, sd, n in (("a", logit_a, sd_a, reg.seeds), ("b", logit_b, sd_b, reg.n_b)):
        u = rng.normal(0.0, 1.0, (n_sims, n)) * sd
        p = special.expit(logits[:, None, :] + u[:, :, None])
        outcomes = rng.random(p.shape) < p
        out[f"items_{arm}"] = outcomes if need_items else None
        out[f"mean_{arm}"] = outcomes.mean(axis=2)
    return out


# ----------------------------------------------------------------------------------------- tests (vectorised)


def welch_p(
    a: np.ndarray, b: np.ndarray, equal_var: bool = False, df_rule: str | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(p, t-interval low, high) of the Welch (or Student) test of mean(a) - mean(b), per row.

    ``df_rule``: None = oxstudy's choice (``tests.welch_df_rule``: Hsu's or the capped df with unequal
    seeds), or ``satterthwaite`` / ``hsu`` / ``capped`` explicitly."""
    from oxstudy.stats import tests as ht

    na, nb = a.shape[1], b.shape[1]
    ma, mb = a.mean(1), b.mean(1)
    va, vb = a.var(1, ddof=1), b.var(1, ddof=1)
    if equal_var:
        df = np.full(a.shape[0], na + nb - 2.0)
        se = np.sqrt(((na - 1) * va + (nb - 1) * vb) / df * (1 / na + 1 / nb))
    else:
        qa, qb = va / na, vb / nb
        with np.errstate(invalid="ignore", divide="ignore"):
            df = (qa + qb) ** 2 / (qa**2 / (na - 1) + qb**2 / (nb - 1))
        if df_rule is None:  # oxstudy's rule, per study
            rules = np.array(
                [ht.welch_df_rule(na, nb, x, y) for x, y in zip(np.sqrt(va), np.sqrt(vb), strict=True)]
            )
        else:
            rules = np.full(a.shape[0], df_rule)
        df = np.where(rules == "hsu", float(ht.hsu_df(na, nb)), df)
        df = np.where(rules == "capped", np.minimum(df, float(ht.capped_df(na, nb))), df)
        se = np.sqrt(qa + qb)
    with np.errstate(invalid="ignore", divide="ignore"):
        t = (ma - mb) / se
        p = np.minimum(1.0, 2 * stats.t.sf(np.abs(t), df))
        half = stats.t.ppf(0.975, df) * se
    return p, ma - mb - half, ma - mb + half


def permutation_p(
    a: np.ndarray, b: np.ndarray, rng: np.random.Generator, max_exact: int = 10_000, n_random: int = 2000
) -> np.ndarray:
    """scipy.stats.permutation_test's two-sided p (independent, mean difference), per row.

    Every split when there are at most ``max_exact`` (as oxstudy), else ``n_random`` random splits
    (oxstudy draws 10,000; the p-value's calibration does not depend on it).
    """
    na, nb = a.shape[1], b.shape[1]
    pooled = np.concatenate([a, b], axis=1)
    n = na + nb
    if math.comb(n, na) <= max_exact:
        masks = np.zeros((math.comb(n, na), n), bool)
        for k, idx in enumerate(combinations(range(n), na)):
            masks[k, list(idx)] = True
    else:
        masks = np.zeros((n_random, n), bool)
        for k in range(n_random):
            masks[k, rng.choice(n, na, replace=False)] = True
        masks[0] = np.arange(n) < na  # scipy counts the observed split among random ones
    order = np.argsort(~masks, axis=1, kind="stable")  # each split: its first na columns go to arm a
    null = np.empty((a.shape[0], masks.shape[0]))
    for start in range(0, masks.shape[0], 512):  # the same arithmetic as scipy: mean(x) - mean(y)
        split = pooled[:, order[start : start + 512]]  # (S x k x n)
        null[:, start : start + 512] = split[..., :na].mean(-1) - split[..., na:].mean(-1)
    obs = a.mean(1) - b.mean(1)
    gamma = np.abs(100 * np.finfo(float).eps * obs)[:, None]
    less = (null <= obs[:, None] + gamma).mean(1)
    greater = (null >= obs[:, None] - gamma).mean(1)
    return np.minimum(1.0, 2 * np.minimum(less, greater))


def mannwhitney_p(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """oxstudy's Mann-Whitney two-sided p per row: scipy's 'exact'/'asymptotic' per row as its 'auto'
    does for one pair (exact when an arm has <= 8 values and the row has no ties); rows with ties in
    such small samples get oxstudy's exact permutation distribution (``tests.mann_whitney``)."""
    from oxstudy.stats import tests as ht

    pooled = np.sort(np.concatenate([a, b], axis=1), axis=1)
    ties = (np.diff(pooled, axis=1) == 0).any(axis=1)
    p = np.ones(a.shape[0])  # every value identical: oxstudy reports p = 1
    small = min(a.shape[1], b.shape[1]) <= ht.MW_EXACT_MAX
    exact_ties = small and math.comb(a.shape[1] + b.shape[1], a.shape[1]) <= 10_000
    for rows, method in ((~ties, "exact" if small else "asymptotic"), (ties, None if exact_ties else "asymptotic")):
        rows = rows & (pooled[:, 0] != pooled[:, -1])
        if not rows.any():
            continue
        if method is None:
            p[rows] = [ht.mann_whitney(x, y)["p_value"] for x, y in zip(a[rows], b[rows], strict=True)]
        else:
            p[rows] = stats.mannwhitneyu(a[rows], b[rows], axis=1, method=method).pvalue
    return p


def mcnemar_p(only_a: np.ndarray, only_b: np.ndarray) -> np.ndarray:
    """McNemar (exact binomial below 25 discordant items, else chi-square with continuity correction)."""
    n = only_a + only_b
    exact = np.minimum(1.0, 2 * stats.binom.cdf(np.minimum(only_a, only_b), n, 0.5))
    with np.errstate(invalid="ignore", divide="ignore"):
        chi2 = (np.abs(only_a - only_b) - 1.0) ** 2 / n
    p = np.where(n < 25, exact, stats.chi2.sf(chi2, 1))
    return np.where(n == 0, 1.0, p)


def discordant(xa: np.ndarray, xb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Discordant counts of seed pair (0, 0) and summed over seed pairs (i, i)."""
    pairs = min(xa.shape[1], xb.shape[1])
    oa = (xa[:, :pairs] & ~xb[:, :pairs]).sum(2)
    ob = (~xa[:, :pairs] & xb[:, :pairs]).sum(2)
    return (oa[:, 0], ob[:, 0]), (oa.sum(1), ob.sum(1))


def hierarchical_bootstrap(
    xa: np.ndarray, xb: np.ndarray, rng: np.random.Generator, n_boot: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The item bootstrap oxstudy used until this version (seeds within arm, one item draw per replicate
    shared by all runs; percentile CI, sign p-value). Kept here only to show why it was dropped."""
    n_sims, na, n_items = xa.shape
    p_out, lo_out, hi_out = np.empty(n_sims), np.empty(n_sims), np.empty(n_sims)
    for s in range(n_sims):
        idx = rng.integers(0, n_items, (n_boot, n_items))
        idx += (np.arange(n_boot) * n_items)[:, None]
        counts = (
            np.bincount(idx.ravel(), minlength=n_boot * n_items).reshape(n_boot, n_items).astype(np.float32)
        )
        runs = counts @ np.concatenate([xa[s], xb[s]]).T.astype(np.float32) / n_items  # (B x R)
        pa = rng.integers(0, na, (n_boot, na))
        pb = na + rng.integers(0, xb.shape[1], (n_boot, xb.shape[1]))
        rows = np.arange(n_boot)[:, None]
        diffs = runs[rows, pa].mean(1) - runs[rows, pb].mean(1)
        below, above = (diffs <= 0).sum(), (diffs >= 0).sum()
        p_out[s] = min(1.0, 2 * (min(below, above) + 1) / (n_boot + 1))
        lo_out[s], hi_out[s] = np.percentile(diffs, [2.5, 97.5])
    return p_out, lo_out, hi_out


def seed_bootstrap_interval(
    x: np.ndarray, rng: np.random.Generator, n_boot: int
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval of the seed bootstrap of a cell mean (oxstudy's old cell replicates)."""
    n_sims, n = x.shape
    idx = rng.integers(0, n, (n_sims, n_boot, n))
    means = np.take_along_axis(x[:, None, :].repeat(n_boot, 1), idx, 2).mean(2)
    lo, hi = np.percentile(means, [2.5, 97.5], axis=1)
    return lo, hi


def t_replicate_interval(
    x: np.ndarray, rng: np.random.Generator, n_boot: int
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval of oxstudy's cell replicates (``bootstrap.t_replicates``)."""
    from oxstudy.stats import bootstrap as bs

    lo, hi = np.empty(x.shape[0]), np.empty(x.shape[0])
    for s in range(x.shape[0]):
        reps = bs.t_replicates(x[s].mean(), x[s].std(ddof=1), x.shape[1], n_boot, rng)
        lo[s], hi[s] = np.percentile(reps, [2.5, 97.5])
    return lo, hi


# ----------------------------------------------------------------------------------------- fidelity check


def check_against_oxstudy(sim: dict, rng: np.random.Generator, n_check: int = 12) -> None:
    """The vectorised tests above must equal oxstudy's functions on the first simulated studies."""
    from oxstudy.stats import tests as ht

    a, b = sim["mean_a"][:n_check], sim["mean_b"][:n_check]
    p_w, lo, hi = welch_p(a, b)
    p_s = welch_p(a, b, equal_var=True)[0]
    p_perm = permutation_p(a, b, rng)
    p_mw = mannwhitney_p(a, b)
    for s in range(n_check):
        stats_ab = (a[s].mean(), a[s].std(ddof=1), a.shape[1], b[s].mean(), b[s].std(ddof=1), b.shape[1])
        rule = ht.welch_df_rule(a.shape[1], b.shape[1], a[s].std(ddof=1), b[s].std(ddof=1))
        ref = ht.t_test_from_stats(*stats_ab, df_rule=rule)
        if ref["p_value"] is not None:
            assert abs(ref["p_value"] - p_w[s]) < 1e-9, ("welch", ref, p_w[s])
            ci = ht.diff_interval(*stats_ab, df_rule=rule)
            assert abs(ci[0] - lo[s]) < 1e-9 and abs(ci[1] - hi[s]) < 1e-9
            assert abs(ht.student(a[s], b[s])["p_value"] - p_s[s]) < 1e-9
        assert abs(ht.mann_whitney(a[s], b[s])["p_value"] - p_mw[s]) < 1e-9, ("mannwhitney", s)
        if math.comb(a.shape[1] + b.shape[1], a.shape[1]) <= 10_000:
            ref = ht.permutation(a[s], b[s])
            assert abs(ref["p_value"] - p_perm[s]) < 1e-9, ("permutation", ref, p_perm[s])
    if sim["items_a"] is not None:
        (oa, ob), _ = discordant(sim["items_a"][:n_check], sim["items_b"][:n_check])
        p_m = mcnemar_p(oa, ob)
        for s in range(n_check):
            ref = ht.mcnemar(int(oa[s]), int(ob[s]))
            assert abs(ref["p_value"] - p_m[s]) < 1e-9, ("mcnemar", ref, p_m[s])


# ----------------------------------------------------------------------------------------- one regime


def seed_level_outcomes(reg, a: np.ndarray, b: np.ndarray, ta: np.ndarray, tb: np.ndarray,
                        rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Per simulated study: does each seed-level test reject at ALPHA, and does the Welch difference
    interval cover the true difference (the same measurements under the null and the alternative)."""
    p_w, lo, hi = welch_p(a, b)
    rec = {
        "welch": p_w <= ALPHA,
        # the rule that sets oxstudy's flags and claim verdicts whatever --test is: Welch on the df of
        # welch_df_rule; the chosen student/mannwhitney/permutation is only reported
        "flag_rule": p_w <= ALPHA,
        "student": welch_p(a, b, True)[0] <= ALPHA,
        "mannwhitney": mannwhitney_p(a, b) <= ALPHA,
        "permutation": permutation_p(a, b, rng) <= ALPHA,
        "diff_ci_welch": (lo <= ta - tb) & (ta - tb <= hi),
    }
    if reg.seeds_b:  # unequal seeds: also the plain Welch-Satterthwaite df oxstudy does not use there
        p_ws, lo_ws, hi_ws = welch_p(a, b, df_rule="satterthwaite")
        rec["welch_satterthwaite"] = p_ws <= ALPHA
        rec["diff_ci_welch_satterthwaite"] = (lo_ws <= ta - tb) & (ta - tb <= hi_ws)
    return rec


def measure(
    reg: Regime, n_sims: int, n_boot: int, rng: np.random.Generator, hier: bool, hier_sims: int = 300
) -> dict:
    chunk = max(1, min(n_sims, int(4e7 // (reg.items * (reg.seeds + reg.n_b)))))
    null_rows: dict[str, list] = {}
    sds = []
    for start in range(0, n_sims, chunk):
        sim = simulate(reg, min(chunk, n_sims - start), rng)
        if start == 0:
            check_against_oxstudy(sim, rng)
        a, b, ta, tb = sim["mean_a"], sim["mean_b"], sim["true_a"], sim["true_b"]
        sds.append(np.sqrt((a.var(1, ddof=1) + b.var(1, ddof=1)) / 2))
        rec = seed_level_outcomes(reg, a, b, ta, tb, rng)
        half = stats.t.ppf(0.975, a.shape[1] - 1) * a.std(1, ddof=1) / math.sqrt(a.shape[1])
        rec["cell_ci_t"] = np.abs(a.mean(1) - ta) <= half
        lo_b, hi_b = seed_bootstrap_interval(a, rng, n_boot)
        rec["cell_ci_seed_bootstrap"] = (lo_b <= ta) & (ta <= hi_b)
        lo_t, hi_t = t_replicate_interval(a, rng, n_boot)
        rec["cell_ci_t_replicates"] = (lo_t <= ta) & (ta <= hi_t)
        (oa, ob), (sa, sb) = discordant(sim["items_a"], sim["items_b"])
        rec["mcnemar_checkpoints"] = mcnemar_p(oa, ob) <= ALPHA
        rec["mcnemar_summed_seed_pairs"] = mcnemar_p(sa, sb) <= ALPHA
        if (
            hier and reg.hierarchical and start == 0
        ):  # the removed method: measured on the first chunk only (slow)
            n_h = min(hier_sims, len(ta))
            p_h, lo_h, hi_h = hierarchical_bootstrap(sim["items_a"][:n_h], sim["items_b"][:n_h], rng, n_boot)
            ta, tb = ta[:n_h], tb[:n_h]
            rec["hierarchical_bootstrap"] = p_h <= ALPHA
            rec["hierarchical_bootstrap_ci"] = (lo_h <= ta - tb) & (ta - tb <= hi_h)
        for k, v in rec.items():
            null_rows.setdefault(k, []).append(v)
        del sim
    null = {k: float(np.mean(np.concatenate(v))) for k, v in null_rows.items()}
    run_sd = float(np.mean(np.concatenate(sds)))
    # alternative: true difference = 2 x run-level sd (d ~ 2), same standardised effect everywhere
    effect = 2.0 * run_sd
    n_alt = max(200, n_sims // 2)
    alt_rows: dict[str, list] = {}
    for start in range(0, n_alt, chunk):
        sim = simulate(
            reg,
            min(chunk, n_alt - start),
            rng,
            effect=effect,
            need_items=hier and reg.hierarchical and start == 0,
        )
        a, b, ta, tb = sim["mean_a"], sim["mean_b"], sim["true_a"], sim["true_b"]
        rec = seed_level_outcomes(reg, a, b, ta, tb, rng)
        if hier and reg.hierarchical and start == 0:
            n_h = min(hier_sims, len(ta))
            rec["hierarchical_bootstrap"] = (
                hierarchical_bootstrap(sim["items_a"][:n_h], sim["items_b"][:n_h], rng, n_boot)[0] <= ALPHA
            )
        for k, v in rec.items():
            alt_rows.setdefault(k, []).append(v)
    alt = {k: float(np.mean(np.concatenate(v))) for k, v in alt_rows.items()}
    return {
        "regime": reg.name,
        "seeds": f"{reg.seeds}" + (f" vs {reg.n_b}" if reg.seeds_b else ""),
        "items": reg.items,
        "accuracy": reg.accuracy,
        "run_sd_points": 100 * run_sd,
        "effect_points": 100 * effect,
        "n_null": n_sims,
        "n_alt": n_alt,
        "null": null,
        "power": alt,
    }


# ----------------------------------------------------------------------------------------- derived intervals


def derived(n_seeds: int, n_sims: int, n_boot: int, rng: np.random.Generator, sd: float = 5.0) -> dict:
    """Coverage of rank intervals, Kendall tau, algorithm spread, compression ratio and the
    calibration of the inversion probability, on studies of 4 algorithms x 2 scales x 2 benchmarks
    (points; seed sd ``sd``), all computed with oxstudy's own functions on its t replicates."""
    from oxstudy.stats import bootstrap as bs
    from oxstudy.stats import leverage, ranking

    alg0 = np.array([[0.0, 4.0, 8.0, 12.0], [8.0, 12.0, 0.0, 4.0]])  # in-domain: rankings differ by scale
    mu = np.stack(
        [alg0 + np.array([[40.0], [55.0]]), 0.25 * alg0 + np.array([[40.0], [55.0]])]
    )  # (bench, model, alg)
    levels = np.tile(np.arange(4), 2)
    true_rank = ranking.ranks(mu)
    true_tau = ranking.kendall_tau_b(mu[0, 0], mu[0, 1])
    true_spread = [
        leverage.factor_spread(mu[b].ravel(), mu[b].ravel()[None, :], levels)["spread"] for b in (0, 1)
    ]
    true_ratio = true_spread[0] / true_spread[1]
    hits = {"rank_interval": [], "kendall_tau": [], "algorithm_spread": [], "compression_ratio": []}
    inv_prob, inv_real = [], []
    for _ in range(n_sims):
        x = mu[..., None] + sd * rng.standard_normal(mu.shape + (n_seeds,))
        mean, s = x.mean(-1), x.std(-1, ddof=1)
        reps = bs.t_replicates(mean.ravel(), s.ravel(), n_seeds, n_boot, rng).reshape((n_boot,) + mu.shape)
        for b in (0, 1):
            for m in (0, 1):
                lo, hi = ranking.rank_intervals(reps[:, b, m, :])
                hits["rank_interval"].append((lo <= true_rank[b, m]) & (true_rank[b, m] <= hi))
        tau_reps = ranking.kendall_tau_b(reps[:, 0, 0], reps[:, 0, 1])
        lo, hi = bs.percentile_interval(tau_reps[np.isfinite(tau_reps)])
        hits["kendall_tau"].append([lo <= true_tau <= hi])
        spreads = []
        for b in (0, 1):
            res = leverage.factor_spread(mean[b].ravel(), reps[:, b].reshape(n_boot, -1), levels)
            spreads.append(res)
        hits["algorithm_spread"].append([spreads[0]["ci_low"] <= true_spread[0] <= spreads[0]["ci_high"]])
        ok = spreads[1]["replicates"] > 0
        lo, hi = bs.percentile_interval(spreads[0]["replicates"][ok] / spreads[1]["replicates"][ok])
        hits["compression_ratio"].append([lo <= true_ratio <= hi])
        for i, j in combinations(range(4), 2):
            d0, d1 = mean[0, 0, i] - mean[0, 0, j], mean[0, 1, i] - mean[0, 1, j]
            if np.sign(d0) != np.sign(d1):
                inv_prob.append(
                    ranking.flip_probability(
                        reps[:, 0, 0, i],
                        reps[:, 0, 0, j],
                        reps[:, 0, 1, i],
                        reps[:, 0, 1, j],
                        np.sign(d0),
                        np.sign(d1),
                    )
                )
                t0, t1 = mu[0, 0, i] - mu[0, 0, j], mu[0, 1, i] - mu[0, 1, j]
                inv_real.append(np.sign(t0) == np.sign(d0) and np.sign(t1) == np.sign(d1))
    out = {k: float(np.mean(np.concatenate([np.atleast_1d(v) for v in vals]))) for k, vals in hits.items()}
    inv_prob, inv_real = np.array(inv_prob), np.array(inv_real, float)
    out["inversion_mean_probability"] = float(inv_prob.mean()) if inv_prob.size else None
    out["inversion_real_fraction"] = float(inv_real.mean()) if inv_real.size else None
    high = inv_prob >= 0.9
    out["inversion_p>=0.9_real_fraction"] = float(inv_real[high].mean()) if high.any() else None
    out["inversions_observed"] = int(inv_prob.size)
    return {"seeds": n_seeds, "seed_sd_points": sd, "n_sims": n_sims, **out}


# ----------------------------------------------------------------------------------------- output

TESTS = [
    ("flag_rule", "flag rule"),
    ("welch", "Welch"),
    ("welch_satterthwaite", "Welch-Satterthwaite df"),
    ("student", "Student"),
    ("mannwhitney", "Mann-Whitney"),
    ("permutation", "permutation"),
    ("mcnemar_checkpoints", "McNemar 2 checkpoints (no flag)"),
    ("mcnemar_summed_seed_pairs", "McNemar summed (removed)"),
    ("hierarchical_bootstrap", "hier. bootstrap (removed)"),
]
INTERVALS = [
    ("cell_ci_t", "cell t-CI"),
    ("cell_ci_t_replicates", "cell t replicates"),
    ("cell_ci_seed_bootstrap", "cell seed bootstrap (removed)"),
    ("diff_ci_welch", "diff Welch CI"),
    ("diff_ci_welch_satterthwaite", "diff Welch-Satt. CI"),
    ("hierarchical_bootstrap_ci", "hier. bootstrap CI (removed)"),
]


def verdict_type1(x: float) -> str:
    return "HIGH" if x > 0.065 else ("cons." if x < 0.035 else "ok")


def print_tables(rows: list[dict], derived_rows: list[dict]) -> None:
    def line(cells, widths):
        return " | ".join(str(c).rjust(w) for c, w in zip(cells, widths, strict=True))

    keys = [k for k, _ in TESTS if any(k in r["null"] for r in rows)]
    head = ["regime", "seeds", "items", "acc", "run sd pp"] + [dict(TESTS)[k] for k in keys]
    widths = [30, 6, 5, 4, 9] + [max(10, len(h)) for h in head[5:]]
    print(
        "\nType-I error at alpha 0.05 (null: equal true means on the benchmark's items; HIGH > 0.065, "
        "cons. < 0.035)"
    )
    print(line(head, widths))
    for r in rows:
        cells = [r["regime"], r["seeds"], r["items"], r["accuracy"], f"{r['run_sd_points']:.1f}"]
        cells += [
            f"{r['null'][k]:.3f} {verdict_type1(r['null'][k])}" if k in r["null"] else "-" for k in keys
        ]
        print(line(cells, widths))
    pkeys = [
        k
        for k in (
            "flag_rule",
            "welch",
            "welch_satterthwaite",
            "student",
            "mannwhitney",
            "permutation",
            "hierarchical_bootstrap",
        )
        if any(k in r["power"] for r in rows)
    ]
    head = ["regime", "seeds", "diff pp"] + [dict(TESTS)[k] for k in pkeys]
    widths = [30, 6, 7] + [max(10, len(h)) for h in head[3:]]
    print("\nPower at a true difference of 2 x run-level sd (d ~ 2)")
    print(line(head, widths))
    for r in rows:
        print(
            line(
                [r["regime"], r["seeds"], f"{r['effect_points']:.1f}"]
                + [f"{r['power'][k]:.3f}" if k in r["power"] else "-" for k in pkeys],
                widths,
            )
        )
    ikeys = [k for k, _ in INTERVALS if any(k in r["null"] for r in rows)]
    head = ["regime", "seeds"] + [dict(INTERVALS)[k] for k in ikeys]
    widths = [30, 6] + [max(10, len(h)) for h in head[2:]]
    print("\n95% interval coverage (LOW < 0.93)")
    print(line(head, widths))
    for r in rows:
        print(
            line(
                [r["regime"], r["seeds"]]
                + [
                    f"{r['null'][k]:.3f}{' LOW' if r['null'][k] < 0.93 else ''}" if k in r["null"] else "-"
                    for k in ikeys
                ],
                widths,
            )
        )
    if derived_rows:
        keys = [
            "rank_interval",
            "kendall_tau",
            "algorithm_spread",
            "compression_ratio",
            "inversion_mean_probability",
            "inversion_real_fraction",
            "inversion_p>=0.9_real_fraction",
        ]
        head = ["seeds"] + keys
        widths = [5] + [max(10, len(k)) for k in keys]
        print(
            "\nDerived intervals from the t replicates: coverage of the true value (4 algorithms x 2 scales x "
            "2 benchmarks, seed sd 5 pp); inversion probability vs fraction of observed inversions that are real"
        )
        print(line(head, widths))
        for r in derived_rows:
            print(line([r["seeds"]] + ["-" if r[k] is None else f"{r[k]:.3f}" for k in keys], widths))


def markdown(rows: list[dict], derived_rows: list[dict]) -> str:
    """The tables of docs/analysis.md (Calibration) from the figures."""

    def rate(r: dict, k: str, kind: str = "type1") -> str:
        if k not in r:
            return ""
        x = r[k]
        if kind == "type1":
            return f"{x:.3f}" + (" **HIGH**" if x > 0.065 else (" cons." if x < 0.035 else ""))
        return f"{x:.3f}" + (" **low**" if x < 0.93 else "")

    tests = [
        "flag_rule",
        "welch",
        "welch_satterthwaite",
        "student",
        "mannwhitney",
        "permutation",
        "mcnemar_checkpoints",
        "mcnemar_summed_seed_pairs",
        "hierarchical_bootstrap",
    ]
    heads = [
        "**flag rule** (sets every flag, marker and verdict, any --test)",
        "Welch (Hsu df rule)",
        "Welch-Satterthwaite df (unequal seeds)",
        "Student (reported only)",
        "Mann-Whitney (reported only)",
        "permutation (reported only)",
        "McNemar, 2 checkpoints (no flag)",
        "McNemar summed over seed pairs (removed)",
        "hierarchical bootstrap (removed)",
    ]
    out = [
        "| regime | seeds | items | accuracy | run sd (pp) | " + " | ".join(heads) + " |",
        "|" + "---|" * (5 + len(heads)),
    ]
    for r in rows:
        out.append(
            f"| {r['regime']} | {r['seeds']} | {r['items']} | {r['accuracy']} | {r['run_sd_points']:.1f} | "
            + " | ".join(rate(r["null"], k) for k in tests)
            + " |"
        )
    out += [
        "",
        "| regime | seeds | true diff (pp) | flag rule | Welch | Welch-Satterthwaite df | Student | Mann-Whitney | "
        "permutation | hierarchical bootstrap (removed) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        out.append(
            f"| {r['regime']} | {r['seeds']} | {r['effect_points']:.1f} | "
            + " | ".join(
                f"{r['power'][k]:.3f}" if k in r["power"] else ""
                for k in (
                    "flag_rule",
                    "welch",
                    "welch_satterthwaite",
                    "student",
                    "mannwhitney",
                    "permutation",
                    "hierarchical_bootstrap",
                )
            )
            + " |"
        )
    ints = [
        "cell_ci_t",
        "cell_ci_t_replicates",
        "cell_ci_seed_bootstrap",
        "diff_ci_welch",
        "diff_ci_welch_satterthwaite",
        "hierarchical_bootstrap_ci",
    ]
    out += [
        "",
        "| regime | seeds | cell t-interval | cell t replicates | cell percentile seed bootstrap (removed) | "
        "difference, Welch t-interval | difference, Welch-Satterthwaite df | hierarchical bootstrap (removed) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        out.append(
            f"| {r['regime']} | {r['seeds']} | " + " | ".join(rate(r["null"], k, "cov") for k in ints) + " |"
        )
    if derived_rows:
        out += [
            "",
            "| seeds | rank interval | Kendall tau | algorithm spread | compression ratio | inversion: mean "
            "posterior probability / share real | share real when probability >= 0.9 |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in derived_rows:
            hi = r["inversion_p>=0.9_real_fraction"]
            out.append(
                f"| {r['seeds']} | {r['rank_interval']:.3f} | {r['kendall_tau']:.3f} | "
                f"{r['algorithm_spread']:.3f} | {r['compression_ratio']:.3f} | "
                f"{r['inversion_mean_probability']:.2f} / {r['inversion_real_fraction']:.2f} | "
                f"{'-' if hi is None else f'{hi:.2f}'} |"
            )
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="300 null studies per regime, fewer regimes")
    parser.add_argument("--sims", type=int, default=None, help="null studies per regime (default 1000)")
    parser.add_argument(
        "--boot", type=int, default=None, help="bootstrap replicates per study (default 1000)"
    )
    parser.add_argument("--no-hierarchical", action="store_true", help="skip the (removed) item bootstrap")
    parser.add_argument("--only", default=None, help="run only regimes whose name contains this")
    parser.add_argument("--rng-seed", type=int, default=0)
    parser.add_argument("--json", default=None, help="write the figures to this path")
    parser.add_argument("--markdown", default=None, help="write the docs/analysis.md tables to this path")
    parser.add_argument(
        "--from-json", default=None, help="only render the tables of a --json file (no simulation)"
    )
    args = parser.parse_args()
    if args.from_json:
        with open(args.from_json) as fh:
            saved = json.load(fh)
        print_tables(saved["regimes"], saved["derived"])
        if args.markdown:
            with open(args.markdown, "w") as fh:
                fh.write(markdown(saved["regimes"], saved["derived"]))
        return
    n_sims = args.sims or (300 if args.quick else 1000)
    n_boot = args.boot or (400 if args.quick else 1000)
    rng = np.random.default_rng(args.rng_seed)
    regimes = [r for r in REGIMES if args.only is None or args.only in r.name]
    start = time.perf_counter()
    rows = []
    for reg in regimes:
        t0 = time.perf_counter()
        rows.append(measure(reg, n_sims, n_boot, rng, hier=not args.no_hierarchical))
        print(f"  {reg.name}: {time.perf_counter() - t0:.1f} s", flush=True)
    derived_rows = []
    if args.only is None:
        for n in (2, 3, 5, 10):
            derived_rows.append(derived(n, max(200, n_sims // 4), n_boot, rng))
    print_tables(rows, derived_rows)
    worst = {
        k: max(r["null"][k] for r in rows)
        for k in ("flag_rule", "welch", "student", "mannwhitney", "permutation")
    }
    worst_cov = {
        k: min(r["null"][k] for r in rows) for k in ("cell_ci_t", "cell_ci_t_replicates", "diff_ci_welch")
    }
    print(f"\nworst type-I error over regimes: {json.dumps({k: round(v, 3) for k, v in worst.items()})}")
    print(f"worst 95% coverage over regimes: {json.dumps({k: round(v, 3) for k, v in worst_cov.items()})}")
    print(
        f"{n_sims} null studies per regime ({max(200, n_sims // 2)} under the alternative), {n_boot} replicates; "
        f"{time.perf_counter() - start:.0f} s"
    )
    if args.markdown:
        with open(args.markdown, "w") as fh:
            fh.write(markdown(rows, derived_rows))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(
                {"regimes": rows, "derived": derived_rows, "n_sims": n_sims, "n_boot": n_boot}, fh, indent=2
            )


if __name__ == "__main__":
    main()
