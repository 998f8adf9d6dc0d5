"""One cell, start to finish: data -> train -> eval -> one atomic record.

``execute_cell`` runs inside a worker process on any backend (local, Ray, SLURM). It never
raises for a failing cell: an exception, a non-finite loss or an unreachable model becomes
a ``failed`` record with its reason and log tail, and the study goes on. Failures the
worker cannot record itself (a timeout, an out-of-memory kill) are recorded by the driver
through ``record_failure``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from oxstudy.errors import OxstudyError
from oxstudy.plan import Cell
from oxstudy.store import Store, atomic_write_text, now_iso, provenance

LOG_NAME = "log.txt"
PROGRESS_NAME = "progress.json"
LOG_TAIL_LINES = 40
#: The trained checkpoint written for vLLM evaluation (removed with the run's other weights).
EVAL_CHECKPOINT = "eval_checkpoint"


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


class ProgressWriter:
    """Writes the cell's phase to ``cells/<run_id>/progress.json`` for the driver to show.

    A file rather than a pipe, so the same mechanism works for local workers, Ray tasks
    and SLURM jobs on a shared filesystem. Throttled: at most every ``interval`` seconds.
    """

    def __init__(self, path: Path, interval: float = 0.5) -> None:
        self.path = path
        self.interval = interval
        self._last = 0.0

    def __call__(self, phase: str, step: int = 0, total: int = 0, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < self.interval:
            return
        self._last = now
        payload = {"phase": phase, "step": step, "total": total, "updated_at": time.time()}
        with contextlib.suppress(OSError):
            atomic_write_text(self.path, json.dumps(payload))


def read_progress(store: Store, run_id: str) -> dict[str, Any] | None:
    try:
        return json.loads((store.cell_dir(run_id) / PROGRESS_NAME).read_text())
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def redirect_output(path: Path) -> Iterator[None]:
    """Send this process's stdout/stderr (file descriptors too: TRL, lm-eval, C++) to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(path, "a", buffering=1) as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def preflight(cells: list[Cell], on_step: Any = None, *, progress: Any = None,
              check_machine: bool = True) -> dict[str, Any]:
    """Check, once in the driver, what every cell would otherwise discover on its own.

    Each distinct model source is resolved (zoo models are built here once instead of by
    several workers at a time; hub models and ``hf:`` datasets are downloaded here, with a
    bar in ``progress`` when given, or taken from the local cache when ``HF_HUB_OFFLINE`` /
    ``HF_DATASETS_OFFLINE`` is set; a gated, missing or uncached repo fails now, with one line
    naming it) and the training data is loaded. With ``check_machine`` (cells run on this
    machine) a vLLM backend asked for explicitly must be usable here. Returns the resolved
    hub commits ``{"models": {source: {...}}, "datasets": {source: {...}}}``. Raises ``OxstudyError``.
    """
    from oxstudy.hub import parse_hub_source, resolve
    from oxstudy.selfplay import load_examples
    from oxstudy.zoo import resolve_model_source

    resolved: dict[str, dict[str, Any]] = {"models": {}, "datasets": {}}
    if check_machine:
        _check_engines(cells)
    for source, revision in dict.fromkeys((cell.model.source, cell.model.revision) for cell in cells):
        if on_step is not None:
            on_step(f"model {source}" + (f"@{revision}" if revision else ""))
        path = resolve_model_source(source, revision=revision, progress=progress)
        if parse_hub_source(source) is not None:
            from oxstudy.hub import source_provenance

            resolved["models"][source] = source_provenance(source, path, revision)
    datasets = {json.dumps(cell.data.model_dump(mode="json"), sort_keys=True): cell.data for cell in cells}
    for data in datasets.values():
        hub_sources = [(data.source, data.revision)]
        if data.preference.dataset is not None:
            hub_sources.append((data.preference.dataset.source, data.preference.dataset.revision))
        for source, revision in hub_sources:
            repo_id = parse_hub_source(source) if source.startswith("hf:") else None
            if repo_id is not None:
                if on_step is not None:
                    on_step(f"dataset {source}")
                snapshot = resolve(repo_id, repo_type="dataset", revision=revision, progress=progress)
                resolved["datasets"][source] = snapshot.provenance()
        if on_step is not None:
            on_step(f"data {data.source}")
        load_examples(data)
    from oxstudy.freezing import preflight_freeze

    preflight_freeze(cells)  # freeze / trainable patterns against the models' real parameter names
    return resolved


def _check_engines(cells: list[Cell]) -> None:
    """vLLM asked for explicitly (evaluation or rollouts) must run on this machine."""
    from oxstudy.engines import VLLM_INSTALL_HINT, vllm_unavailable_reason

    wants: list[str] = []
    for cell in cells:
        if any((b.backend or cell.evaluation.backend) == "vllm" for b in cell.benchmarks):
            wants.append("evaluation.backend / benchmarks[].backend: vllm")
        if cell.execution.rollouts.use_vllm is True:
            wants.append("execution.rollouts.use_vllm: true")
    if wants:
        reason = vllm_unavailable_reason()
        if reason is not None:
            raise OxstudyError(f"{wants[0]}: vLLM asked for but {reason}; use hf / auto, or {VLLM_INSTALL_HINT}")


def _base_record(cell: Cell, attempt: int) -> dict[str, Any]:
    return {"run_id": cell.run_id, "study": cell.study, "cell": cell.model_dump(mode="json"), "attempts": attempt}


def record_failure(store: Store, cell: Cell | dict[str, Any], *, attempt: int, reason: str, log_tail: str = "",
                   timings: dict[str, Any] | None = None) -> None:
    """Write a ``failed`` record (used by workers and by drivers for timeouts and kills)."""
    cell = cell if isinstance(cell, Cell) else Cell.model_validate(cell)
    record = _base_record(cell, attempt)
    record.update(
        status="failed",
        error={"reason": reason, "log_tail": log_tail},
        timings=timings or {"finished_at": now_iso()},
        metrics={}, items={}, curves={},
        provenance=provenance(),
    )  # fmt: skip
    store.write_record(record)


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _device_name(device: str) -> str:
    import platform

    if device == "cuda":
        import torch

        return f"cuda:{torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}"
    return f"cpu:{platform.processor() or platform.machine()} ({os.cpu_count()} cores)"


def _run(cell: Cell, store: Store, progress: ProgressWriter, timings: dict[str, Any]) -> dict[str, Any]:
    """The pipeline proper; raises on failure."""
    from oxstudy.evaluation import evaluate_model
    from oxstudy.selfplay import prepare_data
    from oxstudy.training import train_cell
    from oxstudy.zoo import model_param_count, resolve_model_source

    work = store.cell_dir(cell.run_id)
    device = _device()

    progress("data", force=True)
    started = time.perf_counter()
    model_path = resolve_model_source(cell.model.source, revision=cell.model.revision, prefer_cache=True)
    params = cell.model.params or model_param_count(model_path)
    data = prepare_data(cell, model_path, cache_dir=store.root / "selfplay", device=device)
    timings["data_s"] = round(time.perf_counter() - started, 3)

    progress("train", force=True)
    started = time.perf_counter()
    result = train_cell(
        cell, model_path=model_path, output_dir=work / "train", data=data,
        progress=lambda step, total: progress("train", step, total), device=device,
    )  # fmt: skip
    timings["train_s"] = round(time.perf_counter() - started, 3)

    progress("eval", 0, len(cell.benchmarks), force=True)
    started = time.perf_counter()
    vllm_args = _vllm_eval_args(cell, result, model_path, work, device)
    evaluation = evaluate_model(
        result.model, cell.benchmarks, result.tokenizer, device=device,
        on_benchmark=lambda index, total, _name: progress("eval", index, total, force=True),
        backend=cell.evaluation.backend, vllm_model_args=vllm_args,
    )  # fmt: skip
    timings["eval_s"] = round(time.perf_counter() - started, 3)

    # Post-training measurements (oxstudy/anatomy.py): what changed inside the model.
    from oxstudy.anatomy import measure_after_training
    from oxstudy.passk import pass_at_k_outcomes

    started = time.perf_counter()
    measured = measure_after_training(cell, result.model, result.tokenizer, model_path, store_root=store.root,
                                      device=device, progress=lambda name: progress(name, force=True))
    timings["measure_s"] = round(time.perf_counter() - started, 3)
    timings.update(measured.pop("timings"))
    for bench_id, entry in (measured["pass_at_k"] or {}).items():
        extra_metrics, extra_items = pass_at_k_outcomes(bench_id, entry)
        evaluation["metrics"].update(extra_metrics)
        evaluation["items"].update(extra_items)
    roles = {b.id: b.role for b in cell.benchmarks if getattr(b, "role", None)}
    for bench_id, role in roles.items():
        evaluation["metrics"][bench_id]["role"] = role

    return {
        "params": params,
        "metrics": evaluation["metrics"],
        "items": evaluation["items"],
        "curves": result.curves,
        "train": {
            "final_loss": result.final_loss, "steps": result.steps, "setup_s": round(result.setup_s, 3),
            "data": getattr(data, "stats", {}), "trl_config": result.config,
            # steps actually taken x examples per step: "same accuracy at 45% of the steps" is measured
            "selection": getattr(data, "selection", {}),
            "examples_consumed": result.steps * int(getattr(data, "selection", {}).get("prompts_per_step", 0)),
            **result.regime,
        },
        "device": _device_name(device),
        "measurements": {**measured, "frozen_parameters": result.frozen},
        "inputs": _input_provenance(cell, model_path, result, evaluation),
    }  # fmt: skip


def _vllm_eval_args(cell: Cell, result: Any, model_path: str, work: Path, device: str) -> dict[str, Any] | None:
    """lm-eval vllm model_args for the trained model when any benchmark evaluates on vLLM:
    the merged checkpoint written to disk, or the base model + the saved LoRA adapter."""
    from oxstudy.engines import eval_backend, vllm_eval_model_args
    from oxstudy.training import num_processes

    engines = [eval_backend(b.backend, cell.evaluation.backend, device=device) for b in cell.benchmarks]
    if "vllm" not in engines:
        return None
    options = {"tensor_parallel_size": num_processes(cell), "gpu_memory_utilization": cell.evaluation.gpu_memory_utilization,
               "dtype": cell.evaluation.dtype, "seed": cell.seed}  # fmt: skip
    if cell.evaluation.lora == "enable_lora" and result.adapter_dir:
        rank = (cell.model.lora.r if cell.model.lora is not None else 16)
        return vllm_eval_model_args(model_path, lora_local_path=result.adapter_dir, lora_rank=rank, **options)
    checkpoint = work / EVAL_CHECKPOINT
    result.model.save_pretrained(checkpoint)
    result.tokenizer.save_pretrained(checkpoint)
    if set(engines) == {"vllm"} and device == "cuda":
        # vLLM sizes its cache from the free GPU memory: give it what the trained copy held.
        import gc

        import torch

        result.model.to("cpu")
        gc.collect()
        torch.cuda.empty_cache()
    return vllm_eval_model_args(str(checkpoint), **options)


def _input_provenance(cell: Cell, model_path: str, result: Any, evaluation: dict[str, Any]) -> dict[str, Any]:
    """The exact inputs of a run: the model's (hub commit / zoo hash / path), each hub
    dataset's commit, the rollout engine and the evaluation engine of each benchmark."""
    from oxstudy.hub import parse_hub_source, resolve, source_provenance

    datasets = {}
    sources = [(cell.data.source, cell.data.revision)]
    if cell.data.preference.dataset is not None:
        sources.append((cell.data.preference.dataset.source, cell.data.preference.dataset.revision))
    for source, revision in sources:
        repo_id = parse_hub_source(source) if source.startswith("hf:") else None
        if repo_id is not None:  # cached by now: no request
            datasets[source] = resolve(repo_id, repo_type="dataset", revision=revision, prefer_cache=True).provenance()
    config = getattr(result, "config", None) or {}
    return {
        "model": source_provenance(cell.model.source, model_path, cell.model.revision),
        "datasets": datasets,
        "rollouts": {k: config[k] for k in ("use_vllm", "vllm_mode", "vllm_gpu_memory_utilization",
                                            "vllm_server_base_url") if k in config} if "use_vllm" in config else None,
        "evaluation": {bench: {"backend": m.get("backend"), "args": m.get("backend_args")}
                       for bench, m in evaluation["metrics"].items()},
    }  # fmt: skip


def execute_cell(cell: dict[str, Any] | Cell, store_root: str, *, attempt: int = 1, threads: int | None = None,
                 redirect: bool = True) -> dict[str, Any]:
    """Run one cell and write its record; return ``{run_id, status, attempts, reason, wall_s}``.

    Never raises for a failure of the cell itself. ``threads`` caps torch's intra-op threads
    (local workers divide the machine's cores between them).
    """
    cell = cell if isinstance(cell, Cell) else Cell.model_validate(cell)
    store = Store(store_root)
    work = store.cell_dir(cell.run_id)
    work.mkdir(parents=True, exist_ok=True)
    log_path = work / LOG_NAME
    progress = ProgressWriter(work / PROGRESS_NAME)
    timings: dict[str, Any] = {"started_at": now_iso()}
    wall = time.perf_counter()
    if threads:
        import torch

        torch.set_num_threads(threads)
    outcome: dict[str, Any] = {"run_id": cell.run_id, "attempts": attempt}
    output = redirect_output(log_path) if redirect else contextlib.nullcontext()
    with output:
        print(f"== oxstudy cell {cell.label} run {cell.run_id} attempt {attempt} at {timings['started_at']}", flush=True)
        try:
            result = _run(cell, store, progress, timings)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a record
            if isinstance(exc, OxstudyError):
                reason = "; ".join(exc.messages)
            else:
                reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
            traceback.print_exc()
            sys.stderr.flush()
            timings.update(total_s=round(time.perf_counter() - wall, 3), finished_at=now_iso())
            record_failure(store, cell, attempt=attempt, reason=reason, log_tail=log_tail(log_path), timings=timings)
            progress("failed", force=True)
            outcome.update(status="failed", reason=reason, wall_s=timings["total_s"])
            return outcome
        timings.update(total_s=round(time.perf_counter() - wall, 3), finished_at=now_iso())
        record = _base_record(cell, attempt)
        record.update(
            status="done", error=None, timings=timings, params=result["params"], metrics=result["metrics"],
            items=result["items"], curves=result["curves"], train=result["train"],
            provenance={**provenance(device=result["device"]), "inputs": result["inputs"]},
            **result["measurements"],
        )  # fmt: skip
        store.write_record(record)
        print(f"== done in {timings['total_s']} s", flush=True)
    if not cell.execution.keep_checkpoints:
        shutil.rmtree(work / "train", ignore_errors=True)
        shutil.rmtree(work / EVAL_CHECKPOINT, ignore_errors=True)
    progress("done", force=True)
    outcome.update(status="done", reason=None, wall_s=timings["total_s"])
    return outcome
