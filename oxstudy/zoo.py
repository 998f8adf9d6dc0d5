"""The tiny-model zoo: a ladder of small Llama causal LMs pretrained on the bundled
synthetic tasks, so the whole pipeline runs for real on a CPU with no model hub.

Each model is fully determined by its :class:`ZooConfig`; it is built once into
``<cache>/zoo/<name>-<config hash>/`` (``$OXSTUDY_CACHE`` or ``~/.cache/oxstudy``) with
``save_pretrained`` and later loads like any hub model from that local path. A second
build is a no-op. A build uses one torch thread (``OXSTUDY_ZOO_THREADS`` overrides), so
its weights do not depend on the core count; ladders build in parallel processes. The
tokenizer is a byte-level BPE trained locally with ``tokenizers`` (digits split one per
token, which tiny models need to learn arithmetic) wrapped in ``PreTrainedTokenizerFast``
with a chat template, eos and pad tokens.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from oxstudy.errors import ResourceError
from oxstudy.tasks import cache_root, suite_fingerprint, task_split

ZOO_VERSION = 2
META_FILE = "oxstudy_zoo.json"
#: Environment override of every zoo model's pretraining seed (a new seed is a new model,
#: under a new cache entry); unset, users get each config's own ``seed``.
SEED_ENV = "OXSTUDY_ZOO_SEED"

#: Chat format shared by the zoo models, the bundled tasks and the trainers. The
#: ``{% generation %}`` markers let TRL compute assistant-only losses.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "<|assistant|>{% generation %}{{ message['content'] }}<|end|>{% endgeneration %}"
    "{% else %}<|{{ message['role'] }}|>{{ message['content'] }}<|end|>{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
SPECIAL_TOKENS = ["<|pad|>", "<|end|>", "<|system|>", "<|user|>", "<|assistant|>"]


def _default_corpus() -> dict[str, int]:
    # How many pretrain-split examples of each task the corpus holds (the facts split is
    # cycled: 1620 lines = every fact stated 2 x FACT_REPEATS[level - 1] times). Arithmetic
    # dominates: it is the skill the ladder is graded on.
    return {"oxs_arith": 8000, "oxs_math": 1600, "oxs_sequence": 800, "oxs_compare": 800, "oxs_facts": 1620}


@dataclass(frozen=True)
class ZooConfig:
    """Architecture and pretraining recipe of one zoo model (its hash names the cache entry).

    ``corpus`` maps bundled task names to how many ``pretrain``-split examples the corpus
    takes from each (the pretrain split never shares a prompt with the test split).
    Training samples batches uniformly from the corpus; the learning rate warms up for
    ``warmup_steps`` and decays along a cosine to ``min_lr_ratio`` of its peak.
    """

    name: str
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    steps: int
    batch_size: int = 32
    learning_rate: float = 3e-3
    warmup_steps: int = 30
    min_lr_ratio: float = 0.05
    weight_decay: float = 0.01
    corpus: dict[str, int] = field(default_factory=_default_corpus)
    #: Byte-level BPE with digits always split: a small vocabulary keeps the embedding
    #: tiny and merges only frequent words, so sequences stay short (~45 tokens).
    vocab_size: int = 128
    max_positions: int = 192
    seed: int = 0

    def config_hash(self) -> str:
        """Hash of the recipe and of the corpus content itself, so a change in the task
        generators (not only in this config) gives a new cache entry."""
        payload = json.dumps(
            {"zoo_version": ZOO_VERSION, **asdict(self), "corpus_sha": _corpus_sha(self)}, sort_keys=True
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:12]


#: The ladder. Sizes and steps are sized for the CPU budget (the whole ladder in about
#: 4 minutes on 2 cores, models built in parallel, one thread each; the smallest in under
#: 40 s). NOT TUNED YET: at these budgets tiny and small learn the answer format only
#: (always "#### 1"; see docs/world.md). A ladder must pass benchmarks/bench_zoo.py
#: --seeds 3 (ordering and margins over seeds, above the constant-answer floor) and be
#: recorded in oxstudy/zoo_recorded.py.
_LADDER: dict[str, ZooConfig] = {
    c.name: c
    for c in (
        ZooConfig(
            "tiny",
            hidden_size=48,
            intermediate_size=144,
            num_layers=2,
            num_heads=4,
            steps=200,
            warmup_steps=20,
        ),
        ZooConfig("small", hidden_size=96, intermediate_size=288, num_layers=3, num_heads=4, steps=300),
        ZooConfig(
            "medium",
            hidden_size=144,
            intermediate_size=432,
            num_layers=3,
            num_heads=4,
            steps=400,
            learning_rate=2.5e-3,
            warmup_steps=40,
        ),
    )
}


def zoo_seed() -> int | None:
    """The pretraining-seed override from ``$OXSTUDY_ZOO_SEED`` (None when unset)."""
    value = os.environ.get(SEED_ENV, "").strip()
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise ResourceError(f"{SEED_ENV}={value!r}: not an integer pretraining seed") from None


class _Ladder(dict):
    """``ZOO[name]``: the ladder's config, with the ``$OXSTUDY_ZOO_SEED`` override applied."""

    def __getitem__(self, name: str) -> ZooConfig:
        config = super().__getitem__(name)
        seed = zoo_seed()
        return config if seed is None else replace(config, seed=seed)

    def values(self):  # type: ignore[override]
        return [self[name] for name in self]

    def items(self):  # type: ignore[override]
        return [(name, self[name]) for name in self]


ZOO: dict[str, ZooConfig] = _Ladder(_LADDER)


def zoo_names() -> list[str]:
    """Names of the zoo models, smallest first."""
    return list(ZOO)


def _config(name: str) -> ZooConfig:
    if name not in ZOO:
        raise ResourceError(f"zoo:{name}: unknown zoo model (known: {', '.join(ZOO)})")
    return ZOO[name]


def model_dir(name: str) -> Path:
    """Where zoo model ``name`` lives (whether or not it is built yet)."""
    config = _config(name)
    return cache_root() / "zoo" / f"{name}-{config.config_hash()}"


def is_built(name: str) -> bool:
    return (model_dir(name) / META_FILE).exists()


def zoo_metadata(name: str) -> dict[str, Any] | None:
    """The recorded metadata (params, build time, base accuracy) of a built model."""
    path = model_dir(name) / META_FILE
    return json.loads(path.read_text()) if path.exists() else None


def corpus_texts(config: ZooConfig) -> list[tuple[str, str]]:
    """(user, assistant) pairs of the pretraining corpus, in a fixed interleaved order."""
    pairs: list[tuple[str, str]] = []
    for task_name, count in sorted(config.corpus.items()):
        pairs.extend((e["prompt"], e["solution"]) for e in task_split(task_name, "pretrain", count))
    import random

    random.Random(config.seed).shuffle(pairs)
    return pairs


_CORPUS_SHA: dict[str, str] = {}


def _corpus_sha(config: ZooConfig) -> str:
    key = json.dumps(config.corpus, sort_keys=True) + str(config.seed)
    if key not in _CORPUS_SHA:
        digest = hashlib.sha256()
        for user, assistant in corpus_texts(config):
            digest.update(f"{user}\x1f{assistant}\x1e".encode())
        _CORPUS_SHA[key] = digest.hexdigest()
    return _CORPUS_SHA[key]


def train_tokenizer(pairs: Iterable[tuple[str, str]], vocab_size: int):
    """A byte-level BPE tokenizer (digits split individually) wrapped for transformers."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    texts = [f"{user}\n{assistant}" for user, assistant in pairs]
    tokenizer.train_from_iterator(texts, trainer=trainer)
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token="<|end|>",
        pad_token="<|pad|>",
        additional_special_tokens=["<|system|>", "<|user|>", "<|assistant|>"],
        model_max_length=256,
        padding_side="left",
        clean_up_tokenization_spaces=False,
    )
    wrapped.chat_template = CHAT_TEMPLATE
    return wrapped


def chat_text(user: str, assistant: str) -> str:
    """One exchange rendered exactly as ``CHAT_TEMPLATE`` renders it (a plain format
    string: rendering the Jinja template 40,000 times took longer than training tiny)."""
    return f"<|user|>{user}<|end|><|assistant|>{assistant}<|end|>"


def machine_description() -> dict[str, Any]:
    """The machine a build ran on (float kernels differ between CPUs: results are
    bit-identical per machine only)."""
    import platform

    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def count_parameters(model) -> int:
    """Distinct parameters (tied embeddings counted once)."""
    seen: set[int] = set()
    total = 0
    for p in model.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    return total


def _train(config: ZooConfig, tokenizer, pairs, on_step: Callable[[int, int, float], None] | None):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(config.seed)
    model_config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        num_key_value_heads=config.num_heads,
        max_position_embeddings=config.max_positions,
        tie_word_embeddings=True,
        rope_theta=10000.0,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = LlamaForCausalLM(model_config)
    texts = [chat_text(u, a) for u, a in pairs]
    encoded = tokenizer(texts, add_special_tokens=False)["input_ids"]
    assistant_id = tokenizer.convert_tokens_to_ids("<|assistant|>")
    answer_starts = torch.tensor([seq.index(assistant_id) for seq in encoded])
    generator = torch.Generator().manual_seed(config.seed)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.learning_rate, betas=(0.9, 0.95), weight_decay=config.weight_decay
    )

    def lr_at(step: int) -> float:
        if step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
        return config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_at)
    pad = tokenizer.pad_token_id
    by_length = sorted(range(len(encoded)), key=lambda i: (len(encoded[i]), i))
    bucket = min(len(by_length), 8 * config.batch_size)
    model.train()
    losses = []
    for step in range(config.steps):
        # A batch is drawn from one length bucket (a random run of examples sorted by
        # length): padding to the longest of 32 random examples wasted ~35% of the compute.
        start = int(torch.randint(len(by_length) - bucket + 1, (1,), generator=generator))
        index = [
            by_length[start + i] for i in torch.randperm(bucket, generator=generator)[: config.batch_size]
        ]
        batch = [encoded[i] for i in index]
        width = max(map(len, batch))
        positions = torch.arange(width).unsqueeze(0)
        ids = torch.full((len(batch), width), pad, dtype=torch.long)
        for row, seq in enumerate(batch):
            ids[row, : len(seq)] = torch.tensor(seq)
        attention = (ids != pad).long()
        # Loss on the assistant turn only: capacity goes to solving, not to the prompts.
        labels = ids.masked_fill((attention == 0) | (positions <= answer_starts[index].unsqueeze(1)), -100)
        loss = model(input_ids=ids, attention_mask=attention, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if on_step is not None:
            on_step(step + 1, config.steps, losses[-1])
    model.eval()
    return model, losses


@contextlib.contextmanager
def quiet_third_party(log_path: str | Path) -> Iterator[Path]:
    """Send third-party chatter to ``log_path`` for the duration: Python-level stderr
    (tqdm bars such as datasets' "Generating train split", ``warnings``), and lm-eval's
    logger (its "pretrained model kwarg is not of type str" warning). oxstudy's own
    progress is unaffected when its console holds the real stderr (see commands/world.py)."""
    import logging
    import sys
    import warnings

    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    real_stderr = sys.stderr
    lm_eval_logger = logging.getLogger("lm_eval")
    with open(log_path, "a", encoding="utf-8", buffering=1) as log, warnings.catch_warnings():
        swapped = []
        for handler in lm_eval_logger.handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream in (real_stderr, sys.__stderr__):
                swapped.append((handler, handler.setStream(log)))
        # records that would propagate to the root logger's handlers go to the log instead
        file_handler = logging.StreamHandler(log)
        file_handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        lm_eval_logger.addHandler(file_handler)
        propagate, lm_eval_logger.propagate = lm_eval_logger.propagate, False

        def to_log(message, category, filename, lineno, file=None, line=None):
            log.write(warnings.formatwarning(message, category, filename, lineno, line))

        warnings.showwarning = to_log
        sys.stderr = log
        try:
            yield log_path
        finally:
            sys.stderr = real_stderr
            lm_eval_logger.removeHandler(file_handler)
            lm_eval_logger.propagate = propagate
            for handler, stream in swapped:
                handler.setStream(stream)
            # lm-eval adds its stream handler on first use: one added inside points at the log
            for handler in lm_eval_logger.handlers:
                if isinstance(handler, logging.StreamHandler) and handler.stream is log:
                    handler.setStream(real_stderr)


def build_log(name: str) -> Path:
    """Where a build's third-party output goes (lm-eval and datasets warnings, bars)."""
    return cache_root() / "zoo" / "logs" / f"{model_dir(name).name}.log"


def build(
    name: str,
    force: bool = False,
    evaluate: bool = True,
    on_step: Callable[[int, int, float], None] | None = None,
) -> Path:
    """Build zoo model ``name`` into the cache (a no-op when it is already there) and
    return its directory. With ``evaluate``, its base accuracy on the bundled in-domain
    task is measured through lm-eval and recorded in ``oxstudy_zoo.json``."""
    config = _config(name)
    target = model_dir(name)
    if is_built(name) and not force:
        return target
    import torch

    started = time.perf_counter()
    pairs = corpus_texts(config)
    tokenizer = train_tokenizer(pairs, config.vocab_size)
    # One thread per build by default: the weights then do not depend on the machine's
    # core count, and a build never oversubscribes a shared CPU (2 threads next to other
    # work ran ~20x slower here). Several models build in parallel processes instead.
    threads = int(os.environ.get("OXSTUDY_ZOO_THREADS", "1"))
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with quiet_third_party(build_log(name)):
            return _build(name, config, target, pairs, tokenizer, threads, started, evaluate, on_step)
    finally:
        torch.set_num_threads(previous_threads)


def _build(name, config, target, pairs, tokenizer, threads, started, evaluate, on_step) -> Path:
    model, losses = _train(config, tokenizer, pairs, on_step)
    train_s = time.perf_counter() - started
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.bos_token_id = None

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{name}-staging-"))
    staging.chmod(0o755)  # mkdtemp makes it private; a cache may be shared
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    meta: dict[str, Any] = {
        "schema": "oxstudy.zoo/1",
        "name": name,
        "config_hash": config.config_hash(),
        "config": asdict(config),
        "params": count_parameters(model),
        "train_s": round(train_s, 2),
        "torch_threads": threads,
        "final_loss": round(sum(losses[-20:]) / len(losses[-20:]), 4),
        "base_accuracy": None,
        # The bundled tasks' content hash: a base accuracy is only comparable on the same test set.
        "suite_fingerprint": suite_fingerprint(),
        "machine": machine_description(),
    }
    if evaluate:
        eval_started = time.perf_counter()
        meta["base_accuracy"] = measure_base_accuracy(model, tokenizer, [IN_DOMAIN_TASK])[IN_DOMAIN_TASK]
        meta["eval_s"] = round(time.perf_counter() - eval_started, 2)
    meta["build_s"] = round(time.perf_counter() - started, 2)
    (staging / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True))
    if target.exists():
        shutil.rmtree(target)
    try:
        os.rename(staging, target)
    except OSError:  # a concurrent build finished first; its result is equivalent
        shutil.rmtree(staging, ignore_errors=True)
    return target


#: The task a zoo build measures (the ladder is graded on it).
IN_DOMAIN_TASK = "oxs_arith"


def measure_base_accuracy(model: Any, tokenizer: Any, tasks: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Base accuracy of a model on bundled tasks through lm-eval (0-shot, chat template,
    the tasks' default metric), with the accuracy per difficulty level.

    ``model`` is a loaded model (with its ``tokenizer``) or a model directory."""
    from oxstudy.evaluation import BenchmarkRequest, default_metric, evaluate_model

    requests = [BenchmarkRequest(id=t, task=t, metric=default_metric(t), batch_size=64) for t in tasks]
    result = evaluate_model(model, requests, tokenizer=tokenizer)
    out: dict[str, dict[str, Any]] = {}
    for request in requests:
        metric = result["metrics"][request.id]
        items = result["items"][request.id]
        by_level: dict[int, list[float]] = {}
        for level, score in zip(items.get("level") or [], items["score"], strict=False):
            if level is not None and score is not None:
                by_level.setdefault(int(level), []).append(score)
        out[request.id] = {
            "task": request.task,
            "metric": metric["metric"],
            "value": metric["value"],
            "stderr": metric["stderr"],
            "n": metric["n"],
            "by_level": {str(k): round(sum(v) / len(v), 4) for k, v in sorted(by_level.items())},
        }
    return out


def recorded_accuracy(name: str, task: str = IN_DOMAIN_TASK) -> float | None:
    """The base accuracy recorded for zoo model ``name`` on ``task`` where the ladder was
    tuned (``RECORDED``), or None when the recorded config hash is not this config's (a
    changed recipe or seed override: nothing to compare against)."""
    from oxstudy.zoo_recorded import RECORDED

    entry = RECORDED["models"].get(name)
    if not entry or entry.get("config_hash") != _config(name).config_hash():
        return None
    return entry.get("accuracy", {}).get(task)


def resolve_model_source(source: str, spec_dir: str | Path | None = None) -> str:
    """A local directory for a spec's model ``source``.

    ``zoo:NAME`` builds (once) or loads the zoo model; a local path must exist (relative
    paths resolve against ``spec_dir``); anything else is a Hugging Face hub id, looked up
    only in the local HF cache: no network call is ever made.
    """
    source = str(source).strip()
    if source.startswith("zoo:"):
        return str(build(source[4:]))
    candidate = Path(source).expanduser()
    if not candidate.is_absolute() and spec_dir is not None:
        candidate = Path(spec_dir) / candidate
    looks_like_path = source.startswith((".", "/", "~")) or candidate.exists() or source.count("/") != 1
    if looks_like_path:
        if candidate.is_dir() and any(
            (candidate / f).exists() for f in ("config.json", "adapter_config.json")
        ):
            return str(candidate.resolve())
        if candidate.exists():
            raise ResourceError(f"{source}: not a model directory (no config.json or adapter_config.json)")
        raise ResourceError(f"{source}: model path does not exist")
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(source, local_files_only=True)
    except Exception:
        raise ResourceError(
            f"{source}: Hugging Face model not found in the local cache (oxstudy never downloads models); "
            f"download it first (huggingface-cli download {source}) or use a local path, or run the CPU "
            "quickstart (specs/quickstart.yaml with zoo: models, or --smoke)"
        ) from None


def model_param_count(path: str | Path) -> int:
    """Number of parameters of the model saved at ``path``, read from its safetensors
    headers (no weights loaded); tied weights count once. A LoRA adapter dir counts the
    adapter's own parameters."""
    path = Path(path)
    files = sorted(path.glob("*.safetensors"))
    if not files:
        raise ResourceError(f"{path}: no .safetensors weights to count parameters from")
    total = 0
    for file in files:
        with open(file, "rb") as handle:
            header_len = int.from_bytes(handle.read(8), "little")
            header = json.loads(handle.read(header_len))
        for key, info in header.items():
            if key == "__metadata__":
                continue
            total += math.prod(info["shape"])
    return total


def _build_worker(name: str, force: bool, queue: Any) -> str:
    def report(step: int, total: int, loss: float) -> None:
        if step % 10 == 0 or step == total:
            queue.put((name, step, total, loss))

    return str(build(name, force=force, on_step=report))


def build_many(
    names: Iterable[str],
    force: bool = False,
    jobs: int | None = None,
    on_step: Callable[[str, int, int, float], None] | None = None,
) -> dict[str, Path]:
    """Build several zoo models, in parallel processes (one thread each, ``jobs`` defaults
    to the CPU count). Already-built models are skipped. ``on_step(name, step, total,
    loss)`` reports training progress."""
    names = list(dict.fromkeys(names))
    for name in names:
        _config(name)
    todo = [n for n in names if force or not is_built(n)]
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(todo) or 1))
    if jobs == 1 or len(todo) <= 1:
        for name in todo:
            build(
                name,
                force=force,
                on_step=None
                if on_step is None
                else (lambda step, total, loss, n=name: on_step(n, step, total, loss)),
            )
        return {n: model_dir(n) for n in names}
    import multiprocessing as mp
    import queue as queue_module
    from concurrent.futures import ProcessPoolExecutor, wait

    context = mp.get_context("spawn")
    with context.Manager() as manager, ProcessPoolExecutor(jobs, mp_context=context) as pool:
        progress = manager.Queue()
        futures = [pool.submit(_build_worker, name, force, progress) for name in todo]
        while True:
            done, pending = wait(futures, timeout=0.5)
            while True:
                try:
                    event = progress.get_nowait()
                except queue_module.Empty:
                    break
                if on_step is not None:
                    on_step(*event)
            if not pending:
                break
        for future in futures:
            future.result()  # re-raise a worker's error here
    return {n: model_dir(n) for n in names}


def estimate_params(name: str) -> int:
    """Parameter count of zoo model ``name`` computed from its config (no build needed):
    tied embeddings + per layer attention (4 h^2), SwiGLU MLP (3 h i) and two norms. An
    upper bound: the trained BPE vocabulary may stop short of ``vocab_size``; a built
    model's metadata has the exact count."""
    c = _config(name)
    vocab = c.vocab_size
    per_layer = 4 * c.hidden_size**2 + 3 * c.hidden_size * c.intermediate_size + 2 * c.hidden_size
    return vocab * c.hidden_size + c.num_layers * per_layer + c.hidden_size
