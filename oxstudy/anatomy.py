"""What post-training changed inside the model: weight-update anatomy and output drift.

Run in the worker right after training (:func:`measure_after_training`), results into the
run record:

- **Weight-update anatomy** (:func:`weight_update_anatomy`): for every parameter tensor, its
  module type (q, k, v, o, gate, up, down, norms, embed, lm_head: a name-pattern map with
  Llama / Qwen2 defaults, extendable per spec) and decoder layer, the absolute update
  ``||W_after - W_before||_F``, the base norm ``||W_before||_F`` and the relative update
  (their ratio), optionally the entropy effective rank of the update (below). Base weights
  are read one tensor at a time from the base checkpoint's safetensors (``safe_open``), so
  the anatomy itself holds one parameter tensor of the base at a time. A LoRA run's update
  is the merged delta ``B @ A * scaling`` (:func:`lora_update_anatomy` computes it from the
  adapters; tests check it equals the full-weight computation after merging).
- **Shares**: squared Frobenius norms add over disjoint parameter blocks
  (``||dθ||² = Σ_modules ||dW||²_F``), so the share of the update held by module types X is
  ``Σ_{X} ||dW||²_F / Σ_all ||dW||²_F`` (computed in oxstudy/stats/anatomy.py).
- **Effective rank** (Roy & Vetterli 2007): ``exp(H(p))`` with ``p_i = σ_i / Σ_j σ_j`` over the
  top ``r`` singular values of the update (all of them when the matrix is smaller;
  ``torch.svd_lowrank`` with 4 power iterations for matrices larger than 4r).
- **KL drift** (:func:`kl_drift`): mean per-token ``KL(trained || base) = Σ_v p_trained(v)
  (log p_trained(v) - log p_base(v))``, exact over the vocabulary at every position of the
  trained model's *greedy* continuations of a fixed held-out prompt set (chat-formatted),
  averaged over continuation tokens (up to and including the end-of-sequence token).
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from oxstudy.freezing import layer_index

SCHEMA = "oxstudy.anatomy/1"

#: Module types by parameter-name regex, first match wins (Llama, Qwen2, Mistral names).
DEFAULT_MODULE_TYPES: dict[str, str] = {
    "q": r"\.q_proj\.",
    "k": r"\.k_proj\.",
    "v": r"\.v_proj\.",
    "o": r"\.o_proj\.",
    "gate": r"\.gate_proj\.",
    "up": r"\.up_proj\.",
    "down": r"\.down_proj\.",
    "attn_norm": r"input_layernorm|self_attn\.[qk]_norm",
    "mlp_norm": r"post_attention_layernorm",
    "embed": r"embed_tokens|wte\.|wpe\.",
    "lm_head": r"lm_head",
    "final_norm": r"(^|\.)norm\.weight$|ln_f\.",
}
#: Types whose 2-D weights get an effective rank (attention and MLP matrices).
MATRIX_TYPES = ("q", "k", "v", "o", "gate", "up", "down")
ATTENTION_TYPES = ("q", "k", "v", "o")
MLP_TYPES = ("gate", "up", "down")


def module_type_map(overrides: dict[str, str] | None = None) -> list[tuple[str, re.Pattern[str]]]:
    """The ordered (type, regex) map: the spec's ``measure.module_types`` first, then the defaults."""
    merged = {
        **(overrides or {}),
        **{k: v for k, v in DEFAULT_MODULE_TYPES.items() if k not in (overrides or {})},
    }
    return [(name, re.compile(pattern)) for name, pattern in merged.items()]


def module_type(name: str, types: list[tuple[str, re.Pattern[str]]]) -> str:
    for type_name, pattern in types:
        if pattern.search(name):
            return type_name
    return "other"


def effective_rank(matrix: Any, top: int) -> float:
    """Entropy effective rank ``exp(-Σ p_i log p_i)``, ``p = σ / Σσ`` over the top ``top`` singular values."""
    import torch

    m = matrix.detach().float()
    if m.ndim != 2 or top <= 0:
        return float("nan")
    if min(m.shape) <= 4 * top:
        sigma = torch.linalg.svdvals(m)[:top]
    else:
        # svd_lowrank draws from the global generator of m's device: leave the caller's alone
        with torch.random.fork_rng(devices=[m.device] if m.is_cuda else []):
            torch.manual_seed(0)
            _, sigma, _ = torch.svd_lowrank(m, q=top, niter=4)
    total = float(sigma.sum())
    if total <= 0:
        return 0.0
    p = sigma / total
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


# --------------------------------------------------------------------------- base weights


class SafetensorsWeights:
    """Base weights read lazily, one tensor at a time, from a checkpoint directory's safetensors."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        index = self.directory / "model.safetensors.index.json"
        if index.exists():
            mapping = json.loads(index.read_text())["weight_map"]
        else:
            files = sorted(self.directory.glob("*.safetensors"))
            if not files:
                raise FileNotFoundError(f"{directory}: no safetensors files")
            from safetensors import safe_open

            mapping = {}
            for file in files:
                with safe_open(str(file), framework="pt", device="cpu") as handle:
                    mapping.update(dict.fromkeys(handle.keys(), file.name))
        self.mapping: dict[str, str] = mapping
        self._stack = ExitStack()
        self._handles: dict[str, Any] = {}

    @staticmethod
    def available(directory: str | Path) -> bool:
        return any(Path(directory).glob("*.safetensors"))

    def _key(self, name: str) -> str | None:
        if name in self.mapping:
            return name
        stripped = name.split(".", 1)[1] if "." in name else name  # a checkpoint saved without "model."
        return stripped if stripped in self.mapping else None

    def get(self, name: str) -> Any:
        from safetensors import safe_open

        key = self._key(name)
        if key is None:
            return None
        file = self.mapping[key]
        if file not in self._handles:
            self._handles[file] = self._stack.enter_context(
                safe_open(str(self.directory / file), framework="pt", device="cpu")
            )
        return self._handles[file].get_tensor(key)

    def close(self) -> None:
        self._stack.close()


class StateDictWeights:
    """Base weights from a mapping of CPU tensors (e.g. a copy taken before training)."""

    def __init__(self, state: dict[str, Any]) -> None:
        self.state = state

    @classmethod
    def copy_of(cls, model: Any) -> StateDictWeights:
        return cls({n: p.detach().to("cpu", copy=True) for n, p in model.named_parameters()})

    def get(self, name: str) -> Any:
        return self.state.get(name)

    def close(self) -> None:
        pass


# --------------------------------------------------------------------------- anatomy


def _round(x: float) -> float:
    return float(f"{x:.6g}") if math.isfinite(x) else x


def _anatomy_rows(
    pairs: Iterable[tuple[str, Any, Any]], *, module_types: dict[str, str] | None, rank_top: int
) -> dict[str, Any]:
    """Columnar per-parameter rows from ``(name, update, base)`` tensor triples."""
    import torch

    types = module_type_map(module_types)
    columns: dict[str, list[Any]] = {
        k: [] for k in ("name", "type", "layer", "numel", "base_norm", "update_norm", "relative")
    }
    if rank_top:
        columns["erank"] = []
    with torch.no_grad():
        for name, update, base in pairs:
            update = update.detach().float()
            base_norm = float(torch.linalg.vector_norm(base.float()))
            update_norm = float(torch.linalg.vector_norm(update))
            kind = module_type(name, types)
            columns["name"].append(name)
            columns["type"].append(kind)
            columns["layer"].append(layer_index(name))
            columns["numel"].append(int(update.numel()))
            columns["base_norm"].append(_round(base_norm))
            columns["update_norm"].append(_round(update_norm))
            columns["relative"].append(_round(update_norm / base_norm) if base_norm > 0 else None)
            if rank_top:
                wanted = kind in MATRIX_TYPES and update.ndim == 2 and update_norm > 0
                columns["erank"].append(_round(effective_rank(update, rank_top)) if wanted else None)
    return columns


def _record(
    columns: dict[str, Any], *, base: str, rank_top: int, started: float, skipped: list[str]
) -> dict[str, Any]:
    update_sq = sum(u * u for u in columns["update_norm"])
    base_sq = sum(b * b for b in columns["base_norm"])
    return {
        "schema": SCHEMA, "norm": "frobenius", "base": base,
        "effective_rank": {"top": rank_top, "definition": "exp(entropy of sigma/sum(sigma)) over the top singular values"}
        if rank_top else None,
        "params": columns,
        "total": {"update_norm": _round(math.sqrt(update_sq)), "base_norm": _round(math.sqrt(base_sq)),
                  "relative": _round(math.sqrt(update_sq / base_sq)) if base_sq > 0 else None},
        "skipped": skipped,
        "seconds": round(time.perf_counter() - started, 3),
    }  # fmt: skip


def weight_update_anatomy(
    model: Any,
    base: Any,
    *,
    module_types: dict[str, str] | None = None,
    effective_rank_top: int = 0,
    base_label: str = "",
) -> dict[str, Any]:
    """Per-parameter update norms of ``model`` against ``base`` (:class:`SafetensorsWeights`,
    :class:`StateDictWeights`, or anything with ``get(name) -> tensor | None``), streamed one
    parameter at a time. Parameters missing from the base or of another shape are listed in
    ``skipped``."""
    started = time.perf_counter()
    skipped: list[str] = []

    def pairs() -> Iterator[tuple[str, Any, Any]]:
        for name, parameter in model.named_parameters():
            before = base.get(name)
            if before is None or tuple(before.shape) != tuple(parameter.shape):
                skipped.append(name)
                continue
            after = parameter.detach().to("cpu").float()  # fp32 difference even for a bf16 checkpoint
            yield name, after - before.float(), before

    columns = _anatomy_rows(pairs(), module_types=module_types, rank_top=effective_rank_top)
    return _record(
        columns,
        base=base_label or type(base).__name__,
        rank_top=effective_rank_top,
        started=started,
        skipped=skipped,
    )


def _merged_name(peft_name: str) -> str:
    name = peft_name.removeprefix("base_model.model.")
    return name.replace(".base_layer.", ".")


def lora_deltas(peft_model: Any) -> dict[str, Any]:
    """``{merged weight name: B @ A * scaling}`` for every LoRA-adapted linear module (active adapters)."""
    from peft.tuners.lora import LoraLayer

    deltas: dict[str, Any] = {}
    for module_name, module in peft_model.named_modules():
        if not isinstance(module, LoraLayer):
            continue
        delta = None
        for adapter in module.active_adapters:
            if adapter not in module.lora_A:
                continue
            a, b = module.lora_A[adapter].weight, module.lora_B[adapter].weight
            term = (b.float() @ a.float()) * module.scaling[adapter]
            if getattr(module, "fan_in_fan_out", False):
                term = term.T
            delta = term if delta is None else delta + term
        if delta is not None:
            deltas[_merged_name(f"{module_name}.weight")] = delta.detach()
    return deltas


def lora_update_anatomy(
    peft_model: Any, *, module_types: dict[str, str] | None = None, effective_rank_top: int = 0
) -> dict[str, Any]:
    """The anatomy of a LoRA run from its adapters: the update of an adapted weight is the merged
    delta ``B @ A * scaling`` against the frozen base layer; every other parameter is unchanged."""
    import torch

    started = time.perf_counter()
    deltas = lora_deltas(peft_model)

    def pairs() -> Iterator[tuple[str, Any, Any]]:
        for peft_name, parameter in peft_model.named_parameters():
            if ".lora_" in peft_name:
                continue
            name = _merged_name(peft_name)
            base = parameter.detach().float().cpu()
            update = deltas.get(name)
            yield name, (update.cpu() if update is not None else torch.zeros_like(base)), base

    columns = _anatomy_rows(pairs(), module_types=module_types, rank_top=effective_rank_top)
    return _record(columns, base="lora-adapters", rank_top=effective_rank_top, started=started, skipped=[])


# --------------------------------------------------------------------------- KL drift


def token_kl(logits_p: Any, logits_q: Any) -> Any:
    """``KL(p || q)`` per position, exact over the last (vocabulary) axis, from logits."""
    import torch

    log_p = torch.log_softmax(logits_p.float(), dim=-1)
    log_q = torch.log_softmax(logits_q.float(), dim=-1)
    return (log_p.exp() * (log_p - log_q)).sum(dim=-1)


def _chat_prompts(tokenizer: Any, prompts: list[str]) -> list[str]:
    if getattr(tokenizer, "chat_template", None):
        return [
            tokenizer.apply_chat_template(
                [{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True
            )
            for p in prompts
        ]
    return prompts


def kl_drift(
    trained: Any,
    base: Any,
    tokenizer: Any,
    prompts: list[str],
    *,
    max_new_tokens: int = 32,
    batch_size: int = 8,
) -> dict[str, Any]:
    """Mean per-token KL(trained || base) over the trained model's greedy continuations of ``prompts``."""
    import torch

    device = next(trained.parameters()).device
    texts = _chat_prompts(tokenizer, prompts)
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    total, tokens = 0.0, 0
    per_prompt: list[float] = []
    try:
        with torch.no_grad():
            for start in range(0, len(texts), batch_size):
                batch = tokenizer(
                    texts[start : start + batch_size],
                    return_tensors="pt",
                    padding=True,
                    add_special_tokens=False,
                ).to(device)
                width = batch["input_ids"].shape[1]
                sequences = trained.generate(
                    **batch,
                    do_sample=False,
                    max_new_tokens=max_new_tokens,
                    pad_token_id=tokenizer.pad_token_id,
                    eos_token_id=tokenizer.eos_token_id,
                )
                generated = sequences[:, width:]
                # a continuation runs up to and including its first end-of-sequence token
                is_eos = generated == tokenizer.eos_token_id
                after_eos = (is_eos.cumsum(dim=1) - is_eos.long()) > 0
                keep = ~after_eos
                attention = torch.cat([batch["attention_mask"], keep.long()], dim=1)
                positions = (attention.cumsum(dim=1) - 1).clamp(min=0)
                logits_t = trained(
                    input_ids=sequences, attention_mask=attention, position_ids=positions
                ).logits
                logits_b = base(input_ids=sequences, attention_mask=attention, position_ids=positions).logits
                # position t predicts token t + 1: the continuation tokens are predicted from width - 1 on
                kl = token_kl(logits_t[:, width - 1 : -1], logits_b[:, width - 1 : -1])
                mask = keep.float()
                total += float((kl * mask).sum())
                tokens += int(mask.sum())
                per_prompt += [float(v) for v in ((kl * mask).sum(1) / mask.sum(1).clamp(min=1))]
    finally:
        tokenizer.padding_side = side
    return {
        "direction": "KL(trained || base)",
        "estimator": "exact over the vocabulary at each position of the trained model's greedy continuations; "
                     "mean over continuation tokens",
        "value": _round(total / tokens) if tokens else None,
        "tokens": tokens, "prompts": len(prompts), "max_new_tokens": max_new_tokens,
        "per_prompt": [_round(v) for v in per_prompt],
    }  # fmt: skip


def drift_prompts(cell: Any, base_dir: Path | None = None) -> tuple[list[str], str] | None:
    """The held-out KL prompt set of ``cell`` and its label: ``measure.kl_drift.prompts``, else the
    data source's ``test`` split (a bundled task's, or an ``hf:`` dataset's with the data's field
    mapping), else the first in-domain bundled benchmark's; None when there is none."""
    from oxstudy.errors import OxstudyError
    from oxstudy.selfplay import _canonicalise, load_records
    from oxstudy.tasks import TASKS
    from oxstudy.tasks.suite import read_jsonl, task_split

    spec = cell.measure.kl_drift
    source = spec.prompts
    if source is None:
        if cell.data.source.startswith("task:"):
            source = cell.data.source
        elif cell.data.source.startswith("hf:"):
            try:
                records = load_records(cell.data.source, config=cell.data.config, split="test")[: spec.n]
                prompts = [
                    r["prompt"] for r in _canonicalise(records, dict(cell.data.fields or {}), "kl prompts")
                ]
                return prompts, f"{cell.data.source} (test split)"
            except (OxstudyError, KeyError, ValueError):  # no test split offline: fall back
                source = None
        if source is None:
            bundled = [b.task for b in cell.benchmarks if b.in_domain and b.task in TASKS]
            source = f"task:{bundled[0]}" if bundled else None
    if source is None:
        return None
    if source.startswith("task:"):
        name = source.split(":", 1)[1]
        return [r["prompt"] for r in task_split(name, "test", spec.n)][: spec.n], f"{source} (test split)"
    path = Path(source) if base_dir is None else (base_dir / source)
    return [str(r["prompt"]) for r in read_jsonl(path)][: spec.n], str(source)


# --------------------------------------------------------------------------- the worker's phase


def _base_cache_key(model_path: str | Path, cell: Any) -> str:
    from oxstudy.evaluation import lm_eval_version
    from oxstudy.plan import content_hash
    from oxstudy.selfplay import model_fingerprint

    benchmarks = sorted((b.model_dump(mode="json") for b in cell.benchmarks), key=lambda b: b["id"])
    return content_hash(
        {"model": model_fingerprint(model_path), "benchmarks": benchmarks, "lm_eval": lm_eval_version()}
    )


def base_evaluation(
    base: Any, tokenizer: Any, cell: Any, model_path: str | Path, cache_dir: Path, device: str
) -> dict[str, Any]:
    """The base model's metrics and pass@k on the cell's benchmarks, computed once per (model,
    benchmarks) and cached as ``<store>/base/<key>.json``; concurrent workers wait for the first one's file."""
    from oxstudy.evaluation import evaluate_model
    from oxstudy.passk import evaluate_pass_at_k
    from oxstudy.store import cached_json

    key = _base_cache_key(model_path, cell)

    def evaluate() -> dict[str, Any]:
        evaluation = evaluate_model(base, cell.benchmarks, tokenizer, device=device)
        return {
            "key": key,
            "source": cell.model.source,
            "metrics": evaluation["metrics"],
            "items": evaluation["items"],
            "pass_at_k": evaluate_pass_at_k(base, tokenizer, cell.benchmarks),
        }

    # The first worker to get here evaluates; the others (the first wave of cells all finish
    # training together) wait on the lock and read its file instead of repeating the work.
    return cached_json(cache_dir / f"{key}.json", evaluate)


def measure_after_training(
    cell: Any,
    trained: Any,
    tokenizer: Any,
    model_path: str | Path,
    *,
    store_root: Path,
    device: str,
    progress: Any = None,
) -> dict[str, Any]:
    """Anatomy, KL drift, pass@k (trained) and the cached base evaluation for one run.

    Returns ``{"anatomy", "kl_drift", "pass_at_k", "base", "alignment", "timings"}`` (absent parts are
    None; ``alignment`` holds the base pass@k rows of model-task alignment, see
    :func:`oxstudy.passk.base_alignment`).
    Peak memory: the trained model plus one base copy (loaded for KL drift and the base
    evaluation); the anatomy itself streams base tensors from the safetensors one at a time.
    """
    import gc

    from oxstudy.passk import evaluate_pass_at_k
    from oxstudy.training import load_model

    measure = cell.measure
    out: dict[str, Any] = {"anatomy": None, "kl_drift": None, "pass_at_k": None, "base": None, "alignment": None,
                           "timings": {}}

    def phase(name: str) -> None:
        if progress is not None:
            progress(name)

    started = time.perf_counter()
    base_model = None
    if measure.anatomy:
        phase("anatomy")
        if SafetensorsWeights.available(model_path):
            weights: Any = SafetensorsWeights(model_path)
            label = "base checkpoint (safetensors, streamed)"
        else:
            base_model, _ = load_model(model_path, "cpu", "fp32")
            weights, label = StateDictWeights(dict(base_model.named_parameters())), "base model in memory"
        try:
            out["anatomy"] = weight_update_anatomy(
                trained,
                weights,
                module_types=measure.module_types,
                effective_rank_top=measure.effective_rank,
                base_label=label,
            )
        finally:
            weights.close()
        out["anatomy"]["finetune"] = cell.model.finetune
        out["timings"]["anatomy_s"] = round(time.perf_counter() - started, 3)

    wants_base = measure.kl_drift.enabled or measure.base_eval or measure.alignment is not None
    if wants_base:
        if base_model is None:
            base_model, _ = load_model(model_path, device, "fp32")
        base_model.to(next(trained.parameters()).device).eval()
    if measure.kl_drift.enabled:
        phase("kl drift")
        t0 = time.perf_counter()
        prompts = drift_prompts(cell)
        if prompts is not None:
            texts, label = prompts
            out["kl_drift"] = {
                **kl_drift(
                    trained, base_model, tokenizer, texts, max_new_tokens=measure.kl_drift.max_new_tokens
                ),
                "prompt_set": label,
            }
        out["timings"]["kl_drift_s"] = round(time.perf_counter() - t0, 3)
    if any(getattr(b, "pass_at_k", None) is not None for b in cell.benchmarks):
        phase("pass@k")
        t0 = time.perf_counter()
        out["pass_at_k"] = evaluate_pass_at_k(trained, tokenizer, cell.benchmarks)
        out["timings"]["pass_at_k_s"] = round(time.perf_counter() - t0, 3)
    if measure.base_eval:
        phase("base eval")
        t0 = time.perf_counter()
        out["base"] = base_evaluation(base_model, tokenizer, cell, model_path, store_root / "base", device)
        out["base"].pop("items", None)  # per-item base outcomes stay in the cache file
        out["timings"]["base_eval_s"] = round(time.perf_counter() - t0, 3)
    if measure.alignment is not None:
        from oxstudy.passk import base_alignment

        phase("base pass@k (alignment)")
        t0 = time.perf_counter()
        out["alignment"] = base_alignment(base_model, tokenizer, cell, str(model_path), store_root / "alignment",
                                          measure.alignment)
        out["timings"]["alignment_s"] = round(time.perf_counter() - t0, 3)
    del base_model
    gc.collect()
    return out
