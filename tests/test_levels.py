"""Difficulty levels as data: every bundled test item's level and generator parameters
flow from lm-eval's per-sample documents into evaluation results, the run record and the
study's item table, so accuracy can be broken down by level."""

from __future__ import annotations

import pandas as pd
import pytest

from oxstudy.evaluation import BenchmarkRequest, default_metric, evaluate_model
from oxstudy.store import Store, load_study
from oxstudy.tasks import doc_level, task_split


@pytest.fixture(scope="module")
def tiny_model(zoo_tiny):
    from oxstudy.evaluation import load_model

    return load_model(zoo_tiny, device="cpu")


@pytest.mark.parametrize(("task", "limit"), [("oxs_arith", 12), ("oxs_facts", 40), ("oxs_math_numeric", 8)])
def test_levels_and_difficulty_reach_the_items(tiny_model, task, limit):
    model, tokenizer = tiny_model
    request = BenchmarkRequest(id="b", task=task, metric=default_metric(task), limit=limit)
    result = evaluate_model(model, [request], tokenizer=tokenizer)
    items = result["items"]["b"]
    truth = task_split(task, "test")[:limit]
    # lm-eval's doc_id is the row in the test JSONL: the level must be that row's level
    assert items["level"] == [truth[i]["level"] for i in items["doc_id"]]
    assert items["difficulty"] == [truth[i]["difficulty"] for i in items["doc_id"]]
    assert len(set(items["level"])) > 1, "the prefix spans several levels"


def test_store_item_table_carries_levels(tmp_path):
    store = Store(tmp_path / "study")
    base = {
        "study": "s",
        "status": "done",
        "attempts": 1,
        "metrics": {"arith": {"task": "oxs_arith", "metric": "m", "value": 0.5, "n": 3, "in_domain": True}},
        "cell": {"model": {"id": "tiny"}, "algorithm": {"id": "DPO", "method": "dpo"}, "seed": 1},
    }
    items = {"doc_id": [0, 1, 2], "doc_hash": ["a", "b", "c"], "score": [1.0, 0.0, 1.0], "level": [1, 2, 3]}
    store.write_record({"run_id": "a" * 16, **base, "items": {"arith": items}})
    # an older record without levels still loads (level is missing, not invented)
    legacy = {k: v for k, v in items.items() if k != "level"}
    store.write_record({"run_id": "b" * 16, **base, "items": {"arith": legacy}})
    table = load_study(tmp_path / "study").items.sort_values(["run_id", "doc_id"])
    assert table["level"].iloc[:3].tolist() == [1, 2, 3]
    assert table["level"].iloc[3:].isna().all()
    by_level = table.iloc[:3].groupby("level")["score"].mean()
    pd.testing.assert_series_equal(
        by_level, pd.Series([1.0, 0.0, 1.0], index=pd.Index([1, 2, 3], name="level")), check_names=False
    )


@pytest.mark.parametrize(
    ("doc", "level"),
    [
        ({"level": 3}, 3),
        ({"level": "Level 5"}, 5),
        ({"level": "Level ?"}, None),
        ({}, None),
        ({"level": True}, None),
    ],
)
def test_doc_level_reads_bundled_and_math_style_levels(doc, level):
    assert doc_level(doc) == level


def test_lm_eval_output_dirs_carry_levels_from_the_sample_docs(tmp_path):
    """lm-eval's own output (e.g. minerva_math, whose docs say "Level 3") is read the same way."""
    import json

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
