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

import hashlib
import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from oxstudy.errors import ResourceError
from oxstudy.tasks import cache_root, suite_fingerprint, task_split

ZOO_VERSION = 2
META_FILE = "oxstudy_zoo.json"
#: Environment override of every zoo model's pretraining seed. Another seed is another model
#: (its own config hash, so its own cache entry); unset, users get each config's ``seed`` (0).
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


#: The pretraining corpus: how many ``pretrain``-split examples it takes from each bundled
#: task. Arithmetic word problems dominate (the training domain); the second math dataset,
#: the out-of-domain tasks and the knowledge task's fact statements are there so the base
#: models are above chance on every benchmark. ``oxs_facts`` is six passes over its
#: statements (a frequent fact is stated 36 times, a rare one 6 times: its levels).
#: ``CORPUS_REPEATS`` repeats a task's examples where its generator has few distinct ones.
DEFAULT_CORPUS: dict[str, int] = {
    "oxs_arith": 24000,
    "oxs_math": 4800,
    "oxs_sequence": 750,
    "oxs_compare": 1500,
    "oxs_facts": 4860,
}
#: Passes over a task's ``pretrain`` examples in the corpus (default 1): the progressions
#: have few distinct easy problems (level 1: 450), and the MATH-style problems need the
#: practice (multiplication tables appear nowhere else): with two passes zoo:medium was below
#: 10% on oxs_math_numeric for 2 of 3 pretraining seeds and above 70% on oxs_arith for one;
#: the third pass gives 9-24% and 48-69% (docs/world.md, "How the ladder was chosen").
CORPUS_REPEATS: dict[str, int] = {"oxs_sequence": 6, "oxs_math": 3}


@dataclass(frozen=True)
class ZooConfig:
    """Architecture and pretraining recipe of one zoo model (its hash names the cache entry).

    ``corpus`` maps bundled task names to how many ``pretrain``-split examples the corpus
    takes from each (the pretrain split never shares a prompt with the test split).
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
    weight_decay: float = 0.01
    corpus: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_CORPUS))
    corpus_repeats: dict[str, int] = field(default_factory=lambda: dict(CORPUS_REPEATS))
    vocab_size: int = 512
    max_positions: int = 256
    seed: int = 0

    def config_hash(self) -> str:
        """Hash of the recipe and of the corpus content itself, so a change in the task
        generators (not only in this config) gives a new cache entry."""
        payload = json.dumps(
            {"zoo_version": ZOO_VERSION, **asdict(self), "corpus_sha": _corpus_sha(self)}, sort_keys=True
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:12]


#: The ladder: three widths/depths, the same corpus, recipe and number of steps, so size is
#: the only difference. Tiny transformers learn this arithmetic in a sharp transition after
#: about a thousand steps (docs/world.md, "How the ladder was chosen"); at 2,000 steps the
#: largest is past it (for two pretraining seeds of three; the third is at 48%), the middle one
#: in it and the smallest, at 2 layers, barely starts it.
#: Steps were chosen for the CPU budget: the ladder builds in about 7 minutes on 2 cores.
ZOO: dict[str, ZooConfig] = {
    c.name: c
    for c in (
        ZooConfig("tiny", hidden_size=32, intermediate_size=96, num_layers=2, num_heads=2, steps=2000),
        ZooConfig("small", hidden_size=48, intermediate_size=144, num_layers=3, num_heads=3, steps=2000),
        ZooConfig("medium", hidden_size=64, intermediate_size=192, num_layers=4, num_heads=4, steps=2000),
    )
}


def zoo_names() -> list[str]:
    """Names of the zoo models, smallest first."""
    return list(ZOO)


def seed_override() -> int | None:
    """The pretraining seed from ``$OXSTUDY_ZOO_SEED``, or None when it is unset or empty."""
    value = os.environ.get(SEED_ENV, "").strip()
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise ResourceError(f"{SEED_ENV}={value!r}: not an integer pretraining seed") from None


def model_config(name: str) -> ZooConfig:
    """The recipe zoo model ``name`` is built from: ``ZOO[name]`` (the defaults users get),
    with the pretraining seed of ``$OXSTUDY_ZOO_SEED`` when it is set."""
    if name not in ZOO:
        raise ResourceError(f"zoo:{name}: unknown zoo model (known: {', '.join(ZOO)})")
    seed = seed_override()
    return ZOO[name] if seed is None else replace(ZOO[name], seed=seed)



def model_dir(name: str) -> Path:
    """Where zoo model ``name`` lives (whether or not it is built yet)."""
    config = model_config(name)
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
        examples = [(e["prompt"], e["solution"]) for e in task_split(task_name, "pretrain", count)]
        pairs.extend(examples * config.corpus_repeats.get(task_name, 1))
    import random

    random.Random(config.seed).shuffle(pairs)
    return pairs


#: Corpus hashes by (corpus, repeats, seed), part of every zoo config hash. Computing one
#: generates the whole corpus (about 2 s), so a driver hands what it computed to its cell
#: processes (``remember_corpus_shas``) instead of each cell regenerating it to find its model.
_CORPUS_SHA: dict[str, str] = {}


def corpus_sha_memo() -> dict[str, str]:
    """The corpus hashes this process has computed (a copy, for cell processes)."""
    return dict(_CORPUS_SHA)


def remember_corpus_shas(memo: dict[str, str] | None) -> None:
    """Adopt corpus hashes computed by the driver (same code, so the same values)."""
    _CORPUS_SHA.update(memo or {})


def _corpus_sha(config: ZooConfig) -> str:
    key = json.dumps([config.corpus, config.corpus_repeats], sort_keys=True) + str(config.seed)
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


def machine_description(threads: int | None = None) -> dict[str, Any]:
    """The machine a build runs on: CPU model (``/proc/cpuinfo``, else ``platform``), core
    count, torch version and torch threads. Float kernels differ between CPUs, so a build is
    bit-identical per machine only (see ``oxstudy.zoo_recorded``)."""
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
        "torch_threads": torch.get_num_threads() if threads is None else threads,
        "python": platform.python_version(),
    }


#: Issue 11's ladder targets: adjacent sizes at least ``LADDER_MARGIN`` apart for every pair
#: of pretraining seeds; the smallest and the largest model's accuracy within these ranges.
LADDER_MARGIN = 0.05
SMALLEST_RANGE = (0.05, 0.20)
LARGEST_RANGE = (0.40, 0.70)


def ladder_problems(
    accuracy: dict[str, dict[int, float]],
    margin: float = LADDER_MARGIN,
    smallest: tuple[float, float] = SMALLEST_RANGE,
    largest: tuple[float, float] = LARGEST_RANGE,
) -> list[str]:
    """What keeps a ladder's base accuracies from meeting issue 11's targets (empty: it does).

    ``accuracy`` maps zoo names, smallest first, to ``{pretraining seed: accuracy}``.
    Ordering and margin: for every adjacent pair (a, b), every seed of b beats every seed of
    a by at least ``margin``, i.e. ``min_seed acc_b - max_seed acc_a >= margin``. Ranges:
    every seed of the ladder's smallest model (``zoo_names()[0]``) lies in ``smallest`` and
    of its largest (``zoo_names()[-1]``) in ``largest``, bounds included; a subset of the
    ladder is held to the ranges of the ladder positions it contains.
    """
    names = list(accuracy)
    problems = []
    for small, large in zip(names, names[1:], strict=False):
        gap = min(accuracy[large].values()) - max(accuracy[small].values())
        if gap < margin - 1e-9:  # a gap of exactly the margin passes despite float rounding
            problems.append(
                f"{small} -> {large}: worst seed-pair gap {gap * 100:+.1f} points < {margin * 100:g}"
            )
    ladder = zoo_names()
    for position, (lo, hi) in ((ladder[0], smallest), (ladder[-1], largest)):
        values = accuracy.get(position, {})
        outside = {seed: v for seed, v in values.items() if not lo - 1e-9 <= v <= hi + 1e-9}
        if outside:
            shown = ", ".join(f"seed {seed}: {v * 100:.1f}%" for seed, v in sorted(outside.items()))
            problems.append(f"{position}: {shown} outside [{lo * 100:g}%, {hi * 100:g}%]")
    return problems


#: Issue 11's task targets for the largest model: every bundled task inside this range and
#: at least ``CHANCE_MARGIN`` above its chance level.
TASK_RANGE = (0.10, 0.90)
CHANCE_MARGIN = 0.05


def task_range_problems(
    task_accuracy: dict[int, dict[str, dict[str, Any]]],
    bounds: tuple[float, float] = TASK_RANGE,
    chance_margin: float = CHANCE_MARGIN,
) -> list[str]:
    """Bundled tasks on which a model's base accuracy sits at a floor, a ceiling or chance
    (issue 11: every task well inside (0.1, 0.9) and clearly above chance for the largest model).

    ``task_accuracy`` maps pretraining seeds to a build's ``task_accuracy`` metadata (per task
    ``value`` and ``chance``). A task fails for a seed when its accuracy is outside ``bounds``
    or below its chance level plus ``chance_margin``; bounds included."""
    low, high = bounds
    problems = []
    for seed, tasks in task_accuracy.items():
        for task, row in tasks.items():
            value, chance = row["value"], row.get("chance") or 0.0
            if not low - 1e-9 <= value <= high + 1e-9:
                problems.append(f"{task} seed {seed}: {value * 100:.1f}% outside [{low * 100:g}%, {high * 100:g}%]")
            elif chance and value < chance + chance_margin - 1e-9:
                problems.append(
                    f"{task} seed {seed}: {value * 100:.1f}% is less than {chance_margin * 100:g} points above "
                    f"chance ({chance * 100:g}%)"
                )
    return problems


def recorded_accuracy(name: str, task: str = "oxs_arith") -> float | None:
    """The base accuracy on ``task`` recorded for zoo model ``name`` (``oxstudy.zoo_recorded``),
    or None when nothing was recorded for this exact config hash (a changed recipe or a
    ``$OXSTUDY_ZOO_SEED`` override is another model)."""
    from oxstudy.zoo_recorded import RECORDED

    entry = RECORDED["models"].get(name)
    if not entry or entry.get("config_hash") != model_config(name).config_hash():
        return None
    return entry.get("accuracy", {}).get(task)


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
    texts = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": u}, {"role": "assistant", "content": a}], tokenize=False
        )
        for u, a in pairs
    ]
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
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_at)
    pad = tokenizer.pad_token_id
    model.train()
    losses = []
    for step in range(config.steps):
        index = torch.randint(len(encoded), (config.batch_size,), generator=generator).tolist()
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


#: What a build evaluates by default: the in-domain task (``zoo list``'s base accuracy).
DEFAULT_EVAL_TASKS: tuple[str, ...] = ("oxs_arith",)


def build(
    name: str,
    force: bool = False,
    evaluate: bool = True,
    on_step: Callable[[int, int, float], None] | None = None,
    eval_tasks: Iterable[str] | None = None,
) -> Path:
    """Build zoo model ``name`` into the cache (a no-op when it is already there) and
    return its directory. With ``evaluate``, its base accuracy on the bundled in-domain
    task is measured through lm-eval and recorded in ``oxstudy_zoo.json``, and on every task
    of ``eval_tasks`` (default ``DEFAULT_EVAL_TASKS``; ``bench_zoo.py`` asks for all bundled
    tasks) under ``task_accuracy``."""
    config = model_config(name)
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
    from oxstudy.execute import redirect_output

    try:
        # Third-party output (lm-eval's model-kwarg warning, datasets' split bars, transformers'
        # warnings) goes to the build log; callers show progress through ``on_step``.
        with redirect_output(build_log(name)):
            tasks = tuple(dict.fromkeys([*DEFAULT_EVAL_TASKS, *(eval_tasks or ())])) if evaluate else ()
            return _build(name, config, target, pairs, tokenizer, threads, started, tasks, on_step)
    finally:
        torch.set_num_threads(previous_threads)


def build_log(name: str) -> Path:
    """Where a build of zoo model ``name`` writes third-party output (appended per build)."""
    return cache_root() / "zoo" / "logs" / f"{model_dir(name).name}.log"


def _build(name, config, target, pairs, tokenizer, threads, started, eval_tasks, on_step) -> Path:
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
        "machine": machine_description(threads),
    }
    if eval_tasks:
        eval_started = time.perf_counter()
        meta["task_accuracy"] = base_task_accuracy(model, tokenizer, eval_tasks)
        arith = meta["task_accuracy"]["oxs_arith"]
        meta["base_accuracy"] = {"task": "oxs_arith", **{k: v for k, v in arith.items() if k != "chance"}}
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


def base_task_accuracy(model, tokenizer, tasks: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Accuracy of a model on bundled tasks through lm-eval (each task's default metric, its
    whole test split): per task ``metric``, ``value``, ``stderr``, ``n``, ``chance`` (the
    score of guessing) and ``by_level`` (accuracy per difficulty level)."""
    from oxstudy.evaluation import BenchmarkRequest, evaluate_model
    from oxstudy.stats.difficulty import run_accuracy_by_level
    from oxstudy.tasks.suite import TASKS

    names = list(dict.fromkeys(tasks))
    requests = [BenchmarkRequest(id=t, task=t, metric=TASKS[t].metric, batch_size=64) for t in names]
    evaluated = evaluate_model(model, requests, tokenizer=tokenizer)
    out: dict[str, dict[str, Any]] = {}
    for task in names:
        result, items = evaluated["metrics"][task], evaluated["items"][task]
        out[task] = {
            "metric": result["metric"],
            "value": result["value"],
            "stderr": result["stderr"],
            "n": result["n"],
            "chance": TASKS[task].chance,
            "by_level": run_accuracy_by_level(items["level"], items["score"]),
        }
    return out


def resolve_model_source(source: str, spec_dir: str | Path | None = None, *, revision: str | None = None,
                         **hub_options: Any) -> str:
    """A local directory for a spec's model ``source``.

    ``zoo:NAME`` builds (once) or loads the zoo model; a local path must exist (relative
    paths resolve against ``spec_dir``); ``hf:ID`` and anything else is a Hugging Face hub id, resolved at
    ``revision`` by :func:`oxstudy.hub.resolve` (downloaded when online, the local cache only
    when ``HF_HUB_OFFLINE`` is set; ``hub_options`` are passed on, e.g. ``prefer_cache``).
    """
    source = str(source).strip()
    if source.startswith("zoo:"):
        return str(build(source[4:]))
    if source.startswith("hf:"):  # always the hub (spec.source_kind), as for hf: datasets
        from oxstudy.hub import resolve

        if not source[3:].strip():
            raise ResourceError(f"{source}: no repo id after 'hf:'")
        return resolve(source[3:].strip(), repo_type="model", revision=revision, **hub_options).path
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
    from oxstudy.hub import resolve

    return resolve(source, repo_type="model", revision=revision, **hub_options).path


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


def _build_worker(name: str, force: bool, queue: Any, eval_tasks: tuple[str, ...] | None = None) -> str:
    def report(step: int, total: int, loss: float) -> None:
        if step % 10 == 0 or step == total:
            queue.put((name, step, total, loss))

    return str(build(name, force=force, on_step=report, eval_tasks=eval_tasks))


def build_many(
    names: Iterable[str],
    force: bool = False,
    jobs: int | None = None,
    on_step: Callable[[str, int, int, float], None] | None = None,
    eval_tasks: Iterable[str] | None = None,
) -> dict[str, Path]:
    """Build several zoo models, in parallel processes (one thread each, ``jobs`` defaults
    to the CPU count). Already-built models are skipped. ``on_step(name, step, total,
    loss)`` reports training progress; ``eval_tasks`` as for ``build``."""
    names = list(dict.fromkeys(names))
    for name in names:
        model_config(name)
    extra = tuple(eval_tasks or ())
    # Costliest first: with fewer processes than models the largest one is the critical
    # path, so it starts at once and the smaller ones share the other processes.
    todo = sorted((n for n in names if force or not is_built(n)), key=build_cost, reverse=True)
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(todo) or 1))
    if jobs == 1 or len(todo) <= 1:
        for name in todo:
            build(
                name,
                force=force,
                on_step=None if on_step is None else (lambda step, total, loss, n=name: on_step(n, step, total, loss)),
                eval_tasks=extra,
            )
        return {n: model_dir(n) for n in names}
    import multiprocessing as mp
    import queue as queue_module
    from concurrent.futures import ProcessPoolExecutor, wait

    context = mp.get_context("spawn")
    with context.Manager() as manager, ProcessPoolExecutor(jobs, mp_context=context) as pool:
        progress = manager.Queue()
        futures = [pool.submit(_build_worker, name, force, progress, extra) for name in todo]
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


def build_cost(name: str) -> int:
    """Relative training cost of zoo model ``name``: parameters x steps x batch size."""
    config = model_config(name)
    return estimate_params(name) * config.steps * config.batch_size


def estimate_params(name: str) -> int:
    """Parameter count of zoo model ``name`` computed from its config (no build needed):
    tied embeddings + per layer attention (4 h^2), SwiGLU MLP (3 h i) and two norms. An
    upper bound: the trained BPE vocabulary may stop short of ``vocab_size``; a built
    model's metadata has the exact count."""
    c = model_config(name)
    vocab = c.vocab_size
    per_layer = 4 * c.hidden_size**2 + 3 * c.hidden_size * c.intermediate_size + 2 * c.hidden_size
    return vocab * c.hidden_size + c.num_layers * per_layer + c.hidden_size
