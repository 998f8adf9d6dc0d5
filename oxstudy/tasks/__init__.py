"""Bundled synthetic tasks: seeded generators, the shared answer verifier, disjoint
splits, JSONL export and lm-eval task YAMLs.

``oxs_arith`` is the training domain (GSM8K-style, ``#### N`` answers); ``oxs_math`` a
second, harder math dataset in the MATH style with a numeric-answer subset
(``oxs_math_numeric``); ``oxs_sequence`` an out-of-domain generative family;
``oxs_compare`` an out-of-domain multiple-choice family scored by log-likelihood;
``oxs_facts`` knowledge stated only in the zoo's pretraining corpus, asked MMLU-style.
Every item carries its difficulty ``level`` and the generator's ``difficulty`` parameters.
"""

from __future__ import annotations

from oxstudy.tasks.generators import (
    COMPARE_LEVELS,
    FACT_ATTRIBUTES,
    MATH_KINDS,
    SEQUENCE_LEVELS,
    Difficulty,
    fact_entities,
    generate,
    seeded_rng,
)
from oxstudy.tasks.suite import (
    ARITH_LEVELS,
    TASKS,
    TaskDef,
    bundled_tasks,
    cache_root,
    content_hash,
    doc_level,
    export_tasks,
    materialize_tasks,
    read_jsonl,
    suite_fingerprint,
    task_split,
    write_jsonl,
)
from oxstudy.tasks.verifier import extract_answer, is_correct, normalize_number

__all__ = [
    "ARITH_LEVELS",
    "COMPARE_LEVELS",
    "FACT_ATTRIBUTES",
    "MATH_KINDS",
    "SEQUENCE_LEVELS",
    "doc_level",
    "fact_entities",
    "TASKS",
    "Difficulty",
    "TaskDef",
    "bundled_tasks",
    "cache_root",
    "content_hash",
    "export_tasks",
    "extract_answer",
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
