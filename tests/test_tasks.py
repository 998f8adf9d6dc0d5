"""Bundled synthetic tasks: determinism, difficulty, split disjointness, the verifier,
JSONL export and materialised lm-eval YAMLs."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from fractions import Fraction

import pytest
import yaml

from oxstudy.tasks import (
    ARITH_LEVELS,
    FACT_REPEATS,
    MATH_KINDS,
    TASKS,
    Difficulty,
    bundled_tasks,
    content_hash,
    export_tasks,
    extract_answer,
    fact_corpus_size,
    fact_statements,
    generate,
    is_correct,
    materialize_tasks,
    read_jsonl,
    task_split,
)
from oxstudy.tasks.generators import FACT_ATTRIBUTES, fact_entities


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
    for family in ("math", "sequence", "compare"):
        assert generate(family, 20, seed=1) == generate(family, 20, seed=1)
        assert generate(family, 20, seed=1) != generate(family, 20, seed=2)
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


def test_ood_families_are_checkable():
    for example in task_split("oxs_sequence", "test", 100):
        terms = [int(x) for x in example["prompt"].split(": ")[1].rstrip("?").split(", ")]
        step = terms[1] - terms[0]
        assert all(b - a == step for a, b in zip(terms, terms[1:], strict=False))
        assert int(example["answer"]) == terms[-1] + step > 0
        assert is_correct(example["solution"], example["answer"], strict=True)
        # The worked solution finds the common difference first, then adds it to the last term.
        first, second, final = example["solution"].splitlines()
        hi, lo = max(terms[:2]), min(terms[:2])
        assert first == f"{terms[1]} - {terms[0]} = {step}" if step > 0 else first == f"{hi} - {lo} = {-step}"
        sign = "+" if step > 0 else "-"
        assert second == f"{terms[-1]} {sign} {abs(step)} = {example['answer']}"
        assert final == f"#### {example['answer']}"
    for example in task_split("oxs_compare", "test", 100):
        numbers = [int(c.removeprefix("#### ")) for c in example["choices"]]
        want = max(numbers) if "largest" in example["prompt"] else min(numbers)
        assert len(set(numbers)) == 4 and numbers[example["label"]] == want == int(example["answer"])


@pytest.mark.parametrize("name", list(TASKS))
def test_splits_never_overlap(name):
    test_hashes = {e["content_hash"] for e in task_split(name, "test")}
    assert len(test_hashes) == len(task_split(name, "test")), "test prompts are unique"
    for split in [s for s in ("train", "pretrain") if s in TASKS[name].sizes]:
        examples = task_split(name, split)
        hashes = [content_hash(e) for e in examples]
        if name != "oxs_facts":  # the facts corpus repeats each statement by design
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


def _task_config(directory, name: str) -> dict:
    """A bundled task's config as lm-eval reads it: its file with the base it ``include:``s."""
    from lm_eval.tasks._yaml_loader import load_yaml

    return load_yaml(directory / f"{name}.yaml", resolve_func=False)


def test_export_writes_jsonl_and_yaml_with_absolute_paths(tmp_path):
    out = export_tasks(tmp_path / "tasks")
    for name in bundled_tasks():
        own = yaml.safe_load((out / f"{name}.yaml").read_text())
        assert own["include"] in {"_oxs_generate.yaml", "_oxs_choice.yaml"} and (out / own["include"]).is_file()
        config = _task_config(out, name)
        assert config["task"] == name and config["dataset_path"] == "json"
        files = config["dataset_kwargs"]["data_files"]
        assert all(p.startswith(str(out)) for p in files.values())
        assert "num_fewshot" not in config, "a pinned num_fewshot would make lm-eval ignore the spec's"
        rows = read_jsonl(files["test"])
        assert rows == json.loads(json.dumps(task_split(name, "test")))
        if "train" in TASKS[name].sizes:
            assert len(read_jsonl(files["train"])) == TASKS[name].sizes["train"]



def _cli(argv: list[str], capsys) -> tuple[int, str, str]:
    from oxstudy.cli import main

    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    captured = capsys.readouterr()
    return exit_info.value.code or 0, captured.out, captured.err


def test_tasks_export_lists_only_the_files_it_wrote(tmp_path, capsys):
    """A user's own file in DIR is left alone and neither counted nor listed; the files listed
    are exactly the new ones (base templates, each task's YAML and its splits)."""
    out = tmp_path / "tasks"
    out.mkdir()
    (out / "mine.yaml").write_text("task: mine\n")
    (out / "notes.jsonl").write_text("{}\n")
    code, stdout, _ = _cli(["tasks", "export", str(out), "--json"], capsys)
    assert code == 0
    listed = json.loads(stdout)["files"]
    expected = {f"{base}.yaml" for base in ("_oxs_generate", "_oxs_choice")}
    for name in bundled_tasks():
        expected |= {f"{name}.yaml", f"{name}_test.jsonl"} | ({f"{name}_train.jsonl"} if "train" in TASKS[name].sizes else set())
    assert sorted(listed) == sorted(str(out / f) for f in expected)
    assert set(p.name for p in out.iterdir()) == expected | {"mine.yaml", "notes.jsonl"}
    assert (out / "mine.yaml").read_text() == "task: mine\n"
    code, stdout, _ = _cli(["tasks", "export", str(out)], capsys)
    assert code == 0 and f"wrote {len(expected)} files" in " ".join(stdout.split())


def test_tasks_export_to_a_file_is_a_one_line_error(tmp_path, capsys):
    path = tmp_path / "afile"
    path.write_text("keep me")
    code, _, err = _cli(["tasks", "export", str(path)], capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, err
    assert lines[0] == f"error: {path}: is a file, not a directory", err
    assert path.read_text() == "keep me"

def test_materialize_is_cached_and_deterministic(tmp_path, monkeypatch):
    monkeypatch.setenv("OXSTUDY_CACHE", str(tmp_path / "cache"))
    first = materialize_tasks()
    stamp = (first / "oxs_arith_test.jsonl").stat().st_mtime_ns
    assert materialize_tasks() == first
    assert (first / "oxs_arith_test.jsonl").stat().st_mtime_ns == stamp, "second call must not rewrite"
    other = export_tasks(tmp_path / "again")
    for name in bundled_tasks():
        assert (first / f"{name}_test.jsonl").read_bytes() == (other / f"{name}_test.jsonl").read_bytes()


# --------------------------------------------------------------------------- unchanged tasks

#: sha256 (16 hex) of ``json.dumps(split, sort_keys=True)`` and items per level, computed on
#: main before oxs_math/oxs_facts/the new oxs_sequence were added (commit 5966481): adding
#: tasks must not change a single item of the tasks existing studies and curricula use.
UNCHANGED = {
    ("oxs_arith", "test"): ("e7f24137675ba06f", {1: 168, 2: 166, 3: 166}),
    ("oxs_arith", "train"): ("408e40ba93a8a3b1", {1: 1334, 2: 1334, 3: 1332}),
    ("oxs_arith", "pretrain"): ("969234d19f90c0f3", {1: 6668, 2: 6666, 3: 6666}),
    ("oxs_compare", "test"): ("9d0ff00886c96086", {1: 102, 2: 104, 3: 94}),
    ("oxs_compare", "train"): ("45b29f0d881274e4", {1: 362, 2: 322, 3: 316}),
    ("oxs_compare", "pretrain"): ("994707df33e001ee", {1: 1376, 2: 1381, 3: 1243}),
}


@pytest.mark.parametrize(("name", "split"), list(UNCHANGED))
def test_arith_and_compare_are_byte_identical_to_before(name, split):
    items = task_split(name, split)
    digest = hashlib.sha256(json.dumps(items, sort_keys=True).encode()).hexdigest()[:16]
    assert (digest, dict(Counter(e["level"] for e in items))) == UNCHANGED[(name, split)]


# --------------------------------------------------------------------------- oxs_math


def _math_reference(prompt: str) -> str:
    """The answer of an oxs_math prompt, solved here from the prompt text alone."""
    if m := re.fullmatch(r"Compute (\d+) ([+-]) (\d+) \* (\d+)\.", prompt):
        a, op, b, c = int(m[1]), m[2], int(m[3]), int(m[4])
        return str(a + b * c if op == "+" else a - b * c)
    if m := re.fullmatch(r"Compute \((\d+) \+ (\d+)\) \* (\d+) - (\d+)\.", prompt):
        return str((int(m[1]) + int(m[2])) * int(m[3]) - int(m[4]))
    if m := re.fullmatch(r"Solve for x: (\d+)x \+ (\d+) = (\d+)\.", prompt):
        return str(Fraction(int(m[3]) - int(m[2]), int(m[1])))
    if m := re.fullmatch(r"Solve for x: (\d+)\(x \+ (\d+)\) = (\d+)\.", prompt):
        return str(Fraction(int(m[3]), int(m[1])) - int(m[2]))
    if m := re.fullmatch(r"Simplify (\d+)/(\d+)\.", prompt):
        f = Fraction(int(m[1]), int(m[2]))
        return f"{f.numerator}/{f.denominator}"
    if m := re.fullmatch(r"Simplify (\d+)x \+ (\d+)x - (\d+)x\.", prompt):
        return f"{int(m[1]) + int(m[2]) - int(m[3])}x"
    raise AssertionError(f"unexpected oxs_math prompt {prompt!r}")


def test_math_answers_levels_and_worked_solutions():
    items = task_split("oxs_math", "test")
    assert len(items) == 300
    kinds = Counter(e["difficulty"]["kind"] for e in items)
    assert kinds == dict.fromkeys(MATH_KINDS, 50), "kinds in equal parts"
    expected_level = {
        "precedence": 1,
        "equation": 2,
        "fraction": 2,
        "parentheses": 3,
        "like_terms": 3,
        "two_step_equation": 4,
    }
    for e in items:
        assert e["answer"] == _math_reference(e["prompt"]), e
        assert e["level"] == expected_level[e["difficulty"]["kind"]]
        lines = e["solution"].splitlines()
        assert lines[-1] == f"#### {e['answer']}"
        assert e["difficulty"]["operations"] == len(lines) - 1
        # numeric = the answer is a plain integer (no fraction bar, no x)
        assert e["numeric"] is (re.fullmatch(r"-?\d+", e["answer"]) is not None)
        assert is_correct(e["solution"], e["answer"], strict=True)
    assert Counter(e["level"] for e in items) == {1: 50, 2: 100, 3: 100, 4: 50}
    # the second math dataset is harder on average than the training domain (more operations)
    arith_ops = [len(e["solution"].splitlines()) - 1 for e in task_split("oxs_arith", "test")]
    math_ops = [e["difficulty"]["operations"] for e in items]
    assert sum(math_ops) / len(math_ops) > sum(arith_ops) / len(arith_ops)


@pytest.mark.parametrize("split", ["test", "train"])
def test_math_numeric_is_exactly_the_numeric_items_of_math(split):
    parent = task_split("oxs_math", split)
    subset = task_split("oxs_math_numeric", split)
    assert subset == [e for e in parent if e["numeric"]], "the same items, same ids, same order"
    assert all(e["numeric"] is True and e["id"].startswith(f"oxs_math-{split}-") for e in subset)
    assert len(subset) == TASKS["oxs_math_numeric"].sizes[split] == sum(e["numeric"] for e in parent)
    assert {e["id"] for e in parent} >= {e["id"] for e in subset}
    assert all(re.fullmatch(r"\d+", e["answer"]) for e in subset)


@pytest.mark.parametrize(
    ("completion", "answer", "expected"),
    [
        ("#### 3/4", "3/4", True),
        ("so gcd is 2\n#### 3/4.", "#### 3/4", True),
        ("#### 6/8", "3/4", False),  # not simplified: MATH's convention, exact match
        ("#### 0.75", "3/4", False),
        ("#### 3/4", "0.75", False),  # an expression is never a number
        ("#### 6x", "6x", True),
        ("#### 6", "6x", False),
        ("#### 6x", "6", False),
        ("#### 6x", 6, False),
        ("#### -12x", "-12x", True),
        ("#### 12x", "-12x", False),
        ("#### \u221212x", "-12x", True),  # unicode minus
        ("#### -5", "-5", True),
        ("#### 5", "-5", False),
        ("#### 6 apples", "6", True),  # numbers keep their old behaviour
        ("6x", "6x", False),  # an expression answer needs '#### '
        (None, "3/4", False),
    ],
)
def test_is_correct_expression_answers(completion, answer, expected):
    assert is_correct(completion, answer) is expected


def test_math_templates_capture_expressions_and_arith_keeps_numbers(tmp_path):
    """The strict-match regex and target cleaning of the exported YAMLs, applied to replies."""
    out = export_tasks(tmp_path / "tasks", ["oxs_arith", "oxs_math", "oxs_math_numeric"])

    def strict(name: str, reply: str) -> str | None:
        config = _task_config(out, name)
        (strict_filter,) = [f for f in config["filter_list"] if f["name"] == "strict-match"]
        match = re.search(strict_filter["filter"][0]["regex_pattern"], reply)
        return match.group(1) if match else None

    for name in ("oxs_math", "oxs_math_numeric"):
        assert strict(name, "1 + 2 = 3\n#### 3/4") == "3/4"
        assert strict(name, "#### -6x") == "-6x"
        assert strict(name, "#### 6x") != "6", "a numeric item must not read '6x' as 6"
    assert strict("oxs_arith", "#### 6x") == "6"  # unchanged template


# --------------------------------------------------------------------------- oxs_facts


def test_facts_test_split_asks_every_fact_once_in_its_own_wording():
    entities = {e["name"]: e for e in fact_entities()}
    test = task_split("oxs_facts", "test")
    asked = Counter((e["difficulty"]["entity"], e["difficulty"]["attribute"]) for e in test)
    assert len(test) == 243 and len(asked) == 81 * 3 and set(asked.values()) == {1}
    assert Counter(e["level"] for e in test) == {1: 81, 2: 81, 3: 81}
    assert [e["level"] for e in test[:6]] == [1, 2, 3, 1, 2, 3], "a limit holds every level"
    pretrain_prompts = {e["prompt"] for e in task_split("oxs_facts", "pretrain")}
    for e in test:
        entity, attribute = e["difficulty"]["entity"], e["difficulty"]["attribute"]
        truth = entities[entity][attribute]
        assert e["answer"] == truth and e["choices"][e["label"]] == f"#### {truth}"
        values = [c.removeprefix("#### ") for c in e["choices"]]
        assert len(set(values)) == 4 and set(values) <= set(FACT_ATTRIBUTES[attribute])
        assert e["prompt"] not in pretrain_prompts, "the corpus never uses the test's wording"
        assert entity in e["prompt"]
    assert TASKS["oxs_facts"].chance == 0.25 and TASKS["oxs_facts"].role == "knowledge"


def test_facts_pretrain_states_each_fact_by_its_level():
    entities = {e["name"]: e for e in fact_entities()}
    pretrain = task_split("oxs_facts", "pretrain")
    assert len(pretrain) == fact_corpus_size() == 27 * 3 * (6 + 3 + 1)
    counts = Counter((e["difficulty"]["entity"], e["difficulty"]["attribute"]) for e in pretrain)
    level_of = {(e["difficulty"]["entity"], e["difficulty"]["attribute"]): e["level"] for e in pretrain}
    assert len(counts) == 243
    for fact, count in counts.items():
        assert count == FACT_REPEATS[level_of[fact] - 1]
    assert FACT_REPEATS[0] > FACT_REPEATS[-1] == 1, "frequent facts are level 1, rare ones level 3"
    for e in pretrain:  # every statement is true and names its creature
        entity, attribute = e["difficulty"]["entity"], e["difficulty"]["attribute"]
        assert e["solution"] == f"#### {entities[entity][attribute]}" and entity in e["prompt"]
    # fact_statements gives the lead the same statements with their repeat counts
    rows = fact_statements()
    assert sum(len(r["statements"]) for r in rows) == len(pretrain)
    assert all(len(r["statements"]) == r["repeats"] == FACT_REPEATS[r["level"] - 1] for r in rows)
    assert Counter((p, s) for r in rows for p, s in r["statements"]) == Counter(
        (e["prompt"], e["solution"]) for e in pretrain
    )
    # a larger request repeats whole passes: relative frequencies stay
    double = Counter(e["prompt"] for e in task_split("oxs_facts", "pretrain", 2 * len(pretrain)))
    assert double == Counter({k: 2 * v for k, v in Counter(e["prompt"] for e in pretrain).items()})


def test_facts_are_refused_as_post_training_data(tmp_path):
    from oxstudy.errors import InputError
    from oxstudy.selfplay import load_records

    with pytest.raises(InputError, match=r"task:oxs_facts: a held-out knowledge probe"):
        task_split("oxs_facts", "train")
    with pytest.raises(InputError, match="pretrain"):
        load_records("task:oxs_facts")
    assert load_records("task:oxs_math")[0]["id"] == "oxs_math-train-0", "other tasks still load"
    # spec validation names the field and the reason, before anything runs
    from oxstudy.errors import SpecError
    from oxstudy.spec import load_spec

    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "name: mini\nmodels:\n  - {id: small, source: 'zoo:tiny'}\nalgorithms:\n  - {id: SFT, method: sft}\n"
        "seeds: [1]\ndata:\n  source: task:oxs_facts\nbenchmarks:\n  - {id: facts, task: oxs_facts}\n"
    )
    with pytest.raises(SpecError) as info:
        load_spec(spec)
    assert any("data.source" in m and "task:oxs_facts is no training data" in m for m in info.value.messages)


def test_every_exported_task_has_one_schema_across_splits(tmp_path):
    """lm-eval's json loader needs the same columns in train and test."""
    out = export_tasks(tmp_path / "tasks")
    for name in bundled_tasks():
        config = yaml.safe_load((out / f"{name}.yaml").read_text())
        files = config["dataset_kwargs"]["data_files"]
        columns = {split: {frozenset(row) for row in read_jsonl(path)} for split, path in files.items()}
        assert all(len(c) == 1 for c in columns.values()), name
        assert len(set().union(*columns.values())) == 1, name
        assert ("train" in files) is (TASKS[name].training_refusal is None), name


def test_rl_reward_on_math_scores_expression_and_number_answers():
    """``task:oxs_math`` through the training data loader and the RL exact-match reward: the
    worked solution earns 1, an unsimplified fraction, a dropped ``x`` or a wrong number 0."""
    from oxstudy.selfplay import exact_match_reward, load_examples
    from oxstudy.spec import DataSpec

    examples = load_examples(DataSpec(source="task:oxs_math", train_size=12))
    by_kind = {
        e["difficulty"]["kind"]: (e, x)
        for e, x in zip(task_split("oxs_math", "train")[:12], examples, strict=True)
    }
    fraction, frac_example = by_kind["fraction"]
    like, like_example = by_kind["like_terms"]
    number, number_example = by_kind["equation"]
    p, q = (int(v) for v in fraction["answer"].split("/"))
    completions = [
        fraction["solution"],
        f"#### {2 * p}/{2 * q}",
        like["solution"],
        f"#### {like['answer'].removesuffix('x')}",
        number["solution"],
        f"#### {number['answer']}x",
        f"#### {int(number['answer']) + 1}",
    ]
    answers = [frac_example["answer"]] * 2 + [like_example["answer"]] * 2 + [number_example["answer"]] * 3
    assert exact_match_reward(completions, answers) == [1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0]


def test_lm_eval_indexes_the_six_tasks_and_not_their_shared_bases(tmp_path):
    """The bases (``_oxs_generate.yaml``, ``_oxs_choice.yaml``) have no ``task:`` key: lm-eval's
    index skips them, and every bundled task resolves through its ``include:``."""
    from lm_eval.tasks import TaskManager

    out = export_tasks(tmp_path / "tasks")
    manager = TaskManager(include_path=str(out), include_defaults=False)
    assert sorted(name for name in manager.all_tasks if name.startswith("oxs_") or name.startswith("_oxs")) == sorted(
        bundled_tasks()
    )
    assert {name for name in bundled_tasks() if _task_config(out, name)["output_type"] == "multiple_choice"} == {
        "oxs_compare",
        "oxs_facts",
    }
