"""The algorithm registry: every post-training method oxstudy can run, as pure metadata.

One entry per method name used in specs (``algorithms[].method``): its family, the data it
trains on, whether it needs a frozen reference model, the TRL trainer (and config) it runs
through, the trainer-config values that *define* the method (``fixed``), its tunable default
hyperparameters (``defaults``), the tags the leverage analysis groups by, the paper and the loss.

Importing this module is cheap on purpose (no torch, no TRL): spec validation and
``oxstudy algorithms`` read it at startup. Trainer classes are named by string and imported
lazily by :mod:`oxstudy.training` when a cell actually trains.

Notation in the ``loss`` strings: ``h_w = log pi(y_w|x) - log pi_ref(y_w|x)`` (chosen log-ratio),
``h_l`` likewise for the rejected completion, ``h = h_w - h_l``, ``sigma`` the logistic function,
``|y|`` the completion length in tokens, ``beta`` = ``training.beta`` (shared by all preference
methods), ``A`` an advantage, ``r_t`` a token importance ratio ``pi/pi_old``.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Literal

Family = Literal["sft", "offline-preference", "online-rl"]
DataKind = Literal["demonstrations", "preference-pairs", "unpaired-labels", "prompts-reward"]


@dataclass(frozen=True)
class AlgorithmInfo:
    """Metadata of one post-training method.

    Attributes:
        name: the method name used in specs (lower-case identifier).
        family: ``sft`` | ``offline-preference`` | ``online-rl``.
        data: what it trains on: ``demonstrations`` | ``preference-pairs`` | ``unpaired-labels``
            | ``prompts-reward``.
        needs_reference: whether a frozen reference model is kept during training (a second
            copy of the weights, or the adapter-disabled base model under LoRA).
        trainer: dotted name of the trainer class (``trl.DPOTrainer``, ``oxstudy.RDPOTrainer``...).
        config: dotted name of the TRL config dataclass the trainer takes.
        defaults: tunable method hyperparameters and their defaults; a spec's
            ``algorithms[].hyperparameters`` are merged over them.
        fixed: trainer-config values that define the method (e.g. ``loss_type``); not tunable.
        tags: ``paradigm`` (sft-like | preference | online-rl), ``online`` (bool) and
            ``loss_family`` (str), used by the leverage analysis.
        paper: citation of the method's paper.
        loss: the loss as a short formula (notation in the module docstring).
        description: one sentence.
        aliases: other names accepted for this method in specs.
    """

    name: str
    family: Family
    data: DataKind
    needs_reference: bool
    trainer: str
    config: str
    defaults: dict[str, Any]
    fixed: dict[str, Any]
    tags: dict[str, Any]
    paper: str
    loss: str
    description: str
    aliases: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        """A JSON-able dict of every field."""
        return {
            "name": self.name,
            "family": self.family,
            "data": self.data,
            "needs_reference": self.needs_reference,
            "trainer": self.trainer,
            "config": self.config,
            "defaults": dict(self.defaults),
            "fixed": dict(self.fixed),
            "tags": dict(self.tags),
            "paper": self.paper,
            "loss": self.loss,
            "description": self.description,
            "aliases": list(self.aliases),
        }


# Hyperparameters that every method takes from the shared TrainingSpec, never per method: a
# comparison is controlled by construction only if these cannot drift between algorithms.
SHARED_TRAINING_KEYS: dict[str, str] = {
    "beta": "training.beta",
    "max_length": "training.max_length",
    "max_prompt_length": "training.max_prompt_length",
    "max_completion_length": "training.max_completion_length",
    "max_new_tokens": "training.max_completion_length",
    "learning_rate": "training.learning_rate",
    "num_train_epochs": "training.epochs",
    "per_device_train_batch_size": "training.per_device_batch_size",
    "gradient_accumulation_steps": "training.effective_batch_size",
    "warmup_ratio": "training.warmup_ratio",
    "lr_scheduler_type": "training.lr_scheduler",
    "weight_decay": "training.weight_decay",
    "seed": "seeds",
}

# Fields each TRL config adds on top of transformers.TrainingArguments (TRL 1.16.0), i.e. the
# method-level knobs a spec may set in ``hyperparameters``. A snapshot keeps this module free of
# TRL imports; tests/test_algorithms_registry.py checks it against the installed TRL.
TRAINER_CONFIG_FIELDS: dict[str, tuple[str, ...]] = {
    "trl.SFTConfig": (
        "model_init_kwargs", "trust_remote_code", "router_aux_loss_coef", "chat_template_path",
        "dataset_text_field", "dataset_kwargs", "dataset_num_proc", "eos_token", "max_length",
        "truncation_mode", "shuffle_dataset", "packing", "packing_strategy", "padding_free",
        "pad_to_multiple_of", "eval_packing", "completion_only_loss", "assistant_only_loss",
        "loss_type", "activation_offloading", "pad_token",
    ),
    "trl.DPOConfig": (
        "model_init_kwargs", "trust_remote_code", "router_aux_loss_coef", "disable_dropout",
        "dataset_num_proc", "max_length", "truncation_mode", "padding_free", "pad_to_multiple_of",
        "precompute_ref_log_probs", "precompute_ref_batch_size", "loss_type", "loss_weights",
        "ld_alpha", "f_divergence_type", "f_alpha_divergence_coef", "label_smoothing", "beta",
        "use_weighting", "discopop_tau", "activation_offloading", "sync_ref_model",
        "ref_model_mixup_alpha", "ref_model_sync_steps", "pad_token",
    ),
    "trl.KTOConfig": (
        "model_init_kwargs", "trust_remote_code", "router_aux_loss_coef", "disable_dropout",
        "dataset_num_proc", "max_length", "pad_to_multiple_of", "precompute_ref_log_probs",
        "precompute_ref_batch_size", "loss_type", "beta", "desirable_weight", "undesirable_weight",
        "activation_offloading", "sync_ref_model", "ref_model_mixup_alpha", "ref_model_sync_steps",
    ),
    "trl.GRPOConfig": (
        "model_init_kwargs", "trust_remote_code", "router_aux_loss_coef", "disable_dropout",
        "cast_lm_head_to_fp32", "num_generations", "num_generations_eval", "max_completion_length",
        "ds3_gather_for_generation", "shuffle_dataset", "pad_to_multiple_of", "generation_batch_size",
        "steps_per_generation", "temperature", "top_p", "top_k", "min_p", "generation_kwargs",
        "chat_template_kwargs", "repetition_penalty", "cache_implementation", "use_vllm", "vllm_mode",
        "vllm_model_impl", "vllm_enable_sleep_mode", "vllm_structured_outputs_regex",
        "vllm_server_base_url", "vllm_server_host", "vllm_server_port", "vllm_server_timeout",
        "vllm_group_port", "vllm_gpu_memory_utilization", "vllm_max_model_length",
        "vllm_tensor_parallel_size", "beta", "num_iterations", "epsilon", "delta", "epsilon_high",
        "sapo_temperature_neg", "sapo_temperature_pos", "vespo_k_pos", "vespo_lambda_pos",
        "vespo_k_neg", "vespo_lambda_neg", "importance_sampling_level", "reward_weights",
        "multi_objective_aggregation", "scale_rewards", "loss_type", "mask_truncated_completions",
        "sync_ref_model", "ref_model_mixup_alpha", "ref_model_sync_steps", "top_entropy_quantile",
        "entropy_coef", "use_adaptive_entropy", "entropy_coef_min", "entropy_coef_max",
        "entropy_coef_delta", "entropy_target", "max_tool_calling_iterations",
        "vllm_importance_sampling_correction", "vllm_importance_sampling_mode",
        "vllm_importance_sampling_clip_max", "vllm_importance_sampling_clip_min",
        "off_policy_mask_threshold", "use_bias_correction_kl", "log_completions", "log_multimodal",
        "num_completions_to_print", "log_unique_prompts", "log_completions_hub_repo",
        "use_transformers_continuous_batching", "transformers_continuous_batching_config",
        "use_transformers_paged", "vllm_importance_sampling_cap",
    ),
    "trl.RLOOConfig": (
        "model_init_kwargs", "trust_remote_code", "router_aux_loss_coef", "disable_dropout",
        "num_generations", "num_generations_eval", "max_completion_length", "ds3_gather_for_generation",
        "shuffle_dataset", "pad_to_multiple_of", "generation_batch_size", "steps_per_generation",
        "temperature", "top_p", "top_k", "min_p", "generation_kwargs", "chat_template_kwargs",
        "repetition_penalty", "cache_implementation", "use_vllm", "vllm_mode", "vllm_model_impl",
        "vllm_enable_sleep_mode", "vllm_structured_outputs_regex", "vllm_server_base_url",
        "vllm_server_host", "vllm_server_port", "vllm_server_timeout", "vllm_group_port",
        "vllm_gpu_memory_utilization", "vllm_max_model_length", "vllm_tensor_parallel_size", "beta",
        "num_iterations", "epsilon", "epsilon_high", "reward_weights", "normalize_advantages",
        "reward_clip_range", "mask_truncated_completions", "sync_ref_model", "ref_model_mixup_alpha",
        "ref_model_sync_steps", "log_completions", "log_multimodal", "num_completions_to_print",
        "log_unique_prompts", "use_transformers_continuous_batching",
        "transformers_continuous_batching_config", "use_transformers_paged",
    ),
    "trl.experimental.cpo.CPOConfig": (
        "max_length", "max_completion_length", "beta", "label_smoothing", "loss_type",
        "disable_dropout", "cpo_alpha", "simpo_gamma", "alpha", "generate_during_eval",
        "is_encoder_decoder", "model_init_kwargs", "trust_remote_code", "dataset_num_proc",
    ),
    "trl.experimental.orpo.ORPOConfig": (
        "max_length", "max_completion_length", "beta", "disable_dropout", "padding_value",
        "generate_during_eval", "is_encoder_decoder", "model_init_kwargs", "trust_remote_code",
        "dataset_num_proc",
    ),
    "trl.experimental.online_dpo.OnlineDPOConfig": (
        "reward_model_path", "max_new_tokens", "max_length", "temperature", "top_p", "top_k", "min_p",
        "repetition_penalty", "generation_kwargs", "cache_implementation", "missing_eos_penalty",
        "beta", "loss_type", "disable_dropout", "use_vllm", "vllm_model_impl",
        "vllm_structured_outputs_regex", "vllm_gpu_memory_utilization", "vllm_mode",
        "vllm_server_base_url", "vllm_server_host", "vllm_server_port", "vllm_server_timeout",
        "vllm_group_port", "vllm_tensor_parallel_size", "vllm_enable_sleep_mode",
        "ds3_gather_for_generation", "model_init_kwargs", "trust_remote_code", "reward_weights",
    ),
}

# Config fields oxstudy sets itself for every run (they are infrastructure, not method choices).
_INFRASTRUCTURE_KEYS = frozenset(
    {"model_init_kwargs", "trust_remote_code", "dataset_num_proc", "is_encoder_decoder",
     "padding_value", "pad_token", "eos_token", "chat_template_path", "dataset_text_field",
     "reward_model_path", "log_completions_hub_repo", "generate_during_eval"}
)


def _pref(loss_family: str) -> dict[str, Any]:
    return {"paradigm": "preference", "online": False, "loss_family": loss_family}


def _online(loss_family: str) -> dict[str, Any]:
    return {"paradigm": "online-rl", "online": True, "loss_family": loss_family}


def _sft(loss_family: str = "likelihood") -> dict[str, Any]:
    return {"paradigm": "sft-like", "online": False, "loss_family": loss_family}


_DPO = ("trl.DPOTrainer", "trl.DPOConfig")
_CPO = ("trl.experimental.cpo.CPOTrainer", "trl.experimental.cpo.CPOConfig")
_GRPO = ("trl.GRPOTrainer", "trl.GRPOConfig")
# Shared defaults of the GRPO family: group size, sampling temperature, KL coefficient (TRL's
# default 0: no reference model), clip range and PPO-style epochs per generation batch.
_GRPO_DEFAULTS: dict[str, Any] = {
    "num_generations": 4, "temperature": 1.0, "beta": 0.0, "epsilon": 0.2, "num_iterations": 1,
    "scale_rewards": "group",
}


def _info(
    name: str, family: Family, data: DataKind, needs_reference: bool, trainer_config: tuple[str, str],
    *, defaults: dict[str, Any] | None = None, fixed: dict[str, Any] | None = None,
    tags: dict[str, Any], paper: str, loss: str, description: str, aliases: tuple[str, ...] = (),
) -> AlgorithmInfo:
    trainer, config = trainer_config
    return AlgorithmInfo(
        name=name, family=family, data=data, needs_reference=needs_reference, trainer=trainer,
        config=config, defaults=dict(defaults or {}), fixed=dict(fixed or {}), tags=tags, paper=paper,
        loss=loss, description=description, aliases=aliases,
    )


_ENTRIES: list[AlgorithmInfo] = [
    # --- SFT-like -------------------------------------------------------------------------------
    _info("sft", "sft", "demonstrations", False, ("trl.SFTTrainer", "trl.SFTConfig"),
          tags=_sft(), paper="Ouyang et al. 2022, Training language models to follow instructions with "
          "human feedback (arXiv:2203.02155)", loss="-mean_t log pi(y_t | x, y_<t) on gold solutions",
          description="Supervised fine-tuning on the gold worked solutions (completion-only loss)."),
    _info("sp-rft", "sft", "demonstrations", False, ("trl.SFTTrainer", "trl.SFTConfig"),
          tags=_sft("rejection-sampling"), paper="Yuan et al. 2023, Scaling Relationship on Learning "
          "Mathematical Reasoning with Large Language Models (RFT, arXiv:2308.01825)",
          loss="-mean_t log pi(y_t | x, y_<t) on self-sampled, verifier-accepted solutions",
          description="Self-play rejection-sampling fine-tuning: sample from the base model, keep the "
          "verified-correct solutions, fine-tune on them."),
    # --- DPO family through DPOConfig.loss_type -------------------------------------------------
    _info("dpo", "offline-preference", "preference-pairs", True, _DPO, fixed={"loss_type": ["sigmoid"]},
          tags=_pref("logistic"), paper="Rafailov et al. 2023, Direct Preference Optimization "
          "(arXiv:2305.18290)", loss="-log sigma(beta * h)",
          description="Direct preference optimisation with the logistic (Bradley-Terry) loss."),
    _info("ipo", "offline-preference", "preference-pairs", True, _DPO, fixed={"loss_type": ["ipo"]},
          tags=_pref("squared"), paper="Azar et al. 2023, A General Theoretical Paradigm to Understand "
          "Learning from Human Preferences (arXiv:2310.12036)",
          loss="(h_w/|y_w| - h_l/|y_l| - 1/(2 beta))^2  (TRL's length-normalised form)",
          description="Identity preference optimisation: squared loss towards a fixed margin."),
    _info("hinge", "offline-preference", "preference-pairs", True, _DPO, fixed={"loss_type": ["hinge"]},
          tags=_pref("hinge"), paper="Zhao et al. 2023, SLiC-HF: Sequence Likelihood Calibration with "
          "Human Feedback (arXiv:2305.10425); Liu et al. 2023, RSO (arXiv:2309.06657)",
          loss="max(0, 1 - beta * h)", description="Hinge loss on the reference-normalised margin."),
    _info("slic", "offline-preference", "preference-pairs", True, _DPO, defaults={"sft_weight": 1.0},
          fixed={"loss_type": ["hinge", "sft"]}, tags=_pref("hinge"),
          paper="Zhao et al. 2023, SLiC-HF: Sequence Likelihood Calibration with Human Feedback "
          "(arXiv:2305.10425)", loss="max(0, 1 - beta * h) + sft_weight * NLL(y_w)",
          description="Hinge calibration loss plus a likelihood regulariser on the chosen solution."),
    _info("exo", "offline-preference", "preference-pairs", True, _DPO, defaults={"label_smoothing": 1e-3},
          fixed={"loss_type": ["exo_pair"]}, tags=_pref("reverse-kl"),
          paper="Ji et al. 2024, Towards Efficient Exact Optimization of Language Model Alignment "
          "(arXiv:2402.00856)",
          loss="sum_{i in w,l} q_i (log q_i - log p_i), q_w = sigma(beta h), p = (1 - eps, eps)",
          description="Efficient exact optimisation: reverse KL between model and label distributions."),
    _info("nca", "offline-preference", "preference-pairs", True, _DPO, fixed={"loss_type": ["nca_pair"]},
          tags=_pref("noise-contrastive"), paper="Chen et al. 2024, Noise Contrastive Alignment of "
          "Language Models with Explicit Rewards (arXiv:2402.05369)",
          loss="-log sigma(beta h_w) - 0.5 log sigma(-beta h_w) - 0.5 log sigma(-beta h_l)",
          description="Noise-contrastive alignment: absolute (not relative) likelihood targets."),
    _info("robust-dpo", "offline-preference", "preference-pairs", True, _DPO,
          defaults={"label_smoothing": 0.1}, fixed={"loss_type": ["robust"]}, tags=_pref("logistic"),
          paper="Chowdhury et al. 2024, Provably Robust DPO: Aligning Language Models with Noisy "
          "Feedback (arXiv:2403.00409)",
          loss="[-(1-eps) log sigma(beta h) + eps log sigma(-beta h)] / (1 - 2 eps)",
          description="Unbiased DPO loss under a known preference-flip rate eps."),
    _info("bco", "offline-preference", "preference-pairs", True, _DPO, fixed={"loss_type": ["bco_pair"]},
          tags=_pref("binary-classifier"), paper="Jung et al. 2024, Binary Classifier Optimization for "
          "Large Language Model Alignment (arXiv:2404.04656)",
          loss="-log sigma(beta h_w) - log sigma(-beta h_l)  (TRL's paired form)",
          description="Binary classifier optimisation: chosen and rejected rewards classified apart."),
    _info("sppo", "offline-preference", "preference-pairs", True, _DPO, fixed={"loss_type": ["sppo_hard"]},
          tags=_pref("squared"), paper="Wu et al. 2024, Self-Play Preference Optimization for Language "
          "Model Alignment (arXiv:2405.00675)", loss="(h_w - 1/(2 beta))^2 + (h_l + 1/(2 beta))^2",
          description="SPPO with hard win probabilities (1 for chosen, 0 for rejected)."),
    _info("aot", "offline-preference", "preference-pairs", True, _DPO, defaults={"label_smoothing": 0.0},
          fixed={"loss_type": ["aot"]}, tags=_pref("optimal-transport"),
          paper="Melnyk et al. 2024, Distributional Preference Alignment of LLMs via Optimal Transport "
          "(arXiv:2406.05882)",
          loss="-log sigma(beta * (sort(log pi_w - log pi_l) - sort(log ref_w - log ref_l)))",
          description="Alignment via optimal transport: first-order stochastic dominance over the batch "
          "(paired)."),
    _info("aot-unpaired", "offline-preference", "preference-pairs", True, _DPO,
          defaults={"label_smoothing": 0.0}, fixed={"loss_type": ["aot_unpaired"]},
          tags=_pref("optimal-transport"), paper="Melnyk et al. 2024, Distributional Preference "
          "Alignment of LLMs via Optimal Transport (arXiv:2406.05882)",
          loss="-log sigma(beta * (sort(h_w) - sort(h_l)))",
          description="Alignment via optimal transport, unpaired form (chosen and rejected sorted apart)."),
    _info("apo", "offline-preference", "preference-pairs", True, _DPO, fixed={"loss_type": ["apo_zero"]},
          tags=_pref("anchored"), paper="D'Oosterlinck et al. 2024, Anchored Preference Optimization "
          "and Contrastive Revisions (arXiv:2408.06266)",
          loss="1 - sigma(beta h_w) + sigma(beta h_l)  (APO-zero)",
          description="Anchored preference optimisation: raise chosen, lower rejected likelihood."),
    _info("apo-down", "offline-preference", "preference-pairs", True, _DPO, fixed={"loss_type": ["apo_down"]},
          tags=_pref("anchored"), paper="D'Oosterlinck et al. 2024, Anchored Preference Optimization "
          "and Contrastive Revisions (arXiv:2408.06266)", loss="sigma(beta h_w) + 1 - sigma(beta h)",
          description="APO-down: lower both likelihoods, the rejected one more."),
    _info("discopop", "offline-preference", "preference-pairs", True, _DPO, defaults={"discopop_tau": 0.05},
          fixed={"loss_type": ["discopop"]}, tags=_pref("discovered"),
          paper="Lu et al. 2024, Discovering Preference Optimization Algorithms with and for Large "
          "Language Models (arXiv:2406.08414)",
          loss="(1 - m) (-log sigma(beta h)) + m exp(-beta h),  m = sigma(beta h / tau)",
          description="Log-ratio modulated loss discovered by LLM-driven search (DiscoPOP)."),
    _info("sigmoid-norm", "offline-preference", "preference-pairs", True, _DPO,
          fixed={"loss_type": ["sigmoid_norm"]}, tags=_pref("length-normalised"),
          paper="Meng et al. 2024, SimPO (arXiv:2405.14734), length-normalised DPO baseline",
          loss="-log sigma(beta * (h_w/|y_w| - h_l/|y_l|))",
          description="DPO on per-token (length-normalised) log-ratios."),
    _info("rpo", "offline-preference", "preference-pairs", True, _DPO, defaults={"rpo_alpha": 1.0},
          fixed={"loss_type": ["sigmoid", "sft"]}, tags=_pref("logistic+nll"),
          paper="Pang et al. 2024, Iterative Reasoning Preference Optimization (arXiv:2404.19733)",
          loss="-log sigma(beta h) + rpo_alpha * NLL(y_w)/|y_w|",
          description="DPO plus a negative log-likelihood term on the chosen solution."),
    _info("wpo", "offline-preference", "preference-pairs", True, _DPO,
          fixed={"loss_type": ["sigmoid"], "use_weighting": True}, tags=_pref("weighted"),
          paper="Zhou et al. 2024, WPO: Enhancing RLHF with Weighted Preference Optimization "
          "(arXiv:2406.11827)", loss="w(y_w) w(y_l) * (-log sigma(beta h)),  w = exp(mean_t aligned log p)",
          description="DPO with pairs weighted by their probability under the current policy."),
    _info("f-dpo", "offline-preference", "preference-pairs", True, _DPO,
          defaults={"f_divergence_type": "js_divergence", "f_alpha_divergence_coef": 0.5},
          fixed={"loss_type": ["sigmoid"]}, tags=_pref("f-divergence"),
          paper="Wang et al. 2024, Beyond Reverse KL: Generalizing Direct Preference Optimization with "
          "Diverse Divergence Constraints (arXiv:2309.16240)",
          loss="-log sigma(beta * (f'(exp h_w) - f'(exp h_l))),  JS: f'(t) = log(2t/(1+t))",
          description="DPO under an f-divergence constraint (default Jensen-Shannon)."),
    _info("ld-dpo", "offline-preference", "preference-pairs", True, _DPO, defaults={"ld_alpha": 0.5},
          fixed={"loss_type": ["sigmoid"]}, tags=_pref("length-desensitised"),
          paper="Liu et al. 2024, Length Desensitization in Directed Preference Optimization "
          "(arXiv:2409.06411)",
          loss="DPO with log p = shared-length part + ld_alpha * tail beyond the shorter completion",
          description="DPO with the log-probability of the longer completion's tail down-weighted."),
    _info("tr-dpo", "offline-preference", "preference-pairs", True, _DPO,
          defaults={"ref_model_mixup_alpha": 0.6, "ref_model_sync_steps": 512},
          fixed={"loss_type": ["sigmoid"], "sync_ref_model": True}, tags=_pref("logistic"),
          paper="Gorbatovski et al. 2024, Learn Your Reference Model for Real Good Alignment "
          "(arXiv:2404.09656)",
          loss="-log sigma(beta h),  ref <- alpha * pi + (1 - alpha) * ref every tau steps",
          description="Trust-region DPO: the reference model is softly updated towards the policy."),
    # --- DPO-family losses TRL lacks: small loss overrides on trl.DPOTrainer ---------------------
    _info("rdpo", "offline-preference", "preference-pairs", True, ("oxstudy.RDPOTrainer", "trl.DPOConfig"),
          defaults={"alpha": 0.01}, tags=_pref("length-regularised"),
          paper="Park et al. 2024, Disentangling Length from Quality in Direct Preference Optimization "
          "(arXiv:2403.19159)", loss="-log sigma(beta h - alpha (|y_w| - |y_l|))",
          description="Length-regularised DPO: a length-difference penalty inside the logistic loss.",
          aliases=("r-dpo",)),
    _info("cdpo", "offline-preference", "preference-pairs", True, ("oxstudy.CDPOTrainer", "trl.DPOConfig"),
          defaults={"label_smoothing": 0.1}, tags=_pref("logistic"),
          paper="Mitchell 2023, A note on DPO with noisy preferences & relationship to IPO (cDPO)",
          loss="-(1 - eps) log sigma(beta h) - eps log sigma(-beta h)",
          description="Conservative DPO: label-smoothed logistic loss (TRL's sigmoid ignores smoothing).",
          aliases=("c-dpo",)),
    _info("beta-dpo", "offline-preference", "preference-pairs", True,
          ("oxstudy.BetaDPOTrainer", "trl.DPOConfig"), defaults={"alpha": 0.6, "momentum": 0.9},
          tags=_pref("adaptive-beta"), paper="Wu et al. 2024, beta-DPO: Direct Preference Optimization "
          "with Dynamic beta (arXiv:2407.08639)",
          loss="-log sigma(beta_b h),  beta_b = beta (1 + alpha (mean_batch(beta h) - M0)), "
          "M0 <- momentum M0 + (1 - momentum) mean_batch(beta h)",
          description="DPO with a batch-level beta calibrated on the implicit reward margin.",
          aliases=("betadpo",)),
    _info("cal-dpo", "offline-preference", "preference-pairs", True,
          ("oxstudy.CalDPOTrainer", "trl.DPOConfig"), tags=_pref("calibrated"),
          paper="Xiao et al. 2024, Cal-DPO: Calibrated Direct Preference Optimization for Language "
          "Model Alignment (arXiv:2412.14516)",
          loss="-log sigma(h) + (h_w - 1/(2 beta))^2 + (h_l + 1/(2 beta))^2",
          description="DPO calibrated so implicit rewards match absolute reward scales.",
          aliases=("caldpo",)),
    _info("dpop", "offline-preference", "preference-pairs", True, ("oxstudy.DPOPTrainer", "trl.DPOConfig"),
          defaults={"dpop_lambda": 50.0}, tags=_pref("logistic"),
          paper="Pal et al. 2024, Smaug: Fixing Failure Modes of Preference Optimisation with "
          "DPO-Positive (arXiv:2402.13228)", loss="-log sigma(beta (h - lambda max(0, -h_w)))",
          description="DPO-Positive: penalise lowering the chosen likelihood below the reference.",
          aliases=("dpo-positive",)),
    _info("odpo", "offline-preference", "preference-pairs", True, ("oxstudy.ODPOTrainer", "trl.DPOConfig"),
          defaults={"offset": 1.0}, tags=_pref("logistic"),
          paper="Amini et al. 2024, Direct Preference Optimization with an Offset (arXiv:2402.10571)",
          loss="-log sigma(beta h - offset)  (the paper's Delta = alpha log(s_w - s_l) is one constant for "
          "verifier rewards)",
          description="DPO requiring the chosen to beat the rejected by an offset margin."),
    _info("gpo", "offline-preference", "preference-pairs", True, ("oxstudy.GPOTrainer", "trl.DPOConfig"),
          defaults={"gpo_loss": "exponential"}, tags=_pref("convex"),
          paper="Tang et al. 2024, Generalized Preference Optimization: A Unified Approach to Offline "
          "Alignment (arXiv:2402.05749)",
          loss="f(beta h), f in {exponential: exp(-z), truncated_quadratic: max(0, 1 - z)^2, "
          "savage: 1/(1 + exp(z))^2}",
          description="Generalised preference optimisation with a chosen convex loss f."),
    _info("focalpo", "offline-preference", "preference-pairs", True,
          ("oxstudy.FocalPOTrainer", "trl.DPOConfig"), defaults={"gamma": 0.05}, tags=_pref("focal"),
          paper="Liu et al. 2025, FocalPO: Enhancing Preference Optimizing by Focusing on Correct "
          "Preference Rankings (arXiv:2501.06645)", loss="-sigma(beta h)^gamma log sigma(beta h)",
          description="DPO with a focal modulating factor that favours correctly ranked pairs."),
    # --- reference-free preference (trl.experimental.cpo / orpo) --------------------------------
    _info("cpo", "offline-preference", "preference-pairs", False, _CPO, defaults={"cpo_alpha": 1.0},
          fixed={"loss_type": "sigmoid"}, tags=_pref("reference-free"),
          paper="Xu et al. 2024, Contrastive Preference Optimization (arXiv:2401.08417)",
          loss="-log sigma(beta (log pi_w - log pi_l)) + cpo_alpha * NLL(y_w)",
          description="Reference-free logistic preference loss plus behaviour cloning on the chosen."),
    _info("simpo", "offline-preference", "preference-pairs", False, _CPO, defaults={"simpo_gamma": 0.5},
          fixed={"loss_type": "simpo", "cpo_alpha": 0.0}, tags=_pref("reference-free"),
          paper="Meng et al. 2024, SimPO: Simple Preference Optimization with a Reference-Free Reward "
          "(arXiv:2405.14734)",
          loss="-log sigma(beta (log pi_w/|y_w| - log pi_l/|y_l|) - gamma)  (gamma = simpo_gamma/beta "
          "in TRL)",
          description="Reference-free, length-normalised logistic loss with a target margin."),
    _info("alphapo", "offline-preference", "preference-pairs", False, _CPO,
          defaults={"alpha": 0.25, "simpo_gamma": 0.5},
          fixed={"loss_type": "alphapo", "cpo_alpha": 0.0}, tags=_pref("reference-free"),
          paper="Gupta et al. 2025, AlphaPO: Reward Shape Matters for LLM Alignment (arXiv:2501.03884)",
          loss="-log sigma(beta/alpha (p_l^-alpha - p_w^-alpha) - gamma),  p = exp(log pi/|y|)",
          description="SimPO with an alpha-parameterised reward shape."),
    _info("orpo", "offline-preference", "preference-pairs", False,
          ("trl.experimental.orpo.ORPOTrainer", "trl.experimental.orpo.ORPOConfig"),
          tags=_pref("odds-ratio"), paper="Hong et al. 2024, ORPO: Monolithic Preference Optimization "
          "without Reference Model (arXiv:2403.07691)",
          loss="NLL(y_w) - beta log sigma(log odds(y_w) - log odds(y_l)),  odds = p/(1-p), "
          "p = exp(mean_t log pi)", description="Odds-ratio preference optimisation fused with SFT."),
    # --- unpaired ---------------------------------------------------------------------------------
    _info("kto", "offline-preference", "unpaired-labels", True, ("trl.KTOTrainer", "trl.KTOConfig"),
          defaults={"desirable_weight": 1.0, "undesirable_weight": 1.0}, fixed={"loss_type": "kto"},
          tags=_pref("prospect"), paper="Ethayarajh et al. 2024, KTO: Model Alignment as Prospect "
          "Theoretic Optimization (arXiv:2402.01306)",
          loss="w_d (1 - sigma(beta (h_w - z0))) | w_u (1 - sigma(beta (z0 - h_l))),  z0 = clamp(KL, 0)",
          description="Kahneman-Tversky optimisation on unpaired desirable/undesirable labels."),
    _info("apo-unpaired", "offline-preference", "unpaired-labels", True, ("trl.KTOTrainer", "trl.KTOConfig"),
          fixed={"loss_type": "apo_zero_unpaired"}, tags=_pref("anchored"),
          paper="D'Oosterlinck et al. 2024, Anchored Preference Optimization and Contrastive Revisions "
          "(arXiv:2408.06266)", loss="1 - sigma(beta h_w) | sigma(beta h_l)",
          description="APO-zero on unpaired labels."),
    # --- online RL ---------------------------------------------------------------------------------
    _info("grpo", "online-rl", "prompts-reward", False, _GRPO, defaults=_GRPO_DEFAULTS,
          fixed={"loss_type": "grpo", "importance_sampling_level": "token"}, tags=_online("group-pg"),
          paper="Shao et al. 2024, DeepSeekMath: Pushing the Limits of Mathematical Reasoning in Open "
          "Language Models (arXiv:2402.03300)",
          loss="-mean_i 1/|o_i| sum_t min(r_t A_i, clip(r_t, 1-eps, 1+eps) A_i) (+ beta KL),  "
          "A_i = (R_i - mean_G R) / std_G R",
          description="Group relative policy optimisation, token-level importance ratios.",
          aliases=("sgrpo",)),
    _info("gspo", "online-rl", "prompts-reward", False, _GRPO,
          defaults={**_GRPO_DEFAULTS, "epsilon": 3e-4, "epsilon_high": 4e-4},
          fixed={"loss_type": "grpo", "importance_sampling_level": "sequence"}, tags=_online("group-pg"),
          paper="Zheng et al. 2025, Group Sequence Policy Optimization (arXiv:2507.18071)",
          loss="-mean_i min(s_i A_i, clip(s_i, 1-eps, 1+eps_high) A_i),  s_i = (pi(o_i)/pi_old(o_i))^(1/|o_i|)",
          description="GRPO with sequence-level (length-normalised) importance ratios."),
    _info("cispo", "online-rl", "prompts-reward", False, _GRPO,
          defaults={**_GRPO_DEFAULTS, "epsilon_high": 5.0}, fixed={"loss_type": "cispo"},
          tags=_online("clipped-is"), paper="MiniMax 2025, MiniMax-M1: Scaling Test-Time Compute "
          "Efficiently with Lightning Attention (CISPO, arXiv:2506.13585)",
          loss="-sum_{i,t} sg(min(r_t, 1+eps_high)) A_i log pi(o_t) / sum_i |o_i|",
          description="Clipped importance-sampling policy optimisation: clip the weight, keep every "
          "token's gradient."),
    _info("dr-grpo", "online-rl", "prompts-reward", False, _GRPO,
          defaults={**_GRPO_DEFAULTS, "scale_rewards": "none"}, fixed={"loss_type": "dr_grpo"},
          tags=_online("group-pg"), paper="Liu et al. 2025, Understanding R1-Zero-Like Training: A "
          "Critical Perspective (Dr. GRPO, arXiv:2503.20783)",
          loss="-sum_{i,t} min(r_t A_i, clip(r_t) A_i) / (G * max_completion_length),  A_i = R_i - mean_G R",
          description="GRPO without length and std normalisation biases.",
          aliases=("drgrpo",)),
    _info("dapo", "online-rl", "prompts-reward", False, _GRPO,
          defaults={**_GRPO_DEFAULTS, "epsilon_high": 0.28, "mask_truncated_completions": True},
          fixed={"loss_type": "dapo"}, tags=_online("group-pg"),
          paper="Yu et al. 2025, DAPO: An Open-Source LLM Reinforcement Learning System at Scale "
          "(arXiv:2503.14476)",
          loss="-sum_{i,t} min(r_t A_i, clip(r_t, 1-eps, 1+eps_high) A_i) / sum_i |o_i|",
          description="Decoupled clip, token-level normalisation, truncated completions masked."),
    _info("bnpo", "online-rl", "prompts-reward", False, _GRPO, defaults=_GRPO_DEFAULTS,
          fixed={"loss_type": "bnpo"}, tags=_online("group-pg"),
          paper="Xiao et al. 2025, BNPO: Beta Normalization Policy Optimization (arXiv:2506.02864)",
          loss="-sum_{i,t} min(r_t A_i, clip(r_t) A_i) / (tokens in local batch)",
          description="GRPO objective normalised by the tokens of the local batch."),
    _info("sapo", "online-rl", "prompts-reward", False, _GRPO,
          defaults={**_GRPO_DEFAULTS, "sapo_temperature_pos": 1.0, "sapo_temperature_neg": 1.05},
          fixed={"loss_type": "sapo"}, tags=_online("soft-gate"),
          paper="Gao et al. 2025, Soft Adaptive Policy Optimization (arXiv:2511.20347)",
          loss="-mean sigma(tau (r_t - 1)) * 4/tau * A_i  (smooth temperature-controlled gate)",
          description="Soft adaptive policy optimisation: a smooth gate replaces the hard clip."),
    _info("rloo", "online-rl", "prompts-reward", True, ("trl.RLOOTrainer", "trl.RLOOConfig"),
          defaults={"num_generations": 4, "temperature": 1.0, "beta": 0.05, "num_iterations": 1},
          tags=_online("leave-one-out"), paper="Ahmadian et al. 2024, Back to Basics: Revisiting "
          "REINFORCE Style Optimization for Learning from Human Feedback in LLMs (arXiv:2402.14740)",
          loss="-mean_i A_i log pi(o_i),  A_i = R_i - mean_{j != i} R_j  (R with -beta KL)",
          description="REINFORCE with a leave-one-out baseline over k samples per prompt."),
    _info("online-dpo", "online-rl", "prompts-reward", True,
          ("trl.experimental.online_dpo.OnlineDPOTrainer", "trl.experimental.online_dpo.OnlineDPOConfig"),
          defaults={"temperature": 1.0}, fixed={"loss_type": "sigmoid"}, tags=_online("logistic"),
          paper="Guo et al. 2024, Direct Language Model Alignment from Online AI Feedback "
          "(arXiv:2402.04792)",
          loss="-log sigma(beta h) on two on-policy samples ranked by the reward",
          description="DPO on pairs sampled from the current policy and ranked by the verifier."),
]

# --- sample-polarity RL (issue 13, oxstudy/algorithms/polarity.py; self-contained block) ----------
_POLARITY_PAPER = ("Zhu et al. 2025, The Surprising Effectiveness of Negative Reinforcement in LLM Reasoning "
                   "(arXiv:2506.01347)")
# REINFORCE on-policy: one pass per generation batch (ratio 1, clip inert), no KL, token-mean loss.
_POLARITY_FIXED: dict[str, Any] = {"loss_type": "bnpo", "importance_sampling_level": "token", "num_iterations": 1,
                                   "beta": 0.0}
_POLARITY_DEFAULTS: dict[str, Any] = {"num_generations": 4, "temperature": 1.0}
_ENTRIES += [
    _info("psr", "online-rl", "prompts-reward", False, ("oxstudy.PolarityGRPOTrainer", "trl.GRPOConfig"),
          defaults=_POLARITY_DEFAULTS, fixed=_POLARITY_FIXED, tags=_online("polarity"), paper=_POLARITY_PAPER,
          loss="-sum_{i,t} 1[R_i=1] log pi(o_{i,t}) / sum_i |o_i|  (A_i = 1[R_i=1])",
          description="Positive sample reinforcement: REINFORCE on the correct samples only."),
    _info("nsr", "online-rl", "prompts-reward", False, ("oxstudy.PolarityGRPOTrainer", "trl.GRPOConfig"),
          defaults=_POLARITY_DEFAULTS, fixed=_POLARITY_FIXED, tags=_online("polarity"), paper=_POLARITY_PAPER,
          loss="+sum_{i,t} 1[R_i=0] log pi(o_{i,t}) / sum_i |o_i|  (A_i = -1[R_i=0])",
          description="Negative sample reinforcement: push down the incorrect samples only."),
    _info("w-reinforce", "online-rl", "prompts-reward", False, ("oxstudy.PolarityGRPOTrainer", "trl.GRPOConfig"),
          defaults={**_POLARITY_DEFAULTS, "polarity_lambda": 0.1}, fixed=_POLARITY_FIXED, tags=_online("polarity"),
          paper=_POLARITY_PAPER,
          loss="lambda L_PSR + L_NSR = -sum_{i,t} (lambda 1[R_i=1] - 1[R_i=0]) log pi(o_{i,t}) / sum_i |o_i|",
          description="Weighted REINFORCE: correct samples down-weighted by lambda (0.1), incorrect pushed down.",
          aliases=("weighted-reinforce",)),
]

_REGISTRY: dict[str, AlgorithmInfo] = {info.name: info for info in _ENTRIES}
_ALIASES: dict[str, str] = {alias: info.name for info in _ENTRIES for alias in info.aliases}


def names() -> list[str]:
    """Canonical method names, in registry order (aliases such as ``sgrpo`` not repeated)."""
    return list(_REGISTRY)


def all_names() -> list[str]:
    """Every name a spec may use: canonical names and aliases."""
    return [*_REGISTRY, *_ALIASES]


def canonical(name: str) -> str:
    """The canonical name of ``name`` (resolving aliases; case-insensitive). KeyError if unknown."""
    key = name.strip().lower()
    if key in _REGISTRY:
        return key
    if key in _ALIASES:
        return _ALIASES[key]
    hint = suggest(name)
    raise KeyError(f"unknown algorithm {name!r}" + (f"; did you mean {hint!r}?" if hint else ""))


def get(name: str) -> AlgorithmInfo:
    """The metadata of method ``name`` (aliases accepted). Raises KeyError with a suggestion."""
    return _REGISTRY[canonical(name)]


def suggest(name: str) -> str | None:
    """The closest known method name to ``name`` (case-insensitive), or None if none is close."""
    key = name.strip().lower()
    candidates = all_names()
    matches = difflib.get_close_matches(key, candidates, n=1, cutoff=0.6)
    if not matches:
        # "DPO-Positive" -> "dpop": also compare without separators.
        squashed = {c.replace("-", "").replace("_", ""): c for c in candidates}
        matches = [squashed[m] for m in difflib.get_close_matches(
            key.replace("-", "").replace("_", "").replace(" ", ""), list(squashed), n=1, cutoff=0.6)]
    if not matches:
        return None
    return _ALIASES.get(matches[0], matches[0])


def allowed_hyperparameters(name: str) -> set[str]:
    """Keys a spec may set in ``hyperparameters`` for ``name``: the method's defaults plus the
    trainer config's own fields, minus those fixed by the method, shared through ``training`` or
    set by oxstudy itself."""
    info = get(name)
    config_fields = set(TRAINER_CONFIG_FIELDS.get(info.config, ()))
    allowed = (config_fields - set(info.fixed) - set(SHARED_TRAINING_KEYS) - _INFRASTRUCTURE_KEYS)
    return allowed | set(info.defaults)


def validate_hyperparameters(name: str, hyperparameters: dict[str, Any]) -> list[str]:
    """Error messages (empty if valid) for ``hyperparameters`` given to method ``name``.

    Unknown methods give one message with a suggestion; unknown keys, keys fixed by the method
    and keys that belong to the shared ``training`` section each give one message.
    """
    try:
        info = get(name)
    except KeyError as exc:
        return [str(exc.args[0])]
    allowed = allowed_hyperparameters(info.name)
    errors: list[str] = []
    for key in hyperparameters:
        if key in allowed:
            continue
        if key in info.fixed:
            errors.append(f"{key!r} is fixed to {info.fixed[key]!r} by method {info.name!r}; "
                          "choose another method instead")
        elif key in SHARED_TRAINING_KEYS:
            errors.append(f"{key!r} is a shared setting: set {SHARED_TRAINING_KEYS[key]} instead "
                          f"(per algorithm: algorithms[].training) so comparisons stay controlled")
        else:
            close = difflib.get_close_matches(key, sorted(allowed), n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            known = ", ".join(sorted(info.defaults)) or "none"
            errors.append(f"unknown hyperparameter {key!r} for method {info.name!r}{hint} "
                          f"(method defaults: {known}; or a field of {info.config})")
    return errors


def validate_finetune(name: str, finetune: str) -> list[str]:
    """Error messages (empty if fine) for running method ``name`` with ``finetune`` (full | lora)."""
    info = get(name)
    if finetune == "lora" and info.fixed.get("sync_ref_model"):
        return [f"method {info.name!r} updates a separate reference model, which TRL 1.16 does not support "
                "with LoRA (the reference is the adapter-disabled base); use finetune: full"]
    return []


def resolve_hyperparameters(name: str, hyperparameters: dict[str, Any] | None = None) -> dict[str, Any]:
    """The method's defaults with ``hyperparameters`` merged over them (a new dict)."""
    info = get(name)
    return {**info.defaults, **(hyperparameters or {})}
