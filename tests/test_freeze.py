"""training.freeze / training.trainable: selection rules, spec validation, pre-flight against the
model's real parameter names, and bit-identical frozen parameters after a real TRL run."""

from __future__ import annotations

import pytest

from oxstudy.errors import SpecError
from oxstudy.freezing import frozen_parameters, parse_layers, pattern_matches, selection_problems
from oxstudy.spec import ParamSelection, TrainingSpec

NAMES = [
    "model.embed_tokens.weight",
    *[
        f"model.layers.{i}.{m}.weight"
        for i in range(4)
        for m in (
            "self_attn.q_proj",
            "self_attn.k_proj",
            "self_attn.v_proj",
            "self_attn.o_proj",
            "mlp.gate_proj",
            "mlp.up_proj",
            "mlp.down_proj",
            "input_layernorm",
            "post_attention_layernorm",
        )
    ],
    "model.norm.weight",
    "lm_head.weight",
]
QK = ["layers.*.self_attn.q_proj", "layers.*.self_attn.k_proj"]


def test_patterns_and_layer_ranges() -> None:
    assert pattern_matches("layers.*.self_attn.q_proj", "model.layers.3.self_attn.q_proj.weight")
    assert pattern_matches("q_proj", "model.layers.3.self_attn.q_proj.bias")
    assert pattern_matches("model.layers.1.*", "model.layers.1.mlp.up_proj.weight")
    assert not pattern_matches("q_proj", "model.layers.3.self_attn.k_proj.weight")
    assert not pattern_matches(
        "proj", "model.layers.3.self_attn.q_proj.weight"
    )  # globs match whole components
    assert parse_layers("0-3") == {0, 1, 2, 3}
    assert parse_layers("0-1, 3") == {0, 1, 3}
    assert parse_layers("2-", num_layers=4) == {2, 3}
    for bad in ("3-1", "a", "1--2"):
        with pytest.raises(ValueError):
            parse_layers(bad, num_layers=4)


def test_freeze_and_trainable_selections() -> None:
    freeze_qk = TrainingSpec(freeze=QK)  # the list shorthand
    frozen = frozen_parameters(NAMES, freeze_qk, 4)
    assert (
        sorted(frozen) == sorted(n for n in NAMES if ".q_proj." in n or ".k_proj." in n) and len(frozen) == 8
    )
    early_qk = TrainingSpec(freeze={"modules": QK, "layers": "0-1"})
    assert sorted(frozen_parameters(NAMES, early_qk, 4)) == sorted(
        n for n in frozen if n.startswith(("model.layers.0.", "model.layers.1."))
    )
    whole_layers = TrainingSpec(freeze={"layers": "2-"})
    assert all(".layers.2." in n or ".layers.3." in n for n in frozen_parameters(NAMES, whole_layers, 4))
    assert len(frozen_parameters(NAMES, whole_layers, 4)) == 18
    inverse = TrainingSpec(trainable={"modules": ["mlp.*"]})
    kept = set(NAMES) - set(frozen_parameters(NAMES, inverse, 4))
    assert kept == {n for n in NAMES if ".mlp." in n}


def test_spec_rules_and_unchanged_run_ids() -> None:
    with pytest.raises(ValueError, match="not both"):
        TrainingSpec(freeze=QK, trainable=["mlp.*"])
    with pytest.raises(ValueError, match="select modules and/or layers"):
        ParamSelection()
    with pytest.raises(ValueError, match="layers"):
        ParamSelection(layers="3-1")
    # absent selections stay out of dumps, so run ids of studies without freezing did not change
    assert "freeze" not in TrainingSpec().model_dump() and "trainable" not in TrainingSpec().model_dump()
    assert TrainingSpec(freeze=QK).model_dump()["freeze"] == {"modules": QK, "layers": None}


def test_located_errors_for_patterns_that_match_nothing() -> None:
    training = TrainingSpec(
        freeze={"modules": ["layers.*.self_attn.q_proj", "layers.*.attn.c_attn"], "layers": "0-7"}
    )
    problems = selection_problems(NAMES, training, 4, "training", "zoo:tiny")
    assert any(
        p.startswith(
            "training.freeze.modules[1]: pattern 'layers.*.attn.c_attn' matches no parameter of model "
            "zoo:tiny"
        )
        for p in problems
    ), problems
    assert any(p.startswith("training.freeze.layers: '0-7' reaches layer 7") for p in problems), problems
    assert not any("modules[0]" in p for p in problems)
    everything = TrainingSpec(trainable={"modules": ["nothing_like_this"]})
    assert "matches no parameter" in selection_problems(NAMES, everything, 4, "training", "m")[0]


def test_preflight_checks_real_module_names(zoo_tiny) -> None:
    from algorithms_helpers import make_cell

    from oxstudy.execute import preflight

    good = make_cell("sft", training={"freeze": QK})
    preflight([good])  # matches the zoo model's names
    bad = make_cell("sft", training={"freeze": ["layers.*.self_attn.qkv_proj"]}, algorithm_id="SFT-frozen")
    with pytest.raises(SpecError) as info:
        preflight([good, bad])
    (message,) = info.value.messages
    assert message.startswith(
        "training (model tiny, algorithm SFT-frozen).freeze.modules[0]: pattern "
        "'layers.*.self_attn.qkv_proj' matches no parameter of model zoo:tiny"
    ), message


@pytest.mark.slow
def test_frozen_parameters_bit_identical_after_real_sft_run(zoo_tiny, tmp_path) -> None:
    """A real TRL SFT run on zoo:tiny with q/k frozen: frozen tensors bit-identical, the rest moved."""
    import torch
    from algorithms_helpers import make_cell
    from transformers import AutoModelForCausalLM

    from oxstudy.selfplay import prepare_data
    from oxstudy.training import train_cell

    cell = make_cell(
        "sft", training={"freeze": QK, "learning_rate": 5e-3, "weight_decay": 0.1, "max_steps": 3}
    )
    data = prepare_data(cell, zoo_tiny, cache_dir=tmp_path / "sp", device="cpu")
    result = train_cell(cell, model_path=zoo_tiny, output_dir=tmp_path / "train", data=data, device="cpu")
    base = dict(AutoModelForCausalLM.from_pretrained(zoo_tiny).named_parameters())
    trained = dict(result.model.named_parameters())
    frozen = [n for n in trained if ".q_proj." in n or ".k_proj." in n]
    # q and k of every layer (zoo:tiny has 2)
    assert sorted(result.frozen) == sorted(frozen) and len(frozen) == 2 * result.model.config.num_hidden_layers
    for name in frozen:
        assert torch.equal(trained[name], base[name]), name  # weight decay included: never in the optimizer
    moved = [n for n in trained if n not in frozen and not torch.equal(trained[n], base[n])]
    assert set(moved) == set(trained) - set(frozen)


@pytest.mark.slow
def test_lora_freeze_restricts_adapter_targets(zoo_tiny, tmp_path) -> None:
    """With LoRA, freezing q/k means no adapters on q/k (and adapters everywhere else linear)."""
    from algorithms_helpers import make_cell

    from oxstudy.selfplay import prepare_data
    from oxstudy.training import build_trainer

    cell = make_cell("sft", finetune="lora", training={"freeze": QK})
    data = prepare_data(cell, zoo_tiny, cache_dir=tmp_path / "sp", device="cpu")
    run = build_trainer(cell, model_path=zoo_tiny, output_dir=tmp_path / "train", data=data, device="cpu")
    adapted = {n.split(".lora_A")[0] for n, _ in run.trainer.model.named_parameters() if ".lora_A" in n}
    assert adapted and not any(n.endswith(("q_proj", "k_proj")) for n in adapted)
    assert {n.rsplit(".", 1)[-1] for n in adapted} == {
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    }
