"""Plain table model shared by the HTML report and the exports.

A :class:`Table` holds display strings plus a CSS-ish role per cell (``best``,
``missing``, ``sig``); the HTML template escapes every string, and the exporters turn the
same table into Markdown, LaTeX or CSV. Nothing here computes statistics: values come
formatted from the analysis dict.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

MISSING = "–"


@dataclass
class TableCell:
    """One displayed cell: its text and optional roles (``best``, ``missing``, ``sig``, ``num``)."""

    text: str
    roles: tuple[str, ...] = ()
    title: str = ""
    sub: str = ""

    @property
    def css(self) -> str:
        return " ".join(self.roles)


@dataclass
class Table:
    """A titled grid of :class:`TableCell`; ``numeric`` keeps raw values for CSV export."""

    name: str
    caption: str
    columns: list[str]
    rows: list[list[TableCell]] = field(default_factory=list)
    numeric: list[dict[str, Any]] = field(default_factory=list)
    note: str = ""


def is_number(value: Any) -> bool:
    if isinstance(value, bool) or value is None:
        return False
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def fmt(value: Any, digits: int = 3) -> str:
    """Human format: ``–`` for missing/NaN, yes/no for booleans, ``digits`` significant
    figures for floats (at least the integer part)."""
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return MISSING
        magnitude = abs(value)
        if magnitude == 0:
            return "0"
        if magnitude >= 10 ** digits:
            return f"{value:,.0f}"
        if magnitude < 1e-3:
            return f"{value:.2e}"
        decimals = max(0, digits - 1 - int(math.floor(math.log10(magnitude))))
        return f"{value:.{decimals}f}"
    try:
        as_float = float(value)  # numpy scalars
    except (TypeError, ValueError):
        return str(value)
    if hasattr(value, "dtype") and getattr(value.dtype, "kind", "") in "iu":
        return str(int(as_float))
    return fmt(as_float, digits)


def fmt_size(value: Any) -> str:
    """A parameter count as 70M / 1.4B."""
    if not is_number(value):
        return str(value)
    n = float(value)
    for div, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= div:
            return f"{n / div:.3g}{suffix}"
    return f"{n:g}"


def fmt_p(value: Any) -> str:
    """p-values: two significant figures, scientific below 0.001."""
    if not is_number(value):
        return MISSING
    p = float(value)
    if p == 0:
        return "0"
    if p < 1e-3:
        return f"{p:.1e}"
    return f"{p:.2g}" if p < 0.1 else f"{p:.2f}"


def fmt_ci(low: Any, high: Any, digits: int = 3) -> str:
    if not (is_number(low) and is_number(high)):
        return MISSING
    return f"[{fmt(float(low), digits)}, {fmt(float(high), digits)}]"


_P_KEYS = ("p", "p_value", "p_adjusted", "pvalue", "p_adj", "pr(>f)", "p_raw")


def fmt_auto(column: str, value: Any) -> str:
    """Format by column name: p-values as p-values, everything else by :func:`fmt`."""
    key = column.lower()
    if key in _P_KEYS or key.startswith("p_") or key.endswith("_p"):
        return fmt_p(value)
    if isinstance(value, (list, tuple)):
        return ", ".join(fmt(v) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{k}={fmt(v)}" for k, v in value.items())
    return fmt(value)


def records_table(
    name: str,
    caption: str,
    records: Sequence[dict[str, Any]],
    columns: Iterable[str] | None = None,
    skip: Iterable[str] = (),
) -> Table:
    """A table from a list of flat records; columns are ``columns`` (when given and present)
    followed by any other keys in first-seen order, minus ``skip``."""
    skipped = set(skip)
    seen: list[str] = []
    for record in records:
        for key in record:
            if key not in seen and key not in skipped:
                seen.append(key)
    ordered = [c for c in (columns or []) if c in seen]
    ordered += [c for c in seen if c not in ordered]
    table = Table(name=name, caption=caption, columns=ordered)
    for record in records:
        row = []
        for column in ordered:
            value = record.get(column)
            roles = ("num",) if is_number(value) else ()
            if isinstance(value, bool) and value and column in ("significant", "reject"):
                roles = ("sig",)
            row.append(TableCell(fmt_auto(column, value), roles))
        table.rows.append(row)
        table.numeric.append({c: record.get(c) for c in ordered})
    return table
