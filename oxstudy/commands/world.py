"""CLI commands on the embedded world: the tiny-model zoo, bundled tasks, evaluation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from oxstudy.errors import InputError

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

zoo_app = typer.Typer(help="The tiny pretrained model zoo (CPU-sized Llama models).", no_args_is_help=True)
tasks_app = typer.Typer(help="Bundled synthetic tasks (lm-eval YAML + JSONL).", no_args_is_help=True)


def _table_console() -> Console:
    """The console for a table: piped output (``| cat``, a file) is not squeezed into 80
    columns, where names and numbers were cut to ``zoo:sma…`` (as ``oxstudy algorithms``)."""
    return console if console.is_terminal else Console(width=200, highlight=False)


def _progress():
    # on the terminal while a build sends third-party output to its log (zoo.build_log)
    from oxstudy.terminal import progress_bar

    return progress_bar()


@zoo_app.command("build")
def zoo_build(
    names: Annotated[list[str] | None, typer.Argument(help="Zoo models to build (default: all).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Rebuild even when cached.")] = False,
    jobs: Annotated[
        int | None, typer.Option("--jobs", "-j", help="Parallel builds (default: CPU count).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the built models as JSON.")] = False,
) -> None:
    """Pretrain the zoo models into the cache ($OXSTUDY_CACHE or ~/.cache/oxstudy); cached ones are skipped.

    Example: oxstudy zoo build tiny small
    """
    from oxstudy import zoo

    names = names or zoo.zoo_names()
    for name in names:
        zoo.model_dir(name)  # unknown names fail here, before any work
    todo = [n for n in names if force or not zoo.is_built(n)]
    if todo:
        with _progress() as progress:
            bars = {n: progress.add_task(f"zoo:{n} waiting", total=zoo.model_config(n).steps) for n in todo}

            def on_step(name: str, step: int, total: int, loss: float) -> None:
                stage = "evaluating on oxs_arith" if step >= total else f"step {step}/{total} loss {loss:.3f}"
                progress.update(bars[name], completed=step, description=f"zoo:{name} {stage}")

            # lm-eval's and datasets' own output goes to each build's log, not here
            zoo.build_many(todo, force=force, jobs=jobs, on_step=on_step)
            for name in todo:
                progress.update(bars[name], description=f"zoo:{name} built (log: {zoo.build_log(name)})")
    _print_zoo(names, as_json)


@zoo_app.command("list")
def zoo_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print the zoo as JSON.")] = False,
) -> None:
    """List the zoo models: parameters, whether cached, build time and base accuracy.

    Example: oxstudy zoo list --json
    """
    from oxstudy import zoo

    _print_zoo(zoo.zoo_names(), as_json)


def _zoo_rows(names: list[str]) -> list[dict[str, Any]]:
    from oxstudy import zoo

    rows = []
    for name in names:
        meta = zoo.zoo_metadata(name) or {}
        base = meta.get("base_accuracy") or {}
        config = zoo.model_config(name)
        measured, recorded = base.get("value"), zoo.recorded_accuracy(name)
        rows.append(
            {
                "name": name,
                "source": f"zoo:{name}",
                "seed": config.seed,
                "config_hash": config.config_hash(),
                "cached": zoo.is_built(name),
                "path": str(zoo.model_dir(name)),
                "params": meta.get("params", zoo.estimate_params(name)),
                "build_s": meta.get("build_s"),
                "base_accuracy": measured,
                "base_stderr": base.get("stderr"),
                "base_task": base.get("task"),
                # recorded where the ladder was built (oxstudy/zoo_recorded.py); drift = measured - recorded
                "recorded_accuracy": recorded,
                "drift": None if measured is None or recorded is None else round(measured - recorded, 4),
                "machine": meta.get("machine"),
            }
        )
    return rows


def _print_zoo(names: list[str], as_json: bool) -> None:
    from oxstudy.zoo_recorded import RECORDED, TOLERANCE

    rows = _zoo_rows(names)
    if as_json:
        payload = {"models": rows, "recorded_on": RECORDED["machine"], "tolerance": TOLERANCE}
        print(json.dumps(payload, indent=2))
        return
    table = Table("model", "seed", "params", "cached", "build s", "measured", "recorded", "drift")
    for column in table.columns:
        column.no_wrap = True
    for row in rows:
        acc = (
            "-"
            if row["base_accuracy"] is None
            else f"{row['base_accuracy']:.3f}±{row['base_stderr'] or 0:.3f}"
        )
        drift = row["drift"]
        drift_text = "-" if drift is None else f"{drift:+.3f}" + (" [red]![/red]" if abs(drift) > TOLERANCE else "")
        table.add_row(
            row["source"],
            str(row["seed"]),
            f"{row['params']:,}",
            "yes" if row["cached"] else "no",
            "-" if row["build_s"] is None else f"{row['build_s']:.0f}",
            acc,
            "-" if row["recorded_accuracy"] is None else f"{row['recorded_accuracy']:.3f}",
            drift_text,
        )
    out = _table_console()
    out.print(table)
    machine = RECORDED["machine"]
    out.print(
        f"recorded on {machine['cpu']} ({machine['cpu_count']} cores, torch {machine['torch']}, "
        f"{machine['torch_threads']} thread); drift beyond ±{TOLERANCE:.2f} is marked !: another CPU "
        "trains slightly different weights (docs/world.md, Reproducibility). Models live under "
        f"{Path(rows[0]['path']).parent if rows else '-'} (--json for each path)."
    )


@tasks_app.command("export")
def tasks_export(
    directory: Annotated[
        Path, typer.Argument(metavar="DIR", help="Where to write YAML + JSONL.", show_default=False)
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print the written files as JSON.")] = False,
) -> None:
    """Write the bundled tasks' lm-eval YAMLs and train/test JSONL files into DIR.

    Use DIR as lm-eval's --include_path. Example: oxstudy tasks export ./oxs_tasks
    """
    from oxstudy.tasks import bundled_tasks, export_task_files

    written = export_task_files(directory)
    out = written[0].parent
    files = sorted(str(p) for p in written)  # only what was written: DIR may hold the user's own files
    if as_json:
        print(json.dumps({"directory": str(out), "tasks": bundled_tasks(), "files": files}, indent=2))
    else:
        console.print(f"wrote {len(files)} files for {', '.join(bundled_tasks())} to {out}", markup=False)


@tasks_app.command("list")
def tasks_list(
    as_json: Annotated[bool, typer.Option("--json", help="Print the tasks as JSON.")] = False,
) -> None:
    """List the bundled tasks with their role, default metric key, chance level (multiple choice),
    split sizes and test items per difficulty level.

    Example: oxstudy tasks list
    """
    from collections import Counter

    from oxstudy.tasks import TASKS, task_split

    rows = [
        {
            "task": t.name,
            "role": t.role,
            "output_type": t.output_type,
            "metric": t.metric,
            "chance": t.chance,
            "in_domain": t.in_domain,
            "test": t.sizes["test"],
            "train": t.sizes.get("train", 0),  # 0: no train split (oxs_facts: not post-training data)
            # test items per difficulty level (docs/world.md, Difficulty levels)
            "levels": {str(k): v for k, v in sorted(Counter(e["level"] for e in task_split(t.name, "test")).items())},
            "description": t.description,
        }
        for t in TASKS.values()
    ]
    if as_json:
        print(json.dumps({"tasks": rows}, indent=2))
        return
    table = Table("task", "role", "type", "metric", "chance", "test", "train", "test items by level", "description")
    for column in table.columns:  # names and numbers whole; the description wraps at word boundaries
        column.no_wrap = column.header != "description"
        column.overflow = "fold"
    for r in rows:
        table.add_row(
            r["task"],
            r["role"],
            r["output_type"],
            r["metric"],
            f"{r['chance']:g}" if r["chance"] else "-",
            str(r["test"]),
            str(r["train"]),
            " ".join(f"L{k}:{v}" for k, v in r["levels"].items()),
            r["description"],
        )
    _table_console().print(table)


def eval_command(
    model: Annotated[
        str, typer.Option("--model", "-m", help="zoo:NAME, a model/adapter dir, or a cached HF id.")
    ],
    benchmarks: Annotated[
        list[str],
        typer.Option(
            "--benchmarks",
            "-b",
            help="Bundled task names, lm-eval task names or task YAML paths (comma-separated or repeated).",
        ),
    ],
    num_fewshot: Annotated[int, typer.Option("--num-fewshot", help="Few-shot examples per prompt.")] = 0,
    limit: Annotated[int | None, typer.Option("--limit", help="Evaluate only the first N items.")] = None,
    metric: Annotated[
        str | None, typer.Option("--metric", help="metric,filter key (default: per task).")
    ] = None,
    chat_template: Annotated[
        bool, typer.Option("--chat-template/--no-chat-template", help="Apply the tokenizer's chat template.")
    ] = True,
    batch_size: Annotated[int, typer.Option("--batch-size", help="lm-eval batch size.")] = 16,
    with_items: Annotated[
        bool, typer.Option("--items", help="Include per-item outcomes in --json output.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print scores as JSON on stdout.")] = False,
    pass_at_k: Annotated[
        str | None, typer.Option("--pass-at-k", help="Also estimate pass@k at these k (e.g. 1,8,64) from sampled "
                                 "completions (generative tasks; unbiased estimator of Chen et al. 2021).")
    ] = None,
    samples: Annotated[int, typer.Option("--samples", help="n: completions sampled per item for --pass-at-k.")] = 16,
    temperature: Annotated[float, typer.Option("--temperature", help="Sampling temperature for --pass-at-k.")] = 1.0,
    seed: Annotated[int, typer.Option("--seed", help="Sampling seed for --pass-at-k.")] = 0,
) -> None:
    """Evaluate a checkpoint (base model, trained run, LoRA adapter) on benchmarks through lm-eval.

    Example: oxstudy eval --model zoo:tiny --benchmarks oxs_arith,oxs_compare --limit 100

    pass@k: oxstudy eval -m zoo:tiny -b oxs_arith --limit 50 --pass-at-k 1,8,64 --samples 64
    """
    from oxstudy.evaluation import BenchmarkRequest, default_metric, evaluate_model
    from oxstudy.zoo import resolve_model_source

    # Every input is checked before the model is resolved or loaded: a typo must not cost a
    # model load and the evaluation of the benchmarks before it.
    _check_eval_numbers(num_fewshot=num_fewshot, limit=limit, batch_size=batch_size)
    tasks = [t.strip() for item in benchmarks for t in item.split(",") if t.strip()]
    if not tasks:
        raise InputError("--benchmarks: no benchmark given")
    pass_at_k_settings = None if pass_at_k is None else _pass_at_k_settings(pass_at_k, samples, temperature, seed)
    requests = [
        BenchmarkRequest(
            id=Path(t).stem if t.endswith((".yaml", ".yml")) else t,
            task=t,
            num_fewshot=num_fewshot,
            metric=metric or default_metric(t),
            limit=limit,
            apply_chat_template=chat_template,
            batch_size=batch_size,
        )
        for t in tasks
    ]
    _check_benchmarks(requests, metric_given=metric is not None)
    path = resolve_model_source(model)
    with _progress() as progress:
        bar = progress.add_task("evaluating", total=len(requests))

        def on_benchmark(index: int, total: int, bench_id: str) -> None:
            progress.update(bar, completed=index, description=f"evaluating {bench_id}")

        result = evaluate_model(path, requests, on_benchmark=on_benchmark)
        progress.update(bar, completed=len(requests), description="evaluated")
        if pass_at_k_settings is not None:
            result = _with_pass_at_k(result, path, requests, pass_at_k_settings, progress)
    if as_json:
        payload: dict[str, Any] = {"model": model, "path": path, "metrics": result["metrics"]}
        if with_items:
            payload["items"] = result["items"]
        print(json.dumps(payload, indent=2))
        return
    table = Table("benchmark", "metric", "value", "stderr", "n", "shots")
    for bench_id, m in result["metrics"].items():
        table.add_row(
            bench_id,
            m["metric"],
            "-" if m["value"] is None else f"{m['value']:.4f}",
            "-" if m["stderr"] is None else f"{m['stderr']:.4f}",
            str(m["n"]),
            str(m.get("num_fewshot", "-")),
        )
    console.print(f"model {model} ({path})", markup=False)
    console.print(table)


def _check_eval_numbers(*, num_fewshot: int, limit: int | None, batch_size: int) -> None:
    """The ranges a spec's benchmark enforces (oxstudy.spec.BenchmarkSpec), for the CLI's options."""
    if num_fewshot < 0:
        raise InputError(f"--num-fewshot: must be >= 0 (got {num_fewshot})")
    if limit is not None and limit <= 0:
        raise InputError(f"--limit: must be > 0 (got {limit})")
    if batch_size <= 0:
        raise InputError(f"--batch-size: must be > 0 (got {batch_size})")


def _check_benchmarks(requests: list[Any], *, metric_given: bool) -> None:
    """Each task resolves and reports its metric (the check ``run`` makes in its pre-flight)."""
    from oxstudy.execute import benchmark_problem

    problems = []
    for request in requests:
        problem = benchmark_problem(request)
        if problem is not None:
            field_name, message = problem
            option = "--metric" if field_name == "metric" and metric_given else "--benchmarks"
            problems.append(f"{option}: {message}")
    if problems:
        raise InputError(*problems)


def _pass_at_k_settings(ks: str, samples: int, temperature: float, seed: int) -> Any:
    """``--pass-at-k`` and its sampling options as ``PassAtKSettings`` (ranges as in a spec's PassAtKSpec)."""
    from oxstudy.passk import PassAtKSettings

    try:
        k_values = [int(k) for k in ks.split(",") if k.strip()]
    except ValueError:
        raise InputError(f"--pass-at-k: '{ks}' is not a comma-separated list of integers") from None
    if not k_values:
        raise InputError(f"--pass-at-k: '{ks}' names no k")
    if samples <= 0:
        raise InputError(f"--samples: must be > 0 (got {samples})")
    if not temperature > 0:
        raise InputError(f"--temperature: must be > 0 (got {temperature:g})")
    outside = sorted({k for k in k_values if not 1 <= k <= samples})
    if outside:
        raise InputError(f"--pass-at-k: k {', '.join(map(str, outside))} outside 1..--samples ({samples})")
    return PassAtKSettings(samples=samples, k=k_values, temperature=temperature, seed=seed)


def _with_pass_at_k(result: dict[str, Any], path: str, requests: list[Any], settings: Any,
                    progress: Any) -> dict[str, Any]:
    """Add ``<bench>.pass@<k>`` metrics and items (oxstudy/passk.py) for the generative benchmarks."""
    from oxstudy.evaluation import load_model
    from oxstudy.passk import pass_at_k_outcomes, pass_at_k_result, sample_correct_counts

    samples = settings.samples
    model, tokenizer = load_model(path)
    for request in requests:
        if result["metrics"][request.id].get("output_type") != "generate_until":
            continue
        bar = progress.add_task(f"pass@k {request.id} ({samples} samples per item)", total=None)
        entry = pass_at_k_result(sample_correct_counts(model, tokenizer, request, settings))
        metrics, items = pass_at_k_outcomes(request.id, entry)
        result["metrics"].update(metrics)
        result["items"].update(items)
        progress.update(bar, description=f"pass@k {request.id} done", total=1, completed=1)
    return result


def register(app: typer.Typer) -> None:
    """Add this group's commands to the app."""
    app.add_typer(zoo_app, name="zoo")
    app.add_typer(tasks_app, name="tasks")
    app.command("eval")(eval_command)
