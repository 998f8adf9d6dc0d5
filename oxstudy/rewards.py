"""Reward variants for online RL (the GRPO family, RLOO, online DPO), as TRL reward callables.

Every reward is ``f(prompts=, completions=, answer=, **columns) -> list[float]`` over the
completions of a batch. ``exact_match`` is the shared task verifier (1 when the final ``#### N``
equals the reference); the others are the controls of the "counter-intuitive RL" literature:

- **exact_match** (default): ``R = 1[answer(o) = a*]``.
- **format**: ``R = 1[o ends with a parseable #### N]``: rewards the format, never correctness
  (Shao et al. 2025, *Spurious Rewards: Rethinking Training Signals in RLVR*, arXiv:2506.10947,
  their "format reward").
- **random**: ``R ~ Bernoulli(p)`` independent of the completion's correctness (Shao et al. 2025,
  "random reward", p = 0.5 there). Reproducible: the coin is ``u(seed, prompt, completion) < p`` with
  ``u`` a sha256-derived uniform, so a re-run draws the same rewards (and two identical completions
  of one prompt get the same coin, which iid coins would not guarantee).
- **noisy**: ``R = exact_match XOR 1[u(seed, prompt, completion) < q]``: ground truth flipped with
  probability q (Mirage or Method?, arXiv:2508.21188, and Shao et al.'s noisy-label setting).
- **incorrect**: ``R = 1[answer(o) exists and != a*]``: rewards a wrong final answer. Shao et al.'s
  "incorrect reward" rewards agreement with one fixed incorrect label per problem; this variant
  (any wrong parseable answer) is the one issue 13 asks for and needs no extra label.

``format_weight`` (``data.reward.format_weight``) adds ``w x format`` to every kind but ``format``.
Each callable counts the completions it scored (``scored``), which the run record keeps.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from oxstudy.selfplay import _completion_text, exact_match_reward, format_reward

KINDS = ("exact_match", "format", "random", "noisy", "incorrect")


def uniform_hash(seed: int, prompt: Any, completion: Any, salt: str) -> float:
    """A uniform number in [0, 1) determined by (seed, prompt, completion): sha256, never Python's
    salted ``hash()``, so it agrees across processes and machines."""
    text = f"oxstudy.reward/{salt}/{seed}\x00{_completion_text(prompt)}\x00{_completion_text(completion)}"
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") / 2.0**64


def random_reward(prompts: list, completions: list, *, p: float, seed: int = 0) -> list[float]:
    """Bernoulli(p) rewards, seeded per (seed, prompt, completion)."""
    return [
        1.0 if uniform_hash(seed, x, c, "random") < p else 0.0
        for x, c in zip(prompts, completions, strict=True)
    ]


def noisy_reward(prompts: list, completions: list, answer: list, *, q: float, seed: int = 0) -> list[float]:
    """Exact match flipped with probability q, seeded per (seed, prompt, completion)."""
    truth = exact_match_reward(completions, answer)
    return [
        1.0 - r if uniform_hash(seed, x, c, "noisy") < q else r
        for r, x, c in zip(truth, prompts, completions, strict=True)
    ]


def incorrect_reward(completions: list, answer: list) -> list[float]:
    """1.0 for a parseable final answer that is wrong, else 0.0."""
    from oxstudy.tasks import extract_answer

    truth = exact_match_reward(completions, answer)
    parsed = [extract_answer(_completion_text(c), strict=True) is not None for c in completions]
    return [1.0 if ok and r == 0.0 else 0.0 for ok, r in zip(parsed, truth, strict=True)]


class RewardFunction:
    """A named TRL reward callable that counts the completions it scored."""

    def __init__(self, name: str, score: Callable[..., list[float]], weight: float = 1.0) -> None:
        self.__name__ = name  # TRL logs rewards/<__name__>/mean
        self.score = score
        self.weight = weight
        self.scored = 0

    def __call__(
        self, prompts: list | None = None, completions: list | None = None, **columns: Any
    ) -> list[float]:
        completions = list(completions or [])
        prompts = list(prompts) if prompts is not None else [""] * len(completions)
        values = self.score(prompts=prompts, completions=completions, **columns)
        self.scored += len(completions)
        return [self.weight * v for v in values]


def reward_functions(reward: Any = None) -> list[RewardFunction]:
    """The TRL reward callables of a :class:`~oxstudy.spec.RewardSpec` (None: exact match)."""
    kind = getattr(reward, "kind", "exact_match")
    format_weight = float(getattr(reward, "format_weight", 0.0) or 0.0)
    seed = int(getattr(reward, "seed", 0) or 0)
    if kind == "exact_match":
        main = RewardFunction(
            "exact_match_reward", lambda completions, answer, **_: exact_match_reward(completions, answer)
        )
    elif kind == "format":
        return [RewardFunction("format_reward", lambda completions, **_: format_reward(completions))]
    elif kind == "random":
        p = float(reward.p)
        main = RewardFunction(
            "random_reward",
            lambda prompts, completions, **_: random_reward(prompts, completions, p=p, seed=seed),
        )
    elif kind == "noisy":
        q = float(reward.q)
        main = RewardFunction(
            "noisy_reward",
            lambda prompts, completions, answer, **_: noisy_reward(
                prompts, completions, answer, q=q, seed=seed
            ),
        )
    elif kind == "incorrect":
        main = RewardFunction(
            "incorrect_reward", lambda completions, answer, **_: incorrect_reward(completions, answer)
        )
    else:
        raise ValueError(f"unknown reward kind {kind!r} (known: {', '.join(KINDS)})")
    if format_weight <= 0:
        return [main]
    return [
        main,
        RewardFunction("format_reward", lambda completions, **_: format_reward(completions), format_weight),
    ]


def describe(reward: Any = None) -> dict[str, Any]:
    """The reward as recorded in a run record."""
    if reward is None:
        return {"kind": "exact_match", "format_weight": 0.0}
    return {k: v for k, v in reward.model_dump(mode="json").items() if v is not None}
