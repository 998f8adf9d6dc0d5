"""Evaluation through lm-eval-harness, with provenance and per-item outcomes.

One ``simple_evaluate`` call per benchmark, so each benchmark's own ``num_fewshot``,
generation settings, chat template and limit are passed through (never a global default),
and the settings lm-eval actually used are read back from its results and recorded. A
requested few-shot count that lm-eval did not apply is an error, not a silent default.

The result has exactly the store record's shape::

    {"metrics": {BENCH_ID: {"task", "metric", "value", "stderr", "n", "num_fewshot", ...}},
     "items":   {BENCH_ID: {"doc_id": [...], "doc_hash": [...], "prompt_hash": [...], "score": [...],
                            "level": [...], "difficulty": [...]}}}

``level`` is each item's difficulty level by :func:`oxstudy.dataselect.record_level` on the
lm-eval document (a bundled task's ``level``, MATH's ``"Level 3"`` -> 3, GSM8K's calculator
steps; None where a document has none), present when any item has one; ``difficulty`` (the
generator's parameters of a bundled task) when the documents carry it. Accuracy can then be
broken down by level (``oxstudy.stats.difficulty``).

Models are evaluated in memory when one is given (e.g. right after training); a path is
loaded once, and a LoRA adapter directory is loaded onto its base model and merged.
"""

from __future__ import annotations

import functools
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
    #: lm-eval model type: hf | vllm | auto; None = the ``backend`` given to ``evaluate_model``.
    backend: str | None = None

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
        backend=_field(bench, "backend", None),
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
        except UnicodeDecodeError as exc:
            raise InputError(f"{task}: not a text file (byte {exc.start} is not UTF-8)") from None
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
    _lighten_lm_eval()


_ENV_INFO: dict[str, Any] = {}
#: lm-eval's ``pretty_env_info`` under oxstudy (torch's ``collect_env`` costs about a second).
ENV_INFO_NOT_COLLECTED = "not collected by oxstudy: see the run record's provenance"


def _lighten_lm_eval() -> None:
    """Remove two per-call costs of lm-eval 0.4 that dominate evaluation of a zoo model.

    Measured on a zoo:medium cell (three benchmarks, 270 items, 2-core CPU): 9.3 s of
    evaluation, of which 3.5 s were ``add_env_info`` running torch's ``collect_env`` (a
    ``pip list`` subprocess and more) once per ``simple_evaluate`` call, and 1.7 s were Jinja
    recompiling the same ``doc_to_text``/``doc_to_target`` template for every document.
    lm-eval's environment report is filled once per process without ``collect_env`` (its
    ``pretty_env_info`` says so: oxstudy does not store lm-eval's copy; a run record's
    ``provenance`` has the versions, machine and hashes), and compiled templates are cached
    by their source string (a compiled Jinja template is immutable, so rendering is
    unchanged). Both patches are skipped when lm-eval's internals are not where 0.4 keeps them.
    """
    import lm_eval.evaluator as evaluator
    import lm_eval.utils as lm_utils

    original = getattr(evaluator, "add_env_info", None)
    if original is not None and not getattr(original, "_oxstudy_cached", False):

        def add_env_info_once(storage: dict[str, Any]) -> None:
            if not _ENV_INFO:
                import torch.utils.collect_env as collect_env

                full_report = collect_env.get_pretty_env_info
                collect_env.get_pretty_env_info = lambda: ENV_INFO_NOT_COLLECTED
                try:
                    original(_ENV_INFO)
                finally:
                    collect_env.get_pretty_env_info = full_report
            storage.update(_ENV_INFO)

        add_env_info_once._oxstudy_cached = True  # type: ignore[attr-defined]
        evaluator.add_env_info = add_env_info_once
    jinja_env = getattr(lm_utils, "env", None)
    if jinja_env is not None and not hasattr(jinja_env.from_string, "cache_info"):
        jinja_env.from_string = functools.lru_cache(maxsize=512)(jinja_env.from_string)


def evaluate_model(
    model: Any,
    benchmarks: Sequence[Any],
    tokenizer: Any = None,
    *,
    device: str | None = None,
    on_benchmark: Callable[[int, int, str], None] | None = None,
    backend: str = "hf",
    vllm_model_args: dict[str, Any] | None = None,
) -> dict[str, dict[str, Any]]:
    """Evaluate ``model`` on ``benchmarks`` through lm-eval-harness.

    ``model`` is a loaded ``PreTrainedModel`` (evaluated in memory; pass its
    ``tokenizer``) or a path to a model / LoRA adapter directory (loaded once).
    ``benchmarks`` are BenchmarkSpec-like objects, dicts, or task names. Returns
    ``{"metrics": {id: ...}, "items": {id: ...}}`` (JSON-safe; see the module docstring).

    ``backend`` (hf | vllm | auto) applies to benchmarks without their own ``backend``; the
    vllm path loads ``vllm_model_args`` (:func:`oxstudy.engines.vllm_eval_model_args`; derived
    from ``model`` when it is a path) in lm-eval's ``vllm`` model type. Both paths get the
    same task, few-shot, generation and chat-template settings.
    """
    from oxstudy.tasks.suite import TASKS

    requests = [as_request(b) for b in benchmarks]
    ids = [r.id for r in requests]
    if len(set(ids)) != len(ids):
        raise InputError(f"benchmarks: duplicate ids {sorted({i for i in ids if ids.count(i) > 1})}")
    engines = _engines(requests, backend, device)
    if isinstance(model, (str, Path)):
        if vllm_model_args is None and "vllm" in engines.values():
            vllm_model_args = _vllm_args_for_path(model)
        model, loaded_tokenizer = load_model(model, device=device)
        tokenizer = tokenizer or loaded_tokenizer
    if tokenizer is None:
        raise InputError("evaluate_model: an in-memory model needs its tokenizer")
    _quiet_lm_eval()
    from lm_eval import simple_evaluate

    metrics: dict[str, dict[str, Any]] = {}
    items: dict[str, dict[str, list[Any]]] = {}
    vllm_cache: dict[str, Any] = {}
    for index, request in enumerate(requests):
        if on_benchmark is not None:
            on_benchmark(index, len(requests), request.id)
        resolved = resolve_task(request.task)
        manager = _task_manager(resolved)
        if request.apply_chat_template and not getattr(tokenizer, "chat_template", None):
            raise InputError(
                f"benchmark {request.id}: apply_chat_template is true but the tokenizer has no chat template"
            )
        lm, engine_record = _lm_eval_model(request, engines[request.id], model, tokenizer, vllm_model_args, vllm_cache)
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
        metrics[request.id].update(engine_record)
    return {"metrics": metrics, "items": items}


# --------------------------------------------------------------------------- engines (hf | vllm)


def _engines(requests: Sequence[BenchmarkRequest], default: str, device: str | None) -> dict[str, str]:
    """The lm-eval model type of each benchmark (hf or vllm); a vllm request that this
    machine cannot serve fails here, before any benchmark runs."""
    from oxstudy.engines import eval_backend

    return {r.id: eval_backend(r.backend, default, device=device, where=f"benchmark {r.id}: backend")
            for r in requests}


def _vllm_args_for_path(path: str | Path) -> dict[str, Any]:
    """vllm model_args for a checkpoint on disk: a model directory as is, a LoRA adapter on its base."""
    from oxstudy.engines import vllm_eval_model_args

    path = Path(path)
    adapter_config = path / "adapter_config.json"
    if adapter_config.exists():
        from oxstudy.zoo import resolve_model_source

        config = json.loads(adapter_config.read_text())
        base = resolve_model_source(config["base_model_name_or_path"], prefer_cache=True)
        return vllm_eval_model_args(base, lora_local_path=str(path), lora_rank=int(config.get("r", 16)))
    return vllm_eval_model_args(str(path))


def _make_vllm_lm(model_args: dict[str, Any]) -> Any:
    """lm-eval's ``vllm`` LM, built the way ``simple_evaluate(model="vllm", model_args=...)`` builds it."""
    from lm_eval.api.registry import get_model

    return get_model("vllm").create_from_arg_obj(dict(model_args))


def _lm_eval_model(request: BenchmarkRequest, engine: str, model: Any, tokenizer: Any,
                   vllm_model_args: dict[str, Any] | None, vllm_cache: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The lm-eval LM object for one benchmark and what the record says about it.

    hf: the in-memory model wrapped in ``HFLM`` (as before). vllm: one engine per evaluation,
    shared by its benchmarks (loading it is the slow part).
    """
    if engine == "vllm":
        if vllm_model_args is None:
            raise InputError(f"benchmark {request.id}: the vllm backend needs a checkpoint on disk (vllm_model_args)")
        if "lm" not in vllm_cache:
            vllm_cache["lm"] = _make_vllm_lm(vllm_model_args)
        args = json.loads(json.dumps(vllm_model_args, default=str))
        return vllm_cache["lm"], {"backend": "vllm", "backend_args": args}
    from lm_eval.models.huggingface import HFLM

    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=request.batch_size)
    return lm, {"backend": "hf", "backend_args": {"batch_size": request.batch_size,
                                                  "dtype": str(getattr(model, "dtype", "")).replace("torch.", "")}}


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
    item_record.update(_item_levels([s.get("doc") or {} for s in samples]))
    return record, item_record


def _item_levels(docs: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """``level`` (and ``difficulty``) per item from lm-eval's documents; empty when none has one."""
    from oxstudy.dataselect import record_level

    out: dict[str, list[Any]] = {}
    levels = [_json_number(record_level(doc)) for doc in docs]
    levels = [int(v) if v is not None and v.is_integer() else v for v in levels]
    if any(level is not None for level in levels):
        out["level"] = levels
    if any(isinstance(doc.get("difficulty"), dict) for doc in docs):
        out["difficulty"] = [
            json.loads(json.dumps(doc["difficulty"], default=str))
            if isinstance(doc.get("difficulty"), dict)
            else None
            for doc in docs
        ]
    return out
