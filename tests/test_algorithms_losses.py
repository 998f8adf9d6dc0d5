"""Every method's loss on fixed, hand-made log-probabilities vs the published formula.

Each test builds the real trainer oxstudy trains the method with (TRL's, or oxstudy's loss
override on TRL's DPOTrainer), feeds it hand-made per-token log-probabilities through a
log-probability table standing in for the network's forward pass, and compares the loss the
trainer computes with an independent implementation of the paper's formula written here.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from algorithms_helpers import build_tiny_model, make_cell

from oxstudy.algorithms import registry
from oxstudy.selfplay import TrainingData
from oxstudy.training import build_trainer

BETA = 0.5
PROMPT = 2  # prompt tokens before each completion


pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="module")
def data():
    from oxstudy.tasks import task_split

    examples = task_split("oxs_arith", "train", 4)
    return TrainingData(
        gold=examples, sp_rft=examples,
        pairs=[{"prompt": e["prompt"], "chosen": e["solution"], "rejected": "#### 0", "answer": e["answer"]}
               for e in examples],
        unpaired=[{"prompt": e["prompt"], "completion": e["solution"] if i % 2 else "#### 0", "label": bool(i % 2)}
                  for i, e in enumerate(examples)],
        prompts=[{"prompt": e["prompt"], "answer": e["answer"]} for e in examples],
    )


def trainer_for(method, model_dir, data, tmp_path, hyperparameters=None, **training):
    cell = make_cell(method, hyperparameters=hyperparameters, training={"beta": BETA, **training})
    run = build_trainer(cell, model_path=model_dir, output_dir=tmp_path, data=data)
    run.trainer.model.train()
    return run.trainer


# ----------------------------------------------------------------------------- table model


class LogProbTable(torch.nn.Module):
    """Stands in for the network: returns fixed per-token log-probs for known input ids, with
    the fields of TRL's fused LM head output (log-probs are zero on unlabelled positions)."""

    def __init__(self, entries):
        super().__init__()
        self.entries = entries  # list of (input_ids, log_probs, extras)

    def forward(self, input_ids=None, attention_mask=None, labels=None, fused_lm_head=False, **kwargs):
        for ids, log_probs, extras in self.entries:
            if ids.shape == input_ids.shape and torch.equal(ids, input_ids):
                zeros = torch.zeros_like(log_probs)
                label_mask = (labels[:, 1:] != -100) if labels is not None else torch.ones_like(zeros).bool()
                return SimpleNamespace(log_probs=log_probs * label_mask, entropy=zeros, mean_logits=zeros,
                                       is_top1=zeros.bool(), log_sum_sq_probs=extras.get("sq", zeros),
                                       label_mask=label_mask, aux_loss=None, loss=None)
        raise AssertionError("unexpected input ids")


def completion_mask(lengths, width):
    mask = torch.zeros(len(lengths), width, dtype=torch.long)
    for row, n in enumerate(lengths):
        mask[row, PROMPT:PROMPT + n] = 1
    return mask


def table(rows, width, seed, low=0.05, high=2.5):
    generator = torch.Generator().manual_seed(seed)
    return -(low + (high - low) * torch.rand(rows, width - 1, generator=generator))


CHOSEN_LEN = [4, 2, 3]
REJECTED_LEN = [3, 4, 1]
WIDTH = 7


def pair_batch(seed=0):
    """Hand-made DPO batch: 3 pairs, rows [chosen..., rejected...]."""
    lengths = CHOSEN_LEN + REJECTED_LEN
    mask = completion_mask(lengths, WIDTH)
    ids = torch.randint(5, 100, (6, WIDTH), generator=torch.Generator().manual_seed(seed))
    shift = mask[:, 1:].float()
    policy = table(6, WIDTH, seed + 1) * shift
    ref = table(6, WIDTH, seed + 2) * shift
    sq = table(6, WIDTH, seed + 3, 0.5, 1.5) * shift  # log sum_v p_v^2 (WPO)
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "completion_mask": mask}
    return inputs, policy, ref, sq, shift


def dpo_loss_from_trainer(trainer, seed=0, policy=None):
    inputs, table_policy, ref, sq, _ = pair_batch(seed)
    policy = table_policy if policy is None else policy
    trainer.ref_model = LogProbTable([(inputs["input_ids"], ref, {})])
    model = LogProbTable([(inputs["input_ids"], policy, {"sq": sq})])
    loss = trainer.compute_loss(model, inputs)
    return loss if policy.requires_grad else float(loss)


def sums(seed=0, ld_alpha=None, policy=None):
    _, table_policy, ref, _, shift = pair_batch(seed)
    policy = (table_policy if policy is None else policy) * shift  # only completion tokens count

    def total(x):
        if ld_alpha is None:
            return x.sum(1)
        lengths = shift.sum(1).long()
        shared = torch.minimum(lengths[:3], lengths[3:]).repeat(2)
        out = []
        for row in range(6):
            values = x[row][shift[row].bool()]
            out.append(values[: shared[row]].sum() + ld_alpha * values[shared[row]:].sum())
        return torch.stack(out)

    p, r = total(policy), total(ref)
    lw, ll, rw, rl = p[:3], p[3:], r[:3], r[3:]
    return SimpleNamespace(lw=lw, ll=ll, rw=rw, rl=rl, hw=lw - rw, hl=ll - rl, h=(lw - rw) - (ll - rl),
                           nw=torch.tensor(CHOSEN_LEN, dtype=torch.float), nl=torch.tensor(REJECTED_LEN, dtype=torch.float),
                           policy=policy, shift=shift)


def log_sigmoid(x):
    return -torch.log1p(torch.exp(-x))


def sigmoid(x):
    return 1 / (1 + torch.exp(-x))


def bco_delta(*batches):
    """BCO's reward shift after ``batches``: the plain mean of every reward beta h_w, beta h_l seen."""
    return torch.cat([BETA * torch.cat([b.hw, b.hl]) for b in batches]).mean().detach()


# Published formulas, written independently of oxstudy and TRL. ``s`` holds the summed
# log-probs; ``hp`` the method hyperparameters.
DPO_FORMULAS = {
    "dpo": lambda s, hp: -log_sigmoid(BETA * s.h),
    "tr-dpo": lambda s, hp: -log_sigmoid(BETA * s.h),
    "ipo": lambda s, hp: (s.hw / s.nw - s.hl / s.nl - 1 / (2 * BETA)) ** 2,
    "hinge": lambda s, hp: torch.clamp(1 - BETA * s.h, min=0),
    # Zhao et al. 2023, Eq. 1: reference-free margin, NLL of each chosen sequence (token sum).
    "slic": lambda s, hp: torch.clamp(hp["delta"] - (s.lw - s.ll), min=0) - hp["sft_weight"] * s.lw,
    "exo": lambda s, hp: (sigmoid(BETA * s.h) * (log_sigmoid(BETA * s.h) - math.log(1 - hp["label_smoothing"]))
                          + sigmoid(-BETA * s.h) * (log_sigmoid(-BETA * s.h) - math.log(hp["label_smoothing"]))),
    "nca": lambda s, hp: (-log_sigmoid(BETA * s.hw) - 0.5 * log_sigmoid(-BETA * s.hw)
                          - 0.5 * log_sigmoid(-BETA * s.hl)),
    "robust-dpo": lambda s, hp: ((-(1 - hp["label_smoothing"]) * log_sigmoid(BETA * s.h)
                                  + hp["label_smoothing"] * log_sigmoid(-BETA * s.h))
                                 / (1 - 2 * hp["label_smoothing"])),
    # Jung et al. 2024: reward shift delta = running mean of the rewards (here: this first batch's),
    # a constant for the gradient.
    "bco": lambda s, hp: (-log_sigmoid(BETA * s.hw - bco_delta(s)) - log_sigmoid(-(BETA * s.hl - bco_delta(s)))),
    "sppo": lambda s, hp: (s.hw - 1 / (2 * BETA)) ** 2 + (s.hl + 1 / (2 * BETA)) ** 2,
    "aot": lambda s, hp: -log_sigmoid(BETA * (torch.sort(s.lw - s.ll).values - torch.sort(s.rw - s.rl).values)),
    "aot-unpaired": lambda s, hp: -log_sigmoid(BETA * (torch.sort(s.hw).values - torch.sort(s.hl).values)),
    "apo": lambda s, hp: 1 - sigmoid(BETA * s.hw) + sigmoid(BETA * s.hl),
    "apo-down": lambda s, hp: sigmoid(BETA * s.hw) + 1 - sigmoid(BETA * (s.hw - s.hl)),
    "discopop": lambda s, hp: ((1 - sigmoid(BETA * s.h / hp["discopop_tau"])) * -log_sigmoid(BETA * s.h)
                               + sigmoid(BETA * s.h / hp["discopop_tau"]) * torch.exp(-BETA * s.h)),
    "sigmoid-norm": lambda s, hp: -log_sigmoid(BETA * (s.hw / s.nw - s.hl / s.nl)),
    # Pang et al. 2024, Eq. 1: NLL of each chosen sequence divided by its own length.
    "rpo": lambda s, hp: -log_sigmoid(BETA * s.h) - hp["rpo_alpha"] * s.lw / s.nw,
    "f-dpo": lambda s, hp: -log_sigmoid(BETA * ((math.log(2) + log_sigmoid(s.hw)) - (math.log(2) + log_sigmoid(s.hl)))),
    "ld-dpo": lambda s, hp: -log_sigmoid(BETA * s.h),  # with ld_alpha-weighted sums, see sums()
    "rdpo": lambda s, hp: -log_sigmoid(BETA * s.h - hp["alpha"] * (s.nw - s.nl)),
    "cdpo": lambda s, hp: (-(1 - hp["label_smoothing"]) * log_sigmoid(BETA * s.h)
                           - hp["label_smoothing"] * log_sigmoid(-BETA * s.h)),
    "cal-dpo": lambda s, hp: -log_sigmoid(s.h) + (s.hw - 1 / (2 * BETA)) ** 2 + (s.hl + 1 / (2 * BETA)) ** 2,
    "dpop": lambda s, hp: -log_sigmoid(BETA * (s.h - hp["dpop_lambda"] * torch.clamp(s.rw - s.lw, min=0))),
    "odpo": lambda s, hp: -log_sigmoid(BETA * s.h - hp["offset"]),
    "gpo": lambda s, hp: torch.exp(-BETA * s.h),
    "focalpo": lambda s, hp: -(sigmoid(BETA * s.h) ** hp["gamma"]) * log_sigmoid(BETA * s.h),
}


def wpo_expected(s, hp):
    _, policy, _, sq, shift = pair_batch(0)
    weights = torch.exp(((policy - sq) * shift).sum(1) / shift.sum(1))
    return weights[:3] * weights[3:] * -log_sigmoid(BETA * s.h)


DPO_FORMULAS["wpo"] = wpo_expected

DPO_TRAINER_METHODS = [m for m in registry.names() if registry.get(m).config == "trl.DPOConfig"]


def test_every_dpo_trainer_method_has_a_formula():
    # beta-dpo's beta depends on the previous batch: tested on two batches below.
    assert sorted(DPO_FORMULAS) == sorted(set(DPO_TRAINER_METHODS) - {"beta-dpo"})


@pytest.mark.parametrize("method", sorted(DPO_FORMULAS))
def test_dpo_family_loss_matches_published_formula(method, model_dir, data, tmp_path):
    """Value and gradient w.r.t. the policy's per-token log-probabilities: the trainer's loss vs
    autograd on the formula, both from the same leaf tensor."""
    # tr-dpo's 2-step test run must sync its reference (tau = 512 is refused); the loss ignores tau.
    overrides = {"ref_model_sync_steps": 1} if method == "tr-dpo" else None
    hp = registry.resolve_hyperparameters(method, overrides)
    trainer = trainer_for(method, model_dir, data, tmp_path, hyperparameters=overrides)
    leaf = pair_batch()[1].clone().requires_grad_(True)
    got = dpo_loss_from_trainer(trainer, policy=leaf)
    (got_grad,) = torch.autograd.grad(got, leaf)
    s = sums(ld_alpha=hp.get("ld_alpha") if method == "ld-dpo" else None, policy=leaf)
    expected = DPO_FORMULAS[method](s, hp)
    expected = expected.mean() if expected.dim() else expected
    (expected_grad,) = torch.autograd.grad(expected, leaf)
    assert float(got) == pytest.approx(float(expected), rel=1e-5, abs=1e-6), method
    assert math.isfinite(float(got))
    assert expected_grad.abs().sum() > 0, method  # the formula does depend on the policy
    assert torch.allclose(got_grad, expected_grad, rtol=1e-4, atol=1e-7), method


def test_slic_keeps_no_reference_model(model_dir, data, tmp_path):
    """SLiC-HF is reference-free: no frozen copy is held and a reference forward would fail."""
    trainer = trainer_for("slic", model_dir, data, tmp_path)
    assert trainer.ref_model is None
    inputs, policy, _, _, _ = pair_batch()
    loss = trainer.compute_loss(LogProbTable([(inputs["input_ids"], policy, {})]), inputs)
    s = sums()
    assert float(loss) == pytest.approx(float((torch.clamp(1 - (s.lw - s.ll), min=0) - s.lw).mean()), rel=1e-5)


@pytest.mark.parametrize("kind,formula", [
    ("truncated_quadratic", lambda z: torch.clamp(1 - z, min=0) ** 2),
    ("savage", lambda z: 1 / (1 + torch.exp(z)) ** 2),
])
def test_gpo_other_convex_losses(kind, formula, model_dir, data, tmp_path):
    trainer = trainer_for("gpo", model_dir, data, tmp_path, hyperparameters={"gpo_loss": kind})
    leaf = pair_batch()[1].clone().requires_grad_(True)
    got = dpo_loss_from_trainer(trainer, policy=leaf)
    (got_grad,) = torch.autograd.grad(got, leaf)
    expected = formula(BETA * sums(policy=leaf).h).mean()
    (expected_grad,) = torch.autograd.grad(expected, leaf)
    assert float(got) == pytest.approx(float(expected), rel=1e-5)
    assert torch.allclose(got_grad, expected_grad, rtol=1e-4, atol=1e-8)


def test_beta_dpo_adapts_beta_to_the_batch_margin(model_dir, data, tmp_path):
    hp = registry.resolve_hyperparameters("beta-dpo")
    trainer = trainer_for("beta-dpo", model_dir, data, tmp_path)
    first = dpo_loss_from_trainer(trainer, seed=0)
    s0 = sums(0)
    assert first == pytest.approx(float((-log_sigmoid(BETA * s0.h)).mean()), rel=1e-5)  # M0 starts at M_1
    leaf = pair_batch(10)[1].clone().requires_grad_(True)
    second = dpo_loss_from_trainer(trainer, seed=10, policy=leaf)
    (got_grad,) = torch.autograd.grad(second, leaf)
    s1 = sums(10, policy=leaf)
    m0 = float((BETA * s0.h).mean())  # momentum * M1 + (1 - momentum) * M1
    # beta_b is a per-batch constant (Wu et al. 2024, Eq. 7): no gradient flows through it.
    beta_b = BETA * (1 + hp["alpha"] * (float((BETA * s1.h).mean()) - m0))
    assert beta_b != pytest.approx(BETA)
    expected = (-log_sigmoid(beta_b * s1.h)).mean()
    (expected_grad,) = torch.autograd.grad(expected, leaf)
    assert float(second) == pytest.approx(float(expected), rel=1e-5)
    assert torch.allclose(got_grad, expected_grad, rtol=1e-4, atol=1e-8)


def test_beta_dpo_advances_its_running_margin_once_per_optimizer_step(model_dir, data, tmp_path):
    """Gradient accumulation of 2: both micro-batches of an optimizer step read the same M0, and M0
    advances once per step, by the mean margin over every pair of the step (Wu et al. 2024, Eq. 7:
    the batch margin is over the training batch), not once per micro-batch. beta_b uses the
    micro-batch's own margin. Evaluation batches leave the running margin alone."""
    hp = registry.resolve_hyperparameters("beta-dpo")
    trainer = trainer_for("beta-dpo", model_dir, data, tmp_path, effective_batch_size=4, per_device_batch_size=2)
    assert trainer.args.gradient_accumulation_steps == 2
    micro_batches = {0: (0, 10), 1: (20, 30)}  # optimizer step -> seeds of its two micro-batches (3 pairs each)
    first_margin = float((BETA * sums(0).h).mean())
    step0_margin = float(torch.cat([BETA * sums(seed).h for seed in micro_batches[0]]).mean())
    m0_of_step = {0: first_margin, 1: hp["momentum"] * first_margin + (1 - hp["momentum"]) * step0_margin}
    for step, seeds in micro_batches.items():
        trainer.state.global_step = step  # what transformers.Trainer's loop holds during the step
        for seed in seeds:
            leaf = pair_batch(seed)[1].clone().requires_grad_(True)
            got = dpo_loss_from_trainer(trainer, seed=seed, policy=leaf)
            (got_grad,) = torch.autograd.grad(got, leaf)
            s = sums(seed, policy=leaf)
            beta_b = BETA * (1 + hp["alpha"] * (float((BETA * s.h).mean()) - m0_of_step[step]))
            expected = (-log_sigmoid(beta_b * s.h)).mean()
            (expected_grad,) = torch.autograd.grad(expected, leaf)
            assert float(got) == pytest.approx(float(expected), rel=1e-5), (step, seed)
            assert torch.allclose(got_grad, expected_grad, rtol=1e-4, atol=1e-8), (step, seed)
            assert trainer.loss_state["m0"] == pytest.approx(m0_of_step[step], rel=1e-6)
    before = dict(trainer.loss_state)
    trainer.model.eval()
    dpo_loss_from_trainer(trainer, seed=40)
    assert {k: v for k, v in trainer.loss_state.items() if k not in ("step", "beta")} == \
        {k: v for k, v in before.items() if k not in ("step", "beta")}


def test_beta_dpo_running_margin_through_trainer_train_with_gradient_accumulation(model_dir, data, tmp_path):
    """The real training loop (3 optimizer steps x 2 micro-batches of 2 pairs): M0 is constant
    within each step and advances once between steps by the mean margin of all 4 pairs of the
    finished step. (Step 0 has margin 0: the policy equals its reference until the first update.)"""
    hp = registry.resolve_hyperparameters("beta-dpo")
    trainer = trainer_for("beta-dpo", model_dir, data, tmp_path, effective_batch_size=4, per_device_batch_size=2,
                          max_steps=3, learning_rate=5e-2)
    assert trainer.args.gradient_accumulation_steps == 2
    calls, loss_fn = [], trainer.loss_fn

    def recording(batch, beta, hyperparameters, state):
        loss = loss_fn(batch, beta, hyperparameters, state)
        margins = (beta * (batch.chosen_logratios - batch.rejected_logratios)).detach().double()
        calls.append((trainer.state.global_step, state["m0"], margins))
        return loss

    trainer.loss_fn = recording
    trainer.train()
    assert [step for step, _, _ in calls] == [0, 0, 1, 1, 2, 2]
    m0 = {}
    for step, value, _ in calls:
        assert m0.setdefault(step, value) == value, f"M0 changed within optimizer step {step}"
    step_margin = {step: float(torch.cat([m for s, _, m in calls if s == step]).mean()) for step in m0}
    assert m0[0] == pytest.approx(float(calls[0][2].mean()), abs=1e-12)
    for step in (1, 2):
        expected = hp["momentum"] * m0[step - 1] + (1 - hp["momentum"]) * step_margin[step - 1]
        assert m0[step] == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert m0[2] != pytest.approx(m0[1], abs=1e-6)  # the margin moved: the test can see M0 advance


def test_bco_reward_shift_is_the_running_mean_of_all_rewards(model_dir, data, tmp_path):
    """Second batch: delta is the mean over both batches' 12 rewards, not the second batch's own,
    and not 0 (TRL's bco_pair)."""
    trainer = trainer_for("bco", model_dir, data, tmp_path)
    dpo_loss_from_trainer(trainer, seed=0)
    leaf = pair_batch(10)[1].clone().requires_grad_(True)
    got = dpo_loss_from_trainer(trainer, seed=10, policy=leaf)
    (got_grad,) = torch.autograd.grad(got, leaf)
    s0, s1 = sums(0), sums(10, policy=leaf)
    delta = bco_delta(s0, s1)
    assert float(delta) != pytest.approx(float(bco_delta(s1)), rel=1e-3)
    expected = (-log_sigmoid(BETA * s1.hw - delta) - log_sigmoid(-(BETA * s1.hl - delta))).mean()
    (expected_grad,) = torch.autograd.grad(expected, leaf)
    assert float(got) == pytest.approx(float(expected), rel=1e-5)
    assert torch.allclose(got_grad, expected_grad, rtol=1e-4, atol=1e-7)


# ----------------------------------------------------------------------------- CPO / SimPO / AlphaPO / ORPO


class LogitTable(torch.nn.Module):
    """Stands in for the network of the reference-free trainers: returns a fixed logits tensor
    (a leaf, so gradients can be taken) for known input ids."""

    def __init__(self, input_ids, logits):
        super().__init__()
        self.input_ids, self.logits = input_ids, logits

    def forward(self, input_ids, attention_mask=None, **kwargs):
        assert torch.equal(input_ids, self.input_ids), "unexpected input ids"
        return SimpleNamespace(logits=self.logits)


VOCAB = 9
RF_CHOSEN_LEN, RF_REJECTED_LEN = [4, 2, 3], [3, 5, 1]


def reference_free_batch(seed=0):
    """3 pairs as the CPO/ORPO collators produce them (prompt labels -100), with a logits leaf."""
    generator = torch.Generator().manual_seed(seed)
    batch, rows = {}, []
    for side, lengths in (("chosen", RF_CHOSEN_LEN), ("rejected", RF_REJECTED_LEN)):
        ids = torch.randint(1, VOCAB, (3, WIDTH), generator=generator)
        mask = completion_mask(lengths, WIDTH)  # completion tokens at positions PROMPT..PROMPT+n
        attention = torch.ones_like(ids)
        for row, n in enumerate(lengths):
            attention[row, PROMPT + n:] = 0  # right padding after the completion
        labels = ids.masked_fill(mask == 0, -100)
        batch.update({f"{side}_input_ids": ids, f"{side}_attention_mask": attention, f"{side}_labels": labels})
        rows.append(ids)
    logits = (2 * torch.randn(6, WIDTH, VOCAB, generator=generator)).requires_grad_(True)
    return batch, torch.cat(rows), logits


def token_logps(logits, input_ids, mask):
    """log p(token_t | <t) at the positions where ``mask`` (aligned with input_ids) is 1."""
    logp = torch.log_softmax(logits[:, :-1], -1).gather(-1, input_ids[:, 1:, None])[..., 0]
    return logp * mask[:, 1:], mask[:, 1:]


def reference_free_loss(trainer, seed=0):
    batch, ids, logits = reference_free_batch(seed)
    loss = trainer.compute_loss(LogitTable(ids, logits), batch)
    (grad,) = torch.autograd.grad(loss, logits)
    return loss, grad, batch, ids, logits


def reference_free_expected(method, hp, batch, ids, logits):
    labels = torch.cat([batch["chosen_labels"], batch["rejected_labels"]])
    completion = (labels != -100).float()
    logp, m = token_logps(logits, ids, completion)
    summed = logp.sum(1)
    averaged = summed / m.sum(1)
    if method == "cpo":  # Xu et al. 2024, Eq. 3 + BC regulariser: NLL, mean over chosen completion tokens
        nll = -(logp[:3].sum() / m[:3].sum())
        return (-log_sigmoid(BETA * (summed[:3] - summed[3:]))).mean() + hp["cpo_alpha"] * nll
    if method == "simpo":  # Meng et al. 2024, Eq. 6: length-averaged log-probs, margin gamma
        return (-log_sigmoid(BETA * (averaged[:3] - averaged[3:]) - hp["simpo_gamma"])).mean()
    if method == "alphapo":  # Gupta et al. 2025: r = (1 - p^-alpha)/alpha on the length-averaged p
        reward = (1 - torch.exp(averaged) ** (-hp["alpha"])) / hp["alpha"]
        return (-log_sigmoid(BETA * (reward[:3] - reward[3:]) - hp["simpo_gamma"])).mean()
    if method == "orpo":  # Hong et al. 2024, Eq. 6-7; TRL's NLL covers prompt and response tokens
        attention = torch.cat([batch["chosen_attention_mask"], batch["rejected_attention_mask"]]).float()
        full, fm = token_logps(logits, ids, attention)
        nll = -(full[:3].sum() / fm[:3].sum())
        log_odds = averaged - torch.log1p(-torch.exp(averaged))
        return nll - (BETA * log_sigmoid(log_odds[:3] - log_odds[3:])).mean()
    raise AssertionError(method)


@pytest.mark.parametrize("method", ["cpo", "simpo", "alphapo", "orpo"])
def test_reference_free_losses_through_the_trainer(method, model_dir, data, tmp_path):
    """The trainer's own loss path (concatenated forward, length averaging, NLL term) on fixed
    logits: value and gradient w.r.t. the logits vs the paper's formula."""
    hp = registry.resolve_hyperparameters(method)
    trainer = trainer_for(method, model_dir, data, tmp_path)
    loss, grad, batch, ids, logits = reference_free_loss(trainer)
    expected = reference_free_expected(method, hp, batch, ids, logits)
    (expected_grad,) = torch.autograd.grad(expected, logits)
    assert float(loss) == pytest.approx(float(expected), rel=1e-5), method
    assert torch.allclose(grad, expected_grad, rtol=1e-4, atol=1e-7), method
    if method in ("simpo", "alphapo"):
        assert trainer.cpo_alpha == 0.0  # no NLL term


# ----------------------------------------------------------------------------- KTO


def unpaired_batch(labels: torch.Tensor) -> SimpleNamespace:
    """Four unpaired completions (``labels``: desirable or not) with their KL-mismatched
    counterparts: token log-prob tables of policy and reference (zero past each completion),
    the trainer's inputs and the reference model serving them."""
    mask = completion_mask([3, 4, 2, 4], WIDTH)
    ids = torch.randint(5, 100, (4, WIDTH), generator=torch.Generator().manual_seed(3))
    kl_ids = torch.randint(100, 200, (4, WIDTH), generator=torch.Generator().manual_seed(4))
    shift = mask[:, 1:].float()
    policy, ref = table(4, WIDTH, 11) * shift, table(4, WIDTH, 12) * shift
    kl_policy, kl_ref = table(4, WIDTH, 13) * shift, table(4, WIDTH, 14, 1.0, 3.0) * shift
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "completion_mask": mask, "label": labels,
              "KL_input_ids": kl_ids, "KL_attention_mask": torch.ones_like(kl_ids), "KL_completion_mask": mask}
    return SimpleNamespace(ids=ids, kl_ids=kl_ids, shift=shift, policy=policy, ref=ref, kl_policy=kl_policy,
                           kl_ref=kl_ref, inputs=inputs,
                           ref_model=LogProbTable([(ids, ref, {}), (kl_ids, kl_ref, {})]))


@pytest.mark.parametrize("method", ["kto", "apo-unpaired"])
def test_unpaired_losses(method, model_dir, data, tmp_path):
    hp = registry.resolve_hyperparameters(method)
    trainer = trainer_for(method, model_dir, data, tmp_path)
    labels = torch.tensor([True, False, True, False])
    batch = unpaired_batch(labels)
    ids, kl_ids, shift, ref, kl_ref, inputs = batch.ids, batch.kl_ids, batch.shift, batch.ref, batch.kl_ref, batch.inputs
    trainer.ref_model = batch.ref_model
    policy = batch.policy.clone().requires_grad_(True)
    kl_policy = batch.kl_policy.clone().requires_grad_(True)
    got = trainer.compute_loss(LogProbTable([(ids, policy, {}), (kl_ids, kl_policy, {})]), inputs)
    got_grads = torch.autograd.grad(got, [policy, kl_policy], allow_unused=True)

    h = (policy * shift).sum(1) - ref.sum(1)
    if method == "kto":  # Ethayarajh et al. 2024, Eq. 7-8, z0 = max(0, mean KL estimate), not backpropagated
        z0 = torch.clamp(((kl_policy * shift).sum(1) - kl_ref.sum(1)).mean(), min=0).detach()
        desirable = hp["desirable_weight"] * (1 - sigmoid(BETA * (h[labels] - z0)))
        undesirable = hp["undesirable_weight"] * (1 - sigmoid(BETA * (z0 - h[~labels])))
    else:  # APO-zero, unpaired
        desirable = 1 - sigmoid(BETA * h[labels])
        undesirable = sigmoid(BETA * h[~labels])
    expected = torch.cat([desirable, undesirable]).mean()
    expected_grads = torch.autograd.grad(expected, [policy, kl_policy], allow_unused=True)
    assert float(got) == pytest.approx(float(expected), rel=1e-5)
    for got_grad, expected_grad in zip(got_grads, expected_grads, strict=True):
        got_grad = torch.zeros_like(policy) if got_grad is None else got_grad
        expected_grad = torch.zeros_like(policy) if expected_grad is None else expected_grad
        assert torch.allclose(got_grad, expected_grad, rtol=1e-4, atol=1e-7)
    assert expected_grads[0].abs().sum() > 0


# ----------------------------------------------------------------------------- online RL


def online_batch(seed=0):
    lengths = [5, 3, 6, 2]
    generator = torch.Generator().manual_seed(seed)
    mask = torch.zeros(4, 6, dtype=torch.long)
    for row, n in enumerate(lengths):
        mask[row, :n] = 1
    logps = -(0.1 + 2 * torch.rand(4, 6, generator=generator))
    old = logps + 0.4 * (torch.rand(4, 6, generator=generator) - 0.5)  # some ratios outside the clip range
    advantages = torch.tensor([1.0, -0.5, 0.7, -1.2])
    return mask, logps, old, advantages


def run_policy_loss(trainer, rloo=False, seed=0):
    mask, logps, old, advantages = online_batch(seed)
    trainer._get_per_token_logps_and_entropies = lambda *a, **k: (logps, torch.zeros_like(logps), None)
    trainer.current_gradient_accumulation_steps = 1
    inputs = {"prompt_ids": torch.ones(4, 2, dtype=torch.long), "prompt_mask": torch.ones(4, 2, dtype=torch.long),
              "completion_ids": torch.ones(4, 6, dtype=torch.long), "completion_mask": mask,
              "advantages": advantages, "num_items_in_batch": mask.sum().float()}
    if rloo:
        inputs["old_logps"] = (old * mask).sum(1)
    else:
        inputs["old_per_token_logps"] = old
    return float(trainer._compute_loss(trainer.model, inputs))


def clipped(ratio, advantages, low, high):
    return -torch.minimum(ratio * advantages, torch.clamp(ratio, 1 - low, 1 + high) * advantages)


# PSR / NSR / W-REINFORCE replace the advantages on their own trainer: tests/test_polarity.py.
GRPO_METHODS = [m for m in registry.names() if registry.get(m).config == "trl.GRPOConfig"
                and registry.get(m).trainer != "oxstudy.PolarityGRPOTrainer"]


@pytest.mark.parametrize("method", GRPO_METHODS)
def test_grpo_family_policy_loss(method, model_dir, data, tmp_path):
    # grpo's KL term (paper beta 0.04) is checked on a real model in test_algorithms_grpo.py.
    # Here one micro-batch is the whole generation batch (num_items_in_batch counts its tokens);
    # the off-policy mini-batching default is tested there too.
    overrides = {"optimizer_steps_per_generation": 1, **({"beta": 0.0} if method == "grpo" else {})}
    hp = registry.resolve_hyperparameters(method, overrides)
    trainer = trainer_for(method, model_dir, data, tmp_path, hyperparameters=overrides)
    got = run_policy_loss(trainer)
    mask, logps, old, adv = online_batch()
    m = mask.float()
    a = adv[:, None]
    eps = hp.get("epsilon", 0.2)  # cispo and sapo never read it
    eps_high = hp.get("epsilon_high", eps)
    ratio = torch.exp(logps - old)
    if method == "gspo":  # Zheng et al. 2025: s_i = exp(mean_t log ratio), sequence-level clip
        s = torch.exp(((logps - old) * m).sum(1) / m.sum(1))
        expected = clipped(s, adv, eps, eps_high).mean()
    elif method == "cispo":  # MiniMax-M1: -sg(min(r, eps_max)) * A * log pi, token-mean over the batch
        per_token = -torch.clamp(ratio, max=eps_high) * a * logps
        expected = (per_token * m).sum() / m.sum()
    elif method == "sapo":  # Gao et al. 2025: soft gate sigma(tau (r - 1)) * 4 / tau
        tau = torch.where(a > 0, hp["sapo_temperature_pos"], hp["sapo_temperature_neg"])
        per_token = -torch.sigmoid(tau * (ratio - 1)) * 4 / tau * a
        expected = ((per_token * m).sum(1) / m.sum(1)).mean()
    else:
        per_token = clipped(ratio, a, eps, eps_high)
        if method == "grpo":  # Shao et al. 2024: mean over tokens of each sequence, then over sequences
            expected = ((per_token * m).sum(1) / m.sum(1)).mean()
        elif method == "dr-grpo":  # Liu et al. 2025: constant normaliser G * max completion length
            expected = (per_token * m).sum() / (4 * make_cell(method).training.max_completion_length)
        else:  # dapo (Yu et al. 2025) and sgrpo (OXRL): token-level mean over the batch
            expected = (per_token * m).sum() / m.sum()
    assert got == pytest.approx(float(expected), rel=1e-5), method


def test_cispo_caps_the_weight_at_epsilon_high_itself(model_dir, data, tmp_path):
    """The registry's formula says TRL caps the IS weight at epsilon_high (not 1 + epsilon_high).
    With epsilon_high 1.1 some ratios of the batch (up to exp(0.2)) are capped; under
    1 + epsilon_high = 2.1 none would be, so the two readings give different values and gradients."""
    assert "sg(min(r_t, epsilon_high))" in registry.get("cispo").loss
    overrides = {"optimizer_steps_per_generation": 1, "epsilon_high": 1.1}
    trainer = trainer_for("cispo", model_dir, data, tmp_path, hyperparameters=overrides)
    mask, logps, old, adv = online_batch()
    leaf = logps.clone().requires_grad_(True)
    trainer._get_per_token_logps_and_entropies = lambda *a, **k: (leaf, torch.zeros_like(leaf), None)
    trainer.current_gradient_accumulation_steps = 1
    inputs = {"prompt_ids": torch.ones(4, 2, dtype=torch.long), "prompt_mask": torch.ones(4, 2, dtype=torch.long),
              "completion_ids": torch.ones(4, 6, dtype=torch.long), "completion_mask": mask,
              "advantages": adv, "num_items_in_batch": mask.sum().float(), "old_per_token_logps": old}
    got = trainer._compute_loss(trainer.model, inputs)
    (got_grad,) = torch.autograd.grad(got, leaf)
    m = mask.float()

    def cispo(cap):  # MiniMax-M1 Eq. 4: -sg(min(r, cap)) A log pi, token mean over the batch
        weight = torch.clamp(torch.exp(leaf - old), max=cap).detach()
        loss = (-weight * adv[:, None] * leaf * m).sum() / m.sum()
        return loss, torch.autograd.grad(loss, leaf)[0]

    expected, expected_grad = cispo(1.1)
    wrong, wrong_grad = cispo(1 + 1.1)
    assert bool(((torch.exp(logps - old) > 1.1) & mask.bool()).any())  # the cap binds on this batch
    assert float(got) == pytest.approx(float(expected), rel=1e-5)
    assert torch.allclose(got_grad, expected_grad, rtol=1e-4, atol=1e-7)
    assert float(got) != pytest.approx(float(wrong), rel=1e-3)
    assert not torch.allclose(got_grad, wrong_grad, rtol=1e-3, atol=1e-6)


def test_rloo_policy_loss(model_dir, data, tmp_path):
    hp = registry.resolve_hyperparameters("rloo")
    trainer = trainer_for("rloo", model_dir, data, tmp_path)
    got = run_policy_loss(trainer, rloo=True)
    mask, logps, old, adv = online_batch()
    ratio = torch.exp(((logps - old) * mask).sum(1))  # sequence-level ratio of REINFORCE
    expected = clipped(ratio, adv, trainer.args.epsilon, trainer.args.epsilon).mean()
    assert got == pytest.approx(float(expected), rel=1e-5)
    assert trainer.args.beta == hp["beta"]


def content_reward(completion_ids, **kwargs):
    """Untied rewards that depend on the sampled tokens."""
    return [float(sum(ids) % 7) for ids in completion_ids]


@pytest.mark.parametrize("reward", ["verifier", "content"])
def test_online_dpo_loss(reward, model_dir, data, tmp_path):
    """Online DPO (Guo et al. 2024): DPO's logistic loss on two on-policy samples per prompt,
    the higher-reward one as chosen. Generation and reward scoring run for real (the verifier ties
    on the untrained model: the first sample is chosen; the content reward orders them); the
    policy/reference log-probs are hand-made so the expected loss can be written out."""
    trainer = trainer_for("online-dpo", model_dir, data, tmp_path)
    if reward == "content":
        trainer.reward_funcs[0] = content_reward
    generator = torch.Generator().manual_seed(5)
    seen = {}

    def forward(model, prompt_ids, prompt_mask, completion_ids, completion_mask, vision_inputs=None):
        key = "ref" if model is not trainer.model else "policy"
        shape = completion_ids.shape
        if key not in seen:
            seen[key] = -(0.1 + 2 * torch.rand(shape, generator=generator))
            seen["mask"] = completion_mask.clone()
            seen["ids"] = completion_ids.clone()
        return seen[key].clone().requires_grad_(key == "policy")

    trainer._forward = forward
    batch = {"prompt": [[{"role": "user", "content": r["prompt"]}] for r in data.prompts],
             "answer": [r["answer"] for r in data.prompts]}
    got = float(trainer.training_step(trainer.model, batch))
    mask = seen["mask"].float()
    n = mask.shape[0] // 2
    total = (seen["policy"] * mask).sum(1)
    ref = (seen["ref"] * mask).sum(1)
    if reward == "verifier":
        first_wins = torch.ones(n, dtype=torch.bool)  # 0 = 0 on the untrained model
    else:
        ids = [row[m.bool()].tolist() for row, m in zip(seen["ids"], seen["mask"], strict=True)]
        scores = torch.tensor(content_reward(ids))
        first_wins = scores[:n] >= scores[n:]
        assert not first_wins.all()  # the ordering matters in this case
    h_first = (total[:n] - total[n:]) - (ref[:n] - ref[n:])
    h = torch.where(first_wins, h_first, -h_first)
    expected = float((-log_sigmoid(BETA * h)).mean())
    assert got == pytest.approx(expected, rel=1e-4)


# ----------------------------------------------------------------------------- SFT


@pytest.mark.parametrize("method", ["sft", "sp-rft"])
def test_sft_loss_is_mean_completion_nll(method, model_dir, data, tmp_path):
    trainer = trainer_for(method, model_dir, data, tmp_path)
    lengths = [3, 5, 2]
    mask = completion_mask(lengths, WIDTH)
    ids = torch.randint(5, 100, (3, WIDTH), generator=torch.Generator().manual_seed(8))
    labels = ids.masked_fill(mask == 0, -100)
    policy = table(3, WIDTH, 21).requires_grad_(True)
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}
    got = trainer.compute_loss(LogProbTable([(ids, policy, {})]), inputs)
    (got_grad,) = torch.autograd.grad(got, policy)
    shift = mask[:, 1:].bool()
    expected = -policy[shift].mean()  # -1/N sum_t log pi(y_t | x, y_<t) over completion tokens
    (expected_grad,) = torch.autograd.grad(expected, policy)
    assert float(got) == pytest.approx(float(expected), rel=1e-5)
    assert torch.allclose(got_grad, expected_grad, rtol=1e-4, atol=1e-8)


def test_every_method_has_a_loss_test():
    covered = set(DPO_TRAINER_METHODS) | set(GRPO_METHODS) | {
        "cpo", "simpo", "alphapo", "orpo", "kto", "apo-unpaired", "rloo", "online-dpo", "sft", "sp-rft"}
    # the polarity methods' advantages and gradients are tested in tests/test_polarity.py
    from tests.test_polarity import POLARITY_METHODS

    assert covered | set(POLARITY_METHODS) == set(registry.names())


# ----------------------------------------------------------------------------- running statistics across GPUs


def _two_process_statistics(rank, port, out_dir):
    """One of two gloo processes: each feeds its own pairs to beta-dpo's and bco's losses twice."""
    import torch.distributed as dist

    from oxstudy.algorithms.preference import PairLogps, bco_loss, beta_dpo_loss

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    hp = registry.resolve_hyperparameters("beta-dpo")
    beta_state, bco_state = {}, {}
    for step in range(2):
        g = torch.Generator().manual_seed(100 * step + rank)
        logps = [-(1 + 4 * torch.rand(2 + rank, generator=g)) for _ in range(4)]  # rank 1 has 3 pairs
        lengths = torch.full((2 + rank,), 3)
        batch = PairLogps(*logps, lengths, lengths)
        beta_state["step"] = step  # one micro-batch per optimizer step, as OxDPOTrainer labels it
        beta_dpo_loss(batch, BETA, hp, beta_state)
        bco_loss(batch, BETA, {}, bco_state)
    torch.save({"beta": beta_state, "bco": bco_state}, f"{out_dir}/rank{rank}.pt")
    dist.destroy_process_group()


@pytest.mark.slow
def test_beta_dpo_and_bco_share_their_running_statistics_across_processes(tmp_path):
    """Under torch.distributed the batch margin (beta-dpo) and the reward mean (bco) are over the
    pairs of every process, so both ranks hold the same M0, beta_b and delta: the values computed
    here from all 5 pairs per step (2 on rank 0, 3 on rank 1)."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    mp.spawn(_two_process_statistics, args=(port, str(tmp_path)), nprocs=2, join=True)
    states = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    assert states[0] == states[1]

    hp = registry.resolve_hyperparameters("beta-dpo")
    margins, rewards = [], []
    for step in range(2):
        pairs = []
        for rank in range(2):
            g = torch.Generator().manual_seed(100 * step + rank)
            pairs.append([-(1 + 4 * torch.rand(2 + rank, generator=g)) for _ in range(4)])
        lw, ll, rw, rl = (torch.cat([p[i] for p in pairs]) for i in range(4))
        margins.append(float((BETA * ((lw - rw) - (ll - rl))).mean()))
        rewards += [BETA * (lw - rw), BETA * (ll - rl)]
    m0 = hp["momentum"] * margins[0] + (1 - hp["momentum"]) * margins[0]
    beta_b = BETA * (1 + hp["alpha"] * (margins[1] - m0))
    assert states[0]["beta"]["beta"] == pytest.approx(beta_b, rel=1e-6)
    assert states[0]["beta"]["m0"] == pytest.approx(m0, rel=1e-6)  # the M0 step 1 read; it advances at step 2
    assert states[0]["beta"]["step_count"] == 5  # the pairs of the open step, on both processes
    assert states[0]["beta"]["step_sum"] / 5 == pytest.approx(margins[1], rel=1e-6)
    assert states[0]["bco"]["delta"] == pytest.approx(float(torch.cat(rewards).double().mean()), rel=1e-6)
    assert states[0]["bco"]["reward_count"] == 20
