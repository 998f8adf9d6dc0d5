"""CLI command: ``oxstudy report`` (HTML report and paper-ready exports)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

FORMATS = ("html", "md", "tex", "csv", "json")


def report(
    inputs: list[Path] | None = typer.Argument(None, metavar="[STUDY_OR_RESULTS]...", help="A study directory, a long or "
                                               "summary-statistics table, or lm-eval output directories (anything "
                                               "`oxstudy analyze` accepts). Default: the most recently run study in "
                                               "./studies.", show_default=False),
    output: Path | None = typer.Option(None, "--output", "-o", help="Output file; default "
                                       "reports/<study>.html (other formats replace the suffix)."),
    formats: list[str] = typer.Option(["html"], "--format", "-f", help="html, md, tex, csv or json; repeat "
                                      "for several."),
    claims: Path | None = typer.Option(None, "--claims", help="Claims YAML to verify and show (default: the "
                                       "spec's analysis.claims)."),
    baseline: str | None = typer.Option(None, "--baseline", help="Baseline algorithm (default: the spec's)."),
    correction: str | None = typer.Option(None, "--correction", help="bonferroni, holm, bh or none."),
    alpha: float | None = typer.Option(None, "--alpha", help="Family-wise significance level."),
    family: str | None = typer.Option(None, "--family", help="vs-baseline or pairwise."),
    factors: list[str] = typer.Option([], "--factor", help="Factor column for the factorial ANOVA; repeat."),
    items: Path | None = typer.Option(None, "--items", help="Per-item outcomes table."),
    mapping: Path | None = typer.Option(None, "--mapping", help="Mapping file for lm-eval directories."),
    model: str | None = typer.Option(None, "--model", help="Model label of a single lm-eval directory."),
    algorithm: str | None = typer.Option(None, "--algorithm", help="Algorithm label of a single lm-eval "
                                         "directory."),
    seed: str | None = typer.Option(None, "--seed", help="Seed of a single lm-eval directory."),
    metric: str | None = typer.Option(None, "--metric", help="Keep only this metric."),
    title: str | None = typer.Option(None, "--title", help="Report title (default: the study name)."),
    resamples: int = typer.Option(10_000, "--resamples", help="Replicates of the cell means (rank, tau, spread, "
                                  "ratio intervals; inversion probabilities), as in `oxstudy analyze`."),
    as_json: bool = typer.Option(False, "--json", help="Print the written paths and timing as JSON."),
) -> None:
    """Write a self-contained HTML report (and/or Markdown, LaTeX, CSV, JSON exports) of a study.

    The report renders the statistics engine's analysis (cells, comparisons, rankings,
    inversions, factorial, leverage, power) plus the study's runs, failures, provenance and
    training curves; it opens offline (inline SVG and CSS, no script, no external request).

    Example: oxstudy report studies/quickstart -o reports/quickstart.html --format html --format tex
    (or just `oxstudy report` right after `oxstudy run`)
    """
    import json
    import time

    from rich.console import Console

    from oxstudy.report.pipeline import ReportOptions, write_outputs

    console = Console(stderr=True, highlight=False, soft_wrap=True)
    started = time.perf_counter()
    inputs = list(inputs or [])
    if not inputs and mapping is None:
        from oxstudy.commands.default_study import announce, default_study

        inputs = [default_study("report")]
        announce("report", inputs[0])
    options = ReportOptions(
        inputs=list(inputs), output=output, formats=list(formats), claims=claims, baseline=baseline,
        correction=correction, alpha=alpha, family=family, factors=list(factors), items=items, mapping=mapping,
        model=model, algorithm=algorithm, seed=seed, metric=metric, title=title, resamples=resamples,
    )
    warnings: list[str] = []
    with console.status("loading results", spinner="dots") as status:
        written = write_outputs(options, progress=lambda what: status.update(what), warnings=warnings)
    for warning in dict.fromkeys(warnings):
        console.print(f"[yellow]warning:[/] {escape(warning)}")
    seconds = time.perf_counter() - started
    if as_json:
        typer.echo(json.dumps({"outputs": [str(p) for p in written], "seconds": round(seconds, 3)}))
        return
    for path in written:
        typer.echo(str(path))
    console.print(f"report of {', '.join(str(p) for p in inputs) or mapping} written to "
                  f"{', '.join(str(p) for p in written)} in {seconds:.1f} s", markup=False)


def register(app: typer.Typer) -> None:
    """Add this group's commands to the app."""
    app.command("report")(report)
