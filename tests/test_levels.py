"""Difficulty levels as data: every bundled item carries ``level`` and its generator's
``difficulty`` parameters; they flow from lm-eval's per-sample documents into evaluation
results, the run record and the study's item table, where ``oxstudy.stats.difficulty``
breaks accuracy down by level."""

from __future__ import annotations

import json
import re
from collections import Counter

import pandas as pd
import pytest

from oxstudy.claims_regime import items_with_levels
from oxstudy.evaluation import BenchmarkRequest, evaluate_model
from oxstudy.stats.difficulty import accuracy_by_level, run_accuracy_by_level
from oxstudy.store import Store, load_study
from oxstudy.tasks import TASKS, task_split
from oxstudy.tasks.generators import FACT_REPEATS, compare_level


@pytest.mark.parametrize(("gap", "level"), [(98, 1), (24, 1), (23, 2), (10, 2), (9, 3), (1, 3)])
def test_compare_level_bands(gap, level):
    assert compare_level(gap) == level


def _sequence_terms(prompt: str) -> list[int]:
    return [int(t) for t in prompt.split(":", 1)[1].strip(" ?").split(",")]


def _sequence_level_fits(level: int, terms: list[int]) -> bool:
    """Whether a progression fits the documented rung of its level (docs/world.md):
    1: increasing, step 1-5, first term <= 30; 2: increasing, step 2-9, first term <= 50;
    3: decreasing, step 2-9."""
    step = terms[1] - terms[0]
    if level == 1:
        return 1 <= step <= 5 and terms[0] <= 30
    if level == 2:
        return 2 <= step <= 9 and terms[0] <= 50
    return -9 <= step <= -2 and terms[-1] + step > 0


#: oxs_math's level by the form of the prompt (docs/world.md: 1 precedence; 2 equation,
#: fraction; 3 parentheses, like terms; 4 two-step equation).
_MATH_FORMS = [
    (r"Compute \d+ [+-] \d+ \* \d+\.", 1),
    (r"Solve for x: \d+x \+ \d+ = \d+\.", 2),
    (r"Simplify \d+/\d+\.", 2),
    (r"Compute \(\d+ \+ \d+\) \* \d+ - \d+\.", 3),
    (r"Simplify \d+x \+ \d+x - \d+x\.", 3),
    (r"Solve for x: \d+\(x \+ \d+\) = \d+\.", 4),
]


def _math_level(prompt: str) -> int:
    (level,) = [lv for form, lv in _MATH_FORMS if re.fullmatch(form, prompt)]
    return level


def _compare_gap(example: dict) -> int:
    numbers = [int(c.removeprefix("#### ")) for c in example["choices"]]
    answer = int(example["answer"])
    return min(abs(n - answer) for n in numbers if n != answer)


#: Levels each bundled task's splits hold (all of them, in every split).
TASK_LEVELS = {
    "oxs_arith": {1, 2, 3},
    "oxs_math": {1, 2, 3, 4},
    "oxs_math_numeric": {1, 2, 3, 4},
    "oxs_sequence": {1, 2, 3},
    "oxs_compare": {1, 2, 3},
    "oxs_facts": {1, 2, 3},
}


@pytest.mark.parametrize("split", ["test", "train"])
def test_every_bundled_item_has_a_level_that_follows_from_its_content(split):
    """Levels are recomputed here from the prompts and solutions themselves (and, for facts,
    from how often the pretraining corpus states the fact), not from the generators'
    ``difficulty`` dicts."""
    assert set(TASKS) == set(TASK_LEVELS)
    corpus = Counter(
        (e["difficulty"]["entity"], e["difficulty"]["attribute"]) for e in task_split("oxs_facts", "pretrain")
    )
    for name in TASKS:
        if split not in TASKS[name].sizes:
            continue  # oxs_facts has no train split
        items = task_split(name, split)
        assert {e["level"] for e in items} == TASK_LEVELS[name], name
        for e in items:
            assert isinstance(e["difficulty"], dict), (name, e)
            if name == "oxs_arith":  # one worked-solution line per operation
                expected = len(e["solution"].splitlines()) - 1
            elif name in ("oxs_math", "oxs_math_numeric"):
                expected = _math_level(e["prompt"])
            elif name == "oxs_sequence":
                terms = _sequence_terms(e["prompt"])
                assert _sequence_level_fits(e["level"], terms), e
                assert e["difficulty"]["step"] == abs(terms[1] - terms[0])
                expected = e["level"]
            elif name == "oxs_facts":
                fact = (e["difficulty"]["entity"], e["difficulty"]["attribute"])
                expected = FACT_REPEATS.index(corpus[fact]) + 1
            else:
                gap = _compare_gap(e)
                expected = 1 if gap >= 24 else 2 if gap >= 10 else 3
                assert e["difficulty"]["gap"] == gap
            assert e["level"] == expected, (name, e)
        if name in ("oxs_sequence", "oxs_facts"):  # levels in equal parts
            assert len(set(Counter(e["level"] for e in items).values())) == 1, name


@pytest.fixture(scope="module")
def tiny_loaded(zoo_tiny):
    from oxstudy.evaluation import load_model

    return load_model(zoo_tiny, device="cpu")


@pytest.mark.slow
def test_levels_reach_run_record_item_table_and_the_level_breakdown(tiny_loaded, tmp_path):
    """A real evaluation of zoo:tiny on every bundled task: each item's level and
    difficulty are those of its row in the test JSONL (lm-eval's doc_id), they survive the
    store, and accuracy_by_level over the item table equals the per-level means computed
    here by hand."""
    model, tokenizer = tiny_loaded
    # Every level of every task appears in the first `limit` items: oxs_compare's levels need 18;
    # the others cycle their levels (oxs_math in 6 kinds), so 12 suffice and save generations.
    limits = {name: 18 if name == "oxs_compare" else 12 for name in TASKS}
    requests = [
        BenchmarkRequest(id=name, task=name, metric=task.metric, limit=limits[name], batch_size=32)
        for name, task in TASKS.items()
    ]
    result = evaluate_model(model, requests, tokenizer=tokenizer)
    for name in TASKS:
        items = result["items"][name]
        truth = task_split(name, "test")[: limits[name]]
        assert items["doc_id"] == list(range(limits[name]))
        assert items["level"] == [truth[i]["level"] for i in items["doc_id"]], name
        assert items["difficulty"] == [truth[i]["difficulty"] for i in items["doc_id"]], name
        assert set(items["level"]) == TASK_LEVELS[name], name
        assert all(isinstance(d, dict) and d for d in items["difficulty"]), name

    store = Store(tmp_path / "study")
    record = {
        "run_id": "a" * 16,
        "study": "s",
        "status": "done",
        "attempts": 1,
        "cell": {"model": {"id": "tiny"}, "algorithm": {"id": "Base", "method": "sft"}, "seed": 0},
        **result,
    }
    store.write_record(json.loads(json.dumps(record)))
    table = load_study(tmp_path / "study").items
    assert table["level"].notna().all()
    by_level = accuracy_by_level(table)
    for name in TASKS:
        items = result["items"][name]
        for level in sorted(TASK_LEVELS[name]):
            scores = [s for s, lv in zip(items["score"], items["level"], strict=True) if lv == level]
            row = by_level[(by_level["benchmark"] == name) & (by_level["level"] == level)]
            assert len(row) == 1 and row["n_items"].iloc[0] == len(scores)
            assert row["mean"].iloc[0] == pytest.approx(sum(scores) / len(scores))


def test_records_without_levels_still_load_and_get_the_bundled_level(tmp_path):
    store = Store(tmp_path / "study")
    base = {
        "study": "s",
        "status": "done",
        "attempts": 1,
        "metrics": {"arith": {"task": "oxs_arith", "metric": "m", "value": 0.5, "n": 3, "in_domain": True}},
        "cell": {"model": {"id": "tiny"}, "algorithm": {"id": "DPO", "method": "dpo"}, "seed": 1},
    }
    items = {"doc_id": [0, 1, 2], "doc_hash": ["a", "b", "c"], "score": [1.0, 0.0, 1.0], "level": [7, 8, 9]}
    store.write_record({"run_id": "a" * 16, **base, "items": {"arith": items}})
    legacy = {k: v for k, v in items.items() if k != "level"}  # written before items had levels
    store.write_record({"run_id": "b" * 16, **base, "items": {"arith": legacy}})
    tables = load_study(tmp_path / "study")
    table = tables.items.sort_values(["run_id", "doc_id"])
    assert table["level"].iloc[:3].tolist() == [7, 8, 9]
    assert table["level"].iloc[3:].isna().all(), "missing, not invented, in the item table"
    # the regime analyses fill only the missing ones, from the bundled task's test split
    filled = items_with_levels(table, tables.runs).sort_values(["run_id", "doc_id"])
    test = task_split("oxs_arith", "test")
    assert filled["level"].tolist() == [7, 8, 9] + [test[i]["level"] for i in (0, 1, 2)]


def test_lm_eval_output_dirs_carry_math_style_levels(tmp_path):
    """lm-eval's own output (minerva_math's documents say "Level 3") is read the same way."""
    from oxstudy.results_io import load_lm_eval_dir

    run = tmp_path / "run"
    run.mkdir()
    results = {
        "results": {"math": {"exact_match,none": 0.5, "exact_match_stderr,none": 0.1}},
        "n-shot": {"math": 0},
    }
    (run / "results_2026-01-01T00-00-00.json").write_text(json.dumps(results))
    docs = [{"problem": "p0", "level": "Level 1"}, {"problem": "p1", "level": "Level 3"}, {"problem": "p2"}]
    lines = [
        {"doc_id": i, "doc_hash": f"h{i}", "filter": "none", "exact_match": float(i % 2), "doc": doc}
        for i, doc in enumerate(docs)
    ]
    (run / "samples_math_2026-01-01T00-00-00.jsonl").write_text("\n".join(json.dumps(x) for x in lines))
    _, frames, _ = load_lm_eval_dir(run, model="m", algorithm="a", seed=0)
    (frame,) = frames
    assert frame["level"].tolist()[:2] == [1, 3] and pd.isna(frame["level"].iloc[2])


def test_tasks_list_shows_test_items_per_level():
    """The counts docs/world.md gives (levels are about a third of each test split each)."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "oxstudy.cli", "tasks", "list", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    levels = {row["task"]: row["levels"] for row in json.loads(done.stdout)["tasks"]}
    assert levels == {
        "oxs_arith": {"1": 168, "2": 166, "3": 166},
        "oxs_math": {"1": 50, "2": 100, "3": 100, "4": 50},
        "oxs_math_numeric": {"1": 50, "2": 50, "3": 50, "4": 50},
        "oxs_sequence": {"1": 100, "2": 100, "3": 100},
        "oxs_compare": {"1": 102, "2": 104, "3": 94},
        "oxs_facts": {"1": 81, "2": 81, "3": 81},
    }
    rows = {row["task"]: row for row in json.loads(done.stdout)["tasks"]}
    assert {t: (r["role"], r["chance"]) for t, r in rows.items()} == {
        "oxs_arith": ("in-domain", 0.0),
        "oxs_math": ("second math dataset", 0.0),
        "oxs_math_numeric": ("subset", 0.0),
        "oxs_sequence": ("out-of-domain generative", 0.0),
        "oxs_compare": ("out-of-domain MC", 0.25),
        "oxs_facts": ("knowledge", 0.25),
    }


def test_one_runs_accuracy_by_level_by_hand():
    levels = [1, 1, 2, None, 3, 3, 3, 3.0]
    scores = [1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0]
    by_level = run_accuracy_by_level(levels, scores)
    assert list(by_level) == ["1", "2", "3"]  # the item without a level is left out
    assert by_level["1"] == {"accuracy": 0.5, "stderr": pytest.approx((0.25 / 2) ** 0.5), "n": 2}
    assert by_level["2"] == {"accuracy": 1.0, "stderr": 0.0, "n": 1}
    assert by_level["3"] == {"accuracy": 0.5, "stderr": pytest.approx((0.25 / 4) ** 0.5), "n": 4}
