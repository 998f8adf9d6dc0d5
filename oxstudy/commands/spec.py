"""CLI commands on specs: validate, plan, schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from oxstudy.errors import SpecError

console = Console(highlight=False)


def validate(
    specs: Annotated[list[Path], typer.Argument(help="Spec files to check.", show_default=False)],
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Check study specs: schema, cross-field rules, referenced files, methods.

    Every problem is printed as FILE:LINE: path.to.field: message; exit code 2 if any.

    Example: oxstudy validate specs/*.yaml
    """
    from oxstudy.plan import plan
    from oxstudy.spec import load_spec

    results: list[dict[str, Any]] = []
    errors: list[str] = []
    for path in specs:
        try:
            spec = load_spec(path)
        except SpecError as exc:
            errors.extend(exc.messages)
            results.append({"spec": str(path), "valid": False, "errors": exc.messages})
            continue
        cells = plan(spec)
        results.append({"spec": str(path), "valid": True, "name": spec.name, "cells": len(cells)})
    if as_json:
        print(json.dumps({"specs": results}, indent=2))
    else:
        for result in results:
            if result["valid"]:
                console.print(f"[green]ok[/] {escape(result['spec'])}: study '{result['name']}', {result['cells']} cells")
    if errors:
        raise SpecError(*errors)


def plan_command(
    spec_path: Annotated[Path, typer.Argument(metavar="SPEC", help="The study spec.", show_default=False)],
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON on stdout.")] = False,
    store_dir: Annotated[
        Path | None, typer.Option("--store", help="Results store to read status from (default: the spec's).")
    ] = None,
) -> None:
    """Show the run matrix: every cell with its content-addressed run id and status.

    Status comes from the results store (done / failed / pending); totals and a rough
    compute estimate follow.

    Example: oxstudy plan specs/dpo_taxonomy.yaml --json | jq '.cells | length'
    """
    from oxstudy.plan import estimate_compute, plan
    from oxstudy.spec import load_spec
    from oxstudy.store import Store

    spec = load_spec(spec_path)
    cells = plan(spec)
    if store_dir is not None and store_dir.exists() and not store_dir.is_dir():
        raise SpecError(f"--store: {store_dir} is a file; a results store is a study directory")
    from oxstudy.commands.default_study import store_for_spec

    store = Store(store_dir or store_for_spec(spec_path, spec.store_dir))  # a study's saved spec.yaml: that study
    problem = store.layout_problem()  # what `run` would refuse, before it shows cells as pending
    if problem:
        raise SpecError(problem)
    statuses, corrupt = store.statuses()
    rows = [
        {
            "run_id": cell.run_id,
            "model": cell.model.id,
            "algorithm": cell.algorithm.id,
            "method": cell.algorithm.method,
            "seed": cell.seed,
            "status": statuses.get(cell.run_id, "pending"),
        }
        for cell in cells
    ]
    totals = {status: sum(r["status"] == status for r in rows) for status in ("done", "failed", "pending")}
    totals["cells"] = len(rows)
    estimate = estimate_compute(cells)
    out = {
        "study": spec.name,
        "spec": str(spec_path),
        "store": str(store.root),
        "cells": rows,
        "totals": totals,
        "estimate": {"gpu_hours": round(estimate.gpu_hours, 2), "assumptions": estimate.assumptions},
        "corrupt_records": corrupt,
    }
    if as_json:
        print(json.dumps(out, indent=2))
        return
    table = Table(title=f"{spec.name}: {len(rows)} cells", show_lines=False)
    for column in ("run_id", "model", "algorithm", "method", "seed", "status"):
        table.add_column(column, no_wrap=True)
    colours = {"done": "green", "failed": "red", "pending": "yellow"}
    for r in rows:
        table.add_row(
            r["run_id"], r["model"], r["algorithm"], r["method"], str(r["seed"]),
            f"[{colours[r['status']]}]{r['status']}[/]",
        )  # fmt: skip
    console.print(table)
    models = len({r["model"] for r in rows})
    algorithms = len({r["algorithm"] for r in rows})
    console.print(
        f"{len(rows)} cells ({models} models, {algorithms} algorithms, {len(spec.seeds)} seeds, "
        f"{len(spec.benchmarks)} benchmarks): [green]{totals['done']} done[/], [red]{totals['failed']} failed[/], "
        f"[yellow]{totals['pending']} pending[/]"
    )
    console.print(f"Estimated compute: ~{estimate.gpu_hours:,.1f} GPU-hours ({estimate.assumptions}).")
    for problem in corrupt:
        console.print(f"[red]corrupt record (will be re-run):[/] {escape(problem)}")


def schema(
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Write to this file instead of stdout.")] = None,
) -> None:
    """Print the JSON Schema of study specs, for editor completion and checking.

    Example: oxstudy schema -o oxstudy.schema.json  (then point your YAML editor at it)
    """
    from oxstudy.spec import spec_json_schema

    text = json.dumps(spec_json_schema(), indent=2)
    if output:
        output.write_text(text + "\n")
        console.print(f"wrote {escape(str(output))}")
    else:
        print(text)


def register(app: typer.Typer) -> None:
    app.command("validate")(validate)
    app.command("plan")(plan_command)
    app.command("schema")(schema)
