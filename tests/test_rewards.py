"""Reward variants (oxstudy/rewards.py) on hand-made completions, and a few-step run of every
reward and polarity variant, plus a curriculum, on the smallest zoo model."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from oxstudy.rewards import reward_functions
from oxstudy.spec import RewardSpec

ANSWERS = ["13", "13", "13", "7"]
COMPLETIONS = [
    "5 + 8 = 13\n#### 13",
    "5 + 8 = 12\n#### 12",
    "I think thirteen",
    [{"role": "assistant", "content": "#### 7"}],
]
PROMPTS = [[{"role": "user", "content": "Ben has 5 coins..."}]] * 3 + [[{"role": "user", "content": "3+4?"}]]


def call(kind, **settings):
    functions = reward_functions(RewardSpec(kind=kind, **settings))
    return [f(prompts=PROMPTS, completions=COMPLETIONS, answer=ANSWERS) for f in functions], functions


def test_exact_format_and_incorrect_on_hand_made_completions():
    assert call("exact_match")[0] == [[1.0, 0.0, 0.0, 1.0]]
    assert call("format")[0] == [[1.0, 1.0, 0.0, 1.0]]
    # Spurious-rewards "incorrect": 1 only for a parseable, wrong final answer.
    assert call("incorrect")[0] == [[0.0, 1.0, 0.0, 0.0]]
    values, functions = call("exact_match", format_weight=0.5)
    assert values == [[1.0, 0.0, 0.0, 1.0], [0.5, 0.5, 0.0, 0.5]]
    assert [f.__name__ for f in functions] == ["exact_match_reward", "format_reward"]
    assert functions[0].scored == 4


def distinct_completions(n):
    prompts = [[{"role": "user", "content": f"q{i % 7}"}] for i in range(n)]
    completions = [f"attempt {i}\n#### {i % 3}" for i in range(n)]
    return prompts, completions, ["0"] * n


def test_random_reward_is_bernoulli_p_reproducible_and_blind_to_correctness():
    prompts, completions, answers = distinct_completions(4000)
    f = reward_functions(RewardSpec(kind="random", p=0.3, seed=7))[0]
    values = f(prompts=prompts, completions=completions, answer=answers)
    assert f(prompts=prompts, completions=completions, answer=answers) == values  # re-runs reproduce
    other = reward_functions(RewardSpec(kind="random", p=0.3, seed=8))[0](
        prompts=prompts, completions=completions
    )
    assert other != values
    ones = int(sum(values))
    assert stats.binomtest(ones, len(values), 0.3).pvalue > 1e-3
    correct = [c.endswith("#### 0") for c in completions]
    rate_correct = sum(v for v, c in zip(values, correct, strict=True) if c) / sum(correct)
    rate_wrong = sum(v for v, c in zip(values, correct, strict=True) if not c) / (len(values) - sum(correct))
    assert abs(rate_correct - rate_wrong) < 0.06


def test_noisy_reward_flips_ground_truth_with_probability_q():
    prompts, completions, answers = distinct_completions(4000)
    truth = reward_functions(RewardSpec())[0](prompts=prompts, completions=completions, answer=answers)
    for q in (0.0, 1.0):
        noisy = reward_functions(RewardSpec(kind="noisy", q=q))[0](
            prompts=prompts, completions=completions, answer=answers
        )
        assert noisy == (truth if q == 0.0 else [1.0 - t for t in truth])
    noisy = reward_functions(RewardSpec(kind="noisy", q=0.2, seed=3))[0](
        prompts=prompts, completions=completions, answer=answers
    )
    flips = sum(a != b for a, b in zip(noisy, truth, strict=True))
    assert stats.binomtest(flips, len(truth), 0.2).pvalue > 1e-3


# ----------------------------------------------------------------------------- integration

VARIANTS = [
    ("grpo", {"kind": "format"}),
    ("grpo", {"kind": "random", "p": 0.5}),
    ("grpo", {"kind": "noisy", "q": 0.3}),
    ("grpo", {"kind": "incorrect"}),
    ("psr", {"kind": "random", "p": 0.5}),
    ("nsr", {"kind": "exact_match"}),
    ("w-reinforce", {"kind": "exact_match"}),
]


@pytest.mark.slow
def test_every_reward_and_polarity_variant_trains_and_records(zoo_tiny, tmp_path):
    """Two GRPO steps per variant on zoo:tiny: the cell's reward is the one used (TRL logs it by name),
    every completion is scored, weights move and the record's regime fields are filled."""
    import torch
    from transformers import AutoModelForCausalLM

    from oxstudy.selfplay import prepare_data
    from oxstudy.training import train_cell
    from tests.algorithms_helpers import make_cell

    torch.set_num_threads(1)
    base = AutoModelForCausalLM.from_pretrained(zoo_tiny).state_dict()
    for method, reward in VARIANTS:
        cell = make_cell(
            method,
            hyperparameters={"num_generations": 2},
            training={"max_completion_length": 16, "weight_decay": 0.0},
            data={"reward": reward, "train_size": 8},
        )
        data = prepare_data(cell, zoo_tiny)
        result = train_cell(
            cell, model_path=zoo_tiny, output_dir=tmp_path / f"{method}-{reward['kind']}", data=data
        )
        label = f"{method}/{reward['kind']}"
        assert result.steps == 2, label
        assert all(math.isfinite(x) for x in result.curves["loss"] if x is not None), label
        assert result.regime["reward"]["kind"] == reward["kind"], label
        # 4 completions per optimizer step; one generation batch feeds optimizer_steps_per_generation
        # steps (grpo: 4 by default, off-policy; the polarity methods: 1), so 2 steps score
        # ceil(2 / k) generation batches of k x 4 completions
        per_generation = result.config["steps_per_generation"] // result.config["gradient_accumulation_steps"]
        assert result.regime["completions_scored"] == math.ceil(2 / per_generation) * per_generation * 4, label
        name = {"format": "format_reward"}.get(reward["kind"], f"{reward['kind']}_reward")
        assert any(key.startswith(f"rewards/{name}") for key in result.curves), (label, sorted(result.curves))
        if method != "psr":  # PSR on a model that solves nothing may have no positive sample
            state = result.model.state_dict()
            moved = any(not torch.equal(state[k], v) for k, v in base.items() if k in state)
            # GRPO's advantage is the reward minus its group mean: when every group's completions
            # score alike (TRL logs frac_reward_zero_std = 1) there is no gradient (beta 0, no weight
            # decay) and the weights must stay exactly where they were; otherwise they must move.
            zero_spread = [x for x in result.curves.get("frac_reward_zero_std", []) if x is not None]
            if method == "grpo" and zero_spread and all(x == 1.0 for x in zero_spread):
                assert not moved, (label, "moved without a reward spread in any group")
            else:
                assert moved, label


@pytest.mark.slow
def test_trainer_consumes_the_curriculum_order(zoo_tiny, tmp_path):
    """GRPO with a staged curriculum: the prompts the reward function sees, in call order, are the
    curriculum's (TRL's shuffling is off), and the stages' step count is the steps taken."""
    from oxstudy.selfplay import prepare_data
    from oxstudy.tasks import task_split
    from oxstudy.training import train_cell
    from tests.algorithms_helpers import make_cell

    curriculum = {
        "stages": [{"where": {"level": 1}, "steps": 2}, {"where": {"level": 3}, "steps": 1}],
        "seed": 4,
    }
    cell = make_cell(
        "grpo",
        hyperparameters={"num_generations": 2},
        training={"max_completion_length": 8},
        data={"curriculum": curriculum, "train_size": 24},
    )
    data = prepare_data(cell, zoo_tiny)
    # 3 steps x 2 prompts, padded to whole generation batches (grpo: 4 optimizer steps x 2 prompts)
    assert data.selection["prompts_per_step"] == 2 and len(data.prompts) == 8
    seen: list[str] = []

    def recording_reward(prompts, completions, **kwargs):
        seen.extend(p[-1]["content"] for p in prompts)
        return [0.0] * len(completions)

    result = train_cell(
        cell, model_path=zoo_tiny, output_dir=tmp_path, data=data, reward_funcs=[recording_reward]
    )
    assert result.steps == 3
    consumed = seen[::2]  # each prompt is repeated num_generations = 2 times in a row
    assert seen[1::2] == consumed
    assert consumed == [p["prompt"] for p in data.prompts]
    level = {r["prompt"]: r["difficulty"]["steps"] for r in task_split("oxs_arith", "train")[:24]}
    assert [level[p] for p in consumed] == [1, 1, 1, 1, 3, 3, 3, 3]  # the last stage pads the batch

    # One-shot RL: a single example is repeated to one sampler batch (TRL drops an incomplete batch,
    # which would leave zero steps), and training takes its steps on that one prompt.
    one_shot = make_cell(
        "grpo",
        hyperparameters={"num_generations": 2},
        training={"max_completion_length": 8},
        data={"select": {"size": 1, "rule": "indices", "indices": [5]}, "train_size": 24},
    )
    data = prepare_data(one_shot, zoo_tiny)
    assert data.selection["examples"] == 1 and data.selection["repeated_to"] == 8  # one generation batch
    seen.clear()
    result = train_cell(
        one_shot,
        model_path=zoo_tiny,
        output_dir=tmp_path / "one-shot",
        data=data,
        reward_funcs=[recording_reward],
    )
    assert result.steps == 2 and set(seen) == {task_split("oxs_arith", "train")[5]["prompt"]}
