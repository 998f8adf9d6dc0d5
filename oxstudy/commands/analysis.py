"""CLI commands: ``analyze`` (statistics on results) and ``verify`` (re-check a paper's claims)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table as RichTable
from rich.text import Text


class Table(RichTable):
    """A rich table whose string cells are plain text: algorithm, model and benchmark names come
    from user files, and a name such as ``[/x]`` must print as itself, not as (broken) markup."""

    def add_row(self, *cells: Any, **kwargs: Any) -> None:
        super().add_row(*[Text(c) if isinstance(c, str) else c for c in cells], **kwargs)

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

ResultsArg = Annotated[list[Path] | None, typer.Argument(
    metavar="RESULTS...", help="Study directory, long or summary table (CSV/JSONL/Parquet), or lm-eval output "
    "directories (default: the most recently run study in ./studies).", show_default=False)]
ItemsOpt = Annotated[Path | None, typer.Option("--items", help="Per-item outcomes table for a long table "
                                               "(model, algorithm, seed, benchmark, doc_id, score).")]
MappingOpt = Annotated[Path | None, typer.Option("--mapping", help="CSV/YAML mapping lm-eval directories to "
                                                 "path, model, algorithm, seed[, params].")]
ModelOpt = Annotated[str | None, typer.Option("--model", help="Model label of a single lm-eval directory.")]
AlgorithmOpt = Annotated[str | None, typer.Option("--algorithm", help="Algorithm label of a single lm-eval "
                                                  "directory.")]
SeedOpt = Annotated[str | None, typer.Option("--seed", help="Seed of a single lm-eval directory.")]
ParamsOpt = Annotated[float | None, typer.Option("--params", help="Parameter count of a single lm-eval "
                                                 "directory's model.")]
MetricOpt = Annotated[str | None, typer.Option("--metric", help="Keep only this metric (e.g. "
                                               "'exact_match,strict-match').")]
ResamplesOpt = Annotated[int, typer.Option("--resamples", min=100, help="Replicates of the cell means (rank, tau, "
                                          "spread, ratio intervals; inversion probabilities).")]
RngOpt = Annotated[int, typer.Option("--rng-seed", help="Seed of the replicates' random numbers.")]
JsonOpt = Annotated[str | None, typer.Option("--json", metavar="PATH", help="Write the result as JSON to PATH "
                                             "('-' for stdout) instead of tables.")]


def _load(results: list[Path] | None, items, mapping, model, algorithm, seed, params, metric):
    from oxstudy.results_io import load_results

    seed_value: Any = seed
    if seed is not None and seed.lstrip("-").isdigit():
        seed_value = int(seed)
    return load_results(results or [], items=items, mapping=mapping, model=model, algorithm=algorithm,
                        seed=seed_value, params=params, metric=metric)


def _write_json(data: dict, target: str) -> None:
    from oxstudy.outputs import write_output

    text = json.dumps(data, indent=2, allow_nan=False)
    if target == "-":
        sys.stdout.write(text + "\n")
    else:
        write_output(target, text + "\n")
        err_console.print(f"wrote {escape(str(target))}")


def _fmt(x: Any, digits: int = 4) -> str:
    if x is None:
        return "-"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        return f"{x:.{digits}g}"
    return str(x)


def _p(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x:.2e}" if x < 1e-3 else f"{x:.4f}"


def analyze_command(
    results: ResultsArg = None,
    baseline: Annotated[str | None, typer.Option("--baseline", help="Algorithm the others are compared "
                                                 "against (default: the spec's analysis.baseline).")] = None,
    correction: Annotated[str | None, typer.Option("--correction", help="bonferroni | holm | bh | none "
                                                   "(default: spec, else bonferroni).")] = None,
    alpha: Annotated[float | None, typer.Option("--alpha", help="Significance level (default: spec, else "
                                                "0.05).")] = None,
    family: Annotated[str | None, typer.Option("--family", help="vs-baseline | pairwise (default: spec, else "
                                               "vs-baseline).")] = None,
    test: Annotated[str, typer.Option("--test", help="welch (default) | student | mannwhitney | permutation. "
                                      "Welch (Hsu's df for small unequal arms; calibrated in every simulated regime) "
                                      "always sets the significance flags; another test is computed and reported "
                                      "beside it as p_value_<test> and sets no flag: it is not calibrated under "
                                      "unequal variances (type-I error up to 0.204 for student, 0.094 for "
                                      "mannwhitney and permutation in bench_calibration).")] = "welch",
    factors: Annotated[str | None, typer.Option("--factors", help="Comma-separated factor columns for the "
                                                "ANOVA, e.g. params,finetune (default: spec).")] = None,
    power_diff: Annotated[list[float] | None, typer.Option("--power-diff", help="Difference in points to plan "
                                                           "seeds for (repeatable; default 1, 2, 5).")] = None,
    deployment_scales: Annotated[int, typer.Option("--deployment-scales", min=1, help="Largest models the "
                                                   "deployment rank averages over.")] = 2,
    items: ItemsOpt = None,
    mapping: MappingOpt = None,
    model: ModelOpt = None,
    algorithm: AlgorithmOpt = None,
    seed: SeedOpt = None,
    params: ParamsOpt = None,
    metric: MetricOpt = None,
    resamples: ResamplesOpt = 10_000,
    rng_seed: RngOpt = 0,
    json_path: JsonOpt = None,
) -> None:
    """Statistics on results: cells, tests with correction, power, rankings, inversions, ANOVA, leverage.

    Algorithms are compared by Welch's t-test over seeds (the test that sets every significance
    flag; calibrated in benchmarks/bench_calibration.py); --test student|mannwhitney|permutation adds
    that test's p-value beside it, which sets no flag. With per-item outcomes, McNemar's test
    compares each pair of checkpoints (two trained runs) on the items: a test of those runs, not of
    the algorithms, so it sets no flag. Output schema: docs/analysis.md (oxstudy.analysis/2).

    Example: oxstudy analyze studies/dpo-taxonomy --baseline DPO --correction holm --json -
    """
    from oxstudy.stats.analyze import analyze

    if not results and mapping is None:  # `oxstudy analyze` right after `oxstudy run`
        from oxstudy.commands.default_study import announce, default_study

        results = [default_study("analyze")]
        announce("analyze", results[0])
    loaded = _load(results, items, mapping, model, algorithm, seed, params, metric)
    given = {"alpha": alpha, "correction": correction, "family": family, "baseline": baseline, "factors": factors}
    from oxstudy.spec import study_analysis_settings

    spec_analysis = study_analysis_settings(loaded.spec, f"{loaded.source}/spec.yaml",
                                            {name for name, value in given.items() if value is not None})
    factor_list = ([f.strip() for f in factors.split(",") if f.strip()] if factors is not None
                   else list(spec_analysis.get("factors") or []))
    chosen_baseline = baseline if baseline is not None else spec_analysis.get("baseline")
    chosen_family = family or spec_analysis.get("family") or "vs-baseline"
    notes: list[str] = []
    algorithms = set(loaded.table["algorithm"].astype(str)) if "algorithm" in loaded.table.columns else set()
    if baseline is None and chosen_baseline is not None and str(chosen_baseline) not in algorithms:
        # A running or partial study: the spec's baseline has no finished run yet. Analyse what
        # exists (as `oxstudy report` does); an explicit --baseline still fails loudly.
        notes.append(f"the spec's baseline {chosen_baseline} has no finished runs yet: no comparisons against it"
                     + ("; comparing every pair instead" if family is None and chosen_family == "vs-baseline" else ""))
        chosen_baseline = None
        if family is None and chosen_family == "vs-baseline":
            chosen_family = "pairwise"
    with err_console.status("analysing", spinner="dots") as status:
        result = analyze(
            loaded.table, items=loaded.items, kind=loaded.kind, source=loaded.source,
            baseline=chosen_baseline,
            correction=correction or spec_analysis.get("correction") or "bonferroni",
            alpha=alpha if alpha is not None else spec_analysis.get("alpha", 0.05),
            family=chosen_family,
            test=test, factors=factor_list, n_resamples=resamples, rng_seed=rng_seed,
            power_diffs=power_diff or (1.0, 2.0, 5.0), deployment_scales=deployment_scales,
            progress=lambda step: status.update(f"analysing: {step}"),
        )
    result["warnings"] = list(dict.fromkeys(notes + loaded.warnings + result["warnings"]))
    if json_path is not None:
        _write_json(result, json_path)
        return
    print_analysis(result)


def _checkpoints_cell(block: dict | None, alpha: float) -> str:
    """'k of n pairs (p < alpha)': how many checkpoint pairs McNemar finds different (uncorrected)."""
    if not block or not block.get("pairs"):
        return "-"
    pairs = block["pairs"]
    hits = sum(1 for p in pairs if p.get("p_value") is not None and p["p_value"] < alpha)
    return f"{hits} of {len(pairs)} pairs"


def print_analysis(result: dict) -> None:
    """Readable tables of an ``oxstudy.analysis/2`` result."""
    conv = result["conventions"]
    ppu = conv["points_per_unit"]
    console.print(f"[bold]{result['input']['kind']} input[/]: {escape(str(result['input']['source']))} "
                  f"({result['input']['rows']} rows); family {conv['family']}"
                  f"{' vs ' + conv['baseline'] if conv['baseline'] else ''}, {conv['correction']} correction, "
                  f"alpha {conv['alpha']}, {conv['test']} test sets the flags"
                  + (f"; {conv['reported_test']['test']} reported, no flag" if conv.get("reported_test") else ""))
    table = Table(title="Cells (mean, sample sd, t-based 95% CI)")
    for col in ("model", "algorithm", "benchmark", "n", "mean", "sd", "95% CI", "item se"):
        table.add_column(col, justify="right" if col not in ("model", "algorithm", "benchmark") else "left")
    for c in result["cells"]:
        ci = f"[{_fmt(c['ci_low'])}, {_fmt(c['ci_high'])}]" if c["ci_low"] is not None else "-"
        table.add_row(c["model"], c["algorithm"], c["benchmark"], str(c["n"]), _fmt(c["mean"]), _fmt(c["sd"]), ci,
                      _fmt(c.get("item_se")))
    console.print(table)
    if result["comparisons"]:
        checkpoints_any = any(r.get("checkpoints") for r in result["comparisons"])
        table = Table(title=f"Comparisons ({conv['family']}, diff = a - b; 'sig' set by the {conv['test']} test over "
                            f"seeds, {conv['correction']} correction over a family of m"
                            + ("; 'checkpoints differ' = McNemar per seed pair, two runs at a time, no flag"
                               if checkpoints_any else "") + ")")
        reported = (conv.get("reported_test") or {}).get("test")
        for col in ("model", "benchmark", "a", "b", "diff", "95% CI", "test", "p", "p adj", "m", "sig", "d",
                    *([f"p {reported} (no flag)"] if reported else []),
                    *(["checkpoints differ"] if checkpoints_any else [])):
            table.add_column(col)
        for r in result["comparisons"]:
            ci = f"[{_fmt(r.get('ci_low'))}, {_fmt(r.get('ci_high'))}]"
            sig = r.get("significant")
            table.add_row(r["model"], r["benchmark"], r["a"], r["b"], _fmt(r["diff"]), ci, r.get("flag_set_by") or "-",
                          _p(r.get("p_value")), _p(r.get("p_adjusted")), str(r.get("family_size", "-")),
                          "-" if sig is None else (Text("yes", style="green") if sig else "no"),
                          _fmt(r.get("cohens_d"), 3),
                          *([_p(r.get(f"p_value_{reported}"))] if reported else []),
                          *([_checkpoints_cell(r.get("checkpoints"), conv["alpha"])] if checkpoints_any else []))
        console.print(table)
        undefined = [r for r in result["comparisons"] if r.get("p_value") is None and r.get("note")]
        for r in undefined[:10]:  # why a row has no test: the same note as in --json
            console.print(f"[dim]no test for {escape(str(r['a']))} vs {escape(str(r['b']))} ({escape(str(r['model']))}, "
                          f"{escape(str(r['benchmark']))}): {escape(str(r['note']))}[/]")
        if len(undefined) > 10:
            console.print(f"[dim]... and {len(undefined) - 10} more comparisons without a test (see --json)[/]")
    if result["power"]:
        table = Table(title=f"Power ({conv['power']['power']:.0%}, two-sided t-test, alpha / m)")
        for col in ("model", "benchmark", "n/arm", "m", "pooled sd", "min. detectable diff (pts)", "seeds needed"):
            table.add_column(col)
        for r in result["power"]:
            needs = ", ".join(f"{s['diff_points']:g}pt: {s['seeds_per_arm'] or '>1e5'}" for s in r["seeds_needed"])
            table.add_row(r["model"], r["benchmark"], str(r["n_per_arm"]), str(r["comparisons"]),
                          _fmt(r["pooled_sd"]), _fmt(r["mde_points"], 3), needs or (r.get("note") or "-"))
        console.print(table)
    rankings = result.get("rankings") or {}
    if rankings.get("summary"):
        table = Table(title="Rankings (1 = best) per scale; worst-case and deployment rank")
        models = rankings["scale_order"]
        for col in ("benchmark", "algorithm", *models, "worst", "deployment"):
            table.add_column(col)
        for r in rankings["summary"]:
            table.add_row(r["benchmark"], r["algorithm"], *[_fmt(r["ranks"].get(m), 3) for m in models],
                          _fmt(r["worst_rank"], 3), _fmt(r["deployment_rank"], 3))
        console.print(table)
        table = Table(title="Kendall tau between scales (approximate 95% CI from t replicates)")
        for col in ("benchmark", "model a", "model b", "tau", "95% CI"):
            table.add_column(col)
        for r in rankings["kendall_tau"]:
            table.add_row(r["benchmark"], r["model_a"], r["model_b"], _fmt(r["tau"], 3),
                          f"[{_fmt(r['ci_low'], 3)}, {_fmt(r['ci_high'], 3)}]" if r["ci_low"] is not None
                          else (r.get("note") or "-"))
        console.print(table)
    inversions = result.get("inversions") or []
    if inversions:
        sig = [r for r in inversions if r["kind"] == "significant"]
        console.print(f"[bold]Inversions[/]: {len(inversions)} ({len(sig)} significant at both scales)")
        shown = sorted(inversions, key=lambda r: (r["kind"] != "significant",
                                                  -(r.get("posterior_probability") or 0.0)))[:15]
        table = Table(caption="P(flip | data): posterior probability that both true differences have the observed "
                              "signs (normal seed scores, reference prior, cells independent)")
        for col in ("benchmark", "a", "b", "from", "to", "diff from", "diff to", "kind", "P(flip | data)"):
            table.add_column(col)
        for r in shown:
            prob = r.get("posterior_probability")
            table.add_row(r["benchmark"], r["a"], r["b"], r["from_model"], r["to_model"], _fmt(r["diff_from"]),
                          _fmt(r["diff_to"]), r["kind"], "-" if prob is None else f"{prob:.2f}")
        console.print(table)
    for f in result.get("factorial") or []:
        label = " / ".join(str(f.get(k)) for k in ("benchmark", "algorithm") if f.get(k) is not None)
        table = Table(title=f"ANOVA type {f['type']}: {' x '.join(f['factors'])} ({label})")
        for col in ("term", "SS", "df", "F", "p", "partial eta^2"):
            table.add_column(col)
        for t in f["terms"]:
            table.add_row(t["term"], _fmt(t["sum_sq"]), _fmt(t["df"]), _fmt(t["F"]), _p(t["p_value"]),
                          _fmt(t["partial_eta_sq"], 3))
        if f["note"]:
            table.caption = f["note"]
        console.print(table)
    lev = result.get("leverage") or {}
    for b in lev.get("benchmarks", []):
        table = Table(title=f"Leverage on {b['benchmark']} (spread of marginal means, points)")
        for col in ("factor", "spread", "95% CI", "eta^2"):
            table.add_column(col)
        for f in b["factors"]:
            table.add_row(f["factor"], _fmt(f["spread_points"], 3),
                          f"[{_fmt(f['ci_low'], 3)}, {_fmt(f['ci_high'], 3)}]", _fmt(f["eta_sq"], 3))
        s = b["algorithm_spread"]
        table.caption = f"algorithm spread {_fmt(s['spread_points'], 3)} pts [{_fmt(s['ci_low'], 3)}, {_fmt(s['ci_high'], 3)}]"
        console.print(table)
    pooled = [r for r in lev.get("compression", []) if r["model"] is None]
    for r in pooled:
        console.print(f"compression {escape(str(r['in_domain']))} vs {escape(str(r['other']))}: {_fmt(r['spread_in_domain_points'], 3)} / "
                      f"{_fmt(r['spread_other_points'], 3)} pts = {_fmt(r['ratio'], 3)}x "
                      f"[{_fmt(r['ci_low'], 3)}, {_fmt(r['ci_high'], 3)}]")
    if ppu != 1:
        console.print("[dim]values in [0, 1] are proportions: 1 point = 0.01[/]")
    for w in result.get("warnings", []):
        err_console.print(f"[yellow]warning:[/] {escape(str(w))}")


def verify_command(
    claims: Annotated[Path, typer.Argument(metavar="CLAIMS.yaml", help="Claims file.", show_default=False)],
    results: Annotated[list[Path] | None, typer.Option("--results", help="Results to check against (repeatable; "
                                                       "default: the claims file's 'results').")] = None,
    items: ItemsOpt = None,
    mapping: MappingOpt = None,
    model: ModelOpt = None,
    algorithm: AlgorithmOpt = None,
    seed: SeedOpt = None,
    params: ParamsOpt = None,
    metric: MetricOpt = None,
    resamples: ResamplesOpt = 10_000,
    rng_seed: RngOpt = 0,
    json_path: JsonOpt = None,
) -> None:
    """Check a paper's claims against results: SUPPORTED / REFUTED / INCONCLUSIVE per claim.

    Exit code 0 when every claim is supported, 1 otherwise, 2 on bad input: a claims file can
    run in CI.

    Example (after oxstudy run specs/sft_vs_rl_cpu.yaml):
    oxstudy verify specs/claims/sft_vs_rl_cpu.yaml --results studies/sft-vs-rl-cpu
    """
    from oxstudy.claims import load_claims, verify
    from oxstudy.errors import InputError

    loaded_claims = load_claims(claims)
    paths = list(results or []) or loaded_claims.results
    if not paths and mapping is None:
        raise InputError(f"{claims}: no results: pass --results or list them under 'results' in the claims file")
    loaded = _load(paths, items, mapping, model, algorithm, seed, params, metric)
    with err_console.status("verifying claims", spinner="dots"):
        report = verify(loaded_claims, loaded, n_resamples=resamples, rng_seed=rng_seed)
    for w in report["warnings"]:  # on stderr in every mode, as analyze's
        err_console.print(f"[yellow]warning:[/] {escape(str(w))}")
    if json_path is not None:
        _write_json(report, json_path)
    else:
        colours = {"SUPPORTED": "green", "REFUTED": "red", "INCONCLUSIVE": "yellow"}
        if report.get("description"):
            console.print(f"[bold]{escape(str(report['description']))}[/]")
        table = Table(title=f"Claims: {escape(str(claims))}")
        for col in ("claim", "kind", "verdict", "evidence"):
            table.add_column(col)
        for r in report["claims"]:
            table.add_row(r["id"], r["kind"], Text(r["verdict"], style=colours[r["verdict"]]), r["message"])
        console.print(table)
        s = report["summary"]
        console.print(f"{s['SUPPORTED']} supported, {s['REFUTED']} refuted, {s['INCONCLUSIVE']} inconclusive")
    if not report["all_supported"]:
        # SystemExit, not typer.Exit: click in non-standalone mode (oxstudy.cli.main) swallows Exit's code
        raise SystemExit(1)


def register(app: typer.Typer) -> None:
    """Add this group's commands to the app."""
    app.command("analyze")(analyze_command)
    app.command("verify")(verify_command)
