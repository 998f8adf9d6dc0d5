"""Every method trains for real through TRL on the smallest zoo model (CPU, a few steps).

Also: re-running a cell with the same seed gives identical metrics and weights; two methods
of one planned study receive identical shared settings; LoRA runs produce an adapter that
matches the merged model; non-finite losses fail clearly; multi-GPU configs are well formed.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
import yaml
from algorithms_helpers import make_cell

from oxstudy.algorithms import registry
from oxstudy.errors import SpecError
from oxstudy.selfplay import exact_match_reward, prepare_data
from oxstudy.training import (
    NonFiniteLossError,
    accelerate_config,
    accelerate_launch_command,
    build_config,
    deepspeed_zero3_config,
    num_processes,
    shared_arguments,
    train_cell,
    write_accelerate_config,
)

# No weight decay in these runs: with it, AdamW moves the weights even at zero gradient and a
# "weights changed" check could not fail.
TRAINING = {"weight_decay": 0.0, "max_completion_length": 24, "max_length": 96}
DATA = {"train_size": 8, "preference": {"samples_per_prompt": 4, "max_new_tokens": 48}}


pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def selfplay_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("selfplay")


@pytest.fixture(scope="module")
def base_weights(zoo_tiny):
    from transformers import AutoModelForCausalLM

    return {k: v.clone() for k, v in AutoModelForCausalLM.from_pretrained(zoo_tiny).state_dict().items()}


def brevity_reward(completions, **kwargs):
    """Shorter is better: gives every GRPO group reward variance even when the tiny model
    solves nothing, so the policy gradient is non-zero."""
    return [-len(str(c)) / 100 for c in completions]


REWARDS = [exact_match_reward, brevity_reward]


def cell_for(method, **kwargs):
    training = {**TRAINING, **kwargs.pop("training", {})}
    data = {**DATA, **kwargs.pop("data", {})}
    return make_cell(method, training=training, data=data, **kwargs)


def run(method, zoo_tiny, tmp_path, selfplay_cache, **kwargs):
    cell = cell_for(method, **kwargs)
    data = prepare_data(cell, zoo_tiny, cache_dir=selfplay_cache)
    return train_cell(cell, model_path=zoo_tiny, output_dir=tmp_path, data=data, reward_funcs=REWARDS)


def changed(model, base_weights):
    state = model.state_dict()
    return any(not torch.equal(state[k], v) for k, v in base_weights.items() if k in state)


@pytest.mark.slow
@pytest.mark.parametrize("method", registry.names())
def test_every_method_trains(method, zoo_tiny, tmp_path, selfplay_cache, base_weights):
    steps = []
    # tr-dpo must sync its reference within the run (a 2-step run with the paper's 512 is refused).
    cell = cell_for(method, hyperparameters={"ref_model_sync_steps": 1} if method == "tr-dpo" else None)
    data = prepare_data(cell, zoo_tiny, cache_dir=selfplay_cache)
    result = train_cell(cell, model_path=zoo_tiny, output_dir=tmp_path, data=data, reward_funcs=REWARDS,
                        progress=lambda step, total: steps.append((step, total)))
    assert result.steps == cell.training.max_steps == 2
    assert steps[-1] == (2, 2)
    assert math.isfinite(result.final_loss)
    assert all(math.isfinite(x) for x in result.curves["loss"] if x is not None)
    assert result.curves["step"] == [1, 2] and all(type(s) is int for s in result.curves["step"])
    assert len(result.curves["loss"]) == len(result.curves["reward"]) == len(result.curves["kl"]) == 2
    if method != "psr":  # positive-only reinforcement has no signal while the tiny model solves nothing
        assert changed(result.model, base_weights), f"{method}: weights did not change"
    assert result.method == method
    json.dumps({"curves": result.curves, "config": result.config}, allow_nan=False)  # goes into the store


@pytest.mark.slow
@pytest.mark.parametrize("method", ["dpo", "grpo"])
def test_same_cell_and_seed_reproduce_metrics(method, zoo_tiny, tmp_path, selfplay_cache):
    first = run(method, zoo_tiny, tmp_path / "a", selfplay_cache)
    second = run(method, zoo_tiny, tmp_path / "b", selfplay_cache)
    assert first.curves == second.curves
    assert first.final_loss == second.final_loss
    a, b = first.model.state_dict(), second.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    third = run(method, zoo_tiny, tmp_path / "c", selfplay_cache, seed=1)
    assert third.curves["loss"] != first.curves["loss"]  # the seed matters


SHARED_FIELDS = [
    "learning_rate", "num_train_epochs", "max_steps", "per_device_train_batch_size",
    "gradient_accumulation_steps", "warmup_steps", "lr_scheduler_type", "adam_beta1", "adam_beta2",
    "adam_epsilon", "weight_decay", "seed", "data_seed", "optim", "bf16", "fp16", "use_cpu",
    "gradient_checkpointing", "report_to", "dataloader_num_workers", "logging_steps",
]


def test_methods_in_one_study_receive_identical_shared_settings(tmp_path):
    from oxstudy.plan import plan
    from oxstudy.spec import StudySpec

    methods = ["sft", "dpo", "rdpo", "simpo", "orpo", "kto", "grpo", "rloo", "online-dpo"]
    spec = StudySpec.model_validate({
        "name": "shared", "models": [{"id": "tiny", "source": "zoo:tiny"}],
        "algorithms": [{"id": m.replace("-", "_"), "method": m} for m in methods],
        "seeds": [3], "training": {"learning_rate": 2e-5, "lr_scheduler": "linear", "warmup_ratio": 0.2,
                                   "effective_batch_size": 16, "per_device_batch_size": 4, "beta": 0.3,
                                   "adam_beta2": 0.99, "max_length": 200, "max_completion_length": 50},
        "benchmarks": [{"id": "arith", "task": "oxs_arith"}],
    })
    configs = {cell.algorithm.method: build_config(cell, tmp_path / cell.algorithm.id, device="cpu")
               for cell in plan(spec)}
    assert sorted(configs) == sorted(methods)
    reference = configs["dpo"]
    for method, config in configs.items():
        for name in SHARED_FIELDS:
            assert getattr(config, name) == getattr(reference, name), (method, name)
        if hasattr(config, "max_length") and method not in ("grpo", "rloo"):
            assert config.max_length == 200, method
        if registry.get(method).family == "offline-preference" or method == "online-dpo":
            assert config.beta == 0.3, method
    assert reference.gradient_accumulation_steps == 4
    assert reference.learning_rate == 2e-5 and reference.warmup_steps == 0.2
    assert configs["grpo"].max_completion_length == 50
    assert configs["online-dpo"].max_new_tokens == 50
    assert configs["grpo"].beta == registry.get("grpo").defaults["beta"]  # KL coefficient, not training.beta


@pytest.mark.slow
@pytest.mark.parametrize("method", ["dpo", "rdpo", "sft", "kto", "orpo", "grpo"])
def test_lora_run_produces_an_adapter_matching_the_merged_model(method, zoo_tiny, tmp_path, selfplay_cache,
                                                                base_weights):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    result = run(method, zoo_tiny, tmp_path, selfplay_cache, finetune="lora", training={"learning_rate": 5e-2})
    assert result.adapter_dir is not None
    assert not hasattr(result.model, "peft_config")  # merged: a plain causal LM for evaluation
    assert changed(result.model, base_weights)
    adapted = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(zoo_tiny), result.adapter_dir)
    ids = result.tokenizer("3 + 4 = 7", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert torch.allclose(adapted(ids).logits, result.model(ids).logits, atol=1e-4)
    assert adapted.peft_config["default"].r == 4


@pytest.mark.slow
def test_non_finite_loss_fails_clearly(zoo_tiny, tmp_path, selfplay_cache):
    with pytest.raises(NonFiniteLossError, match="non-finite training loss"):
        run("odpo", zoo_tiny, tmp_path, selfplay_cache, hyperparameters={"offset": float("nan")})


def test_invalid_settings_fail_before_training(tmp_path):
    with pytest.raises(SpecError, match="effective_batch_size"):
        build_config(cell_for("dpo", training={"effective_batch_size": 6}), tmp_path, device="cpu")
    with pytest.raises(SpecError, match="num_generations = 3"):
        build_config(cell_for("grpo", hyperparameters={"num_generations": 3}), tmp_path, device="cpu")
    with pytest.raises(SpecError, match="training.beta"):
        build_config(cell_for("dpo", hyperparameters={"beta": 0.5}), tmp_path, device="cpu")
    from oxstudy.errors import ResourceError

    with pytest.raises(ResourceError, match="needs a GPU"):
        build_config(cell_for("dpo", training={"precision": "bf16"}), tmp_path, device="cpu")
    with pytest.raises(SpecError, match="finetune: method 'tr-dpo'"):
        build_config(cell_for("tr-dpo", finetune="lora"), tmp_path, device="cpu")
    with pytest.raises(ResourceError, match="vLLM"):
        build_config(cell_for("grpo", hyperparameters={"use_vllm": True}), tmp_path, device="cpu")


def test_gpu_configs_use_bf16(tmp_path):
    # (A TRL config with bf16 cannot be instantiated on a CPU-only machine: check the arguments.)
    arguments = shared_arguments(cell_for("dpo").training, seed=0, output_dir=tmp_path, device="cuda")
    assert arguments["bf16"] and not arguments["fp16"] and "use_cpu" not in arguments
    cpu = shared_arguments(cell_for("dpo").training, seed=0, output_dir=tmp_path, device="cpu")
    assert not cpu["bf16"] and not cpu["fp16"] and cpu["use_cpu"]


def test_multi_gpu_accelerate_deepspeed_config(tmp_path):
    cell = cell_for("grpo", gpus_per_run=2, training={"effective_batch_size": 16, "per_device_batch_size": 4})
    config = accelerate_config(cell)
    assert config["distributed_type"] == "DEEPSPEED"
    assert config["num_processes"] == 2
    assert config["deepspeed_config"]["zero_stage"] == 3
    assert config["mixed_precision"] == "bf16"
    path = write_accelerate_config(cell, tmp_path / "accelerate.yaml")
    assert yaml.safe_load(path.read_text()) == config
    zero3 = deepspeed_zero3_config(cell)
    assert zero3["zero_optimization"]["stage"] == 3 and zero3["bf16"]["enabled"]
    # Two processes share the effective batch: accumulation halves.
    arguments = shared_arguments(cell.training, seed=0, output_dir=tmp_path, device="cuda",
                                 processes=num_processes(cell))
    assert arguments["gradient_accumulation_steps"] == 2
    with pytest.raises(SpecError, match="gpus_per_run"):
        accelerate_config(cell_for("grpo", gpus_per_run=1))
    command = accelerate_launch_command(cell, path, ["-m", "oxstudy.worker", "cell.json"])
    assert command[:3] == ["accelerate", "launch", "--config_file"] and command[3] == str(path)
    assert command[command.index("--num_processes") + 1] == "2" and command[-1] == "cell.json"


def test_tr_dpo_counts_epoch_based_steps_when_the_trainer_is_built(zoo_tiny, tmp_path):
    """Without max_steps the step count is known only once the data is batched: 4 pairs, batch 2,
    1 epoch = 2 optimizer steps, so the paper's tau = 512 is refused and tau = 1 accepted."""
    from oxstudy.algorithms.preference import planned_optimizer_steps
    from oxstudy.selfplay import TrainingData
    from oxstudy.tasks import task_split
    from oxstudy.training import build_trainer

    examples = task_split("oxs_arith", "train", 4)
    pairs = [{"prompt": e["prompt"], "chosen": e["solution"], "rejected": "#### 0", "answer": e["answer"]}
             for e in examples]
    data = TrainingData(gold=examples, sp_rft=examples, pairs=pairs, unpaired=[], prompts=[])
    training = {"epochs": 1, "per_device_batch_size": 2, "effective_batch_size": 2, "max_steps": None}
    with pytest.raises(SpecError, match=r"algorithms\[tr-dpo\].hyperparameters: .*but this run takes 2: .*equal dpo"):
        build_trainer(cell_for("tr-dpo", training=training), model_path=zoo_tiny, output_dir=tmp_path / "a", data=data)
    run = build_trainer(cell_for("tr-dpo", training=training, hyperparameters={"ref_model_sync_steps": 1}),
                        model_path=zoo_tiny, output_dir=tmp_path / "b", data=data)
    assert planned_optimizer_steps(run.trainer) == 2
    run.trainer.train()
    assert run.trainer.state.global_step == 2  # the count the check used is the one transformers runs


def test_evaluations_during_training_record_a_curve_and_leave_training_unchanged(zoo_tiny, tmp_path, selfplay_cache):
    """measure.eval_every: in-domain accuracy every N steps lands in the run's regime block, and the
    trained weights are bit-identical to the same run without it. GRPO samples its completions from
    torch's global RNG, which lm-eval reseeds: without restoring it the second generation batch (a
    batch per step here) and so the weights would differ."""
    from oxstudy.spec import BenchmarkSpec, MeasureSpec

    bench = BenchmarkSpec(id="arith", task="oxs_arith", in_domain=True, limit=4)
    results = {}
    for every in (0, 1):
        cell = cell_for("grpo", hyperparameters={"optimizer_steps_per_generation": 1},
                        training={"max_steps": 3}).model_copy(
            update={"benchmarks": [bench], "measure": MeasureSpec(eval_every=every, anatomy=False)})
        data = prepare_data(cell, zoo_tiny, cache_dir=selfplay_cache)
        results[every] = train_cell(cell, model_path=zoo_tiny, output_dir=tmp_path / str(every), data=data,
                                    reward_funcs=REWARDS)
    curve = results[1].regime["eval_curve"]
    assert [(p["step"], p["benchmark"]) for p in curve] == [(1, "arith"), (2, "arith")]  # the last step: the run's own eval
    assert all(0.0 <= p["value"] <= 1.0 for p in curve)
    assert "eval_curve" not in results[0].regime
    trained, plain = results[1].model.state_dict(), results[0].model.state_dict()
    assert all(torch.equal(trained[k], plain[k]) for k in plain)


def test_evaluations_during_training_are_refused_for_lora_with_a_location():
    from oxstudy.spec import load_spec_data

    with pytest.raises(SpecError, match=r"measure.eval_every: evaluations during training need full fine-tuning"):
        load_spec_data({
            "name": "lora-curve", "models": [{"id": "tiny", "source": "zoo:tiny", "finetune": "lora"}],
            "algorithms": [{"id": "GRPO", "method": "grpo"}], "seeds": [1],
            "data": {"source": "task:oxs_arith", "train_size": 8},
            "benchmarks": [{"id": "arith", "task": "oxs_arith", "in_domain": True}],
            "measure": {"eval_every": 2},
        })
