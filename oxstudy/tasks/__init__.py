"""Bundled synthetic tasks: seeded generators, the shared answer verifier, disjoint
splits, JSONL export and lm-eval task YAMLs.

``oxs_arith`` is the training domain (GSM8K-style, ``#### N`` answers); ``oxs_math`` is a
second, harder math dataset in the MATH style (number or expression answers) and
``oxs_math_numeric`` its numeric-answer subset; ``oxs_sequence`` is an out-of-domain
generative family; ``oxs_compare`` is an out-of-domain multiple-choice family scored by
log-likelihood; ``oxs_facts`` is a knowledge probe (facts stated only in pretraining).
"""

from __future__ import annotations

from oxstudy.tasks.generators import (
    FACT_REPEATS,
    MATH_KINDS,
    SEQUENCE_LEVELS,
    Difficulty,
    fact_statements,
    generate,
    seeded_rng,
)
from oxstudy.tasks.suite import (
    ARITH_LEVELS,
    ROLES,
    TASKS,
    TaskDef,
    bundled_tasks,
    cache_root,
    content_hash,
    export_task_files,
    export_tasks,
    fact_corpus_size,
    materialize_tasks,
    read_jsonl,
    suite_fingerprint,
    task_split,
    write_jsonl,
)
from oxstudy.tasks.verifier import extract_answer, is_correct, normalize_number

__all__ = [
    "ARITH_LEVELS",
    "FACT_REPEATS",
    "MATH_KINDS",
    "ROLES",
    "SEQUENCE_LEVELS",
    "TASKS",
    "Difficulty",
    "TaskDef",
    "bundled_tasks",
    "cache_root",
    "content_hash",
    "export_task_files",
    "export_tasks",
    "extract_answer",
    "fact_corpus_size",
    "fact_statements",
    "generate",
    "is_correct",
    "materialize_tasks",
    "normalize_number",
    "read_jsonl",
    "seeded_rng",
    "suite_fingerprint",
    "task_split",
    "write_jsonl",
]
