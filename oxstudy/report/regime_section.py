"""Report sections of the data-regime and alignment analyses (issue 13).

:func:`regime_analysis` computes, from loaded results, the JSON-able ``analysis["regime"]`` block
(pure statistics from :mod:`oxstudy.stats.difficulty`, ``.transfer`` and ``.alignment``);
:func:`regime_sections` renders it as four sections: accuracy by difficulty level (with the
plateau test), steps-to-match, the transfer matrix and alignment dependence. Each section is
omitted with a one-line note when the study has no such data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from oxstudy.report.tables import records_table


def _settings(spec: dict[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any] | None, str | None]:
    analysis = (spec or {}).get("analysis") or {}
    return analysis.get("regime") or {}, analysis.get("alignment"), analysis.get("baseline")


def _records(table: pd.DataFrame) -> dict[str, dict[str, Any]]:
    from oxstudy.claims_regime import _records_by_run

    return _records_by_run(table)


def _clean(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from oxstudy.stats.analyze import _clean as clean

    return clean(rows)


def _alignment_table(
    block: dict[str, Any], study_dir: Path | None, base_dir: Path | None
) -> pd.DataFrame | None:
    """Base pass@k: the spec's ``analysis.alignment.base_pass_at_k`` file, else a cached
    ``<study>/alignment/base_pass_at_k.{json,csv}`` (columns model, benchmark, k, pass_at_k)."""
    from oxstudy.claims_regime import load_alignment

    candidates = []
    if block.get("base_pass_at_k"):
        candidates.append(
            Path(block["base_pass_at_k"])
            if Path(block["base_pass_at_k"]).is_absolute()
            else (base_dir or Path.cwd()) / block["base_pass_at_k"]
        )
    if study_dir is not None:
        candidates += [
            study_dir / "alignment" / "base_pass_at_k.json",
            study_dir / "alignment" / "base_pass_at_k.csv",
        ]
    k = block.get("measure_k") or max(block.get("k") or [1])
    for path in candidates:
        if path.exists():
            return load_alignment(str(path.resolve()), path.parent, k)  # absolute: study_dir may be relative
    return None


def regime_analysis(results: Any, study_dir: Path | None = None) -> dict[str, Any]:
    """The data-regime block of the analysis (see the module docstring); empty parts are absent."""
    from oxstudy.claims_regime import alignment_runs, eval_curves, items_with_levels, runs_with_steps
    from oxstudy.stats.alignment import interaction_test, shortcut_effects
    from oxstudy.stats.difficulty import (
        accuracy_by_level,
        level_gains,
        matches_with_fewer_steps,
        plateau_test,
        steps_to_match_curve,
    )
    from oxstudy.stats.transfer import transfer_differences, transfer_matrix

    out: dict[str, Any] = {}
    if getattr(results, "kind", None) != "runs":
        return out
    table = results.table
    regime, alignment, baseline = _settings(results.spec)
    out["requested"] = bool(regime or alignment)
    items = items_with_levels(results.items, table)
    items = items.dropna(subset=["level"]) if "level" in items.columns else items
    if not items.empty and items["level"].nunique() >= 2:
        out["by_level"] = _clean(accuracy_by_level(items).to_dict("records"))
        reference = regime.get("reference") or baseline
        plateau = []
        if reference is not None:
            for (model, bench), group in items.groupby(["model", "benchmark"]):
                for algorithm in sorted(set(group["algorithm"]) - {reference}):
                    if reference not in set(group["algorithm"]):
                        continue
                    result = plateau_test(level_gains(group, algorithm, reference))
                    plateau.append(
                        {
                            "model": model,
                            "benchmark": bench,
                            "algorithm": algorithm,
                            "reference": reference,
                            **{
                                k: result[k]
                                for k in ("slope", "ci_low", "ci_high", "p_value", "n_seeds", "plateau")
                            },
                        }
                    )
        out["plateau"] = _clean(plateau)
    full = regime.get("full")
    if full is not None:
        frame = runs_with_steps(table)
        curves = eval_curves(table)
        margin = float(regime.get("margin", 0.02))
        rows = []
        for (model, bench), group in frame.groupby(["model", "benchmark"]):
            if full not in set(group["algorithm"]) or group["steps"].isna().all():
                continue
            for candidate in sorted(set(group["algorithm"]) - {full}):
                result = matches_with_fewer_steps(group, candidate, full, margin)
                row = {
                    "model": model,
                    "benchmark": bench,
                    "candidate": candidate,
                    "full": full,
                    **{k: result[k] for k in ("fraction", "difference", "ci_low", "ci_high", "margin", "non_inferior")},
                }
                curve = curves[(curves["model"] == model) & (curves["benchmark"] == bench)
                               & (curves["algorithm"] == candidate)]
                if not curve.empty:  # evaluations during training: the first step within the margin
                    full_runs = group[group["algorithm"] == full]
                    matched = steps_to_match_curve(curve, full_runs["value"].to_numpy(float),
                                                   float(full_runs["steps"].astype(float).mean()), margin)
                    row.update(curve_fraction=matched["mean_fraction"], curve_ci_low=matched["ci_low"],
                               curve_ci_high=matched["ci_high"], never_matched=matched["never_matched"])
                rows.append(row)
        out["steps_to_match"] = _clean(rows)
    records = _records(table)
    if records:
        frame = _transfer_frame(table, records)
        if frame is not None:
            out["transfer_matrix"] = _clean(transfer_matrix(frame).to_dict("records"))
            out["transfer_differences"] = _clean(transfer_differences(frame).to_dict("records"))
    if alignment:
        base = _alignment_table(alignment, study_dir, Path(study_dir) if study_dir else None)
        if base is not None:
            runs = alignment_runs(table)
            effects = shortcut_effects(
                runs,
                base,
                alignment["standard"],
                list(alignment["shortcuts"]),
                float(alignment.get("threshold", 0.5)),
            )
            out["alignment_effects"] = _clean(effects.to_dict("records"))
            out["alignment_interaction"] = _clean(
                [interaction_test(runs, base, alignment["standard"], s) for s in alignment["shortcuts"]]
            )
        else:
            out["alignment_missing"] = (
                "the spec asks for alignment but no base pass@k was found "
                "(analysis.alignment.base_pass_at_k or <study>/alignment/base_pass_at_k.json)"
            )
    return out


def _transfer_frame(table: pd.DataFrame, records: dict[str, dict[str, Any]]) -> pd.DataFrame | None:
    """Runs labelled by training source, from the full-data, true-reward arms only (a subset,
    curriculum or spurious-reward arm is not "trained on dataset X"); two arms on one source are
    told apart by their id. None when fewer than two training sources remain."""
    labels: dict[str, str] = {}
    for run_id, record in records.items():
        data = (record.get("cell") or {}).get("data") or {}
        if (
            data.get("select")
            or data.get("curriculum")
            or (data.get("reward") or {}).get("kind", "exact_match") != "exact_match"
        ):
            continue
        labels[run_id] = str(data.get("source", "")).replace("task:", "").replace("hf:", "").split("/")[-1]
    frame = table[table["run_id"].isin(labels)].copy()
    if frame.empty:
        return None
    frame["train"] = frame["run_id"].map(labels)
    if frame["train"].nunique() < 2:
        # every arm trains on one source: a plain algorithm comparison, not a transfer study
        return None
    arms = frame.groupby("train")["algorithm"].nunique()
    frame["train"] = [
        f"{t} ({a})" if arms[t] > 1 else t for t, a in zip(frame["train"], frame["algorithm"], strict=True)
    ]
    return frame if frame["train"].nunique() >= 2 else None


# ----------------------------------------------------------------------------- figures


def _by_level_plot(rows: list[dict[str, Any]], styles: dict[str, Any]) -> str:
    from oxstudy.report import plots

    panels = sorted({(r["model"], r["benchmark"]) for r in rows})
    fig, axes = plots._layout(
        len(panels),
        max_cols=3,
        panel_height=2.2,
        left=0.7,
        bottom=0.55,
        legend_items=len({r["algorithm"] for r in rows}),
    )
    for ax, (model, bench) in zip(axes.flat, panels, strict=False):
        for algorithm in sorted({r["algorithm"] for r in rows}):
            line = sorted(
                (
                    r
                    for r in rows
                    if (r["model"], r["benchmark"], r["algorithm"]) == (model, bench, algorithm)
                ),
                key=lambda r: r["level"],
            )
            if not line:
                continue
            style = styles.get(algorithm)
            x = [float(r["level"]) for r in line]
            y = [r["mean"] for r in line]
            low = [r["mean"] - r["ci_low"] if r.get("ci_low") is not None else 0 for r in line]
            high = [r["ci_high"] - r["mean"] if r.get("ci_high") is not None else 0 for r in line]
            ax.errorbar(
                x,
                y,
                yerr=[low, high],
                color=getattr(style, "color", None),
                linestyle=getattr(style, "linestyle", "-"),
                marker="o",
                markersize=3,
                capsize=2,
                linewidth=1.2,
                label=algorithm,
            )
        ax.set_title(plots.label(f"{model} · {bench}"), fontsize="medium")
        ax.set_xlabel("difficulty level", fontsize="small")
        ax.set_ylabel("accuracy", fontsize="small")
        ax.grid(alpha=0.3)
    plots._legend_below(
        fig, sorted({r["algorithm"] for r in rows if r["algorithm"] in styles}), styles, line=True
    )
    return plots.to_svg(fig)


def _alignment_plot(rows: list[dict[str, Any]]) -> str:
    from oxstudy.report import plots

    shortcuts = sorted({r["shortcut"] for r in rows})
    fig, axes = plots._layout(len(shortcuts), max_cols=3, panel_height=2.2, left=0.75, bottom=0.55)
    for ax, shortcut in zip(axes.flat, shortcuts, strict=False):
        points = [r for r in rows if r["shortcut"] == shortcut and r.get("pass_at_k") is not None]
        x = [r["pass_at_k"] for r in points]
        y = [r["difference"] for r in points]
        low = [r["difference"] - r["ci_low"] if r.get("ci_low") is not None else 0 for r in points]
        high = [r["ci_high"] - r["difference"] if r.get("ci_high") is not None else 0 for r in points]
        ax.errorbar(x, y, yerr=[low, high], fmt="o", markersize=4, capsize=2, color="#1f77b4")
        for r in points:
            ax.annotate(
                plots.label(f"{r['model']}/{r['task']}"),
                (r["pass_at_k"], r["difference"]),
                fontsize=6,
                xytext=(3, 3),
                textcoords="offset points",
            )
        ax.axhline(0, color="#888", linewidth=0.8)
        ax.set_title(plots.label(f"{shortcut} − standard"), fontsize="medium")
        ax.set_xlabel("base pass@k", fontsize="small")
        ax.set_ylabel("effect (accuracy)", fontsize="small")
        ax.grid(alpha=0.3)
    return plots.to_svg(fig)


# ----------------------------------------------------------------------------- sections


def regime_sections(analysis: dict[str, Any], styles: dict[str, Any]) -> list[Any]:
    """Four report sections from ``analysis["regime"]`` (notes where there is no such data)."""
    from oxstudy.report.build import Section, _figure

    regime = analysis.get("regime") or {}
    if not regime.get("requested") and not any(
        regime.get(k) for k in ("steps_to_match", "transfer_matrix", "alignment_effects")
    ):
        # A plain algorithm comparison: its level table stays in the JSON, no four empty sections.
        return []
    by_level = Section("by-level", "Accuracy by difficulty level")
    if regime.get("by_level"):
        by_level.intro = (
            "Per-seed accuracy on the items of each level, mean and 95% t-interval over seeds. "
            "Plateau test: per-seed OLS slope of the gain over the reference on level, "
            "t-interval across seeds; a plateau when the interval lies below 0."
        )
        by_level.figures.append(_figure("Accuracy by level", _by_level_plot(regime["by_level"], styles)))
        by_level.tables.append(records_table("by_level", "Accuracy by level", regime["by_level"]))
        if regime.get("plateau"):
            by_level.tables.append(
                records_table("plateau", "Plateau test (gain slope per level)", regime["plateau"])
            )
    else:
        by_level.note = "No per-item outcomes with difficulty levels (needs items whose task carries levels)."
    steps = Section("steps-to-match", "Steps to match the full-data arm")
    if regime.get("steps_to_match"):
        steps.intro = (
            "Each arm's final accuracy against the full-data arm: Welch 95% interval of the difference, "
            "non-inferior when its lower bound exceeds −margin; fraction = the arm's optimizer steps "
            "(as recorded) over the full arm's. With evaluations during training (measure.eval_every), "
            "curve_fraction is the first evaluated step at which a seed's accuracy reaches the full arm's "
            "mean final accuracy minus the margin, over the full arm's mean steps (mean over the seeds that "
            "reach it, t-interval; never_matched counts the others). Without them, a budget ladder of arms "
            "gives the smallest matching fraction."
        )
        steps.tables.append(records_table("steps_to_match", "Steps to match", regime["steps_to_match"]))
    else:
        steps.note = "No full-data arm named (analysis.regime.full) or no steps recorded."
    transfer = Section("transfer", "Transfer: training dataset × evaluation dataset")
    if regime.get("transfer_matrix"):
        transfer.intro = (
            "Mean accuracy per training source and benchmark (t-interval over seeds), and every pair "
            "of training sources compared per benchmark (Welch's interval and p-value)."
        )
        transfer.tables.append(records_table("transfer_matrix", "Transfer matrix", regime["transfer_matrix"]))
        transfer.tables.append(
            records_table(
                "transfer_differences", "Differences between training sources", regime["transfer_differences"]
            )
        )
    else:
        transfer.note = "All arms train on the same dataset: no transfer matrix."
    alignment = Section("alignment", "Alignment dependence")
    if regime.get("alignment_effects"):
        alignment.intro = (
            "Effect of each shortcut against standard RL per (model, task), beside the base model's "
            "pass@k; the interaction test regresses run accuracy on cell + shortcut + "
            "shortcut × pass@k (OLS, inference over seeds for these cells only)."
        )
        alignment.figures.append(
            _figure("Effect vs base pass@k", _alignment_plot(regime["alignment_effects"]))
        )
        alignment.tables.append(
            records_table("alignment_effects", "Shortcut effects by alignment", regime["alignment_effects"])
        )
        alignment.tables.append(
            records_table(
                "alignment_interaction",
                "Shortcut × alignment interaction",
                regime["alignment_interaction"],
                columns=[
                    "shortcut",
                    "standard",
                    "gamma",
                    "ci_low",
                    "ci_high",
                    "p_value",
                    "df",
                    "n_cells",
                    "n_runs",
                    "note",
                ],
                skip=["se", "beta", "model"],
            )
        )
    else:
        alignment.note = (
            regime.get("alignment_missing") or "No alignment analysis (analysis.alignment not set)."
        )
    return [by_level, steps, transfer, alignment]
