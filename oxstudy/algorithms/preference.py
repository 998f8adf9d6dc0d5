"""Offline preference methods on ``trl.DPOTrainer``.

Most of the DPO taxonomy is TRL's own ``DPOConfig.loss_type`` (see the registry's ``fixed``
values): dpo, ipo, hinge, exo, nca, robust-dpo, sppo, aot, aot-unpaired, apo, apo-down,
discopop, sigmoid-norm, wpo, f-dpo, ld-dpo, tr-dpo.

The methods TRL lacks are *loss overrides* on the same trainer, not new loops: each is a pure
function of the summed completion log-probabilities below, and :class:`OxDPOTrainer` swaps it
in for TRL's loss while keeping TRL's batching, reference model handling (frozen copy, or the
adapter-disabled base under LoRA), optimiser, scheduler and logging.

Notation: ``h_w = log pi(y_w|x) - log ref(y_w|x)``, ``h_l`` likewise, ``h = h_w - h_l``,
``sigma`` the logistic function, ``|y|`` the completion length in tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import torch


@dataclass
class PairLogps:
    """Summed completion log-probabilities of a batch of preference pairs (1-D tensors)."""

    chosen: torch.Tensor
    rejected: torch.Tensor
    ref_chosen: torch.Tensor
    ref_rejected: torch.Tensor
    chosen_lengths: torch.Tensor
    rejected_lengths: torch.Tensor

    @property
    def chosen_logratios(self) -> torch.Tensor:
        return self.chosen - self.ref_chosen

    @property
    def rejected_logratios(self) -> torch.Tensor:
        return self.rejected - self.ref_rejected


LossFn = Callable[[PairLogps, float, dict[str, Any], dict[str, Any]], "torch.Tensor"]


def rdpo_loss(batch: PairLogps, beta: float, hp: dict[str, Any], state: dict[str, Any]) -> torch.Tensor:
    """R-DPO, Park et al. 2024 (arXiv:2403.19159), Eq. 9:
    ``-log sigma(beta h - alpha (|y_w| - |y_l|))``."""
    import torch.nn.functional as F

    h = batch.chosen_logratios - batch.rejected_logratios
    length_gap = (batch.chosen_lengths - batch.rejected_lengths).to(h.dtype)
    return -F.logsigmoid(beta * h - hp["alpha"] * length_gap)


def cdpo_loss(batch: PairLogps, beta: float, hp: dict[str, Any], state: dict[str, Any]) -> torch.Tensor:
    """cDPO, Mitchell 2023 (conservative DPO): ``-(1-eps) log sigma(beta h) - eps log sigma(-beta h)``."""
    import torch.nn.functional as F

    eps = hp["label_smoothing"]
    z = beta * (batch.chosen_logratios - batch.rejected_logratios)
    return -(1 - eps) * F.logsigmoid(z) - eps * F.logsigmoid(-z)


def _global_sum_count(values: torch.Tensor) -> tuple[float, int]:
    """Sum and count of ``values`` over every process of the run (all-reduced when
    ``torch.distributed`` is initialised, so running batch statistics agree across GPUs; on one
    process just the local sum and count)."""
    import torch
    import torch.distributed as dist

    local = torch.stack([values.detach().sum().double(), torch.tensor(float(values.numel()), dtype=torch.float64,
                                                                         device=values.device)])
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(local, op=dist.ReduceOp.SUM)
    return float(local[0]), int(local[1])


def beta_dpo_loss(batch: PairLogps, beta: float, hp: dict[str, Any], state: dict[str, Any]) -> torch.Tensor:
    """beta-DPO, Wu et al. 2024 (arXiv:2407.08639), Eq. 7 (batch-level dynamic beta):
    ``beta_b = beta (1 + alpha (M_b - M0))``, loss ``-log sigma(beta_b h)``, with ``M_b`` a mean
    implicit reward margin ``beta h`` and ``M0`` its moving average (momentum ``m``), advanced
    once per optimizer step: ``M0 <- m M0 + (1 - m) M_step``.

    What each quantity is computed from (gradient accumulation splits a training batch into
    micro-batches whose losses are backpropagated one after the other, so the margin of the
    whole step is not known when the first micro-batch's beta_b is needed):

    - ``M_step`` is the mean margin over *every* pair of the optimizer step: all its
      micro-batches on all processes (the paper's training batch);
    - ``M0`` is the same for all micro-batches of a step; it advances when the first micro-batch
      of the next step arrives. The first step's ``M0`` is the margin of its first micro-batch
      (so that micro-batch has beta_b = beta);
    - ``M_b`` is the mean margin of the *micro-batch* over all processes (all-reduced under
      torch.distributed, so every GPU uses one beta_b); it equals the paper's batch margin when
      there is no gradient accumulation.

    ``state["step"]`` names the optimizer step the micro-batch belongs to (OxDPOTrainer sets it
    to ``global_step``); without it every call is an optimizer step of its own; ``None``
    (evaluation) reads ``M0`` and changes nothing. beta_b is a per-batch constant (no gradient
    flows through it), floored at 1e-3 * beta. The paper's optional data filtering is not
    applied."""
    import torch
    import torch.nn.functional as F

    h = batch.chosen_logratios - batch.rejected_logratios
    with torch.no_grad():
        total, count = _global_sum_count(beta * h)
        margin = total / count
        step = state["step"] if "step" in state else state.get("open_step", -1) + 1
        if step is not None and "open_step" in state and step != state["open_step"]:
            # The previous optimizer step is complete: M0 advances once, by that step's margin.
            step_margin = state["step_sum"] / state["step_count"]
            state["m0"] = hp["momentum"] * state["m0"] + (1 - hp["momentum"]) * step_margin
            state["step_sum"], state["step_count"] = 0.0, 0
        m0 = state.get("m0", margin)
        beta_b = max(beta * (1 + hp["alpha"] * (margin - m0)), 1e-3 * beta)
        if step is not None:
            state["m0"], state["open_step"] = m0, step
            state["step_sum"] = state.get("step_sum", 0.0) + total
            state["step_count"] = state.get("step_count", 0) + count
        state["beta"] = beta_b
    return -F.logsigmoid(beta_b * h)


def bco_loss(batch: PairLogps, beta: float, hp: dict[str, Any], state: dict[str, Any]) -> torch.Tensor:
    """BCO, Jung et al. 2024 (arXiv:2404.04656), paired form with the reward shift:
    ``-log sigma(r_w - delta) - log sigma(-(r_l - delta))``, ``r = beta h_{w,l}``, and ``delta``
    the running mean of every reward seen so far, chosen and rejected, this batch included
    (not backpropagated; all-reduced across processes under torch.distributed). TRL's
    ``bco_pair`` has no shift (delta = 0)."""
    import torch
    import torch.nn.functional as F

    chosen_rewards = beta * batch.chosen_logratios
    rejected_rewards = beta * batch.rejected_logratios
    with torch.no_grad():
        total, count = _global_sum_count(torch.cat([chosen_rewards, rejected_rewards]))
        seen = state.get("reward_count", 0) + count
        delta = state.get("delta", 0.0) + (total - count * state.get("delta", 0.0)) / seen
        state["reward_count"], state["delta"] = seen, delta
    return -F.logsigmoid(chosen_rewards - delta) - F.logsigmoid(-(rejected_rewards - delta))


def cal_dpo_loss(batch: PairLogps, beta: float, hp: dict[str, Any], state: dict[str, Any]) -> torch.Tensor:
    """Cal-DPO, Xiao et al. 2024 (arXiv:2412.14516), Eq. 10:
    ``-log sigma(h_w - h_l) + (h_w - 1/(2 beta))^2 + (h_l + 1/(2 beta))^2``."""
    import torch.nn.functional as F

    hw, hl = batch.chosen_logratios, batch.rejected_logratios
    return -F.logsigmoid(hw - hl) + (hw - 1 / (2 * beta)) ** 2 + (hl + 1 / (2 * beta)) ** 2


def dpop_loss(batch: PairLogps, beta: float, hp: dict[str, Any], state: dict[str, Any]) -> torch.Tensor:
    """DPO-Positive, Pal et al. 2024 (arXiv:2402.13228), Eq. 3:
    ``-log sigma(beta (h_w - h_l - lambda max(0, log ref(y_w) - log pi(y_w))))``."""
    import torch
    import torch.nn.functional as F

    hw, hl = batch.chosen_logratios, batch.rejected_logratios
    penalty = torch.clamp(-hw, min=0)
    return -F.logsigmoid(beta * (hw - hl - hp["dpop_lambda"] * penalty))


def odpo_loss(batch: PairLogps, beta: float, hp: dict[str, Any], state: dict[str, Any]) -> torch.Tensor:
    """ODPO, Amini et al. 2024 (arXiv:2402.10571), Eq. 8: ``-log sigma(beta h - Delta)``.
    The paper's offset is ``Delta = alpha log(s_w - s_l)``; with verifier rewards every pair has
    the same score gap, so the offset is a constant, exposed as ``offset``."""
    import torch.nn.functional as F

    h = batch.chosen_logratios - batch.rejected_logratios
    return -F.logsigmoid(beta * h - hp["offset"])


def gpo_loss(batch: PairLogps, beta: float, hp: dict[str, Any], state: dict[str, Any]) -> torch.Tensor:
    """GPO, Tang et al. 2024 (arXiv:2402.05749), Table 1: ``f(beta h)`` with a convex ``f``:
    exponential ``exp(-z)``, truncated_quadratic ``max(0, 1 - z)^2``, savage ``1/(1+exp(z))^2``
    (logistic, hinge and squared are the dpo, hinge and ipo methods)."""
    import torch

    z = beta * (batch.chosen_logratios - batch.rejected_logratios)
    kind = hp["gpo_loss"]
    if kind == "exponential":
        return torch.exp(-z)
    if kind == "truncated_quadratic":
        return torch.clamp(1 - z, min=0) ** 2
    if kind == "savage":
        return torch.sigmoid(-z) ** 2
    raise ValueError(f"gpo_loss must be exponential, truncated_quadratic or savage, not {kind!r}")


def focalpo_loss(batch: PairLogps, beta: float, hp: dict[str, Any], state: dict[str, Any]) -> torch.Tensor:
    """FocalPO, Liu et al. 2025 (arXiv:2501.06645), Eq. 5: ``-sigma(beta h)^gamma log sigma(beta h)``
    (the modulating factor is p^gamma, not focal loss's (1-p)^gamma: correctly ranked pairs
    weigh more)."""
    import torch
    import torch.nn.functional as F

    z = beta * (batch.chosen_logratios - batch.rejected_logratios)
    return -(torch.sigmoid(z) ** hp["gamma"]) * F.logsigmoid(z)


def slic_loss(batch: PairLogps, beta: float, hp: dict[str, Any], state: dict[str, Any]) -> torch.Tensor:
    """SLiC-HF, Zhao et al. 2023 (arXiv:2305.10425), Eq. 1 (reference-free):
    ``max(0, delta - log pi(y_w|x) + log pi(y_l|x)) - lambda log pi(y_w|x)``, the regulariser being
    the chosen (SFT-target) sequence's negative log-likelihood, summed over its tokens (the
    trainer averages over the batch). ``delta`` is the calibration margin, ``lambda`` is
    ``sft_weight``; no reference model and no ``beta`` are involved."""
    import torch

    margin = batch.chosen - batch.rejected
    return torch.clamp(hp["delta"] - margin, min=0) - hp["sft_weight"] * batch.chosen


def rpo_loss(batch: PairLogps, beta: float, hp: dict[str, Any], state: dict[str, Any]) -> torch.Tensor:
    """Iterative RPO, Pang et al. 2024 (arXiv:2404.19733), Eq. 1:
    ``-log sigma(beta h) - alpha log pi(y_w|x) / |y_w|``: the NLL term is each chosen sequence's
    log-likelihood divided by its own length (TRL's ``sft`` term is instead the mean over all
    chosen tokens of the batch, which weighs long sequences more)."""
    import torch.nn.functional as F

    h = batch.chosen_logratios - batch.rejected_logratios
    nll = -batch.chosen / batch.chosen_lengths.to(batch.chosen.dtype)
    return -F.logsigmoid(beta * h) + hp["rpo_alpha"] * nll


#: Override methods that never use a reference model (no frozen copy is kept, no reference forward).
REFERENCE_FREE = frozenset({"slic"})

#: Losses of the DPO-family methods TRL 1.16 lacks, by registry name.
CUSTOM_LOSSES: dict[str, LossFn] = {
    "rdpo": rdpo_loss,
    "cdpo": cdpo_loss,
    "beta-dpo": beta_dpo_loss,
    "cal-dpo": cal_dpo_loss,
    "dpop": dpop_loss,
    "odpo": odpo_loss,
    "gpo": gpo_loss,
    "focalpo": focalpo_loss,
    "slic": slic_loss,
    "rpo": rpo_loss,
    "bco": bco_loss,
}


def dpo_config_kwargs(method: str, hyperparameters: dict[str, Any]) -> dict[str, Any]:
    """``DPOConfig`` keyword arguments for a DPO-family method: the registry's fixed values,
    the method's hyperparameters that are DPOConfig fields, and method-specific translations
    (none at present: rpo and slic are loss overrides reading ``rpo_alpha`` / ``sft_weight``)."""
    from oxstudy.algorithms import registry

    info = registry.get(method)
    fields = set(registry.TRAINER_CONFIG_FIELDS["trl.DPOConfig"])
    kwargs: dict[str, Any] = dict(info.fixed)
    for key, value in hyperparameters.items():
        if key in fields and not (info.name in CUSTOM_LOSSES and key == "label_smoothing"):
            kwargs[key] = value
    return kwargs


def _oxdpo_trainer_class():
    """Build the override class lazily (importing TRL is slow)."""
    import torch
    from trl import DPOTrainer

    class OxDPOTrainer(DPOTrainer):
        """``trl.DPOTrainer`` with the loss replaced by one of :data:`CUSTOM_LOSSES`.

        Only ``_compute_loss`` changes: the policy and reference log-probabilities are computed
        exactly as TRL does (same fused LM head, same reference handling), then the method's
        loss is applied. Logs the same reward metrics as TRL.
        """

        def __init__(self, *args: Any, method: str, loss_hyperparameters: dict[str, Any], **kwargs: Any):
            super().__init__(*args, **kwargs)
            self.method = method
            self.loss_fn = CUSTOM_LOSSES[method]
            self.loss_hyperparameters = dict(loss_hyperparameters)
            self.loss_state: dict[str, Any] = {}
            if method in REFERENCE_FREE:
                self.ref_model = None  # TRL made a frozen copy; a reference-free loss never reads it

        def _compute_loss(self, model, inputs, return_outputs):
            mode = "train" if self.model.training else "eval"
            non_model_keys = {"completion_mask", "ref_chosen_logps", "ref_rejected_logps"}
            model_kwargs = {k: v for k, v in inputs.items() if k not in non_model_keys}
            model_kwargs["use_cache"] = False
            completion_mask = inputs["completion_mask"]
            shift_completion_mask = completion_mask[..., 1:]
            labels = inputs["input_ids"].masked_fill(completion_mask == 0, -100)
            outputs = model(**model_kwargs, labels=labels, fused_lm_head=True)
            seq_len = shift_completion_mask.size(1)
            logps = outputs.log_probs[:, -seq_len:].sum(dim=1)
            chosen_logps, rejected_logps = logps.chunk(2, dim=0)
            if self.method in REFERENCE_FREE:
                ref_chosen_logps = ref_rejected_logps = torch.zeros_like(chosen_logps).detach()
            elif self.precompute_ref_logps:
                ref_chosen_logps, ref_rejected_logps = inputs["ref_chosen_logps"], inputs["ref_rejected_logps"]
            else:
                # Same reference as TRL: the frozen copy, or (LoRA) the policy with adapters disabled.
                reference = self.ref_model if self.ref_model is not None else model
                ref_chosen_logps, ref_rejected_logps = self.compute_ref_log_probs(reference, inputs)
            lengths = shift_completion_mask.sum(dim=1)
            chosen_lengths, rejected_lengths = lengths.chunk(2, dim=0)
            batch = PairLogps(chosen_logps, rejected_logps, ref_chosen_logps, ref_rejected_logps,
                              chosen_lengths, rejected_lengths)
            # The optimizer step this micro-batch belongs to (global_step counts finished steps):
            # beta-dpo advances its running margin per step, not per micro-batch, and leaves it
            # unchanged on evaluation batches (None).
            self.loss_state["step"] = self.state.global_step if mode == "train" else None
            loss = self.loss_fn(batch, self.beta, self.loss_hyperparameters, self.loss_state).mean()

            with torch.no_grad():
                chosen_rewards = self.beta * (chosen_logps - ref_chosen_logps).detach()
                rejected_rewards = self.beta * (rejected_logps - ref_rejected_logps).detach()
                gather = self.accelerator.gather
                metrics = self._metrics[mode]
                metrics["rewards/chosen"].append(gather(chosen_rewards).mean().item())
                metrics["rewards/rejected"].append(gather(rejected_rewards).mean().item())
                metrics["rewards/accuracies"].append(
                    gather((chosen_rewards > rejected_rewards).float()).mean().item())
                metrics["rewards/margins"].append(gather(chosen_rewards - rejected_rewards).mean().item())
                metrics["logps/chosen"].append(gather(chosen_logps.detach()).mean().item())
                metrics["logps/rejected"].append(gather(rejected_logps.detach()).mean().item())
                if "beta" in self.loss_state:
                    metrics["beta"].append(float(self.loss_state["beta"]))
            return (loss, outputs) if return_outputs else loss

    return OxDPOTrainer


_TRAINER_CLASS: list[type] = []


def oxdpo_trainer_class() -> type:
    """The :class:`OxDPOTrainer` class (built on first use)."""
    if not _TRAINER_CLASS:
        _TRAINER_CLASS.append(_oxdpo_trainer_class())
    return _TRAINER_CLASS[0]


#: DPO-family methods: TRL's own loss types plus the loss overrides above.
METHODS = ("dpo", "ipo", "hinge", "exo", "nca", "robust-dpo", "sppo", "aot", "aot-unpaired",
           "apo", "apo-down", "discopop", "sigmoid-norm", "wpo", "f-dpo", "ld-dpo", "tr-dpo",
           *CUSTOM_LOSSES)

_NAMED_CLASSES: dict[str, type] = {}


def custom_trainer_class(method: str) -> type:
    """The override trainer of a method TRL lacks, named as in the registry (``RDPOTrainer``...)."""
    from oxstudy.algorithms import registry

    info = registry.get(method)
    if info.name not in _NAMED_CLASSES:
        class_name = info.trainer.rpartition(".")[2]
        _NAMED_CLASSES[info.name] = type(class_name, (oxdpo_trainer_class(),), {
            "__doc__": f"{CUSTOM_LOSSES[info.name].__doc__}\n\nA loss override on trl.DPOTrainer.",
            "__module__": __name__,
        })
    return _NAMED_CLASSES[info.name]


def build_trainer(info: Any, *, model: Any, tokenizer: Any, args: Any, dataset: Any, peft_config: Any,
                  hyperparameters: dict[str, Any], callbacks: list | None = None, **unused: Any):
    """A ``trl.DPOTrainer`` (the loss variant is in ``args``) or, for a method TRL lacks, its
    loss override. The reference model is TRL's: a frozen copy of the policy, or the
    adapter-disabled base model under LoRA."""
    common = dict(model=model, ref_model=None, args=args, train_dataset=dataset, processing_class=tokenizer,
                  peft_config=peft_config, callbacks=callbacks)
    if info.name in CUSTOM_LOSSES:
        return custom_trainer_class(info.name)(method=info.name, loss_hyperparameters=hyperparameters, **common)
    from trl import DPOTrainer

    trainer = DPOTrainer(**common)
    if args.sync_ref_model:  # tr-dpo: the real step count is known only now (epochs x batches)
        from oxstudy.algorithms import registry
        from oxstudy.errors import SpecError

        problems = registry.validate_schedule(info.name, hyperparameters, planned_optimizer_steps(trainer))
        if problems:
            raise SpecError(*(f"algorithms[{info.name}].hyperparameters: {p}" for p in problems))
    return trainer


def planned_optimizer_steps(trainer: Any) -> int:
    """The optimizer steps ``trainer.train()`` will take: ``max_steps`` if set, else
    ceil(epochs x ceil(batches per epoch / gradient accumulation)), as transformers.Trainer
    (``_inner_training_loop``) computes it."""
    import math

    args = trainer.args
    if args.max_steps > 0:
        return int(args.max_steps)
    batches = len(trainer.get_train_dataloader())
    per_epoch = max(math.ceil(batches / args.gradient_accumulation_steps), 1)
    return int(math.ceil(args.num_train_epochs * per_epoch))


__all__ = ["CUSTOM_LOSSES", "METHODS", "PairLogps", "build_trainer", "custom_trainer_class", "dpo_config_kwargs",
           "oxdpo_trainer_class"]
