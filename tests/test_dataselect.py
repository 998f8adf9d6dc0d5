"""Training-data selection, levels and curricula (oxstudy/dataselect.py) and their spec fields."""

from __future__ import annotations

import json

import pytest

from oxstudy.dataselect import (
    apply_selection,
    curriculum_order,
    parse_level,
    record_level,
    select_records,
    solution_steps,
)
from oxstudy.errors import InputError, SpecError
from oxstudy.plan import plan
from oxstudy.selfplay import load_examples
from oxstudy.spec import CurriculumSpec, DataSpec, SelectSpec, load_spec_data
from oxstudy.tasks import task_split

GSM8K_SOLUTION = (
    "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n"
    "Natalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.\n#### 72"
)


def test_levels_of_real_data_conventions():
    assert solution_steps(GSM8K_SOLUTION) == 2  # two calculator annotations
    assert solution_steps("5 + 8 = 13\n13 - 2 = 11\n\n#### 11") == 2  # lines before ####
    assert parse_level("Level 3") == 3 and parse_level(4) == 4 and parse_level("Level ?") is None
    math_row = {"problem": "x", "level": "Level 5", "solution": "..."}
    assert record_level(math_row, {"level": "level"}) == 5
    gsm_row = {"question": "q", "answer": GSM8K_SOLUTION}
    assert record_level(gsm_row, {"level": "steps:answer"}) == 2
    assert record_level(gsm_row, {"solution": "answer"}) == 2  # derived fallback from the worked solution


def test_bundled_task_levels_are_its_step_counts():
    records = task_split("oxs_arith", "train")[:60]
    levels = [record_level(r) for r in records]
    assert levels == [r["difficulty"]["steps"] for r in records]
    assert set(levels) == {1, 2, 3}


def test_where_filter_keeps_exactly_the_matching_levels():
    records = task_split("oxs_arith", "train")[:60]
    kept = select_records(records, SelectSpec(where={"level": [1, 2]}))
    assert [i for i, _ in kept] == [i for i, r in enumerate(records) if r["difficulty"]["steps"] in (1, 2)]
    by_field = select_records(records, SelectSpec(where={"difficulty.max_number": 50}))
    assert {r["difficulty"]["max_number"] for _, r in by_field} == {50}


def test_subset_rules():
    records = [{"id": f"q{i}", "prompt": str(i), "answer": str(i)} for i in range(20)]
    first = select_records(records, SelectSpec(size=3))
    assert [r["id"] for _, r in first] == ["q0", "q1", "q2"]
    one = select_records(records, SelectSpec(size=1, rule="ids", ids=["q7"]))
    assert [r["id"] for _, r in one] == ["q7"]  # one-shot RL, example named by id
    by_index = select_records(records, SelectSpec(rule="indices", indices=[4, 2]))
    assert [i for i, _ in by_index] == [4, 2]
    a = select_records(records, SelectSpec(size=5, rule="random", seed=1))
    b = select_records(records, SelectSpec(size=5, rule="random", seed=1))
    c = select_records(records, SelectSpec(size=5, rule="random", seed=2))
    assert a == b and a != c and len(a) == 5
    assert [i for i, _ in a] == sorted(i for i, _ in a)  # a subset keeps the source order


def test_selection_errors_name_the_setting():
    records = task_split("oxs_arith", "train")[:30]
    with pytest.raises(InputError, match=r"data.select.where: no training example matches"):
        select_records(records, SelectSpec(where={"level": [9]}))
    with pytest.raises(InputError, match=r"data.select.ids: nope"):
        select_records(records, SelectSpec(rule="ids", ids=["nope"]))
    with pytest.raises(InputError, match=r"data.select.indices: 99 is out of range"):
        select_records(records, SelectSpec(rule="indices", indices=[99]))


def test_curriculum_orders_by_level_and_by_stage():
    records = task_split("oxs_arith", "train")[:36]
    items = list(enumerate(records))
    ascending = curriculum_order(items, CurriculumSpec())
    levels = [r["difficulty"]["steps"] for _, r in ascending]
    assert levels == sorted(levels) and sorted(i for i, _ in ascending) == list(range(36))
    descending = curriculum_order(items, CurriculumSpec(order="descending"))
    assert [r["difficulty"]["steps"] for _, r in descending] == sorted(levels, reverse=True)
    staged = curriculum_order(
        items,
        CurriculumSpec(
            stages=[{"where": {"level": 1}, "steps": 3}, {"where": {"level": [2, 3]}, "steps": 2}]
        ),
        prompts_per_step=4,
    )
    assert len(staged) == (3 + 2) * 4
    assert all(r["difficulty"]["steps"] == 1 for _, r in staged[:12])
    assert all(r["difficulty"]["steps"] in (2, 3) for _, r in staged[12:])


def test_local_file_with_math_levels(tmp_path):
    rows = [
        {
            "problem": f"What is {i}+1?",
            "solution": f"{i}+1={i + 1}\n#### {i + 1}",
            "level": f"Level {1 + i % 5}",
            "unique_id": f"m{i}",
        }
        for i in range(25)
    ]
    path = tmp_path / "math.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    data = DataSpec(
        source=str(path),
        fields={"prompt": "problem", "level": "level", "id": "unique_id"},
        select=SelectSpec(where={"level": [1, 2]}),
    )
    summary: dict = {}
    examples = load_examples(data, selection=summary)
    assert [e["prompt"] for e in examples] == [
        r["problem"] for r in rows if r["level"] in ("Level 1", "Level 2")
    ]
    assert summary["examples"] == 10 and summary["levels"] == {"1": 5, "2": 5}
    assert summary["ids"][:2] == ["m0", "m1"] and summary["select"]["where"] == {"level": [1, 2]}


def test_apply_selection_summary_hashes_the_ids():
    records = task_split("oxs_arith", "train")[:12]
    a: dict = {}
    b: dict = {}
    apply_selection(records, DataSpec(select=SelectSpec(size=3)), summary_out=a)
    apply_selection(records, DataSpec(select=SelectSpec(size=3, rule="random", seed=5)), summary_out=b)
    assert a["examples"] == b["examples"] == 3 and a["ids_sha256"] != b["ids_sha256"]


# ----------------------------------------------------------------------------- spec


def spec_data(**changes):
    data = {
        "name": "regime-test",
        "models": [{"id": "tiny", "source": "zoo:tiny"}],
        "algorithms": [{"id": "GRPO", "method": "grpo"}],
        "seeds": [1],
        "benchmarks": [{"id": "arith", "task": "oxs_arith", "in_domain": True}],
        "data": {"source": "task:oxs_arith", "train_size": 16},
    }
    data.update(changes)
    return data


def test_selection_changes_run_ids_and_defaults_do_not(tmp_path):
    base = plan(load_spec_data(spec_data(), tmp_path))[0].run_id
    explicit = spec_data()
    explicit["data"] = {
        **explicit["data"],
        "select": None,
        "curriculum": None,
        "reward": {"kind": "exact_match"},
    }
    assert plan(load_spec_data(explicit, tmp_path))[0].run_id == base
    easy = spec_data()
    easy["data"] = {**easy["data"], "select": {"where": {"level": [1]}}}
    assert plan(load_spec_data(easy, tmp_path))[0].run_id != base


def test_per_arm_data_and_reward_overrides(tmp_path):
    spec = load_spec_data(
        spec_data(
            algorithms=[
                {"id": "full", "method": "grpo"},
                {"id": "easy", "method": "grpo", "data": {"select": {"where": {"level": [1]}}}},
                {
                    "id": "oneshot",
                    "method": "grpo",
                    "data": {"select": {"size": 1, "rule": "indices", "indices": [3]}},
                },
                {"id": "random", "method": "grpo", "reward": {"kind": "random", "p": 0.5}},
                {
                    "id": "curriculum",
                    "method": "grpo",
                    "data": {
                        "curriculum": {
                            "stages": [
                                {"where": {"level": 1}, "steps": 2},
                                {"where": {"level": [2, 3]}, "steps": 2},
                            ]
                        }
                    },
                },
            ]
        ),
        tmp_path,
    )
    cells = {c.algorithm.id: c for c in plan(spec)}
    assert len({c.run_id for c in cells.values()}) == 5
    assert cells["full"].data.select is None and cells["easy"].data.select.where == {"level": [1]}
    assert cells["random"].data.reward.kind == "random" and cells["full"].data.reward.kind == "exact_match"
    assert cells["curriculum"].data.curriculum.stages[1].steps == 2


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"data": {"reward": {"kind": "random"}}}, r"data.reward: kind 'random' needs p"),
        (
            {"data": {"reward": {"kind": "noisy", "q": 1.5}}},
            r"data.reward.q: Input should be less than or equal to 1",
        ),
        ({"data": {"select": {"rule": "ids"}}}, r"data.select: rule 'ids' needs ids"),
        ({"data": {"select": {"size": 0}}}, r"data.select.size: Input should be greater than 0"),
        (
            {"algorithms": [{"id": "DPO", "method": "dpo", "data": {"curriculum": {}}}]},
            r"algorithms\[0\].data.curriculum: method 'dpo' cannot follow a curriculum",
        ),
        (
            {"algorithms": [{"id": "DPO", "method": "dpo", "reward": {"kind": "format"}}]},
            r"algorithms\[0\].reward: a reward applies to online RL only",
        ),
        (
            {
                "training": {"max_steps": 5},
                "data": {"curriculum": {"stages": [{"where": {"level": 1}, "steps": 2}]}},
            },
            r"data.curriculum.stages: the stages take 2 steps but training.max_steps is 5",
        ),
        (
            {"analysis": {"alignment": {"standard": "GRPO", "shortcuts": ["NSR"]}}},
            r"analysis.alignment.shortcuts\[0\]: 'NSR' is not one of the study's algorithms",
        ),
        (
            {
                "analysis": {
                    "alignment": {"standard": "GRPO", "shortcuts": ["GRPO"], "k": [1, 16], "samples": 8}
                }
            },
            r"samples 8 must be >= the largest k",
        ),
        (
            {"analysis": {"regime": {"full": "Full"}}},
            r"analysis.regime.full: 'Full' is not one of the study's algorithms",
        ),
    ],
)
def test_bad_regime_settings_are_located(tmp_path, changes, message):
    data = spec_data()
    for key, value in changes.items():
        data[key] = {**data[key], **value} if key == "data" else value
    with pytest.raises(SpecError, match=message):
        load_spec_data(data, tmp_path)


# ----------------------------------------------------------------------------- bundled specs


@pytest.mark.parametrize(
    ("name", "cells"),
    [
        ("difficulty_curriculum", 30),
        ("alignment", 48),
        ("difficulty_curriculum_cpu", 30),
        ("alignment_cpu", 48),
    ],
)
def test_bundled_regime_specs_validate_plan_and_shrink_for_smoke(name, cells):
    from pathlib import Path

    from oxstudy.smoke import smoke_spec
    from oxstudy.spec import load_spec

    spec = load_spec(Path(__file__).resolve().parents[1] / "specs" / f"{name}.yaml")
    planned = plan(spec)
    assert len(planned) == cells and len({c.run_id for c in planned}) == cells
    smoke = smoke_spec(spec)
    arms = {c.algorithm.id: c for c in plan(smoke)}
    assert len(arms) == len(spec.algorithms)  # no two arms collapse onto one configuration on the zoo
    for cell in arms.values():
        assert cell.data.source.startswith("task:") and cell.model.source.startswith("zoo:")
    if name.startswith("alignment"):  # the base pass@k is sampled by the workers, a few samples in smoke mode
        assert all(c.measure.alignment is not None for c in planned)
        assert all(c.measure.alignment.samples == 4 for c in arms.values())
    if name == "alignment":
        assert (
            arms["OneShot@gsm8k"].data.select.size == 1 and arms["Random@math"].data.reward.kind == "random"
        )
        assert (
            arms["NSR@math"].data.source == "task:oxs_sequence"
            and arms["NSR@gsm8k"].algorithm.method == "nsr"
        )
    if name.startswith("difficulty"):  # accuracy during training for steps-to-match, every step in smoke mode
        assert all(c.measure.eval_every > 0 for c in planned)
        assert all((c.measure.eval_every, c.measure.eval_limit) == (1, 16) for c in arms.values())
    if name == "difficulty_curriculum":
        assert arms["GRPO-curriculum"].data.curriculum.by == "level"
        assert arms["GRPO-math"].data.source != arms["GRPO-full"].data.source
