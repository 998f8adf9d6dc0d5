"""The report section "What changed inside the model" (weight-update anatomy, forgetting, pass@k, KL).

Every number comes from ``analysis["post_training"]`` (oxstudy/stats/anatomy.py); the section
is omitted with a one-line note when a study recorded no such measurements.
"""

from __future__ import annotations

import math
from typing import Any

from matplotlib.figure import Figure

from oxstudy.report import plots
from oxstudy.report.tables import records_table


def _fmt(x: Any, digits: int = 3) -> Any:
    if isinstance(x, float):
        return None if not math.isfinite(x) else float(f"{x:.{digits}g}")
    return x


def _interval(cell: dict[str, Any], digits: int = 3) -> str:
    mean, low, high = cell.get("mean"), cell.get("low"), cell.get("high")
    if mean is None or not math.isfinite(mean):
        return "–"
    if low is None or not math.isfinite(low):
        return f"{mean:.{digits}g} (n={cell.get('n')})"
    return f"{mean:.{digits}g} [{low:.{digits}g}, {high:.{digits}g}]"


def heatmap_figure(maps: list[dict[str, Any]]) -> str:
    """One panel per algorithm: layers (rows) x module types (columns), colour = relative update."""
    import numpy as np

    values = [v for m in maps for row in m["relative"] for v in row if v is not None]
    vmax = max(values) if values else 1.0
    cols = min(len(maps), 4)
    rows = math.ceil(len(maps) / cols)
    fig = Figure(figsize=(2.6 * cols + 0.8, 0.32 * max(len(m["layers"]) for m in maps) * rows + 1.4 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    image = None
    for ax, panel in zip(axes.flat, maps, strict=False):
        matrix = np.array(
            [[np.nan if v is None else v for v in row] for row in panel["relative"]], dtype=float
        )
        image = ax.imshow(matrix, aspect="auto", cmap="viridis", vmin=0.0, vmax=vmax, interpolation="nearest")
        ax.set_xticks(range(len(panel["types"])), panel["types"], fontsize="x-small", rotation=90)
        ax.set_yticks(range(len(panel["layers"])), [str(v) for v in panel["layers"]], fontsize="x-small")
        ax.set_title(
            plots.label(f"{panel['model']} · {panel['algorithm']} ({panel['seeds']} seeds)"), fontsize="small"
        )
        ax.set_ylabel("layer", fontsize="x-small")
    for ax in list(axes.flat)[len(maps) :]:
        ax.set_visible(False)
    if image is not None:
        fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8, label="relative update (median over seeds)")
    return plots.to_svg(fig)


def shares_figure(shares: list[dict[str, Any]]) -> str:
    """Share of the update in q/k per algorithm: mean and t-interval over seeds, with the uniform-share line."""
    fig = Figure(figsize=(max(3.5, 0.9 * len(shares) + 1.5), 2.8))
    ax = fig.subplots()
    labels = [
        plots.label(
            f"{s['algorithm']}"
            if len({x["model"] for x in shares}) == 1
            else f"{s['model']}/{s['algorithm']}"
        )
        for s in shares
    ]
    for i, share in enumerate(shares):
        cell = share.get("share:q/k", {})
        mean, low, high = cell.get("mean"), cell.get("low"), cell.get("high")
        if mean is None:
            continue
        ax.plot([i], [mean], "o", color=plots.OKABE_ITO[i % len(plots.OKABE_ITO)])
        if low is not None and math.isfinite(low):
            ax.plot([i, i], [low, high], "-", color=plots.OKABE_ITO[i % len(plots.OKABE_ITO)])
    ax.set_xticks(range(len(shares)), labels, fontsize="x-small", rotation=30, ha="right")
    ax.set_ylabel("share of ||dθ||² in q, k", fontsize="small")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return plots.to_svg(fig)


def forgetting_figure(data: dict[str, Any], algorithms: list[str]) -> str:
    fig = Figure(figsize=(4.6, 3.4))
    ax = fig.subplots()
    for i, algorithm in enumerate(algorithms):
        runs = [r for r in data["runs"] if r["algorithm"] == algorithm]
        if runs:
            ax.scatter(
                [r["in_domain_gain"] for r in runs],
                [r["knowledge_change"] for r in runs],
                s=18,
                color=plots.OKABE_ITO[i % len(plots.OKABE_ITO)],
                marker=plots.MARKERS[i % len(plots.MARKERS)],
                label=plots.label(algorithm),
            )
    for arm in data.get("arms", []):
        if arm["algorithm"] not in algorithms:
            continue
        i = algorithms.index(arm["algorithm"])
        g, k = arm["in_domain_gain"], arm["knowledge_change"]
        color = plots.OKABE_ITO[i % len(plots.OKABE_ITO)]
        if math.isfinite(g.get("low", float("nan"))) and math.isfinite(k.get("low", float("nan"))):
            ax.errorbar(
                [g["mean"]],
                [k["mean"]],
                xerr=[[g["mean"] - g["low"]], [g["high"] - g["mean"]]],
                yerr=[[k["mean"] - k["low"]], [k["high"] - k["mean"]]],
                color=color,
                capsize=2,
                lw=0.8,
            )
    ax.axhline(0, color="0.6", lw=0.6)
    ax.axvline(0, color="0.6", lw=0.6)
    ax.set_xlabel("in-domain gain over base", fontsize="small")
    ax.set_ylabel("knowledge change from base", fontsize="small")
    ax.legend(fontsize="x-small", frameon=False)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return plots.to_svg(fig)


def passk_figure(curves: list[dict[str, Any]]) -> str:
    fig = Figure(figsize=(4.2 * len(curves), 3.2))
    axes = fig.subplots(1, len(curves), squeeze=False)
    for ax, curve in zip(axes.flat, curves, strict=True):
        k = curve["k"]
        if curve.get("base"):
            ax.plot(k, curve["base"], "-", color="black", lw=1.5, label="base")
        for i, (algorithm, line) in enumerate(curve["algorithms"].items()):
            color = plots.OKABE_ITO[i % len(plots.OKABE_ITO)]
            ax.plot(
                k,
                line["mean"],
                plots.LINESTYLES[i % len(plots.LINESTYLES)],
                color=color,
                label=plots.label(algorithm),
                marker=plots.MARKERS[i % len(plots.MARKERS)],
                ms=3,
            )
            if all(math.isfinite(v) for v in line["low"]):
                ax.fill_between(k, line["low"], line["high"], color=color, alpha=0.12)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("k", fontsize="small")
        ax.set_ylabel("pass@k", fontsize="small")
        ax.set_title(
            plots.label(
                f"{curve['model']} · {curve['benchmark']} (n={curve['samples']}, T={curve['temperature']})"
            ),
            fontsize="small",
        )
        ax.grid(alpha=0.3)
        ax.legend(fontsize="x-small", frameon=False)
    fig.tight_layout()
    return plots.to_svg(fig)


def anatomy_section(post: dict[str, Any] | None, section_cls: Any, figure: Any) -> Any:
    """Build the section; ``section_cls`` / ``figure`` are build.py's ``Section`` and ``_figure``."""
    section = section_cls("anatomy", "What changed inside the model")
    has_any = post and (
        post.get("runs_with_anatomy")
        or post.get("forgetting", {}).get("runs")
        or post.get("pass_at_k")
        or post.get("kl")
    )
    if not has_any:
        section.note = (
            "No post-training measurements in the input (weight-update anatomy, KL drift, pass@k and base "
            "scores are recorded per run by `oxstudy run` since this version)."
        )
        return section
    conventions = post.get("conventions", {})
    section.intro = (
        "How post-training changed the weights and the outputs, per run, after training. "
        + " ".join(f"{k.replace('_', ' ')}: {v}." for k, v in conventions.items())
    )
    algorithms = list(
        dict.fromkeys(
            [s["algorithm"] for s in post.get("shares", [])]
            + [r["algorithm"] for r in post.get("forgetting", {}).get("runs", [])]
        )
    )
    if post.get("heatmaps"):
        section.figures.append(
            figure(
                "Relative update per layer and module type (median over seeds)",
                heatmap_figure(post["heatmaps"]),
            )
        )
    if post.get("shares"):
        section.figures.append(
            figure(
                "Share of the squared update norm in the query and key projections "
                "(mean over seeds, t-interval)",
                shares_figure(post["shares"]),
            )
        )
        rows = []
        for share in post["shares"]:
            row = {
                "model": share["model"],
                "algorithm": share["algorithm"],
                "relative update": _interval(share["relative_update"]),
                "q/k share": _interval(share["share:q/k"]),
            }
            for key in sorted(k for k in share if k.startswith("share_type:")):
                row[key.split(":", 1)[1]] = _fmt(share[key]["mean"])
            rows.append(row)
        section.tables.append(
            records_table(
                "anatomy-shares",
                "Update per algorithm: total relative update and "
                "q/k share (mean [95% t-interval] over seeds); per-type mean shares",
                rows,
            )
        )
    if post.get("contrasts"):
        section.tables.append(
            records_table(
                "anatomy-contrasts",
                "Contrasts between algorithms (Welch t-test on per-run values, Holm-adjusted)",
                [{k: _fmt(v) for k, v in r.items()} for r in post["contrasts"]],
            )
        )
    forgetting = post.get("forgetting") or {}
    if forgetting.get("runs"):
        section.figures.append(
            figure(
                f"Forgetting: in-domain gain vs knowledge change per run (knowledge = "
                f"{forgetting['knowledge_benchmarks']}; bars: t-intervals over seeds)",
                forgetting_figure(forgetting, algorithms),
            )
        )
        corr = forgetting.get("correlation")
        if corr:
            section.paragraphs.append(
                f"Correlation of in-domain gain and knowledge change across {corr['n']} runs: r = {corr['r']:.2f} "
                f"(95% CI {corr['low']:.2f} to {corr['high']:.2f}, {corr['method']}, p = {corr['p']:.3g})."
            )
        section.tables.append(
            records_table(
                "forgetting",
                "In-domain gain and knowledge change from base (mean [95% t-interval] over seeds)",
                [
                    {
                        "model": a["model"],
                        "algorithm": a["algorithm"],
                        "in-domain gain": _interval(a["in_domain_gain"]),
                        "knowledge change": _interval(a["knowledge_change"]),
                    }
                    for a in forgetting.get("arms", [])
                ],
            )
        )
    else:
        section.paragraphs.append(
            "No forgetting analysis: no run has base-model scores on both an in-domain and a "
            "knowledge / out-of-domain benchmark."
        )
    if post.get("pass_at_k"):
        section.figures.append(
            figure(
                "pass@k of the base model and each algorithm (mean over seeds, t-band): a "
                "trained curve above the base at k = 1 but not at large k is a narrowing",
                passk_figure(post["pass_at_k"]),
            )
        )
    else:
        section.paragraphs.append("No pass@k curves: no benchmark of the spec sets pass_at_k.")
    if post.get("kl"):
        section.tables.append(
            records_table(
                "kl-drift",
                "Output drift: mean per-token KL(trained || base) on the held-out prompt set",
                [{"model": k["model"], "algorithm": k["algorithm"], "KL": _interval(k)} for k in post["kl"]],
            )
        )
    if post.get("frozen"):
        section.tables.append(
            records_table(
                "frozen",
                "Frozen vs unfrozen arms of one method (frozen minus unfrozen; Welch, Holm-adjusted)",
                [{k: _fmt(v) for k, v in r.items()} for r in post["frozen"]],
            )
        )
    return section
