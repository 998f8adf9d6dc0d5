"""Weight-update anatomy, LoRA merged deltas, effective rank and KL drift (oxstudy/anatomy.py),
and the pure statistics on them (oxstudy/stats/anatomy.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")


def _llama(seed: int = 0, layers: int = 2):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=64,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=layers,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=64,
        tie_word_embeddings=False,
    )
    return LlamaForCausalLM(config).eval()


def _by_name(anatomy: dict) -> dict[str, dict]:
    params = anatomy["params"]
    return {name: {key: params[key][i] for key in params} for i, name in enumerate(params["name"])}


def test_update_norms_of_known_deltas(tmp_path) -> None:
    """Known deltas on a hand-built model: norms, relative updates, types and layers by hand."""
    from oxstudy.anatomy import SafetensorsWeights, StateDictWeights, weight_update_anatomy

    model = _llama()
    model.save_pretrained(tmp_path)  # the base checkpoint, read lazily
    base = StateDictWeights.copy_of(model)
    q = "model.layers.1.self_attn.q_proj.weight"
    down = "model.layers.0.mlp.down_proj.weight"
    head = "lm_head.weight"
    with torch.no_grad():
        params = dict(model.named_parameters())
        params[q].add_(0.5)  # ||dW||_F = 0.5 * sqrt(16 * 16) = 8
        params[down][3, 7] += 3.0  # a single entry: ||dW||_F = 3
        params[head].mul_(1.1)  # ||dW||_F = 0.1 * ||W0||_F: relative update 0.1
    expected_q_base = float(torch.linalg.vector_norm(base.state[q]))
    for weights in (base, SafetensorsWeights(tmp_path)):
        rows = _by_name(weight_update_anatomy(model, weights))
        assert rows[q]["update_norm"] == pytest.approx(8.0, rel=1e-5)
        assert rows[q]["relative"] == pytest.approx(8.0 / expected_q_base, rel=1e-5)
        assert (rows[q]["type"], rows[q]["layer"]) == ("q", 1)
        assert rows[down]["update_norm"] == pytest.approx(3.0, rel=1e-5)
        assert (rows[down]["type"], rows[down]["layer"]) == ("down", 0)
        assert rows[head]["relative"] == pytest.approx(0.1, rel=1e-4)
        assert (rows[head]["type"], rows[head]["layer"]) == ("lm_head", None)
        untouched = [n for n in rows if n not in (q, down, head)]
        assert untouched and all(rows[n]["update_norm"] == 0.0 for n in untouched)
        assert rows["model.layers.0.input_layernorm.weight"]["type"] == "attn_norm"
        assert rows["model.norm.weight"]["type"] == "final_norm"
        assert rows["model.embed_tokens.weight"]["type"] == "embed"
        weights.close()


def test_shares_and_heatmap_from_records() -> None:
    """The q/k share is sum ||dW||^2 over q,k / total, per run; heatmap cells are per layer x type."""
    from oxstudy.anatomy import StateDictWeights, weight_update_anatomy
    from oxstudy.stats.anatomy import anatomy_table, heatmaps, per_run_quantities

    model = _llama()
    base = StateDictWeights.copy_of(model)
    with torch.no_grad():
        params = dict(model.named_parameters())
        params["model.layers.0.self_attn.q_proj.weight"].add_(0.25)  # ||dW||^2 = 0.0625 * 256 = 16
        params["model.layers.1.self_attn.k_proj.weight"].add_(0.25)  # 16
        params["model.layers.1.mlp.up_proj.weight"][0, 0] += 4.0  # 16 -> q/k share = 32 / 48
    record = {
        "run_id": "r1",
        "status": "done",
        "anatomy": weight_update_anatomy(model, base),
        "cell": {"model": {"id": "m"}, "algorithm": {"id": "A", "method": "sft"}, "seed": 1, "training": {}},
    }
    table = anatomy_table([record])
    per_run = per_run_quantities(table)
    assert per_run.loc[0, "share:q/k"] == pytest.approx(2 / 3, rel=1e-5)
    assert per_run.loc[0, "update_norm"] == pytest.approx(math.sqrt(48), rel=1e-5)
    (panel,) = heatmaps(table)
    layer, kind = panel["layers"].index(1), panel["types"].index("up")
    up_base = float(torch.linalg.vector_norm(base.state["model.layers.1.mlp.up_proj.weight"]))
    assert panel["relative"][layer][kind] == pytest.approx(4.0 / up_base, rel=1e-4)
    assert panel["relative"][0][panel["types"].index("v")] == 0.0


def test_lora_merged_delta_equals_full_weight_computation() -> None:
    """The anatomy from LoRA adapters (B @ A * scaling) equals the full-weight diff after merging."""
    from peft import LoraConfig, get_peft_model

    from oxstudy.anatomy import StateDictWeights, lora_update_anatomy, weight_update_anatomy

    model = _llama(seed=1)
    base = StateDictWeights.copy_of(model)
    peft_model = get_peft_model(
        model,
        LoraConfig(r=4, lora_alpha=12, target_modules=["q_proj", "v_proj", "down_proj"], lora_dropout=0.0),
    )
    torch.manual_seed(3)
    with torch.no_grad():
        for name, parameter in peft_model.named_parameters():
            if "lora_B" in name:  # B starts at zero: give the adapters a real update
                parameter.normal_(0, 0.2)
    from_adapters = _by_name(lora_update_anatomy(peft_model, effective_rank_top=4))
    merged = peft_model.merge_and_unload()
    from_weights = _by_name(weight_update_anatomy(merged, base, effective_rank_top=4))
    assert set(from_adapters) == set(from_weights)
    adapted = [n for n in from_weights if any(m in n for m in ("q_proj", "v_proj", "down_proj"))]
    assert len(adapted) == 6 and all(from_weights[n]["update_norm"] > 0 for n in adapted)
    for name, row in from_weights.items():
        assert from_adapters[name]["update_norm"] == pytest.approx(row["update_norm"], rel=1e-4, abs=1e-7), (
            name
        )
        assert from_adapters[name]["base_norm"] == pytest.approx(row["base_norm"], rel=1e-6), name
        if row.get("erank") is not None:
            assert from_adapters[name]["erank"] == pytest.approx(row["erank"], rel=1e-3), name
            assert row["erank"] <= 4 + 1e-6  # a rank-4 update


def test_effective_rank_known_spectra() -> None:
    from oxstudy.anatomy import effective_rank

    u, _ = torch.linalg.qr(torch.randn(40, 40, generator=torch.Generator().manual_seed(0)))
    v, _ = torch.linalg.qr(torch.randn(30, 30, generator=torch.Generator().manual_seed(1)))
    equal = u[:, :3] @ torch.diag(torch.tensor([2.0, 2.0, 2.0])) @ v[:, :3].T
    assert effective_rank(equal, 8) == pytest.approx(3.0, rel=1e-4)  # exp(ln 3)
    sigma = torch.tensor([3.0, 1.0])
    skewed = u[:, :2] @ torch.diag(sigma) @ v[:, :2].T
    p = np.array([0.75, 0.25])
    assert effective_rank(skewed, 8) == pytest.approx(math.exp(-(p * np.log(p)).sum()), rel=1e-4)
    big = torch.randn(300, 200, generator=torch.Generator().manual_seed(2))[:, :1] @ torch.randn(1, 200)
    torch.manual_seed(5)
    expected = torch.rand(4)
    torch.manual_seed(5)
    assert effective_rank(big, 8) == pytest.approx(1.0, abs=1e-3)  # randomized path: rank one
    assert torch.equal(torch.rand(4), expected)  # its random draws left the global stream alone


def test_token_kl_closed_form_and_direction() -> None:
    """KL(p||q) of two known distributions against the closed form, and its asymmetry."""
    from oxstudy.anatomy import token_kl

    p = np.array([0.5, 0.25, 0.25])
    q = np.array([0.25, 0.5, 0.25])
    r = np.array([0.7, 0.2, 0.1])
    closed_pq = 0.5 * math.log(2) + 0.25 * math.log(0.5)  # = 0.25 ln 2
    logits = torch.log(torch.tensor(np.stack([p, r]), dtype=torch.float64)) + 5.0  # shifts do not matter
    other = torch.log(torch.tensor(np.stack([q, q]), dtype=torch.float64)) - 2.0
    kl = token_kl(logits, other)
    assert float(kl[0]) == pytest.approx(closed_pq, rel=1e-6)
    assert float(kl[1]) == pytest.approx(float(np.sum(r * np.log(r / q))), rel=1e-6)
    reverse = token_kl(other, logits)
    assert float(reverse[1]) == pytest.approx(float(np.sum(q * np.log(q / r))), rel=1e-6)
    assert float(reverse[1]) != pytest.approx(float(kl[1]), rel=1e-3)


def test_kl_drift_zero_for_same_model_positive_after_change(zoo_tiny) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from oxstudy.anatomy import kl_drift, token_kl
    from oxstudy.tasks import task_split

    tokenizer = AutoTokenizer.from_pretrained(zoo_tiny)
    base = AutoModelForCausalLM.from_pretrained(zoo_tiny).eval()
    trained = AutoModelForCausalLM.from_pretrained(zoo_tiny).eval()
    prompts = [e["prompt"] for e in task_split("oxs_arith", "test", 6)]
    same = kl_drift(trained, base, tokenizer, prompts, max_new_tokens=8, batch_size=4)
    assert same["value"] == 0.0 and same["tokens"] > 0 and same["direction"] == "KL(trained || base)"
    with torch.no_grad():
        trained.model.norm.weight.mul_(1.5)
    drift = kl_drift(trained, base, tokenizer, prompts, max_new_tokens=8, batch_size=4)
    assert drift["value"] > 0
    # one prompt by hand: the trained model's greedy continuation, KL at each generated position
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": prompts[0]}], tokenize=False, add_generation_prompt=True
    )
    ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        out = trained.generate(ids, do_sample=False, max_new_tokens=8, pad_token_id=tokenizer.pad_token_id)
        gen = out[0, ids.shape[1] :].tolist()
        if tokenizer.eos_token_id in gen:
            gen = gen[: gen.index(tokenizer.eos_token_id) + 1]
        seq = out[:, : ids.shape[1] + len(gen)]
        kl = token_kl(
            trained(seq).logits[0, ids.shape[1] - 1 : -1], base(seq).logits[0, ids.shape[1] - 1 : -1]
        )
    single = kl_drift(trained, base, tokenizer, prompts[:1], max_new_tokens=8)
    assert single["tokens"] == len(gen)
    assert single["value"] == pytest.approx(float(kl.mean()), rel=1e-4)


def test_kl_prompt_file_is_relative_to_the_spec_not_the_working_directory(tmp_path, monkeypatch) -> None:
    import json

    from oxstudy.anatomy import drift_prompts
    from oxstudy.plan import expand_cells
    from oxstudy.spec import load_spec

    study = tmp_path / "study"
    study.mkdir()
    (study / "held_out.jsonl").write_text("".join(json.dumps({"prompt": f"p{i}"}) + "\n" for i in range(3)))
    (study / "spec.yaml").write_text(
        "name: kl-rel\nmodels: [{id: tiny, source: 'zoo:tiny'}]\nalgorithms: [{id: SFT, method: sft}]\n"
        "seeds: [1]\ndata: {source: 'task:oxs_arith', train_size: 8}\n"
        "benchmarks: [{id: arith, task: oxs_arith, metric: 'exact_match,strict-match', in_domain: true}]\n"
        "measure: {kl_drift: {prompts: held_out.jsonl, n: 2}}\n"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # workers run in another directory than the spec's
    cells, _ = expand_cells(load_spec(study / "spec.yaml"))
    assert cells[0].measure.kl_drift.prompts == str((study / "held_out.jsonl").resolve())
    prompts, label = drift_prompts(cells[0])
    assert prompts == ["p0", "p1"] and label.endswith("held_out.jsonl")


def test_base_evaluation_runs_once_when_workers_ask_at_the_same_time(zoo_tiny, tmp_path) -> None:
    import threading

    import oxstudy.evaluation
    from oxstudy.anatomy import base_evaluation
    from oxstudy.plan import expand_cells
    from oxstudy.spec import load_spec_data
    from oxstudy.training import load_model

    spec = load_spec_data({
        "name": "base-once", "models": [{"id": "tiny", "source": zoo_tiny}],
        "algorithms": [{"id": "SFT", "method": "sft"}], "seeds": [1, 2],
        "data": {"source": "task:oxs_arith", "train_size": 8},
        "benchmarks": [{"id": "compare", "task": "oxs_compare", "metric": "acc,none", "limit": 8}],
    }, base_dir=tmp_path)
    cells, _ = expand_cells(spec)
    model, tokenizer = load_model(zoo_tiny, "cpu", "fp32")
    real, calls = oxstudy.evaluation.evaluate_model, []

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    oxstudy.evaluation.evaluate_model = counted
    results: list[dict] = []
    try:
        workers = [threading.Thread(target=lambda c=c: results.append(
            base_evaluation(model, tokenizer, c, zoo_tiny, tmp_path / "base", "cpu"))) for c in cells]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    finally:
        oxstudy.evaluation.evaluate_model = real
    assert len(results) == 2 and results[0] == results[1]
    assert len(calls) == 1  # the second worker read the first one's file
