"""CLI commands that execute studies: run, status."""

from __future__ import annotations

import fnmatch
import json
import math
import shutil
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from oxstudy.errors import OxstudyError

console = Console(highlight=False)
err = Console(stderr=True, highlight=False)


def _matches(cell: Any, only: str | None) -> bool:
    return not only or fnmatch.fnmatchcase(cell.label, only) or cell.run_id.startswith(only)


def _select(cells: list[Any], statuses: dict[str, str], *, rerun_failed: bool, only: str | None) -> list[Any]:
    selected = []
    for cell in cells:
        status = statuses.get(cell.run_id)
        if status == "done" or (status == "failed" and not rerun_failed):
            continue
        if not _matches(cell, only):
            continue
        selected.append(cell)
    return selected


def _check_inputs(cells: list[Any], store: Any, *, only: str | None, backend: str | None) -> None:
    """Bad options and a store that cannot hold records: one line, exit 2, before any training
    (a cell that trained into a store it cannot write to loses its result)."""
    from runners.base import BACKENDS

    if backend is not None and backend not in BACKENDS:
        raise OxstudyError(f"--backend: unknown backend {backend!r} ({', '.join(BACKENDS)})")
    if only and cells and not any(_matches(cell, only) for cell in cells):
        # a pattern that matches only finished cells is fine (nothing to do); one matching no cell is a typo
        raise OxstudyError(f"--only: {only!r} matches no cell of the plan (labels look like {cells[0].label}, "
                           f"run ids like {cells[0].run_id}; the glob is case-sensitive)")
    problem = store.layout_problem()
    if problem:
        raise OxstudyError(problem)


def _dry_run(spec: Any, cells: list[Any], store: Any, *, rerun_failed: bool, only: str | None, as_json: bool) -> None:
    """What ``run`` would do now (read-only: takes no lock)."""
    statuses, corrupt = store.statuses()
    for problem in corrupt:
        err.print(f"[yellow]warning:[/] corrupt record, will re-run: {problem}")
    selected = _select(cells, statuses, rerun_failed=rerun_failed, only=only)
    done = sum(statuses.get(c.run_id) == "done" for c in cells)
    failed_before = sum(statuses.get(c.run_id) == "failed" for c in cells)
    rows = [{"run_id": c.run_id, "model": c.model.id, "algorithm": c.algorithm.id, "seed": c.seed} for c in selected]
    if as_json:
        print(json.dumps({"study": spec.name, "store": str(store.root), "would_run": rows}, indent=2))
        return
    console.print(f"{spec.name}: would run {len(rows)} of {len(cells)} cells ({done} done, {failed_before} failed) into {store.root}")
    for row in rows:
        console.print(f"  {row['run_id']}  {row['model']}/{row['algorithm']}/seed{row['seed']}")


def run(
    spec_path: Annotated[Path, typer.Argument(metavar="SPEC", help="The study spec.", show_default=False)],
    smoke: Annotated[bool, typer.Option("--smoke", help="Zoo model, bundled tasks, 2 steps, first seed: test any spec on a CPU.")] = False,
    rerun_failed: Annotated[bool, typer.Option("--rerun-failed", help="Also run cells whose record says failed.")] = False,
    only: Annotated[str | None, typer.Option("--only", help="Only cells whose MODEL/ALGORITHM/seedN label matches this glob (or a run-id prefix).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would run; run nothing.")] = False,
    backend: Annotated[str | None, typer.Option("--backend", help="local | ray | slurm (default: the spec's).")] = None,
    max_parallel: Annotated[int | None, typer.Option("--max-parallel", min=1, help="Concurrent cells (default: the spec's).")] = None,
    break_lock: Annotated[bool, typer.Option("--break-lock", help="Remove another host's lock on the study first.")] = False,
    no_preflight: Annotated[bool, typer.Option("--no-preflight", help="Skip resolving models and data in the driver first.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the outcome as JSON on stdout.")] = False,
) -> None:
    """Run every pending cell of a study: data -> TRL training -> lm-eval -> one record each.

    Re-running resumes: only cells without a record run (an edited hyperparameter re-runs
    exactly the cells it changes). Failed cells are retried up to execution.retries, then
    recorded as failed while the study goes on. Exit code 0 when every selected cell is
    done, 1 when some failed, 2 for bad input.

    Example: oxstudy run specs/quickstart.yaml   |   oxstudy run specs/dpo_taxonomy.yaml --smoke
    """
    from oxstudy.plan import plan
    from oxstudy.spec import load_spec
    from oxstudy.store import Store, store_errors

    spec = load_spec(spec_path)
    if smoke:
        from oxstudy.smoke import smoke_spec

        spec = smoke_spec(spec)
    cells = plan(spec)
    store = Store(spec.store_dir)
    _check_inputs(cells, store, only=only, backend=backend)
    if dry_run:
        _dry_run(spec, cells, store, rerun_failed=rerun_failed, only=only, as_json=as_json)
        return

    from runners.base import get_runner
    from runners.lock import StudyLock

    backend = backend or spec.execution.backend
    options: dict[str, Any] = {"max_parallel": spec.execution.max_parallel if max_parallel is None else max_parallel,
                               "retries": spec.execution.retries, "timeout_s": spec.execution.timeout_s}
    if backend == "ray":
        options["address"] = spec.execution.ray.address
    if backend == "slurm":
        options["slurm"] = spec.execution.slurm
    try:
        runner = get_runner(backend, **options)
    except ImportError as exc:
        raise OxstudyError(f"backend '{backend}' needs an extra: pip install 'oxstudy[{backend}]' ({exc.name} missing)") from None

    with store_errors(store.root, "creating the study directory"):
        store.root.mkdir(parents=True, exist_ok=True)
    # The lock comes first: which cells are pending is only known while no other run can
    # finish (or start) one, so selection, pre-flight and the clean-up of partial outputs
    # all happen under it. Otherwise a cell another run finishes meanwhile is deleted and
    # trained again.
    with (
        store_errors(store.root),  # disk full / read-only anywhere below: one line, exit 2
        StudyLock(store.root, break_lock=break_lock, on_warning=lambda m: err.print(f"[yellow]warning:[/] {m}")) as lock,
    ):
        if lock.took_over is not None:
            # The dead holder's cell processes stop within DRIVER_WATCH_S of its death (they
            # test its liveness exactly as the lock does): let them, before reading the store.
            from runners.local import DRIVER_WATCH_S

            time.sleep(2 * DRIVER_WATCH_S)
        statuses, corrupt = store.statuses()
        for problem in corrupt:
            err.print(f"[yellow]warning:[/] corrupt record, will re-run: {problem}")
        selected = _select(cells, statuses, rerun_failed=rerun_failed, only=only)
        done = sum(statuses.get(c.run_id) == "done" for c in cells)
        if selected and not no_preflight:
            from rich.progress import BarColumn, DownloadColumn, Progress, SpinnerColumn, TextColumn

            from oxstudy.execute import preflight

            # One live display: the step line and the hub download bars (oxstudy.hub.rich_tqdm).
            from oxstudy.terminal import progress_console

            # on the terminal even while a zoo build sends third-party output to its log
            with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                          console=progress_console(), transient=True) as bars:
                step = bars.add_task("checking tasks, settings, models and data", total=None)
                preflight(selected, on_step=lambda what: bars.update(step, description=f"checking {what}"),
                          spec=spec, progress=bars, check_machine=backend == "local")
        with store_errors(store.root, "preparing the study directory"):
            store.clean_partial()
            for cell in selected:  # partial outputs of a killed attempt
                shutil.rmtree(store.cell_dir(cell.run_id), ignore_errors=True)
            store.save_plan(
                spec.model_dump(mode="json", exclude_none=True),
                [{"run_id": c.run_id, "model": c.model.id, "algorithm": c.algorithm.id, "seed": c.seed} for c in cells],
            )
        started = time.perf_counter()
        if not as_json:
            console.print(
                f"[bold]{spec.name}[/]: {len(cells)} cells, {done} done, running {len(selected)} on {backend} "
                f"(x{options['max_parallel']}) into {store.root}"
            )
        outcomes = _run_with_progress(runner, selected, store, quiet=as_json) if selected else []
        elapsed = time.perf_counter() - started
    n_done = sum(o.status == "done" for o in outcomes)
    failures = [o for o in outcomes if o.status == "failed"]
    summary = {
        "study": spec.name, "store": str(store.root), "ran": len(outcomes), "done": n_done,
        "failed": len(failures), "elapsed_s": round(elapsed, 1),
        "outcomes": [o.to_dict() for o in outcomes],
    }  # fmt: skip
    if as_json:
        print(json.dumps(summary, indent=2))
    else:
        console.print(f"ran {len(outcomes)} cells in {elapsed:,.0f} s: [green]{n_done} done[/], [red]{len(failures)} failed[/]")
        labels = {c.run_id: c.label for c in selected}
        for outcome in failures:
            console.print(f"  [red]failed[/] {labels[outcome.run_id]} ({outcome.run_id}): {outcome.reason}")
        console.print(f"next: oxstudy analyze {store.root}   |   oxstudy report {store.root}")
    if failures:
        raise typer.Exit(1)


def _run_with_progress(runner: Any, cells: list[Any], store: Any, *, quiet: bool) -> list[Any]:
    from oxstudy.execute import read_progress
    from oxstudy.terminal import progress_bar
    from runners.base import RunnerEvent

    labels = {c.run_id: c.label for c in cells}
    progress = progress_bar(info=True, disable=quiet)
    counts = {"done": 0, "failed": 0}
    last_phase: dict[str, str] = {}
    with progress:
        overall = progress.add_task("cells", total=len(cells), info="")
        cell_tasks: dict[str, Any] = {}

        def on_event(event: RunnerEvent) -> None:
            run_id = event.run_id
            if event.kind == "start":
                cell_tasks[run_id] = progress.add_task(f"  {labels[run_id]}", total=None, info="starting")
            elif event.kind == "phase" and run_id in cell_tasks:
                state = read_progress(store, run_id)
                if state:
                    phase = state["phase"]
                    info = f"{phase} {state['step']}/{state['total']}" if state.get("total") else phase
                    if last_phase.get(run_id) != info:
                        last_phase[run_id] = info
                        progress.update(cell_tasks[run_id], info=info, total=state.get("total") or None,
                                        completed=state.get("step", 0))
            elif event.kind in ("done", "failed", "retry"):
                task = cell_tasks.pop(run_id, None)
                if task is not None:
                    progress.remove_task(task)
                if event.kind == "retry":
                    progress.console.print(f"[yellow]retry[/] {labels[run_id]}: {event.detail.get('reason')}")
                    return
                counts[event.kind] += 1
                progress.update(overall, advance=1, info=f"{counts['done']} done, {counts['failed']} failed")
                if event.kind == "failed":
                    progress.console.print(f"[red]failed[/] {labels[run_id]}: {event.detail.get('reason')}")

        return runner.run(cells, store, on_event=on_event)


def status(
    target: Annotated[Path | None, typer.Argument(metavar="[STUDY_OR_SPEC]", help="A study directory or its spec (default: the most recently run study in ./studies).", show_default=False)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON on stdout.")] = False,
) -> None:
    """Summarise a running or finished study from its store: done / failed / pending per arm.

    Example: oxstudy status studies/quickstart
    """
    from rich.markup import escape

    from oxstudy.execute import PROGRESS_NAME, read_progress
    from oxstudy.store import Store, load_study

    if target is None:  # `oxstudy status` while `oxstudy run` works in another terminal
        from oxstudy.commands.default_study import announce, default_study

        target = default_study("status")
        announce("status", target)
    if target.suffix in (".yaml", ".yml"):
        from oxstudy.commands.default_study import store_for_spec

        target = store_for_spec(target)
    problem = Store(target).layout_problem()  # the same words as `run` (e.g. plan.json a directory)
    if problem:
        raise OxstudyError(problem)
    tables = load_study(target, with_items=False)
    store = Store(target)
    labels: dict[str, dict[str, Any]] = {}
    notes: list[str] = []
    plan_file = target / "plan.json"
    if plan_file.exists():
        try:
            labels = {c["run_id"]: c for c in json.loads(plan_file.read_text(encoding="utf-8"))["cells"]}
            if not all({"model", "algorithm"} <= cell.keys() for cell in labels.values()):
                raise KeyError("a cell without model/algorithm")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:  # truncated or edited
            raise OxstudyError(f"{plan_file}: unreadable plan ({exc.__class__.__name__}: {exc}); `oxstudy run SPEC` "
                               "rewrites it") from None
    else:
        notes.append(f"no plan.json in {target}: pending cells unknown (`oxstudy run SPEC` writes it); "
                     "counting the records found")
    done_ids = set(tables.runs["run_id"]) | {r["run_id"] for r in tables.records if r["status"] == "done"}
    failed_ids = set(tables.failed["run_id"])
    if labels:
        outside = (done_ids | failed_ids) - set(labels)
        if outside:  # records of cells the current plan no longer has (an edited spec): not in the totals
            notes.append(f"{len(outside)} record(s) not in the current plan (left out of the totals)")
        done_ids, failed_ids = done_ids & set(labels), failed_ids & set(labels)
    running = []
    for run_id in set(labels) - done_ids - failed_ids:
        state = read_progress(store, run_id)
        if state is None:
            continue
        numbers = [state.get(k, 0) for k in ("updated_at", "step", "total")] if isinstance(state, dict) else []
        if not (isinstance(state, dict) and isinstance(state.get("phase"), str)
                and all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in numbers)):
            notes.append(f"{store.cell_dir(run_id) / PROGRESS_NAME}: malformed progress file ignored")
            continue
        if state["phase"] not in ("done", "failed") and time.time() - state.get("updated_at", 0) < 120:
            running.append({"run_id": run_id, **{k: state[k] for k in ("phase", "step", "total", "updated_at")
                                                 if k in state}})
    arms: dict[tuple[str, str], dict[str, int | None]] = {}
    for run_id, cell in labels.items():
        key = (str(cell["model"]), str(cell["algorithm"]))
        state = "done" if run_id in done_ids else "failed" if run_id in failed_ids else "pending"
        arms.setdefault(key, {"done": 0, "failed": 0, "pending": 0})[state] += 1
    if not labels:  # no plan: the arms of the records found, pending unknown
        for record in tables.records:
            key = (record["cell"]["model"]["id"], record["cell"]["algorithm"]["id"])
            arms.setdefault(key, {"done": 0, "failed": 0, "pending": None})[record["status"]] += 1
    failures = [
        {**row, "seed": None if row["seed"] is None or row["seed"] != row["seed"] else int(row["seed"])}
        for row in tables.failed.astype(object).to_dict("records")
        if row["run_id"] in failed_ids
    ]
    out = {
        "store": str(target),
        "cells": len(labels) or len(done_ids | failed_ids),
        "done": len(done_ids), "failed": len(failed_ids),
        "pending": len(labels) - len(done_ids) - len(failed_ids) if labels else None,
        "running": running,
        "failures": failures,
        "corrupt": tables.corrupt,
        "arms": [{"model": m, "algorithm": a, **counts} for (m, a), counts in arms.items()],
        "notes": notes,
    }  # fmt: skip
    if as_json:
        print(json.dumps(out, indent=2, default=str, allow_nan=False))
        return
    pending = "pending unknown" if out["pending"] is None else f"{out['pending']} pending"
    table = Table(title=escape(f"{target}: {out['done']} done, {out['failed']} failed, {pending} of {out['cells']}"))
    for column in ("model", "algorithm", "done", "failed", "pending"):
        table.add_column(column)
    for arm in out["arms"]:
        table.add_row(escape(arm["model"]), escape(arm["algorithm"]), str(arm["done"]),
                      f"[red]{arm['failed']}[/]" if arm["failed"] else "0",
                      "?" if arm["pending"] is None else str(arm["pending"]))
    console.print(table)
    for state in running:
        algorithm = labels.get(state["run_id"], {}).get("algorithm", "")
        console.print(escape(f"running {algorithm} {state['run_id']}: {state['phase']} "
                             f"{state.get('step', '')}/{state.get('total', '')}"))
    for failure in out["failures"]:
        console.print("[red]failed[/] " + escape(f"{failure['model']}/{failure['algorithm']}/seed{failure['seed']}: "
                                                 f"{failure['reason']}"))
    for problem in out["corrupt"]:
        console.print(f"[red]corrupt[/] {escape(problem)}")
    for note in notes:
        console.print(f"[yellow]note:[/] {escape(note)}")


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.command("status")(status)
