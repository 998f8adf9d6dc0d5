"""Sample-polarity RL (PSR / NSR / W-REINFORCE, Zhu et al. 2025, arXiv:2506.01347).

Advantages on hand-made groups against the paper's weights written out here; the loss TRL computes
with those advantages against an independent autograd REINFORCE gradient; and the trainer's own
advantage hook on a real generation batch of the tiny zoo model.
"""

from __future__ import annotations

import pytest
import torch

from oxstudy.algorithms import registry
from oxstudy.algorithms.polarity import method_weights, polarity_advantages
from tests.algorithms_helpers import make_cell

#: every polarity method is tested here (tests/test_algorithms_losses.py counts them as covered)
POLARITY_METHODS = ["psr", "nsr", "w-reinforce"]

REWARDS = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.0, float("nan")])


def paper_advantage(reward: float, method: str, lam: float = 0.1) -> float:
    """Zhu et al.: PSR reinforces r=+1 samples, NSR penalises r=-1 samples, W-REINFORCE = lam PSR + NSR."""
    if reward != reward:  # unscorable
        return 0.0
    correct = reward == 1.0
    if method == "psr":
        return 1.0 if correct else 0.0
    if method == "nsr":
        return 0.0 if correct else -1.0
    return lam if correct else -1.0


@pytest.mark.parametrize("method", POLARITY_METHODS)
def test_advantages_follow_the_paper(method):
    positive, negative = method_weights(method, registry.resolve_hyperparameters(method))
    got = polarity_advantages(REWARDS, positive, negative).tolist()
    assert got == pytest.approx([paper_advantage(r, method) for r in REWARDS.tolist()])


def test_w_reinforce_lambda_is_a_hyperparameter():
    positive, negative = method_weights("w-reinforce", {"polarity_lambda": 0.3})
    assert polarity_advantages(torch.tensor([1.0, 0.0]), positive, negative).tolist() == pytest.approx(
        [0.3, -1.0]
    )
    assert "polarity_lambda" in registry.allowed_hyperparameters("w-reinforce")
    assert registry.validate_hyperparameters("nsr", {"loss_type": "grpo"})  # fixed: REINFORCE's token mean


@pytest.fixture(scope="module")
def nsr_trainer(zoo_tiny, tmp_path_factory):
    from oxstudy.selfplay import prepare_data
    from oxstudy.training import build_trainer

    cell = make_cell(
        "w-reinforce",
        hyperparameters={"num_generations": 2, "polarity_lambda": 0.25},
        training={"effective_batch_size": 4, "per_device_batch_size": 4, "max_completion_length": 8},
    )
    data = prepare_data(cell, zoo_tiny)
    scripted = [1.0, 0.0, 0.0, 0.0]  # the verifier's verdicts for the 4 completions of the next batch

    def scripted_reward(completions, **kwargs):
        return scripted[: len(completions)]

    run = build_trainer(
        cell,
        model_path=zoo_tiny,
        output_dir=tmp_path_factory.mktemp("nsr"),
        data=data,
        device="cpu",
        reward_funcs=[scripted_reward],
    )
    return run.trainer, scripted


def test_trainer_replaces_grpo_advantages_with_polarity_weights(nsr_trainer):
    trainer, scripted = nsr_trainer
    dataset = trainer.train_dataset
    batch = [dataset[0], dataset[0], dataset[1], dataset[1]]  # 2 prompts x num_generations 2
    trainer.model.train()
    output = trainer._generate_and_score_completions(batch)
    expected = [paper_advantage(r, "w-reinforce", lam=0.25) for r in scripted]
    # GRPO's group-normalised advantages would be (+1, -1, 0, 0) here.
    assert output["advantages"].tolist() == pytest.approx(expected)


def test_loss_gradient_is_the_reinforce_gradient(nsr_trainer):
    trainer, _ = nsr_trainer
    model = trainer.model
    model.eval()  # eval mode: no gradient-accumulation scaling of TRL's loss
    torch.manual_seed(0)
    prompt_ids = torch.randint(3, 200, (4, 5))
    completion_ids = torch.randint(3, 200, (4, 6))
    prompt_mask = torch.ones_like(prompt_ids)
    completion_mask = torch.tensor([[1] * 6, [1] * 4 + [0] * 2, [1] * 5 + [0], [1] * 3 + [0] * 3])
    advantages = polarity_advantages(torch.tensor([1.0, 0.0, 0.0, 1.0]), 0.25, 1.0)
    inputs = {
        "prompt_ids": prompt_ids,
        "prompt_mask": prompt_mask,
        "completion_ids": completion_ids,
        "completion_mask": completion_mask,
        "advantages": advantages,
    }

    model.zero_grad()
    trl_loss = trainer._compute_loss(model, inputs)
    trl_loss.backward()
    trl_grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]

    # Independent reference: -sum_{i,t} A_i log pi(o_it) / sum_i |o_i|
    model.zero_grad()
    ids = torch.cat([prompt_ids, completion_ids], dim=1)
    mask = torch.cat([prompt_mask, completion_mask], dim=1)
    logits = model(input_ids=ids, attention_mask=mask).logits[:, prompt_ids.shape[1] - 1 : -1]
    logp = torch.log_softmax(logits.float(), dim=-1).gather(-1, completion_ids.unsqueeze(-1)).squeeze(-1)
    reference = -(advantages.unsqueeze(1) * logp * completion_mask).sum() / completion_mask.sum()
    reference.backward()
    ref_grads = [p.grad.clone() for p in model.parameters() if p.grad is not None]

    # On-policy the ratio is exp(logp - sg(logp)) = 1: TRL's loss *value* is -sum A m / sum m, and
    # its gradient is the REINFORCE gradient of the reference.
    surrogate = -(advantages.unsqueeze(1) * completion_mask).sum() / completion_mask.sum()
    assert trl_loss.item() == pytest.approx(surrogate.item(), rel=1e-6)
    assert len(trl_grads) == len(ref_grads) > 0
    for got, want in zip(trl_grads, ref_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
