"""Evaluation through lm-eval-harness on the tiny zoo model: real runs, per-item outputs,
few-shot and stderr passed through and recorded, multiple choice, LoRA adapters, offline
errors, and the ``oxstudy eval`` command."""

from __future__ import annotations

import json
import math

import pytest

from oxstudy.errors import InputError, ResourceError
from oxstudy.evaluation import BenchmarkRequest, evaluate_model, load_model

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_loaded(zoo_tiny):
    return load_model(zoo_tiny, device="cpu")


def _check_shape(result: dict, bench_id: str, n: int) -> None:
    metric, items = result["metrics"][bench_id], result["items"][bench_id]
    assert metric["n"] == n == len(items["doc_id"]) == len(items["score"])
    assert items["doc_id"] == list(range(n))
    assert all(len(h) == 64 for h in items["doc_hash"] + items["prompt_hash"])
    assert set(items["score"]) <= {0.0, 1.0}
    assert math.isclose(metric["value"], sum(items["score"]) / n)
    assert isinstance(metric["stderr"], float) and metric["stderr"] >= 0
    json.dumps(result, allow_nan=False)  # JSON-safe: plain floats, no NaN, no 'N/A'


def test_generative_bundled_task_with_items_and_provenance(tiny_loaded):
    model, tokenizer = tiny_loaded
    bench = BenchmarkRequest(id="arith", task="oxs_arith", limit=24, in_domain=True, batch_size=24)
    result = evaluate_model(model, [bench], tokenizer=tokenizer)
    _check_shape(result, "arith", 24)
    metric = result["metrics"]["arith"]
    assert metric["task"] == "oxs_arith" and metric["metric"] == "exact_match,strict-match"
    assert (
        metric["num_fewshot"] == 0 and metric["in_domain"] is True and metric["apply_chat_template"] is True
    )
    assert metric["generation_kwargs_used"]["max_gen_toks"] == 64
    assert metric["lm_eval_version"] == "0.4.13" and metric["task_source"] == "bundled"
    # Same doc ids and hashes as the data: the statistics engine pairs items across runs.
    again = evaluate_model(model, [bench], tokenizer=tokenizer)
    assert again == result, "greedy evaluation is deterministic"


def test_fewshot_and_stderr_arrive(tiny_loaded):
    from oxstudy.spec import BenchmarkSpec

    model, tokenizer = tiny_loaded
    benches = [
        BenchmarkRequest(id="zero", task="oxs_arith", limit=12, num_fewshot=0),
        # The spec's own model is accepted as is (duck typing over BenchmarkSpec's fields).
        BenchmarkSpec(
            id="three", task="oxs_arith", limit=12, num_fewshot=3, fewshot_as_multiturn=True,
            gen_kwargs={"max_gen_toks": 48},
        ),  # fmt: skip
    ]
    result = evaluate_model(model, benches, tokenizer=tokenizer)
    zero, three = result["metrics"]["zero"], result["metrics"]["three"]
    assert zero["num_fewshot"] == 0 and three["num_fewshot"] == 3
    assert three["fewshot_as_multiturn"] is True
    assert not zero["fewshot_as_multiturn"]
    # The few-shot examples really reached the prompts: every prompt changed.
    z_items, t_items = result["items"]["zero"], result["items"]["three"]
    assert z_items["doc_hash"] == t_items["doc_hash"]
    assert all(a != b for a, b in zip(z_items["prompt_hash"], t_items["prompt_hash"], strict=True))
    # Generation settings from the spec are applied and recorded.
    assert three["gen_kwargs"] == {"max_gen_toks": 48}
    assert three["generation_kwargs_used"]["max_gen_toks"] == 48
    for metric in (zero, three):
        assert isinstance(metric["stderr"], float) and metric["stderr"] >= 0


def test_multiple_choice_task_scores_by_loglikelihood(tiny_loaded):
    model, tokenizer = tiny_loaded
    result = evaluate_model(model, ["oxs_compare"], tokenizer=tokenizer)
    # A bare task name gets the bundled default metric and evaluates the full test split.
    metric = result["metrics"]["oxs_compare"]
    assert metric["metric"] == "acc,none" and metric["output_type"] == "multiple_choice"
    _check_shape(result, "oxs_compare", 300)
    assert metric["value"] > 0.3, "4 choices: the pretrained model beats chance (0.25)"


def test_path_evaluation_matches_in_memory_and_yaml_path_tasks(tiny_loaded, zoo_tiny, tmp_path):
    from oxstudy.tasks import export_tasks

    model, tokenizer = tiny_loaded
    in_memory = evaluate_model(
        model, [BenchmarkRequest(id="seq", task="oxs_sequence", limit=16)], tokenizer=tokenizer
    )
    yaml_path = export_tasks(tmp_path / "tasks") / "oxs_sequence.yaml"
    from_disk = evaluate_model(zoo_tiny, [BenchmarkRequest(id="seq", task=str(yaml_path), limit=16)])
    assert from_disk["items"] == in_memory["items"]
    assert from_disk["metrics"]["seq"]["task_source"] == "yaml"
    assert from_disk["metrics"]["seq"]["value"] == in_memory["metrics"]["seq"]["value"]


def test_lora_adapter_directory_evaluates(zoo_tiny, tiny_loaded, tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model, tokenizer = tiny_loaded
    bench = [BenchmarkRequest(id="arith", task="oxs_arith", limit=16, batch_size=16)]
    base_result = evaluate_model(model, bench, tokenizer=tokenizer)
    base = AutoModelForCausalLM.from_pretrained(zoo_tiny)
    peft_model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    adapter_dir = tmp_path / "adapter"
    peft_model.save_pretrained(adapter_dir)  # B = 0 at init: the adapter is the identity
    assert (adapter_dir / "adapter_config.json").exists() and not (adapter_dir / "config.json").exists()
    assert evaluate_model(str(adapter_dir), bench)["items"] == base_result["items"]
    # The PEFT model itself evaluates in memory too (as right after LoRA training).
    assert evaluate_model(peft_model, bench, tokenizer=tokenizer)["items"] == base_result["items"]
    # A non-trivial adapter changes the model: the merged weights differ from the base.
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.fill_(0.5)
    peft_model.save_pretrained(adapter_dir)
    merged, _ = load_model(adapter_dir, device="cpu")
    q_base = model.model.layers[0].self_attn.q_proj.weight
    assert not torch.allclose(merged.model.layers[0].self_attn.q_proj.weight, q_base)


def test_bad_metric_and_unknown_task_fail_clearly(tiny_loaded):
    model, tokenizer = tiny_loaded
    with pytest.raises(InputError, match=r"metric 'acc,none' not produced.*exact_match,strict-match"):
        evaluate_model(
            model,
            [BenchmarkRequest(id="a", task="oxs_arith", metric="acc,none", limit=2)],
            tokenizer=tokenizer,
        )
    with pytest.raises(InputError, match="task YAML not found"):
        evaluate_model(model, [BenchmarkRequest(id="a", task="missing/task.yaml")], tokenizer=tokenizer)


def test_hub_task_offline_is_one_line_resource_error(tiny_loaded):
    model, tokenizer = tiny_loaded
    with pytest.raises(ResourceError, match="gsm8k") as info:
        evaluate_model(model, [BenchmarkRequest(id="gsm8k", task="gsm8k", limit=2)], tokenizer=tokenizer)
    assert "\n" not in str(info.value)


def test_eval_command_json(zoo_tiny):
    from typer.testing import CliRunner

    from oxstudy.cli import build_app

    args = [
        "eval",
        "--model",
        "zoo:tiny",
        "--benchmarks",
        "oxs_arith,oxs_compare",
        "--limit",
        "8",
        "--json",
        "--items",
    ]
    result = CliRunner().invoke(build_app(), args)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["path"] == zoo_tiny
    assert payload["metrics"]["oxs_arith"]["metric"] == "exact_match,strict-match"
    assert payload["metrics"]["oxs_compare"]["metric"] == "acc,none"
    assert len(payload["items"]["oxs_compare"]["score"]) == 8


def test_lm_eval_fixed_costs_are_not_paid_per_call(tiny_loaded, monkeypatch):
    """lm-eval runs torch's collect_env (a pip subprocess) per simple_evaluate call and
    recompiles every Jinja template per document; oxstudy skips the first and compiles each
    template once per process."""
    import lm_eval.utils as lm_utils
    import torch.utils.collect_env as collect_env

    from oxstudy import evaluation

    model, tokenizer = tiny_loaded
    calls: list[int] = []
    monkeypatch.setattr(collect_env, "get_pretty_env_info", lambda: calls.append(1) or "env")
    monkeypatch.setattr(evaluation, "_ENV_INFO", {})
    benches = [
        BenchmarkRequest(id="arith", task="oxs_arith", limit=8, batch_size=8),
        BenchmarkRequest(id="compare", task="oxs_compare", metric="acc,none", limit=8, batch_size=8),
    ]
    first = evaluate_model(model, benches, tokenizer=tokenizer)
    second = evaluate_model(model, benches, tokenizer=tokenizer)
    assert calls == [], f"collect_env ran {len(calls)} times for four lm-eval calls"
    assert evaluation._ENV_INFO["pretty_env_info"] == evaluation.ENV_INFO_NOT_COLLECTED
    assert evaluation._ENV_INFO["lm_eval_version"] == "0.4.13"
    assert collect_env.get_pretty_env_info() == "env", "torch's collect_env is left as it was"
    cache = lm_utils.env.from_string.cache_info()
    assert cache.hits > 8 * 2 and cache.currsize < 50, cache
    assert first == second
