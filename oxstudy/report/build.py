"""Build the self-contained HTML report from an analysis dict and study metadata.

The report computes no statistic: every number comes from ``oxstudy.stats.analyze``'s
output (``cells``, ``comparisons``, ``rankings``, ``inversions``, ``factorial``,
``leverage``, ``power``, ``warnings``) or from the study's own records (per-seed values,
failures, timings, provenance, training curves). A section whose data is absent is
omitted with a one-line note, so a partial study or a summary-statistics table still gives
a useful report.

Everything user-supplied reaches the page through Jinja2 autoescaping; the only markup
inserted verbatim is SVG that matplotlib wrote (it escapes text itself).
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from markupsafe import Markup

from oxstudy.report import plots
from oxstudy.report.headlines import headlines
from oxstudy.report.tables import (
    MISSING,
    Table,
    TableCell,
    fmt,
    fmt_ci,
    fmt_p,
    fmt_size,
    is_number,
    records_table,
)

TEMPLATES = Path(__file__).parent / "templates"


@dataclass
class ReportMeta:
    """What the report knows about the study besides the analysis dict.

    All fields are optional: a long-table or summary-statistics input has only a name.
    ``seed_values`` holds one record per run x benchmark (model, algorithm, seed,
    benchmark, value) for the strip plots; ``failed`` one record per failed run (run_id,
    model, algorithm, seed, reason); ``missing`` one per planned run without a record.
    """

    study: str = "study"
    source: str = ""
    description: str = ""
    input_kind: str = ""
    spec: dict[str, Any] | None = None
    planned_runs: int | None = None
    done_runs: int | None = None
    failed: list[dict[str, Any]] = field(default_factory=list)
    missing: list[dict[str, Any]] = field(default_factory=list)
    compute: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    seed_values: list[dict[str, Any]] = field(default_factory=list)
    model_params: dict[str, float] = field(default_factory=dict)
    metric_label: str = ""
    generated_at: str = ""

    @classmethod
    def coerce(cls, meta: ReportMeta | dict[str, Any] | None) -> ReportMeta:
        if meta is None:
            return cls()
        if isinstance(meta, cls):
            return meta
        known = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(meta) - known)
        if unknown:
            raise TypeError(f"ReportMeta: unknown field(s) {', '.join(unknown)}")
        return cls(**meta)


@dataclass
class Section:
    """One numbered section of the report; ``note`` replaces the body when data is absent."""

    id: str
    title: str
    note: str = ""
    intro: str = ""
    paragraphs: list[str] = field(default_factory=list)
    bullets: list[str] = field(default_factory=list)
    figures: list[tuple[str, Markup]] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    facts: list[tuple[str, str]] = field(default_factory=list)
    details: list[tuple[str, str]] = field(default_factory=list)

    @property
    def available(self) -> bool:
        return not self.note


# --------------------------------------------------------------------------- analysis view


def records(value: Any) -> list[dict[str, Any]]:
    """A list of flat records from a section that may be a list, ``{"rows": [...]}`` or absent."""
    if value is None:
        return []
    if isinstance(value, list):
        return [r for r in value if isinstance(r, dict)]
    if isinstance(value, dict):
        for key in ("rows", "records", "table", "items"):
            if isinstance(value.get(key), list):
                return records(value[key])
    return []


def _order(values: Sequence[Any]) -> list[Any]:
    seen: list[Any] = []
    for value in values:
        if value is not None and value not in seen:
            seen.append(value)
    return seen


def _bench_labels(analysis: dict[str, Any], seed_values: list[dict[str, Any]]) -> dict[tuple[Any, Any], str]:
    """(benchmark, metric) -> display label: the benchmark alone unless it has several metrics.

    Rows without a metric (a long table without a ``metric`` column) map to the benchmark's
    only metric.
    """
    pairs = _order([(c.get("benchmark"), c.get("metric")) for c in records(analysis.get("cells"))]
                   + [(r.get("benchmark"), r.get("metric")) for r in seed_values])
    metrics: dict[Any, list[Any]] = {}
    for bench, metric in pairs:
        metrics.setdefault(bench, [])
        if metric is not None and metric not in metrics[bench]:
            metrics[bench].append(metric)
    labels: dict[tuple[Any, Any], str] = {}
    for bench, names in metrics.items():
        several = len(names) > 1
        for metric in names:
            labels[(bench, metric)] = f"{bench} ({metric})" if several else str(bench)
        if not several:
            labels[(bench, None)] = str(bench)
    return labels


class AnalysisView:
    """Read-only access to an analysis dict with the orderings every figure shares.

    A benchmark with several metrics is shown as ``benchmark (metric)``: every record's
    ``benchmark`` is relabelled that way so figures and tables key on one string.
    """

    def __init__(self, analysis: dict[str, Any], meta: ReportMeta) -> None:
        self.raw = analysis
        self.conventions: dict[str, Any] = dict(analysis.get("conventions") or {})
        labels = _bench_labels(analysis, meta.seed_values)
        self._labels = labels

        def relabel(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
            out = []
            for row in rows:
                key = (row.get("benchmark"), row.get("metric"))
                out.append({**row, "benchmark": labels[key]} if key in labels else row)
            return out

        self.relabel = relabel
        self.cells = relabel(records(analysis.get("cells")))
        self.comparisons = relabel(records(analysis.get("comparisons")))
        self.inversions = relabel(records(analysis.get("inversions")))
        self.seed_values = relabel(list(meta.seed_values))
        self.warnings = [str(w) if not isinstance(w, dict) else w.get("message", str(w))
                         for w in (analysis.get("warnings") or [])]
        self.baseline: str | None = self.conventions.get("baseline")
        self.alpha = self.conventions.get("alpha", 0.05)
        self.correction = self.conventions.get("correction")
        self.points_per_unit = float(self.conventions.get("points_per_unit") or 1.0)
        by_benchmark = self.conventions.get("points_per_unit_by_benchmark") or {}
        self.unit_label = ("points" if self.points_per_unit == 100 else
                           "points for metrics in [0, 1], the metric's own units for the others"
                           if 100 in by_benchmark.values() else "metric units")
        self.params: dict[str, float] = dict(meta.model_params)
        for row in self.cells + self.seed_values:
            if is_number(row.get("params")) and row.get("model") not in self.params:
                self.params[row["model"]] = float(row["params"])
        declared = analysis.get("input") or {}
        source = self.cells or self.seed_values
        models = _order([*(declared.get("models") or []), *(c.get("model") for c in source)])
        if declared.get("models"):
            self.models = models  # the engine already ordered scales by parameter count
        else:
            self.models = sorted(models, key=lambda m: (m not in self.params, self.params.get(m, 0.0),
                                                        models.index(m)))
        algorithms = _order([*(declared.get("algorithms") or []), *(c.get("algorithm") for c in source)])
        if self.baseline in algorithms:
            algorithms = [self.baseline] + [a for a in algorithms if a != self.baseline]
        self.algorithms = algorithms
        self.benchmarks = _order([c.get("benchmark") for c in source])
        self.cell_index = {(c.get("model"), c.get("algorithm"), c.get("benchmark")): c for c in self.cells}

    def family(self, name: str) -> list[dict[str, Any]]:
        """Comparisons of one family; rows without a family count as vs-baseline when b is
        the baseline."""
        rows = [c for c in self.comparisons if c.get("family") == name]
        if not rows and name == "vs-baseline" and self.baseline is not None:
            rows = [c for c in self.comparisons if c.get("family") is None and c.get("b") == self.baseline]
        return rows

    def model_label(self, model: str) -> str:
        return str(model)


# --------------------------------------------------------------------------- sections


def _figure(caption: str, svg: str) -> tuple[str, Markup]:
    # matplotlib escapes all text it writes into SVG; the SVG is our own output.
    return caption, Markup(svg)


def _pretty_correction(name: Any) -> str:
    return {"bonferroni": "Bonferroni", "holm": "Holm", "bh": "Benjamini-Hochberg",
            "none": "no"}.get(str(name).lower(), str(name))


def _summary(view: AnalysisView, meta: ReportMeta, lines: list[str]) -> Section:
    section = Section("summary", "Summary")
    section.intro = meta.description
    facts = section.facts
    facts.append(("Study", meta.study))
    if meta.source:
        facts.append(("Input", f"{meta.source}" + (f" ({meta.input_kind})" if meta.input_kind else "")))
    facts.append(("Matrix", f"{len(view.models)} models x {len(view.algorithms)} algorithms x "
                            f"{len(view.benchmarks)} benchmarks"))
    if meta.planned_runs is not None or meta.done_runs is not None:
        done = meta.done_runs if meta.done_runs is not None else 0
        parts = [f"{done} done", f"{len(meta.failed)} failed", f"{len(meta.missing)} missing"]
        planned = f" of {meta.planned_runs} planned" if meta.planned_runs is not None else ""
        facts.append(("Runs", ", ".join(parts) + planned))
    if meta.compute:
        facts.append(("Compute", _fmt_compute(meta.compute)))
    conv = view.conventions
    if conv:
        shown = []
        for key in ("baseline", "family", "correction", "alpha", "test", "ci"):
            if key in conv and conv[key] is not None:
                shown.append(f"{key} {conv[key]}")
        if shown:
            facts.append(("Statistics", ", ".join(shown)))
    for key, value in meta.provenance.items():
        facts.append((f"Provenance: {key}", fmt_value(value)))
    facts.append(("Generated", meta.generated_at))
    section.bullets = lines
    section.paragraphs = [f"Warning: {w}" for w in view.warnings]
    if meta.spec:
        import yaml

        section.details.append(("Study spec", yaml.safe_dump(meta.spec, sort_keys=False, allow_unicode=True)))
    if meta.failed:
        section.tables.append(records_table(
            "failed", "Failed runs", meta.failed, columns=["run_id", "model", "algorithm", "seed", "reason"]))
    if meta.missing:
        section.tables.append(records_table(
            "missing", "Planned runs without a record", meta.missing,
            columns=["run_id", "model", "algorithm", "seed"]))
    return section


def fmt_value(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k} ({v})" if v not in (None, "", 1) else str(k) for k, v in value.items())
    if isinstance(value, (list, tuple, set)):
        return ", ".join(str(v) for v in value)
    return fmt(value) if is_number(value) else str(value)


def _fmt_compute(compute: dict[str, Any]) -> str:
    parts = []
    for key, value in compute.items():
        if is_number(value) and key.endswith("_s"):
            seconds = float(value)
            text = f"{seconds / 3600:.2f} h" if seconds >= 3600 else (
                f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.1f} s")
            parts.append(f"{key[:-2].replace('_', ' ')} {text}")
        else:
            parts.append(f"{key} {fmt_value(value)}")
    return ", ".join(parts)


def _main_table(view: AnalysisView) -> Section:
    section = Section("results", "Main results")
    if not view.cells:
        section.note = "No per-cell statistics in the analysis (no `cells`)."
        return section
    section.intro = ("Mean ± sample sd over seeds; below it the 95% CI and n (seeds in the cell). "
                     "Bold: best mean in the column. – marks a missing cell.")
    for benchmark in view.benchmarks:
        table = Table(name=f"results-{benchmark}", caption=f"Benchmark {benchmark}",
                      columns=["algorithm"] + [view.model_label(m) for m in view.models])
        best: dict[str, float] = {}
        for model in view.models:
            means = [float(c["mean"]) for (m, _a, b), c in view.cell_index.items()
                     if m == model and b == benchmark and is_number(c.get("mean"))]
            if means:
                best[model] = max(means)
        for algorithm in view.algorithms:
            row = [TableCell(str(algorithm), ("name",))]
            for model in view.models:
                cell = view.cell_index.get((model, algorithm, benchmark))
                if cell is None or not is_number(cell.get("mean")):
                    row.append(TableCell("missing", ("missing",)))
                    continue
                mean = float(cell["mean"])
                text = fmt(mean)
                if is_number(cell.get("sd")):
                    text += f" ± {fmt(float(cell['sd']))}"
                sub = fmt_ci(cell.get("ci_low"), cell.get("ci_high"))
                n = cell.get("n")
                roles = ["num"]
                if model in best and math.isclose(mean, best[model], rel_tol=0, abs_tol=1e-12):
                    roles.append("best")
                row.append(TableCell(text, tuple(roles), sub=f"{sub} n={n}" if n is not None else sub))
            table.rows.append(row)
        section.tables.append(table)
    return section


def _seed_points(view: AnalysisView, meta: ReportMeta) -> dict[tuple[str, str], list[tuple[str, float]]]:
    points: dict[tuple[str, str], list[tuple[str, float]]] = {}
    for row in view.seed_values:
        if is_number(row.get("value")) and row.get("algorithm") in view.algorithms:
            points.setdefault((row.get("model"), row.get("benchmark")), []).append(
                (row["algorithm"], float(row["value"])))
    if not points:
        for cell in view.cells:
            values = cell.get("values")
            if isinstance(values, list):
                for value in values:
                    if is_number(value):
                        points.setdefault((cell.get("model"), cell.get("benchmark")), []).append(
                            (cell["algorithm"], float(value)))
    return points


def _strip_section(view: AnalysisView, meta: ReportMeta, styles: dict[str, plots.Style]) -> Section:
    section = Section("seeds", "Per-seed results")
    points = _seed_points(view, meta)
    if not points:
        section.note = "No per-seed values in the input (summary statistics only)."
        return section
    section.intro = ("Every dot is one seed; the horizontal tick is the cell mean and the thin bar "
                     "beside it its 95% CI.")
    metric = meta.metric_label or "score"
    for benchmark in view.benchmarks:
        panels = []
        for model in view.models:
            pts = points.get((model, benchmark), [])
            cells = [c for (m, _a, b), c in view.cell_index.items() if m == model and b == benchmark]
            if pts or cells:
                panels.append({"title": str(model), "points": pts, "cells": cells})
        if panels:
            section.figures.append(_figure(
                f"Per-seed {metric} on {benchmark}",
                plots.strip_plot(panels, view.algorithms, styles, metric_label=f"{benchmark} {metric}")))
    return section


_COMPARISON_COLUMNS = ["model", "benchmark", "a", "b", "diff", "ci", "flag_set_by", "p_value", "p_adjusted",
                       "family_size", "significant", "cohens_d", "hedges_g"]


def _flatten_checkpoints(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Lift McNemar between checkpoints into one column, 'k of n pairs differ (p < alpha, uncorrected)':
    a comparison of trained runs, not of algorithms, so it never sets the significance column."""
    out = []
    for row in rows:
        block = row.get("checkpoints")
        if isinstance(block, dict) and block.get("pairs"):
            pairs = block["pairs"]
            alpha = row.get("alpha", 0.05)
            hits = sum(1 for p in pairs if is_number(p.get("p_value")) and float(p["p_value"]) < alpha)
            row = {**row, "checkpoint_mcnemar": f"{hits} of {len(pairs)} pairs differ"}
        out.append(row)
    return out


_CHECKPOINT_COLUMNS = ["checkpoint_mcnemar"]


def comparison_table(name: str, caption: str, rows: list[dict[str, Any]]) -> Table:
    """Comparison records as a table with the CI in one column and p-values formatted."""
    rows = _flatten_checkpoints(rows)
    table = Table(name=name, caption=caption, columns=list(_COMPARISON_COLUMNS))
    present = {k for r in rows for k in r}
    table.columns = [c for c in _COMPARISON_COLUMNS if c in present or c == "ci"]
    reported = next((r["reported_test"] for r in rows if r.get("reported_test")), None)
    reported_columns = [f"p_value_{reported}"] if reported else []  # the user's --test: shown, sets no flag
    table.columns += reported_columns
    table.columns += [c for c in _CHECKPOINT_COLUMNS if any(r.get(c) is not None for r in rows)]
    for row in rows:
        cells = []
        for column in table.columns:
            if column == "ci":
                cells.append(TableCell(fmt_ci(row.get("ci_low"), row.get("ci_high")), ("num",)))
            elif column in ("p_value", "p_adjusted", *reported_columns):
                cells.append(TableCell(fmt_p(row.get(column)), ("num",)))
            elif column == "significant":
                sig = bool(row.get(column))
                cells.append(TableCell("yes" if sig else "no", ("sig",) if sig else ()))
            elif column in ("diff", "cohens_d", "hedges_g"):
                cells.append(TableCell(fmt(row.get(column)), ("num",)))
            else:
                cells.append(TableCell(fmt(row.get(column)) if row.get(column) is not None else MISSING))
        table.rows.append(cells)
        table.numeric.append({k: row.get(k) for k in (*_COMPARISON_COLUMNS, "ci_low", "ci_high",
                                                      *reported_columns, *_CHECKPOINT_COLUMNS) if k != "ci"})
    return table


def _reported_note(view: AnalysisView) -> str:
    """The label of a --test other than welch: its p-value column is shown and sets no marker."""
    reported = view.conventions.get("reported_test")
    if not isinstance(reported, dict):
        return ""
    return f" Column p_value_{reported['test']}: {reported['label']}."


def _comparisons_section(view: AnalysisView, styles: dict[str, plots.Style]) -> Section:
    section = Section("comparisons", "Comparisons against the baseline")
    rows = view.family("vs-baseline")
    if not rows:
        section.note = ("No comparisons against a baseline in the analysis"
                        + (" (no baseline set)." if view.baseline is None else "."))
        return section
    baseline = view.baseline or rows[0].get("b")
    correction = _pretty_correction(view.correction) if view.correction else "the chosen"
    test = view.conventions.get("test") or "welch"
    section.intro = (f"Difference in means against {baseline} with its 95% CI (Welch-Satterthwaite t). Filled "
                     f"markers and * are significant by the {test} test over seeds (column flag_set_by) after "
                     f"{correction} correction at family alpha {view.alpha:g} over a family of m comparisons "
                     "(family_size); hollow markers are not."
                     + _reported_note(view)
                     + (" checkpoint_mcnemar compares single trained runs (McNemar per seed pair at p < 0.05, uncorrected): "
                        "it is not a test between algorithms and sets no marker." if any(r.get("checkpoints")
                                                                                      for r in rows) else ""))
    compared = [a for a in view.algorithms if any(r.get("a") == a for r in rows)]
    compared += [a for a in _order([r.get("a") for r in rows]) if a not in compared]
    for benchmark in view.benchmarks:
        panels = []
        for model in view.models:
            entries = {r.get("a"): r for r in rows if r.get("model") == model and r.get("benchmark") == benchmark}
            if entries:
                panels.append({"title": str(model), "rows": entries})
        if panels:
            section.figures.append(_figure(f"Differences against {baseline} on {benchmark}",
                                           plots.forest_plot(panels, compared, styles, baseline)))
    section.tables.append(comparison_table("comparisons", "All comparisons against the baseline", rows))
    return section


def _pairwise_section(view: AnalysisView) -> Section:
    section = Section("pairwise", "Pairwise matrix")
    rows = view.family("pairwise")
    if not rows:
        section.note = "No pairwise comparisons in the analysis (analyze with --family pairwise)."
        return section
    test = view.conventions.get("test") or "welch"
    section.intro = (f"Difference row minus column; * marks pairs significant by the {test} test over seeds "
                     "after correction." + _reported_note(view))
    for benchmark in view.benchmarks:
        panels = []
        for model in view.models:
            entries = [r for r in rows if r.get("model") == model and r.get("benchmark") == benchmark]
            if not entries:
                continue
            labels = [a for a in view.algorithms if any(a in (r.get("a"), r.get("b")) for r in entries)]
            index = {a: i for i, a in enumerate(labels)}
            k = len(labels)
            diff: list[list[float | None]] = [[None] * k for _ in range(k)]
            sig = [[False] * k for _ in range(k)]
            for r in entries:
                i, j = index[r["a"]], index[r["b"]]
                if is_number(r.get("diff")):
                    diff[i][j] = float(r["diff"])
                    diff[j][i] = -float(r["diff"])
                sig[i][j] = sig[j][i] = bool(r.get("significant"))
            panels.append({"title": str(model), "labels": labels, "diff": diff, "significant": sig})
        if panels:
            section.figures.append(_figure(f"Pairwise differences on {benchmark}", plots.pairwise_heatmap(panels)))
    section.tables.append(comparison_table("pairwise", "All pairwise comparisons", rows))
    return section


def _scaling_section(view: AnalysisView, meta: ReportMeta, styles: dict[str, plots.Style]) -> Section:
    section = Section("scaling", "Scaling curves")
    if len(view.models) < 2 or not view.cells:
        section.note = "Fewer than two model scales: no scaling curve."
        return section
    sized = [m for m in view.models if m in view.params and view.params[m] > 0]
    log_x = len(sized) == len(view.models)
    if log_x:
        xs = {m: view.params[m] for m in view.models}
        section.intro = "Mean per algorithm against parameter count (log axis); bands are 95% CIs."
    else:
        xs = {m: float(i) for i, m in enumerate(view.models)}
        section.intro = ("Mean per algorithm per model in input order (parameter counts unknown, so "
                         "the axis is not a size); bands are 95% CIs.")
    panels = []
    for benchmark in view.benchmarks:
        series: dict[str, list[tuple[float, Any, Any, Any]]] = {}
        for algorithm in view.algorithms:
            for model in view.models:
                cell = view.cell_index.get((model, algorithm, benchmark))
                if cell is not None:
                    series.setdefault(algorithm, []).append(
                        (xs[model], cell.get("mean"), cell.get("ci_low"), cell.get("ci_high")))
        panels.append({"title": str(benchmark), "series": series,
                       "xticks": [(xs[m], str(m)) for m in view.models]})
    metric = meta.metric_label or "score"
    section.figures.append(_figure("Scaling", plots.scaling_plot(panels, view.algorithms, styles, metric,
                                                                 log_x=log_x)))
    return section


#: Posterior flip probability above which a point-estimate flip is drawn highlighted.
LIKELY_FLIP = 0.9
MAX_INVERSION_ROWS = 60


def _rankings_section(view: AnalysisView, styles: dict[str, plots.Style]) -> Section:
    section = Section("rankings", "Rankings across scales")
    rankings = view.raw.get("rankings")
    parts = rankings if isinstance(rankings, dict) else {"ranks": rankings}
    ranks = view.relabel(records(parts.get("ranks")))
    taus = view.relabel(records(parts.get("kendall_tau")))
    summary = view.relabel(records(parts.get("summary")))
    if not ranks and not view.inversions:
        section.note = "No rankings in the analysis."
        return section
    # Highlight the inversions that matter: significant ones, else those the posterior finds
    # likely real; highlighting every point-estimate flip would make every line thick.
    significant = [r for r in view.inversions if r.get("kind") == "significant"]
    likely = [r for r in view.inversions if is_number(r.get("posterior_probability"))
              and float(r["posterior_probability"]) >= LIKELY_FLIP]
    highlighted = significant or likely
    if significant:
        which = "a significant ranking inversion (each order significant at its own scale)"
    else:
        which = f"a ranking inversion with posterior flip probability >= {LIKELY_FLIP:g}"
    section.intro = (f"Rank 1 is the best mean at a scale. Thick lines: algorithms involved in {which}"
                     + ("" if highlighted else " (none)") + ".")
    if ranks and len(view.models) >= 2:
        inverted: dict[str, set[str]] = {}
        for inv in highlighted:
            inverted.setdefault(inv.get("benchmark"), set()).update({inv.get("a"), inv.get("b")})
        lookup = {(r.get("model"), r.get("benchmark"), r.get("algorithm")): r.get("rank") for r in ranks}
        panels = []
        for benchmark in view.benchmarks:
            per_alg = {a: [lookup.get((m, benchmark, a)) for m in view.models] for a in view.algorithms}
            if any(v is not None for vs in per_alg.values() for v in vs):
                panels.append({"title": str(benchmark), "models": [str(m) for m in view.models],
                               "ranks": per_alg, "highlight": inverted.get(benchmark, set())})
        if panels:
            section.figures.append(_figure("Bump chart of ranks across scales",
                                           plots.bump_chart(panels, view.algorithms, styles)))
    if view.inversions:
        ordered = sorted(view.inversions, key=lambda r: (r.get("kind") != "significant",
                                                         -float(r["posterior_probability"])
                                                         if is_number(r.get("posterior_probability")) else 0.0))
        caption = (f"Ranking inversions ({len(view.inversions)}, {len(significant)} significant at both scales; "
                   "posterior_probability = P(both true differences have the observed signs | data), normal seed "
                   "scores, reference prior, cells independent)")
        if len(ordered) > MAX_INVERSION_ROWS:
            caption += (f"; the {MAX_INVERSION_ROWS} most probable shown (significant first), all of them in "
                        "the JSON export")
            ordered = ordered[:MAX_INVERSION_ROWS]
        section.tables.append(records_table(
            "inversions", caption, ordered,
            columns=["benchmark", "a", "b", "from_model", "to_model", "diff_from", "diff_to", "p_adjusted_from",
                     "p_adjusted_to", "kind", "posterior_probability"], skip=["metric"]))
    elif ranks:
        section.paragraphs.append("No ranking inversions between scales.")
    if taus:
        section.tables.append(records_table(
            "kendall", "Kendall tau between the rankings of two scales (approximate 95% CI from t replicates; "
                       "measured coverage in docs/analysis.md)", taus,
            columns=["benchmark", "model_a", "model_b", "n_algorithms", "tau", "ci_low", "ci_high", "note"],
            skip=["metric"]))
    if summary:
        rows = []
        for r in summary:
            row = {"benchmark": r.get("benchmark"), "algorithm": r.get("algorithm")}
            for model in view.models:
                row[f"rank at {model}"] = (r.get("ranks") or {}).get(model)
            row.update({"worst_rank": r.get("worst_rank"), "best_rank": r.get("best_rank"),
                        "deployment_rank": r.get("deployment_rank")})
            rows.append(row)
        deployment = _order([m for r in summary for m in (r.get("deployment_models") or [])])
        caption = "Worst-case rank (max over scales) and deployment rank"
        if deployment:
            caption += f" (mean rank over {', '.join(map(str, deployment))})"
        section.tables.append(records_table("rank-summary", caption, rows))
    elif ranks:
        section.tables.append(records_table("ranks", "Ranks per model and benchmark", ranks,
                                            columns=["model", "benchmark", "algorithm", "rank"], skip=["metric"]))
    return section


def _blocks(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, dict):
        return [value]
    return records(value)


def _interaction_panels(blocks: list[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    """Interaction-plot panels from each block's ``cell_means`` (first two factors)."""
    panels = []
    for block in blocks:
        factors = block.get("factors") or []
        means = records(block.get("cell_means"))
        if len(factors) < 2 or not means:
            continue
        x_factor, trace = factors[0], factors[1]
        x_levels = _order([m.get(x_factor) for m in means])
        if all(is_number(x) for x in x_levels):
            x_levels = sorted(x_levels, key=float)
        series: dict[str, list[Any]] = {}
        for level in _order([m.get(trace) for m in means]):
            series[str(level)] = [next((m.get("mean") for m in means if m.get(x_factor) == x
                                        and m.get(trace) == level), None) for x in x_levels]
        title_bits = [str(block[k]) for k in ("model", "benchmark", "algorithm") if block.get(k) is not None]
        panels.append({"title": " · ".join(title_bits) or f"{x_factor} x {trace}",
                       "x_label": str(x_factor), "trace_label": str(trace),
                       "x_levels": [(fmt_size(x) if x_factor == "params" else fmt(x)) if is_number(x) else str(x)
                                    for x in x_levels],
                       "series": series})
        if len(panels) >= limit:
            break
    return panels


_ROMAN = {1: "I", 2: "II", 3: "III"}


def _factorial_section(view: AnalysisView, meta: ReportMeta) -> Section:
    section = Section("factorial", "Factorial analysis")
    blocks = view.relabel(_blocks(view.raw.get("factorial")))
    if not blocks:
        section.note = "No factorial analysis (no factors given in the analysis settings)."
        return section
    factors = _order([f for b in blocks for f in (b.get("factors") or [])])
    kind = _order([b.get("type") for b in blocks if b.get("type") is not None])
    section.intro = (f"ANOVA with interaction of {' x '.join(map(str, factors))}"
                     + (f" (type {_ROMAN.get(kind[0], kind[0])} sums of squares)" if kind else "")
                     + "; partial eta-squared = SS_term / (SS_term + SS_residual).")
    limit = 12
    panels = _interaction_panels(blocks, limit)
    if panels:
        shown = sum(1 for b in blocks if len(b.get("factors") or []) >= 2 and b.get("cell_means"))
        caption = "Interaction plot: cell means"
        if shown > len(panels):
            caption += f" (first {len(panels)} of {shown} groups; all in the tables)"
        section.figures.append(_figure(caption, plots.interaction_plot(panels, meta.metric_label or "score")))
    keys = [k for k in ("model", "benchmark", "algorithm") if any(b.get(k) is not None for b in blocks)]
    terms = []
    notes: dict[str, list[str]] = {}
    for block in blocks:
        for term in records(block.get("terms")):
            terms.append({**{k: block.get(k) for k in keys}, **term})
        if block.get("note"):
            where = " · ".join(str(block.get(k)) for k in keys if block.get(k) is not None)
            notes.setdefault(str(block["note"]), []).append(where)
    for note, wheres in notes.items():  # one line per distinct note, not one per group
        named = [w for w in wheres if w]
        if not named:
            section.paragraphs.append(note)
        elif len(named) <= 3:
            section.paragraphs.append(f"{'; '.join(named)}: {note}")
        else:
            section.paragraphs.append(f"{note} ({len(named)} groups: {', '.join(named[:3])}, ...)")
    if terms:
        section.tables.append(records_table("anova", "ANOVA table", terms,
                                            columns=[*keys, "term", "df", "sum_sq", "F", "p_value",
                                                     "partial_eta_sq"]))
    means = [{**{k: b.get(k) for k in keys}, **m} for b in blocks for m in records(b.get("cell_means"))]
    if means:
        section.tables.append(records_table("cell-means", "Cell means", means))
    if not section.tables and not section.figures:
        section.note = "The factorial analysis returned no tables."
    return section


def _leverage_section(view: AnalysisView) -> Section:
    section = Section("leverage", "Hierarchy of leverage")
    leverage = view.raw.get("leverage")
    if not isinstance(leverage, dict) or not leverage:
        section.note = "No leverage analysis in the analysis."
        return section
    per_bench = view.relabel(records(leverage.get("benchmarks")))
    if not per_bench:
        section.note = "No leverage analysis in the analysis."
        return section
    unit = view.unit_label
    section.intro = (f"Spread = range of marginal means per factor, in {unit}, most leverage first; whiskers "
                     "are approximate 95% CIs from t replicates; share = eta-squared. 'algorithm' is the spread "
                     "across algorithms.")
    panels, factor_rows, task_rows = [], [], []
    for bench in per_bench:
        bars = []
        for f in records(bench.get("factors")):
            bars.append({"name": f.get("factor"), "spread": f.get("spread_points"), "ci_low": f.get("ci_low"),
                         "ci_high": f.get("ci_high")})
            factor_rows.append({"benchmark": bench.get("benchmark"), "factor": f.get("factor"),
                                "spread_points": f.get("spread_points"), "ci_low": f.get("ci_low"),
                                "ci_high": f.get("ci_high"), "eta_sq": f.get("eta_sq")})
        spread = bench.get("algorithm_spread") or {}
        if is_number(spread.get("spread_points")):
            bars.append({"name": "algorithm", "spread": spread.get("spread_points"),
                         "ci_low": spread.get("ci_low"), "ci_high": spread.get("ci_high")})
            row = {"benchmark": bench.get("benchmark"), "in_domain": bench.get("in_domain"),
                   "model": "all", "spread_points": spread.get("spread_points"),
                   "ci_low": spread.get("ci_low"), "ci_high": spread.get("ci_high")}
            task_rows.append(row)
            for m in records(spread.get("per_model")):
                task_rows.append({"benchmark": bench.get("benchmark"), "in_domain": bench.get("in_domain"),
                                  "model": m.get("model"), "spread_points": m.get("spread_points"),
                                  "ci_low": m.get("ci_low"), "ci_high": m.get("ci_high")})
        if bars:
            bars.sort(key=lambda b: -float(b["spread"]) if is_number(b["spread"]) else 0.0)
            panels.append({"title": str(bench.get("benchmark")), "rows": bars})
    if panels:
        section.figures.append(_figure("Spread per factor", plots.leverage_bars(panels, f"spread ({unit})")))
    if factor_rows:
        section.tables.append(records_table("leverage-factors", "Leverage per factor", factor_rows))
    if task_rows:
        section.tables.append(records_table("leverage-tasks", "Task-specific leverage: algorithm spread per "
                                            "benchmark (all scales and per model)", task_rows))
    compression = records(leverage.get("compression"))
    if compression:
        section.tables.append(records_table(
            "compression", "Compression ratio: algorithm spread on the training-domain benchmark over each "
            "other benchmark", compression,
            columns=["in_domain", "other", "model", "spread_in_domain_points", "spread_other_points", "ratio",
                     "ci_low", "ci_high", "note"]))
    tags = leverage.get("tags")
    if isinstance(tags, dict) and tags:
        section.tables.append(records_table("tags", "Algorithm tags used for the factors",
                                            [{"algorithm": a, **(t or {})} for a, t in tags.items()]))
    return section


def _percent(value: Any) -> str:
    return f"{float(value) * 100:g}%" if is_number(value) else "the chosen"


def _power_section(view: AnalysisView) -> Section:
    section = Section("power", "Power and seed planning")
    rows = view.relabel(records(view.raw.get("power")))
    if not rows:
        section.note = "No power analysis in the analysis."
        return section
    unit = view.unit_label
    section.intro = ("Minimum detectable difference (MDE) at the design's seeds per arm, the per-comparison "
                     f"alpha after correction and {_percent(rows[0].get('power'))} power, from the pooled sd; "
                     f"and the seeds per arm needed to detect a difference of the given size ({unit}).")
    table_rows = []
    for r in rows:
        row = {k: r.get(k) for k in ("model", "benchmark", "n_per_arm", "comparisons", "alpha_per_comparison",
                                     "pooled_sd", "mde_d", "mde_points")}
        for need in records(r.get("seeds_needed")):
            diff = need.get("diff_points")
            row[f"seeds for {diff:g} {unit}" if is_number(diff) else "seeds"] = need.get("seeds_per_arm")
        if r.get("note"):
            row["note"] = r.get("note")
        table_rows.append(row)
    section.tables.append(records_table("power", "Power per model and benchmark", table_rows))
    return section


def _claims_section(claims: list[dict[str, Any]] | None) -> Section:
    section = Section("claims", "Claims")
    if not claims:
        section.note = "No claims given (add them to the spec's analysis section or pass --claims)."
        return section
    counts = {v: sum(1 for c in claims if str(c.get("verdict", "")).upper() == v)
              for v in ("SUPPORTED", "REFUTED", "INCONCLUSIVE")}
    section.intro = (f"{counts['SUPPORTED']} supported, {counts['REFUTED']} refuted, "
                     f"{counts['INCONCLUSIVE']} inconclusive (verified by the statistics engine).")
    table = Table(name="claims", caption="Verdicts", columns=["claim", "kind", "verdict", "evidence"])
    for claim in claims:
        verdict = str(claim.get("verdict", MISSING))
        role = {"SUPPORTED": "ok", "REFUTED": "bad", "INCONCLUSIVE": "warn"}.get(verdict.upper(), "")
        evidence = claim.get("evidence", claim.get("detail", claim.get("numbers", "")))
        table.rows.append([
            TableCell(str(claim.get("description") or claim.get("claim") or claim.get("id") or MISSING)),
            TableCell(str(claim.get("kind", MISSING))),
            TableCell(verdict, (role,) if role else ()),
            TableCell(fmt_value(evidence) if evidence != "" else MISSING),
        ])
        table.numeric.append({"claim": claim.get("description") or claim.get("id"), "kind": claim.get("kind"),
                              "verdict": verdict, "evidence": fmt_value(evidence)})
    section.tables.append(table)
    return section


def _curves_section(view: AnalysisView, meta: ReportMeta, curves: list[dict[str, Any]] | None,
                    styles: dict[str, plots.Style]) -> Section:
    section = Section("curves", "Training curves")
    usable = [c for c in (curves or []) if c.get("step") and c.get("algorithm") in styles]
    if not usable:
        section.note = ("No training curves in the store." if meta.input_kind == "study" else
                        "No training curves: only a study directory (the results store) records them.")
        return section
    section.intro = "Each line is one seed's training run (loss and reward as logged by the trainer)."
    panels = []

    def logged(curve: dict[str, Any], quantity: str) -> bool:
        # SFT logs no reward: its list holds only nulls, which is no curve at all.
        return any(is_number(v) for v in (curve.get(quantity) or []))

    quantities = [q for q in ("loss", "reward", "kl") if any(logged(c, q) for c in usable)]
    for model in view.models:
        for quantity in quantities:
            lines = [(c["algorithm"], c["step"], c[quantity]) for c in usable
                     if c.get("model") == model and logged(c, quantity)]
            if lines:
                panels.append({"title": f"{model} · {quantity}", "ylabel": quantity, "lines": lines})
    if not panels:
        section.note = "No training curves in the store."
        return section
    section.figures.append(_figure("Training curves", plots.curves_plot(panels, view.algorithms, styles,
                                                                        per_row=max(2, len(quantities)))))
    return section


# --------------------------------------------------------------------------- entry point


def build_sections(
    analysis: dict[str, Any],
    meta: ReportMeta | dict[str, Any] | None = None,
    *,
    claims: list[dict[str, Any]] | None = None,
    curves: list[dict[str, Any]] | None = None,
) -> tuple[ReportMeta, list[Section]]:
    """The report's 13 sections, in order, each either filled or carrying a one-line note."""
    meta = ReportMeta.coerce(meta)
    if not meta.generated_at:
        meta.generated_at = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    view = AnalysisView(analysis, meta)
    styles = plots.algorithm_styles(view.algorithms, view.baseline)
    lines = headlines(analysis, meta=meta)
    sections = [
        _summary(view, meta, lines),
        _main_table(view),
        _strip_section(view, meta, styles),
        _comparisons_section(view, styles),
        _pairwise_section(view),
        _scaling_section(view, meta, styles),
        _rankings_section(view, styles),
        _factorial_section(view, meta),
        _leverage_section(view),
        _power_section(view),
        _claims_section(claims),
        _curves_section(view, meta, curves, styles),
        _post_training_section(analysis),
    ]
    from oxstudy.report.regime_section import regime_sections  # data-regime / alignment (issue 13)

    sections += regime_sections(analysis, styles)
    return meta, sections


def _post_training_section(analysis: dict[str, Any]) -> Section:
    """"What changed inside the model" (oxstudy/report/anatomy_section.py), from ``analysis["post_training"]``."""
    from oxstudy.report.anatomy_section import anatomy_section

    return anatomy_section(analysis.get("post_training"), Section, _figure)


def _environment():
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,  # always, whatever the template's extension
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def build_report(
    analysis: dict[str, Any],
    meta: ReportMeta | dict[str, Any] | None = None,
    *,
    claims: list[dict[str, Any]] | None = None,
    curves: list[dict[str, Any]] | None = None,
) -> str:
    """Render the analysis dict (``oxstudy.stats.analyze`` output) and study metadata as one
    self-contained HTML page: inline CSS and SVG, no script, no external resource.

    ``claims``: verdict records (``description``/``id``, ``kind``, ``verdict``,
    ``evidence``). ``curves``: one record per run (``model``, ``algorithm``, ``seed``,
    ``step``, ``loss``, ``reward``, ``kl`` lists).
    """
    meta, sections = build_sections(analysis, meta, claims=claims, curves=curves)
    template = _environment().get_template("report.html.j2")
    return template.render(meta=meta, sections=sections, schema=str(analysis.get("schema", "")))


def write_report(html: str, path: str | Path) -> Path:
    """Write the HTML atomically (temp file + rename) and return the path. The file gets the
    mode of any file the user writes (the umask decides; mkstemp's 0600 would keep a report
    meant to be shared from others)."""
    from oxstudy.outputs import write_output

    return write_output(path, html)
