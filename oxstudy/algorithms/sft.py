"""SFT-like methods on ``trl.SFTTrainer``.

- **sft**: supervised fine-tuning on gold worked solutions. Ouyang et al. 2022, *Training
  language models to follow instructions with human feedback* (arXiv:2203.02155).
  Loss: ``-1/N sum_t log pi(y_t | x, y_<t)`` over completion tokens (prompt tokens masked).
- **sp-rft**: self-play rejection-sampling fine-tuning. Yuan et al. 2023, *Scaling Relationship
  on Learning Mathematical Reasoning with Large Language Models* (RFT, arXiv:2308.01825).
  Sample n solutions per training prompt from the base model, keep the verifier-accepted ones
  (:func:`oxstudy.selfplay.derive_training_data`), then the SFT loss above on them. TRL has no
  rejection-sampling trainer: sampling and filtering are data preparation, training is SFT.
"""

from __future__ import annotations

from typing import Any

METHODS = ("sft", "sp-rft")


def build_trainer(info: Any, *, model: Any, tokenizer: Any, args: Any, dataset: Any, peft_config: Any,
                  hyperparameters: dict[str, Any], callbacks: list, **unused: Any):
    """A ``trl.SFTTrainer`` on a prompt/completion dataset (completion-only loss)."""
    from trl import SFTTrainer

    return SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                      peft_config=peft_config, callbacks=callbacks)
