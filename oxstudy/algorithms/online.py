"""Online RL methods: the GRPO family on ``trl.GRPOTrainer``, RLOO, online DPO.

Rewards are the shared task verifier's exact match (optionally plus a weighted format reward),
see :func:`oxstudy.selfplay.reward_functions`. Notation: ``r_t = pi(o_t)/pi_old(o_t)`` token
importance ratio, ``A_i`` the group-normalised advantage of completion ``i`` of ``G``,
``|o_i|`` its length, ``eps`` / ``eps_high`` the clip range. ``beta`` here is the KL
coefficient (TRL's default 0: no reference model), not the shared preference temperature.

GRPO-family variants are TRL's ``GRPOConfig.loss_type`` and ``importance_sampling_level``:

- **grpo** (alias **sgrpo**, token level): Shao et al. 2024, *DeepSeekMath* (arXiv:2402.03300).
  ``-1/G sum_i 1/|o_i| sum_t min(r_t A_i, clip(r_t, 1-eps, 1+eps) A_i)``.
- **gspo**: Zheng et al. 2025, *Group Sequence Policy Optimization* (arXiv:2507.18071).
  ``-1/G sum_i min(s_i A_i, clip(s_i, 1-eps, 1+eps_high) A_i)``,
  ``s_i = exp(mean_t log r_t)``.
- **cispo**: MiniMax 2025, *MiniMax-M1* (arXiv:2506.13585).
  ``-sum_{i,t} sg(min(r_t, eps_max)) A_i log pi(o_t) / sum_i |o_i|``.
- **dr-grpo**: Liu et al. 2025, *Understanding R1-Zero-Like Training* (arXiv:2503.20783).
  ``-sum_{i,t} min(r_t A_i, clip(r_t) A_i) / (G * L_max)`` with ``A_i = R_i - mean(R)``.
- **dapo**: Yu et al. 2025, *DAPO* (arXiv:2503.14476). Token-level mean over the batch,
  decoupled clip ``(1-eps, 1+eps_high)``, truncated completions masked.
- **bnpo**: Xiao et al. 2025, *BNPO* (arXiv:2506.02864). Token-level mean over the local batch.
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

METHODS = ("grpo", "gspo", "cispo", "dr-grpo", "dapo", "bnpo", "sapo", "rloo", "online-dpo")


def build_trainer(info: Any, *, model: Any, tokenizer: Any, args: Any, dataset: Any, peft_config: Any,
                  hyperparameters: dict[str, Any], callbacks: list, reward_funcs: list, **unused: Any):
    """A GRPOTrainer, RLOOTrainer or OnlineDPOTrainer with the given reward callables."""
    import importlib

    module, _, name = info.trainer.rpartition(".")
    trainer_class = getattr(importlib.import_module(module), name)
    return trainer_class(model=model, reward_funcs=reward_funcs, args=args, train_dataset=dataset,
                         processing_class=tokenizer, peft_config=peft_config, callbacks=callbacks)
