"""Bundled synthetic tasks: determinism, difficulty, split disjointness, the verifier,
JSONL export and materialised lm-eval YAMLs."""

from __future__ import annotations

import json
import re

import pytest
import yaml

from oxstudy.tasks import (
    ARITH_LEVELS,
    COMPARE_LEVELS,
    FACT_ATTRIBUTES,
    MATH_KINDS,
    TASKS,
    Difficulty,
    bundled_tasks,
    content_hash,
    export_tasks,
    extract_answer,
    fact_entities,
    generate,
    is_correct,
    materialize_tasks,
    read_jsonl,
    task_split,
)
from oxstudy.tasks.generators import FACT_REPEATS


def _solve(solution: str) -> int:
    """Recompute a worked solution line by line (each line 'a op b = c')."""
    value = None
    for line in solution.splitlines()[:-1]:
        lhs, rhs = line.split(" = ")
        a, op, b = lhs.split(" ")
        got = {"+": int(a) + int(b), "-": int(a) - int(b), "*": int(a) * int(b)}[op]
        assert got == int(rhs), line
        assert value is None or int(a) == value, "each step must continue from the previous result"
        value = got
    return value


def test_generators_are_deterministic_and_seed_dependent():
    levels = list(ARITH_LEVELS)
    assert generate("arith", 50, seed=7, difficulties=levels) == generate(
        "arith", 50, seed=7, difficulties=levels
    )
    assert generate("arith", 50, seed=7, difficulties=levels) != generate(
        "arith", 50, seed=8, difficulties=levels
    )
    for family in ("sequence", "compare", "math", "facts"):
        assert generate(family, 20, seed=1) == generate(family, 20, seed=1)
    # Splits are stable too, and a smaller request is a prefix of the full split.
    assert task_split("oxs_arith", "test", 30) == task_split("oxs_arith", "test")[:30]


def test_arith_difficulty_controls_steps_and_number_size():
    for difficulty in (Difficulty(1, 10), Difficulty(3, 50), Difficulty(2, 20, allow_mul=True)):
        for example in generate("arith", 200, seed=0, difficulties=[difficulty]):
            lines = example["solution"].splitlines()
            assert len(lines) == difficulty.steps + 1
            assert lines[-1] == f"#### {example['answer']}"
            operands = [int(line.split(" ")[2]) for line in lines[:-1]]
            assert max(operands) <= difficulty.max_number
            assert int(lines[0].split(" ")[0]) <= difficulty.max_number
            assert _solve(example["solution"]) == int(example["answer"]) >= 0
            assert example["difficulty"] == difficulty.as_dict()
    # The test split holds the difficulty ladder in equal parts, in cycle order.
    levels = [Difficulty(**e["difficulty"]) for e in task_split("oxs_arith", "test")]
    assert levels == [ARITH_LEVELS[i % len(ARITH_LEVELS)] for i in range(len(levels))]
    assert [e["level"] for e in task_split("oxs_arith", "test")] == [
        i % len(ARITH_LEVELS) + 1 for i in range(len(levels))
    ]


def test_ood_families_are_checkable():
    for example in task_split("oxs_sequence", "test", 100):
        terms = [int(x) for x in example["prompt"].split(": ")[1].rstrip("?").split(", ")]
        step = terms[1] - terms[0]
        assert all(b - a == step for a, b in zip(terms, terms[1:], strict=False))
        assert int(example["answer"]) == terms[-1] + step > 0
        assert is_correct(example["solution"], example["answer"], strict=True)
        assert example["difficulty"]["decreasing"] == (step < 0)
        assert abs(step) <= example["difficulty"]["max_step"]
    for example in task_split("oxs_compare", "test", 100):
        numbers = [int(c.removeprefix("#### ")) for c in example["choices"]]
        want = max(numbers) if "Largest" in example["prompt"] else min(numbers)
        assert len(set(numbers)) == 4 and numbers[example["label"]] == want == int(example["answer"])
        assert max(numbers) <= example["difficulty"]["max_number"] == COMPARE_LEVELS[example["level"] - 1]


def _evaluate_math(prompt: str) -> str:
    """Solve an oxs_math prompt independently of the generator (sympy-free, by hand)."""
    from fractions import Fraction

    body = prompt.split(": ", 1)[-1].removeprefix("Compute ").removeprefix("Simplify ").rstrip(".")
    if prompt.startswith("Compute"):
        return str(eval(body, {"__builtins__": {}}))  # only digits, + - * ( ) from the generator
    if prompt.startswith("Solve"):
        lhs, rhs = body.split(" = ")
        # linear in x: evaluate at x = 0 and x = 1 (implicit products made explicit)
        expression = re.sub(r"(\d)([x(])", r"\1*\2", lhs)
        f0, f1 = (eval(expression, {"x": x}) for x in (0, 1))
        return str(Fraction(int(rhs) - f0, f1 - f0))
    if "x" in body:
        return f"{eval(body.replace('x', ''))}x"
    return str(Fraction(*map(int, body.split("/"))))


def test_math_answers_are_right_and_numeric_subset_is_labelled():
    examples = task_split("oxs_math", "test")
    assert {e["difficulty"]["kind"] for e in examples} == set(MATH_KINDS)
    for example in examples:
        assert example["answer"] == _evaluate_math(example["prompt"]), example
        assert example["level"] == MATH_KINDS[example["difficulty"]["kind"]]["level"]
        numeric = example["answer"].lstrip("-").isdigit()
        assert example["numeric"] is numeric
        assert is_correct(example["solution"], example["solution"])
        wrong = example["solution"].replace(f"#### {example['answer']}", f"#### 9{example['answer']}")
        assert not is_correct(wrong, example["answer"]), wrong
    subset = task_split("oxs_math_numeric", "test")
    assert (
        subset == [e for e in examples if e["numeric"]]
        and len(subset) == TASKS["oxs_math_numeric"].sizes["test"]
    )
    assert 0 < len(subset) < len(examples)


def test_facts_are_stated_in_pretraining_in_another_wording():
    entities = {e["name"]: e for e in fact_entities()}
    test = task_split("oxs_facts", "test")
    pretrain = task_split("oxs_facts", "pretrain")
    assert len(test) == len(entities) * len(FACT_ATTRIBUTES) == len({(e["prompt"]) for e in test})
    stated: dict[tuple[str, str], list[str]] = {}
    for line in pretrain:
        key = (line["difficulty"]["entity"], line["difficulty"]["attribute"])
        stated.setdefault(key, []).append(line["answer"])
    for item in test:
        entity, attribute = item["difficulty"]["entity"], item["difficulty"]["attribute"]
        truth = entities[entity][attribute]
        assert item["choices"][item["label"]] == f"#### {truth}" and len(set(item["choices"])) == 4
        # stated in pretraining, always with the true value, more often for easier levels
        assert set(stated[(entity, attribute)]) == {truth}
        assert len(stated[(entity, attribute)]) == FACT_REPEATS[item["level"] - 1]
    assert {e["level"] for e in test} == {1, 2, 3}
    # the test wording never appears in the corpus or the train split (pure recall)
    corpus_prompts = {content_hash(e) for e in pretrain + task_split("oxs_facts", "train")}
    assert not corpus_prompts & {content_hash(e) for e in test}


@pytest.mark.parametrize("name", [n for n in TASKS if TASKS[n].parent is None])
def test_every_item_has_a_level_and_levels_are_balanced(name):
    task = TASKS[name]
    levels = [e["level"] for e in task_split(name, "test")]
    assert set(levels) == set(range(1, task.levels + 1))
    assert all(isinstance(e["difficulty"], dict) for e in task_split(name, "test"))
    counts = [levels.count(level) for level in range(1, task.levels + 1)]
    assert min(counts) >= len(levels) // (3 * task.levels), counts


@pytest.mark.parametrize("name", [n for n in TASKS if n != "oxs_facts" and TASKS[n].parent is None])
def test_splits_never_overlap(name):
    test_hashes = {e["content_hash"] for e in task_split(name, "test")}
    assert len(test_hashes) == len(task_split(name, "test")), "test prompts are unique"
    for split in ("train", "pretrain"):
        examples = task_split(name, split)
        hashes = [content_hash(e) for e in examples]
        assert len(set(hashes)) == len(hashes)
        assert not test_hashes & set(hashes), f"{name}: {split} shares prompts with test"
        # Hashing normalises case and whitespace, so near-identical prompts cannot slip through.
        assert content_hash({"prompt": "  " + examples[0]["prompt"].upper()}) == hashes[0]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("14 + 6 = 20\n#### 20", "20"),
        ("#### -1,234 apples.", "-1234"),
        ("#### $1,000,000.00", "1000000"),
        ("The answer is 42.", "42"),
        ("5 - 3 = 2", "2"),  # the minus of "5-3" is an operator, not a sign
        ("10-3", "3"),
        ("it drops to \u22127 degrees", "-7"),  # unicode minus
        ("#### 3.50", "3.5"),
        ("#### 7\n#### 9", "7"),  # the first final answer wins (like lm-eval strict-match)
        ("I think 12, no wait, 15 apples in total", "15"),
        ("+8", "8"),
        ("version2 has 4", "4"),  # digits glued to a word are not a number
        ("no numbers here", None),
        ("####", None),
        ("", None),
    ],
)
def test_extract_answer_tricky_strings(text, expected):
    assert extract_answer(text) == expected


def test_is_correct_strict_and_loose():
    assert is_correct("so 12 + 30 = 42\n#### 42", "42")
    assert is_correct("#### 1,200", 1200)
    assert is_correct("#### 42.0", "#### 42")
    assert not is_correct("#### 41", "42")
    assert not is_correct("42", "42", strict=True), "strict needs '#### N'"
    assert is_correct("the answer is 42", "42")
    assert not is_correct(None, "42")
    assert not is_correct("#### 42", "no number")


def test_export_writes_jsonl_and_yaml_with_absolute_paths(tmp_path):
    out = export_tasks(tmp_path / "tasks")
    for name in bundled_tasks():
        config = yaml.safe_load((out / f"{name}.yaml").read_text())
        assert config["task"] == name and config["dataset_path"] == "json"
        files = config["dataset_kwargs"]["data_files"]
        assert all(p.startswith(str(out)) for p in files.values())
        assert "num_fewshot" not in config, "a pinned num_fewshot would make lm-eval ignore the spec's"
        rows = read_jsonl(files["test"])
        assert rows == json.loads(json.dumps(task_split(name, "test")))
        assert len(read_jsonl(files["train"])) == TASKS[name].sizes["train"]


def test_materialize_is_cached_and_deterministic(tmp_path, monkeypatch):
    monkeypatch.setenv("OXSTUDY_CACHE", str(tmp_path / "cache"))
    first = materialize_tasks()
    stamp = (first / "oxs_arith_test.jsonl").stat().st_mtime_ns
    assert materialize_tasks() == first
    assert (first / "oxs_arith_test.jsonl").stat().st_mtime_ns == stamp, "second call must not rewrite"
    other = export_tasks(tmp_path / "again")
    for name in bundled_tasks():
        assert (first / f"{name}_test.jsonl").read_bytes() == (other / f"{name}_test.jsonl").read_bytes()
