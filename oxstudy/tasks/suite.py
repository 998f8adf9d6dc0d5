"""The bundled task suite: named tasks, non-overlapping splits, JSONL export and
materialisation of lm-eval task YAMLs (tasks as data, like lm-eval's own tasks).

Splits are disjoint by content hash: ``test`` is drawn first from its own seed stream;
``train`` and ``pretrain`` (the zoo's corpus) come from other seed streams and drop any
problem whose normalised prompt hashes into ``test``. Two tasks differ: ``oxs_math_numeric``
is a subset of ``oxs_math`` (its items where ``numeric`` is true, same ids and order), and
``oxs_facts`` is a held-out knowledge probe whose facts only its ``pretrain`` split states
(no ``train`` split: ``task:oxs_facts`` is refused as post-training data).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from oxstudy.tasks.generators import (
    FACT_ATTRIBUTES,
    FACT_REPEATS,
    MATH_KINDS,
    SEQUENCE_LEVELS,
    Difficulty,
    arith_problem,
    compare_problem,
    fact_entities,
    fact_level,
    fact_question,
    fact_statements,
    math_problem,
    seeded_rng,
    sequence_problem,
)

#: Bump when generated content changes on purpose (it is also hashed from the sources, into
#: the materialised suite's fingerprint). 2: oxs_math, oxs_math_numeric, oxs_facts, and a
#: learnable oxs_sequence.
SUITE_VERSION = 2
#: The version in every split's seed stream. Kept at 1 so oxs_arith and oxs_compare stay
#: byte-identical across suite versions (studies, tests and curricula depend on their items).
SEED_VERSION = 1
SPLITS = ("train", "test", "pretrain")

#: The in-domain difficulty ladder: 1-3 steps, numbers up to 10-50. Sets cycle through it,
#: so every split holds each level in equal parts and accuracy is graded by level.
ARITH_LEVELS: tuple[Difficulty, ...] = (
    Difficulty(steps=1, max_number=10),
    Difficulty(steps=1, max_number=20),
    Difficulty(steps=2, max_number=10),
    Difficulty(steps=2, max_number=20),
    Difficulty(steps=3, max_number=20),
    Difficulty(steps=3, max_number=50),
)


#: What each task is for in a study (``TaskDef.role``; shown by ``oxstudy tasks list``).
ROLES = (
    "in-domain",
    "second math dataset",
    "subset",
    "out-of-domain generative",
    "out-of-domain MC",
    "knowledge",
)


def fact_corpus_size() -> int:
    """Corpus statements in one pass over every fact: the size of ``oxs_facts``'s ``pretrain``
    split (``sum(FACT_REPEATS[level - 1])`` over the facts)."""
    return sum(row["repeats"] for row in fact_statements())


@dataclass(frozen=True)
class TaskDef:
    """One bundled task: a generator family, its lm-eval output type and split sizes.

    ``role`` says what the task is for (one of ``ROLES``); ``chance`` is the score of
    guessing uniformly (multiple choice: 1 / number of choices; 0 for generative tasks).
    ``parent``/``subset``: the task is the items of ``parent`` whose boolean field
    ``subset`` is true (same ids, same order). ``training_refusal``: why the task is no
    post-training data (``task:NAME`` as a data source is refused with it), or None.
    """

    name: str
    family: str
    output_type: str  # lm-eval: generate_until | multiple_choice
    metric: str  # default "metric,filter" key for specs
    in_domain: bool
    description: str
    sizes: dict[str, int] = field(default_factory=dict)
    role: str = "in-domain"
    chance: float = 0.0
    parent: str | None = None
    subset: str | None = None
    training_refusal: str | None = None


TASKS: dict[str, TaskDef] = {
    t.name: t
    for t in (
        TaskDef(
            "oxs_arith",
            "arith",
            "generate_until",
            "exact_match,strict-match",
            True,
            "GSM8K-style arithmetic word problems, 1-3 steps (the training domain)",
            {"test": 500, "train": 4000, "pretrain": 20000},
            role="in-domain",
        ),
        TaskDef(
            "oxs_math",
            "math",
            "generate_until",
            "exact_match,strict-match",
            False,
            "MATH-style precedence, parentheses, equations, fractions, like terms; number or expression answers",
            {"test": 300, "train": 1200, "pretrain": 4800},
            role="second math dataset",
        ),
        TaskDef(
            "oxs_math_numeric",
            "math",
            "generate_until",
            "exact_match,strict-match",
            False,
            "the numeric-answer items of oxs_math (same items; checkable by the number verifier)",
            {"test": 200, "train": 800},
            role="subset",
            parent="oxs_math",
            subset="numeric",
        ),
        TaskDef(
            "oxs_sequence",
            "sequence",
            "generate_until",
            "exact_match,strict-match",
            False,
            "next term of an arithmetic progression (out of domain, generative)",
            {"test": 300, "train": 600, "pretrain": 750},
            role="out-of-domain generative",
        ),
        TaskDef(
            "oxs_compare",
            "compare",
            "multiple_choice",
            "acc,none",
            False,
            "largest/smallest of four numbers (out of domain, multiple choice by log-likelihood)",
            {"test": 300, "train": 1000, "pretrain": 4000},
            role="out-of-domain MC",
            chance=0.25,
        ),
        TaskDef(
            "oxs_facts",
            "facts",
            "multiple_choice",
            "acc,none",
            False,
            "knowledge: attributes of invented creatures stated only in pretraining (MMLU-style, 4 choices)",
            {"test": len(FACT_ATTRIBUTES) * len(fact_entities()), "pretrain": fact_corpus_size()},
            role="knowledge",
            chance=0.25,
            training_refusal=(
                "a held-out knowledge probe: its facts are stated only in the zoo's pretraining "
                "corpus (the pretrain split), so it has no train split; use it as a benchmark"
            ),
        ),
    )
}


def bundled_tasks() -> list[str]:
    """Names of the bundled tasks (usable as ``task:NAME`` data and as benchmark tasks)."""
    return list(TASKS)


def content_hash(example: dict[str, Any]) -> str:
    """SHA-256 (16 hex) of the whitespace/case-normalised prompt: the split key."""
    text = " ".join(str(example["prompt"]).lower().split())
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _draw(task: TaskDef, rng: random.Random, index: int) -> dict[str, Any]:
    # The level (math: the kind) follows the accepted count: exact equal parts.
    if task.family == "arith":
        return arith_problem(rng, ARITH_LEVELS[index % len(ARITH_LEVELS)])
    if task.family == "math":
        kinds = list(MATH_KINDS)
        return math_problem(rng, kinds[index % len(kinds)])
    if task.family == "sequence":
        return sequence_problem(rng, index % len(SEQUENCE_LEVELS) + 1)
    return compare_problem(rng)


def _stamp(task: str, split: str, index: int, example: dict[str, Any], key: str) -> dict[str, Any]:
    return {"id": f"{task}-{split}-{index}", "task": task, **example, "content_hash": key}


def _unique(task: TaskDef, split: str, n: int, exclude: set[str]) -> list[dict[str, Any]]:
    rng = seeded_rng("oxstudy-task", task.name, split, SEED_VERSION)
    out: list[dict[str, Any]] = []
    seen = set(exclude)
    tries = 0
    while len(out) < n:
        tries += 1
        if tries > 50 * n + 1000:
            raise RuntimeError(f"{task.name}/{split}: only {len(out)} unique problems found for {n}")
        example = _draw(task, rng, len(out))
        key = content_hash(example)
        if key in seen:
            continue
        seen.add(key)
        out.append(_stamp(task.name, split, len(out), example, key))
    return out


def _facts(task: TaskDef, split: str, n: int) -> list[dict[str, Any]]:
    """``test``: one MMLU-style question per (creature, attribute), attribute by attribute,
    creatures interleaved by level. ``pretrain``: every corpus statement of ``fact_statements`` (each
    fact ``FACT_REPEATS[level - 1]`` times, in corpus wordings), shuffled by a fixed seed; a
    larger ``n`` repeats the whole pass, so each fact keeps its relative frequency."""
    rng = seeded_rng("oxstudy-task", task.name, split, SEED_VERSION)
    if split == "test":
        entities = fact_entities()
        # Interleave the frequency tiers (levels 1, 2, 3, 1, 2, 3, ...), so a limit (a
        # prefix) holds every level in equal parts.
        tier = len(entities) // len(FACT_REPEATS)
        order = [t * tier + k for k in range(tier) for t in range(len(FACT_REPEATS))]
        items = [
            fact_question(rng, entities[i], attribute, fact_level(i))
            for attribute in FACT_ATTRIBUTES
            for i in order
        ]
        return [_stamp(task.name, split, i, e, content_hash(e)) for i, e in enumerate(items[:n])]
    rows = [
        {
            "prompt": prompt,
            "solution": reply,
            "answer": row["value"],
            "level": row["level"],
            "difficulty": {"attribute": row["attribute"], "entity": row["entity"], "repeats": row["repeats"]},
        }
        for row in fact_statements()
        for prompt, reply in row["statements"]
    ]
    rng.shuffle(rows)
    return [
        _stamp(task.name, split, i, rows[i % len(rows)], content_hash(rows[i % len(rows)])) for i in range(n)
    ]


_CACHE: dict[tuple[str, str, int], list[dict[str, Any]]] = {}


def task_split(name: str, split: str = "test", n: int | None = None) -> list[dict[str, Any]]:
    """The examples of one split of a bundled task (canonical columns ``prompt``,
    ``solution``, ``answer``; multiple choice adds ``choices`` and ``label``).

    ``n`` defaults to the task's configured size; the first ``n`` of a larger request are
    the same examples, so a limit is a prefix. ``train``/``pretrain`` never share a
    prompt with ``test``.
    """
    if name not in TASKS:
        from oxstudy.errors import InputError

        raise InputError(f"task:{name}: unknown bundled task (known: {', '.join(TASKS)})")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r} (known: {', '.join(SPLITS)})")
    task = TASKS[name]
    if split == "train" and task.training_refusal:
        from oxstudy.errors import InputError

        raise InputError(f"task:{name}: {task.training_refusal}")
    if task.parent is not None:
        if split not in task.sizes:
            raise ValueError(
                f"{name}: no {split!r} split (it is the {task.subset} subset of {task.parent}'s test and train)"
            )
        subset = [e for e in task_split(task.parent, split) if e[task.subset]]
        return subset[: task.sizes[split] if n is None else n]
    size = task.sizes[split] if n is None else n
    key = (name, split, size)
    if key not in _CACHE:
        if task.family == "facts":
            _CACHE[key] = _facts(task, split, size)
        else:
            exclude = set() if split == "test" else {e["content_hash"] for e in task_split(name, "test")}
            _CACHE[key] = _unique(task, split, size, exclude)
    return [dict(e) for e in _CACHE[key]]


def training_splits(name: str) -> tuple[str, ...]:
    """The splits ``export_tasks`` writes for a task: ``test``, and ``train`` unless the
    task is refused as post-training data (``oxs_facts``: lm-eval then reads test only)."""
    return ("test",) if TASKS[name].training_refusal else ("train", "test")


def write_jsonl(records: Iterable[dict[str, Any]], path: str | Path) -> Path:
    """Write records as JSON lines (sorted keys, UTF-8) atomically; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, sort_keys=True, ensure_ascii=False) + "\n")
    os.chmod(tmp, 0o644)  # mkstemp makes it private
    os.replace(tmp, path)
    return path


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def cache_root() -> Path:
    """oxstudy's cache directory: ``$OXSTUDY_CACHE`` or ``~/.cache/oxstudy``."""
    env = os.environ.get("OXSTUDY_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "oxstudy"


#: Shared lm-eval configs the task YAMLs ``include:`` (generative, multiple choice). They carry
#: no ``task:`` key, so lm-eval's task index skips them; they must sit beside the task files.
BASE_TEMPLATES = ("_oxs_generate", "_oxs_choice")


def _template(name: str) -> str:
    return resources.files("oxstudy.tasks").joinpath("templates", f"{name}.yaml").read_text(encoding="utf-8")


def _write_base_templates(directory: Path) -> list[Path]:
    written = []
    for base in BASE_TEMPLATES:
        (directory / f"{base}.yaml").write_text(_template(base), encoding="utf-8")
        written.append(directory / f"{base}.yaml")
    return written


def suite_fingerprint() -> str:
    """Hash of everything that determines the materialised files (sources, templates, sizes)."""
    h = hashlib.sha256(f"suite-v{SUITE_VERSION}".encode())
    pkg = resources.files("oxstudy.tasks")
    for source in ("generators.py", "suite.py"):
        h.update(pkg.joinpath(source).read_bytes())
    for base in BASE_TEMPLATES:
        h.update(_template(base).encode())
    for name in TASKS:
        h.update(_template(name).encode())
        h.update(repr(TASKS[name]).encode())
    return h.hexdigest()[:16]


def export_tasks(directory: str | Path, names: Iterable[str] | None = None) -> Path:
    """Write each bundled task's ``NAME.yaml`` (absolute ``data_files`` paths) and
    ``NAME_{train,test}.jsonl`` into ``directory``, with the shared configs the task files
    ``include:`` (``BASE_TEMPLATES``); returns it (an lm-eval include path)."""
    files = export_task_files(directory, names)
    return files[0].parent


def export_task_files(directory: str | Path, names: Iterable[str] | None = None) -> list[Path]:
    """:func:`export_tasks`, returning the files it wrote (other files in ``directory`` are
    left alone and not listed). An existing file at ``directory`` is an ``InputError``."""
    from oxstudy.errors import InputError

    target = Path(directory).expanduser()
    if target.exists() and not target.is_dir():
        raise InputError(f"{directory}: is a file, not a directory")
    names = list(names or TASKS)
    unknown = [name for name in names if name not in TASKS]
    if unknown:  # before anything is written
        raise InputError(f"{unknown[0]}: unknown bundled task (known: {', '.join(TASKS)})")
    target = target.resolve()
    target.mkdir(parents=True, exist_ok=True)
    written = _write_base_templates(target)
    for name in names:
        for split in training_splits(name):
            write_jsonl(task_split(name, split), target / f"{name}_{split}.jsonl")
            written.append(target / f"{name}_{split}.jsonl")
        text = _template(name).replace("@DATA_DIR@", target.as_posix())
        (target / f"{name}.yaml").write_text(text, encoding="utf-8")
        written.append(target / f"{name}.yaml")
    return written


def materialize_tasks(directory: str | Path | None = None) -> Path:
    """The lm-eval include path holding all bundled tasks, written once per content
    fingerprint under ``<cache>/tasks/<fingerprint>`` (or into ``directory``)."""
    if directory is not None:
        return export_tasks(directory)
    target = cache_root() / "tasks" / suite_fingerprint()
    if (target / ".complete").exists():
        return target
    if target.exists():  # a crashed earlier write: never reuse half a suite
        import shutil

        shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Build in a sibling temp dir and rename, so concurrent processes never read half a
    # suite; the YAMLs carry absolute paths, so rewrite them for the final location.
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=".staging-"))
    staging.chmod(0o755)  # mkdtemp makes it private; a cache may be shared
    export_tasks(staging)
    for name in TASKS:
        text = _template(name).replace("@DATA_DIR@", target.as_posix())
        (staging / f"{name}.yaml").write_text(text, encoding="utf-8")
    (staging / ".complete").write_text(suite_fingerprint())
    try:
        os.rename(staging, target)
    except OSError:  # another process won the race: its copy is identical
        import shutil

        shutil.rmtree(staging, ignore_errors=True)
    return target
