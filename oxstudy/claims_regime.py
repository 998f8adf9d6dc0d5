"""Data-regime and model-task-alignment claims for ``oxstudy verify``, and the tables they need.

Kinds (fields and verdict rules in docs/analysis.md, "Data regimes and alignment"):

- ``plateau``: the gain of ``algorithm`` over ``reference`` shrinks as difficulty level rises;
- ``matches_with_fewer_steps``: ``candidate`` is non-inferior to ``full`` within ``margin`` while
  taking at most ``fraction`` of its optimizer steps;
- ``transfer``: the arm trained on dataset A (``a``) beats the arm trained on B (``b``) on ``benchmark``;
- ``depends_on_alignment``: the effect of ``shortcut`` vs ``standard`` grows with the base model's
  pass@k (the shortcut x alignment interaction).

Table glue (pure pandas): per-run steps come from the run records (``train.steps``) or a ``steps``
column; item levels from an items ``level`` column or, for bundled tasks, the task's test split;
alignment arms named ``ARM@BENCHMARK`` are runs trained for that benchmark and evaluated on it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import Field

from oxstudy.claims import INCONCLUSIVE, REFUTED, SUPPORTED, _Claim, _fmt
from oxstudy.errors import InputError


class PlateauClaim(_Claim):
    """The gain of ``algorithm`` over ``reference`` falls with difficulty level on ``benchmark``."""

    kind: Literal["plateau"]
    algorithm: str
    reference: str = Field(description="An algorithm id (paired by seed), the comparison arm for the gain.")
    model: str
    benchmark: str


class FewerStepsClaim(_Claim):
    """``candidate`` matches ``full`` (non-inferior within ``margin``) with at most ``fraction`` of its steps."""

    kind: Literal["matches_with_fewer_steps"]
    candidate: str
    full: str
    model: str
    benchmark: str
    fraction: float = Field(gt=0, le=1, description="Claimed share of the full arm's steps, e.g. 0.45.")
    margin: float = Field(0.02, ge=0, lt=1, description="Non-inferiority margin in accuracy (0-1 scale).")
    level: int | None = Field(None, description="Restrict to items of this difficulty level.")


class TransferClaim(_Claim):
    """The arm trained on dataset A (``a``) beats the arm trained on B (``b``) on ``benchmark``."""

    kind: Literal["transfer"]
    a: str
    b: str
    model: str
    benchmark: str
    at_least: float = Field(0.0, ge=0, description="Claimed minimum difference (accuracy, 0-1 scale).")
    significant: bool = Field(False, description="The Welch interval must exclude 0.")


class AlignmentClaim(_Claim):
    """The shortcut's effect vs standard RL increases with base pass@k (it fails where alignment is weak)."""

    kind: Literal["depends_on_alignment"]
    shortcut: str
    standard: str
    alignment: str | list[dict[str, Any]] = Field(
        description="Base pass@k per (model, benchmark): a CSV/JSON file (relative to the claims file) or a list "
        "of {model, benchmark, pass_at_k[, k]}."
    )
    k: int | None = Field(None, description="Which k, when the alignment table has several.")
    alpha: float = Field(0.05, gt=0, lt=1)


REGIME_CLAIM_KINDS: dict[str, type[_Claim]] = {
    "plateau": PlateauClaim,
    "matches_with_fewer_steps": FewerStepsClaim,
    "transfer": TransferClaim,
    "depends_on_alignment": AlignmentClaim,
}


# ----------------------------------------------------------------------------- tables


def _records_by_run(table: pd.DataFrame) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    if "_where" not in table.columns or "run_id" not in table.columns:
        return out
    for run_id, where in table[["run_id", "_where"]].drop_duplicates().itertuples(index=False):
        try:
            out[run_id] = json.loads(Path(where).read_text())
        except (OSError, ValueError, TypeError):
            continue
    return out


def runs_with_steps(table: pd.DataFrame) -> pd.DataFrame:
    """The runs table with a ``steps`` column (optimizer steps actually taken) where known."""
    if "steps" in table.columns:
        return table
    records = _records_by_run(table)
    frame = table.copy()
    frame["steps"] = [
        ((records.get(r) or {}).get("train") or {}).get("steps") for r in frame.get("run_id", [])
    ]
    return frame


def eval_curves(table: pd.DataFrame) -> pd.DataFrame:
    """Accuracy during training (``measure.eval_every``) as ``model, algorithm, seed, benchmark,
    step, accuracy``: each run's recorded evaluations plus its final one at the steps it took.
    Empty when no run recorded evaluations during training."""
    columns = ["model", "algorithm", "seed", "benchmark", "step", "accuracy"]
    records = _records_by_run(table)
    frame = runs_with_steps(table)
    rows = []
    for run in frame.itertuples(index=False):
        train = (records.get(getattr(run, "run_id", None)) or {}).get("train") or {}
        points = [p for p in train.get("eval_curve") or [] if p.get("benchmark") == run.benchmark]
        if not points:
            continue
        key = {"model": run.model, "algorithm": run.algorithm, "seed": run.seed, "benchmark": run.benchmark}
        rows += [{**key, "step": p["step"], "accuracy": p["value"]} for p in points if p.get("value") is not None]
        if run.steps is not None and run.value is not None:
            rows.append({**key, "step": run.steps, "accuracy": run.value})
    return pd.DataFrame(rows, columns=columns)


def items_with_levels(items: pd.DataFrame | None, runs: pd.DataFrame) -> pd.DataFrame:
    """Per-item outcomes with a ``level`` column: the items' own (recorded at evaluation), else,
    for items without one (records written before items carried levels), the bundled task's
    item level."""
    if items is None or items.empty:
        return pd.DataFrame(columns=["model", "algorithm", "seed", "benchmark", "level", "score"])
    if "level" in items.columns and items["level"].notna().all():
        return items
    from oxstudy.dataselect import record_level
    from oxstudy.tasks import TASKS, task_split

    frame = items.copy()
    tasks = {}
    if "task" in runs.columns:
        tasks = dict(runs[["benchmark", "task"]].dropna().drop_duplicates().itertuples(index=False))
    levels: dict[str, list[Any]] = {}
    for benchmark in frame["benchmark"].unique():
        task = tasks.get(benchmark, benchmark)
        if task in TASKS:
            levels[benchmark] = [record_level(r) for r in task_split(task, "test")]
    own = frame["level"] if "level" in frame.columns else pd.Series(None, index=frame.index, dtype=object)
    frame["level"] = [
        mine
        if pd.notna(mine)
        else (levels[b][int(d)] if b in levels and pd.notna(d) and int(d) < len(levels[b]) else None)
        for mine, b, d in zip(own, frame["benchmark"], frame["doc_id"], strict=True)
    ]
    return frame


def split_arm(algorithm: str) -> tuple[str, str | None]:
    """``GRPO@arith`` -> (``GRPO``, ``arith``); a plain id -> (id, None)."""
    arm, _, benchmark = algorithm.partition("@")
    return arm, (benchmark or None)


def alignment_runs(table: pd.DataFrame) -> pd.DataFrame:
    """Runs as ``model, task, algorithm (arm), seed, value``: ``ARM@BENCH`` rows only on BENCH,
    plain arms on every benchmark (task = benchmark)."""
    rows = []
    for r in table.itertuples(index=False):
        arm, home = split_arm(str(r.algorithm))
        if home is not None and home != r.benchmark:
            continue
        rows.append(
            {"model": r.model, "task": r.benchmark, "algorithm": arm, "seed": r.seed, "value": r.value}
        )
    return pd.DataFrame(rows, columns=["model", "task", "algorithm", "seed", "value"])


def load_alignment(value: str | list[dict[str, Any]], base_dir: Path, k: int | None = None) -> pd.DataFrame:
    """Base pass@k as ``model, task, pass_at_k`` from a file (CSV / JSON list) or inline rows."""
    if isinstance(value, str):
        path = Path(value) if Path(value).is_absolute() else base_dir / value
        if not path.exists():
            raise InputError(f"{path}: base pass@k file not found")
        frame = pd.read_csv(path) if path.suffix == ".csv" else pd.DataFrame(json.loads(path.read_text()))
    else:
        frame = pd.DataFrame(value)
    frame = frame.rename(columns={"benchmark": "task"})
    missing = {"model", "task", "pass_at_k"} - set(frame.columns)
    if missing:
        raise InputError(f"base pass@k table: missing column(s) {', '.join(sorted(missing))}")
    if "k" in frame.columns:
        chosen = k if k is not None else int(frame["k"].max())
        frame = frame[frame["k"] == chosen]
    return frame[["model", "task", "pass_at_k"]]


# ----------------------------------------------------------------------------- verdicts


def _values(
    table: pd.DataFrame, model: str, benchmark: str, algorithm: str, metric: str | None
) -> pd.DataFrame:
    rows = table[
        (table["model"] == model) & (table["benchmark"] == benchmark) & (table["algorithm"] == algorithm)
    ]
    if metric is not None and "metric" in rows.columns:
        rows = rows[rows["metric"] == metric]
    return rows


def _runs_only(verifier: Any, i: int) -> pd.DataFrame:
    if verifier.results.kind != "runs":
        raise InputError(
            f"{verifier.loaded.where(i)}: claims[{i}]: this claim kind needs per-run results "
            "(a study directory or a long table), not summary statistics"
        )
    return verifier.results.table


def check_plateau(verifier: Any, i: int, c: PlateauClaim):
    from oxstudy.stats.difficulty import level_gains, plateau_test

    table = _runs_only(verifier, i)
    items = items_with_levels(verifier.results.items, table)
    items = items[(items["model"] == c.model) & (items["benchmark"] == c.benchmark)].dropna(subset=["level"])
    if items.empty:
        return INCONCLUSIVE, f"no per-item outcomes with difficulty levels at {c.model}/{c.benchmark}", {}
    result = plateau_test(level_gains(items, c.algorithm, c.reference))
    numbers = {k: result[k] for k in ("slope", "ci_low", "ci_high", "p_value", "n_seeds")}
    desc = (
        f"gain of {c.algorithm} over {c.reference} changes by {_fmt(result['slope'])} per level "
        f"(95% CI {_fmt(result['ci_low'])} to {_fmt(result['ci_high'])}, {result['n_seeds']} seeds)"
    )
    if result["slope"] is None:
        return INCONCLUSIVE, result["note"] or "no slope", numbers
    if result["plateau"]:
        return SUPPORTED, desc, numbers
    if result["slope"] >= 0:
        return REFUTED, desc + ": the gain does not shrink", numbers
    return INCONCLUSIVE, desc + ": the interval includes 0", numbers


def check_fewer_steps(verifier: Any, i: int, c: FewerStepsClaim):
    from oxstudy.stats.difficulty import matches_with_fewer_steps

    table = runs_with_steps(_runs_only(verifier, i))
    frame = pd.concat([_values(table, c.model, c.benchmark, a, c.metric) for a in (c.candidate, c.full)])
    if c.level is not None:
        items = items_with_levels(verifier.results.items, table)
        items = items[
            (items["model"] == c.model) & (items["benchmark"] == c.benchmark) & (items["level"] == c.level)
        ]
        per_run = (
            items.groupby(["algorithm", "seed"], as_index=False)["score"]
            .mean()
            .rename(columns={"score": "value"})
        )
        frame = per_run.merge(frame[["algorithm", "seed", "steps"]], on=["algorithm", "seed"])
    if frame.empty or frame["steps"].isna().all():
        return INCONCLUSIVE, f"no steps recorded for {c.candidate} / {c.full} at {c.model}/{c.benchmark}", {}
    result = matches_with_fewer_steps(frame, c.candidate, c.full, c.margin)
    numbers = {
        k: result[k]
        for k in ("difference", "ci_low", "ci_high", "fraction", "steps_candidate", "steps_full", "margin")
    }
    desc = (
        f"{c.candidate} - {c.full} = {_fmt(result['difference'])} (95% CI {_fmt(result['ci_low'])} to "
        f"{_fmt(result['ci_high'])}, margin {c.margin:g}) at {_fmt(result['fraction'])} of the steps"
    )
    if result["fraction"] is not None and result["fraction"] > c.fraction + 1e-9:
        return REFUTED, desc + f": more than the claimed {c.fraction:g}", numbers
    if result["non_inferior"]:
        return SUPPORTED, desc, numbers
    if result["ci_high"] is not None and result["ci_high"] < -c.margin:
        return REFUTED, desc + ": worse by more than the margin", numbers
    return INCONCLUSIVE, desc + ": non-inferiority not shown", numbers


def check_transfer(verifier: Any, i: int, c: TransferClaim):
    from oxstudy.stats.transfer import welch_difference

    table = _runs_only(verifier, i)
    a = _values(table, c.model, c.benchmark, c.a, c.metric)["value"].to_numpy()
    b = _values(table, c.model, c.benchmark, c.b, c.metric)["value"].to_numpy()
    if not a.size or not b.size:
        return INCONCLUSIVE, f"{c.a} or {c.b} has no results at {c.model}/{c.benchmark}", {}
    result = welch_difference(a, b)
    numbers = {k: result[k] for k in ("difference", "ci_low", "ci_high", "p_value")}
    desc = (
        f"{c.a} - {c.b} on {c.benchmark} = {_fmt(result['difference'])} (95% CI {_fmt(result['ci_low'])} to "
        f"{_fmt(result['ci_high'])})"
    )
    if result["difference"] < c.at_least:
        significant_opposite = result["ci_high"] is not None and result["ci_high"] < c.at_least
        return (
            (REFUTED if significant_opposite or result["difference"] <= 0 else INCONCLUSIVE),
            desc + f": below the claimed {c.at_least:g}",
            numbers,
        )
    if c.significant and (result["ci_low"] is None or result["ci_low"] <= 0):
        return INCONCLUSIVE, desc + ": the interval includes 0", numbers
    return SUPPORTED, desc, numbers


def check_alignment(verifier: Any, i: int, c: AlignmentClaim):
    from oxstudy.stats.alignment import interaction_test

    table = _runs_only(verifier, i)
    alignment = load_alignment(c.alignment, verifier.loaded.path.parent, c.k)
    runs = alignment_runs(table if c.metric is None else table[table["metric"] == c.metric])
    result = interaction_test(runs, alignment, c.standard, c.shortcut)
    numbers = {
        k: result[k] for k in ("gamma", "ci_low", "ci_high", "p_value", "df", "beta", "n_runs", "n_cells")
    }
    if result["gamma"] is None or result["p_value"] is None:
        return INCONCLUSIVE, result["note"] or "the interaction cannot be estimated", numbers
    desc = (
        f"{c.shortcut} - {c.standard} changes by {_fmt(result['gamma'])} per unit base pass@k (95% CI "
        f"{_fmt(result['ci_low'])} to {_fmt(result['ci_high'])}, p={_fmt(result['p_value'])}, "
        f"{result['n_cells']} model-task cells; inference over seeds for these cells)"
    )
    if result["gamma"] > 0 and result["p_value"] < c.alpha:
        return SUPPORTED, desc, numbers
    if result["gamma"] < 0 and result["p_value"] < c.alpha:
        return REFUTED, desc + ": the shortcut does better where alignment is weak", numbers
    return INCONCLUSIVE, desc + ": no significant interaction", numbers


CHECKS = {
    "plateau": check_plateau,
    "matches_with_fewer_steps": check_fewer_steps,
    "transfer": check_transfer,
    "depends_on_alignment": check_alignment,
}


def check(verifier: Any, i: int, claim: _Claim):
    """(verdict, message, numbers) of a data-regime claim."""
    if claim.kind != "plateau":  # plateau reads per-item outcomes, the others one metric's values
        verifier.check_metric(i, claim)
    return CHECKS[claim.kind](verifier, i, claim)
