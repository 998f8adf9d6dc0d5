"""pass@k through lm-eval-harness: ``n`` sampled completions per item via the task's ``repeats``.

For any lm-eval generative task (bundled, a task YAML, or a built-in name) the task's own
config is copied with

- ``repeats: n`` (lm-eval sends every request ``n`` times),
- ``generation_kwargs`` with ``do_sample: true`` and the stated ``temperature`` / ``top_p``
  (the task's stop sequences and ``max_gen_toks`` are kept),
- each of the task's ``filter_list`` chains without its final ``take_first`` (so the n
  answers extracted by the task's own regex survive, one per repeat),

and every repeat is scored with the task's own ``process_results`` (its metric, e.g.
``exact_match`` with the task's ignore rules). The per-item count ``c`` of correct samples
gives the unbiased pass@k of Chen et al. (2021) for every ``k <= n``
(:mod:`oxstudy.stats.passk`). This is a separate path from :func:`oxstudy.evaluation.evaluate_model`
(greedy, one completion per item): it is only run for benchmarks that ask for it.

Randomness: lm-eval seeds torch once (``torch_random_seed``) and then samples every request in
its own batching order, so the samples are reproducible for a given seed, batch size and
model, but do not match a hand-written loop sample for sample (see tests/test_passk.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from oxstudy.errors import InputError


@dataclass
class PassAtKSettings:
    """How pass@k is sampled.

    Attributes:
        samples: ``n``, completions sampled per item (every ``k <= n`` is estimated).
        k: the ``k`` values reported (default: powers of two up to ``n``, and ``n``).
        temperature: sampling temperature (> 0).
        top_p: nucleus sampling threshold (1.0 = off).
        seed: lm-eval's torch / numpy / python seed for the sampling.
        limit: items sampled (None: the benchmark's own limit).
    """

    samples: int = 16
    k: list[int] = field(default_factory=list)
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int = 0
    limit: int | None = None

    def ks(self) -> list[int]:
        from oxstudy.stats.passk import default_ks

        ks = sorted({int(k) for k in self.k}) if self.k else default_ks(self.samples)
        bad = [k for k in ks if k < 1 or k > self.samples]
        if bad:
            raise InputError(f"pass@k: k = {bad} outside 1..samples ({self.samples})")
        return ks

    @classmethod
    def coerce(cls, value: Any) -> PassAtKSettings:
        if isinstance(value, cls):
            return value
        if hasattr(value, "model_dump"):
            value = value.model_dump()
        return cls(**{k: v for k, v in dict(value).items() if k in cls.__dataclass_fields__})

    def as_dict(self) -> dict[str, Any]:
        return {
            "samples": self.samples,
            "k": self.ks(),
            "temperature": self.temperature,
            "top_p": self.top_p,
            "seed": self.seed,
            "limit": self.limit,
        }


def _repeats_task_class():
    """A ConfigurableTask whose ``process_results`` scores each of the n repeats separately."""
    import numpy as np
    from lm_eval.api.task import ConfigurableTask

    class RepeatsTask(ConfigurableTask):
        def process_results(self, doc, results):
            result = results[0]
            if isinstance(result, list):  # one filtered answer per repeat (no take_first)
                scored = [super(RepeatsTask, self).process_results(doc, [answer]) for answer in result]
                return {name: float(np.mean([s[name] for s in scored])) for name in scored[0]}
            return super().process_results(doc, results)

    return RepeatsTask


def repeats_task(task: str, settings: PassAtKSettings, gen_kwargs: dict[str, Any] | None = None):
    """The lm-eval task object for ``task`` with ``repeats: n``, sampling and per-repeat filters."""
    from oxstudy.evaluation import _task_manager, resolve_task

    if settings.temperature <= 0:
        raise InputError(f"pass@k: temperature must be > 0 to sample (got {settings.temperature})")
    resolved = resolve_task(task)
    manager = _task_manager(resolved)
    tasks = manager.load([resolved.name])["tasks"]
    if resolved.name not in tasks:
        raise InputError(f"pass@k: '{resolved.name}' is a group of tasks; name one generative task")
    original = tasks[resolved.name]
    if getattr(original, "OUTPUT_TYPE", None) != "generate_until":
        raise InputError(
            f"pass@k: task '{resolved.name}' is not generative (output_type "
            f"{getattr(original, 'OUTPUT_TYPE', None)}); pass@k needs sampled completions"
        )
    config = original.config.to_dict(keep_callable=True)
    generation = dict(config.get("generation_kwargs") or {})
    generation.update(gen_kwargs or {})
    generation.update(do_sample=True, temperature=float(settings.temperature))
    if settings.top_p < 1.0:
        generation["top_p"] = float(settings.top_p)
    filters = []
    for chain in config.get("filter_list") or [{"name": "none", "filter": []}]:
        steps = [dict(s) for s in chain.get("filter", []) if s.get("function") != "take_first"]
        filters.append({"name": chain["name"], "filter": steps})
    config.update(repeats=int(settings.samples), generation_kwargs=generation, filter_list=filters)
    return resolved, manager, _repeats_task_class()(config=config)


def sample_correct_counts(
    model: Any,
    tokenizer: Any,
    benchmark: Any,
    settings: PassAtKSettings | dict[str, Any],
    *,
    batch_size: int | None = None,
) -> dict[str, Any]:
    """Sample ``settings.samples`` completions per item of ``benchmark`` through lm-eval and count
    the correct ones with the task's own metric.

    ``benchmark``: a BenchmarkSpec-like object (``task``, ``metric`` as ``"metric,filter"``,
    ``num_fewshot``, ``limit``, ``apply_chat_template``, ``gen_kwargs``, ``batch_size``).
    Returns ``{"task", "metric", "filter", "samples", "temperature", "top_p", "seed",
    "doc_id": [...], "doc_hash": [...], "prompt_hash": [...], "correct": [...]}`` (items by doc_id).
    """
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM

    from oxstudy.evaluation import _quiet_lm_eval, as_request

    settings = PassAtKSettings.coerce(settings)
    request = as_request(benchmark)
    metric_name, _, filter_name = request.metric.partition(",")
    resolved, manager, task = repeats_task(request.task, settings, request.gen_kwargs)
    filter_names = [f["name"] for f in task.config.filter_list]
    if filter_name not in filter_names:
        raise InputError(
            f"benchmark {request.id}: filter '{filter_name}' of metric '{request.metric}' is not one of "
            f"task '{resolved.name}''s filters ({', '.join(filter_names)})"
        )
    _quiet_lm_eval()
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size or request.batch_size)
    results = simple_evaluate(
        model=lm, tasks=[task], num_fewshot=request.num_fewshot, limit=settings.limit or request.limit,
        apply_chat_template=request.apply_chat_template, fewshot_as_multiturn=request.multiturn(),
        log_samples=True, task_manager=manager, verbosity="WARNING",
        random_seed=settings.seed, numpy_random_seed=settings.seed, torch_random_seed=settings.seed,
        fewshot_random_seed=settings.seed,
    )  # fmt: skip
    samples = [s for s in results["samples"][resolved.name] if s.get("filter") == filter_name]
    samples.sort(key=lambda s: s["doc_id"])
    correct: list[int] = []
    for sample in samples:
        answers = sample["filtered_resps"][0] if sample["filtered_resps"] else []
        if len(answers) != settings.samples:
            raise InputError(
                f"benchmark {request.id}: lm-eval returned {len(answers)} samples for doc "
                f"{sample['doc_id']}, expected {settings.samples}"
            )
        scores = [float(task.process_results(sample["doc"], [a])[metric_name]) for a in answers]
        if any(s not in (0.0, 1.0) for s in scores):
            raise InputError(
                f"benchmark {request.id}: metric '{metric_name}' is not 0/1 per sample; pass@k needs a "
                "correct/incorrect metric"
            )
        correct.append(int(sum(scores)))
    return {
        "task": resolved.name, "metric": request.metric, "filter": filter_name, **settings.as_dict(),
        "doc_id": [int(s["doc_id"]) for s in samples],
        "doc_hash": [str(s.get("doc_hash")) for s in samples],
        "prompt_hash": [str(s.get("prompt_hash")) for s in samples],
        "correct": correct,
    }  # fmt: skip


def pass_at_k_result(
    counts: dict[str, Any], *, in_domain: bool = False, role: str | None = None
) -> dict[str, Any]:
    """The record entry of one benchmark's pass@k: the settings, the curve ``{k: mean}`` for every
    ``k = 1..n`` and the per-item counts (from which any per-item pass@k follows)."""
    from oxstudy.stats.passk import pass_at_k_curve

    n = int(counts["samples"])
    curve = pass_at_k_curve(n, counts["correct"])
    return {
        **counts,
        "in_domain": in_domain,
        "role": role,
        "curve": {"k": list(curve), "value": [curve[k] for k in curve]},
    }


def pass_at_k_outcomes(bench_id: str, entry: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Per-item pass@k at the requested k as ordinary ``metrics`` / ``items`` entries, keyed
    ``"<bench>.pass@<k>"``, so the standard analysis compares algorithms on them too."""
    from oxstudy.stats.passk import pass_at_k

    metrics, items = {}, {}
    n = int(entry["samples"])
    for k in entry["k"]:
        per_item = pass_at_k(n, entry["correct"], int(k)).tolist() if entry["correct"] else []
        key = f"{bench_id}.pass@{k}"
        metrics[key] = {
            "task": entry["task"], "metric": f"pass@{k}", "value": float(sum(per_item) / len(per_item)) if per_item
            else None, "stderr": None, "n": len(per_item), "in_domain": entry.get("in_domain", False),
            "samples": n, "temperature": entry["temperature"], "source_metric": entry["metric"],
        }  # fmt: skip
        items[key] = {
            "doc_id": entry["doc_id"],
            "doc_hash": entry["doc_hash"],
            "prompt_hash": entry["prompt_hash"],
            "score": per_item,
        }
    return metrics, items


def evaluate_pass_at_k(model: Any, tokenizer: Any, benchmarks: Sequence[Any]) -> dict[str, dict[str, Any]]:
    """pass@k for each benchmark that has ``pass_at_k`` settings: ``{bench_id: pass_at_k_result}``."""
    out: dict[str, dict[str, Any]] = {}
    for benchmark in benchmarks:
        settings = getattr(benchmark, "pass_at_k", None)
        if settings is None:
            continue
        counts = sample_correct_counts(model, tokenizer, benchmark, settings)
        out[benchmark.id] = pass_at_k_result(
            counts, in_domain=bool(benchmark.in_domain), role=getattr(benchmark, "role", None)
        )
    return out


# --------------------------------------------------------------------------- model-task alignment

#: Where a study's base pass@k table lives (read by the report's alignment section and by
#: ``depends_on_alignment`` claims): ``<store>/alignment/base_pass_at_k.json``.
ALIGNMENT_TABLE = "base_pass_at_k.json"


def is_generative(task: str) -> bool:
    """Whether ``task`` samples completions (lm-eval ``output_type: generate_until``)."""
    from oxstudy.evaluation import _task_manager, resolve_task
    from oxstudy.tasks import TASKS

    if task in TASKS:
        return TASKS[task].output_type == "generate_until"
    resolved = resolve_task(task)
    loaded = _task_manager(resolved).load([resolved.name])["tasks"]
    return getattr(loaded.get(resolved.name), "OUTPUT_TYPE", None) == "generate_until"


def base_alignment(
    base: Any, tokenizer: Any, cell: Any, model_path: str, alignment_dir: Any, settings: Any
) -> list[dict[str, Any]]:
    """Model-task alignment (Mirage or Method?, arXiv:2508.21188): the base model's pass@k on each
    generative benchmark of ``cell``, computed once per (model, benchmark, sampling settings).

    Each (model, benchmark) is cached as ``<alignment_dir>/cache/<key>.json`` under a file lock (the
    first worker samples, the others wait and read it); the study's table
    ``<alignment_dir>/base_pass_at_k.json`` (rows ``model, benchmark, k, pass_at_k, n_items,
    samples, temperature, source``) is rebuilt from every cache file after each addition, so a
    lost concurrent update heals on the next one. Returns this cell's rows.
    """
    import json
    from pathlib import Path

    from oxstudy.evaluation import lm_eval_version
    from oxstudy.plan import content_hash
    from oxstudy.selfplay import model_fingerprint
    from oxstudy.stats.passk import pass_at_k
    from oxstudy.store import atomic_write_text, cached_json, file_lock

    settings = PassAtKSettings.coerce(settings)
    root = Path(alignment_dir)
    rows: list[dict[str, Any]] = []
    for benchmark in cell.benchmarks:
        if not is_generative(benchmark.task):
            continue
        key = content_hash({
            "model": model_fingerprint(model_path), "benchmark": benchmark.model_dump(mode="json", exclude={"backend"}),
            "settings": settings.as_dict(), "lm_eval": lm_eval_version(),
        })  # fmt: skip

        def sample(benchmark: Any = benchmark) -> dict[str, Any]:
            counts = sample_correct_counts(base, tokenizer, benchmark, settings)
            n = int(counts["samples"])
            return {
                "model": cell.model.id, "benchmark": benchmark.id, "source": cell.model.source,
                "task": counts["task"], "metric": counts["metric"], "samples": n,
                "temperature": counts["temperature"], "n_items": len(counts["correct"]),
                "pass_at_k": {str(k): float(pass_at_k(n, counts["correct"], k).mean()) if counts["correct"] else None
                              for k in settings.ks()},
                "correct": counts["correct"], "doc_id": counts["doc_id"],
            }  # fmt: skip

        rows += _alignment_rows(cached_json(root / "cache" / f"{key}.json", sample))
    with file_lock(root / f"{ALIGNMENT_TABLE}.lock"):
        table: list[dict[str, Any]] = []
        for cached in sorted((root / "cache").glob("*.json")):
            try:
                table += _alignment_rows(json.loads(cached.read_text()))
            except (ValueError, KeyError):
                continue
        atomic_write_text(root / ALIGNMENT_TABLE, json.dumps(table, indent=1))
    return rows


def _alignment_rows(entry: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"model": entry["model"], "benchmark": entry["benchmark"], "k": int(k), "pass_at_k": value,
         "n_items": entry["n_items"], "samples": entry["samples"], "temperature": entry["temperature"],
         "source": entry["source"]}
        for k, value in entry["pass_at_k"].items()
    ]  # fmt: skip
