"""The GRPO family through TRL's real GRPOTrainer on zoo:tiny, with fixed generations and rewards.

Every trainer is the one oxstudy trains the method with (``oxstudy.training.build_trainer``), and
every loss is computed by ``trainer.compute_loss`` on a generation batch scored by
``trainer._generate_and_score_completions`` (TRL's rewards, advantages and old log-probs). Only
the sampled completions are fixed: they are generated once and replayed to every trainer, so all
variants see the same batch.

What the tests establish:

- **Default (off-policy) regime**: one generation batch feeds ``optimizer_steps_per_generation``
  optimizer steps, so TRL keeps the sampling policy's log-probs. After the policy moves (the same
  move for every variant), the variants' gradients on the same micro-batch differ pairwise:
  grpo, sgrpo, gspo, cispo, dr-grpo, dapo and sapo are seven different objectives.
- **On-policy regime** (``optimizer_steps_per_generation: 1``, TRL's default): no old log-probs
  are computed, the ratio is identically 1 and the clips are inert. Then, on one micro-batch and
  with beta 0, grpo = gspo = sapo (per-sequence token mean of -A log pi: the sequence ratio's and
  the soft gate's derivatives at 1 are those of the token ratio) and sgrpo = cispo = dapo without
  its reward shaping (all three divide the token sum by the micro-batch's token count). dr-grpo
  stays apart (no std scaling of the advantages, constant normaliser). This is the collapse the
  off-policy default removes.
- **Value and gradient against the formulas**: on the off-policy batch each variant's loss and
  its gradient with respect to every model parameter equal those of the paper's formula written
  out here, evaluated on per-token log-probs from an independent forward pass of the model.
"""

from __future__ import annotations

import itertools

import pytest
import torch
from algorithms_helpers import make_cell

from oxstudy.algorithms import registry
from oxstudy.selfplay import TrainingData
from oxstudy.training import build_trainer

VARIANTS = ["grpo", "sgrpo", "gspo", "cispo", "dr-grpo", "dapo", "sapo"]
GROUP = 4
MICRO = 8  # completions per micro-batch (2 groups); gradient accumulation 1
STEPS_PER_GENERATION = 2  # > 1: off-policy mini-batching (the registry default is 4; 2 keeps this fast)
WHOLE_BATCH = {"effective_batch_size": STEPS_PER_GENERATION * MICRO, "per_device_batch_size": STEPS_PER_GENERATION * MICRO}
TRAINING = {"effective_batch_size": MICRO, "per_device_batch_size": MICRO, "max_completion_length": 16,
            "max_length": 128, "max_steps": 4}


pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def data():
    from oxstudy.tasks import task_split

    examples = task_split("oxs_arith", "train", 8)
    return TrainingData(gold=[], sp_rft=[], pairs=[], unpaired=[],
                        prompts=[{"prompt": e["prompt"], "answer": e["answer"]} for e in examples])


def fixed_reward(completion_ids, **kwargs):
    """A deterministic reward with spread inside every group (the untrained model solves nothing)."""
    return [float((len(ids) * 37 + sum(ids)) % 11) / 10 for ids in completion_ids]


def trainer_for(method, zoo_tiny, data, tmp_path, training=None, **hyperparameters):
    cell = make_cell(method, hyperparameters=hyperparameters, training={**TRAINING, **(training or {})})
    trainer = build_trainer(cell, model_path=zoo_tiny, output_dir=tmp_path / method, data=data,
                            reward_funcs=[fixed_reward]).trainer
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1  # as inside Trainer.train
    return trainer


@pytest.fixture(scope="module")
def replay(zoo_tiny, data, tmp_path_factory):
    """Completions sampled once from zoo:tiny, replayed to every trainer (fixed generations)."""
    trainer = trainer_for("grpo", zoo_tiny, data, tmp_path_factory.mktemp("gen"))
    rows = [{"prompt": [{"role": "user", "content": r["prompt"]}], "answer": r["answer"]}
            for r in data.prompts[: STEPS_PER_GENERATION * MICRO // GROUP] for _ in range(GROUP)]
    torch.manual_seed(0)
    generated = trainer._generate([r["prompt"] for r in rows])
    return rows, generated


def move_policy(model, seed=0, scale=0.06):
    """The same policy move for every variant (standing in for the generation batch's first
    optimizer step), so that later micro-batches are off-policy and differences come from the
    losses alone."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            noise = torch.randn(parameter.shape, generator=generator)
            parameter.add_(scale * noise * parameter.std().clamp(min=1e-3))


def scored_batch(trainer, replay):
    rows, generated = replay
    trainer._generate = lambda prompts: generated
    return trainer._generate_and_score_completions(rows)


def later_micro_batch(batch):
    from trl.trainer.utils import split_tensor_dict

    return split_tensor_dict(batch, STEPS_PER_GENERATION)[1]


def gradient(trainer, inputs):
    trainer.model.zero_grad()
    loss = trainer.compute_loss(trainer.model, inputs)
    loss.backward()
    grads = [p.grad.flatten() for p in trainer.model.parameters() if p.grad is not None]
    return float(loss.detach()), torch.cat(grads).clone()


def relative_gap(a, b):
    assert a.norm() > 0 or b.norm() > 0, "both gradients are zero: the comparison would be vacuous"
    return float((a - b).norm() / torch.maximum(a.norm(), b.norm()))


@pytest.fixture(scope="module")
def off_policy(zoo_tiny, data, replay, tmp_path_factory):
    """Per variant: (trainer, micro-batch, loss, gradient) at the moved policy, default regime."""
    out = {}
    for method in VARIANTS:
        # zoo:tiny never stops within 16 tokens: DAPO's truncation masking would zero the whole batch.
        extra = {"mask_truncated_completions": False} if method == "dapo" else {}
        trainer = trainer_for(method, zoo_tiny, data, tmp_path_factory.mktemp(method),
                              optimizer_steps_per_generation=STEPS_PER_GENERATION, **extra)
        batch = scored_batch(trainer, replay)
        assert "old_per_token_logps" in batch, method  # off-policy: TRL keeps the sampler's log-probs
        move_policy(trainer.model)
        inputs = later_micro_batch(batch)
        loss, grad = gradient(trainer, inputs)
        out[method] = (trainer, inputs, loss, grad)
    return out


@pytest.mark.slow
def test_default_is_off_policy_and_variants_differ_pairwise(off_policy):
    for a, b in itertools.combinations(VARIANTS, 2):
        gap = relative_gap(off_policy[a][3], off_policy[b][3])
        assert gap > 1e-3, f"{a} and {b} give the same gradient (relative gap {gap:.2e})"
    # The move put ratios outside the clip range: the clips are live.
    trainer, inputs, _, _ = off_policy["grpo"]
    with torch.no_grad():
        logps = policy_logps(trainer.model, inputs)
    ratio = torch.exp(logps - inputs["old_per_token_logps"])[inputs["completion_mask"].bool()]
    assert ((ratio - 1).abs() > 0.2).any() and ((ratio - 1).abs() < 0.2).any()


@pytest.mark.slow
def test_on_policy_regime_collapses_the_family(zoo_tiny, data, replay, tmp_path):
    grads = {}
    for method in VARIANTS:
        extra = {"beta": 0.0} if method == "grpo" else {}
        if method == "dapo":  # the loss alone: no reward shaping, no truncation masking
            extra = {"overlong_buffer_ratio": 0.0, "mask_truncated_completions": False}
        # one micro-batch = the whole generation batch (TRL's default steps_per_generation)
        trainer = trainer_for(method, zoo_tiny, data, tmp_path / method, training=WHOLE_BATCH,
                              optimizer_steps_per_generation=1, **extra)
        batch = scored_batch(trainer, replay)
        assert "old_per_token_logps" not in batch  # ratio == 1: every clip is inert
        grads[method] = gradient(trainer, batch)[1]
    for a, b in [("grpo", "gspo"), ("grpo", "sapo"), ("sgrpo", "cispo"), ("sgrpo", "dapo")]:
        assert relative_gap(grads[a], grads[b]) < 1e-5, (a, b)
    for a, b in [("grpo", "sgrpo"), ("grpo", "dr-grpo"), ("sgrpo", "dr-grpo")]:
        assert relative_gap(grads[a], grads[b]) > 1e-3, (a, b)


# ----------------------------------------------------------------------------- formulas


def policy_logps(model, inputs):
    """Per-token log pi(o_t | x, o_<t) of the completion, from a plain forward pass."""
    ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], 1)
    mask = torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], 1)
    logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1]
    width = inputs["completion_ids"].size(1)
    logits = logits[:, -width:]
    return torch.log_softmax(logits.float(), -1).gather(-1, inputs["completion_ids"][..., None])[..., 0]


def clipped(ratio, adv, low, high):
    return -torch.minimum(ratio * adv, torch.clamp(ratio, 1 - low, 1 + high) * adv)


def formula_loss(method, hp, logps, inputs, tokens_per_micro_batch):
    """The paper's objective on one micro-batch, written out independently of TRL."""
    m = inputs["completion_mask"].float()
    old = inputs["old_per_token_logps"]
    adv = inputs["advantages"][:, None]
    ratio = torch.exp(logps - old)
    eps, eps_high = hp.get("epsilon"), hp.get("epsilon_high", hp.get("epsilon"))
    if method == "gspo":  # sequence-level ratio, per-sequence loss, mean over sequences
        s = torch.exp(((logps - old) * m).sum(1) / m.sum(1))
        return clipped(s, adv[:, 0], eps, eps_high).mean()
    if method == "cispo":  # detached, capped weight times log pi; token sum / tokens per micro-batch
        return (-torch.clamp(ratio, max=eps_high).detach() * adv * logps * m).sum() / tokens_per_micro_batch
    if method == "sapo":  # soft gate, per-sequence token mean
        tau = torch.where(adv > 0, hp["sapo_temperature_pos"], hp["sapo_temperature_neg"])
        per_token = -torch.sigmoid(tau * (ratio - 1)) * 4 / tau * adv
        return ((per_token * m).sum(1) / m.sum(1)).mean()
    per_token = clipped(ratio, adv, eps, eps_high)
    if method == "grpo":  # plus beta * k3 KL to the reference (no IS correction), per-sequence token mean
        ref = inputs["ref_per_token_logps"]
        kl = torch.exp(ref - logps) - (ref - logps) - 1
        return (((per_token + hp["beta"] * kl) * m).sum(1) / m.sum(1)).mean()
    if method == "sgrpo":  # token mean over the micro-batch
        return (per_token * m).sum() / m.sum()
    if method == "dr-grpo":  # constant normaliser G * L_max
        return (per_token * m).sum() / (m.size(0) * TRAINING["max_completion_length"])
    if method == "dapo":  # token sum / tokens per micro-batch of the generation batch
        return (per_token * m).sum() / tokens_per_micro_batch
    raise AssertionError(method)


@pytest.mark.slow
@pytest.mark.parametrize("method", VARIANTS)
def test_loss_and_gradient_match_the_formula(method, off_policy):
    trainer, inputs, loss, grad = off_policy[method]
    hp = registry.resolve_hyperparameters(method)
    assert grad.norm() > 0
    tokens = inputs["num_items_in_batch"] / STEPS_PER_GENERATION
    trainer.model.zero_grad()
    expected = formula_loss(method, hp, policy_logps(trainer.model, inputs), inputs, tokens)
    expected.backward()
    expected_grad = torch.cat([p.grad.flatten() for p in trainer.model.parameters() if p.grad is not None])
    assert loss == pytest.approx(float(expected), rel=1e-4, abs=1e-6), method
    assert relative_gap(grad, expected_grad) < 1e-4, method


@pytest.mark.slow
def test_dapo_overlong_reward_and_dynamic_sampling(zoo_tiny, data, replay, tmp_path):
    from oxstudy.algorithms.online import overlong_penalty

    # Yu et al. 2025, Eq. 13, with L = 16, L_buf = 4: 0 up to 12 tokens, then -1/4 per token.
    shaped = overlong_penalty(16, 0.25)(completions=[""] * 5, completion_ids=[[0] * n for n in (5, 12, 13, 16, 17)])
    assert shaped == [0.0, 0.0, -0.25, -1.0, -1.0]

    shaped_trainer = trainer_for("dapo", zoo_tiny, data, tmp_path / "a", optimizer_steps_per_generation=1)
    assert [getattr(f, "__name__", "") for f in shaped_trainer.reward_funcs] == ["fixed_reward", "overlong_reward"]
    del shaped_trainer

    trainer = trainer_for("dapo", zoo_tiny, data, tmp_path / "b", training=WHOLE_BATCH,
                          optimizer_steps_per_generation=1, overlong_buffer_ratio=0.0)
    rows, generated = replay
    calls = []
    real = trainer._generate

    def generate(prompts):  # the first batch's groups all tie; refills are sampled for real
        calls.append(len(prompts))
        return generated if len(calls) == 1 else real(prompts)

    trainer._generate = generate

    def tie_then_spread(completion_ids, **kwargs):
        return [1.0] * len(completion_ids) if len(calls) == 1 else fixed_reward(completion_ids)

    trainer.reward_funcs[0] = tie_then_spread
    batch = trainer._generate_and_score_completions(rows)
    assert calls == [len(rows), len(rows)]  # every group dropped, all refilled in one round
    assert batch["advantages"].shape == (len(rows),)
    assert (batch["advantages"].view(-1, GROUP).abs().amax(1) > 0).all()
    assert batch["num_items_in_batch"] == batch["completion_mask"].sum()
    assert trainer._metrics["train"]["dynamic_sampling/kept_fraction"][-1] == 0.0


@pytest.mark.slow
def test_rloo_through_the_real_trainer(zoo_tiny, data, replay, tmp_path):
    """RLOO (Ahmadian et al. 2024): A_i = R'_i - mean_{j != i} R'_j with R' = R - beta * sum_t
    (log pi_old - log pi_ref) (the paper's sequence-level KL penalty in the reward); loss
    -mean_i A_i * pi(o_i)/pi_old(o_i), gradient -mean_i A_i grad log pi(o_i) at the sampler."""
    cell = make_cell("rloo", training={**TRAINING, **WHOLE_BATCH})
    trainer = build_trainer(cell, model_path=zoo_tiny, output_dir=tmp_path, data=data,
                            reward_funcs=[fixed_reward]).trainer
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1
    move_policy(trainer.model, scale=0.03)  # policy != reference: the KL penalty is non-zero
    rows, generated = replay
    prompt_ids, completion_ids = generated[0], generated[1]
    trainer._generate = lambda prompts: (prompt_ids, completion_ids, generated[3])
    batch = trainer._generate_and_score_completions(rows)

    with torch.no_grad():
        mask = batch["completion_mask"].float()
        policy = (policy_logps(trainer.model, batch) * mask).sum(1)
        reference = (policy_logps(trainer.ref_model, batch) * mask).sum(1)
    beta = registry.resolve_hyperparameters("rloo")["beta"]
    rewards = torch.tensor(fixed_reward(completion_ids)) - beta * (policy - reference)
    grouped = rewards.view(-1, GROUP)
    baseline = (grouped.sum(1, keepdim=True) - grouped) / (GROUP - 1)
    expected_advantages = (grouped - baseline).view(-1)
    assert torch.allclose(batch["old_logps"], policy, atol=1e-4)
    assert torch.allclose(batch["advantages"], expected_advantages, atol=1e-4)
    assert (policy - reference).abs().max() > 1e-3

    loss, grad = gradient(trainer, batch)
    trainer.model.zero_grad()
    sequence = (policy_logps(trainer.model, batch) * mask).sum(1)
    expected = -(torch.exp(sequence - batch["old_logps"]) * batch["advantages"]).mean()
    expected.backward()
    expected_grad = torch.cat([p.grad.flatten() for p in trainer.model.parameters() if p.grad is not None])
    assert loss == pytest.approx(float(expected), abs=1e-6)
    assert relative_gap(grad, expected_grad) < 1e-4
