"""Online RL methods: the GRPO family on ``trl.GRPOTrainer``, RLOO, online DPO.

Rewards are the shared task verifier's exact match (optionally plus a weighted format reward),
see :func:`oxstudy.selfplay.reward_functions`. Notation: ``r_t = pi(o_t)/pi_old(o_t)`` token
importance ratio, ``A_i`` the group-normalised advantage of completion ``i`` of ``G``,
``|o_i|`` its length, ``eps`` / ``eps_high`` the clip range. ``beta`` here is the KL
coefficient (TRL's default 0: no reference model), not the shared preference temperature.

GRPO-family variants are TRL's ``GRPOConfig.loss_type`` and ``importance_sampling_level``. All run
off-policy mini-batching by default: one generation batch feeds ``optimizer_steps_per_generation``
optimizer steps (TRL's ``steps_per_generation``), so the sampling policy's log-probs are kept and
the ratio ``r_t`` moves away from 1 after the first step, where the clips and gates act.

- **grpo** (token level): Shao et al. 2024, *DeepSeekMath* (arXiv:2402.03300).
  ``-1/G sum_i 1/|o_i| sum_t min(r_t A_i, clip(r_t, 1-eps, 1+eps) A_i) + beta KL``.
- **sgrpo**: the OXRL study's default (``oxrl/algs/losses/sgrpo.py``): the same surrogate averaged
  over all tokens of the micro-batch (TRL's ``loss_type="bnpo"``, which is local-batch token
  normalisation; the BNPO paper's Beta normalisation is not implemented, so no method is called bnpo).
- **gspo**: Zheng et al. 2025, *Group Sequence Policy Optimization* (arXiv:2507.18071).
  ``-1/G sum_i min(s_i A_i, clip(s_i, 1-eps, 1+eps_high) A_i)``,
  ``s_i = exp(mean_t log r_t)``.
- **cispo**: MiniMax 2025, *MiniMax-M1* (arXiv:2506.13585).
  ``-sum_{i,t} sg(min(r_t, epsilon_high)) A_i log pi(o_t) / sum_i |o_i|`` (TRL caps at
  ``epsilon_high`` itself).
- **dr-grpo**: Liu et al. 2025, *Understanding R1-Zero-Like Training* (arXiv:2503.20783).
  ``-sum_{i,t} min(r_t A_i, clip(r_t) A_i) / (G * L_max)`` with ``A_i = R_i - mean(R)``.
- **dapo**: Yu et al. 2025, *DAPO* (arXiv:2503.14476). Token-level mean over the batch,
  decoupled clip ``(1-eps, 1+eps_high)``, truncated completions masked, the soft overlong
  punishment (Eq. 13) as an extra reward term (:func:`overlong_penalty`), and dynamic sampling
  (:class:`DAPOTrainer`: groups whose rewards are all equal are dropped and refilled with groups of
  freshly drawn training prompts, at most ``dynamic_sampling_max_rounds`` extra generation rounds;
  if still short, the batch is completed with dropped groups, which carry zero advantage).
- **sapo**: Gao et al. 2025, *Soft Adaptive Policy Optimization* (arXiv:2511.20347).
  ``-sigma(tau (r_t - 1)) 4/tau A_i``, ``tau`` by the sign of ``A_i``.

Other trainers:

- **rloo**: Ahmadian et al. 2024, *Back to Basics* (arXiv:2402.14740). ``A_i = R_i -
  1/(k-1) sum_{j != i} R_j`` (rewards minus ``beta`` KL), clipped sequence-level ratio.
- **online-dpo**: Guo et al. 2024, *Direct Language Model Alignment from Online AI Feedback*
  (arXiv:2402.04792). Two samples per prompt from the current policy, ranked by the reward,
  DPO's ``-log sigma(beta h)`` with ``beta`` = ``training.beta``.

Generation runs with transformers ``generate()``; ``use_vllm: true`` (GPU only, the ``gpu``
extra) switches TRL to vLLM.
"""

from __future__ import annotations

from typing import Any

METHODS = ("grpo", "sgrpo", "gspo", "cispo", "dr-grpo", "dapo", "sapo", "rloo", "online-dpo")


def overlong_penalty(max_completion_length: int, buffer_ratio: float, factor: float = 1.0):
    """DAPO's soft overlong punishment (Yu et al. 2025, Eq. 13) as a reward function.

    With ``L = max_completion_length`` and ``L_buf = round(buffer_ratio * L)``: 0 for ``|o| <= L -
    L_buf``, ``factor * ((L - L_buf) - |o|) / L_buf`` (from 0 down to ``-factor``) inside the buffer,
    ``-factor`` beyond ``L``. It is added to the other rewards (TRL sums reward functions)."""
    buffer = max(1, round(buffer_ratio * max_completion_length))
    expected = max_completion_length - buffer

    def overlong_reward(completions: list, completion_ids: list, **kwargs: Any) -> list[float]:
        out = []
        for ids in completion_ids:
            length = len(ids)
            if length <= expected:
                out.append(0.0)
            elif length <= max_completion_length:
                out.append(factor * (expected - length) / buffer)
            else:
                out.append(-factor)
        return out

    return overlong_reward


# Per-row tensors of a TRL GRPO generation batch and how each is padded when batches are merged.
_LEFT_PADDED = ("prompt_ids", "prompt_mask")
_RIGHT_PADDED = ("completion_ids", "completion_mask", "old_per_token_logps", "ref_per_token_logps",
                 "sampling_per_token_logps", "tool_mask", "importance_sampling_ratio")


def merge_generation_batches(parts: list[dict[str, Any]], pad_token_id: int) -> dict[str, Any]:
    """Concatenate row subsets of TRL generation batches (as returned by
    ``GRPOTrainer._generate_and_score_completions``), re-padding to the widest part."""
    import torch
    import torch.nn.functional as F

    keys = set(parts[0])
    unsupported = keys - set(_LEFT_PADDED) - set(_RIGHT_PADDED) - {"advantages", "num_items_in_batch"}
    if unsupported:
        raise NotImplementedError(f"dynamic sampling supports text-only batches (got {sorted(unsupported)})")
    merged: dict[str, Any] = {}
    for key in keys - {"num_items_in_batch"}:
        tensors = [part[key] for part in parts]
        if key == "advantages":
            merged[key] = torch.cat(tensors)
            continue
        width = max(t.size(1) for t in tensors)
        value = pad_token_id if key in ("prompt_ids", "completion_ids") else (1 if key == "tool_mask" else 0)
        padded = []
        for t in tensors:
            missing = width - t.size(1)
            spec = (missing, 0) if key in _LEFT_PADDED else (0, missing)
            padded.append(F.pad(t, (*([0, 0] * (t.dim() - 2)), *spec), value=value))
        merged[key] = torch.cat(padded)
    return merged


def _dapo_trainer_class():
    import torch
    from trl import GRPOTrainer

    class DAPOTrainer(GRPOTrainer):
        """``trl.GRPOTrainer`` (``loss_type="dapo"``) with DAPO's dynamic sampling.

        Yu et al. 2025 (arXiv:2503.14476), Sec. 3.2: groups whose rewards are all equal (all solved
        or all failed) have zero advantage and give no gradient; DAPO over-samples and keeps only
        groups with reward variance. Here each generation batch is scored by TRL as usual, then
        groups with all-zero advantages are dropped and replaced by groups of freshly drawn training
        prompts, for at most ``dynamic_sampling_max_rounds`` extra generation rounds. If the batch is
        still short, it is completed with dropped groups (zero advantage) so the batch size stays
        fixed. Metrics: ``dynamic_sampling/kept_fraction`` (variance groups among the first
        generation), ``dynamic_sampling/rounds`` and ``dynamic_sampling/filled_degenerate``.
        """

        def __init__(self, *args: Any, dynamic_sampling: bool = True, dynamic_sampling_max_rounds: int = 3,
                     **kwargs: Any):
            super().__init__(*args, **kwargs)
            self.dynamic_sampling = dynamic_sampling
            self.dynamic_sampling_max_rounds = int(dynamic_sampling_max_rounds)
            if dynamic_sampling and self.accelerator.num_processes > 1:
                raise ValueError("dapo: dynamic sampling is implemented for one training process; "
                                 "set hyperparameters.dynamic_sampling: false for multi-GPU runs")
            self._refill_generator = torch.Generator().manual_seed(int(self.args.seed))

        def _generate_and_score_completions(self, inputs):
            output = super()._generate_and_score_completions(inputs)
            if not self.dynamic_sampling or not self.model.training:
                return output
            groups_needed = len(inputs) // self.num_generations
            kept, dropped = self._split_groups(output)
            mode_metrics = self._metrics["train"]
            mode_metrics["dynamic_sampling/kept_fraction"].append(len(kept) / max(groups_needed, 1))
            rounds = 0
            while len(kept) < groups_needed and rounds < self.dynamic_sampling_max_rounds:
                rounds += 1
                missing = groups_needed - len(kept)
                indices = torch.randint(len(self.train_dataset), (missing,), generator=self._refill_generator)
                rows = [self.train_dataset[int(i)] for i in indices for _ in range(self.num_generations)]
                more_kept, more_dropped = self._split_groups(super()._generate_and_score_completions(rows))
                kept += more_kept
                dropped += more_dropped
            filled = max(groups_needed - len(kept), 0)
            groups = (kept + dropped[:filled])[:groups_needed]
            mode_metrics["dynamic_sampling/rounds"].append(float(rounds))
            mode_metrics["dynamic_sampling/filled_degenerate"].append(float(filled))
            if rounds == 0:
                return output
            merged = merge_generation_batches(groups, self._tokenizer.pad_token_id)
            loss_mask = merged["completion_mask"] * merged.get("tool_mask", 1)
            merged["num_items_in_batch"] = self.accelerator.gather(loss_mask.sum()).sum()
            return merged

        def _split_groups(self, output):
            """Row subsets of ``output``, one per group: (groups with reward variance, the rest)."""
            group_size = self.num_generations
            advantages = output["advantages"]
            informative = advantages.view(-1, group_size).abs().amax(dim=1) > 0
            kept, dropped = [], []
            for g, keep in enumerate(informative.tolist()):
                rows = slice(g * group_size, (g + 1) * group_size)
                part = {k: v[rows] for k, v in output.items() if k != "num_items_in_batch"}
                (kept if keep else dropped).append(part)
            return kept, dropped

    return DAPOTrainer


_DAPO: list[type] = []


def dapo_trainer_class() -> type:
    """The :class:`DAPOTrainer` class (built on first use: importing TRL is slow)."""
    if not _DAPO:
        _DAPO.append(_dapo_trainer_class())
    return _DAPO[0]


def build_trainer(info: Any, *, model: Any, tokenizer: Any, args: Any, dataset: Any, peft_config: Any,
                  hyperparameters: dict[str, Any], callbacks: list, reward_funcs: list, **unused: Any):
    """A GRPOTrainer (DAPOTrainer for dapo), RLOOTrainer or OnlineDPOTrainer with the given reward
    callables (plus DAPO's overlong reward term when ``overlong_buffer_ratio`` > 0)."""
    import importlib

    common = dict(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                  peft_config=peft_config, callbacks=callbacks)
    if info.name == "dapo":
        reward_funcs = list(reward_funcs)
        if hyperparameters.get("overlong_buffer_ratio", 0) > 0:
            reward_funcs.append(overlong_penalty(args.max_completion_length, hyperparameters["overlong_buffer_ratio"],
                                                 hyperparameters.get("overlong_penalty_factor", 1.0)))
        return dapo_trainer_class()(
            reward_funcs=reward_funcs, dynamic_sampling=hyperparameters.get("dynamic_sampling", True),
            dynamic_sampling_max_rounds=hyperparameters.get("dynamic_sampling_max_rounds", 3), **common)
    module, _, name = info.trainer.rpartition(".")
    trainer_class = getattr(importlib.import_module(module), name)
    return trainer_class(reward_funcs=reward_funcs, **common)
