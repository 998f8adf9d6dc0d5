"""The bundled task suite: named tasks, non-overlapping splits, JSONL export and
materialisation of lm-eval task YAMLs (tasks as data, like lm-eval's own tasks).

Splits are disjoint by content hash: ``test`` is drawn first from its own seed stream;
``train`` and ``pretrain`` (the zoo's corpus) come from other seed streams and drop any
problem whose normalised prompt hashes into ``test``.
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

from oxstudy.tasks.generators import Difficulty, arith_problem, compare_problem, seeded_rng, sequence_problem

#: Bump when generated content changes on purpose (it is also hashed from the sources).
SUITE_VERSION = 1
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


@dataclass(frozen=True)
class TaskDef:
    """One bundled task: a generator family, its lm-eval output type and split sizes."""

    name: str
    family: str
    output_type: str  # lm-eval: generate_until | multiple_choice
    metric: str  # default "metric,filter" key for specs
    in_domain: bool
    description: str
    sizes: dict[str, int] = field(default_factory=dict)


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
        ),
        TaskDef(
            "oxs_sequence",
            "sequence",
            "generate_until",
            "exact_match,strict-match",
            False,
            "next term of an arithmetic progression (out of domain, generative)",
            {"test": 300, "train": 500, "pretrain": 1500},
        ),
        TaskDef(
            "oxs_compare",
            "compare",
            "multiple_choice",
            "acc,none",
            False,
            "largest/smallest of four numbers (out of domain, multiple choice by log-likelihood)",
            {"test": 300, "train": 1000, "pretrain": 4000},
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
    if task.family == "arith":  # the level follows the accepted count: exact equal parts
        return arith_problem(rng, ARITH_LEVELS[index % len(ARITH_LEVELS)])
    if task.family == "sequence":
        return sequence_problem(rng)
    return compare_problem(rng)


def _unique(task: TaskDef, split: str, n: int, exclude: set[str]) -> list[dict[str, Any]]:
    rng = seeded_rng("oxstudy-task", task.name, split, SUITE_VERSION)
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
        out.append(
            {"id": f"{task.name}-{split}-{len(out)}", "task": task.name, **example, "content_hash": key}
        )
    return out


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
    size = task.sizes[split] if n is None else n
    key = (name, split, size)
    if key not in _CACHE:
        exclude = set() if split == "test" else {e["content_hash"] for e in task_split(name, "test")}
        _CACHE[key] = _unique(task, split, size, exclude)
    return [dict(e) for e in _CACHE[key]]


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


def _template(name: str) -> str:
    return resources.files("oxstudy.tasks").joinpath("templates", f"{name}.yaml").read_text(encoding="utf-8")


def suite_fingerprint() -> str:
    """Hash of everything that determines the materialised files (sources, templates, sizes)."""
    h = hashlib.sha256(f"suite-v{SUITE_VERSION}".encode())
    pkg = resources.files("oxstudy.tasks")
    for source in ("generators.py", "suite.py"):
        h.update(pkg.joinpath(source).read_bytes())
    for name in TASKS:
        h.update(_template(name).encode())
    return h.hexdigest()[:16]


def export_tasks(directory: str | Path, names: Iterable[str] | None = None) -> Path:
    """Write each bundled task's ``NAME.yaml`` (absolute ``data_files`` paths) and
    ``NAME_{train,test}.jsonl`` into ``directory``; returns it (an lm-eval include path)."""
    directory = Path(directory).expanduser().resolve()
    directory.mkdir(parents=True, exist_ok=True)
    for name in names or TASKS:
        if name not in TASKS:
            from oxstudy.errors import InputError

            raise InputError(f"{name}: unknown bundled task (known: {', '.join(TASKS)})")
        for split in ("train", "test"):
            write_jsonl(task_split(name, split), directory / f"{name}_{split}.jsonl")
        text = _template(name).replace("@DATA_DIR@", directory.as_posix())
        (directory / f"{name}.yaml").write_text(text, encoding="utf-8")
    return directory


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
