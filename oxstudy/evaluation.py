"""Evaluation through lm-eval-harness, with provenance and per-item outcomes.

One ``simple_evaluate`` call per benchmark, so each benchmark's own ``num_fewshot``,
generation settings, chat template and limit are passed through (never a global default),
and the settings lm-eval actually used are read back from its results and recorded. A
requested few-shot count that lm-eval did not apply is an error, not a silent default.

The result has exactly the store record's shape::

    {"metrics": {BENCH_ID: {"task", "metric", "value", "stderr", "n", "num_fewshot", ...}},
     "items":   {BENCH_ID: {"doc_id": [...], "doc_hash": [...], "prompt_hash": [...], "score": [...],
                            "level": [...], "difficulty": [...]}}}

``level`` and ``difficulty`` are present when the task's documents carry them (every
bundled task does), so accuracy can be broken down by difficulty level.

Models are evaluated in memory when one is given (e.g. right after training); a path is
loaded once, and a LoRA adapter directory is loaded onto its base model and merged.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oxstudy.errors import InputError, ResourceError

#: Default ``"metric,filter"`` keys: generative bundled tasks vs multiple choice.
GENERATIVE_METRIC = "exact_match,strict-match"
MULTIPLE_CHOICE_METRIC = "acc,none"


@dataclass
class BenchmarkRequest:
    """A benchmark to evaluate; the same fields as ``oxstudy.spec.BenchmarkSpec`` (which
    can be passed directly: any object with these attributes works)."""

    id: str
    task: str
    num_fewshot: int = 0
    metric: str = GENERATIVE_METRIC
    limit: int | None = None
    in_domain: bool = False
    apply_chat_template: bool = True
    gen_kwargs: dict[str, Any] = field(default_factory=dict)
    batch_size: int = 16
    #: Few-shot examples as alternating chat turns; None = yes when a chat template is applied.
    fewshot_as_multiturn: bool | None = None

    def multiturn(self) -> bool:
        """The effective setting: only meaningful (and allowed by lm-eval) with a chat template."""
        wanted = self.num_fewshot > 0 if self.fewshot_as_multiturn is None else self.fewshot_as_multiturn
        return bool(wanted and self.apply_chat_template)


def _field(bench: Any, name: str, default: Any = None) -> Any:
    if isinstance(bench, dict):
        return bench.get(name, default)
    return getattr(bench, name, default)


def as_request(bench: Any) -> BenchmarkRequest:
    """A ``BenchmarkRequest`` from a BenchmarkSpec-like object, dict, or a bare task name."""
    if isinstance(bench, BenchmarkRequest):
        return bench
    if isinstance(bench, str):
        return BenchmarkRequest(id=_default_id(bench), task=bench, metric=default_metric(bench))
    task = _field(bench, "task")
    if not task:
        raise InputError(f"benchmark {bench!r}: no task given")
    return BenchmarkRequest(
        id=_field(bench, "id") or _default_id(task),
        task=str(task),
        num_fewshot=int(_field(bench, "num_fewshot", 0) or 0),
        metric=_field(bench, "metric") or default_metric(task),
        limit=_field(bench, "limit"),
        in_domain=bool(_field(bench, "in_domain", False)),
        apply_chat_template=bool(_field(bench, "apply_chat_template", True)),
        gen_kwargs=dict(_field(bench, "gen_kwargs") or {}),
        batch_size=int(_field(bench, "batch_size", 16) or 16),
        fewshot_as_multiturn=_field(bench, "fewshot_as_multiturn", None),
    )


def _default_id(task: str) -> str:
    return Path(task).stem if task.endswith((".yaml", ".yml")) else task


def default_metric(task: str) -> str:
    """The natural metric key for a task: ``acc,none`` for bundled multiple choice,
    ``exact_match,strict-match`` otherwise."""
    from oxstudy.tasks import TASKS

    return TASKS[task].metric if task in TASKS else GENERATIVE_METRIC


def lm_eval_version() -> str:
    from importlib.metadata import version

    return version("lm_eval")


# --------------------------------------------------------------------------- tasks


@dataclass
class _ResolvedTask:
    name: str  # the lm-eval task name
    include_path: str | None  # a local directory to index, or None for built-ins
    source: str  # "bundled" | "yaml" | "lm-eval"


def resolve_task(task: str) -> _ResolvedTask:
    """Where lm-eval finds ``task``: a bundled task, a task YAML file, or a built-in name."""
    from oxstudy.tasks import TASKS, materialize_tasks

    if task in TASKS:
        return _ResolvedTask(task, str(materialize_tasks()), "bundled")
    if task.endswith((".yaml", ".yml")):
        path = Path(task).expanduser()
        if not path.is_file():
            raise InputError(f"{task}: task YAML not found")
        import yaml

        class _Loader(yaml.SafeLoader):  # lm-eval YAMLs may hold !function tags
            pass

        _Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
        try:
            config = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader) or {}
        except yaml.YAMLError as exc:
            raise InputError(f"{task}: not valid YAML ({str(exc).splitlines()[0]})") from None
        name = config.get("task") if isinstance(config, dict) else None
        if not isinstance(name, str):
            raise InputError(f"{task}: task YAML has no 'task:' name")
        return _ResolvedTask(name, str(path.resolve().parent), "yaml")
    return _ResolvedTask(task, None, "lm-eval")


_MANAGERS: dict[tuple[str | None, bool], Any] = {}


def _manager(include_path: str | None, include_defaults: bool):
    """A cached TaskManager: indexing lm-eval's built-in tasks takes seconds, do it once."""
    from lm_eval.tasks import TaskManager

    key = (include_path, include_defaults)
    if key not in _MANAGERS:
        _MANAGERS[key] = TaskManager(include_path=include_path, include_defaults=include_defaults)
    return _MANAGERS[key]


def _task_manager(resolved: _ResolvedTask):
    if resolved.include_path is not None:
        # Only local tasks: skip indexing lm-eval's ~14,700 built-in tasks (~6 s).
        manager = _manager(resolved.include_path, False)
        if resolved.name in manager.all_tasks:
            return manager
        return _manager(resolved.include_path, True)  # it builds on built-in templates
    manager = _manager(None, True)
    if resolved.name not in manager.all_tasks:
        raise InputError(f"{resolved.name}: not a bundled task, a task YAML path, or an lm-eval task name")
    return manager


# --------------------------------------------------------------------------- models


def load_model(path: str | Path, device: str | None = None):
    """Load ``(model, tokenizer)`` from a model directory or a LoRA adapter directory
    (adapters are applied to their base model and merged). fp32 on CPU, bf16 on GPU."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(path)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    adapter_config = path / "adapter_config.json"
    try:
        if adapter_config.exists():
            from peft import PeftModel

            from oxstudy.zoo import resolve_model_source

            base_source = json.loads(adapter_config.read_text())["base_model_name_or_path"]
            base_dir = resolve_model_source(base_source)
            base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=dtype)
            model = PeftModel.from_pretrained(base, str(path)).merge_and_unload()
            tokenizer_dir = path if (path / "tokenizer_config.json").exists() else Path(base_dir)
        else:
            model = AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype)
            tokenizer_dir = path
        tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    except OSError as exc:
        raise ResourceError(f"{path}: cannot load model ({str(exc).splitlines()[0]})") from None
    model.to(device)
    model.eval()
    return model, tokenizer


# --------------------------------------------------------------------------- evaluate


def _json_number(value: Any) -> float | None:
    """A finite float, or None (lm-eval reports 'N/A' stderr and numpy scalars)."""
    if value is None or isinstance(value, str):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _short_hash(payload: Any) -> str:
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _quiet_lm_eval() -> None:
    for name in ("lm-eval", "lm_eval", "lm_eval.evaluator", "lm_eval.models.huggingface"):
        logging.getLogger(name).setLevel(logging.WARNING)


def evaluate_model(
    model: Any,
    benchmarks: Sequence[Any],
    tokenizer: Any = None,
    *,
    device: str | None = None,
    on_benchmark: Callable[[int, int, str], None] | None = None,
) -> dict[str, dict[str, Any]]:
    """Evaluate ``model`` on ``benchmarks`` through lm-eval-harness.

    ``model`` is a loaded ``PreTrainedModel`` (evaluated in memory; pass its
    ``tokenizer``) or a path to a model / LoRA adapter directory (loaded once).
    ``benchmarks`` are BenchmarkSpec-like objects, dicts, or task names. Returns
    ``{"metrics": {id: ...}, "items": {id: ...}}`` (JSON-safe; see the module docstring).
    """
    from oxstudy.tasks.suite import TASKS

    requests = [as_request(b) for b in benchmarks]
    ids = [r.id for r in requests]
    if len(set(ids)) != len(ids):
        raise InputError(f"benchmarks: duplicate ids {sorted({i for i in ids if ids.count(i) > 1})}")
    if isinstance(model, (str, Path)):
        model, loaded_tokenizer = load_model(model, device=device)
        tokenizer = tokenizer or loaded_tokenizer
    if tokenizer is None:
        raise InputError("evaluate_model: an in-memory model needs its tokenizer")
    _quiet_lm_eval()
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM

    metrics: dict[str, dict[str, Any]] = {}
    items: dict[str, dict[str, list[Any]]] = {}
    for index, request in enumerate(requests):
        if on_benchmark is not None:
            on_benchmark(index, len(requests), request.id)
        resolved = resolve_task(request.task)
        manager = _task_manager(resolved)
        if request.apply_chat_template and not getattr(tokenizer, "chat_template", None):
            raise InputError(
                f"benchmark {request.id}: apply_chat_template is true but the tokenizer has no chat template"
            )
        lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=request.batch_size)
        try:
            results = simple_evaluate(
                model=lm,
                tasks=[resolved.name],
                num_fewshot=request.num_fewshot,
                limit=request.limit,
                gen_kwargs=dict(request.gen_kwargs) or None,
                apply_chat_template=request.apply_chat_template,
                fewshot_as_multiturn=request.multiturn(),
                log_samples=True,
                task_manager=manager,
                verbosity="WARNING",
            )
        except (ConnectionError, OSError) as exc:
            if (
                resolved.source == "lm-eval"
                or "offline" in str(exc).lower()
                or os.environ.get("HF_DATASETS_OFFLINE")
            ):
                raise ResourceError(
                    f"benchmark {request.id}: dataset of lm-eval task '{resolved.name}' is not available offline "
                    f"({type(exc).__name__}); download it first, use a local task YAML, or a bundled task "
                    f"({', '.join(TASKS)})"
                ) from None
            raise
        metrics[request.id], items[request.id] = _collect(request, resolved, results)
    return {"metrics": metrics, "items": items}


def _collect(request: BenchmarkRequest, resolved: _ResolvedTask, results: dict[str, Any]):
    task = resolved.name
    if task not in results["results"]:
        raise InputError(f"benchmark {request.id}: lm-eval returned no results for task '{task}' (a group?)")
    scores = results["results"][task]
    if request.metric not in scores:
        available = sorted(k for k in scores if "," in k and "_stderr" not in k)
        raise InputError(
            f"benchmark {request.id}: metric '{request.metric}' not produced by task '{task}' "
            f"(available: {', '.join(available)})"
        )
    metric_name, _, filter_name = request.metric.partition(",")
    config = results["configs"][task]
    used_fewshot = results.get("n-shot", {}).get(task, config.get("num_fewshot"))
    if int(used_fewshot or 0) != request.num_fewshot:
        raise InputError(
            f"benchmark {request.id}: requested num_fewshot={request.num_fewshot} but lm-eval used "
            f"{used_fewshot} (the task config pins it)"
        )
    samples = [s for s in results["samples"][task] if s.get("filter", filter_name) == filter_name]
    samples.sort(key=lambda s: s["doc_id"])
    item_scores = [_json_number(s[metric_name]) for s in samples]
    n_samples = results.get("n-samples", {}).get(task, {})
    record = {
        "task": task,
        "metric": request.metric,
        "value": _json_number(scores[request.metric]),
        "stderr": _json_number(scores.get(f"{metric_name}_stderr,{filter_name}")),
        "n": int(n_samples.get("effective", len(samples))),
        "num_fewshot": int(used_fewshot or 0),
        "in_domain": request.in_domain,
        "apply_chat_template": request.apply_chat_template,
        "fewshot_as_multiturn": request.multiturn(),
        "gen_kwargs": dict(request.gen_kwargs),
        "generation_kwargs_used": json.loads(json.dumps(config.get("generation_kwargs") or {}, default=str)),
        "limit": request.limit,
        "batch_size": request.batch_size,
        "output_type": config.get("output_type"),
        "task_source": resolved.source,
        "task_version": _json_number(results.get("versions", {}).get(task)),
        "task_config_hash": _short_hash(config),
        "lm_eval_version": lm_eval_version(),
    }
    item_record = {
        "doc_id": [int(s["doc_id"]) for s in samples],
        "doc_hash": [str(s.get("doc_hash")) for s in samples],
        "prompt_hash": [str(s.get("prompt_hash")) for s in samples],
        "score": item_scores,
    }
    from oxstudy.tasks import doc_level

    docs = [s.get("doc") or {} for s in samples]
    if any("level" in d for d in docs):  # bundled tasks; MATH-style datasets ("Level 3") too
        item_record["level"] = [doc_level(d) for d in docs]
    if any("difficulty" in d for d in docs):
        item_record["difficulty"] = [json.loads(json.dumps(d.get("difficulty"), default=str)) for d in docs]
    return record, item_record

