"""Sample-polarity RL: positive-only (PSR), negative-only (NSR) and weighted (W-REINFORCE).

Zhu, Xia, Wei, Chen, Chen, Meng 2025, *The Surprising Effectiveness of Negative Reinforcement in
LLM Reasoning* (arXiv:2506.01347). With a binary verifier reward ``r(x, y) in {+1, -1}`` the
RLVR objective decomposes into

- PSR: ``L_PSR = -E_x [ sum_{y: r=+1} pi(y|x) ]``, on-policy gradient
  ``-E_{y~pi} [ 1[r=+1] grad log pi(y|x) ]`` (reinforce the correct samples only);
- NSR: ``L_NSR = -E_x [ sum_{y: r=-1} -pi(y|x) ]``, gradient ``+E_{y~pi} [ 1[r=-1] grad log pi(y|x) ]``
  (push down the incorrect samples only);
- W-REINFORCE: ``L = lambda * L_PSR + L_NSR`` (lambda = 0.1 in the paper).

As advantages of a REINFORCE loss ``-sum_{i,t} A_i log pi(o_{i,t}) / sum_i |o_i|`` (token mean over
the batch, no baseline, no std scaling):

    PSR: A_i = 1[R_i = 1]     NSR: A_i = -1[R_i = 0]     W-REINFORCE: A_i = lambda 1[R_i = 1] - 1[R_i = 0]

where ``R_i`` is the weighted sum of the reward callables (oxstudy's verifier gives 1 / 0) and a
sample counts as correct when ``R_i > 0.5``. Implemented on TRL's GRPOTrainer: the advantages of
each generation batch are replaced, the loss is TRL's ``bnpo`` (token mean over the local batch)
with ``num_iterations = 1``, so the importance ratio is 1 and the GRPO clip is inert: the gradient
is exactly the REINFORCE gradient above.
"""

from __future__ import annotations

from typing import Any

METHODS = ("psr", "nsr", "w-reinforce")

#: (weight of correct samples, weight of incorrect samples) per method; W-REINFORCE's lambda is a
#: hyperparameter (``polarity_lambda``).
POLARITY_WEIGHTS = {"psr": (1.0, 0.0), "nsr": (0.0, 1.0), "w-reinforce": (None, 1.0)}
CORRECT_THRESHOLD = 0.5


def polarity_advantages(
    rewards: Any, positive_weight: float, negative_weight: float, threshold: float = CORRECT_THRESHOLD
) -> Any:
    """``A_i = positive_weight * 1[R_i > threshold] - negative_weight * 1[R_i <= threshold]`` for a
    1-D tensor of rewards (NaN = unscorable -> 0)."""
    import torch

    correct = rewards > threshold
    advantages = torch.where(
        correct, torch.full_like(rewards, positive_weight), torch.full_like(rewards, -negative_weight)
    )
    return torch.where(torch.isnan(rewards), torch.zeros_like(rewards), advantages)


def method_weights(method: str, hyperparameters: dict[str, Any]) -> tuple[float, float]:
    positive, negative = POLARITY_WEIGHTS[method]
    if positive is None:
        positive = float(hyperparameters.get("polarity_lambda", 0.1))
    return float(positive), float(negative)


def _trainer_class():
    from trl import GRPOTrainer

    class PolarityGRPOTrainer(GRPOTrainer):
        """GRPOTrainer whose advantages are the sample-polarity weights (module docstring)."""

        def __init__(self, *args: Any, positive_weight: float, negative_weight: float, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.positive_weight = positive_weight
            self.negative_weight = negative_weight
            self._polarity_rewards = None

        def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
            rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
            self._polarity_rewards = rewards_per_func  # gathered over processes, like TRL's own advantages
            return rewards_per_func

        def _generate_and_score_completions(self, inputs):
            output = super()._generate_and_score_completions(inputs)
            weights = self.reward_weights.to(self._polarity_rewards.device).unsqueeze(0)
            rewards = (self._polarity_rewards * weights).nansum(dim=1)
            rewards[self._polarity_rewards.isnan().all(dim=1)] = float("nan")
            advantages = polarity_advantages(rewards, self.positive_weight, self.negative_weight)
            local = len(output["advantages"])
            start = self.accelerator.process_index * local
            output["advantages"] = advantages[start : start + local].to(output["advantages"].device)
            return output

    return PolarityGRPOTrainer


def build_trainer(
    info: Any,
    *,
    model: Any,
    tokenizer: Any,
    args: Any,
    dataset: Any,
    peft_config: Any,
    hyperparameters: dict[str, Any],
    callbacks: list,
    reward_funcs: list,
    **unused: Any,
):
    """A GRPOTrainer with polarity advantages for ``psr``, ``nsr`` or ``w-reinforce``."""
    positive, negative = method_weights(info.name, hyperparameters)
    return _trainer_class()(
        model=model,
        reward_funcs=reward_funcs,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=callbacks,
        positive_weight=positive,
        negative_weight=negative,
    )
