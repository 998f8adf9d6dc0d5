"""The full analysis of a results table, as one JSON-able dict (schema ``oxstudy.analysis/2``).

Input is a normalised table (see :mod:`oxstudy.results_io`):

* ``kind="runs"``: one row per run x benchmark x metric with ``model, algorithm, seed,
  benchmark, metric, value`` and optional ``params``, ``method``, ``in_domain``, ``paradigm``,
  ``online``, ``loss_family`` and any factor columns;
* ``kind="summary"``: one row per cell with ``model, algorithm, benchmark, metric, mean, sd, n``.

An optional items table (``model, algorithm, seed, benchmark[, metric], doc_id, score``) enables
the item-level standard error and McNemar's test between two checkpoints (two trained runs),
which compares those runs on these items and sets no significance flag. Algorithms are compared
by Welch's seed-level test alone (Hsu's df for small unequal arms): every ``significant`` flag comes
from it (``flag_set_by``); a ``test`` of student/mannwhitney/permutation is reported beside it
(``p_value_<test>``) and sets no flag, as it is not calibrated under unequal variances (:data:`FLAG_RULE`).
The structure of the result is documented in ``docs/analysis.md``.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Collection, Sequence
from itertools import combinations

import numpy as np
import pandas as pd

from oxstudy.errors import InputError
from oxstudy.stats import SCHEMA, corrections, descriptives, leverage, ranking
from oxstudy.stats import bootstrap as bs
from oxstudy.stats import power as pw
from oxstudy.stats import tests as ht

KEYS = ["model", "algorithm", "benchmark", "metric"]
#: What every algorithm comparison's test conditions on (the JSON says it per comparison).
CONDITIONS_ON = ("the benchmark's items (fixed); training seeds are the random replicates: H0 is equal "
                 "expected score of the two algorithms on these items, averaged over seeds")
#: Tests whose smallest attainable p-value is 2 / C(n_a + n_b, n_a) (exact rank / split distributions).
RANK_OR_SPLIT_TESTS = ("mannwhitney", "permutation")
#: Tests whose error rate assumes equal variances in the two arms (measured in bench_calibration.py).
EQUAL_VARIANCE_TESTS = ("student", "permutation", "mannwhitney")
#: Worst type-I error at alpha 0.05 over the regimes of benchmarks/bench_calibration.py (docs/analysis.md,
#: Calibration): Student at 5 vs 2 seeds with a 3x seed sd in the 2-seed arm, the others at 5 vs 3 with it in
#: the 3-seed arm; the flag rule (Welch on the df of tests.welch_df_rule) is at most 0.057.
WORST_TYPE1 = {"student": 0.204, "mannwhitney": 0.094, "permutation": 0.094}
#: The label of a user-chosen test that is reported beside the flag-setting Welch test.
REPORTED_LABEL = ("reported, sets no flag: not calibrated under unequal variances (type-I up to {worst:g} in "
                  "bench_calibration)")
#: Which test sets every significance flag, report marker and claim verdict, whatever --test is.
FLAG_RULE = ("welch: two-sided Welch's t-test over seeds; with unequal seeds on Hsu's df min(n_a, n_b) - 1 when "
             "one arm has 2 seeds or the smaller arm has <= 4 seeds and the larger sd (welch-hsu), else on the "
             "Welch-Satterthwaite df capped at 2 (min(n_a, n_b) - 1) (welch-capped where the cap binds); a --test of "
             "student, "
             "mannwhitney or permutation is computed and reported as p_value_<test> and sets no flag (type-I error "
             "up to 0.204 / 0.094 / 0.094 under unequal variances in benchmarks/bench_calibration.py; the flag rule "
             "stays <= 0.065 in every regime)")
#: What McNemar's test between two checkpoints conditions on.
CHECKPOINT_CONDITIONS_ON = ("these two trained runs (checkpoints); the items are the replicates: H0 is that the "
                            "two checkpoints solve these items equally often. Not a test between algorithms.")
GROUP = ["model", "benchmark", "metric"]
SECTIONS = ("cells", "comparisons", "rankings", "inversions", "factorial", "leverage", "power")
FAMILIES = ("vs-baseline", "pairwise")
TAG_KEYS = ("paradigm", "online", "loss_family")


def analyze(
    table: pd.DataFrame,
    *,
    items: pd.DataFrame | None = None,
    kind: str | None = None,
    baseline: str | None = None,
    correction: str = "bonferroni",
    alpha: float = 0.05,
    family: str = "vs-baseline",
    test: str = "welch",
    factors: Sequence[str] = (),
    anova_type: int = 2,
    n_resamples: int = 10_000,
    rng_seed: int = 0,
    confidence: float = 0.95,
    power: float = 0.8,
    power_diffs: Sequence[float] = (1.0, 2.0, 5.0),
    deployment_scales: int = 2,
    sections: Collection[str] | None = None,
    source: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Analyse a results table; return the ``oxstudy.analysis/2`` dict.

    Parameters mirror ``oxstudy analyze``: ``baseline`` (required for ``family="vs-baseline"``;
    without one the family falls back to pairwise with a warning), ``correction`` in
    bonferroni/holm/bh/none applied within each model x benchmark x metric family, ``test`` an
    extra seed-level test to report (student/mannwhitney/permutation; welch, the default, always
    sets the flags), ``factors`` for the factorial
    ANOVA, ``n_resamples`` and ``rng_seed`` for every bootstrap, ``power_diffs`` the
    differences in points for seed planning, ``deployment_scales`` how many of the largest
    models the deployment rank averages over. ``sections`` restricts what is computed.
    """
    state = _Analysis(table, items=items, kind=kind, baseline=baseline, correction=correction, alpha=alpha,
                      family=family, test=test, factors=list(factors), anova_type=anova_type,
                      n_resamples=n_resamples, rng_seed=rng_seed, confidence=confidence, power=power,
                      power_diffs=list(power_diffs), deployment_scales=deployment_scales,
                      sections=set(sections or SECTIONS), source=source, progress=progress)
    return state.run()


def _p_text(p: float | None) -> str:
    return "undefined" if p is None else f"{p:.3g}"


def _crc(*parts) -> int:
    return zlib.crc32("\x1f".join(str(p) for p in parts).encode())


def _plain(x):
    if isinstance(x, np.generic):
        return x.item()
    return x


def _clean(obj):
    """JSON-safe copy: numpy scalars to Python, non-finite floats to None."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [_clean(v) for v in obj.tolist()]
    obj = _plain(obj)
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


class _Analysis:
    def __init__(self, table: pd.DataFrame, **opts) -> None:
        self.opts = opts
        self.warnings: list[str] = []
        self.sections: set[str] = opts["sections"]
        unknown = self.sections - set(SECTIONS)
        if unknown:
            raise InputError(f"unknown analysis section(s): {', '.join(sorted(unknown))}")
        if opts["correction"] not in corrections.CORRECTIONS:
            raise InputError(f"--correction: unknown correction {opts['correction']!r} "
                             f"(expected {', '.join(corrections.CORRECTIONS)})")
        if opts["family"] not in FAMILIES:
            raise InputError(f"--family: unknown family {opts['family']!r} (expected {', '.join(FAMILIES)})")
        if opts["test"] not in ht.TESTS:
            raise InputError(f"--test: unknown test {opts['test']!r} (expected {', '.join(ht.TESTS)})")
        if not 0 < opts["alpha"] < 1:
            raise InputError(f"--alpha: must be between 0 and 1, got {opts['alpha']}")
        bad_diffs = [d for d in opts["power_diffs"] if not (math.isfinite(d) and d > 0)]
        if bad_diffs:
            raise InputError(f"--power-diff: a difference to plan seeds for must be a positive number of points, "
                             f"got {bad_diffs[0]:g}")
        self.kind = opts["kind"] or ("summary" if "mean" in table.columns and "value" not in table.columns
                                     else "runs")
        self.table = self._normalise(table)
        self._build_cells()
        self.items = opts["items"]
        self.item_runs: dict = {}

    # ------------------------------------------------------------------ input
    def _where(self, rows: pd.DataFrame) -> str:
        if "_where" in rows.columns and len(rows):
            return str(rows["_where"].iloc[0])
        return self.opts["source"] or "<table>"

    def _normalise(self, table: pd.DataFrame) -> pd.DataFrame:
        need = ["model", "algorithm", "benchmark"] + (["mean", "sd", "n"] if self.kind == "summary"
                                                      else ["seed", "value"])
        missing = [c for c in need if c not in table.columns]
        if missing:
            raise InputError(f"{self.opts['source'] or '<table>'}: missing column(s) {', '.join(missing)} "
                             f"for a {self.kind} table")
        if table.empty:
            raise InputError(f"{self.opts['source'] or '<table>'}: no rows to analyse")
        out = table.copy()
        if "metric" not in out.columns:
            out["metric"] = "value"
        out["metric"] = out["metric"].fillna("value").astype(str)
        for col in ("model", "algorithm", "benchmark"):
            out[col] = out[col].astype(str)
        if "params" not in out.columns:
            out["params"] = np.nan
        out["params"] = pd.to_numeric(out["params"], errors="coerce")
        return out.reset_index(drop=True)

    def _build_cells(self) -> None:
        t = self.table
        self.model_order = self._order_models()
        alg_order = list(pd.unique(t["algorithm"]))
        self.alg_order = alg_order
        rows = []
        self.cell_values: list[np.ndarray | None] = []
        self.cell_seeds: list[list] = []
        grouped = t.groupby(KEYS, sort=False)
        for key, sub in grouped:
            if self.kind == "runs":
                dup = sub["seed"].duplicated(keep=False)
                if dup.any():
                    raise InputError(f"{self._where(sub[dup].iloc[1:])}: column seed: duplicate run for "
                                     f"model={key[0]} algorithm={key[1]} benchmark={key[2]} metric={key[3]} "
                                     f"seed={sub[dup]['seed'].iloc[0]}")
                values = sub["value"].to_numpy(float)
                n, mean = values.size, float(values.mean())
                sd = descriptives.sample_sd(values)
                self.cell_values.append(values)
                self.cell_seeds.append([_plain(s) for s in sub["seed"]])
            else:
                if len(sub) > 1:
                    raise InputError(f"{self._where(sub.iloc[1:])}: duplicate summary row for model={key[0]} "
                                     f"algorithm={key[1]} benchmark={key[2]} metric={key[3]}")
                n, mean, sd = int(sub["n"].iloc[0]), float(sub["mean"].iloc[0]), float(sub["sd"].iloc[0])
                self.cell_values.append(None)
                self.cell_seeds.append([])
            rows.append({"model": key[0], "algorithm": key[1], "benchmark": key[2], "metric": key[3],
                         "params": sub["params"].iloc[0], "n": n, "mean": mean, "sd": sd,
                         "where": self._where(sub)})
        cells = pd.DataFrame(rows)
        cells["model_rank"] = cells["model"].map({m: i for i, m in enumerate(self.model_order)})
        cells["alg_rank"] = cells["algorithm"].map({a: i for i, a in enumerate(alg_order)})
        self.cells = cells
        # plain arrays/records: per-cell lookups in the hot paths avoid pandas indexing overhead
        self.recs: list[dict] = cells.to_dict("records")
        self.c_mean = cells["mean"].to_numpy(float)
        self.c_sd = cells["sd"].to_numpy(float)
        self.c_n = cells["n"].to_numpy(int)
        # mixed metrics: within one model x benchmark every algorithm must report the same metrics
        for (model, bench), sub in cells.groupby(["model", "benchmark"], sort=False):
            sets = sub.groupby("algorithm")["metric"].apply(frozenset)
            if sets.nunique() > 1:
                first = sets.iloc[0]
                odd = sets[sets != first].index[0]
                raise InputError(f"{sub['where'].iloc[0]}: column metric: mixed metrics in one comparison at "
                                 f"model={model} benchmark={bench}: {sets.index[0]} has {sorted(first)}, "
                                 f"{odd} has {sorted(sets[odd])}")
        # Points per metric unit, decided per benchmark x metric: a metric whose cell means all lie in
        # [0, 1] is a proportion (x 100 = points); another (BLEU, perplexity) keeps its own units, and
        # must not switch the proportions' units with it.
        self.unit_of = {key: 100.0 if np.all((sub["mean"] >= 0) & (sub["mean"] <= 1)) else 1.0
                        for key, sub in cells.groupby(["benchmark", "metric"], sort=False)}
        self.points_per_unit = 100.0 if all(u == 100.0 for u in self.unit_of.values()) else 1.0
        if len(set(self.unit_of.values())) > 1:
            own = ", ".join(f"{b}/{m}" for (b, m), u in self.unit_of.items() if u == 1.0)
            self.warnings.append(f"metrics on different scales: those in [0, 1] are in points (x 100), {own} in its "
                                 "own units (conventions.points_per_unit_by_benchmark); no compression ratio "
                                 "is computed across the two kinds")

    def _order_models(self) -> list[str]:
        t = self.table
        first = {m: i for i, m in enumerate(pd.unique(t["model"]))}
        params = t.groupby("model", sort=False)["params"].first()
        missing = [m for m in first if not np.isfinite(params.get(m, np.nan))]
        if missing and len(first) > 1 and ({"rankings", "inversions", "leverage"} & self.sections):
            self.warnings.append(f"no parameter count for model(s) {', '.join(missing)}: scales are ordered "
                                 "by first appearance in the table")
        if missing:
            return sorted(first, key=lambda m: first[m])
        return sorted(first, key=lambda m: (params[m], first[m]))

    # ------------------------------------------------------------------ run
    def run(self) -> dict:
        o = self.opts
        family = o["family"]
        baseline = o["baseline"]
        if baseline is not None and baseline not in set(self.cells["algorithm"]):
            raise InputError(f"--baseline: unknown baseline {baseline!r} "
                             f"(algorithms: {', '.join(self.alg_order)})")
        if family == "vs-baseline" and baseline is None and "comparisons" in self.sections:
            self.warnings.append("no baseline given: comparing every pair of algorithms (family pairwise)")
            family = "pairwise"
        self.family, self.baseline = family, baseline
        if self.kind == "summary" and o["test"] in ("mannwhitney", "permutation"):
            raise InputError(f"--test {o['test']} needs per-seed values; a summary-statistics table only "
                             "supports welch and student")
        if o["test"] != "welch":
            self.warnings.append(f"--test {o['test']}: {REPORTED_LABEL.format(test=o['test'], worst=WORST_TYPE1[o['test']])}"
                                 f"; it is reported as p_value_{o['test']} and welch sets every significance flag")
        self.all_single = bool((self.cells["n"] < 2).all())
        if self.all_single:
            self.warnings.append("every cell has a single seed: results are descriptive, no test between "
                                 "algorithms is possible")
        self._step("describing cells")
        self._prepare_items()
        result: dict = {
            "schema": SCHEMA,
            "conventions": self._conventions(),
            "input": {"kind": self.kind, "source": o["source"], "rows": int(len(self.table)),
                      "models": self.model_order, "algorithms": self.alg_order,
                      "benchmarks": list(pd.unique(self.cells["benchmark"])),
                      "items": bool(self.item_runs)},
            "cells": self._cells() if "cells" in self.sections else [],
            "comparisons": [], "rankings": {}, "inversions": [], "factorial": [], "leverage": {}, "power": [],
        }
        if "comparisons" in self.sections:
            self._step("comparisons")
            result["comparisons"] = self._comparisons()
        if {"rankings", "inversions", "leverage"} & self.sections:
            self._step("bootstrapping cell means")
            self._cell_replicates()
        if "rankings" in self.sections:
            self._step("rankings")
            result["rankings"] = self._rankings()
        if "inversions" in self.sections:
            self._step("inversions")
            result["inversions"] = self._inversions()
        if "factorial" in self.sections and o["factors"]:
            self._step("factorial ANOVA")
            result["factorial"] = self._factorial()
        if "leverage" in self.sections:
            self._step("leverage")
            result["leverage"] = self._leverage()
        if "power" in self.sections:
            self._step("power")
            result["power"] = self._power()
        result["warnings"] = list(dict.fromkeys(self.warnings))
        return _clean(result)

    def _step(self, what: str) -> None:
        if self.opts["progress"]:
            self.opts["progress"](what)

    def _conventions(self) -> dict:
        o = self.opts
        return {
            "family": self.family, "baseline": self.baseline, "correction": o["correction"],
            "alpha": o["alpha"], "test": "welch", "confidence": o["confidence"],
            "reported_test": None if o["test"] == "welch" else {
                "test": o["test"], "fields": f"p_value_{o['test']}, statistic_{o['test']}",
                "label": REPORTED_LABEL.format(test=o["test"], worst=WORST_TYPE1[o["test"]])},
            "sd": "sample sd (ddof=1) over seeds",
            "cell_ci": ("t-interval, df = n - 1 (measured coverage 0.94-0.96; approximate, 0.88, for 2 seeds of "
                        "few discrete scores near 0 or 1)"),
            "calibration": "benchmarks/bench_calibration.py; tables in docs/analysis.md (Calibration)",
            "diff_ci": ("two-sided Welch t-interval on the flag rule's df (Welch-Satterthwaite with equal seeds; "
                        "with unequal seeds Hsu's or the capped df, as in significance.rule), whatever --test is"),
            "cohens_d": "pooled sd with n-1 weights", "hedges_g": "d * (1 - 3 / (4 (n_a + n_b) - 9))",
            "family_scope": "one family per model x benchmark x metric",
            "significance": {"flag_set_by": "welch (welch-hsu / welch-capped where that df applies; per "
                                            "comparison in flag_set_by)", "sidedness": "two-sided", "rule": FLAG_RULE, "conditions_on": CONDITIONS_ON,
                             "family_size": "every comparison of the family, defined or not (undefined ones "
                                            "enter the correction as p = 1); the power section uses the same m"},
            "replicates": {"n_resamples": o["n_resamples"], "rng_seed": o["rng_seed"],
                           "cells": "t replicates mean + sd/sqrt(n) * T_{n-1} per cell (posterior draws of the "
                                    "cell mean, reference prior); rank, tau, spread and ratio intervals are their "
                                    "percentile intervals",
                           "intervals": "approximate; measured coverage at 5 seeds: rank 0.99, Kendall tau 1.00, "
                                        "algorithm spread 0.80, compression ratio 0.77 (docs/analysis.md)"},
            "checkpoints": {"test": "McNemar per seed pair (exact binomial below 25 discordant items, else "
                                    "chi-square with continuity correction)",
                            "conditions_on": CHECKPOINT_CONDITIONS_ON, "sets_significant": False},
            "inversion_probability": "posterior probability that both true differences have the observed "
                                     "signs: cells independent, normal seed scores, reference prior",
            "power": {"power": o["power"], "alpha_per_comparison": "alpha / m (bonferroni, holm, bh), "
                      "alpha (none)", "test": "two-sided two-sample t-test (TTestIndPower)"},
            "points_per_unit": self.points_per_unit,
            "points_per_unit_by_benchmark": {f"{b}/{m}": u for (b, m), u in self.unit_of.items()},
            "deployment_scales": o["deployment_scales"],
            "anova_type": o["anova_type"],
            "leverage": "spread = range of marginal means of cell means (points); share = one-way "
                        "eta-squared (SS_between / SS_total), loss_family nested within paradigm",
        }

    # ------------------------------------------------------------------ items
    def _prepare_items(self) -> None:
        items = self.items
        if items is None or items.empty or self.kind != "runs":
            return
        key = "doc_id" if "doc_id" in items.columns and items["doc_id"].notna().all() else "doc_hash"
        need = ["model", "algorithm", "seed", "benchmark", key, "score"]
        missing = [c for c in need if c not in items.columns]
        if missing:
            raise InputError(f"items table: missing column(s) {', '.join(missing)}")
        if any(items[col].dtype != object and not pd.api.types.is_string_dtype(items[col])
               for col in ("model", "algorithm", "benchmark")):
            items = items.astype({"model": str, "algorithm": str, "benchmark": str})
        metrics_per_bench = self.cells.groupby("benchmark")["metric"].unique()
        self.item_matrix: dict = {}
        has_metric = "metric" in items.columns and items["metric"].notna().any()
        if has_metric:
            items = items.assign(metric=items["metric"].astype(str))
        # one matrix per benchmark x metric: an lm-eval task with two filters (gsm8k: strict-match,
        # flexible-extract) lists every document once per filter, i.e. once per metric
        for key_values, sub in items.groupby(["benchmark", "metric"] if has_metric else ["benchmark"], sort=False):
            bench = key_values[0] if isinstance(key_values, tuple) else key_values
            if bench not in metrics_per_bench.index:
                continue
            metrics = list(metrics_per_bench[bench])
            if has_metric:
                metric = key_values[1]
                if metric not in metrics:
                    continue
            elif len(metrics) == 1:
                metric = metrics[0]
            else:
                self.warnings.append(f"items for benchmark {bench}: several metrics and no metric column in "
                                     "the items; item-level analyses skipped")
                continue
            run_codes = sub.groupby(["model", "algorithm", "seed"], sort=False).ngroup().to_numpy()
            firsts = np.unique(run_codes, return_index=True)[1]  # first row of each run, in code order
            heads = sub[["model", "algorithm", "seed"]].iloc[firsts].itertuples(index=False)
            run_names = ["\x1f".join(str(p) for p in head) for head in heads]
            item_codes, item_names = pd.factorize(sub[key])
            n_runs, n_items = len(run_names), len(item_names)
            flat = run_codes.astype(np.int64) * n_items + item_codes
            seen = pd.Series(flat).duplicated().to_numpy()
            if seen.any():
                row = sub.iloc[int(np.flatnonzero(seen)[0])]
                where = str(row["_where"]) if "_where" in sub.columns and pd.notna(row.get("_where")) \
                    else "items table"
                raise InputError(f"{where}: column {key}: item {_plain(row[key])!r} appears twice for one run "
                                 f"(model={row['model']} algorithm={row['algorithm']} seed={row['seed']} "
                                 f"benchmark={bench}{f' metric={metric}' if has_metric else ''})")
            scores = pd.to_numeric(sub["score"], errors="coerce").to_numpy(float)
            if np.isnan(scores).any():
                raise InputError(f"items table: benchmark {bench}: column score: non-numeric or missing score")
            matrix = np.full((n_runs, n_items), np.nan)
            matrix[run_codes, item_codes] = scores
            complete = ~np.isnan(matrix).any(axis=0)
            if not complete.all():
                self.warnings.append(f"items for benchmark {bench}: {int((~complete).sum())} of {n_items} items "
                                     "are missing from some runs; item-level analyses use the "
                                     f"{int(complete.sum())} items every run has")
            matrix = matrix[:, complete]
            if matrix.shape[1] < 2:
                self.warnings.append(f"items for benchmark {bench}: fewer than 2 shared items; skipped")
                continue
            self.item_matrix[(bench, metric)] = matrix
            for r, name in enumerate(run_names):
                self.item_runs[(bench, metric, name)] = r

    def _item_rows(self, c: int) -> np.ndarray | None:
        cell = self.recs[c]
        if (cell["benchmark"], cell["metric"]) not in self.item_matrix:
            return None
        rows = []
        for seed in self.cell_seeds[c]:
            name = "\x1f".join([cell["model"], cell["algorithm"], str(seed)])
            r = self.item_runs.get((cell["benchmark"], cell["metric"], name))
            if r is None:
                return None
            rows.append(r)
        return np.asarray(rows)

    # ------------------------------------------------------------------ cells
    def _cells(self) -> list[dict]:
        conf = self.opts["confidence"]
        out = []
        for c, cell in self.cells.iterrows():
            sd = None if not np.isfinite(cell["sd"]) else float(cell["sd"])
            d = descriptives.describe_from_stats(cell["mean"], sd, int(cell["n"]), conf)
            row = {"model": cell["model"], "params": cell["params"], "algorithm": cell["algorithm"],
                   "benchmark": cell["benchmark"], "metric": cell["metric"], **d}
            if self.kind == "runs":
                row["seeds"] = self.cell_seeds[c]
            rows = self._item_rows(c) if self.item_runs else None
            if rows is not None:
                matrix = self.item_matrix[(cell["benchmark"], cell["metric"])][rows]
                row["n_items"] = int(matrix.shape[1])
                row["item_se"] = descriptives.item_standard_error(matrix)
            out.append(row)
        return out

    # ------------------------------------------------------------------ comparisons
    def _pairs(self, algs: list[str], family: str) -> list[tuple[str, str]]:
        if family == "vs-baseline":
            return [(a, self.baseline) for a in algs if a != self.baseline]
        return list(combinations(algs, 2))

    def _compare(self, ca: int, cb: int, test: str) -> dict:
        """One comparison: Welch's test (the df of :func:`tests.welch_df_rule`) sets the
        flag; a chosen ``test`` other than welch is computed and reported beside it (``p_value_<test>``,
        ``reported_test``) and sets nothing: it is not calibrated under unequal variances (FLAG_RULE)."""
        a, b = self.recs[ca], self.recs[cb]
        na, nb = int(a["n"]), int(b["n"])
        ma, mb, sa, sb = float(a["mean"]), float(b["mean"]), float(a["sd"]), float(b["sd"])
        res = ht.flag_test(ma, sa, na, mb, sb, nb, self.opts["confidence"])
        rule, low, high = res["df_rule"], res["ci_low"], res["ci_high"]
        d = ht.cohens_d(ma, sa, na, mb, sb, nb)
        notes = [res["note"]] if res["note"] else []
        extra: dict = {}
        if rule != "satterthwaite" and res["p_value"] is not None:
            plain = ht.t_test_from_stats(ma, sa, na, mb, sb, nb)
            extra["p_value_welch_satterthwaite"] = plain["p_value"]
            why = {"hsu": (f"Hsu's conservative df = {min(na, nb) - 1}, as "
                           + ("2 seeds cannot estimate which arm's variance dominates" if min(na, nb) == 2
                              else "the smaller arm has the larger sd")),
                   "capped": f"df capped at {ht.capped_df(na, nb)}, a balanced design's at {min(na, nb)} seeds"}[rule]
            notes.append(f"unequal seeds ({na} vs {nb}): Welch's statistic on {why} (Welch-Satterthwaite df "
                         f"{plain['df']:.3g} is too liberal there; its p-value is p_value_welch_satterthwaite)")
        if test != "welch":
            extra.update(self._reported_test(ca, cb, test, notes))
        if d is None and not notes:
            notes.append("pooled sd is zero: Cohen's d is undefined")
        return {"n_a": na, "n_b": nb, "mean_a": ma, "mean_b": mb, "diff": ma - mb, "ci_low": low, "ci_high": high,
                "test": res["test"], "statistic": res["statistic"], "df": res["df"], "p_value": res["p_value"],
                "flag_set_by": res["test"] if res["p_value"] is not None else None,
                "conditions_on": CONDITIONS_ON, **extra,
                "cohens_d": d, "hedges_g": ht.hedges_g(d, na, nb), "note": "; ".join(notes) or None}

    def _reported_test(self, ca: int, cb: int, test: str, notes: list[str]) -> dict:
        """The user's ``--test`` (student/mannwhitney/permutation): computed, reported, sets no flag."""
        a, b = self.recs[ca], self.recs[cb]
        na, nb = int(a["n"]), int(b["n"])
        sa, sb = float(a["sd"]), float(b["sd"])
        if self.kind == "runs":
            res = ht.run_test(test, self.cell_values[ca], self.cell_values[cb],
                              n_resamples=self.opts["n_resamples"], rng_seed=self.opts["rng_seed"])
        else:  # summary statistics: only student is possible (checked in run())
            res = ht.t_test_from_stats(float(a["mean"]), sa, na, float(b["mean"]), sb, nb, equal_var=True)
        out = {"reported_test": test, f"p_value_{test}": res["p_value"], f"statistic_{test}": res["statistic"]}
        notes.append(f"{test} p = {_p_text(res['p_value'])} is {REPORTED_LABEL.format(test=test, worst=WORST_TYPE1[test])}"
                     + (f" ({res['note']})" if res["note"] else ""))
        if test in RANK_OR_SPLIT_TESTS and res["p_value"] is not None:
            smallest = min(1.0, 2.0 / math.comb(na + nb, na))  # one extreme split (or ranking) of comb(n, n_a)
            if smallest > self.opts["alpha"]:
                notes.append(f"with {na} vs {nb} seeds the {test} test cannot reach p < {smallest:.2g}")
        if test in EQUAL_VARIANCE_TESTS and min(sa, sb) > 0 and max(sa, sb) / min(sa, sb) > 2 \
                and res["p_value"] is not None:
            notes.append(f"sample sds differ {max(sa, sb) / min(sa, sb):.1f}x: the {test} test assumes equal "
                         "variances")
        return out

    def _cell_index(self) -> dict:
        if not hasattr(self, "_index"):
            self._index = {tuple(r): i for i, r in enumerate(self.cells[KEYS].itertuples(index=False))}
        return self._index

    def _family_tests(self, family: str, test: str, checkpoints: bool) -> list[dict]:
        """All comparisons of one family kind, corrected within each model x benchmark x metric."""
        index = self._cell_index()
        out: list[dict] = []
        for (model, bench, metric), sub in self.cells.groupby(GROUP, sort=False):
            algs = sub.sort_values("alg_rank")["algorithm"].tolist()
            if family == "vs-baseline" and self.baseline not in algs:
                self.warnings.append(f"baseline {self.baseline} has no results at model={model} "
                                     f"benchmark={bench}: no comparisons there")
                continue
            rows = []
            for a, b in self._pairs(algs, family):
                ca, cb = index[(model, a, bench, metric)], index[(model, b, bench, metric)]
                row = {"model": model, "benchmark": bench, "metric": metric, "family": family, "a": a, "b": b}
                n_a, n_b = int(self.recs[ca]["n"]), int(self.recs[cb]["n"])
                if n_a < 2 or n_b < 2:  # descriptive only; the rest of the analysis goes on
                    single = " and ".join(name for name, n in ((a, n_a), (b, n_b)) if n < 2)
                    row.update({"n_a": n_a, "n_b": n_b, "mean_a": float(self.c_mean[ca]),
                                "mean_b": float(self.c_mean[cb]), "diff": float(self.c_mean[ca] - self.c_mean[cb]),
                                "ci_low": None, "ci_high": None, "test": None, "statistic": None, "df": None,
                                "p_value": None, "flag_set_by": None, "conditions_on": CONDITIONS_ON,
                                "cohens_d": None, "hedges_g": None,
                                "note": f"single seed for {single}: descriptive only, no test between algorithms "
                                        "(a test needs at least 2 seeds per arm)"})
                    if not self.all_single:
                        column = "n" if self.kind == "summary" else "seed"
                        for cell, n in ((self.recs[ca], n_a), (self.recs[cb], n_b)):
                            if n < 2:  # located once per cell, as an input problem would be
                                self.warnings.append(
                                    f"{cell['where']}: column {column}: n < 2 for a test: model={cell['model']} "
                                    f"algorithm={cell['algorithm']} benchmark={cell['benchmark']} has {n} seed(s); "
                                    "its comparisons are descriptive only")
                else:
                    row.update(self._compare(ca, cb, test))
                if checkpoints:
                    row["checkpoints"] = self._checkpoints(ca, cb)
                rows.append(row)
            self._correct(rows)
            out.extend(rows)
        return out

    def _correct(self, rows: list[dict]) -> None:
        """Adjust the family's p-values; the family is every comparison in it, defined or not.

        An undefined comparison (no p-value) still counts in the family size ``m`` (the power
        section plans with the same ``m``): it enters the correction as p = 1, which can never be
        rejected, and gets ``p_adjusted = significant = None``.
        """
        m = len(rows)
        valid = [r for r in rows if r.get("p_value") is not None]
        p = np.array([r["p_value"] for r in valid] + [1.0] * (m - len(valid)))
        adjusted = corrections.adjust(p, self.opts["correction"])[:len(valid)]
        decisions = corrections.reject(adjusted, self.opts["alpha"])
        for r in rows:
            r["p_adjusted"], r["significant"] = None, None
            r["correction"], r["family_size"], r["family_defined"] = self.opts["correction"], m, len(valid)
        for r, adj, sig in zip(valid, adjusted, decisions, strict=True):
            r["p_adjusted"], r["significant"] = float(adj), bool(sig)

    def _comparisons(self) -> list[dict]:
        rows = self._family_tests(self.family, self.opts["test"], checkpoints=bool(self.item_runs))
        self._comparison_rows = rows
        return rows

    def _checkpoints(self, ca: int, cb: int) -> dict | None:
        """McNemar's test between the two arms' checkpoints, per seed pair (no flag, no correction)."""
        rows_a, rows_b = self._item_rows(ca), self._item_rows(cb)
        if rows_a is None or rows_b is None:
            return None
        cell = self.recs[ca]
        matrix = self.item_matrix[(cell["benchmark"], cell["metric"])]
        res = ht.mcnemar_checkpoints(matrix[rows_a], matrix[rows_b], self.cell_seeds[ca], self.cell_seeds[cb])
        return {"test": "mcnemar", "scope": "checkpoint-vs-checkpoint", "conditions_on": CHECKPOINT_CONDITIONS_ON,
                "sets_significant": False, "n_items": int(matrix.shape[1]), **res}

    # ------------------------------------------------------------------ bootstrap of cells
    def _cell_replicates(self) -> None:
        """(B x C) t replicates of every cell mean (:func:`oxstudy.stats.bootstrap.t_replicates`)."""
        o = self.opts
        boot = np.empty((o["n_resamples"], len(self.cells)))
        for c, cell in enumerate(self.recs):
            rng = bs.generator(o["rng_seed"], bs.STREAM_CELLS, _crc(*(cell[k] for k in KEYS)))
            boot[:, c] = bs.t_replicates(cell["mean"], cell["sd"], cell["n"], o["n_resamples"], rng)
        single = int((self.c_n < 2).sum())
        if single and not self.all_single:
            self.warnings.append(f"{single} cell(s) have a single seed: their replicates are points (no spread)")
        self.boot = boot

    # ------------------------------------------------------------------ rankings
    def _bench_groups(self):
        return self.cells.groupby(["benchmark", "metric"], sort=False)

    def _rankings(self) -> dict:
        conf = self.opts["confidence"]
        rank_rows, tau_rows, summary_rows = [], [], []
        for (bench, metric), sub in self._bench_groups():
            per_model: dict = {}
            for model in self.model_order:
                cells = sub[sub["model"] == model].sort_values("alg_rank")
                if cells.empty:
                    continue
                idx = cells.index.to_numpy()
                means = cells["mean"].to_numpy()
                obs = ranking.ranks(means)
                low, high = ranking.rank_intervals(self.boot[:, idx], conf)
                per_model[model] = (cells["algorithm"].tolist(), idx, obs)
                for alg, m, r, lo, hi in zip(cells["algorithm"], means, obs, low, high, strict=False):
                    rank_rows.append({"model": model, "benchmark": bench, "metric": metric, "algorithm": alg,
                                      "mean": float(m), "rank": float(r), "rank_ci_low": float(lo),
                                      "rank_ci_high": float(hi)})
            models = list(per_model)
            for m1, m2 in combinations(models, 2):
                algs1, idx1, _ = per_model[m1]
                algs2, idx2, _ = per_model[m2]
                common = [a for a in algs1 if a in set(algs2)]
                row = {"benchmark": bench, "metric": metric, "model_a": m1, "model_b": m2,
                       "n_algorithms": len(common), "tau": None, "ci_low": None, "ci_high": None, "note": None}
                if len(common) < 2:
                    row["note"] = "fewer than 2 algorithms in common"
                    tau_rows.append(row)
                    continue
                i1 = np.array([idx1[algs1.index(a)] for a in common])
                i2 = np.array([idx2[algs2.index(a)] for a in common])
                tau = float(ranking.kendall_tau_b(self.c_mean[i1], self.c_mean[i2]))
                reps = ranking.kendall_tau_b(self.boot[:, i1], self.boot[:, i2])
                reps = reps[np.isfinite(reps)]
                if not math.isfinite(tau):
                    row["note"] = "one ranking is constant (all means tied): tau undefined"
                else:
                    row["tau"] = tau
                if reps.size:
                    lo, hi = bs.percentile_interval(reps, conf)
                    row["ci_low"], row["ci_high"] = float(lo), float(hi)
                tau_rows.append(row)
            largest = models[-self.opts["deployment_scales"]:] if models else []
            all_algs = list(dict.fromkeys(a for m in models for a in per_model[m][0]))
            for alg in all_algs:
                by_model = {m: float(per_model[m][2][per_model[m][0].index(alg)])
                            for m in models if alg in per_model[m][0]}
                dep = [by_model[m] for m in largest if m in by_model]
                summary_rows.append({"benchmark": bench, "metric": metric, "algorithm": alg, "ranks": by_model,
                                     "worst_rank": max(by_model.values()), "best_rank": min(by_model.values()),
                                     "deployment_rank": float(np.mean(dep)) if dep else None,
                                     "deployment_models": largest})
        return {"scale_order": self.model_order, "ranks": rank_rows, "kendall_tau": tau_rows,
                "summary": summary_rows}

    # ------------------------------------------------------------------ inversions
    def _pairwise_significance(self) -> dict:
        """(model, bench, metric, a, b) -> (significant, p_adjusted) over the pairwise family."""
        if getattr(self, "_comparison_rows", None) is not None and self.family == "pairwise":
            rows = self._comparison_rows
        elif self.all_single:
            rows = []
        else:
            saved = list(self.warnings)
            rows = self._family_tests("pairwise", self.opts["test"], checkpoints=False)
            self.warnings = saved
        out = {}
        for r in rows:
            out[(r["model"], r["benchmark"], r["metric"], r["a"], r["b"])] = (r.get("significant"),
                                                                              r.get("p_adjusted"))
            out[(r["model"], r["benchmark"], r["metric"], r["b"], r["a"])] = (r.get("significant"),
                                                                              r.get("p_adjusted"))
        return out

    def _inversions(self) -> list[dict]:
        sig = self._pairwise_significance()
        index = self._cell_index()
        out = []
        for (bench, metric), sub in self._bench_groups():
            models = [m for m in self.model_order if m in set(sub["model"])]
            for m1, m2 in combinations(models, 2):
                algs = [a for a in self.alg_order
                        if (m1, a, bench, metric) in index and (m2, a, bench, metric) in index]
                for a, b in combinations(algs, 2):
                    ia1, ib1 = index[(m1, a, bench, metric)], index[(m1, b, bench, metric)]
                    ia2, ib2 = index[(m2, a, bench, metric)], index[(m2, b, bench, metric)]
                    d1 = self.c_mean[ia1] - self.c_mean[ib1]
                    d2 = self.c_mean[ia2] - self.c_mean[ib2]
                    if d1 == 0 or d2 == 0 or np.sign(d1) == np.sign(d2):
                        continue
                    s1, p1 = sig.get((m1, bench, metric, a, b), (None, None))
                    s2, p2 = sig.get((m2, bench, metric, a, b), (None, None))
                    if min(self.c_n[[ia1, ib1, ia2, ib2]]) < 2:
                        prob = None  # a single-seed cell has no spread: no probability
                    else:
                        prob = ranking.flip_probability(self.boot[:, ia1], self.boot[:, ib1], self.boot[:, ia2],
                                                        self.boot[:, ib2], np.sign(d1), np.sign(d2))
                    out.append({"a": a, "b": b, "benchmark": bench, "metric": metric, "from_model": m1,
                                "to_model": m2, "diff_from": float(d1), "diff_to": float(d2),
                                "p_adjusted_from": p1, "p_adjusted_to": p2,
                                "kind": "significant" if (s1 and s2) else "point-estimate",
                                "posterior_probability": prob})
        return out

    # ------------------------------------------------------------------ factorial
    def _factorial(self) -> list[dict]:
        from oxstudy.stats import factorial

        factors = self.opts["factors"]
        data = self.table
        missing = [f for f in factors if f not in data.columns]
        if missing:
            raise InputError(f"{self.opts['source'] or '<table>'}: factor column(s) {', '.join(missing)} not in "
                             f"the table (columns: {', '.join(c for c in data.columns if not c.startswith('_'))})")
        if self.kind == "summary":
            rows = []
            for _, r in data.iterrows():
                sd = float(r["sd"]) if pd.notna(r["sd"]) else None
                for v in factorial.pseudo_observations(float(r["mean"]), sd, int(r["n"])):
                    rows.append({**{k: r[k] for k in ["benchmark", "metric", "algorithm", *factors]}, "value": v})
            data = pd.DataFrame(rows)
        by = ["benchmark", "metric"] + ([] if "algorithm" in factors else ["algorithm"])
        out = []
        for key, sub in data.groupby(by, sort=False):
            res = factorial.anova(sub, factors, "value", self.opts["anova_type"])
            res.update(dict(zip(by, key, strict=False)))
            if res["note"]:
                self.warnings.append(f"factorial {'/'.join(map(str, key))}: {res['note']}")
            out.append(res)
        return out

    # ------------------------------------------------------------------ leverage
    def _tags(self) -> pd.DataFrame:
        """Per algorithm: paradigm, online, loss_family from the registry, overridden by columns."""
        t = self.table
        method = t.groupby("algorithm", sort=False)["method"].first() if "method" in t.columns else None
        try:
            from oxstudy.algorithms import registry  # lazy: the registry is optional here
        except Exception:  # noqa: BLE001 - any failure means "no registry tags"
            registry = None
        rows = {}
        for alg in self.alg_order:
            tags: dict = {}
            name = str(method[alg]) if method is not None and pd.notna(method.get(alg)) else alg
            if registry is not None:
                try:
                    found = registry.get(name).tags
                    tags = {k: (found.get(k) if isinstance(found, dict) else getattr(found, k, None))
                            for k in TAG_KEYS}
                except Exception:  # noqa: BLE001 - unknown method: rely on columns
                    tags = {}
            for k in TAG_KEYS:
                if k in t.columns:
                    vals = t.loc[t["algorithm"] == alg, k].dropna()
                    if len(vals):
                        tags[k] = _plain(vals.iloc[0])
            rows[alg] = {k: tags.get(k) for k in TAG_KEYS}
        return pd.DataFrame.from_dict(rows, orient="index")

    def _leverage(self) -> dict:
        conf = self.opts["confidence"]
        tags = self._tags()
        cells = self.cells.join(tags, on="algorithm")
        missing_tags = sorted(a for a in self.alg_order if tags.loc[a].isna().any())
        if missing_tags:
            self.warnings.append("leverage: no paradigm/online/loss_family tags for algorithm(s) "
                                 f"{', '.join(missing_tags)} (registry or columns); they are left out of those "
                                 "factors")
        per_bench = []
        spreads: dict = {}
        for (bench, metric), sub in cells.groupby(["benchmark", "metric"], sort=False):
            ppu = self.unit_of[(bench, metric)]
            idx = sub.index.to_numpy()
            means = sub["mean"].to_numpy()
            boot = self.boot[:, idx]
            n, sd = sub["n"].to_numpy(float), sub["sd"].to_numpy(float)
            ss_total, _ = leverage.total_sum_of_squares(n, means, sd)
            scale = sub["params"].where(sub["params"].notna(), sub["model"]).astype(object).to_numpy()
            factors = []
            definitions = {"scale": scale, "paradigm": sub["paradigm"].to_numpy(object),
                           "online": sub["online"].to_numpy(object)}
            for name, levels in definitions.items():
                keep = pd.notna(levels)
                if pd.Series(levels[keep], dtype=object).nunique() < 2:
                    continue
                res = leverage.factor_spread(means[keep], boot[:, keep], levels[keep], conf)
                ss = leverage.between_sum_of_squares(n[keep], means[keep], levels[keep])
                factors.append(self._factor_row(name, res, ss, ss_total, ppu))
            keep = pd.notna(sub["paradigm"].to_numpy(object)) & pd.notna(sub["loss_family"].to_numpy(object))
            if keep.any():
                outer = sub["paradigm"].to_numpy(object)[keep]
                inner = sub["loss_family"].to_numpy(object)[keep]
                res = leverage.nested_spread(means[keep], boot[:, keep], outer, inner, conf)
                if res is not None:
                    ss = leverage.nested_between_sum_of_squares(n[keep], means[keep], outer, inner)
                    factors.append(self._factor_row("loss_family", res, ss, ss_total, ppu))
            factors.sort(key=lambda f: -f["spread_points"])
            spreads[(bench, metric)] = {f["factor"]: f for f in factors}
            # algorithm spread (task-specific leverage): pooled over models and per model
            alg_res = leverage.factor_spread(means, boot, sub["algorithm"].to_numpy(object), conf)
            per_model = []
            for model in self.model_order:
                sel = (sub["model"] == model).to_numpy()
                if sel.sum() < 2:
                    continue
                r = leverage.factor_spread(means[sel], boot[:, sel], sub["algorithm"].to_numpy(object)[sel], conf)
                per_model.append({"model": model, "spread_points": r["spread"] * ppu,
                                  "ci_low": r["ci_low"] * ppu, "ci_high": r["ci_high"] * ppu,
                                  "replicates": r["replicates"]})
            in_domain = None
            if "in_domain" in self.table.columns:
                vals = self.table.loc[self.table["benchmark"] == bench, "in_domain"].dropna()
                in_domain = bool(vals.astype(bool).any()) if len(vals) else None
            per_bench.append({"benchmark": bench, "metric": metric, "in_domain": in_domain, "points_per_unit": ppu,
                              "ss_total": ss_total, "factors": factors,
                              "hierarchy": [f["factor"] for f in factors],
                              "algorithm_spread": {"spread_points": alg_res["spread"] * ppu,
                                                   "ci_low": alg_res["ci_low"] * ppu,
                                                   "ci_high": alg_res["ci_high"] * ppu,
                                                   "replicates": alg_res["replicates"],
                                                   "per_model": per_model}})
        compression = self._compression(per_bench)
        for b in per_bench:
            b["algorithm_spread"].pop("replicates")
            for m in b["algorithm_spread"]["per_model"]:
                m.pop("replicates")
            for f in b["factors"]:
                f.pop("replicates", None)
        return {"benchmarks": per_bench, "compression": compression,
                "tags": {a: {k: _plain(v) for k, v in r.items()} for a, r in tags.to_dict("index").items()}}

    @staticmethod
    def _factor_row(name: str, res: dict, ss: float, ss_total: float, ppu: float) -> dict:
        levels = res["levels"]
        if levels and isinstance(next(iter(levels.values())), dict):
            levels = {p: {"levels": {k: v * ppu for k, v in d["levels"].items()}, "spread_points": d["spread"] * ppu}
                      for p, d in levels.items()}
        else:
            levels = {k: v * ppu for k, v in levels.items()}
        return {"factor": name, "levels_points": levels, "spread_points": res["spread"] * ppu,
                "ci_low": res["ci_low"] * ppu, "ci_high": res["ci_high"] * ppu,
                "eta_sq": ss / ss_total if ss_total > 0 else None, "replicates": res["replicates"] * ppu}

    def _compression(self, per_bench: list[dict]) -> list[dict]:
        conf = self.opts["confidence"]
        domain = [b for b in per_bench if b["in_domain"]]
        if not domain:
            if len(per_bench) > 1:
                self.warnings.append("no benchmark marked in_domain: compression ratios are not computed")
            return []
        out = []
        for d in domain:
            for other in per_bench:
                if other is d or other["in_domain"] or other["points_per_unit"] != d["points_per_unit"]:
                    continue
                num, den = d["algorithm_spread"], other["algorithm_spread"]
                row = {"in_domain": d["benchmark"], "other": other["benchmark"], "model": None,
                       "spread_in_domain_points": num["spread_points"], "spread_other_points": den["spread_points"]}
                row.update(self._ratio(num["spread_points"], den["spread_points"], num["replicates"],
                                       den["replicates"], conf))
                out.append(row)
                dens = {m["model"]: m for m in den["per_model"]}
                for m in num["per_model"]:
                    if m["model"] not in dens:
                        continue
                    r = {"in_domain": d["benchmark"], "other": other["benchmark"], "model": m["model"],
                         "spread_in_domain_points": m["spread_points"],
                         "spread_other_points": dens[m["model"]]["spread_points"]}
                    r.update(self._ratio(m["spread_points"], dens[m["model"]]["spread_points"], m["replicates"],
                                         dens[m["model"]]["replicates"], conf))
                    out.append(r)
        return out

    @staticmethod
    def _ratio(num: float, den: float, num_reps: np.ndarray, den_reps: np.ndarray, conf: float) -> dict:
        if den == 0:
            return {"ratio": None, "ci_low": None, "ci_high": None,
                    "note": "the other benchmark's algorithm spread is zero: ratio undefined"}
        ok = den_reps > 0
        reps = num_reps[ok] / den_reps[ok]
        lo, hi = bs.percentile_interval(reps, conf) if reps.size else (None, None)
        return {"ratio": num / den, "ci_low": None if lo is None else float(lo),
                "ci_high": None if hi is None else float(hi), "note": None}

    # ------------------------------------------------------------------ power
    def _power(self) -> list[dict]:
        o = self.opts
        out = []
        for (model, bench, metric), sub in self.cells.groupby(GROUP, sort=False):
            ppu = self.unit_of[(bench, metric)]
            k = len(sub)
            m = (k - 1) if (self.family == "vs-baseline" and self.baseline in set(sub["algorithm"])) else k * (k - 1) // 2
            n = int(sub["n"].min())
            a = pw.per_comparison_alpha(o["alpha"], o["correction"], max(m, 1))
            sd = pw.pooled_sd(sub["sd"].to_numpy(float), sub["n"].to_numpy(float))
            row = {"model": model, "benchmark": bench, "metric": metric, "n_per_arm": n, "comparisons": m,
                   "alpha_per_comparison": a, "power": o["power"], "pooled_sd": sd,
                   "mde_d": None, "mde": None, "mde_points": None, "seeds_needed": [], "note": None}
            if n < 2 or sd is None:
                row["note"] = "fewer than 2 seeds per arm: power cannot be estimated"
                out.append(row)
                continue
            d_min = pw.minimum_detectable_effect(n, a, o["power"])
            row["mde_d"] = d_min
            if d_min is not None:
                row["mde"] = d_min * sd
                row["mde_points"] = d_min * sd * ppu
            if sd == 0:
                row["note"] = "zero pooled sd: any difference is detectable in principle; seeds not planned"
            else:
                for diff_points in o["power_diffs"]:
                    d = diff_points / ppu / sd
                    row["seeds_needed"].append({"diff_points": diff_points, "d": d,
                                                "seeds_per_arm": pw.seeds_needed(d, a, o["power"])})
            out.append(row)
        return out
