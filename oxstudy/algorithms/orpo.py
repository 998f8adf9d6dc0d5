"""ORPO on ``trl.experimental.orpo.ORPOTrainer``.

- **orpo**: Hong et al. 2024, *ORPO: Monolithic Preference Optimization without Reference Model*
  (arXiv:2403.07691). ``NLL(y_w) - lambda log sigma(log odds(y_w) - log odds(y_l))`` with
  ``odds(y) = p / (1 - p)``, ``p = exp(mean_t log pi(y_t))`` and ``lambda`` = ``training.beta``.
"""

from __future__ import annotations

from typing import Any

METHODS = ("orpo",)


def build_trainer(info: Any, *, model: Any, tokenizer: Any, args: Any, dataset: Any, peft_config: Any,
                  hyperparameters: dict[str, Any], callbacks: list, **unused: Any):
    """An ORPOTrainer (no reference model)."""
    from trl.experimental.orpo import ORPOTrainer

    return ORPOTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                       peft_config=peft_config, callbacks=callbacks)
