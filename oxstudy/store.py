"""The results store: one atomic, checksummed JSON record per run.

Layout of a study directory::

    <study>/
      spec.yaml             the merged spec as last run (analysis defaults)
      plan.json             run_id -> model / algorithm / seed labels of the current plan
      runs/<run_id>.json    one record per finished run (done or failed)
      cells/<run_id>/       logs, curves and (optionally) checkpoints of a cell

Why plain files: many machines may write into one shared filesystem at once (SLURM
arrays, Ray workers). Each record is written to a unique temporary name, fsynced and
renamed into place, which is atomic on POSIX filesystems including NFS, so a reader
never sees half a record and no lock is needed between writers of different runs.
SQLite on NFS is not safe, so it is not used.

Every record carries ``checksum = sha256(canonical JSON of the record without it)``.
A record that fails to parse or to match its checksum is reported and treated as
missing: the runner runs that cell again, and the new record replaces it.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import os
import platform
import socket
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from oxstudy.errors import InputError, OxstudyError

RECORD_SCHEMA = "oxstudy.record/1"
RUN_COLUMNS = [
    "run_id", "study", "model", "params", "family", "finetune", "algorithm", "method", "seed",
    "benchmark", "task", "metric", "value", "stderr", "n_items", "in_domain", "status",
]  # fmt: skip
#: ``level``: the item's difficulty level as evaluated (None for tasks without levels and for
#: records written before items carried one).
ITEM_COLUMNS = ["run_id", "model", "algorithm", "seed", "benchmark", "doc_id", "doc_hash", "score", "level"]
FAILED_COLUMNS = ["run_id", "model", "algorithm", "seed", "reason"]


class CorruptRecord(Exception):
    """A record that cannot be trusted (truncated, edited, checksum mismatch, an unsupported
    schema, or a field of the wrong shape: see :func:`record_problem`)."""


def record_checksum(record: dict[str, Any]) -> str:
    body = {k: v for k, v in record.items() if k != "checksum"}
    payload = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=True)
    return "sha256:" + hashlib.sha256(payload.encode()).hexdigest()


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _shown(value: Any, limit: int = 60) -> str:
    """``repr`` of a bad value, cut to ``limit`` characters (a record field may hold a long list)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _metric_problem(where: str, result: Any, *, value_required: bool) -> str | None:
    """What is wrong with one benchmark's result ``{"value", "stderr", "n", ...}``, or None."""
    if not isinstance(result, dict):
        return f"{where}: not an object ({type(result).__name__})"
    value = result.get("value")
    if not (_is_finite_number(value) or (value is None and not value_required)):
        return f"{where}.value: {_shown(value)} is not a finite number"
    stderr = result.get("stderr")
    if stderr is not None and not _is_finite_number(stderr):
        return f"{where}.stderr: {_shown(stderr)} is not a finite number or null"
    n = result.get("n")
    if n is not None and not (_is_int(n) and n >= 0):
        return f"{where}.n: {_shown(n)} is not a count"
    for key in ("task", "metric"):
        if result.get(key) is not None and not isinstance(result[key], str):
            return f"{where}.{key}: {_shown(result[key])} is not a string"
    return None


def _items_problem(benchmark: str, items: Any) -> str | None:
    """What is wrong with one benchmark's per-item outcomes (parallel lists), or None."""
    where = f"items.{benchmark}"
    if items is None:
        return None
    if not isinstance(items, dict):
        return f"{where}: not an object ({type(items).__name__})"
    score = items.get("score")
    if not score:
        return None  # no per-item outcomes for this benchmark: nothing is read
    if not isinstance(score, list) or not all(_is_finite_number(s) for s in score):
        return f"{where}.score: not a list of finite numbers"
    for key in ("doc_id", "doc_hash", "level"):
        column = items.get(key)
        if column is None and key != "doc_id":
            continue
        if not isinstance(column, list) or len(column) != len(score):
            return f"{where}.{key}: not a list as long as items.{benchmark}.score ({len(score)})"
        if key == "doc_id" and not all(isinstance(d, (int, str)) and not isinstance(d, bool) for d in column):
            return f"{where}.doc_id: not a list of ids (integers or strings)"
    return None


def record_problem(record: dict[str, Any]) -> str | None:
    """The first field of a (checksum-valid) record whose shape the readers cannot trust, as
    ``field: what is wrong``, or None when the record is sound.

    The one place records are validated: every command reads them through
    :meth:`Store.read_record`, so analyze, report, verify, status and plan treat a malformed
    record alike (left out as corrupt, with this message). Checked: the schema, the status,
    the cell's model/algorithm ids and integer seed, ``params``, ``error``, and for done
    records every benchmark's metric (finite value), the base model's metrics and the
    per-item outcome lists the statistics read.
    """
    schema = record.get("schema")
    if schema != RECORD_SCHEMA:
        return f"schema: unsupported record schema {_shown(schema)} (this oxstudy reads {RECORD_SCHEMA})"
    if not isinstance(record.get("run_id"), str):
        return f"run_id: {_shown(record.get('run_id'))} is not a string"
    status = record.get("status")
    if status not in ("done", "failed"):
        return f"status: {_shown(status)} is neither 'done' nor 'failed'"
    cell = record.get("cell")
    if not isinstance(cell, dict):
        return f"cell: not an object ({type(cell).__name__})"
    for part in ("model", "algorithm"):
        entry = cell.get(part)
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str) or not entry["id"]:
            return f"cell.{part}: not an object with a string id"
    if not _is_int(cell.get("seed")):
        return f"cell.seed: missing or not an integer ({_shown(cell.get('seed'))})"
    model_params = cell["model"].get("params")
    for where, params in (("params", record.get("params")), ("cell.model.params", model_params)):
        if params is not None and not (_is_finite_number(params) and params > 0):
            return f"{where}: {_shown(params)} is not a positive number or null"
    error = record.get("error")
    if error is not None and not (isinstance(error, dict) and isinstance(error.get("reason", ""), str)):
        return "error: not an object with a string reason"
    if status != "done":
        return None
    base = record.get("base")
    if base is not None and not isinstance(base, dict):
        return f"base: not an object ({type(base).__name__})"
    # the trained model's metrics must all have a value; the base model's may lack one
    for where, metrics, value_required in (("metrics", record.get("metrics"), True),
                                           ("base.metrics", (base or {}).get("metrics"), False)):
        if metrics is not None and not isinstance(metrics, dict):
            return f"{where}: not an object ({type(metrics).__name__})"
        for benchmark, result in (metrics or {}).items():
            problem = _metric_problem(f"{where}.{benchmark}", result, value_required=value_required)
            if problem:
                return problem
    items = record.get("items")
    if items is not None and not isinstance(items, dict):
        return f"items: not an object ({type(items).__name__})"
    for benchmark, outcomes in (items or {}).items():
        problem = _items_problem(benchmark, outcomes)
        if problem:
            return problem
    return None


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - some filesystems refuse directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


class StoreWriteError(OxstudyError):
    """The store cannot be written (disk full, read-only, no permission): one line naming
    the cause and the path, e.g. ``No space left on device writing studies/x/plan.json``."""


#: errno values that mean "this filesystem will not take the write", not a bug in oxstudy
STORAGE_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT, errno.EFBIG}


def describe_os_error(exc: OSError, path: str | Path | None = None) -> str:
    """``<strerror> writing <path>`` for an OSError from a write (the path from the error if it has one)."""
    where = exc.filename if exc.filename is not None else path
    what = exc.strerror or type(exc).__name__
    return f"{what} writing {where}" if where is not None else what


def is_storage_error(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in STORAGE_ERRNOS


@contextlib.contextmanager
def store_errors(path: str | Path, doing: str = "") -> Iterator[None]:
    """Turn a failed write under ``path`` (disk full, read-only, ...) into a one-line ``StoreWriteError``."""
    try:
        yield
    except OSError as exc:
        if not is_storage_error(exc):
            raise
        context = f" ({doing})" if doing else ""
        raise StoreWriteError(describe_os_error(exc, path) + context) from None


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the whole new one.

    An ``OSError`` raised here always names ``path`` (a full disk reports ENOSPC from
    ``write`` or ``fsync``, where Python's error has no file name).
    """
    tmp = path.parent / f".{path.name}.{socket.gethostname()}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        if exc.filename is None or exc.filename == str(tmp):
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    _fsync_dir(path.parent)


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` (created if missing) for the ``with`` block; no lock where
    there is no ``fcntl`` (concurrent writers then may both compute the same result)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        try:
            import fcntl
        except ImportError:
            yield
            return
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        yield


def cached_json(path: Path, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """The JSON object in ``path``, computed by ``compute`` and written atomically when missing or
    unreadable (a truncated file after a full disk). Workers asking at once wait on a lock beside
    the file: the first computes, the others read its result."""
    with file_lock(path.with_name(path.name + ".lock")):
        if path.exists():
            try:
                return json.loads(path.read_text())
            except ValueError:
                pass
        value = compute()
        atomic_write_text(path, json.dumps(value))
        return value


def provenance(device: str | None = None) -> dict[str, Any]:
    """Versions, git commit, host and device of the process writing a record.

    Versions come from package metadata, so this never imports torch.
    """
    versions: dict[str, Any] = {}
    for key, dist in (
        ("oxstudy", "oxstudy"), ("torch", "torch"), ("transformers", "transformers"), ("trl", "trl"),
        ("peft", "peft"), ("lm_eval", "lm_eval"), ("accelerate", "accelerate"), ("datasets", "datasets"),
    ):  # fmt: skip
        try:
            versions[key] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[key] = None
    versions["python"] = platform.python_version()
    versions["git_commit"] = _git_commit()
    versions["host"] = socket.gethostname()
    versions["platform"] = platform.platform()
    versions["device"] = device
    return versions


def _git_commit() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = out.stdout.strip()
    if out.returncode != 0 or not commit:
        return None
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"], cwd=here, capture_output=True, text=True, check=False
    ).stdout.strip()
    return commit + ("-dirty" if dirty else "")


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class StudyTables:
    """A loaded study: tidy tables for the statistics engine."""

    runs: pd.DataFrame
    items: pd.DataFrame
    failed: pd.DataFrame
    spec: dict[str, Any] | None = None
    corrupt: list[str] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)
    missing: list[dict[str, Any]] = field(default_factory=list)
    path: Path | None = None


class Store:
    """The records of one study directory."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.runs_dir = self.root / "runs"
        self.cells_dir = self.root / "cells"

    def layout_problem(self) -> str | None:
        """Why this path cannot hold a study's files (checked before any cell trains), or None."""
        if self.root.exists() and not self.root.is_dir():
            return f"{self.root} is a file; a results store is a study directory"
        above = next((p for p in self.root.parents if p.exists()), None)  # the study directory's future parent
        if not self.root.exists() and above is not None and not above.is_dir():
            return f"{above} is a file; the results store {self.root} cannot be created under it"
        for path, holds in ((self.runs_dir, "its records in runs/"), (self.cells_dir, "its cells' outputs in cells/")):
            if path.exists() and not path.is_dir():
                return f"{path}: not a directory (a study keeps {holds})"
        for name in ("plan.json", "spec.yaml"):
            if (self.root / name).is_dir():
                return f"{self.root / name}: a directory where the study's {name} file belongs; remove it (`oxstudy run SPEC` then writes it)"
        return None

    # ------------------------------------------------------------------ writing
    def record_path(self, run_id: str) -> Path:
        return self.runs_dir / f"{run_id}.json"

    def cell_dir(self, run_id: str) -> Path:
        return self.cells_dir / run_id

    def write_record(self, record: dict[str, Any]) -> Path:
        """Add schema and checksum, then write atomically. Returns the record's path."""
        if "run_id" not in record:
            raise ValueError("a record needs a run_id")
        record = {"schema": RECORD_SCHEMA, **{k: v for k, v in record.items() if k != "checksum"}}
        record["checksum"] = record_checksum(record)
        text = json.dumps(record, sort_keys=True, indent=1, ensure_ascii=True, allow_nan=True)
        path = self.record_path(record["run_id"])
        self._keep_corrupt(path)
        atomic_write_text(path, text)
        return path

    def _keep_corrupt(self, path: Path) -> None:
        """A corrupt record about to be replaced by a re-run is kept beside it as
        ``<run_id>.json.corrupt-<UTC time>`` (no reader globs it): it may be a truncated write, or a
        record of a newer oxstudy this one cannot read, and is never silently destroyed."""
        if not path.exists():
            return
        try:
            self.read_record(path)
        except CorruptRecord:
            stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
            with contextlib.suppress(OSError):
                os.replace(path, path.with_name(f"{path.name}.corrupt-{stamp}"))

    def save_plan(self, spec_data: dict[str, Any], cells: list[dict[str, Any]]) -> None:
        """Save the merged spec (for analysis defaults) and the plan's labels (for loading)."""
        import yaml

        spec_data = {k: v for k, v in spec_data.items() if k != "extends"}
        atomic_write_text(self.root / "spec.yaml", yaml.safe_dump(spec_data, sort_keys=False))
        atomic_write_text(self.root / "plan.json", json.dumps({"cells": cells}, indent=1))

    # ------------------------------------------------------------------ reading
    @staticmethod
    def read_record(path: Path) -> dict[str, Any]:
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CorruptRecord(f"{path}: unreadable record ({exc.__class__.__name__})") from None
        if not isinstance(record, dict) or "checksum" not in record or "run_id" not in record:
            raise CorruptRecord(f"{path}: not an oxstudy record (no run_id/checksum)")
        if record_checksum(record) != record["checksum"]:
            raise CorruptRecord(f"{path}: checksum mismatch (the record was truncated or edited)")
        if record["run_id"] != path.stem:
            raise CorruptRecord(f"{path}: record is for run {record['run_id']}, not {path.stem}")
        problem = record_problem(record)
        if problem:
            raise CorruptRecord(f"{path}: malformed record: {problem}")
        return record

    def record_paths(self) -> list[Path]:
        if not self.runs_dir.exists():
            return []
        return sorted(p for p in self.runs_dir.glob("*.json") if not p.name.startswith("."))

    def iter_records(self) -> Iterator[tuple[Path, dict[str, Any] | None, str | None]]:
        """(path, record, None) for good records and (path, None, reason) for corrupt ones."""
        for path in self.record_paths():
            try:
                yield path, self.read_record(path), None
            except CorruptRecord as exc:
                yield path, None, str(exc)

    def statuses(self) -> tuple[dict[str, str], list[str]]:
        """run_id -> 'done' | 'failed' for trustworthy records, and the corrupt ones' messages."""
        statuses: dict[str, str] = {}
        corrupt: list[str] = []
        for path, record, problem in self.iter_records():
            if record is None:
                corrupt.append(problem or str(path))
            else:
                statuses[record["run_id"]] = record.get("status", "failed")
        return statuses, corrupt

    def clean_partial(self) -> list[Path]:
        """Remove temporary files left by writers that were killed mid-write."""
        removed = []
        if self.runs_dir.exists():
            for tmp in self.runs_dir.glob(".*.tmp"):
                try:
                    tmp.unlink()
                    removed.append(tmp)
                except FileNotFoundError:  # another process cleaned it
                    pass
        return removed


# ---------------------------------------------------------------------- tidy tables
def _labels_from_plan(root: Path) -> dict[str, dict[str, Any]]:
    """run_id -> current labels, from the study's saved plan (renames apply to old records)."""
    plan_file = root / "plan.json"
    if not plan_file.exists():
        return {}
    try:
        cells = json.loads(plan_file.read_text())["cells"]
        return {c["run_id"]: {"model": c["model"], "algorithm": c["algorithm"], "seed": c["seed"]} for c in cells}
    except (OSError, ValueError, KeyError, TypeError) as exc:  # truncated or edited: labels would silently go
        raise InputError(f"{plan_file}: unreadable plan ({exc.__class__.__name__}: {exc}); `oxstudy run SPEC` "
                         "rewrites it") from None


def record_rows(record: dict[str, Any], labels: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The tidy rows (one per benchmark x metric) of one done record."""
    cell = record.get("cell", {})
    model = cell.get("model", {})
    algorithm = cell.get("algorithm", {})
    labels = labels or {}
    base = {
        "run_id": record["run_id"],
        "study": record.get("study", cell.get("study")),
        "model": labels.get("model", model.get("id")),
        "params": record.get("params") or model.get("params"),
        "family": model.get("family"),
        "finetune": model.get("finetune"),
        "algorithm": labels.get("algorithm", algorithm.get("id")),
        "method": algorithm.get("method"),
        "seed": cell.get("seed"),
        "status": record.get("status"),
    }
    rows = []
    for benchmark, result in (record.get("metrics") or {}).items():
        rows.append(
            {
                **base,
                "benchmark": benchmark,
                "task": result.get("task"),
                "metric": result.get("metric"),
                "value": result.get("value"),
                "stderr": result.get("stderr"),
                "n_items": result.get("n"),
                "in_domain": result.get("in_domain"),
            }
        )
    return rows


def load_study(path: str | Path, *, with_items: bool = True) -> StudyTables:
    """Load a study directory into tidy tables (see ``RUN_COLUMNS`` / ``ITEM_COLUMNS``).

    Corrupt records are listed in ``.corrupt`` and left out; failed runs go to ``.failed``.
    When the study's plan is saved, labels come from it (so renaming an algorithm in the
    spec relabels old records) and ``.missing`` lists cells that have no record yet.
    """
    root = Path(path)
    store = Store(root)
    if not root.is_dir():
        raise InputError(f"{root}: not a study directory")
    if not store.runs_dir.is_dir() and not (root / "plan.json").exists():
        raise InputError(f"{root}: not a study directory (no runs/ and no plan.json)")
    if store.runs_dir.exists() and not store.runs_dir.is_dir():
        raise InputError(f"{store.runs_dir}: not a directory (a study keeps its records in runs/)")
    labels = _labels_from_plan(root)
    run_rows: list[dict[str, Any]] = []
    item_frames: list[pd.DataFrame] = []
    failed_rows: list[dict[str, Any]] = []
    corrupt: list[str] = []
    records: list[dict[str, Any]] = []
    for record_path, record, problem in store.iter_records():
        if record is None:
            corrupt.append(problem or str(record_path))
            continue
        records.append(record)
        run_labels = labels.get(record["run_id"], {})
        if record.get("status") != "done":
            cell = record.get("cell", {})
            failed_rows.append(
                {
                    "run_id": record["run_id"],
                    "model": run_labels.get("model", cell.get("model", {}).get("id")),
                    "algorithm": run_labels.get("algorithm", cell.get("algorithm", {}).get("id")),
                    "seed": cell.get("seed"),
                    "reason": (record.get("error") or {}).get("reason", "unknown"),
                }
            )
            continue
        rows = record_rows(record, run_labels)
        run_rows.extend(rows)
        if with_items and rows:
            head = rows[0]
            for benchmark, items in (record.get("items") or {}).items():
                if not items or not items.get("score"):
                    continue
                frame = pd.DataFrame(
                    {
                        "doc_id": items.get("doc_id"),
                        "doc_hash": items.get("doc_hash"),
                        "score": items.get("score"),
                        "level": items.get("level") or [None] * len(items["score"]),
                    }
                )
                frame.insert(0, "benchmark", benchmark)
                for column in ("seed", "algorithm", "model", "run_id"):
                    frame.insert(0, column, head[column])
                item_frames.append(frame)
    runs = pd.DataFrame(run_rows, columns=RUN_COLUMNS)
    items = pd.concat(item_frames, ignore_index=True) if item_frames else pd.DataFrame(columns=ITEM_COLUMNS)
    failed = pd.DataFrame(failed_rows, columns=FAILED_COLUMNS)
    spec_dict = None
    missing: list[dict[str, Any]] = []
    spec_file = root / "spec.yaml"
    if spec_file.exists():
        import yaml

        try:
            spec_dict = yaml.safe_load(spec_file.read_text())
        except yaml.YAMLError as exc:  # the analysis defaults (baseline, correction) would silently go
            mark = getattr(exc, "problem_mark", None)
            where = f"{spec_file}:{mark.line + 1}" if mark is not None else str(spec_file)
            raise InputError(f"{where}: the study's saved spec is not valid YAML "
                             f"({getattr(exc, 'problem', None) or exc}); `oxstudy run SPEC` rewrites it") from None
        if spec_dict is not None and not isinstance(spec_dict, dict):
            raise InputError(f"{spec_file}: not a spec (a mapping); `oxstudy run SPEC` rewrites it")
    if labels:
        have = {r["run_id"] for r in records}
        missing = [{"run_id": rid, **lab} for rid, lab in labels.items() if rid not in have]
    return StudyTables(
        runs=runs, items=items, failed=failed, spec=spec_dict, corrupt=corrupt, records=records,
        missing=missing, path=root,
    )  # fmt: skip
