"""Training data: canonical examples, self-play samples, derived training sets, rewards.

1. :func:`load_examples` reads the spec's ``data`` section into canonical examples
   ``{"prompt", "solution", "answer"}`` (bundled task, Hugging Face dataset with a field
   mapping, or a local JSONL / Parquet file).
2. :func:`sample_completions` draws ``samples_per_prompt`` completions per prompt from the base
   model at the spec's temperature; :func:`verify_samples` scores them with the shared task
   verifier (:func:`oxstudy.tasks.is_correct`).
3. :func:`derive_training_data` turns verified samples into SP-RFT demonstrations, preference
   pairs (correct vs incorrect) and unpaired KTO labels.
4. :func:`prepare_data` does all of it for a cell, caching the samples on disk per
   (base model, data settings, seed), so every algorithm on the same base model and seed trains
   on the same self-play data (and pays for sampling once).

Online RL methods get :func:`reward_functions`: verifier exact match, optionally plus a weighted
format reward, as TRL reward callables.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from oxstudy.errors import InputError

SELFPLAY_VERSION = 1
CANONICAL_FIELDS = ("prompt", "solution", "answer")
#: Registry methods that train on self-play samples (all others need none).
SELF_PLAY_DATA_KINDS = ("preference-pairs", "unpaired-labels")


@dataclass
class TrainingData:
    """Everything a cell may train on, in canonical (non-chat) form.

    Attributes:
        gold: gold demonstrations ``{"prompt", "solution", "answer"}`` (SFT).
        sp_rft: verified-correct self-play solutions ``{"prompt", "solution", "answer"}``.
        pairs: ``{"prompt", "chosen", "rejected", "answer"}`` (correct vs incorrect samples).
        unpaired: ``{"prompt", "completion", "label"}`` (label True = correct) for KTO.
        prompts: ``{"prompt", "answer"}`` for online RL.
        stats: counts describing the derivation (samples, accuracy, pairs, fallbacks).
        cache_key: the self-play cache key, or None when no sampling was needed.
        selection: what ``data.select`` / ``data.curriculum`` chose (:func:`oxstudy.dataselect.summary`).
    """

    gold: list[dict[str, Any]] = field(default_factory=list)
    sp_rft: list[dict[str, Any]] = field(default_factory=list)
    pairs: list[dict[str, Any]] = field(default_factory=list)
    unpaired: list[dict[str, Any]] = field(default_factory=list)
    prompts: list[dict[str, Any]] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    cache_key: str | None = None
    selection: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str) -> list[dict[str, Any]]:
        return getattr(self, key)


# ----------------------------------------------------------------------------- loading


def _task_name(name: str) -> str:
    from oxstudy.tasks import TASKS

    if name in TASKS or f"oxs_{name}" not in TASKS:
        return name
    return f"oxs_{name}"


def _canonicalise(records: Sequence[dict[str, Any]], fields: dict[str, str], where: str) -> list[dict[str, Any]]:
    """Map source columns onto ``prompt``/``solution``/``answer``; derive a missing ``answer``
    from a solution ending ``#### N`` (GSM8K's convention)."""
    from oxstudy.tasks import extract_answer

    # An unmapped canonical field reads the same-named column, unless that column is mapped to
    # another field (GSM8K: ``solution: answer`` must not also make ``answer`` the solution).
    mapped = set(fields.values())
    columns = {c: fields.get(c, c if c not in mapped else None) for c in CANONICAL_FIELDS}
    out = []
    for row_number, record in enumerate(records):
        example: dict[str, Any] = {}
        for canonical, column in columns.items():
            if column is not None and column in record and record[column] is not None:
                example[canonical] = str(record[column])
        if "####" in example.get("answer", ""):
            example["answer"] = extract_answer(example["answer"], strict=True) or example["answer"]
        if "prompt" not in example:
            column = fields.get("prompt", "prompt")
            raise InputError(f"{where}: row {row_number}: no column {column!r} for prompt "
                             f"(columns: {', '.join(sorted(record))}; map it with data.fields.prompt)")
        if "answer" not in example and "solution" in example:
            answer = extract_answer(example["solution"], strict=True)
            if answer is not None:
                example["answer"] = answer
        if "answer" not in example:
            raise InputError(f"{where}: row {row_number}: no answer (map data.fields.answer, or give a "
                             "solution ending '#### N')")
        example.setdefault("solution", "")
        out.append(example)
    return out


def _read_local(path: Path, where: str) -> list[dict[str, Any]]:
    if not path.exists():
        raise InputError(f"{where}: file not found")
    if path.suffix == ".jsonl":
        records = []
        for line_number, line in enumerate(path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{line_number}: invalid JSON ({exc.msg})") from exc
        return records
    if path.suffix == ".parquet":
        import pandas as pd

        return pd.read_parquet(path).to_dict("records")
    raise InputError(f"{where}: unsupported file type {path.suffix!r} (use .jsonl or .parquet)")


def load_records(source: str, *, config: str | None = None, split: str = "train",
                 base_dir: str | Path | None = None, where: str = "data.source",
                 revision: str | None = None) -> list[dict[str, Any]]:
    """Raw records of a data source: ``task:NAME``, ``hf:ID`` (the hub snapshot at ``revision``,
    read by ``datasets``: :func:`oxstudy.hub.load_hub_dataset`) or a local path."""
    if source.startswith("task:"):
        from oxstudy.tasks import task_split

        return task_split(_task_name(source[len("task:"):]), split)
    if source.startswith("hf:"):
        from oxstudy.hub import load_hub_dataset

        return load_hub_dataset(source[len("hf:"):], config, split, revision=revision, where=where)
    path = Path(source)
    if base_dir is not None and not path.is_absolute():
        path = Path(base_dir) / path
    return _read_local(path, f"{where} ({path})")


def load_examples(data: Any, *, base_dir: str | Path | None = None, prompts_per_step: int = 1,
                  min_examples: int = 0, selection: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Canonical training examples of a :class:`~oxstudy.spec.DataSpec` (``train_size`` applied:
    the first N examples, so a smaller size is a prefix of a larger one; then ``select`` and
    ``curriculum``, see :mod:`oxstudy.dataselect`, whose summary is put into ``selection``)."""
    from oxstudy.dataselect import apply_selection

    records = load_records(data.source, config=data.config, split=data.split, base_dir=base_dir,
                           revision=getattr(data, "revision", None))
    if data.train_size is not None:
        records = records[: data.train_size]
    records = apply_selection(records, data, prompts_per_step=prompts_per_step, min_examples=min_examples,
                              summary_out=selection)
    return _canonicalise(records, dict(data.fields or {}), f"data.source ({data.source})")


def load_preference_dataset(data: Any, *, base_dir: str | Path | None = None) -> list[dict[str, Any]]:
    """Preference pairs from ``data.preference.dataset`` (mode ``dataset``)."""
    spec = data.preference.dataset
    if spec is None:
        raise InputError("data.preference.dataset: required when data.preference.mode is 'dataset'")
    records = load_records(spec.source, config=spec.config, split=spec.split, base_dir=base_dir,
                           where="data.preference.dataset.source", revision=getattr(spec, "revision", None))
    fields = dict(spec.fields or {})
    pairs = []
    for row_number, record in enumerate(records[: data.train_size] if data.train_size else records):
        pair = {}
        for key in ("prompt", "chosen", "rejected"):
            column = fields.get(key, key)
            if column not in record:
                raise InputError(f"data.preference.dataset.source ({spec.source}): row {row_number}: "
                                 f"no column {column!r} for {key} (map it with data.preference.dataset.fields)")
            pair[key] = str(record[column])
        pair["answer"] = str(record.get(fields.get("answer", "answer"), ""))
        pairs.append(pair)
    return pairs


# ----------------------------------------------------------------------------- sampling


def sample_completions(model: Any, tokenizer: Any, prompts: Sequence[str], *, n: int, temperature: float,
                       max_new_tokens: int, seed: int, batch_size: int = 32) -> list[list[str]]:
    """``n`` sampled completions for each prompt (chat format: prompt = user turn), reproducible
    for a given seed. Returns one list of ``n`` strings per prompt."""
    import torch

    was_training = model.training
    model.eval()
    tokenizer.padding_side = "left"
    device = next(model.parameters()).device
    out: list[list[str]] = []
    # Sampling seeds the global generators of the device it runs on (CPU, or the GPU's own
    # stream): fork them, so the caller's training randomness is the same with or without it.
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            texts = [tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                                   add_generation_prompt=True) for p in prompts]
            per_batch = max(1, batch_size // n)
            for start in range(0, len(texts), per_batch):
                chunk = texts[start:start + per_batch]
                encoded = tokenizer(chunk, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
                with torch.no_grad():
                    generated = model.generate(
                        **encoded, do_sample=True, temperature=temperature, top_k=0, top_p=1.0,
                        max_new_tokens=max_new_tokens, num_return_sequences=n,
                        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                    )
                completions = tokenizer.batch_decode(generated[:, encoded["input_ids"].shape[1]:],
                                                     skip_special_tokens=True)
                for i in range(len(chunk)):
                    out.append([c.strip() for c in completions[i * n:(i + 1) * n]])
    finally:
        if was_training:
            model.train()
    return out


def verify_samples(examples: Sequence[dict[str, Any]], completions: Sequence[Sequence[str]],
                   verify: Callable[[str, str], bool] | None = None) -> list[list[bool]]:
    """Correctness of every sampled completion under the shared verifier (exact match of the
    final ``#### N`` answer)."""
    if verify is None:
        from oxstudy.tasks import is_correct

        def verify(completion: str, answer: str) -> bool:
            return is_correct(completion, answer, strict=True)

    return [[bool(verify(c, e["answer"])) for c in samples] for e, samples in zip(examples, completions, strict=True)]


def derive_training_data(examples: Sequence[dict[str, Any]], completions: Sequence[Sequence[str]],
                         correct: Sequence[Sequence[bool]], *, gold_fallback: bool = True) -> TrainingData:
    """SP-RFT demonstrations, preference pairs and KTO labels from verified samples.

    - SP-RFT: each prompt's distinct correct completions.
    - Pairs: every distinct incorrect completion is paired with a correct one (cycling through
      the correct ones). A prompt with no correct sample uses its gold solution as the chosen
      side when ``gold_fallback`` (a weak base model otherwise yields almost no pairs); a prompt
      with no incorrect sample gives no pair.
    - Unpaired: every distinct completion labelled by correctness (+ the gold solution as a
      desirable example under the same fallback).
    """
    data = TrainingData(gold=[dict(e) for e in examples],
                        prompts=[{"prompt": e["prompt"], "answer": e["answer"]} for e in examples])
    n_samples = n_correct = n_fallback = 0
    for example, samples, marks in zip(examples, completions, correct, strict=True):
        n_samples += len(samples)
        n_correct += sum(marks)
        good = list(dict.fromkeys(c for c, ok in zip(samples, marks, strict=True) if ok and c))
        bad = list(dict.fromkeys(c for c, ok in zip(samples, marks, strict=True) if not ok and c))
        base = {"prompt": example["prompt"], "answer": example["answer"]}
        data.sp_rft.extend({**base, "solution": g} for g in good)
        chosen_pool = good
        if not good and gold_fallback and example.get("solution"):
            chosen_pool = [example["solution"]]
            n_fallback += 1
        if chosen_pool:
            data.pairs.extend({**base, "chosen": chosen_pool[i % len(chosen_pool)], "rejected": b}
                              for i, b in enumerate(bad))
        data.unpaired.extend({"prompt": example["prompt"], "completion": g, "label": True} for g in chosen_pool)
        data.unpaired.extend({"prompt": example["prompt"], "completion": b, "label": False} for b in bad)
    data.stats = {
        "prompts": len(examples), "samples": n_samples, "correct": n_correct,
        "accuracy": (n_correct / n_samples) if n_samples else None,
        "sp_rft": len(data.sp_rft), "pairs": len(data.pairs), "unpaired": len(data.unpaired),
        "gold_fallback_prompts": n_fallback,
    }
    return data


# ----------------------------------------------------------------------------- caching


def model_fingerprint(model_path: str | Path) -> str:
    """A stable identity of a local model directory: its config and the size of its weights
    (hub ids fingerprint as the id itself)."""
    path = Path(model_path)
    if not path.is_dir():
        return str(model_path)
    digest = hashlib.sha256()
    for name in sorted(p.name for p in path.iterdir()):
        file = path / name
        if name.endswith(".json") and file.is_file():
            digest.update(name.encode() + file.read_bytes())
        elif name.endswith((".safetensors", ".bin")):
            digest.update(f"{name}:{file.stat().st_size}".encode())
    return digest.hexdigest()[:16]


def selfplay_cache_key(model_path: str | Path, data: Any, seed: int) -> str:
    """sha256 of (base model, data settings that shape the samples, seed)."""
    preference = data.preference
    payload = {
        "version": SELFPLAY_VERSION,
        "model": model_fingerprint(model_path),
        "source": data.source, "config": data.config, "split": data.split,
        "fields": dict(data.fields or {}), "train_size": data.train_size,
        **({"selection": data.identity().get("select")} if getattr(data, "select", None) is not None else {}),
        "samples_per_prompt": preference.samples_per_prompt, "temperature": preference.temperature,
        "max_new_tokens": preference.max_new_tokens, "seed": seed,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _cache_dir(cache_dir: str | Path | None) -> Path:
    if cache_dir is not None:
        return Path(cache_dir)
    from oxstudy.tasks import cache_root

    return cache_root() / "selfplay"


def _write_atomic(path: Path, payload: dict[str, Any]) -> None:
    """Atomically, with the umask's mode like any file the user writes (not mkstemp's 0600:
    the cache is shared by every study on the machine)."""
    from oxstudy.store import atomic_write_text

    atomic_write_text(path, json.dumps(payload))


def needs_self_play(method: str) -> bool:
    """Whether ``method`` trains on self-play samples (SP-RFT, pairs, unpaired labels)."""
    from oxstudy.algorithms import registry

    info = registry.get(method)
    return info.name == "sp-rft" or info.data in SELF_PLAY_DATA_KINDS


def prepare_data(cell: Any, model_path: str | Path, *, cache_dir: str | Path | None = None,
                 base_dir: str | Path | None = None, model: Any = None, tokenizer: Any = None,
                 device: str | None = None) -> TrainingData:
    """The training data of ``cell``: canonical examples, plus self-play sets when its method
    needs them (read from the cache when another algorithm on the same base model, data
    settings and seed already sampled them)."""
    from oxstudy.dataselect import cell_batch_examples, cell_prompts_per_step

    data_spec = cell.data
    selection: dict[str, Any] = {}
    examples = load_examples(data_spec, base_dir=base_dir, prompts_per_step=cell_prompts_per_step(cell),
                             min_examples=cell_batch_examples(cell), selection=selection)
    if not examples:
        raise InputError(f"data.source ({data_spec.source}): no training examples")
    if not needs_self_play(cell.algorithm.method):
        return TrainingData(gold=[dict(e) for e in examples],
                            prompts=[{"prompt": e["prompt"], "answer": e["answer"]} for e in examples],
                            stats={"prompts": len(examples), "self_play": False}, selection=selection)
    if data_spec.preference.mode == "dataset":
        data = TrainingData(gold=[dict(e) for e in examples],
                            prompts=[{"prompt": e["prompt"], "answer": e["answer"]} for e in examples])
        data.pairs = load_preference_dataset(data_spec, base_dir=base_dir)
        data.unpaired = [row for p in data.pairs for row in (
            {"prompt": p["prompt"], "completion": p["chosen"], "label": True},
            {"prompt": p["prompt"], "completion": p["rejected"], "label": False})]
        data.sp_rft = [{"prompt": p["prompt"], "solution": p["chosen"], "answer": p["answer"]} for p in data.pairs]
        data.stats = {"prompts": len(examples), "pairs": len(data.pairs), "source": "dataset"}
        data.selection = selection
        return data

    key = selfplay_cache_key(model_path, data_spec, cell.seed)
    path = _cache_dir(cache_dir) / f"{key}.json"
    if path.exists():
        cached = json.loads(path.read_text())
        completions, correct = cached["completions"], cached["correct"]
        cache_hit = True
    else:
        if model is None or tokenizer is None:
            from oxstudy.training import device_kind, load_model

            device = device or device_kind()
            model, tokenizer = load_model(model_path, device, cell.training.precision)
            if device == "cuda":
                model = model.to("cuda")
        preference = data_spec.preference
        completions = sample_completions(model, tokenizer, [e["prompt"] for e in examples],
                                         n=preference.samples_per_prompt, temperature=preference.temperature,
                                         max_new_tokens=preference.max_new_tokens, seed=cell.seed)
        correct = verify_samples(examples, completions)
        _write_atomic(path, {"schema": "oxstudy.selfplay/1", "key": key, "model_path": str(model_path),
                             "seed": cell.seed, "data": _jsonable(data_spec), "completions": completions,
                             "correct": correct})
        cache_hit = False
    data = derive_training_data(examples, completions, correct)
    data.selection = selection
    data.cache_key = key
    data.stats["cache_hit"] = cache_hit
    return data


def _jsonable(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    try:
        return asdict(value)
    except TypeError:
        return str(value)


# ----------------------------------------------------------------------------- rewards


def _completion_text(completion: Any) -> str:
    if isinstance(completion, list):  # conversational: [{"role": "assistant", "content": ...}]
        return "".join(str(m.get("content", "")) for m in completion if isinstance(m, dict))
    return str(completion)


def exact_match_reward(completions: list, answer: list, **kwargs: Any) -> list[float]:
    """1.0 when the completion's final ``#### N`` answer equals the reference answer, else 0.0
    (the shared task verifier, strict: an answer must follow ``####``)."""
    from oxstudy.tasks import is_correct

    return [1.0 if is_correct(_completion_text(c), a, strict=True) else 0.0
            for c, a in zip(completions, answer, strict=True)]


def format_reward(completions: list, **kwargs: Any) -> list[float]:
    """1.0 when the completion ends its reasoning with a parseable ``#### N`` line, else 0.0."""
    from oxstudy.tasks import extract_answer

    return [1.0 if extract_answer(_completion_text(c), strict=True) is not None else 0.0 for c in completions]


def reward_functions(format_weight: float = 0.0) -> list[Callable[..., list[float]]]:
    """TRL reward callables for online RL: exact match, plus ``format_weight`` x format reward."""
    if format_weight <= 0:
        return [exact_match_reward]

    def weighted_format_reward(completions: list, **kwargs: Any) -> list[float]:
        return [format_weight * r for r in format_reward(completions)]

    weighted_format_reward.__name__ = "format_reward"
    return [exact_match_reward, weighted_format_reward]
