"""Reference-free preference methods on ``trl.experimental.cpo.CPOTrainer``.

``p_w, p_l``: log-probabilities of the chosen / rejected completions (summed for cpo,
length-averaged for simpo and alphapo), ``beta`` = ``training.beta``.

- **cpo**: Xu et al. 2024, *Contrastive Preference Optimization* (arXiv:2401.08417).
  ``-log sigma(beta (p_w - p_l)) + cpo_alpha * NLL(y_w)``.
- **simpo**: Meng et al. 2024, *SimPO: Simple Preference Optimization with a Reference-Free
  Reward* (arXiv:2405.14734). ``-log sigma(beta (p_w - p_l) - gamma)``, ``gamma = simpo_gamma``.
- **alphapo**: Gupta et al. 2025, *AlphaPO: Reward Shape Matters for LLM Alignment*
  (arXiv:2501.03884). ``-log sigma(beta (r_w - r_l) - gamma)``, ``r = (1 - exp(p)^-alpha) / alpha``.
"""

from __future__ import annotations

from typing import Any

METHODS = ("cpo", "simpo", "alphapo")


def build_trainer(info: Any, *, model: Any, tokenizer: Any, args: Any, dataset: Any, peft_config: Any,
                  hyperparameters: dict[str, Any], callbacks: list, **unused: Any):
    """A CPOTrainer; the loss variant is in ``args`` (``loss_type``, ``cpo_alpha``, ``alpha``)."""
    from trl.experimental.cpo import CPOTrainer

    return CPOTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                      peft_config=peft_config, callbacks=callbacks)
