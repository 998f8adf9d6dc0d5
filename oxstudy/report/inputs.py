"""Study metadata for the report: per-seed values, run counts, compute, provenance, curves.

These functions only collect what the study already holds (its records and tidy tables);
statistics come from ``oxstudy.stats.analyze``.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from oxstudy.report.build import ReportMeta

_SEED_COLUMNS = ("model", "algorithm", "seed", "benchmark", "metric", "value", "params")
_PROVENANCE_KEYS = ("oxstudy", "python", "torch", "transformers", "trl", "peft", "lm_eval", "git_commit",
                    "device", "host")


def seed_values(table: Any) -> list[dict[str, Any]]:
    """One record per run x benchmark from a long table (pandas DataFrame); empty for a
    summary-statistics table (no ``value`` column)."""
    if table is None or "value" not in getattr(table, "columns", ()) or "seed" not in table.columns:
        return []
    columns = [c for c in _SEED_COLUMNS if c in table.columns]
    frame = table[columns]
    out = []
    for row in frame.to_dict("records"):
        clean = {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
        for key in ("model", "algorithm", "benchmark"):
            clean[key] = str(clean[key])
        out.append(clean)
    return out


def meta_from_table(table: Any, *, study: str, source: str = "", input_kind: str = "") -> ReportMeta:
    """Metadata for a long or summary table: only names and per-seed values are known."""
    return ReportMeta(study=study, source=source, input_kind=input_kind, seed_values=seed_values(table))


def _distinct(values: list[Any]) -> dict[str, int]:
    counts = Counter(str(v) for v in values if v not in (None, ""))
    return dict(counts.most_common())


def provenance_summary(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Each provenance field with its distinct values and how many runs had each; a single
    value shows as itself."""
    out: dict[str, Any] = {}
    for key in _PROVENANCE_KEYS:
        values = _distinct([(r.get("provenance") or {}).get(key) for r in records])
        if not values:
            continue
        out[key] = next(iter(values)) if len(values) == 1 else values
    return out


def compute_summary(records: list[dict[str, Any]]) -> dict[str, float]:
    """Total seconds spent per phase over all records (done and failed)."""
    totals: dict[str, float] = {}
    for record in records:
        for key in ("total_s", "train_s", "eval_s", "data_s"):
            value = (record.get("timings") or {}).get(key)
            if isinstance(value, (int, float)):
                totals[key] = totals.get(key, 0.0) + float(value)
    return totals


def curves_from_records(records: list[dict[str, Any]], labels: dict[str, dict[str, Any]] | None = None
                        ) -> list[dict[str, Any]]:
    """Training curves of done runs as plot records (model, algorithm, seed, step, loss, ...)."""
    labels = labels or {}
    out = []
    for record in records:
        curves = record.get("curves") or {}
        if record.get("status") != "done" or not curves.get("step"):
            continue
        cell = record.get("cell") or {}
        label = labels.get(record.get("run_id"), {})
        out.append({
            "model": str(label.get("model", (cell.get("model") or {}).get("id"))),
            "algorithm": str(label.get("algorithm", (cell.get("algorithm") or {}).get("id"))),
            "seed": label.get("seed", cell.get("seed")),
            "step": curves.get("step"),
            **{k: curves.get(k) for k in ("loss", "reward", "kl") if curves.get(k)},
        })
    return out


def meta_from_study(tables: Any, *, source: str = "") -> tuple[ReportMeta, list[dict[str, Any]]]:
    """Metadata and training curves of a loaded study (``oxstudy.store.StudyTables``)."""
    spec = tables.spec or {}
    path = Path(tables.path) if getattr(tables, "path", None) else None
    study = spec.get("name") or (path.name if path else "study")
    records = list(getattr(tables, "records", []) or [])
    failed = tables.failed.to_dict("records") if tables.failed is not None and len(tables.failed) else []
    missing = list(getattr(tables, "missing", []) or [])
    done = len({r.get("run_id") for r in records if r.get("status") == "done"})
    labels = {}
    if tables.runs is not None and len(tables.runs):
        for row in tables.runs[["run_id", "model", "algorithm", "seed"]].drop_duplicates("run_id").to_dict("records"):
            labels[row["run_id"]] = row
    meta = ReportMeta(
        study=str(study),
        source=source or (str(path) if path else ""),
        description=str(spec.get("description") or ""),
        input_kind="study",
        spec=spec or None,
        planned_runs=done + len(failed) + len(missing),
        done_runs=done,
        failed=failed,
        missing=missing,
        compute=compute_summary(records),
        provenance=provenance_summary(records),
        seed_values=seed_values(tables.runs),
    )
    for path_text in getattr(tables, "corrupt", []) or []:
        meta.failed.append({"run_id": path_text, "reason": "corrupt record (left out)"})
    return meta, curves_from_records(records, labels)
