"""The documented diff against the OXRL study's implementations (docs/algorithms.md), checked.

Every row of the docs table "Diff against OXRL's implementations" is checked here. Each OXRL
loss is OXRL's ``compute_loss`` as written in its repository (github.com/warlockee/oxRL,
``oxrl/algs/<method>.py`` and ``oxrl/algs/losses/<method>.py``), transcribed. The oxstudy side is
either the formula that ``tests/test_algorithms_losses.py`` proves equal (value and gradient) to
what oxstudy's trainers compute (the DPO family), or the real trainer's loss on fixed
log-probabilities or logits (kto, orpo, cpo, alphapo, simpo, sgrpo, gspo, cispo). With the *same*
hyperparameters on both sides unless a case says otherwise, the tests assert what the docs row
says: the losses coincide on fixed inputs in value and gradient (w.r.t. the policy's log-probs or
logits), in value only, in gradient only, or differ; where a row names the differences, a case
with exactly those changes made to OXRL's loss shows that they are the whole difference.
"""

from __future__ import annotations

import itertools
import re

import pytest
import test_algorithms_losses as losses
import torch
import torch.nn.functional as F
from test_algorithms_losses import (
    BETA,
    DPO_FORMULAS,
    LogProbTable,
    pair_batch,
    reference_free_loss,
    sums,
    trainer_for,
    unpaired_batch,
)

from oxstudy.algorithms import registry

# pytest fixtures shared with test_algorithms_losses: the tiny model and the training data (one
# torch thread: conftest.single_thread).
model_dir, data = losses.model_dir, losses.data
pytestmark = pytest.mark.usefixtures("single_thread")


def verdict(ours, our_grad, theirs, their_grad):
    same_value = torch.allclose(ours, theirs, rtol=1e-5, atol=1e-7)
    same_grad = torch.allclose(our_grad, their_grad, rtol=1e-4, atol=1e-7)
    return {(True, True): "equal", (True, False): "value-only", (False, True): "gradient-only",
            (False, False): "differs"}[(same_value, same_grad)]


def _focal(s, hp):  # OXRL detaches the modulating factor p^gamma
    z = BETA * s.h
    return -(torch.sigmoid(z).detach() ** hp["gamma"]) * F.logsigmoid(z)


def _beta_dpo(s, hp):  # per-sample beta on the raw log-ratio gap, running mean starts at 0, not detached
    gap = s.h
    beta_i = torch.clamp(BETA * (1 + hp["alpha"] * (gap - 0.0)), min=1e-3)
    return -F.logsigmoid(beta_i * gap)


OXRL = {
    "ipo": lambda s, hp: (s.h - 1 / (2 * BETA)) ** 2,  # summed log-ratios, no length normalisation
    "hinge": lambda s, hp: torch.relu(1 - BETA * s.h),
    "robust-dpo": lambda s, hp: -((1 - hp["label_smoothing"]) * F.logsigmoid(BETA * s.h)
                                  + hp["label_smoothing"] * F.logsigmoid(-BETA * s.h)) / (1 - 2 * hp["label_smoothing"]),
    "cdpo": lambda s, hp: -((1 - hp["label_smoothing"]) * F.logsigmoid(BETA * s.h)
                            + hp["label_smoothing"] * F.logsigmoid(-BETA * s.h)),
    "f-dpo": lambda s, hp: -F.logsigmoid(BETA * s.h - (F.softplus(s.hw) - F.softplus(s.hl))),  # JS
    "focalpo": _focal,
    "dpop": lambda s, hp: -F.logsigmoid(BETA * (s.h - hp["dpop_lambda"] * torch.relu(-s.hw))),
    "rdpo": lambda s, hp: -F.logsigmoid(BETA * s.h - hp["alpha"] * (s.nw - s.nl)),
    "odpo": lambda s, hp: -F.logsigmoid(BETA * s.h - hp["offset"]),
    "gpo": lambda s, hp: torch.exp(-BETA * s.h),  # gpo_loss_type="exponential"
    "cal-dpo": lambda s, hp: (-F.logsigmoid(s.h) + (s.hw - 1 / (2 * BETA)) ** 2 + (s.hl + 1 / (2 * BETA)) ** 2),
    "beta-dpo": _beta_dpo,
}

# What docs/algorithms.md states, per method: "equal" (value and gradient), "value-only" (same
# value, different gradient) or "differs".
VERDICT = {
    "ipo": "differs", "hinge": "equal", "robust-dpo": "differs", "cdpo": "equal", "f-dpo": "differs",
    "focalpo": "value-only", "dpop": "equal", "rdpo": "equal", "odpo": "equal", "gpo": "equal",
    "cal-dpo": "equal", "beta-dpo": "differs",
}


def oxstudy_side(method, s, hp):
    if method == "beta-dpo":  # first batch of oxstudy's beta-DPO: M0 = M_1, so beta_b = beta
        return -F.logsigmoid(BETA * s.h)
    return DPO_FORMULAS[method](s, hp)


@pytest.mark.parametrize("method", sorted(OXRL))
def test_oxrl_loss_vs_oxstudy_on_fixed_inputs(method):
    hp = registry.resolve_hyperparameters(method, {"offset": 1.0} if method == "odpo" else None)
    if method == "f-dpo":
        assert hp["f_divergence_type"] == "js_divergence"
    leaf = pair_batch()[1].clone().requires_grad_(True)
    ours = oxstudy_side(method, sums(policy=leaf), hp).mean()
    (our_grad,) = torch.autograd.grad(ours, leaf)
    theirs = OXRL[method](sums(policy=leaf), hp).mean()
    (their_grad,) = torch.autograd.grad(theirs, leaf)
    assert verdict(ours, our_grad, theirs, their_grad) == VERDICT[method], (method, float(ours), float(theirs))


# ----------------------------------------------------------------------------- the other rows
#
# kto, orpo, cpo, alphapo, simpo (TRL's KTOTrainer / CPOTrainer / ORPOTrainer) and sgrpo, gspo,
# cispo (TRL's GRPOTrainer): the oxstudy side is the real trainer's loss on fixed log-probabilities
# (or logits), built by oxstudy exactly as a run builds it; the OXRL side is OXRL's compute_loss
# transcribed (oxrl/algs/{kto,orpo,cpo,alphapo,simpo}.py, oxrl/algs/losses/{sgrpo,gspo,cispo}.py).
# Gradients are taken w.r.t. the same leaf on both sides: the per-token policy log-probs (KTO, GRPO
# family) or the logits (reference-free trainers, whose log-probs come from a log-softmax).
# "gradient-only": the values differ by a constant that does not depend on the policy.


def oxrl_profile(method):
    return {key: value for key, (value, _source) in (registry.get(method).oxrl or {}).items()}


# --- reference-free pairs: OXRL's compute_logps is log_softmax + gather + masked sum over loss_mask


def _oxrl_token_logps(logits, ids):
    return torch.log_softmax(logits[:, :-1], -1).gather(2, ids[:, 1:, None])[..., 0]


def oxrl_cpo(logits, ids, loss_mask, hp):  # oxrl/algs/cpo.py, loss_type="sigmoid", label_smoothing=0
    per_token = _oxrl_token_logps(logits, ids)
    logps = (per_token * loss_mask).sum(-1)
    pref = -F.logsigmoid(BETA * (logps[:3] - logps[3:])).mean()
    nll = (-per_token[:3] * loss_mask[:3]).sum() / loss_mask[:3].sum().clamp(min=1.0)
    return pref + hp["cpo_alpha"] * nll


def oxrl_simpo(logits, ids, loss_mask, hp):  # oxrl/algs/simpo.py: labels are the input ids, nothing masked
    per_token = _oxrl_token_logps(logits, ids)
    logps = (per_token * loss_mask).sum(-1) / loss_mask.sum(-1)
    return -F.logsigmoid(BETA * (logps[:3] - logps[3:]) - hp["simpo_gamma"]).mean()


def oxrl_alphapo(logits, ids, loss_mask, hp):  # oxrl/algs/alphapo.py
    per_token = _oxrl_token_logps(logits, ids)
    logps = (per_token * loss_mask).sum(-1) / loss_mask.sum(-1).clamp(min=1)
    rewards = (1.0 - torch.exp((-hp["alpha"] * logps).clamp(max=50.0))) / hp["alpha"]
    return -F.logsigmoid(BETA * (rewards[:3] - rewards[3:]) - hp["simpo_gamma"]).mean()


def oxrl_orpo(logits, ids, loss_mask, hp, *, average=False, nll_mask=None):  # oxrl/algs/orpo.py
    """``average`` / ``nll_mask``: the two changes docs/algorithms.md names (length-averaged odds,
    NLL over another mask); both off is OXRL's code as written."""
    per_token = _oxrl_token_logps(logits, ids)
    logps = (per_token * loss_mask).sum(-1)
    if average:
        logps = logps / loss_mask.sum(-1)
    sft_mask = (loss_mask if nll_mask is None else nll_mask)[:3]
    sft = (-per_token[:3] * sft_mask).sum() / sft_mask.sum().clamp(min=1.0)
    log_odds = logps - torch.log1p(-torch.exp(logps).clamp(max=1.0 - 1e-7))
    return sft + BETA * -F.logsigmoid(log_odds[:3] - log_odds[3:]).mean()


def _reference_free_case(method, oxrl_loss, tiny_model, training_data, tmp_path, *, oxrl_hp=None, mask="completion",
                         **oxrl_kwargs):
    hp = registry.resolve_hyperparameters(method)
    trainer = trainer_for(method, tiny_model, training_data, tmp_path)
    ours, our_grad, batch, ids, logits = reference_free_loss(trainer)
    labels = torch.cat([batch["chosen_labels"], batch["rejected_labels"]])
    attention = torch.cat([batch["chosen_attention_mask"], batch["rejected_attention_mask"]])
    # OXRL's loss_mask: the completion tokens; simpo.py as stored masks nothing ("all")
    loss_mask = {"completion": (labels[:, 1:] != -100), "all": torch.ones_like(ids[:, 1:])}[mask].float()
    if "nll_mask" in oxrl_kwargs:
        oxrl_kwargs["nll_mask"] = attention[:, 1:].float()
    theirs = oxrl_loss(logits, ids, loss_mask, {**hp, **(oxrl_hp or {})}, **oxrl_kwargs)
    (their_grad,) = torch.autograd.grad(theirs, logits)
    return ours, our_grad, theirs, their_grad


# --- KTO (oxrl/algs/kto.py): chosen rows first, labels +1 / -1; kl_ema starts at 0, alpha 0.1


def oxrl_kto(pi_logps, ref_logps, desirable, hp, *, paper_loss=False, z0=None):
    """``paper_loss`` (1 - sigma instead of -log sigma) and ``z0`` (TRL's clamped KL estimate
    instead of OXRL's moving average): the two changes docs/algorithms.md names."""
    labels = torch.where(desirable, 1.0, -1.0)
    log_ratio = pi_logps - ref_logps
    kl_ema = 0.9 * 0.0 + 0.1 * log_ratio[desirable].mean().detach()  # the first batch
    logits = BETA * (log_ratio - (kl_ema if z0 is None else z0))
    elements = 1 - torch.sigmoid(labels * logits) if paper_loss else -F.logsigmoid(labels * logits)
    weights = torch.where(desirable, hp["desirable_weight"], hp["undesirable_weight"])
    return (elements * weights).mean()


def _kto_case(tiny_model, training_data, tmp_path, **oxrl_kwargs):
    hp = registry.resolve_hyperparameters("kto")
    trainer = trainer_for("kto", tiny_model, training_data, tmp_path)
    desirable = torch.tensor([True, True, False, False])
    batch = unpaired_batch(desirable)
    ids, kl_ids, shift, ref, kl_policy, kl_ref = batch.ids, batch.kl_ids, batch.shift, batch.ref, batch.kl_policy, batch.kl_ref
    inputs = batch.inputs
    trainer.ref_model = batch.ref_model
    leaf = batch.policy.clone().requires_grad_(True)
    ours = trainer.compute_loss(LogProbTable([(ids, leaf, {}), (kl_ids, kl_policy, {})]), inputs)
    (our_grad,) = torch.autograd.grad(ours, leaf)
    if oxrl_kwargs.pop("trl_z0", False):
        oxrl_kwargs["z0"] = torch.clamp((kl_policy.sum(1) - kl_ref.sum(1)).mean(), min=0)
    theirs = oxrl_kto((leaf * shift).sum(1), ref.sum(1), desirable, hp, **oxrl_kwargs)
    (their_grad,) = torch.autograd.grad(theirs, leaf)
    return ours, our_grad, theirs, their_grad


# --- GRPO family (oxrl/algs/losses/*.py after common.prepare_loss_inputs; ent_coeff = kl_coeff = 0)


def oxrl_sgrpo(logps, old, adv, mask, clip_low, clip_high):
    ratio = torch.exp(logps - old)
    a = adv[:, None].expand_as(logps)
    surrogate = torch.minimum(ratio * a, torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high) * a)
    return -(surrogate * mask).sum() / mask.sum().clamp(min=1.0)


def oxrl_gspo(logps, old, adv, mask, clip_low, clip_high):
    lengths = mask.sum(-1).clamp(min=1.0)
    seq_ratio = torch.exp(((logps - old) * mask).sum(-1) / lengths)
    seq_adv = (adv[:, None].expand_as(logps) * mask).sum(-1) / lengths
    return -torch.minimum(seq_ratio * seq_adv, torch.clamp(seq_ratio, 1.0 - clip_low, 1.0 + clip_high) * seq_adv).mean()


def oxrl_cispo(logps, old, adv, mask, clip_low, clip_high):
    logratio = logps - old
    weight = torch.clamp(torch.exp(logratio), 1.0 - clip_low, 1.0 + clip_high)
    a = adv[:, None].expand_as(logps)
    return -(weight.detach() * logratio * a * mask).sum() / mask.sum().clamp(min=1.0)


def grpo_batch(low, high, seed=0):
    """4 completions (lengths 5, 3, 6, 2) with per-token ratios pi/pi_old drawn in [low, high]."""
    generator = torch.Generator().manual_seed(seed)
    mask = torch.zeros(4, 6)
    for row, n in enumerate([5, 3, 6, 2]):
        mask[row, :n] = 1
    logps = -(0.1 + 2 * torch.rand(4, 6, generator=generator))
    ratios = low + (high - low) * torch.rand(4, 6, generator=generator)
    return mask, logps, logps - torch.log(ratios), torch.tensor([1.0, -0.5, 0.7, -1.2])


def _grpo_case(method, oxrl_loss, ratio_range, tiny_model, training_data, tmp_path, *, ours_hp=None, clip=(0.2, 0.2)):
    """oxstudy's GRPOTrainer._compute_loss on one micro-batch that is the whole generation batch
    (num_items_in_batch counts its tokens), vs OXRL's loss with clip_low, clip_high = ``clip``."""
    overrides = {"optimizer_steps_per_generation": 1, **(ours_hp or {})}
    trainer = trainer_for(method, tiny_model, training_data, tmp_path, hyperparameters=overrides)
    mask, logps, old, adv = grpo_batch(*ratio_range)
    leaf = logps.clone().requires_grad_(True)
    trainer._get_per_token_logps_and_entropies = lambda *a, **k: (leaf, torch.zeros_like(leaf), None)
    trainer.current_gradient_accumulation_steps = 1
    inputs = {"prompt_ids": torch.ones(4, 2, dtype=torch.long), "prompt_mask": torch.ones(4, 2, dtype=torch.long),
              "completion_ids": torch.ones(4, 6, dtype=torch.long), "completion_mask": mask.long(),
              "advantages": adv, "num_items_in_batch": mask.sum(), "old_per_token_logps": old}
    ours = trainer._compute_loss(trainer.model, inputs)
    (our_grad,) = torch.autograd.grad(ours, leaf)
    theirs = oxrl_loss(leaf, old, adv, mask, *clip)
    (their_grad,) = torch.autograd.grad(theirs, leaf)
    return ours, our_grad, theirs, their_grad


CISPO_OXRL_CAP = {"epsilon_high": oxrl_profile("cispo")["epsilon_high"]}  # 1.2 = OXRL's 1 + clip_high

# "row of the docs table[: case]" -> (the case, what docs/algorithms.md says of it)
OTHER_ROWS = {
    "kto": (lambda *f: _kto_case(*f), "differs"),
    "kto: with 1 - sigma and TRL's z0": (lambda *f: _kto_case(*f, paper_loss=True, trl_z0=True), "equal"),
    "orpo": (lambda *f: _reference_free_case("orpo", oxrl_orpo, *f), "differs"),
    "orpo: OXRL's odds, TRL's NLL": (lambda *f: _reference_free_case("orpo", oxrl_orpo, *f, nll_mask=True), "differs"),
    "orpo: TRL's odds, OXRL's NLL": (lambda *f: _reference_free_case("orpo", oxrl_orpo, *f, average=True), "differs"),
    "orpo: length-averaged odds, NLL over prompt and response": (
        lambda *f: _reference_free_case("orpo", oxrl_orpo, *f, average=True, nll_mask=True), "equal"),
    "cpo": (lambda *f: _reference_free_case("cpo", oxrl_cpo, *f), "equal"),
    "alphapo": (lambda *f: _reference_free_case("alphapo", oxrl_alphapo, *f), "equal"),
    "alphapo: each profile's alpha": (
        lambda *f: _reference_free_case("alphapo", oxrl_alphapo, *f, oxrl_hp=oxrl_profile("alphapo")), "differs"),
    "simpo: as stored": (lambda *f: _reference_free_case("simpo", oxrl_simpo, *f, mask="all"), "differs"),
    "simpo: normalised over completion tokens": (
        lambda *f: _reference_free_case("simpo", oxrl_simpo, *f, mask="completion"), "equal"),
    "sgrpo": (lambda *f: _grpo_case("sgrpo", oxrl_sgrpo, (0.6, 1.5), *f), "equal"),
    "gspo: same clip": (
        lambda *f: _grpo_case("gspo", oxrl_gspo, (0.6, 1.5), *f, ours_hp={"epsilon": 0.2, "epsilon_high": 0.2}),
        "equal"),
    "gspo: each profile's clip": (lambda *f: _grpo_case("gspo", oxrl_gspo, (0.6, 1.5), *f), "differs"),
    "cispo: every r >= 0.8, OXRL profile": (
        lambda *f: _grpo_case("cispo", oxrl_cispo, (0.82, 1.5), *f, ours_hp=CISPO_OXRL_CAP), "gradient-only"),
    "cispo: some r < 0.8, OXRL profile": (
        lambda *f: _grpo_case("cispo", oxrl_cispo, (0.6, 1.5), *f, ours_hp=CISPO_OXRL_CAP), "differs"),
    "cispo: some r > 1.2, paper profile": (lambda *f: _grpo_case("cispo", oxrl_cispo, (0.82, 1.5), *f), "differs"),
}


@pytest.mark.parametrize("case", sorted(OTHER_ROWS))
def test_oxrl_loss_vs_oxstudy_trainer_on_fixed_inputs(case, request, tmp_path):
    build, expected = OTHER_ROWS[case]
    fixtures = request.getfixturevalue("model_dir"), request.getfixturevalue("data")  # shared with test_algorithms_losses
    ours, our_grad, theirs, their_grad = build(*fixtures, tmp_path)
    assert our_grad.abs().sum() > 0 and their_grad.abs().sum() > 0, case
    assert verdict(ours, our_grad, theirs, their_grad) == expected, (case, float(ours), float(theirs))


def test_cispo_value_gap_is_a_constant_of_the_policy():
    """Where only cispo's value differs, the gap is OXRL's extra term w A log pi_old / N: OXRL
    weights the log-ratio (log pi - log pi_old), MiniMax-M1 and TRL the log-probability."""
    mask, logps, old, adv = grpo_batch(0.82, 1.5)
    weight = torch.clamp(torch.exp(logps - old), max=1.2)  # = OXRL's clamp to [0.8, 1.2] here: every r >= 0.82
    trl_side = -(weight * adv[:, None] * logps * mask).sum() / mask.sum()  # tests/test_algorithms_losses.py
    gap = oxrl_cispo(logps, old, adv, mask, 0.2, 0.2) - trl_side
    assert float(gap) == pytest.approx(float((weight * adv[:, None] * old * mask).sum() / mask.sum()), rel=1e-5)


def test_every_row_of_the_docs_table_is_checked():
    """Each method named in docs/algorithms.md's OXRL diff table has a case above, and each case a row."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "algorithms.md").read_text()
    lines = text.split("## Diff against OXRL's implementations", 1)[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| method |"))
    rows = itertools.takewhile(lambda line: line.startswith("|"), lines[start + 2:])  # after the header rule
    documented = {re.sub(r" \(.*\)$", "", name.strip()) for row in rows for name in row.split("|")[1].split(",")}
    checked = set(VERDICT) | {case.split(":")[0] for case in OTHER_ROWS}
    assert documented == checked
