"""Plain-sentence findings generated from the analysis dict.

Each sentence restates numbers already in the analysis (comparisons, inversions,
leverage, power); nothing is recomputed. Example:
"At 7B on gsm8k no variant significantly beats DPO after Bonferroni correction
(19 comparisons, alpha 0.0026)."
"""

from __future__ import annotations

from typing import Any

from oxstudy.report.tables import fmt, fmt_p, is_number

_CORRECTIONS = {"bonferroni": "Bonferroni", "holm": "Holm", "bh": "Benjamini-Hochberg", "none": "no"}


def _records(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, list):
        return [r for r in value if isinstance(r, dict)]
    if isinstance(value, dict):
        for key in ("rows", "records"):
            if isinstance(value.get(key), list):
                return _records(value[key])
    return []


def _order(values: list[Any]) -> list[Any]:
    seen: list[Any] = []
    for value in values:
        if value not in seen:
            seen.append(value)
    return seen


def _correction_phrase(correction: str | None, alpha: float, m: int) -> str:
    """'after Bonferroni correction (19 comparisons, alpha 0.0026)'."""
    name = _CORRECTIONS.get(str(correction).lower(), str(correction)) if correction else None
    if name is None or name == "no":
        return f"without correction ({m} comparison{'s' if m != 1 else ''}, alpha {alpha:g})"
    if str(correction).lower() == "bonferroni" and m > 0:
        per_test = alpha / m
        return f"after Bonferroni correction ({m} comparisons, alpha {fmt(per_test, 2)})"
    return f"after {name} correction ({m} comparisons, family alpha {alpha:g})"


def points(value: float, per_unit: float) -> str:
    """A signed difference, in percentage points when the metric is a proportion."""
    if per_unit == 100:
        return f"{value * 100:+.1f} pp"
    return f"{value:+.3g}"


_TEST_NAMES = {"welch": "Welch's t-test", "student": "Student's t-test", "mannwhitney": "Mann-Whitney U",
               "permutation": "permutation test"}


def comparison_headlines(analysis: dict[str, Any]) -> list[str]:
    """One sentence per model x benchmark family against the baseline."""
    conventions = analysis.get("conventions") or {}
    per_unit = float(conventions.get("points_per_unit") or 1.0)
    baseline = conventions.get("baseline")
    alpha = float(conventions.get("alpha", 0.05))
    correction = conventions.get("correction")
    rows = [r for r in _records(analysis.get("comparisons"))
            if r.get("family") in ("vs-baseline", None) and (baseline is None or r.get("b") == baseline)]
    lines = []
    groups = _order([(r.get("model"), r.get("benchmark"), r.get("metric")) for r in rows])
    for model, benchmark, metric in groups:
        family = [r for r in rows if r.get("model") == model and r.get("benchmark") == benchmark
                  and r.get("metric") == metric]
        base = baseline or family[0].get("b")
        m = family[0].get("family_size") if is_number(family[0].get("family_size")) else len(family)
        phrase = _correction_phrase(correction, alpha, int(m))
        test = next((r.get("flag_set_by") for r in family if r.get("flag_set_by")), None)
        if test:
            phrase = f"({_TEST_NAMES.get(str(test), str(test))} over seeds) {phrase}"
        better = [r for r in family if r.get("significant") and is_number(r.get("diff")) and float(r["diff"]) > 0]
        worse = [r for r in family if r.get("significant") and is_number(r.get("diff")) and float(r["diff"]) < 0]
        several = sum(1 for g in groups if g[:2] == (model, benchmark)) > 1
        where = f"At {model} on {benchmark}" + (f" ({metric})" if several else "")
        if not better:
            sentence = f"{where} no variant significantly beats {base} {phrase}"
        else:
            better.sort(key=lambda r: -float(r["diff"]))
            named = ", ".join(f"{r.get('a')} ({points(float(r['diff']), per_unit)}, adjusted p {fmt_p(r.get('p_adjusted'))})"
                              for r in better[:3])
            more = f" and {len(better) - 3} more" if len(better) > 3 else ""
            sentence = (f"{where} {len(better)} of {len(family)} variants significantly beat {base} "
                        f"{phrase}: {named}{more}")
        if worse:
            sentence += f"; {len(worse)} {'is' if len(worse) == 1 else 'are'} significantly worse"
        lines.append(sentence + ".")
    return lines


def inversion_headlines(analysis: dict[str, Any]) -> list[str]:
    inversions = _records(analysis.get("inversions"))
    if not inversions:
        return []
    significant = [r for r in inversions if str(r.get("kind")) == "significant"]
    line = (f"{len(inversions)} ranking inversion{'s' if len(inversions) != 1 else ''} between scales, "
            f"{len(significant)} significant at both scales")
    if significant:
        r = significant[0]
        line += (f"; e.g. {r.get('a')} vs {r.get('b')} on {r.get('benchmark')} flips between "
                 f"{r.get('from_model')} and {r.get('to_model')}")
    return [line + "."]


def leverage_headlines(analysis: dict[str, Any]) -> list[str]:
    """The factor order per benchmark, and the largest compression ratio."""
    leverage = analysis.get("leverage")
    if not isinstance(leverage, dict):
        return []
    per_unit = float((analysis.get("conventions") or {}).get("points_per_unit") or 1.0)
    unit = " pp" if per_unit == 100 else ""
    lines = []
    for bench in _records(leverage.get("benchmarks")):
        parts = [(f.get("factor"), f.get("spread_points")) for f in _records(bench.get("factors"))]
        spread = (bench.get("algorithm_spread") or {}).get("spread_points")
        if is_number(spread):
            parts.append(("algorithm", spread))
        parts = sorted([(n, float(v)) for n, v in parts if n is not None and is_number(v)], key=lambda p: -p[1])
        if parts:
            ordered = ", then ".join(f"{n} ({fmt(v)}{unit})" for n, v in parts)
            lines.append(f"On {bench.get('benchmark')}, leverage from most to least: {ordered}.")
    ratios = [r for r in _records(leverage.get("compression")) if r.get("model") is None and is_number(r.get("ratio"))]
    for r in ratios[:3]:
        lines.append(f"The algorithm spread on {r.get('in_domain')} ({fmt(r.get('spread_in_domain_points'))}{unit}) is "
                     f"{fmt(float(r['ratio']), 2)}x that on {r.get('other')} ({fmt(r.get('spread_other_points'))}{unit}).")
    return lines


def power_headlines(analysis: dict[str, Any]) -> list[str]:
    """The range of minimum detectable differences over the design's families."""
    rows = [r for r in _records(analysis.get("power")) if is_number(r.get("mde_points"))]
    if not rows:
        return []
    per_unit = float((analysis.get("conventions") or {}).get("points_per_unit") or 1.0)
    unit = " pp" if per_unit == 100 else ""
    values = sorted(float(r["mde_points"]) for r in rows)
    seeds = sorted({int(r["n_per_arm"]) for r in rows if is_number(r.get("n_per_arm"))})
    n = f"{seeds[0]}" if len(seeds) == 1 else f"{seeds[0]}-{seeds[-1]}" if seeds else "the design's"
    span = f"{fmt(values[0])}{unit}" if values[0] == values[-1] else f"{fmt(values[0])} to {fmt(values[-1])}{unit}"
    power = rows[0].get("power")
    return [f"With {n} seeds per arm the minimum detectable difference is {span} "
            f"({float(power) * 100 if is_number(power) else 80:g}% power, after correction)."]


def headlines(analysis: dict[str, Any], meta: Any = None) -> list[str]:
    """All headline sentences, most important first."""
    lines: list[str] = []
    if meta is not None and getattr(meta, "failed", None):
        total = getattr(meta, "planned_runs", None)
        of = f" of {total}" if total else ""
        lines.append(f"{len(meta.failed)}{of} runs failed; their cells have fewer seeds or are missing.")
    if meta is not None and getattr(meta, "missing", None):
        total = getattr(meta, "planned_runs", None)
        of = f" of {total}" if total else ""
        lines.append(f"{len(meta.missing)}{of} planned runs have no record yet: the study is partial.")
    lines += comparison_headlines(analysis)
    lines += inversion_headlines(analysis)
    lines += leverage_headlines(analysis)
    lines += power_headlines(analysis)
    return lines
