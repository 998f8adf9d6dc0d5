"""Self-play data preparation: loading, sampling, verification, derived sets, cache, rewards."""

from __future__ import annotations

import json

import pytest
import torch
from algorithms_helpers import make_cell

from oxstudy.errors import InputError, ResourceError
from oxstudy.selfplay import (
    derive_training_data,
    exact_match_reward,
    format_reward,
    load_examples,
    prepare_data,
    reward_functions,
    sample_completions,
    selfplay_cache_key,
    verify_samples,
)
from oxstudy.spec import DataSpec

pytestmark = pytest.mark.usefixtures("single_thread")


EXAMPLES = [
    {"prompt": "2 + 3?", "solution": "2 + 3 = 5\n#### 5", "answer": "5"},
    {"prompt": "4 + 4?", "solution": "4 + 4 = 8\n#### 8", "answer": "8"},
    {"prompt": "9 - 1?", "solution": "9 - 1 = 8\n#### 8", "answer": "8"},
]
SAMPLES = [
    ["#### 5", "#### 6", "#### 5", "#### 7"],  # 2 correct (1 distinct), 2 incorrect
    ["#### 1", "#### 2", "#### 1", "no answer"],  # none correct -> gold fallback
    ["#### 8", "#### 8", "#### 8", "#### 8"],  # all correct -> no pair
]


def test_verify_samples_uses_the_shared_verifier():
    assert verify_samples(EXAMPLES, SAMPLES) == [
        [True, False, True, False], [False, False, False, False], [True, True, True, True]]
    # strict: the answer must follow ####
    assert verify_samples(EXAMPLES[:1], [["the answer is 5"]]) == [[False]]


def test_derive_training_data():
    data = derive_training_data(EXAMPLES, SAMPLES, verify_samples(EXAMPLES, SAMPLES))
    assert [d["solution"] for d in data.sp_rft] == ["#### 5", "#### 8"]  # distinct correct samples
    assert [(p["prompt"], p["chosen"], p["rejected"]) for p in data.pairs] == [
        ("2 + 3?", "#### 5", "#### 6"), ("2 + 3?", "#### 5", "#### 7"),
        ("4 + 4?", EXAMPLES[1]["solution"], "#### 1"), ("4 + 4?", EXAMPLES[1]["solution"], "#### 2"),
        ("4 + 4?", EXAMPLES[1]["solution"], "no answer"),
    ]
    labels = [(u["prompt"], u["completion"], u["label"]) for u in data.unpaired]
    assert ("2 + 3?", "#### 5", True) in labels and ("2 + 3?", "#### 6", False) in labels
    assert ("9 - 1?", "#### 8", True) in labels
    assert sum(not u["label"] for u in data.unpaired) == 5
    assert data.gold == EXAMPLES and data.prompts[0] == {"prompt": "2 + 3?", "answer": "5"}
    assert data.stats["correct"] == 6 and data.stats["samples"] == 12 and data.stats["gold_fallback_prompts"] == 1
    strict = derive_training_data(EXAMPLES, SAMPLES, verify_samples(EXAMPLES, SAMPLES), gold_fallback=False)
    assert len(strict.pairs) == 2


def test_load_examples_from_a_bundled_task():
    examples = load_examples(DataSpec(source="task:oxs_arith", train_size=5))
    assert len(examples) == 5 and set(examples[0]) >= {"prompt", "solution", "answer"}
    assert examples[0]["solution"].rstrip().endswith(f"#### {examples[0]['answer']}")
    assert load_examples(DataSpec(source="task:arith", train_size=5)) == examples  # short name


def test_load_examples_from_local_files_with_a_field_mapping(tmp_path):
    # GSM8K's layout: question / answer, the answer being a solution ending "#### N".
    rows = [{"question": "How many?", "answer": "3 + 4 = 7\n#### 7"}, {"question": "More?", "answer": "#### 1,200"}]
    path = tmp_path / "gsm8k.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    spec = DataSpec(source=str(path), fields={"prompt": "question", "solution": "answer"})
    assert load_examples(spec) == [
        {"prompt": "How many?", "solution": "3 + 4 = 7\n#### 7", "answer": "7"},
        {"prompt": "More?", "solution": "#### 1,200", "answer": "1200"},
    ]
    import pandas as pd

    parquet = tmp_path / "data.parquet"
    pd.DataFrame([{"q": "x?", "a": "2"}]).to_parquet(parquet)
    assert load_examples(DataSpec(source="data.parquet", fields={"prompt": "q", "answer": "a"}), base_dir=tmp_path) == [
        {"prompt": "x?", "answer": "2", "solution": ""}]


def test_load_examples_errors_name_the_place(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"question": "a", "answer": "#### 1"}\n{"q": "b"}\n')
    with pytest.raises(InputError, match=r"row 1: no column 'question' for prompt"):
        load_examples(DataSpec(source=str(path), fields={"prompt": "question", "solution": "answer"}))
    path.write_text('{"prompt": "a", "answer": "1"}\nnot json\n')
    with pytest.raises(InputError, match=r"bad.jsonl:2: invalid JSON"):
        load_examples(DataSpec(source=str(path)))
    with pytest.raises(InputError, match="file not found"):
        load_examples(DataSpec(source=str(tmp_path / "missing.jsonl")))
    with pytest.raises(ResourceError, match="hf:openai/gsm8k"):
        load_examples(DataSpec(source="hf:openai/gsm8k", config="main"))  # offline: no hub


def test_sampling_is_reproducible_per_seed(zoo_tiny):
    from oxstudy.training import load_model

    model, tokenizer = load_model(zoo_tiny, "cpu", "auto")
    prompts = [e["prompt"] for e in load_examples(DataSpec(source="task:oxs_arith", train_size=3))]
    first = sample_completions(model, tokenizer, prompts, n=3, temperature=1.0, max_new_tokens=24, seed=7)
    again = sample_completions(model, tokenizer, prompts, n=3, temperature=1.0, max_new_tokens=24, seed=7)
    other = sample_completions(model, tokenizer, prompts, n=3, temperature=1.0, max_new_tokens=24, seed=8)
    assert len(first) == 3 and all(len(s) == 3 for s in first)
    assert first == again and first != other
    assert any("####" in c for s in first for c in s)  # the pretrained zoo model answers in format
    # the caller's global stream is where it was: training draws the same with or without sampling
    torch.manual_seed(123)
    expected = torch.rand(4)
    torch.manual_seed(123)
    sample_completions(model, tokenizer, prompts[:1], n=2, temperature=1.0, max_new_tokens=8, seed=7)
    assert torch.equal(torch.rand(4), expected)


def test_prepare_data_caches_per_base_model_data_and_seed(zoo_tiny, tmp_path):
    data_settings = {"train_size": 6, "preference": {"samples_per_prompt": 4, "max_new_tokens": 40}}
    dpo = prepare_data(make_cell("dpo", data=data_settings), zoo_tiny, cache_dir=tmp_path)
    assert dpo.stats["cache_hit"] is False and dpo.cache_key
    assert dpo.pairs and dpo.stats["samples"] == 24
    kto = prepare_data(make_cell("kto", data=data_settings), zoo_tiny, cache_dir=tmp_path)
    assert kto.stats["cache_hit"] is True and kto.cache_key == dpo.cache_key
    assert kto.pairs == dpo.pairs and kto.unpaired == dpo.unpaired
    assert len(list(tmp_path.glob("*.json"))) == 1
    # SFT and online RL need no samples.
    sft = prepare_data(make_cell("sft", data=data_settings), zoo_tiny, cache_dir=tmp_path)
    assert sft.cache_key is None and len(sft.gold) == 6 and len(sft.prompts) == 6
    assert sft.stats == {"prompts": 6, "self_play": False} and not sft.pairs and not sft.unpaired
    # Another seed or temperature is another cache entry.
    cell = make_cell("dpo", data=data_settings)
    assert selfplay_cache_key(zoo_tiny, cell.data, 1) != selfplay_cache_key(zoo_tiny, cell.data, 0)
    hotter = make_cell("dpo", data={**data_settings, "preference": {**data_settings["preference"], "temperature": 0.7}})
    assert selfplay_cache_key(zoo_tiny, hotter.data, 0) != dpo.cache_key


def test_preference_dataset_mode(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps({"q": "1+1?", "good": "#### 2", "bad": "#### 3"}) + "\n")
    cell = make_cell("dpo", data={"preference": {"mode": "dataset", "dataset": {
        "source": str(path), "fields": {"prompt": "q", "chosen": "good", "rejected": "bad"}}}})
    data = prepare_data(cell, "unused-model", cache_dir=tmp_path)
    assert data.pairs == [{"prompt": "1+1?", "chosen": "#### 2", "rejected": "#### 3", "answer": ""}]
    assert [u["label"] for u in data.unpaired] == [True, False]


def test_reward_functions():
    completions = [[{"role": "assistant", "content": "2 + 3 = 5\n#### 5"}],
                   [{"role": "assistant", "content": "#### 4"}],
                   [{"role": "assistant", "content": "five"}]]
    answers = ["5", "5", "5"]
    assert exact_match_reward(completions, answer=answers) == [1.0, 0.0, 0.0]
    assert format_reward(completions) == [1.0, 1.0, 0.0]
    assert reward_functions() == [exact_match_reward]
    exact, weighted = reward_functions(format_weight=0.2)
    assert weighted(completions=completions, answer=answers) == [0.2, 0.2, 0.0]
    assert exact_match_reward(["#### 5"], answer=["5"]) == [1.0]  # plain-text completions too
