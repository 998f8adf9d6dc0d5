"""From ``oxstudy report``'s inputs to written files: load (``oxstudy.results_io``), analyse
(``oxstudy.stats.analyze``), collect study metadata, render and export.

Loading and statistics are the analyze command's own functions, so the report shows the
same numbers ``oxstudy analyze`` prints.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oxstudy.errors import InputError

FORMATS = ("html", "md", "tex", "csv", "json")


@dataclass
class ReportOptions:
    """The command's options; ``None`` means: take it from the spec, else the engine default."""

    inputs: list[Path]
    output: Path | None = None
    formats: list[str] = field(default_factory=lambda: ["html"])
    claims: Path | None = None
    baseline: str | None = None
    correction: str | None = None
    alpha: float | None = None
    family: str | None = None
    factors: list[str] = field(default_factory=list)
    items: Path | None = None
    mapping: Path | None = None
    model: str | None = None
    algorithm: str | None = None
    seed: str | None = None
    metric: str | None = None
    title: str | None = None
    resamples: int = 10_000


def _spec_analysis(spec: dict[str, Any] | None) -> dict[str, Any]:
    section = (spec or {}).get("analysis") or {}
    return section if isinstance(section, dict) else {}


def analysis_options(options: ReportOptions, spec: dict[str, Any] | None, where: str = "spec.yaml") -> dict[str, Any]:
    """``analyze`` keyword arguments: command-line flags over the spec's analysis section (whose
    values are checked, located in ``where``)."""
    from oxstudy.spec import study_analysis_settings

    flags = {"alpha": options.alpha, "correction": options.correction, "family": options.family,
             "baseline": options.baseline, "factors": options.factors or None}
    defaults = study_analysis_settings(spec, where, {k for k, v in flags.items() if v is not None})
    out: dict[str, Any] = {"n_resamples": options.resamples}
    for key in ("baseline", "correction", "alpha", "family"):
        value = getattr(options, key)
        if value is None:
            value = defaults.get(key)
        if value is not None:
            out[key] = value
    factors = options.factors or defaults.get("factors") or []
    if factors:
        out["factors"] = list(factors)
    return out


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "report"


def default_output(study: str) -> Path:
    return Path("reports") / f"{_slug(study)}.html"


def claims_file(claims_path: Path | None, spec: dict[str, Any] | None, study_dirs: list[Path]
                ) -> tuple[Path | None, str | None]:
    """The claims file to verify: ``--claims``, else the spec's ``analysis.claims`` (a path
    relative to the spec file, so tried as given, then against the study directory).
    Returns (path, warning)."""
    if claims_path is not None:
        return Path(claims_path), None
    named = _spec_analysis(spec).get("claims")
    if not named:
        return None, None
    candidates = [Path(named)] + [d / named for d in study_dirs]
    for candidate in candidates:
        if candidate.is_file():
            return candidate, None
    return None, f"the spec's claims file {named} was not found; pass --claims to verify it"


def verify_claims(path: Path, results: Any, n_resamples: int) -> list[dict[str, Any]]:
    """Verdict rows for the report from the statistics engine's claims verifier."""
    from oxstudy.claims import load_claims, verify

    report = verify(load_claims(path), results, n_resamples=n_resamples)
    rows = []
    for claim in report.get("claims", []):
        rows.append({"id": claim.get("id"), "description": claim.get("text") or claim.get("id"),
                     "kind": claim.get("kind"), "verdict": claim.get("verdict"),
                     "evidence": claim.get("message") or claim.get("numbers")})
    return rows


def prepare(options: ReportOptions, progress: Callable[[str], None] | None = None
            ) -> tuple[dict[str, Any], Any, list[dict[str, Any]], list[dict[str, Any]] | None]:
    """(analysis, meta, curves, claims) for the options' inputs."""
    from oxstudy.report.inputs import meta_from_study, meta_from_table, seed_values
    from oxstudy.results_io import _is_study_dir, load_results
    from oxstudy.stats.analyze import analyze

    if progress:
        progress("loading results")
    results = load_results(options.inputs, items=options.items, mapping=options.mapping, model=options.model,
                           algorithm=options.algorithm, seed=options.seed, metric=options.metric)
    kwargs = analysis_options(options, results.spec, f"{results.source}/spec.yaml")
    notes: list[str] = []
    algorithms = set(results.table["algorithm"].astype(str)) if "algorithm" in results.table.columns else set()
    if options.baseline is None and kwargs.get("baseline") is not None and kwargs["baseline"] not in algorithms:
        # A partial study: the spec's baseline has no finished run yet. Report what exists
        # instead of failing; an explicit --baseline still fails loudly in analyze.
        notes.append(f"the spec's baseline {kwargs.pop('baseline')} has no finished runs yet: no comparisons "
                     "against it")
        if kwargs.get("family", "vs-baseline") == "vs-baseline":
            kwargs["family"] = "pairwise"
    analysis = analyze(results.table, items=results.items, kind=results.kind, source=results.source,
                       progress=progress, **kwargs)
    analysis.setdefault("warnings", [])
    from oxstudy.report.regime_section import regime_analysis  # data-regime / alignment block (issue 13)

    analysis["regime"] = regime_analysis(results, next((Path(p) for p in options.inputs if _is_study_dir(Path(p))), None))
    analysis["warnings"] = list(dict.fromkeys([*notes, *results.warnings, *analysis["warnings"]]))
    studies = [p for p in options.inputs if _is_study_dir(Path(p))]
    curves: list[dict[str, Any]] = []
    if len(studies) == 1 and len(options.inputs) == 1:
        from oxstudy.store import load_study

        if progress:
            progress("reading study records")
        tables = load_study(studies[0], with_items=False)
        meta, curves = meta_from_study(tables, source=results.source)
        meta.seed_values = seed_values(results.table)
        from oxstudy.stats.anatomy import analyze_post_training  # "What changed inside the model"

        analysis["post_training"] = analyze_post_training(tables.records)
    else:
        first = Path(options.inputs[0]) if options.inputs else Path("results")
        name = (results.spec or {}).get("name") or (first.stem if first.is_file() else first.name)
        meta = meta_from_table(results.table, study=str(name), source=results.source,
                               input_kind={"runs": "per-run results", "summary": "summary statistics"}.get(
                                   results.kind, results.kind))
    if options.title:
        meta.study = options.title
    path, warning = claims_file(options.claims, results.spec, [Path(p) for p in studies])
    claims = None
    if warning:
        analysis["warnings"].append(warning)
    if path is not None:
        if progress:
            progress("verifying claims")
        claims = verify_claims(path, results, options.resamples)
    return analysis, meta, curves, claims


def write_outputs(options: ReportOptions, progress: Callable[[str], None] | None = None,
                  warnings: list[str] | None = None) -> list[Path]:
    """Run the pipeline and write every requested format; returns the written paths. The
    analysis' warnings (corrupt records left out, a partial study, ...) are appended to
    ``warnings`` when given, for the caller to show: the report states them too."""
    from oxstudy.report.build import build_report, write_report
    from oxstudy.report.export import export_tables

    unknown = [f for f in options.formats if f not in FORMATS]
    if unknown:
        raise InputError(f"--format: unknown format(s) {', '.join(unknown)} (choose from {', '.join(FORMATS)})")
    analysis, meta, curves, claims = prepare(options, progress)
    if warnings is not None:
        warnings.extend(str(w) for w in analysis.get("warnings") or [])
    output = options.output or default_output(meta.study)
    if output.is_dir():  # -o reports/: the study's report in that folder, not reports.html beside it
        output = output / default_output(meta.study).name
    written: list[Path] = []
    for fmt in dict.fromkeys(options.formats):
        if fmt == "html":
            if progress:
                progress("rendering figures")
            html = build_report(analysis, meta, claims=claims, curves=curves)
            from oxstudy.outputs import is_special

            special = is_special(output)  # a device the user named (/dev/stdout) is written as named
            target = output if special or output.suffix in (".html", ".htm") else output.with_suffix(".html")
            written.append(write_report(html, target))
        else:  # JSON strict: a non-finite number (an undefined statistic) is null, never NaN
            from oxstudy.stats.analyze import _clean

            written.extend(export_tables(_clean(analysis) if fmt == "json" else analysis, fmt, output))
    return written
