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
import re
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
    and SLURM jobs on a shared filesystem. Throttled to one write every ``interval``
    seconds, except that a new phase and the last step of a phase are always written (a
    short training run would otherwise never get past ``train 0/0``). The latest training
    step stays in the file as ``train: [step, total]`` through the later phases.
    """

    def __init__(self, path: Path, interval: float = 0.5) -> None:
        self.path = path
        self.interval = interval
        self._last = 0.0
        self._phase: str | None = None
        self.train: list[int] | None = None
        self.started_at = time.time()  # the driver counts a cell's time limit from here

    def __call__(self, phase: str, step: int = 0, total: int = 0, force: bool = False) -> None:
        if phase == "train" and total:
            self.train = [int(step), int(total)]
        now = time.monotonic()
        boundary = phase != self._phase or (total and step >= total)
        if not force and not boundary and now - self._last < self.interval:
            return
        self._last, self._phase = now, phase
        payload: dict[str, Any] = {"phase": phase, "step": step, "total": total, "updated_at": time.time(),
                                   "started_at": self.started_at}
        if self.train is not None:
            payload["train"] = self.train
        with contextlib.suppress(OSError):  # progress is a courtesy: never fail a cell over it
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
            with contextlib.suppress(OSError):  # a full disk must not hide the cell's own error
                sys.stdout.flush()
                sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def preflight(cells: list[Cell], on_step: Any = None, spec: Any = None, *, progress: Any = None,
              check_machine: bool = True) -> dict[str, Any]:
    """Check, once in the driver, everything a cell would otherwise discover on its own.

    In order of cost, so that a typo fails within seconds:

    1. every benchmark task resolves (a bundled task, a task YAML path, or a task in
       lm-eval's registry) and every benchmark's ``metric`` is a ``metric,filter`` key that
       task produces (see :func:`task_metric_keys`);
    2. the chosen ``report_to`` trackers are installed; with ``check_machine`` (cells run on
       this machine) a vLLM backend asked for explicitly must be usable here;
    3. each hub model is resolved: downloaded here, with a bar in ``progress`` when given, or
       taken from the local cache when ``HF_HUB_OFFLINE`` is set; a gated, missing or uncached
       repo fails now, with one line naming it;
    4. the hub dataset of each lm-eval benchmark task is resolved like a model and prepared
       for lm-eval's ``load_dataset`` (:func:`benchmark_datasets`); then zoo models are built
       (here once instead of by several workers at a time);
    5. every method's settings are accepted by its TRL config (oxstudy's registry checks,
       then the real TRL config object is constructed, as the worker would);
    6. ``hf:`` datasets are resolved like models and the training data is loaded;
    7. ``training.freeze`` / ``trainable`` patterns match the models' real parameter names.

    ``spec``: the study spec the cells come from; problems are then located
    ``FILE:LINE: benchmarks[i].metric: ...`` in its YAML. Returns the resolved hub commits
    ``{"models": {source: {...}}, "datasets": {source: {...}}, "benchmark_datasets": {task: {...}}}``
    (workers record the same commits from the cache, ``inputs`` of each run record). Raises ``OxstudyError`` with
    one line per problem.
    """
    from oxstudy.hub import parse_hub_source, resolve
    from oxstudy.selfplay import load_examples
    from oxstudy.zoo import resolve_model_source

    def step(what: str) -> None:
        if on_step is not None:
            on_step(what)

    locate = _locator(spec)
    bench_index = {b.id: i for i, b in enumerate(getattr(spec, "benchmarks", []) or [])}
    benchmarks = {json.dumps(b.model_dump(mode="json"), sort_keys=True): b for c in cells for b in c.benchmarks}
    problems: list[str] = []
    for bench in benchmarks.values():
        step(f"benchmark {bench.id} ({bench.task})")
        problem = benchmark_problem(bench)
        if problem:
            field_name, message = problem
            problems.append(locate(("benchmarks", bench_index.get(bench.id, bench.id), field_name), message))
    if problems:
        raise OxstudyError(*dict.fromkeys(problems))
    from oxstudy.tracking import missing_trackers

    chosen = sorted({name for cell in cells for name in cell.execution.report_to})
    problems = [locate(("execution", "report_to"), message) for message in missing_trackers(chosen)]
    index = {section: {item.id: i for i, item in enumerate(getattr(spec, section, []) or [])}
             for section in ("algorithms", "models")}
    if problems:
        raise OxstudyError(*dict.fromkeys(problems))
    if check_machine:
        _check_engines(cells)
    resolved: dict[str, dict[str, Any]] = {"models": {}, "datasets": {}}
    sources = list(dict.fromkeys((cell.model.source, cell.model.revision) for cell in cells))
    is_hub = {source: parse_hub_source(source) is not None for source, _ in sources}

    def resolve_models(hub: bool) -> None:
        for source, revision in sources:
            if is_hub[source] != hub:
                continue
            step(f"model {source}" + (f"@{revision}" if revision else ""))
            path = resolve_model_source(source, revision=revision, progress=progress)
            if hub:
                from oxstudy.hub import source_provenance

                resolved["models"][source] = source_provenance(source, path, revision)

    # Hub models first: a spec written for a GPU box fails offline on its model, the first thing a
    # user must fetch; zoo models (minutes to build) only after the cheap dataset checks.
    resolve_models(hub=True)
    resolved["benchmark_datasets"] = benchmark_datasets(benchmarks.values(), locate, bench_index, step, progress)
    resolve_models(hub=False)
    for where, message in trainer_config_problems(cells, on_step=step):
        section, item, *rest = where
        problems.append(locate((section, index[section].get(item, item), *rest) if section in index else where, message))
    if problems:
        from oxstudy.errors import SpecError

        raise SpecError(*dict.fromkeys(problems))
    datasets = {json.dumps(cell.data.model_dump(mode="json"), sort_keys=True): cell.data for cell in cells}
    for data in datasets.values():
        hub_sources = [(data.source, data.revision)]
        if data.preference.dataset is not None:
            hub_sources.append((data.preference.dataset.source, data.preference.dataset.revision))
        for source, revision in hub_sources:
            repo_id = parse_hub_source(source) if source.startswith("hf:") else None
            if repo_id is not None:
                step(f"dataset {source}")
                snapshot = resolve(repo_id, repo_type="dataset", revision=revision, progress=progress)
                resolved["datasets"][source] = snapshot.provenance()
        step(f"data {data.source}")
        load_examples(data)
    from oxstudy.freezing import preflight_freeze

    preflight_freeze(cells)  # freeze / trainable patterns against the models' real parameter names
    return resolved


#: ``datasets`` builders named by a task's ``dataset_path`` that read local files, not a hub repo.
_PACKAGED_BUILDERS = {"json", "csv", "parquet", "text", "arrow", "pandas", "webdataset", "imagefolder",
                      "audiofolder", "videofolder", "xml", "sql", "generator", "cache"}  # fmt: skip


def task_hub_datasets(task: str) -> list[tuple[str, str | None, dict[str, Any]]]:
    """``(repo_id, dataset_name, dataset_kwargs)`` of each hub dataset lm-eval loads for ``task``
    (``datasets.load_dataset(dataset_path, dataset_name, **dataset_kwargs)``), through groups
    (``mmlu``, ``minerva_math``) and tags down to their tasks. Empty for a bundled task, a
    local-file task (``dataset_path: json`` ...) or a Python-class task."""
    from lm_eval.tasks._yaml_loader import load_yaml

    from oxstudy.evaluation import _manager, _task_manager, resolve_task
    from oxstudy.hub import parse_hub_source

    resolved = resolve_task(task)
    if resolved.source == "bundled":
        return []
    found: dict[tuple[str, str | None], dict[str, Any]] = {}
    todo, seen = [resolved.name], set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        if resolved.source == "lm-eval":
            kind, yaml_path = lm_eval_task_index().get(name, (None, None))
        else:
            entry = _task_manager(resolved).task_index.get(name)
            kind, yaml_path = (getattr(entry.kind, "name", str(entry.kind)), entry.yaml_path) if entry else (None, None)
        if kind == "TAG":  # members are the tasks whose YAML says `tag: NAME`: only the full index knows them
            entry = _manager(resolved.include_path, True).task_index.get(name)
            todo += sorted(getattr(entry, "tags", ()) or ())
            continue
        if kind not in ("TASK", "GROUP") or yaml_path is None:
            continue
        try:
            config = load_yaml(str(yaml_path), resolve_func=False, recursive=True)
        except Exception:  # noqa: BLE001 - an unreadable config is lm-eval's to report at run time
            continue
        if kind == "GROUP":
            members = config.get("task") or []
            todo += [m if isinstance(m, str) else m.get("task") for m in members if isinstance(m, (str, dict))]
            todo = [m for m in todo if isinstance(m, str)]
            continue
        path, kwargs = config.get("dataset_path"), config.get("dataset_kwargs") or {}
        hub_repo = isinstance(path, str) and path not in _PACKAGED_BUILDERS and parse_hub_source(path) is not None
        if hub_repo and "class" not in config and not Path(path).exists():
            found.setdefault((path, config.get("dataset_name")), dict(kwargs) if isinstance(kwargs, dict) else {})
    return [(repo_id, name, kwargs) for (repo_id, name), kwargs in sorted(found.items(), key=str)]


def benchmark_datasets(benchmarks: Any, locate: Any, bench_index: dict[str, int], step: Any = None,
                       progress: Any = None) -> dict[str, dict[str, Any]]:
    """Resolve, once in the driver, the hub dataset each lm-eval benchmark task reads.

    The snapshot is downloaded (a bar in ``progress``) or, with ``HF_DATASETS_OFFLINE`` /
    ``HF_HUB_OFFLINE``, taken from the hub cache; a gated, missing or uncached repo is one line
    ``FILE:LINE: benchmarks[i].task: ...``. Then ``datasets.load_dataset`` is made to work as
    lm-eval calls it (:func:`oxstudy.hub.prepare_for_load_dataset`): the prepared copy is built
    here once and every cell reuses it, instead of several cells building it at once, or
    failing offline after training. Returns ``{task: [hub provenance + dataset name, ...]}``.
    """
    from oxstudy.errors import ResourceError
    from oxstudy.hub import prepare_for_load_dataset, resolve

    resolved: dict[str, list[dict[str, Any]]] = {}
    problems: list[str] = []
    for bench in benchmarks:
        if bench.task in resolved:
            continue
        where = ("benchmarks", bench_index.get(bench.id, bench.id), "task")
        resolved[bench.task] = []
        snapshots: dict[tuple[str, str | None], Any] = {}
        for repo_id, name, kwargs in task_hub_datasets(bench.task):
            if step is not None:
                step(f"benchmark {bench.id}: dataset {repo_id}" + (f" ({name})" if name else ""))
            try:
                key = (repo_id, kwargs.get("revision"))
                if key not in snapshots:  # one snapshot per repo, however many configs the group reads
                    snapshots[key] = resolve(repo_id, repo_type="dataset", revision=key[1], progress=progress)
                prepare_for_load_dataset(snapshots[key], name, kwargs)
            except ResourceError as exc:
                problems += [locate(where, f"benchmark {bench.id} (task {bench.task}) reads {m}") for m in exc.messages]
                break
            resolved[bench.task].append({**snapshots[key].provenance(), "name": name})
        if not resolved[bench.task]:
            del resolved[bench.task]
    if problems:
        raise ResourceError(*dict.fromkeys(problems))
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


def _locator(spec: Any):
    """``(path, message) -> "FILE:LINE: path: message"`` for the spec's YAML (``<spec>:1`` without one)."""
    from oxstudy.yamlsource import SourceMap, located

    source = SourceMap()
    path = getattr(spec, "spec_path", None)
    if path is not None:
        from oxstudy.spec import _read_with_extends

        with contextlib.suppress(OxstudyError, OSError):
            source = _read_with_extends(Path(path))[1]
    return lambda key, message: located(source, key, message)


def task_metric_keys(task: str) -> set[str] | None:
    """The ``metric,filter`` result keys lm-eval reports for ``task``, from its config.

    ``metric_list`` x ``filter_list`` names (``none`` without filters; lm-eval's defaults for
    the output type without a metric list). None when the keys cannot be known without
    running the task (a group, a Python-class task, a metric given as a function).
    Raises ``InputError`` when the task does not resolve.
    """
    from lm_eval.api.registry import DEFAULT_METRIC_REGISTRY
    from lm_eval.tasks._yaml_loader import load_yaml

    from oxstudy.errors import InputError
    from oxstudy.evaluation import _task_manager, resolve_task

    resolved = resolve_task(task)
    if resolved.source == "lm-eval":
        entry = lm_eval_task_index().get(resolved.name)
        if entry is None:
            raise InputError(f"{task}: not a bundled task, a task YAML path, or an lm-eval task name")
        kind, yaml_path = entry
    else:
        found = _task_manager(resolved).task_index.get(resolved.name)
        if found is None:
            raise InputError(f"{task}: not a bundled task, a task YAML path, or an lm-eval task name")
        kind, yaml_path = getattr(found.kind, "name", str(found.kind)), found.yaml_path
    if kind != "TASK" or yaml_path is None:
        return None
    try:
        config = load_yaml(yaml_path, resolve_func=False)
    except Exception:  # noqa: BLE001 - an unreadable config is lm-eval's to report at run time
        return None
    if "class" in config:
        return None
    metric_list = config.get("metric_list")
    if metric_list is None:
        metrics = list(DEFAULT_METRIC_REGISTRY.get(config.get("output_type", "generate_until"), []))
    else:
        metrics = [m.get("metric") if isinstance(m, dict) else None for m in metric_list]
    if not metrics or not all(isinstance(m, str) for m in metrics):
        return None
    filters = [f.get("name") for f in config.get("filter_list") or [] if isinstance(f, dict)] or ["none"]
    return {f"{metric},{name}" for metric in metrics for name in filters}


def lm_eval_task_index() -> dict[str, tuple[str, str | None]]:
    """lm-eval's built-in tasks: ``name -> (kind, yaml path)``, cached per lm-eval version.

    Indexing lm-eval's ~14,700 task YAMLs takes ~6 s on an idle machine (a minute on a busy
    one); pre-flight needs only names and paths, so the index is kept as one JSON file under
    the oxstudy cache and built once per installed lm-eval.
    """
    import lm_eval

    from oxstudy.evaluation import _manager, lm_eval_version
    from oxstudy.store import atomic_write_text
    from oxstudy.tasks.suite import cache_root

    path = cache_root() / "lm_eval_index" / f"{lm_eval_version()}-{_short_digest(str(Path(lm_eval.__file__).parent))}.json"
    with contextlib.suppress(OSError, ValueError):
        return {name: (kind, yaml_path) for name, (kind, yaml_path) in json.loads(path.read_text()).items()}
    index = {name: (getattr(entry.kind, "name", str(entry.kind)), str(entry.yaml_path) if entry.yaml_path else None)
             for name, entry in _manager(None, True).task_index.items()}
    with contextlib.suppress(OSError):  # a read-only cache only costs the next run the index again
        atomic_write_text(path, json.dumps(index))
    return index


def _short_digest(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _did_you_mean(task: str) -> str:
    import difflib

    from oxstudy.tasks import TASKS

    names = list(TASKS)
    if task not in TASKS and not task.endswith((".yaml", ".yml")):
        with contextlib.suppress(Exception):
            names += list(lm_eval_task_index())
    close = difflib.get_close_matches(task, names, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def benchmark_problem(bench: Any) -> tuple[str, str] | None:
    """``(field, message)`` if ``bench``'s task does not resolve or does not produce its metric."""
    try:
        keys = task_metric_keys(bench.task)
    except OxstudyError as exc:
        return "task", "; ".join(exc.messages) + _did_you_mean(bench.task)
    if keys is not None and bench.metric not in keys:
        return "metric", (f"'{bench.metric}' is not a result of task '{bench.task}' "
                          f"(it reports: {', '.join(sorted(keys))})")
    return None


def trainer_config_problems(cells: list[Cell], on_step: Any = None) -> list[tuple[tuple[str, ...], str]]:
    """``((section, id, field...), message)`` for every method setting its TRL config would reject
    (``section`` is ``algorithms`` or ``models``).

    Builds the TRL config of every distinct setting exactly as a worker does, without a
    model: catches what oxstudy's registry rejects (unknown or ignored hyperparameters,
    LoRA where a method cannot use it) and what TRL's own config rejects in its
    ``__post_init__``, before any cell trains. The configs are built in a child of the
    local backend's fork server (torch and TRL already imported there): building a GPU
    config initialises CUDA, which must not happen in the driver.
    """
    distinct: dict[str, Cell] = {}
    for cell in cells:
        key = json.dumps([cell.model.finetune, cell.algorithm.model_dump(mode="json"),
                          cell.training.model_dump(mode="json"), cell.execution.gpus_per_run], sort_keys=True)
        distinct.setdefault(key, cell)
    if on_step is not None:
        on_step(f"settings of {', '.join(dict.fromkeys(c.algorithm.id for c in distinct.values()))}")
    payload = [cell.model_dump(mode="json") for cell in distinct.values()]
    import multiprocessing

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["oxstudy._preload"])  # the same server the local runner uses
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=_config_problems_child, args=(payload, _preflight_device(cells), send),
                              name="oxstudy-preflight")
    process.start()
    send.close()
    try:
        found = receive.recv()
    except EOFError:  # the checker died: leave the settings to the cells rather than block the run
        found = []
    except BaseException:  # Ctrl-C: the child ignores SIGINT (oxstudy._preload), so stop it here
        process.kill()
        raise
    finally:
        receive.close()
        process.join()
    return [(tuple(where), message) for where, message in found]


def _config_problems_child(payload: list[dict[str, Any]], device: str, send: Any) -> None:
    import tempfile
    import warnings

    from oxstudy.training import build_config

    problems: list[tuple[list[str], str]] = []
    with tempfile.TemporaryDirectory(prefix="oxstudy-preflight-") as scratch:
        for data in payload:
            cell = Cell.model_validate(data)
            try:
                with warnings.catch_warnings():  # deprecation notices belong in the cells' logs
                    warnings.simplefilter("ignore")
                    build_config(cell, scratch, device)
            except OxstudyError as exc:
                for message in exc.messages:
                    # build_config names the field as "algorithms[ID].field: ..." / "models[ID].field: ..."
                    found = re.match(r"(algorithms|models)\[([^\]]+)\]((?:\.\w+)*): (.*)", message, re.DOTALL)
                    shared = re.match(r"(training|execution)((?:\.\w+)+): (.*)", message, re.DOTALL)
                    if found:
                        section, item_id, fields, text = found.groups()
                        problems.append(([section, item_id, *filter(None, fields.split("."))], text))
                    elif shared:
                        section, fields, text = shared.groups()
                        problems.append(([section, *filter(None, fields.split("."))],
                                         f"{text} (algorithm {cell.algorithm.id})"))
                    else:
                        problems.append((["algorithms", cell.algorithm.id], message))
            except (TypeError, ValueError) as exc:  # TRL / transformers reject a value
                text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                problems.append((["algorithms", cell.algorithm.id],
                                 f"{cell.algorithm.method}: TRL rejects these settings: {text}"))
    with contextlib.suppress(OSError):  # the driver was interrupted (Ctrl-C) and left: nobody to tell
        send.send(problems)
        send.close()


def _preflight_device(cells: list[Cell]) -> str:
    """The device the workers will train on, without initialising CUDA in the driver."""
    from runners.local import detect_gpus

    return "cuda" if detect_gpus() else "cpu"


# ----------------------------------------------------------------- failures


#: ``error.failure_class`` of a failed record. Deterministic failures repeat on every
#: attempt (bad settings, an unknown task or metric, a NaN loss from a seeded
#: configuration, a store that cannot be written) and are not retried; transient ones
#: (a killed worker, out of memory, a timeout, an unexpected exception) are.
DETERMINISTIC = "deterministic"
TRANSIENT = "transient"


def classify_failure(exc: BaseException) -> tuple[str, str]:
    """``(kind, failure_class)`` of an exception raised by a cell."""
    from oxstudy.store import is_storage_error

    name = type(exc).__name__
    if name == "NonFiniteLossError":
        return "non-finite-loss", DETERMINISTIC
    if name == "OutOfMemoryError" or isinstance(exc, MemoryError):
        return "out-of-memory", TRANSIENT
    if is_storage_error(exc):
        return "storage", DETERMINISTIC
    if isinstance(exc, OxstudyError):
        return "input", DETERMINISTIC
    return "exception", TRANSIENT


def _base_record(cell: Cell, attempt: int) -> dict[str, Any]:
    return {"run_id": cell.run_id, "study": cell.study, "cell": cell.model_dump(mode="json"), "attempts": attempt}


def record_failure(store: Store, cell: Cell | dict[str, Any], *, attempt: int, reason: str, log_tail: str = "",
                   timings: dict[str, Any] | None = None, kind: str = "exception",
                   failure_class: str = TRANSIENT) -> None:
    """Write a ``failed`` record (used by workers and by drivers for timeouts and kills).

    ``kind`` names what failed (``killed``, ``timeout``, ``non-finite-loss``, ``storage``,
    ``input``, ...); ``failure_class`` is ``deterministic`` (not retried) or ``transient``.
    """
    cell = cell if isinstance(cell, Cell) else Cell.model_validate(cell)
    record = _base_record(cell, attempt)
    record.update(
        status="failed",
        error={"reason": reason, "kind": kind, "failure_class": failure_class, "log_tail": log_tail},
        timings=timings or {"finished_at": now_iso()},
        metrics={}, items={}, curves={},
        provenance=provenance(),
    )  # fmt: skip
    store.write_record(record)


def failure_class_of(record: dict[str, Any]) -> str:
    """A failed record's class (records written before classes existed count as transient)."""
    return (record.get("error") or {}).get("failure_class") or TRANSIENT


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
    from oxstudy.tracking import tracking_env
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
    with tracking_env(cell, store.root):
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
        "benchmark_datasets": _benchmark_dataset_provenance(cell),
        "rollouts": {k: config[k] for k in ("use_vllm", "vllm_mode", "vllm_gpu_memory_utilization",
                                            "vllm_server_base_url") if k in config} if "use_vllm" in config else None,
        "evaluation": {bench: {"backend": m.get("backend"), "args": m.get("backend_args")}
                       for bench, m in evaluation["metrics"].items()},
    }  # fmt: skip


def _benchmark_dataset_provenance(cell: Cell) -> dict[str, dict[str, Any]]:
    """``{benchmark id: [hub commit, ...]}`` of each lm-eval task's hub datasets, from the hub cache the
    pre-flight filled (no request; a benchmark whose snapshot is not cached is left out)."""
    from oxstudy.hub import resolve

    found: dict[str, list[dict[str, Any]]] = {}
    for bench in cell.benchmarks:
        with contextlib.suppress(OxstudyError):
            for repo_id, name, kwargs in task_hub_datasets(bench.task):
                snapshot = resolve(repo_id, repo_type="dataset", revision=kwargs.get("revision"), download=False)
                found.setdefault(bench.id, []).append({**snapshot.provenance(), "name": name})
    return found


def execute_cell(cell: dict[str, Any] | Cell, store_root: str, *, attempt: int = 1, threads: int | None = None,
                 redirect: bool = True, corpus_shas: dict[str, str] | None = None) -> dict[str, Any]:
    """Run one cell and write its record; return ``{run_id, status, attempts, reason, failure_class,
    recorded, wall_s}``.

    Never raises for a failure of the cell itself. ``threads`` caps torch's intra-op threads
    (local workers divide the machine's cores between them). When the store cannot be
    written (disk full, read-only), the outcome carries the real cause as ``reason`` and
    ``recorded`` is False: the driver then knows why there is no record. ``corpus_shas``: the
    driver's zoo corpus hashes (``oxstudy.zoo.corpus_sha_memo``), so a worker process does not
    regenerate the corpus (about 2 s) to find its model.
    """
    from oxstudy import zoo
    from oxstudy.store import describe_os_error, is_storage_error

    zoo.remember_corpus_shas(corpus_shas)

    cell = cell if isinstance(cell, Cell) else Cell.model_validate(cell)
    store = Store(store_root)
    _no_interprocess_tqdm_lock()
    outcome: dict[str, Any] = {"run_id": cell.run_id, "attempts": attempt, "recorded": True}
    wall = time.perf_counter()
    try:
        with _zoo_seed_of(cell):
            return _execute_cell(cell, store, outcome, attempt=attempt, threads=threads, redirect=redirect)
    except OSError as exc:
        if not is_storage_error(exc):
            raise
        # The store refused a write outside the pipeline (the log, the record itself): try
        # the small failed record; if even that cannot be written, the outcome says why.
        reason = describe_os_error(exc)
        try:
            record_failure(store, cell, attempt=attempt, reason=reason, kind="storage", failure_class=DETERMINISTIC)
        except OSError:
            outcome["recorded"] = False
        outcome.update(status="failed", reason=reason, failure_class=DETERMINISTIC,
                       wall_s=round(time.perf_counter() - wall, 3))
        return outcome


@contextlib.contextmanager
def _zoo_seed_of(cell: Cell) -> Iterator[None]:
    """``$OXSTUDY_ZOO_SEED`` as the cell was planned with, for the time of the cell (restored
    after). A worker's environment is not the planner's (a remote Ray node, a SLURM job started
    with ``--export=NONE``): without this it would build the default ``zoo:NAME`` for a run id
    that records another pretraining seed, or the reverse."""
    from oxstudy.zoo import SEED_ENV

    if not cell.model.source.startswith("zoo:"):
        yield
        return
    before = os.environ.get(SEED_ENV)
    if cell.zoo_seed is None:
        os.environ.pop(SEED_ENV, None)
    else:
        os.environ[SEED_ENV] = str(cell.zoo_seed)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(SEED_ENV, None)
        else:
            os.environ[SEED_ENV] = before


def _no_interprocess_tqdm_lock() -> None:
    """Keep tqdm from creating its multiprocessing lock in a cell process.

    tqdm's first progress bar (datasets' ``map`` in every TRL trainer) creates a
    ``multiprocessing.RLock``: a named POSIX semaphore registered with the resource tracker
    shared with the driver. A cell killed before it exits (by the driver on a timeout or an
    interrupt, by the OOM killer) never unregisters it, and the tracker prints "There
    appear to be 1 leaked semaphore objects to clean up at shutdown". A cell's output goes
    to its own log, so tqdm's thread lock is all it needs.
    """
    with contextlib.suppress(ImportError):
        from tqdm.std import TqdmDefaultWriteLock

        if not hasattr(TqdmDefaultWriteLock, "mp_lock"):
            TqdmDefaultWriteLock.mp_lock = None


def _execute_cell(cell: Cell, store: Store, outcome: dict[str, Any], *, attempt: int, threads: int | None,
                  redirect: bool) -> dict[str, Any]:
    work = store.cell_dir(cell.run_id)
    work.mkdir(parents=True, exist_ok=True)
    log_path = work / LOG_NAME
    progress = ProgressWriter(work / PROGRESS_NAME)
    timings: dict[str, Any] = {"started_at": now_iso()}
    wall = time.perf_counter()
    if threads:
        import torch

        torch.set_num_threads(threads)
    output = redirect_output(log_path) if redirect else contextlib.nullcontext()
    with output:
        print(f"== oxstudy cell {cell.label} run {cell.run_id} attempt {attempt} at {timings['started_at']}", flush=True)
        try:
            result = _run(cell, store, progress, timings)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a record
            from oxstudy.store import describe_os_error, is_storage_error

            if isinstance(exc, OxstudyError):
                reason = "; ".join(exc.messages)
            elif is_storage_error(exc):
                reason = describe_os_error(exc)  # type: ignore[arg-type]
            else:
                reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
            kind, failure_class = classify_failure(exc)
            with contextlib.suppress(OSError):  # the log may be on the full disk
                traceback.print_exc()
                sys.stderr.flush()
            timings.update(total_s=round(time.perf_counter() - wall, 3), finished_at=now_iso())
            record_failure(store, cell, attempt=attempt, reason=reason, log_tail=log_tail(log_path), timings=timings,
                           kind=kind, failure_class=failure_class)
            progress("failed", force=True)
            outcome.update(status="failed", reason=reason, failure_class=failure_class, wall_s=timings["total_s"])
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
        with contextlib.suppress(OSError):
            print(f"== done in {timings['total_s']} s", flush=True)
    if not cell.execution.keep_checkpoints:
        shutil.rmtree(work / "train", ignore_errors=True)
        shutil.rmtree(work / EVAL_CHECKPOINT, ignore_errors=True)
    progress("done", force=True)
    outcome.update(status="done", reason=None, failure_class=None, wall_s=timings["total_s"])
    return outcome
