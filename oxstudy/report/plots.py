"""Figures for the HTML report: matplotlib (Agg), rendered to inline SVG strings.

Every figure takes plain records from the analysis dict (or per-seed rows) and returns an
SVG string; nothing here computes a statistic. Colours come from one palette function,
:func:`algorithm_styles`, so an algorithm has the same colour and marker in every figure.

Text stays text in the SVG (``svg.fonttype = "none"``): smaller files, selectable labels,
and matplotlib writes it through its XML escaper, so a name such as ``<script>`` is
rendered as characters. Dollar signs are escaped before they reach matplotlib, which would
otherwise parse user names as mathtext.
"""

from __future__ import annotations

import io
import itertools
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

#: Okabe & Ito (2008) colour-blind-safe palette, yellow moved last (low contrast on
#: white). Black is reserved for the baseline.
OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442"]
BASELINE_COLOR = "#000000"
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "<", ">", "*"]
LINESTYLES = ["-", "--", ":", "-."]

#: Width of a full-width figure in inches; at 96 dpi this fits a 1280-px laptop screen
#: with the report's margins.
FULL_WIDTH = 10.0
#: matplotlib's "small" at the default 10 pt font size.
SMALL_PT = 8.33
XSMALL_PT = 6.94
LEGEND_COLUMNS = 6

_figure_counter = itertools.count()


@dataclass(frozen=True)
class Style:
    """How one algorithm is drawn everywhere: colour, marker and line style."""

    color: str
    marker: str
    linestyle: str


def algorithm_styles(algorithms: Sequence[str], baseline: str | None = None) -> dict[str, Style]:
    """One fixed style per algorithm, the same across all figures of a report.

    The baseline is black with circles; the others take the Okabe-Ito colours in order,
    and after seven algorithms the colours repeat with a different marker and line style,
    so no two algorithms share colour *and* marker.
    """
    styles: dict[str, Style] = {}
    others = [a for a in algorithms if a != baseline]
    if baseline is not None and baseline in algorithms:
        styles[baseline] = Style(BASELINE_COLOR, "o", "-")
    for index, algorithm in enumerate(others):
        cycle, slot = divmod(index, len(OKABE_ITO))
        styles[algorithm] = Style(
            OKABE_ITO[slot],
            MARKERS[(slot + cycle * 3 + 1) % len(MARKERS)],
            LINESTYLES[cycle % len(LINESTYLES)],
        )
    return styles


def label(text: Any) -> str:
    """A user string made safe for matplotlib text: ``$`` would start mathtext."""
    return str(text).replace("\\", "\\\\").replace("$", r"\$")


_measure: Any = None


def text_width(texts: Iterable[Any], size: float = SMALL_PT, rotation: float = 0.0) -> float:
    """Extent in inches of the widest text (its height above the baseline when rotated by
    ``rotation`` degrees), from the font's metrics: no figure is drawn."""
    global _measure
    from matplotlib.backends.backend_agg import RendererAgg
    from matplotlib.font_manager import FontProperties

    if _measure is None:
        _measure = RendererAgg(8, 8, 72)  # 72 dpi: one pixel is one point
    prop = FontProperties(size=size)
    widest = max((_measure.get_text_width_height_descent(str(t), prop, ismath=False)[0] for t in texts),
                 default=0.0) / 72.0
    return widest * abs(math.sin(math.radians(rotation))) + size / 72.0 if rotation else widest


def _layout(
    n_panels: int,
    *,
    max_cols: int,
    panel_height: float,
    left: float,
    bottom: float,
    top: float = 0.3,
    right: float = 0.15,
    wgap: float | None = None,
    hgap: float | None = None,
    legend_items: int = 0,
    width: float | None = None,
    sharey: bool = False,
) -> tuple[Figure, Any]:
    """A figure sized to its content with an explicit grid of axes.

    Margins and gaps are in inches, computed by the caller from the text that sits there
    (tick labels, titles, a legend below). This replaces matplotlib's constrained layout,
    which measured every text twice per figure and took half of the report's time.
    """
    rows, cols = _grid(n_panels, max_cols)
    width = width or FULL_WIDTH
    wgap = left if wgap is None else wgap
    hgap = bottom + top if hgap is None else hgap
    legend_rows = math.ceil(legend_items / LEGEND_COLUMNS) if legend_items else 0
    legend_height = 0.24 * legend_rows + (0.1 if legend_rows else 0.0)
    height = top + rows * panel_height + (rows - 1) * hgap + bottom + legend_height
    fig = Figure(figsize=(width, height))
    axes_width = max((width - left - right - (cols - 1) * wgap) / cols, 0.5)
    axes_height = panel_height
    grid = {
        "left": left / width, "right": 1 - right / width,
        "bottom": (bottom + legend_height) / height, "top": 1 - top / height,
        "wspace": wgap / axes_width, "hspace": hgap / axes_height,
    }
    axes = fig.subplots(rows, cols, squeeze=False, sharey=sharey, gridspec_kw=grid)
    for ax in axes.flat:
        ax.tick_params(labelsize="small")
    for ax in list(axes.flat)[n_panels:]:
        ax.set_visible(False)
    return fig, axes


_XML_HEADER = re.compile(r"^.*?(<svg\b)", re.S)
_METADATA = re.compile(r"\s*<metadata>.*?</metadata>", re.S)


def to_svg(fig: Figure, title: str = "") -> str:
    """Render a figure as an SVG element for inline use in HTML.

    Each figure gets its own hash salt so the ids matplotlib generates for clip paths and
    markers are unique across the many SVGs inlined in one page (a duplicate id would
    make one figure clip with another's rectangle). The XML prolog and DOCTYPE are
    dropped; width/height become CSS-scalable.
    """
    salt = f"oxfig{next(_figure_counter)}"
    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": salt}):
        fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    svg = _XML_HEADER.sub(r"\1", buffer.getvalue(), count=1)
    # The RDF metadata block only names external vocabularies; an inline figure needs none.
    svg = _METADATA.sub("", svg, count=1)
    # Responsive: keep the viewBox, scale to the column but never beyond the natural width.
    svg = re.sub(r'<svg([^>]*?) width="([^"]*)" height="[^"]*"', r'<svg\1 class="plot" style="max-width:\2"', svg,
                 count=1)
    svg = svg.replace("<svg ", '<svg role="img" ', 1)
    return svg


def _grid(n_panels: int, max_cols: int = 4) -> tuple[int, int]:
    cols = min(max_cols, max(1, n_panels))
    rows = math.ceil(n_panels / cols)
    return rows, cols


def _tidy(ax: Any, x_bins: int | None = None) -> None:
    """Small tick labels; at most ``x_bins`` x ticks so numbers never collide."""
    ax.tick_params(labelsize="small")
    if x_bins:
        ax.xaxis.set_major_locator(MaxNLocator(nbins=x_bins))


def _finite(value: Any) -> bool:
    try:
        return value is not None and math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _legend_below(fig: Figure, algorithms: Iterable[str], styles: dict[str, Style], line: bool = False) -> None:
    from matplotlib.lines import Line2D

    handles = []
    for algorithm in algorithms:
        style = styles[algorithm]
        handles.append(
            Line2D(
                [], [], color=style.color, marker=style.marker,
                linestyle=style.linestyle if line else "none", label=label(algorithm),
            )
        )
    if handles:
        fig.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 0.0),
                   ncols=min(LEGEND_COLUMNS, len(handles)), frameon=False, fontsize="small")


def strip_plot(
    panels: list[dict[str, Any]],
    algorithms: Sequence[str],
    styles: dict[str, Style],
    metric_label: str = "score",
) -> str:
    """Per-seed strip plot: one panel per model; every seed is one dot, with the cell mean
    as a horizontal tick and its CI as a vertical bar.

    ``panels``: ``[{"title", "points": [(algorithm, value)], "cells": [{"algorithm", "mean",
    "ci_low", "ci_high"}]}]``.
    """
    tick_height = text_width(algorithms, rotation=45) + 0.1
    fig, axes = _layout(len(panels), max_cols=4 if len(algorithms) <= 6 else 2, panel_height=2.0, left=0.75,
                        bottom=tick_height,
                        wgap=0.75, hgap=tick_height + 0.35)
    positions = {a: i for i, a in enumerate(algorithms)}
    for ax, panel in zip(axes.flat, panels, strict=False):
        present = sorted({a for a, _ in panel["points"]} | {c["algorithm"] for c in panel["cells"]},
                         key=lambda a: positions.get(a, 0))
        # One artist per algorithm, not per dot: thousands of Line2D objects dominate the
        # drawing time of a 240-run study.
        by_algorithm: dict[str, tuple[list[float], list[float]]] = {}
        for offset, (algorithm, value) in enumerate(panel["points"]):
            if not _finite(value):
                continue
            # Deterministic jitter (no RNG): seeds spread within +-0.2 of the slot.
            jitter = ((offset * 7919) % 9 - 4) * 0.05
            xs, ys = by_algorithm.setdefault(algorithm, ([], []))
            xs.append(positions[algorithm] + jitter)
            ys.append(float(value))
        for algorithm, (xs, ys) in by_algorithm.items():
            style = styles[algorithm]
            ax.plot(xs, ys, linestyle="none", marker=style.marker, color=style.color, alpha=0.75, markersize=4)
        mean_segments, mean_colors, ci_segments, ci_colors = [], [], [], []
        for cell in panel["cells"]:
            algorithm = cell["algorithm"]
            x = positions[algorithm]
            color = styles[algorithm].color
            if _finite(cell.get("mean")):
                mean_segments.append([(x - 0.3, float(cell["mean"])), (x + 0.3, float(cell["mean"]))])
                mean_colors.append(color)
            if _finite(cell.get("ci_low")) and _finite(cell.get("ci_high")):
                ci_segments.append([(x + 0.33, float(cell["ci_low"])), (x + 0.33, float(cell["ci_high"]))])
                ci_colors.append(color)
        if mean_segments:
            ax.add_collection(LineCollection(mean_segments, colors=mean_colors, linewidths=2))
        if ci_segments:
            ax.add_collection(LineCollection(ci_segments, colors=ci_colors, linewidths=1))
        ax.set_title(label(panel["title"]), fontsize="medium")
        ax.set_xticks([positions[a] for a in present])
        ax.set_xticklabels([label(a) for a in present], rotation=45, ha="right", fontsize="small")
        ax.set_xlim(-0.6, len(algorithms) - 0.4)
        ax.set_ylabel(label(metric_label), fontsize="small")
        ax.grid(axis="y", alpha=0.3)
    return to_svg(fig)


def forest_plot(
    panels: list[dict[str, Any]],
    algorithms: Sequence[str],
    styles: dict[str, Style],
    baseline: str | None,
) -> str:
    """Differences against the baseline with CIs, one panel per model, rows shared.

    ``panels``: ``[{"title", "rows": {algorithm: {"diff", "ci_low", "ci_high",
    "significant"}}}]``; ``algorithms`` gives the row order (top to bottom). Filled markers
    with a ``*`` are significant after correction, hollow ones are not.
    """
    fig, axes = _layout(len(panels), max_cols=3, panel_height=0.28 * max(len(algorithms), 1) + 0.3,
                        left=text_width(algorithms) + 0.2, bottom=0.55, wgap=0.3, hgap=0.9, sharey=True)
    for ax, panel in zip(axes.flat, panels, strict=False):
        for y, algorithm in enumerate(algorithms):
            row = panel["rows"].get(algorithm)
            if row is None:
                continue
            style = styles.get(algorithm, Style("#555555", "o", "-"))
            if _finite(row.get("ci_low")) and _finite(row.get("ci_high")):
                ax.hlines(y, float(row["ci_low"]), float(row["ci_high"]), color=style.color, linewidth=1.5)
            if _finite(row.get("diff")):
                filled = bool(row.get("significant"))
                ax.plot(float(row["diff"]), y, marker=style.marker, linestyle="none", markersize=6,
                        color=style.color, markerfacecolor=style.color if filled else "white")
                if filled:
                    ax.annotate("*", (float(row["diff"]), y), xytext=(0, 3), textcoords="offset points",
                                ha="center", va="bottom", fontsize="large", color=style.color)
        ax.axvline(0.0, color="#444444", linewidth=0.8, linestyle="--")
        ax.set_title(label(panel["title"]), fontsize="medium")
        ax.set_xlabel(label(f"difference vs {baseline}" if baseline else "difference"), fontsize="small")
        ax.grid(axis="x", alpha=0.3)
        _tidy(ax, x_bins=4)
    first = axes[0][0]
    first.set_yticks(range(len(algorithms)))
    first.set_yticklabels([label(a) for a in algorithms], fontsize="small")
    first.set_ylim(len(algorithms) - 0.4, -0.6)
    return to_svg(fig)


def pairwise_heatmap(panels: list[dict[str, Any]]) -> str:
    """Heatmap of pairwise differences (row minus column); ``*`` marks significant pairs.

    ``panels``: ``[{"title", "labels": [...], "diff": [[...]], "significant": [[bool]]}]``;
    cells with no comparison are ``None`` and left blank.
    """
    import numpy as np

    names = [a for p in panels for a in p["labels"]]
    n = max((len(p["labels"]) for p in panels), default=1)
    tick = text_width(names, size=XSMALL_PT) + 0.12
    below = text_width(names, size=XSMALL_PT, rotation=45) + 0.12
    side = min(3.6, 0.26 * n + 0.6)
    colorbar = 1.0  # the colorbar, its ticks and label, taken from each panel's slot
    slot = side + colorbar
    cols = max(1, min(4, len(panels), int((FULL_WIDTH - tick) // (slot + tick))))
    width = min(FULL_WIDTH, tick + cols * slot + (cols - 1) * tick + 0.6)
    fig, axes = _layout(len(panels), max_cols=cols, panel_height=side, left=tick, bottom=below,
                        wgap=tick + 0.4, hgap=below + 0.35, width=width, right=0.6)
    for ax, panel in zip(axes.flat, panels, strict=False):
        matrix = np.array([[np.nan if v is None else float(v) for v in row] for row in panel["diff"]], dtype=float)
        finite = matrix[np.isfinite(matrix)]
        bound = float(np.max(np.abs(finite))) if finite.size else 1.0
        bound = bound or 1.0
        image = ax.imshow(matrix, cmap="RdBu_r", vmin=-bound, vmax=bound)
        k = len(panel["labels"])
        for i in range(k):
            for j in range(k):
                if panel["significant"][i][j]:
                    dark = np.isfinite(matrix[i, j]) and abs(matrix[i, j]) > 0.55 * bound
                    ax.text(j, i, "*", ha="center", va="center", fontsize="large",
                            color="white" if dark else "#111111")
        ax.set_xticks(range(k))
        ax.set_yticks(range(k))
        ax.set_xticklabels([label(a) for a in panel["labels"]], rotation=45, ha="right", fontsize="x-small")
        ax.set_yticklabels([label(a) for a in panel["labels"]], fontsize="x-small")
        ax.set_title(label(panel["title"]), fontsize="medium")
        bar = fig.colorbar(image, ax=ax, shrink=0.85, fraction=0.08, pad=0.04)
        bar.ax.tick_params(labelsize="x-small")
        bar.set_label("row - column", fontsize="x-small")
    return to_svg(fig)


def scaling_plot(
    panels: list[dict[str, Any]],
    algorithms: Sequence[str],
    styles: dict[str, Style],
    metric_label: str = "score",
    log_x: bool = True,
) -> str:
    """Metric against model size per algorithm with CI bands, one panel per benchmark.

    ``panels``: ``[{"title", "series": {algorithm: [(x, mean, ci_low, ci_high)]},
    "xticks": [(x, model_label)]}]``.
    """
    fig, axes = _layout(len(panels), max_cols=3, panel_height=2.4, left=0.75, bottom=0.6, wgap=0.75, hgap=0.95,
                        legend_items=len(algorithms))
    for ax, panel in zip(axes.flat, panels, strict=False):
        for algorithm in algorithms:
            points = [p for p in panel["series"].get(algorithm, []) if _finite(p[1])]
            if not points:
                continue
            style = styles[algorithm]
            xs = [p[0] for p in points]
            ax.plot(xs, [p[1] for p in points], color=style.color, marker=style.marker,
                    linestyle=style.linestyle, markersize=4, linewidth=1.4)
            band = [p for p in points if _finite(p[2]) and _finite(p[3])]
            if len(band) >= 2:
                ax.fill_between([p[0] for p in band], [p[2] for p in band], [p[3] for p in band],
                                color=style.color, alpha=0.12, linewidth=0)
            elif len(band) == 1:
                ax.vlines(band[0][0], band[0][2], band[0][3], color=style.color, linewidth=1)
        if log_x:
            ax.set_xscale("log")
        ticks = panel.get("xticks") or []
        if ticks:
            ax.set_xticks([t[0] for t in ticks])
            ax.set_xticklabels([label(t[1]) for t in ticks], fontsize="small")
            ax.minorticks_off()
        ax.set_title(label(panel["title"]), fontsize="medium")
        ax.set_xlabel("model size (parameters, log scale)" if log_x else "model", fontsize="small")
        ax.set_ylabel(label(metric_label), fontsize="small")
        ax.grid(alpha=0.3)
    _legend_below(fig, algorithms, styles, line=True)
    return to_svg(fig)


def bump_chart(
    panels: list[dict[str, Any]],
    algorithms: Sequence[str],
    styles: dict[str, Style],
) -> str:
    """Rank of each algorithm at each scale (1 = best on top); inverted pairs drawn thick.

    ``panels``: ``[{"title", "models": [...], "ranks": {algorithm: [rank or None per model]},
    "highlight": {algorithm, ...}}]``.
    """
    n_alg = max(len(algorithms), 2)
    fig, axes = _layout(len(panels), max_cols=3, panel_height=0.2 * n_alg + 1.0, left=0.7, bottom=0.35,
                        wgap=0.7, hgap=0.7, legend_items=len(algorithms))
    for ax, panel in zip(axes.flat, panels, strict=False):
        models = panel["models"]
        for algorithm in algorithms:
            ranks = panel["ranks"].get(algorithm)
            if not ranks:
                continue
            points = [(i, r) for i, r in enumerate(ranks) if _finite(r)]
            if not points:
                continue
            style = styles[algorithm]
            bold = algorithm in panel.get("highlight", set())
            ax.plot([p[0] for p in points], [p[1] for p in points], color=style.color, marker=style.marker,
                    linestyle=style.linestyle, linewidth=2.6 if bold else 1.0, alpha=1.0 if bold else 0.55,
                    markersize=5)
        ax.set_xticks(range(len(models)))
        ax.set_xticklabels([label(m) for m in models], fontsize="small")
        ax.set_xlim(-0.3, len(models) - 0.7 if len(models) > 1 else 0.3)
        ax.invert_yaxis()
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("rank (1 = best)", fontsize="small")
        ax.set_title(label(panel["title"]), fontsize="medium")
        ax.grid(axis="y", alpha=0.3)
    _legend_below(fig, algorithms, styles, line=True)
    return to_svg(fig)


def interaction_plot(panels: list[dict[str, Any]], metric_label: str = "score") -> str:
    """Cell means of one factor (x) traced per level of another (lines).

    ``panels``: ``[{"title", "x_label", "x_levels": [...], "series": {level: [mean or None]}}]``.
    """
    fig, axes = _layout(len(panels), max_cols=3, panel_height=2.2, left=0.75, bottom=0.6, wgap=0.75, hgap=0.95,
                        width=FULL_WIDTH if len(panels) > 1 else 6.0)
    for ax, panel in zip(axes.flat, panels, strict=False):
        for index, (level, means) in enumerate(panel["series"].items()):
            color = OKABE_ITO[index % len(OKABE_ITO)]
            points = [(i, m) for i, m in enumerate(means) if _finite(m)]
            ax.plot([p[0] for p in points], [p[1] for p in points], color=color,
                    marker=MARKERS[index % len(MARKERS)], label=label(level))
        ax.set_xticks(range(len(panel["x_levels"])))
        ax.set_xticklabels([label(x) for x in panel["x_levels"]], fontsize="small")
        ax.set_xlabel(label(panel.get("x_label", "")), fontsize="small")
        ax.set_ylabel(label(metric_label), fontsize="small")
        ax.set_title(label(panel["title"]), fontsize="medium")
        ax.legend(fontsize="small", frameon=False, title=label(panel.get("trace_label", "")) or None)
        ax.grid(alpha=0.3)
    return to_svg(fig)


def leverage_bars(panels: list[dict[str, Any]], value_label: str = "spread (points)") -> str:
    """Horizontal bars of spread per factor with CI whiskers, one panel per benchmark, most
    leverage on top. The algorithm factor is drawn in the baseline colour.

    ``panels``: ``[{"title", "rows": [{"name", "spread", "ci_low", "ci_high"}]}]``, rows in
    display order.
    """
    tallest = max((len(p["rows"]) for p in panels), default=1)
    names = text_width([r["name"] for p in panels for r in p["rows"]]) + 0.15
    fig, axes = _layout(len(panels), max_cols=3, panel_height=0.32 * tallest + 0.3, left=names, bottom=0.55,
                        wgap=names + 0.25, hgap=0.9)
    for ax, panel in zip(axes.flat, panels, strict=False):
        rows = panel["rows"]
        for y, row in enumerate(rows):
            if not _finite(row.get("spread")):
                continue
            color = "#555555" if row["name"] == "algorithm" else OKABE_ITO[0]
            ax.barh(y, float(row["spread"]), color=color, alpha=0.85, height=0.6)
            if _finite(row.get("ci_low")) and _finite(row.get("ci_high")):
                ax.hlines(y, float(row["ci_low"]), float(row["ci_high"]), color="#222222", linewidth=1.2)
        ax.set_yticks(range(len(rows)))
        ax.set_yticklabels([label(r["name"]) for r in rows])
        ax.set_ylim(len(rows) - 0.5, -0.5)
        ax.set_xlabel(label(value_label), fontsize="small")
        ax.set_title(label(panel["title"]), fontsize="medium")
        ax.grid(axis="x", alpha=0.3)
        _tidy(ax, x_bins=5)
    return to_svg(fig)


def curves_plot(
    panels: list[dict[str, Any]],
    algorithms: Sequence[str],
    styles: dict[str, Style],
    per_row: int = 3,
) -> str:
    """Training curves: one panel per (model, quantity); each seed is one thin line.

    ``panels``: ``[{"title", "ylabel", "lines": [(algorithm, steps, values)]}]``; panels of
    one model come together, so each row is one model when ``per_row`` is its quantities.
    """
    fig, axes = _layout(len(panels), max_cols=per_row, panel_height=2.0, left=0.75, bottom=0.55, wgap=0.75,
                        hgap=0.9, legend_items=len(algorithms))
    for ax, panel in zip(axes.flat, panels, strict=False):
        grouped: dict[str, list[list[tuple[float, float]]]] = {}
        for algorithm, steps, values in panel["lines"]:
            pairs = [(float(s), float(v)) for s, v in zip(steps, values, strict=False) if _finite(s) and _finite(v)]
            if len(pairs) >= 2:
                grouped.setdefault(algorithm, []).append(pairs)
        for algorithm, lines in grouped.items():
            style = styles[algorithm]
            ax.add_collection(LineCollection(lines, colors=style.color, linestyles=style.linestyle,
                                             linewidths=1.0, alpha=0.8))
        ax.autoscale_view()
        ax.set_title(label(panel["title"]), fontsize="medium")
        ax.xaxis.set_major_locator(MaxNLocator(nbins=6, integer=True))
        ax.set_xlabel("step", fontsize="small")
        ax.set_ylabel(label(panel["ylabel"]), fontsize="small")
        ax.grid(alpha=0.3)
    _legend_below(fig, algorithms, styles, line=True)
    return to_svg(fig)


def close_all() -> None:
    """Figures are created without pyplot; kept for callers that mixed in pyplot figures."""
    plt.close("all")
