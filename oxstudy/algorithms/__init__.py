"""Post-training algorithms: a registry of method metadata over Hugging Face TRL.

``oxstudy.algorithms.registry`` is pure metadata (no torch, no TRL) so that spec validation and
``oxstudy algorithms`` stay cheap; the family modules (``sft``, ``preference``, ``cpo``, ``orpo``,
``kto``, ``online``) hold the losses and trainer builders and import TRL lazily.
"""

from oxstudy.algorithms.registry import AlgorithmInfo, get, names, resolve_hyperparameters, suggest

__all__ = ["AlgorithmInfo", "get", "names", "resolve_hyperparameters", "suggest"]
