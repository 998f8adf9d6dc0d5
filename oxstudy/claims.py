"""Claims files: a paper's claims as data, re-checked against results by ``oxstudy verify``.

A claims file (YAML) holds a ``description``, optional ``results`` (paths relative to the file),
optional ``defaults`` (baseline, correction, alpha, family, test) and a list of ``claims``, each
with a ``kind``: ``difference``, ``none_better_than_baseline``, ``best``, ``inversion``,
``leverage_order`` or ``spread_ratio`` (fields in ``docs/analysis.md``). Unknown keys are
errors, and so are a claim comparing a thing with itself (``a == b``, ``from_model == to_model``),
duplicate claim ids and, at verification, a claim without ``metric`` on a benchmark whose results
hold several metrics; every error is located ``FILE:LINE: claims[i].field: message``.

Each claim gets a verdict: ``SUPPORTED``, ``REFUTED`` or ``INCONCLUSIVE`` (the data point the
claimed way but the claimed significance is not reached, or the statistic is undefined), with
the numbers behind it.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from oxstudy.errors import InputError, SpecError
from oxstudy.yamlsource import PathKey, SourceMap, load_yaml, located

SCHEMA = "oxstudy.verify/1"
SUPPORTED, REFUTED, INCONCLUSIVE = "SUPPORTED", "REFUTED", "INCONCLUSIVE"

Correction = Literal["bonferroni", "holm", "bh", "none"]
Family = Literal["vs-baseline", "pairwise"]
Test = Literal["welch", "student", "mannwhitney", "permutation"]
#: Tests that earlier versions accepted and that no longer decide a claim, with the reason.
REMOVED_TESTS = {"hierarchical-bootstrap": "the seeds x items bootstrap was removed: it rejected in up to 12% of "
                                           "null studies at realistic seed variance (docs/analysis.md, "
                                           "Calibration); use welch, the seed-level test"}
FACTOR_ALIASES = {"scale": "scale", "params": "scale", "size": "scale", "paradigm": "paradigm",
                  "online": "online", "online_vs_offline": "online", "loss": "loss_family",
                  "loss_family": "loss_family", "loss_function": "loss_family"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Claim(_Strict):
    id: str | None = Field(None, description="Short name shown in the verdicts (default: claim N).")
    text: str | None = Field(None, description="The claim as the paper words it.")
    metric: str | None = Field(None, description="Metric, when the results have several per benchmark.")


def _reject_removed_test(value: Any) -> Any:
    """A test oxstudy no longer offers is a located claim-file error naming its replacement."""
    if isinstance(value, str) and value in REMOVED_TESTS:
        raise ValueError(f"test {value!r}: {REMOVED_TESTS[value]}")
    return value


class _Tested(_Claim):
    correction: Correction | None = Field(None, description="Multiple-comparison correction (default: defaults).")
    alpha: float | None = Field(None, gt=0, lt=1)
    test: Test | None = Field(None, description="Extra seed-level test to report beside Welch (student, "
                              "mannwhitney, permutation; default welch). Welch (Hsu's df for small unequal "
                              "arms) decides every verdict: the others are not calibrated under unequal "
                              "variances (docs/analysis.md, Calibration).")

    _removed_test = field_validator("test", mode="before")(_reject_removed_test)


class DifferenceClaim(_Tested):
    """``a`` vs ``b`` at ``model`` and ``benchmark``: direction and (optionally) significance."""

    kind: Literal["difference"]
    a: str
    b: str
    model: str
    benchmark: str
    direction: Literal["greater", "less", "none"] = Field(
        "greater", description="greater: a > b; less: a < b; none: no significant difference.")
    significant: bool = Field(False, description="The difference must be significant after correction.")
    family: Family | None = None
    baseline: str | None = Field(None, description="For family vs-baseline (default: defaults.baseline, else b).")


class NoneBetterClaim(_Tested):
    """No algorithm significantly beats the baseline at ``model`` and ``benchmark``."""

    kind: Literal["none_better_than_baseline"]
    model: str
    benchmark: str
    baseline: str | None = None


class BestClaim(_Tested):
    """``algorithm`` has the highest mean at ``model`` and ``benchmark``."""

    kind: Literal["best"]
    algorithm: str
    model: str
    benchmark: str
    significant: bool = Field(False, description="Also significantly better than every other (pairwise).")


class InversionClaim(_Tested):
    """``a`` and ``b`` swap order between ``from_model`` and ``to_model`` on ``benchmark``."""

    kind: Literal["inversion"]
    a: str
    b: str
    from_model: str
    to_model: str
    benchmark: str
    significant: bool = Field(False, description="Each order significant at its own scale (pairwise family).")


class LeverageOrderClaim(_Claim):
    """Factors ordered from most to least leverage (spread of marginal means)."""

    kind: Literal["leverage_order"]
    order: list[str] = Field(min_length=2, description="e.g. [scale, paradigm, online, loss_family].")
    benchmark: str | None = Field(None, description="Default: the in-domain benchmark.")


class SpreadRatioClaim(_Claim):
    """Algorithm spread on ``numerator`` is at least ``at_least`` times that on ``denominator``."""

    kind: Literal["spread_ratio"]
    numerator: str
    denominator: str
    at_least: float = Field(gt=0)
    model: str | None = Field(None, description="Default: spreads of marginal means over all models.")


CLAIM_KINDS: dict[str, type[_Claim]] = {
    "difference": DifferenceClaim, "none_better_than_baseline": NoneBetterClaim, "best": BestClaim,
    "inversion": InversionClaim, "leverage_order": LeverageOrderClaim, "spread_ratio": SpreadRatioClaim,
}


class Defaults(_Strict):
    baseline: str | None = None
    correction: Correction = "bonferroni"
    alpha: float = Field(0.05, gt=0, lt=1)
    family: Family = "vs-baseline"
    test: Test = "welch"

    _removed_test = field_validator("test", mode="before")(_reject_removed_test)


class ClaimsFile(_Strict):
    description: str | None = None
    results: list[str] = Field(default_factory=list, description="Result paths, relative to the claims file.")
    defaults: Defaults = Field(default_factory=Defaults)
    claims: list[Any] = Field(min_length=1)


class LoadedClaims:
    """A validated claims file with the location of every value (for located errors)."""

    def __init__(self, path: Path, header: ClaimsFile, claims: list[_Claim], source: SourceMap) -> None:
        self.path, self.header, self.claims, self.source = path, header, claims, source

    @property
    def results(self) -> list[Path]:
        return [(self.path.parent / p) if not Path(p).is_absolute() else Path(p) for p in self.header.results]

    def where(self, index: int, field: str | None = None) -> str:
        path: PathKey = ("claims", index) + ((field,) if field else ())
        file, line = self.source.locate(path)
        return f"{file}:{line}"


def _messages(exc: ValidationError, source: SourceMap, prefix: PathKey) -> list[str]:
    out = []
    for error in exc.errors():
        loc = prefix + tuple(error["loc"])
        if error["type"] == "extra_forbidden":
            msg = "unknown key"
        elif error["type"] == "missing":
            msg = "required field is missing"
        else:
            msg = error["msg"]
        out.append(located(source, loc, msg))
    return out


def _self_contradiction(claim: _Claim) -> list[tuple[str, str]]:
    """(field, message) for a claim that compares a thing with itself: no data can decide it."""
    same = [("b", "a", "algorithm"), ("to_model", "from_model", "model"), ("denominator", "numerator", "benchmark"),
            ("full", "candidate", "algorithm"), ("reference", "algorithm", "algorithm")]
    return [(second, f"{second} is the same {what} as {first} ({getattr(claim, first)!r}): nothing to compare")
            for second, first, what in same
            if getattr(claim, first, None) is not None and getattr(claim, first, None) == getattr(claim, second, None)]


def load_claims(path: str | Path) -> LoadedClaims:
    """Load and validate a claims file; ``SpecError`` with one located line per problem."""
    _regime_kinds()
    path = Path(path)
    data, source = load_yaml(path)
    if not isinstance(data, dict):
        raise SpecError(f"{path}:1: a claims file is a mapping with a 'claims' list")
    messages: list[str] = []
    header = None
    try:
        header = ClaimsFile.model_validate(data)
    except ValidationError as exc:
        messages += _messages(exc, source, ())
    claims: list[_Claim] = []
    raw = data.get("claims") if isinstance(data.get("claims"), list) else []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            messages.append(located(source, ("claims", i), "each claim is a mapping with a 'kind'"))
            continue
        kind = item.get("kind")
        model = CLAIM_KINDS.get(kind) if isinstance(kind, str) else None
        if model is None:
            where = ("claims", i, "kind") if "kind" in item else ("claims", i)
            messages.append(located(source, where, f"unknown claim kind {kind!r} (expected one of "
                                                    f"{', '.join(CLAIM_KINDS)})" if kind is not None
                                    else "required field 'kind' is missing"))
            continue
        try:
            claim = model.model_validate(item)
        except ValidationError as exc:
            messages += _messages(exc, source, ("claims", i))
            continue
        messages += [located(source, ("claims", i, field), message) for field, message in _self_contradiction(claim)]
        claims.append(claim)
    seen: dict[str, int] = {}
    for i, item in enumerate(raw):
        claim_id = item.get("id") if isinstance(item, dict) else None
        if isinstance(claim_id, str):
            if claim_id in seen:
                messages.append(located(source, ("claims", i, "id"),
                                        f"duplicate claim id {claim_id!r} (also claims[{seen[claim_id]}])"))
            seen.setdefault(claim_id, i)
    if messages:
        raise SpecError(*dict.fromkeys(messages))
    assert header is not None
    return LoadedClaims(path, header, claims, source)


# --------------------------------------------------------------------------------------------
# verification


class _Verifier:
    def __init__(self, loaded: LoadedClaims, results: Any, n_resamples: int, rng_seed: int) -> None:
        self.loaded, self.results = loaded, results
        self.n_resamples, self.rng_seed = n_resamples, rng_seed
        self.cache: dict = {}
        self.defaults = loaded.header.defaults

    def analysis(self, sections: tuple[str, ...], *, baseline=None, correction=None, alpha=None, family=None,
                 test=None) -> dict:
        from oxstudy.stats.analyze import analyze

        d = self.defaults
        settings = dict(baseline=baseline, correction=correction or d.correction, alpha=alpha or d.alpha,
                        family=family or d.family, test=test or d.test)
        key = (sections, tuple(sorted(settings.items())))
        if key not in self.cache:
            self.cache[key] = analyze(self.results.table, items=None,
                                      kind=self.results.kind, n_resamples=self.n_resamples,
                                      rng_seed=self.rng_seed, sections=sections, source=self.results.source,
                                      **settings)
        return self.cache[key]

    def check_names(self, i: int, claim: _Claim, analysis: dict) -> None:
        known = {"model": analysis["input"]["models"], "algorithm": analysis["input"]["algorithms"],
                 "benchmark": analysis["input"]["benchmarks"]}
        fields = {"a": "algorithm", "b": "algorithm", "algorithm": "algorithm", "baseline": "algorithm",
                  "model": "model", "from_model": "model", "to_model": "model", "benchmark": "benchmark",
                  "numerator": "benchmark", "denominator": "benchmark"}
        for name, what in fields.items():
            value = getattr(claim, name, None)
            if value is not None and value not in known[what]:
                raise InputError(f"{self.loaded.where(i, name)}: claims[{i}].{name}: unknown {what} {value!r} "
                                 f"(the results have: {', '.join(map(str, known[what]))})")
        self.check_metric(i, claim)

    def check_metric(self, i: int, claim: _Claim) -> None:
        """A claim without ``metric:`` on a benchmark the results hold several metrics of is ambiguous:
        rows of different metrics would be compared with each other."""
        table = self.results.table
        if claim.metric is not None or "metric" not in table.columns or "benchmark" not in table.columns:
            return
        named = [getattr(claim, f) for f in ("benchmark", "numerator", "denominator") if getattr(claim, f, None)]
        metrics = table.groupby("benchmark")["metric"].unique()
        for bench in named or list(metrics.index):  # no benchmark named (leverage_order): all may be read
            found = sorted(map(str, metrics.get(bench, [])))
            if len(found) > 1:
                raise InputError(f"{self.loaded.where(i)}: claims[{i}].metric: benchmark {bench!r} has several "
                                 f"metrics in the results ({', '.join(found)}): name one with metric:")

    # each returns (verdict, message, numbers)
    def difference(self, i: int, c: DifferenceClaim):
        family = c.family or self.defaults.family
        baseline = (c.baseline or self.defaults.baseline or c.b) if family == "vs-baseline" else None
        res = self.analysis(("comparisons",), baseline=baseline, correction=c.correction, alpha=c.alpha,
                            family=family, test=c.test)
        self.check_names(i, c, res)
        if family == "vs-baseline" and baseline not in (c.a, c.b):
            raise InputError(f"{self.loaded.where(i, 'family')}: claims[{i}]: {c.a} vs {c.b} is not in the "
                             f"vs-baseline family of {baseline}; use family: pairwise")
        row, sign = _find_comparison(res, c.model, c.benchmark, c.metric, c.a, c.b)
        if row is None:
            return INCONCLUSIVE, f"no comparison of {c.a} and {c.b} at {c.model}/{c.benchmark}", {}
        stat = row
        diff = sign * stat["diff"]
        lo, hi = (stat.get("ci_low"), stat.get("ci_high")) if sign > 0 else (_neg(stat.get("ci_high")),
                                                                             _neg(stat.get("ci_low")))
        numbers = {"diff": diff, "ci_low": lo, "ci_high": hi, "test": stat.get("test"),
                   "flag_set_by": stat.get("flag_set_by"), "p_value": stat.get("p_value"),
                   "p_adjusted": stat.get("p_adjusted"), "correction": row.get("correction"),
                   "family": family, "family_size": row.get("family_size"),
                   "mean_a": row.get("mean_a") if sign > 0 else row.get("mean_b"),
                   "mean_b": row.get("mean_b") if sign > 0 else row.get("mean_a")}
        reported = row.get("reported_test")
        if reported:  # the user's test: shown, never the verdict (analyze's FLAG_RULE)
            numbers["reported_test"] = reported
            numbers[f"p_value_{reported}"] = row.get(f"p_value_{reported}")
        sig = stat.get("significant")
        desc = f"{c.a} - {c.b} = {diff:+.4g} (p_adj={_fmt(stat.get('p_adjusted'))}, {stat.get('test') or 'no test'}"
        if reported:
            desc += f"; {reported} p={_fmt(row.get(f'p_value_{reported}'))} reported, sets no verdict"
        desc += ")"
        if sig is None:
            return INCONCLUSIVE, f"{desc}: {stat.get('note') or 'the test is undefined'}", numbers
        if c.direction == "none":
            return (REFUTED, f"{desc}: significant", numbers) if sig else \
                (SUPPORTED, f"{desc}: not significant", numbers)
        right = diff > 0 if c.direction == "greater" else diff < 0
        if c.significant:
            if right and sig:
                return SUPPORTED, f"{desc}: significant in the claimed direction", numbers
            if right:
                return INCONCLUSIVE, f"{desc}: claimed direction but not significant", numbers
            return REFUTED, f"{desc}: opposite direction", numbers
        if right:
            return SUPPORTED, f"{desc}: claimed direction", numbers
        if sig:
            return REFUTED, f"{desc}: significantly in the opposite direction", numbers
        return INCONCLUSIVE, f"{desc}: opposite direction, not significant", numbers

    def none_better_than_baseline(self, i: int, c: NoneBetterClaim):
        baseline = c.baseline or self.defaults.baseline
        if baseline is None:
            raise InputError(f"{self.loaded.where(i)}: claims[{i}].baseline: no baseline (set it here or in "
                             "defaults.baseline)")
        res = self.analysis(("comparisons",), baseline=baseline, correction=c.correction, alpha=c.alpha,
                            family="vs-baseline", test=c.test)
        self.check_names(i, c, res)
        if baseline not in res["input"]["algorithms"]:
            raise InputError(f"{self.loaded.where(i, 'baseline')}: claims[{i}].baseline: unknown algorithm "
                             f"{baseline!r}")
        rows = [r for r in res["comparisons"] if r["model"] == c.model and r["benchmark"] == c.benchmark
                and (c.metric is None or r["metric"] == c.metric)]
        if not rows:
            return INCONCLUSIVE, f"no comparisons against {baseline} at {c.model}/{c.benchmark}", {}
        better = [r for r in rows if r.get("significant") and r["diff"] > 0]
        undefined = [r["a"] for r in rows if r.get("significant") is None]
        numbers = {"baseline": baseline, "comparisons": len(rows), "correction": rows[0].get("correction"),
                   "significantly_better": [{"algorithm": r["a"], "diff": r["diff"], "p_adjusted": r["p_adjusted"]}
                                            for r in better],
                   "smallest_p_adjusted": min((r["p_adjusted"] for r in rows if r.get("p_adjusted") is not None),
                                              default=None)}
        if better:
            names = ", ".join(f"{r['a']} (+{r['diff']:.4g}, p_adj={_fmt(r['p_adjusted'])})" for r in better)
            return REFUTED, f"significantly better than {baseline}: {names}", numbers
        if undefined:
            return INCONCLUSIVE, f"tests undefined for {', '.join(undefined)}", numbers
        return SUPPORTED, (f"none of {len(rows)} algorithms is significantly better than {baseline} "
                           f"(smallest p_adj={_fmt(numbers['smallest_p_adjusted'])})"), numbers

    def best(self, i: int, c: BestClaim):
        res = self.analysis(("cells", "comparisons") if c.significant else ("cells",), correction=c.correction,
                            alpha=c.alpha, family="pairwise", test=c.test)
        self.check_names(i, c, res)
        cells = [r for r in res["cells"] if r["model"] == c.model and r["benchmark"] == c.benchmark
                 and (c.metric is None or r["metric"] == c.metric)]
        ordered = sorted(cells, key=lambda r: -r["mean"])
        top, claimed = ordered[0], next((r for r in cells if r["algorithm"] == c.algorithm), None)
        if claimed is None:
            return INCONCLUSIVE, f"{c.algorithm} has no results at {c.model}/{c.benchmark}", {}
        runner = next((r for r in ordered if r["algorithm"] != c.algorithm), None)
        numbers = {"best": top["algorithm"], "best_mean": top["mean"], "claimed_mean": claimed["mean"],
                   "runner_up": runner["algorithm"] if runner else None,
                   "runner_up_mean": runner["mean"] if runner else None}
        if top["algorithm"] != c.algorithm and top["mean"] > claimed["mean"]:
            return REFUTED, (f"best is {top['algorithm']} ({top['mean']:.4g}), {c.algorithm} has "
                             f"{claimed['mean']:.4g}"), numbers
        if runner is not None and runner["mean"] == claimed["mean"]:
            return INCONCLUSIVE, f"{c.algorithm} ties with {runner['algorithm']} ({claimed['mean']:.4g})", numbers
        msg = f"{c.algorithm} is best ({claimed['mean']:.4g}; runner-up {numbers['runner_up']} {_fmt(numbers['runner_up_mean'])})"
        if not c.significant:
            return SUPPORTED, msg, numbers
        rows = [r for r in res["comparisons"] if r["model"] == c.model and r["benchmark"] == c.benchmark
                and c.algorithm in (r["a"], r["b"]) and (c.metric is None or r["metric"] == c.metric)]
        weak = [r for r in rows if not r.get("significant")]
        numbers["not_significant_against"] = [r["b"] if r["a"] == c.algorithm else r["a"] for r in weak]
        if weak:
            return INCONCLUSIVE, f"{msg}, but not significantly better than {', '.join(numbers['not_significant_against'])}", numbers
        return SUPPORTED, f"{msg}, significantly better than all {len(rows)} others", numbers

    def inversion(self, i: int, c: InversionClaim):
        res = self.analysis(("cells", "inversions"), correction=c.correction, alpha=c.alpha, family="pairwise",
                            test=c.test)
        self.check_names(i, c, res)
        match = None
        for r in res["inversions"]:
            if r["benchmark"] == c.benchmark and {r["a"], r["b"]} == {c.a, c.b} and \
                    {r["from_model"], r["to_model"]} == {c.from_model, c.to_model} and \
                    (c.metric is None or r["metric"] == c.metric):
                match = r
        means = {(r["model"], r["algorithm"]): r["mean"] for r in res["cells"] if r["benchmark"] == c.benchmark
                 and (c.metric is None or r["metric"] == c.metric)}
        try:
            d_from = means[(c.from_model, c.a)] - means[(c.from_model, c.b)]
            d_to = means[(c.to_model, c.a)] - means[(c.to_model, c.b)]
        except KeyError:
            return INCONCLUSIVE, f"{c.a} or {c.b} has no results at one of the two models", {}
        numbers = {"diff_from": d_from, "diff_to": d_to}
        if match is None:
            return REFUTED, (f"no inversion: {c.a} - {c.b} = {d_from:+.4g} at {c.from_model}, {d_to:+.4g} at "
                             f"{c.to_model}"), numbers
        numbers.update({"kind": match["kind"], "posterior_probability": match["posterior_probability"],
                        "p_adjusted_from": match["p_adjusted_from"], "p_adjusted_to": match["p_adjusted_to"]})
        msg = (f"{c.a} - {c.b}: {d_from:+.4g} at {c.from_model} -> {d_to:+.4g} at {c.to_model} "
               f"({match['kind']}, posterior probability of the flip "
               f"{_fmt(match['posterior_probability'])})")
        if c.significant and match["kind"] != "significant":
            return INCONCLUSIVE, msg + ": not significant at both scales", numbers
        return SUPPORTED, msg, numbers

    def _leverage(self, i: int, c: _Claim) -> dict:
        res = self.analysis(("leverage",))
        self.check_names(i, c, res)
        return res

    def leverage_order(self, i: int, c: LeverageOrderClaim):
        res = self._leverage(i, c)
        benches = [b for b in res["leverage"]["benchmarks"] if c.metric is None or b["metric"] == c.metric]
        if c.benchmark is not None:
            benches = [b for b in benches if b["benchmark"] == c.benchmark]
        elif len(benches) > 1:
            domain = [b for b in benches if b["in_domain"]]
            if len(domain) != 1:
                raise InputError(f"{self.loaded.where(i)}: claims[{i}].benchmark: several benchmarks and no single "
                                 "in-domain one: name the benchmark")
            benches = domain
        bench = benches[0]
        claimed = []
        for name in c.order:
            canonical = FACTOR_ALIASES.get(name)
            if canonical is None:
                raise InputError(f"{self.loaded.where(i, 'order')}: claims[{i}].order: unknown factor {name!r} "
                                 f"(expected {', '.join(sorted(set(FACTOR_ALIASES.values())))})")
            claimed.append(canonical)
        spreads = {f["factor"]: f for f in bench["factors"]}
        numbers = {"benchmark": bench["benchmark"], "hierarchy": bench["hierarchy"],
                   "spread_points": {f: spreads[f]["spread_points"] for f in claimed if f in spreads},
                   "ci": {f: [spreads[f]["ci_low"], spreads[f]["ci_high"]] for f in claimed if f in spreads},
                   "eta_sq": {f: spreads[f]["eta_sq"] for f in claimed if f in spreads}}
        missing = [f for f in claimed if f not in spreads]
        if missing:
            return INCONCLUSIVE, f"factor(s) {', '.join(missing)} cannot be estimated from these results", numbers
        observed = sorted(claimed, key=lambda f: -spreads[f]["spread_points"])
        shown = " > ".join(f"{f} {spreads[f]['spread_points']:.3g}pp" for f in observed)
        if observed == claimed:
            return SUPPORTED, f"on {bench['benchmark']}: {shown}", numbers
        return REFUTED, f"on {bench['benchmark']}: {shown} (claimed {' > '.join(claimed)})", numbers

    def spread_ratio(self, i: int, c: SpreadRatioClaim):
        res = self._leverage(i, c)
        by_bench = {b["benchmark"]: b for b in res["leverage"]["benchmarks"]
                    if c.metric is None or b["metric"] == c.metric}

        def spread(bench: str) -> float | None:
            s = by_bench[bench]["algorithm_spread"]
            if c.model is None:
                return s["spread_points"]
            return next((m["spread_points"] for m in s["per_model"] if m["model"] == c.model), None)

        num, den = spread(c.numerator), spread(c.denominator)
        numbers = {"spread_numerator_points": num, "spread_denominator_points": den, "at_least": c.at_least}
        if num is None or den is None:
            return INCONCLUSIVE, f"no algorithm spread at {c.model} for one of the benchmarks", numbers
        if den == 0:
            return INCONCLUSIVE, f"the spread on {c.denominator} is zero: ratio undefined", numbers
        ratio = num / den
        numbers["ratio"] = ratio
        for row in res["leverage"]["compression"]:
            if row["in_domain"] == c.numerator and row["other"] == c.denominator and row["model"] == c.model:
                numbers["ci_low"], numbers["ci_high"] = row["ci_low"], row["ci_high"]
        msg = f"{num:.3g}pp on {c.numerator} / {den:.3g}pp on {c.denominator} = {ratio:.3g}x (claimed >= {c.at_least:g}x)"
        return (SUPPORTED if ratio >= c.at_least else REFUTED), msg, numbers


def _find_comparison(res: dict, model: str, bench: str, metric: str | None, a: str, b: str):
    for r in res["comparisons"]:
        if r["model"] != model or r["benchmark"] != bench or (metric is not None and r["metric"] != metric):
            continue
        if (r["a"], r["b"]) == (a, b):
            return r, 1
        if (r["a"], r["b"]) == (b, a):
            return r, -1
    return None, 1


def _neg(x):
    return None if x is None else -x


def _fmt(x) -> str:
    return "n/a" if x is None else f"{x:.3g}"


def verify(loaded: LoadedClaims, results: Any, *, n_resamples: int = 10_000, rng_seed: int = 0) -> dict:
    """Check every claim against ``results`` (:class:`oxstudy.results_io.Results`).

    Returns ``{"schema", "description", "claims": [{id, kind, text, verdict, message, numbers}],
    "summary": {SUPPORTED: n, REFUTED: n, INCONCLUSIVE: n}, "all_supported", "warnings"}``; the
    warnings are the loader's (corrupt records, failed runs, a partial study), as in ``analyze``.
    """
    verifier = _Verifier(loaded, results, n_resamples, rng_seed)
    out = []
    for i, claim in enumerate(loaded.claims):
        handler = getattr(verifier, claim.kind, None)  # data-regime kinds live in oxstudy/claims_regime.py
        if handler is None:
            from oxstudy.claims_regime import check as handler_regime

            handler = functools.partial(handler_regime, verifier)
        verdict, message, numbers = handler(i, claim)
        out.append({"id": claim.id or f"claim {i + 1}", "kind": claim.kind, "text": claim.text,
                    "verdict": verdict, "message": message, "numbers": numbers,
                    "claim": claim.model_dump(exclude_none=True)})
    summary = {v: sum(1 for r in out if r["verdict"] == v) for v in (SUPPORTED, REFUTED, INCONCLUSIVE)}
    from oxstudy.stats.analyze import _clean

    return _clean({"schema": SCHEMA, "description": loaded.header.description, "claims": out, "summary": summary,
                   "all_supported": summary[SUPPORTED] == len(out),
                   "warnings": list(getattr(results, "warnings", None) or [])})


def _regime_kinds() -> None:
    """Register the data-regime / alignment claim kinds (issue 13; imported late: they subclass _Claim)."""
    from oxstudy.claims_regime import REGIME_CLAIM_KINDS

    CLAIM_KINDS.update(REGIME_CLAIM_KINDS)


# --------------------------------------------------------------------------------------------
# post-training claim kinds (update_concentration, larger_update, forgets_less): oxstudy/claims_anatomy.py


def _register_post_training_kinds() -> None:
    from oxstudy import claims_anatomy

    CLAIM_KINDS.update(claims_anatomy.CLAIM_KINDS)
    for kind, check in claims_anatomy.VERIFIERS.items():
        setattr(_Verifier, kind, lambda self, i, claim, _check=check: _check(self, i, claim))


_register_post_training_kinds()
