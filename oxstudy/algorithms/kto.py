"""Unpaired preference methods on ``trl.KTOTrainer``.

``h = log pi(y|x) - log ref(y|x)``, ``z0 = max(0, KL estimate on mismatched pairs)``.

- **kto**: Ethayarajh et al. 2024, *KTO: Model Alignment as Prospect Theoretic Optimization*
  (arXiv:2402.01306). Desirable: ``w_d (1 - sigma(beta (h - z0)))``; undesirable:
  ``w_u (1 - sigma(beta (z0 - h)))``.
- **apo-unpaired**: D'Oosterlinck et al. 2024, *Anchored Preference Optimization and
  Contrastive Revisions* (arXiv:2408.06266), APO-zero on unpaired labels. Desirable:
  ``1 - sigma(beta h)``; undesirable: ``sigma(beta h)``.

The unpaired labels come from self-play: every sampled completion labelled by the verifier.
"""

from __future__ import annotations

from typing import Any

METHODS = ("kto", "apo-unpaired")


def build_trainer(info: Any, *, model: Any, tokenizer: Any, args: Any, dataset: Any, peft_config: Any,
                  hyperparameters: dict[str, Any], callbacks: list, **unused: Any):
    """A KTOTrainer (reference: a frozen copy, or the adapter-disabled base under LoRA)."""
    from trl import KTOTrainer

    return KTOTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                      peft_config=peft_config, callbacks=callbacks)
