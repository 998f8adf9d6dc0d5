"""Load the inputs of ``oxstudy analyze`` / ``verify`` into one normalised table.

Accepted inputs (several paths of the same kind are concatenated):

* a **study directory** (``runs/*.json``, read with :func:`oxstudy.store.load_study`);
* a **long table** (``.csv``, ``.tsv``, ``.jsonl``, ``.json``, ``.parquet``): one row per run
  (x benchmark x metric) with ``model, algorithm, seed, benchmark, value``; optional
  ``metric``, ``params``, ``in_domain``, ``paradigm``, ``online``, ``loss_family`` and any
  factor columns;
* a **summary-statistics table**: ``model, algorithm, benchmark, mean, sd, n`` (sd is the
  sample sd unless an ``sd_ddof`` column says 0, in which case it is converted);
* **lm-eval output directories** (``results_*.json``, plus ``samples_*.jsonl`` for per-item
  outcomes), labelled by a mapping file (CSV/YAML/JSON with ``path, model, algorithm, seed``
  and optional ``params``) or, for a single directory, by ``--model/--algorithm/--seed``.

Every problem is one :class:`~oxstudy.errors.InputError` line naming file, row (the line
number for CSV/JSONL; ``row N`` for Parquet) and column.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from oxstudy.dataselect import record_level
from oxstudy.errors import InputError

TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl", ".json", ".parquet", ".pq")
LONG_REQUIRED = ("model", "algorithm", "seed", "benchmark", "value")
SUMMARY_REQUIRED = ("model", "algorithm", "benchmark", "mean", "sd", "n")
ITEM_REQUIRED = ("model", "algorithm", "seed", "benchmark", "score")


@dataclass
class Results:
    """A normalised analysis input.

    ``table``: runs (``kind="runs"``) or cells (``kind="summary"``), with a ``_where`` column
    giving each row's origin for error messages; ``items``: per-item outcomes or None;
    ``spec``: the study's spec dict when the input is a study directory.
    """

    table: pd.DataFrame
    kind: str
    source: str
    items: pd.DataFrame | None = None
    spec: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# tables


def jsonl_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line of a JSONL file; located errors otherwise."""
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}:{lineno}: invalid JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise InputError(f"{path}:{lineno}: each line must be a JSON object")
        yield lineno, row


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV/TSV/JSONL/JSON/Parquet table and add ``_where`` (``FILE:LINE`` or ``FILE:row N``)."""
    path = Path(path)
    file = str(path)
    if not path.exists():
        raise InputError(f"{file}: file not found")
    suffix = path.suffix.lower()
    try:
        if suffix in (".csv", ".tsv"):
            frame = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", dtype_backend="numpy_nullable",
                                skip_blank_lines=True)
            where = [f"{file}:{i + 2}" for i in range(len(frame))]
        elif suffix == ".jsonl":
            rows, where = [], []
            for lineno, row in jsonl_rows(path):
                rows.append(row)
                where.append(f"{file}:{lineno}")
            frame = pd.DataFrame(rows)
        elif suffix == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(data, dict) and "rows" in data:
                data = data["rows"]
            if not isinstance(data, list):
                raise InputError(f"{file}: expected a JSON list of row objects (or {{\"rows\": [...]}})")
            frame = pd.DataFrame(data)
            where = [f"{file}:row {i + 1}" for i in range(len(frame))]
        elif suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
            where = [f"{file}:row {i + 1}" for i in range(len(frame))]
        else:
            raise InputError(f"{file}: unsupported table format {suffix or '(no suffix)'} "
                             f"(expected {', '.join(TABLE_SUFFIXES)})")
    except InputError:
        raise
    except json.JSONDecodeError as exc:
        raise InputError(f"{file}:{exc.lineno}: invalid JSON ({exc.msg})") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError, OSError) as exc:
        raise InputError(f"{file}: cannot read table ({str(exc).splitlines()[0]})") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    frame["_where"] = where
    return frame


def _require(frame: pd.DataFrame, columns: Sequence[str], file: str, what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        have = ", ".join(c for c in frame.columns if c != "_where") or "none"
        raise InputError(f"{file}: missing column(s) {', '.join(missing)} for a {what} (columns: {have})")


def shown(value: Any) -> str:
    """A value as a user reads it: ``inf``, ``3``, ``'abc'`` (never ``np.float64(inf)``)."""
    if isinstance(value, np.generic):
        value = value.item()
    return repr(value)


def _numeric(frame: pd.DataFrame, column: str, *, required: bool = True, integer: bool = False,
             minimum: float | None = None) -> pd.Series:
    """The column as float64; the first bad cell raises a located error (vectorised check)."""
    raw = frame[column]
    values = pd.to_numeric(raw, errors="coerce").astype("float64")
    arr = values.to_numpy()
    checks = [
        (raw.isna().to_numpy() if required else None, lambda i: "missing value"),
        (np.isnan(arr) & raw.notna().to_numpy(), lambda i: f"not a number: {shown(raw.iloc[i])}"),
        (np.isinf(arr), lambda i: f"not a finite number: {shown(raw.iloc[i])}"),
    ]
    finite = np.isfinite(arr)
    if integer:
        checks.append((finite & (arr != np.round(arr)), lambda i: f"not an integer: {shown(raw.iloc[i])}"))
    if minimum is not None:
        checks.append((finite & (arr < minimum), lambda i: f"must be >= {minimum:g}, got {shown(raw.iloc[i])}"))
    for mask, message in checks:
        if mask is not None and mask.any():
            i = int(mask.nonzero()[0][0])
            raise InputError(f"{frame['_where'].iloc[i]}: column {column}: {message(i)}")
    return values


def _labels(frame: pd.DataFrame, columns: Sequence[str]) -> None:
    for column in columns:
        missing = frame[column].isna() | (frame[column].astype(str).str.strip() == "")
        if missing.any():
            i = int(missing.to_numpy().nonzero()[0][0])
            raise InputError(f"{frame['_where'].iloc[i]}: column {column}: missing value")
        frame[column] = frame[column].astype(str).str.strip()


def normalise_long(frame: pd.DataFrame, file: str) -> pd.DataFrame:
    """Validate a long (one row per run) table; returns a copy with clean types."""
    _require(frame, LONG_REQUIRED, file, "long results table")
    out = frame.copy()
    _labels(out, ["model", "algorithm", "benchmark"])
    out["value"] = _numeric(out, "value")
    seeds = out["seed"]
    if seeds.isna().any():
        i = int(seeds.isna().to_numpy().nonzero()[0][0])
        raise InputError(f"{out['_where'].iloc[i]}: column seed: missing value")
    numeric_seeds = pd.to_numeric(seeds, errors="coerce")
    out["seed"] = numeric_seeds.astype("int64") if numeric_seeds.notna().all() and (numeric_seeds % 1 == 0).all() \
        else seeds.astype(str)
    if "metric" in out.columns:
        out["metric"] = out["metric"].where(out["metric"].notna(), "value").astype(str)
    if "params" in out.columns:
        out["params"] = _numeric(out, "params", required=False, minimum=0)
    keys = [c for c in ("model", "algorithm", "benchmark", "metric", "seed") if c in out.columns]
    repeated = out.duplicated(keys, keep="first").to_numpy()
    if repeated.any():  # named here, at the repeated row, with the row it repeats
        i = int(repeated.nonzero()[0][0])
        first = int((out[keys] == out[keys].iloc[i]).all(axis=1).to_numpy().nonzero()[0][0])
        labels = " ".join(f"{c}={out[c].iloc[i]}" for c in keys)
        raise InputError(f"{out['_where'].iloc[i]}: column seed: duplicate run for {labels} "
                         f"(first at {out['_where'].iloc[first]})")
    return out


def normalise_summary(frame: pd.DataFrame, file: str) -> pd.DataFrame:
    """Validate a summary-statistics table (mean, sd, n per cell); sd converted to ddof=1."""
    _require(frame, SUMMARY_REQUIRED, file, "summary-statistics table")
    out = frame.copy()
    _labels(out, ["model", "algorithm", "benchmark"])
    out["mean"] = _numeric(out, "mean")
    out["n"] = _numeric(out, "n", integer=True, minimum=1).astype("int64")
    single = out["n"] < 2
    out["sd"] = _numeric(out.assign(sd=out["sd"].where(~single | out["sd"].notna(), 0.0)), "sd", minimum=0)
    if "sd_ddof" in out.columns:
        ddof = _numeric(out, "sd_ddof", integer=True, minimum=0)
        bad = ~ddof.isin([0, 1])
        if bad.any():
            i = int(bad.to_numpy().nonzero()[0][0])
            raise InputError(f"{out['_where'].iloc[i]}: column sd_ddof: must be 0 or 1")
        population = (ddof == 0) & (out["n"] >= 2)
        # population sd -> sample sd: s = sigma * sqrt(n / (n - 1))
        out.loc[population, "sd"] = out.loc[population, "sd"] * (out.loc[population, "n"] /
                                                                 (out.loc[population, "n"] - 1)) ** 0.5
    if "metric" in out.columns:
        out["metric"] = out["metric"].where(out["metric"].notna(), "value").astype(str)
    if "params" in out.columns:
        out["params"] = _numeric(out, "params", required=False, minimum=0)
    return out


def table_kind(frame: pd.DataFrame) -> str:
    """``summary`` when the table has mean/sd/n and no value column, else ``runs``."""
    cols = set(frame.columns)
    return "summary" if {"mean", "sd", "n"} <= cols and "value" not in cols else "runs"


def load_items(path: str | Path) -> pd.DataFrame:
    """Per-item outcomes: ``model, algorithm, seed, benchmark, doc_id (or doc_hash), score``."""
    frame = read_table(path)
    file = str(path)
    _require(frame, ITEM_REQUIRED, file, "items table")
    if "doc_id" not in frame.columns and "doc_hash" not in frame.columns:
        raise InputError(f"{file}: missing column doc_id (or doc_hash) for an items table")
    _labels(frame, ["model", "algorithm", "benchmark"])
    frame["score"] = _numeric(frame, "score")
    numeric_seeds = pd.to_numeric(frame["seed"], errors="coerce")
    if numeric_seeds.notna().all() and (numeric_seeds % 1 == 0).all():
        frame["seed"] = numeric_seeds.astype("int64")
    return frame


# --------------------------------------------------------------------------------------------
# lm-eval output directories


def load_mapping(path: str | Path) -> list[dict[str, Any]]:
    """Rows ``{path, model, algorithm, seed[, params]}`` from a CSV/JSONL/JSON/YAML mapping file."""
    path = Path(path)
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputError(f"{path}: file not found") from None
        except yaml.YAMLError as exc:
            raise InputError(f"{path}: YAML error: {str(exc).splitlines()[0]}") from None
        if isinstance(data, dict):
            data = data.get("runs", data)
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise InputError(f"{path}: a mapping file lists runs: [{{path, model, algorithm, seed}}, ...]")
        frame = pd.DataFrame(data)
        frame["_where"] = [f"{path}:run {i + 1}" for i in range(len(frame))]
    else:
        frame = read_table(path)
    _require(frame, ("path", "model", "algorithm", "seed"), str(path), "mapping file")
    rows = frame.to_dict("records")
    for row in rows:
        run_path = Path(str(row["path"]))
        if not run_path.is_absolute():
            run_path = path.parent / run_path
        row["path"] = run_path
    return rows


def _lm_eval_results_files(directory: Path) -> list[Path]:
    return sorted(directory.rglob("results_*.json"))


def is_lm_eval_dir(directory: Path) -> bool:
    return directory.is_dir() and bool(_lm_eval_results_files(directory))


def load_lm_eval_dir(directory: str | Path, *, model: str, algorithm: str, seed: Any, params: float | None = None,
                     metric: str | None = None) -> tuple[list[dict], list[pd.DataFrame], list[str]]:
    """Rows (one per task x metric) and per-item frames from one lm-eval output directory.

    Metrics are the numeric keys of ``results[task]`` other than ``*_stderr*`` and ``alias``
    (``metric`` keeps only that one, e.g. ``exact_match,strict-match``). Per-item scores come
    from ``samples_<task>_*.jsonl``: the record's ``<metric name>`` field for the record's
    ``filter`` (``doc_id`` and ``doc_hash`` identify the item). When a task appears in several
    results files, the newest (by file name timestamp) wins, with a warning.
    """
    directory = Path(directory)
    files = _lm_eval_results_files(directory)
    if not files:
        raise InputError(f"{directory}: no results_*.json (not an lm-eval output directory)")
    warnings: list[str] = []
    per_task: dict[str, tuple[Path, dict]] = {}
    for file in files:
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise InputError(f"{file}:{exc.lineno}: invalid JSON ({exc.msg})") from None
        results = data.get("results")
        if not isinstance(results, dict):
            raise InputError(f"{file}: no 'results' object (not an lm-eval results file)")
        for task, values in results.items():
            if task in per_task:
                warnings.append(f"{directory}: task {task} appears in several results files; using {file.name}")
            per_task[task] = (file, {**values, "_n_shot": (data.get("n-shot") or {}).get(task),
                                     "_n": (data.get("n-samples") or {}).get(task, {}).get("effective")})
    rows: list[dict] = []
    item_frames: list[pd.DataFrame] = []
    for task, (file, values) in per_task.items():
        metrics = {k: v for k, v in values.items()
                   if not k.startswith("_") and k != "alias" and "_stderr" not in k
                   and isinstance(v, (int, float)) and not isinstance(v, bool)}
        if metric is not None:
            if metric not in metrics:
                continue
            metrics = {metric: metrics[metric]}
        for name, value in metrics.items():
            stderr = values.get(name.replace(",", "_stderr,", 1)) if "," in name else values.get(f"{name}_stderr")
            rows.append({"model": model, "algorithm": algorithm, "seed": seed, "params": params,
                         "benchmark": task, "metric": name, "value": float(value),
                         "stderr": stderr if isinstance(stderr, (int, float)) else None,
                         "num_fewshot": values.get("_n_shot"), "_where": f"{file}: results.{task}.{name}"})
        for samples in sorted(file.parent.glob(f"samples_{task}_*.jsonl")):
            records = list(jsonl_rows(samples))  # parsed once, then read for each metric
            for name in metrics:
                metric_name, _, filt = name.partition(",")
                doc_ids, hashes, scores, levels, where = [], [], [], [], []
                for lineno, rec in records:
                    if filt and rec.get("filter", filt) != filt:
                        continue
                    if metric_name not in rec:
                        continue
                    score = rec[metric_name]
                    if not isinstance(score, (int, float)):
                        raise InputError(f"{samples}:{lineno}: field {metric_name}: not a number: {score!r}")
                    doc_ids.append(rec.get("doc_id"))
                    hashes.append(rec.get("doc_hash"))
                    scores.append(float(score))
                    # the document's difficulty level (MATH's "Level 3" -> 3), as evaluation records it
                    levels.append(record_level(rec["doc"]) if isinstance(rec.get("doc"), dict) else None)
                    where.append(f"{samples}:{lineno}")
                if scores:
                    item_frames.append(pd.DataFrame({"model": model, "algorithm": algorithm, "seed": seed,
                                                     "benchmark": task, "metric": name, "doc_id": doc_ids,
                                                     "doc_hash": hashes, "score": scores, "level": levels,
                                                     "_where": where}))
            break  # newest samples file per task is enough (sorted: first match)
    if not rows:
        raise InputError(f"{directory}: no numeric metric{f' {metric!r}' if metric else ''} in the results files")
    return rows, item_frames, warnings


# --------------------------------------------------------------------------------------------
# entry point


def _is_study_dir(path: Path) -> bool:
    return path.is_dir() and ((path / "runs").is_dir() or (path / "plan.json").exists())


def load_results(paths: Sequence[str | Path], *, items: str | Path | None = None, mapping: str | Path | None = None,
                 model: str | None = None, algorithm: str | None = None, seed: Any = None,
                 params: float | None = None, metric: str | None = None) -> Results:
    """Load and normalise one or more inputs of the same kind (see the module docstring)."""
    if not paths and mapping is None:
        raise InputError("no results given: pass a study directory, a results table or lm-eval directories")
    paths = [Path(p) for p in paths]
    frames: list[pd.DataFrame] = []
    item_frames: list[pd.DataFrame] = []
    kinds: set[str] = set()
    spec = None
    warnings: list[str] = []
    lm_eval_runs: list[dict] = []
    if mapping is not None:
        lm_eval_runs.extend(load_mapping(mapping))
    for path in paths:
        if not path.exists():
            raise InputError(f"{path}: no such file or directory")
        if _is_study_dir(path):
            from oxstudy.store import load_study

            study = load_study(path)
            runs = study.runs
            if "status" in runs.columns:
                runs = runs[runs["status"].fillna("done") == "done"]
            if runs.empty:
                raise InputError(f"{path}: the study has no finished runs to analyse")
            runs = runs.copy()
            # A study in progress, or with failed cells, may hold arms with a single finished
            # seed. Tests need two: such arms are left out with a warning (unless every arm has
            # one seed: then the whole analysis is descriptive), so a partial study still reports.
            arm = ["model", "algorithm", "benchmark", "metric"]
            seeds = runs.groupby(arm, dropna=False)["seed"].transform("nunique")
            if (seeds < 2).any() and (seeds >= 2).any():
                lone = runs[seeds < 2][arm].drop_duplicates()
                names = ", ".join(f"{r.model}/{r.algorithm}/{r.benchmark}" for r in lone.itertuples())
                warnings.append(f"{path}: {len(lone)} arm(s) with a single finished seed left out of the "
                                f"statistics: {names}")
                runs = runs[seeds >= 2]
            runs["_where"] = [f"{path}/runs/{rid}.json" for rid in runs["run_id"]]
            frames.append(runs)
            if study.items is not None and not study.items.empty:
                study_items = study.items
                if "run_id" in study_items.columns:
                    study_items = study_items.assign(
                        _where=f"{path}/runs/" + study_items["run_id"].astype(str) + ".json: items."
                        + study_items["benchmark"].astype(str))
                item_frames.append(study_items)
            if len(study.failed):
                warnings.append(f"{path}: {len(study.failed)} failed run(s) left out")
            if study.corrupt:
                warnings.append(f"{path}: {len(study.corrupt)} corrupt record(s) left out: {', '.join(study.corrupt)}")
            if study.missing:
                warnings.append(f"{path}: partial study: {len(study.missing)} planned run(s) have no record yet")
            spec = spec or study.spec
            kinds.add("runs")
        elif path.is_dir():
            if not is_lm_eval_dir(path):
                raise InputError(f"{path}: neither a study directory (runs/) nor an lm-eval output directory "
                                 "(results_*.json)")
            mapped = [r for r in lm_eval_runs if Path(r["path"]).resolve() == path.resolve()]
            if mapped:
                continue  # labelled by the mapping file; loaded below
            if model is None or algorithm is None or seed is None:
                raise InputError(f"{path}: an lm-eval directory needs --model, --algorithm and --seed "
                                 "(or a --mapping file listing it)")
            lm_eval_runs.append({"path": path, "model": model, "algorithm": algorithm, "seed": seed,
                                 "params": params, "labelled_by_flags": True})
        else:
            frame = read_table(path)
            kind = table_kind(frame)
            frames.append(normalise_summary(frame, str(path)) if kind == "summary" else normalise_long(frame, str(path)))
            kinds.add(kind)
    for run in lm_eval_runs:
        run_params = run.get("params")
        run_params = None if run_params is None or (isinstance(run_params, float) and math.isnan(run_params)) \
            else float(run_params)
        rows, run_items, run_warnings = load_lm_eval_dir(run["path"], model=str(run["model"]),
                                                         algorithm=str(run["algorithm"]), seed=run["seed"],
                                                         params=run_params, metric=metric)
        frames.append(normalise_long(pd.DataFrame(rows), str(run["path"])))
        item_frames.extend(run_items)
        warnings.extend(run_warnings)
        kinds.add("runs")
    labels = [flag for flag, value in (("--model", model), ("--algorithm", algorithm), ("--seed", seed),
                                       ("--params", params)) if value is not None]
    if labels and not any(run.get("labelled_by_flags") for run in lm_eval_runs):
        # they label one lm-eval output directory; on a study or a table they would be silently ignored
        raise InputError(f"{labels[0]}: labels a single lm-eval output directory; "
                         f"{', '.join(str(p) for p in paths) or mapping} has its own labels")
    if len(kinds) > 1:
        raise InputError("cannot mix a summary-statistics table (mean, sd, n) with per-run results in one analysis")
    if not frames:
        raise InputError("no results found in the given inputs")
    table = pd.concat(frames, ignore_index=True)
    if metric is not None and "metric" in table.columns:
        table = table[table["metric"] == metric]
        if table.empty:
            raise InputError(f"no rows with metric {metric!r}")
    if items is not None:
        item_frames.append(load_items(items))
    item_table = pd.concat(item_frames, ignore_index=True) if item_frames else None
    source = ", ".join(str(p) for p in paths) or str(mapping)
    return Results(table=table, kind=kinds.pop(), source=source, items=item_table, spec=spec, warnings=warnings)
