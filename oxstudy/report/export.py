"""Paper-ready exports of the analysis: Markdown, LaTeX (booktabs), CSV and JSON.

The main tables are the results table (mean ± sd per algorithm x model, one table per
benchmark, best per column in bold) and the comparisons table. CSV is tidy and numeric
(one row per cell / comparison) so it reads back with ``pandas.read_csv``; its text cells
are neutralised against spreadsheet formula injection (``neutralise_formula``); Markdown and
LaTeX are formatted for reading and pasting. ``json`` is the analysis dict itself.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from pathlib import Path
from typing import Any

from oxstudy.report.build import AnalysisView, ReportMeta, _main_table, comparison_table, records
from oxstudy.report.tables import Table

FORMATS = ("md", "tex", "csv", "json")

_CELL_COLUMNS = ["model", "algorithm", "benchmark", "n", "mean", "sd", "se", "ci_low", "ci_high"]
_COMPARISON_COLUMNS = ["model", "benchmark", "family", "a", "b", "diff", "ci_low", "ci_high", "test",
                       "p_value", "p_adjusted", "significant", "cohens_d", "hedges_g"]


def main_tables(analysis: dict[str, Any]) -> list[Table]:
    """Display tables: results per benchmark, then all comparisons (when present)."""
    view = AnalysisView(analysis, ReportMeta())
    tables = list(_main_table(view).tables)
    rows = view.comparisons
    if rows:
        tables.append(comparison_table("comparisons", "Comparisons", rows))
    return tables


def export_notes(analysis: dict[str, Any]) -> dict[str, Any]:
    """What the exported tables' numbers mean (the conventions the HTML report states) and the
    analysis' warnings: ``{"cells": str, "comparisons": str, "warnings": [str]}``."""
    conventions = analysis.get("conventions") or {}
    correction = conventions.get("correction") or "bonferroni"
    family = conventions.get("family") or "vs-baseline"
    baseline = conventions.get("baseline")
    cells = ("Mean ± sample sd over seeds; after it the 95% t-interval and n (seeds in the cell). "
             "Bold: the best mean in its column; – : no runs in that cell.")
    comparisons = (f"diff = a - b; 95% Welch t-interval. p: two-sided Welch t-test over seeds (the df of "
                   f"oxstudy's flag rule: welch, welch-hsu or welch-capped, per row); p adj: {correction} "
                   f"correction over each model x benchmark family ({family}"
                   + (f" against {baseline}" if baseline and family == "vs-baseline" else "")
                   + f"); significant: p adj <= {conventions.get('alpha', 0.05)}.")
    warnings = [str(w) if not isinstance(w, dict) else str(w.get("message", w)) for w in analysis.get("warnings") or []]
    return {"cells": cells, "comparisons": comparisons, "warnings": warnings}


def _note_of(table: Table, notes: dict[str, Any]) -> str:
    return notes["comparisons"] if table.name == "comparisons" else notes["cells"]


# --------------------------------------------------------------------------- Markdown


def _md_escape(text: str) -> str:
    """Markdown-escape a cell; ``<``/``>`` become entities so a name never renders as HTML."""
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("*", "\\*").replace("_", "\\_").replace(
        "\n", " ")


def to_markdown(tables: list[Table], notes: dict[str, Any] | None = None) -> str:
    """GitHub-flavoured Markdown tables; bold marks the best mean per column. With ``notes``
    (:func:`export_notes`), each table is followed by what its numbers mean, and the warnings
    come first."""
    out = []
    if notes and notes["warnings"]:
        out.append("**Warnings**\n")
        out.extend(f"- {_md_escape(w)}" for w in notes["warnings"])
        out.append("")
    for table in tables:
        out.append(f"### {_md_escape(table.caption)}\n")
        out.append("| " + " | ".join(_md_escape(c) for c in table.columns) + " |")
        out.append("|" + "|".join("---" if i == 0 else "---:" for i in range(len(table.columns))) + "|")
        for row in table.rows:
            cells = []
            for cell in row:
                text = _md_escape(cell.text)
                if cell.sub:
                    text += " " + _md_escape(cell.sub)
                cells.append(f"**{text}**" if "best" in cell.roles else text)
            out.append("| " + " | ".join(cells) + " |")
        out.append("")
        if notes:
            out.append(_md_escape(_note_of(table, notes)) + "\n")
    return "\n".join(out)


# --------------------------------------------------------------------------- LaTeX

_TEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    "<": r"\textless{}", ">": r"\textgreater{}",
}


def tex_escape(text: str) -> str:
    """Escape LaTeX's special characters in a user string."""
    out = "".join(_TEX_SPECIAL.get(ch, ch) for ch in text)
    return out.replace("±", r"$\pm$").replace("–", "--")


def to_latex(tables: list[Table], notes: dict[str, Any] | None = None) -> str:
    """booktabs tables (``\\toprule``/``\\midrule``/``\\bottomrule``), ready to paste;
    needs ``\\usepackage{booktabs}``. With ``notes`` (:func:`export_notes`), each table is
    followed by a footnote-size note of what its numbers mean, and the warnings are comments at
    the top (seen by the author, not printed in the paper)."""
    out = ["% generated by oxstudy report; requires \\usepackage{booktabs}"]
    if notes:
        out.extend(f"% warning: {' '.join(w.split())}" for w in notes["warnings"])
    for table in tables:
        spec = "l" + "r" * (len(table.columns) - 1)
        out.append("\\begin{table}[t]")
        out.append("\\centering")
        out.append(f"\\caption{{{tex_escape(table.caption)}}}")
        out.append(f"\\begin{{tabular}}{{{spec}}}")
        out.append("\\toprule")
        out.append(" & ".join(tex_escape(c) for c in table.columns) + " \\\\")
        out.append("\\midrule")
        for row in table.rows:
            cells = []
            for cell in row:
                text = tex_escape(cell.text)
                cells.append(f"\\textbf{{{text}}}" if "best" in cell.roles else text)
            out.append(" & ".join(cells) + " \\\\")
        out.append("\\bottomrule")
        out.append("\\end{tabular}")
        if notes:
            out.append(f"\\par\\smallskip{{\\footnotesize {tex_escape(_note_of(table, notes))}\\par}}")
        out.append("\\end{table}")
        out.append("")
    return "\n".join(out)


# --------------------------------------------------------------------------- CSV


#: A cell starting with one of these is a formula to Excel / LibreOffice / Google Sheets
#: (OWASP "CSV Injection": =, +, -, @, tab, carriage return).
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER_LITERAL = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def neutralise_formula(text: str) -> str:
    """A string cell made inert for spreadsheets, as OWASP recommends: one that starts with a
    formula trigger gets a leading single quote (shown as text, not evaluated). A string
    that is just a number literal ("-0.5") cannot run anything and is left as it is."""
    if text.startswith(FORMULA_TRIGGERS) and not _NUMBER_LITERAL.fullmatch(text):
        return "'" + text
    return text


def _plain(value: Any) -> Any:
    """A CSV cell: numbers stay numbers (a negative mean is -0.5, not '-0.5); every string
    (names come from users' specs and tables) is neutralised."""
    if isinstance(value, float) and not math.isfinite(value):
        return ""
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        value = json.dumps(value)
    if isinstance(value, str):
        return neutralise_formula(value)
    if hasattr(value, "item"):  # numpy scalars: written as the numbers they are
        return _plain(value.item())
    return value


def to_csv(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """Tidy CSV of records: the known columns first, then any others, one row per record."""
    present = [c for c in columns if any(c in r for r in rows)]
    extra = [k for r in rows for k in r if k not in present]
    header = present + list(dict.fromkeys(extra))
    buffer = io.StringIO()
    # Text fields quoted (OWASP's other half): a name holding a carriage return stays one
    # cell instead of starting a new row in a spreadsheet; numbers stay bare.
    writer = csv.writer(buffer, lineterminator="\n", quoting=csv.QUOTE_NONNUMERIC)
    writer.writerow([neutralise_formula(str(c)) for c in header])
    for row in rows:
        writer.writerow([_plain(row.get(c)) for c in header])
    return buffer.getvalue()


# --------------------------------------------------------------------------- entry point


def export_tables(analysis: dict[str, Any], fmt: str, path: str | Path) -> list[Path]:
    """Write the main tables in ``fmt`` next to ``path`` (its suffix replaced) and return the
    paths written. CSV writes two files, ``NAME.cells.csv`` and ``NAME.comparisons.csv``."""
    if fmt not in FORMATS:
        from oxstudy.errors import InputError

        raise InputError(f"--format: unknown format {fmt!r}; choose one of {', '.join(FORMATS)} or html")
    from oxstudy.outputs import is_special, write_output

    base = Path(path)
    stem = base.with_suffix("")

    def target(suffix: str) -> Path:  # a device the user named (/dev/stdout) is written as named
        return base if is_special(base) else Path(f"{stem}{suffix}")

    written: list[Path] = []
    if fmt == "json":
        text = json.dumps(_strict(analysis), indent=2, default=_json_default, allow_nan=False) + "\n"
        written.append(write_output(target(".json"), text))
    elif fmt == "md":
        written.append(write_output(target(".md"), to_markdown(main_tables(analysis), export_notes(analysis))))
    elif fmt == "tex":
        written.append(write_output(target(".tex"), to_latex(main_tables(analysis), export_notes(analysis))))
    else:
        cells = records(analysis.get("cells"))
        written.append(write_output(target(".cells.csv"), to_csv(cells, _CELL_COLUMNS)))
        comparisons = records(analysis.get("comparisons"))
        if comparisons:
            written.append(write_output(target(".comparisons.csv"), to_csv(comparisons, _COMPARISON_COLUMNS)))
    return written


def _strict(value: Any) -> Any:
    """``value`` with every NaN or infinite float replaced by None: strict JSON, as ``analyze --json``."""
    if isinstance(value, dict):
        return {k: _strict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_strict(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)
