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
        paper_training: shared ``training`` settings the paper used that differ from the study's
            (e.g. SimPO's beta 2.0); informative only, since a comparison shares ``training``
            (set them per arm with ``algorithms[].training`` to follow the paper).
        oxrl: the OXRL study's settings for this method (the second default profile): each key
            maps to ``(value, source)``, the source naming the OXRL file and field it comes from.
            Select it in a spec with ``method_defaults`` (``specs/shared/oxrl_defaults.yaml``).
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
    oxrl: dict[str, tuple[Any, str]] = field(default_factory=dict)
    paper_training: dict[str, Any] = field(default_factory=dict)

    @property
    def objective(self) -> str:
        """The objective actually run: TRL's own loss (with the config values that select it) or
        the name of oxstudy's loss override."""
        if self.name == "dapo":
            return ("oxstudy.DAPOTrainer: trl.GRPOTrainer (loss_type='dapo') plus dynamic sampling "
                    "(oxstudy.algorithms.online) and the soft overlong reward term")
        if self.trainer.startswith("oxstudy."):
            return f"oxstudy override {self.trainer} (oxstudy.algorithms.preference.{self.name.replace('-', '_')}_loss)"
        selectors = ", ".join(f"{k}={v!r}" for k, v in self.fixed.items())
        return f"{self.trainer} ({selectors})" if selectors else f"{self.trainer} (its default loss)"

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
            "objective": self.objective,
            "profiles": {
                "paper": {**self.defaults, **{f"training.{k}": v for k, v in self.paper_training.items()}},
                "oxrl": {k: {"value": v, "source": src} for k, (v, src) in self.oxrl.items()},
            },
            "accepted_settings": sorted(allowed_hyperparameters(self.name)),
            "rejected_settings": {k: v for k, v in sorted(ignored_settings(self.name).items())},
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
# Shared defaults of the GRPO family. The regime is off-policy mini-batching, as in the papers
# (GSPO: 4 mini-batches per rollout batch; DAPO: 16 gradient updates per rollout step; MiniMax-M1
# / CISPO: off-policy updates) and in OXRL (5 optimizer steps per rollout buffer): one generation
# batch feeds ``optimizer_steps_per_generation`` optimizer steps (TRL's ``steps_per_generation`` =
# that many times the gradient accumulation), so TRL computes the sampling policy's log-probs and
# every step after the first sees a live importance ratio, where clips and gates act. With 1
# (TRL's default) the ratio is always 1 and grpo = gspo = sapo, cispo = dapo = sgrpo on one
# micro-batch (tests/test_algorithms_grpo.py). ``num_generations`` and ``temperature`` are the
# study's sampling settings (the papers use 8-64 samples per prompt).
_GRPO_DEFAULTS: dict[str, Any] = {
    "num_generations": 4, "temperature": 1.0, "beta": 0.0, "epsilon": 0.2, "num_iterations": 1,
    "scale_rewards": "group", "optimizer_steps_per_generation": 4,
}
_NO_EPSILON = {k: v for k, v in _GRPO_DEFAULTS.items() if k != "epsilon"}  # cispo, sapo never read it
# Settings of the GRPO family that oxstudy implements itself (not TRL config fields).
GRPO_OXSTUDY_KEYS = frozenset({"optimizer_steps_per_generation", "dynamic_sampling",
                               "dynamic_sampling_max_rounds", "overlong_buffer_ratio",
                               "overlong_penalty_factor"})
_OXRL_RL = "oxrl/configs/rl_args.yaml"
# The OXRL study's GRPO-family settings (its sgrpo / gspo / cispo share one config).
_OXRL_GRPO: dict[str, tuple[Any, str]] = {
    "num_generations": (8, f"{_OXRL_RL} rollout.n_samples"),
    "temperature": (1.0, f"{_OXRL_RL} rollout.temperature"),
    "beta": (0.0, f"{_OXRL_RL} train.kl_coeff"),
    "epsilon": (0.2, f"{_OXRL_RL} train.clip_low"),
    "epsilon_high": (0.2, f"{_OXRL_RL} train.clip_high"),
    "optimizer_steps_per_generation": (5, f"{_OXRL_RL} train.train_steps_per_epoch (optimizer steps "
                                          "per rollout buffer)"),
}


def _info(
    name: str, family: Family, data: DataKind, needs_reference: bool, trainer_config: tuple[str, str],
    *, defaults: dict[str, Any] | None = None, fixed: dict[str, Any] | None = None,
    tags: dict[str, Any], paper: str, loss: str, description: str, aliases: tuple[str, ...] = (),
    oxrl: dict[str, tuple[Any, str]] | None = None, paper_training: dict[str, Any] | None = None,
) -> AlgorithmInfo:
    trainer, config = trainer_config
    return AlgorithmInfo(
        name=name, family=family, data=data, needs_reference=needs_reference, trainer=trainer,
        config=config, defaults=dict(defaults or {}), fixed=dict(fixed or {}), tags=tags, paper=paper,
        loss=loss, description=description, aliases=aliases, oxrl=dict(oxrl or {}),
        paper_training=dict(paper_training or {}),
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
    _info("slic", "offline-preference", "preference-pairs", False, ("oxstudy.SLiCTrainer", "trl.DPOConfig"),
          defaults={"delta": 1.0, "sft_weight": 1.0}, tags=_pref("hinge"),
          paper="Zhao et al. 2023, SLiC-HF: Sequence Likelihood Calibration with Human Feedback "
          "(arXiv:2305.10425)", loss="max(0, delta - log pi(y_w|x) + log pi(y_l|x)) - sft_weight * log pi(y_w|x)  "
          "(reference-free, as in the paper; the NLL is per sequence, summed over its tokens; training.beta "
          "is not read)",
          description="Reference-free hinge calibration loss plus a likelihood regulariser on the chosen "
          "solution."),
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
          description="Unbiased DPO loss under a known preference-flip rate eps.",
          oxrl={"label_smoothing": (0.1, "oxrl/algs/robust_dpo.py RobustDPO(label_smoothing=0.1)")}),
    _info("bco", "offline-preference", "preference-pairs", True, ("oxstudy.BCOTrainer", "trl.DPOConfig"),
          tags=_pref("binary-classifier"), paper="Jung et al. 2024, Binary Classifier Optimization for "
          "Large Language Model Alignment (arXiv:2404.04656)",
          loss="-log sigma(beta h_w - delta) - log sigma(-(beta h_l - delta)),  delta = running mean of all "
          "rewards beta h_{w,l} seen so far (the paper's reward shift; TRL's bco_pair has none)",
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
    _info("rpo", "offline-preference", "preference-pairs", True, ("oxstudy.RPOTrainer", "trl.DPOConfig"),
          defaults={"rpo_alpha": 1.0}, tags=_pref("logistic+nll"),
          paper="Pang et al. 2024, Iterative Reasoning Preference Optimization (arXiv:2404.19733)",
          loss="-log sigma(beta h) - rpo_alpha * log pi(y_w|x) / |y_w|  (the paper's per-sequence, "
          "length-normalised NLL; TRL's sigmoid+sft pools the chosen tokens of the batch instead)",
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
          loss="-log sigma(beta h),  ref <- alpha * pi + (1 - alpha) * ref every tau steps  (a run of <= tau "
          "= ref_model_sync_steps steps would equal dpo and is refused: validate_schedule)",
          description="Trust-region DPO: the reference model is softly updated towards the policy."),
    # --- DPO-family losses TRL lacks: small loss overrides on trl.DPOTrainer ---------------------
    _info("rdpo", "offline-preference", "preference-pairs", True, ("oxstudy.RDPOTrainer", "trl.DPOConfig"),
          defaults={"alpha": 0.01}, tags=_pref("length-regularised"),
          paper="Park et al. 2024, Disentangling Length from Quality in Direct Preference Optimization "
          "(arXiv:2403.19159)", loss="-log sigma(beta h - alpha (|y_w| - |y_l|))",
          description="Length-regularised DPO: a length-difference penalty inside the logistic loss.",
          aliases=("r-dpo",),
          oxrl={"alpha": (0.01, "oxrl/algs/rdpo.py RDPO(alpha=0.01)")}),
    _info("cdpo", "offline-preference", "preference-pairs", True, ("oxstudy.CDPOTrainer", "trl.DPOConfig"),
          defaults={"label_smoothing": 0.1}, tags=_pref("logistic"),
          paper="Mitchell 2023, A note on DPO with noisy preferences & relationship to IPO (cDPO)",
          loss="-(1 - eps) log sigma(beta h) - eps log sigma(-beta h)",
          description="Conservative DPO: label-smoothed logistic loss (TRL's sigmoid ignores smoothing).",
          aliases=("c-dpo",),
          oxrl={"label_smoothing": (0.1, "oxrl/algs/cdpo.py CDPO(label_smoothing=0.1)")}),
    _info("beta-dpo", "offline-preference", "preference-pairs", True,
          ("oxstudy.BetaDPOTrainer", "trl.DPOConfig"), defaults={"alpha": 0.6, "momentum": 0.9},
          tags=_pref("adaptive-beta"), paper="Wu et al. 2024, beta-DPO: Direct Preference Optimization "
          "with Dynamic beta (arXiv:2407.08639)",
          loss="-log sigma(beta_b h),  beta_b = beta (1 + alpha (mean_microbatch(beta h) - M0)), "
          "M0 <- momentum M0 + (1 - momentum) mean_step(beta h)  (once per optimizer step, over all its "
          "micro-batches; means all-reduced across processes)",
          description="DPO with a batch-level beta calibrated on the implicit reward margin.",
          aliases=("betadpo",),
          oxrl={"alpha": (0.5, "oxrl/algs/betadpo.py BetaDPO(betadpo_alpha=0.5)"), "momentum": (0.9, "oxrl/algs/betadpo.py BetaDPO(betadpo_ema_gamma=0.9)")}),
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
          aliases=("dpo-positive",),
          oxrl={"dpop_lambda": (5.0, "oxrl/algs/dpop.py DPOP(dpop_lambda=5.0)")}),
    _info("odpo", "offline-preference", "preference-pairs", True, ("oxstudy.ODPOTrainer", "trl.DPOConfig"),
          defaults={"offset": 0.0}, tags=_pref("logistic"),
          paper="Amini et al. 2024, Direct Preference Optimization with an Offset (arXiv:2402.10571)",
          loss="-log sigma(beta h - offset)  (the paper's offset alpha log(s_w - s_l) is 0 for 0/1 verifier "
          "scores, so paper ODPO equals DPO on verifier pairs; OXRL's fixed offset is 1.0)",
          description="DPO requiring the chosen to beat the rejected by an offset margin.",
          oxrl={"offset": (1.0, "oxrl/algs/odpo.py ODPO(odpo_delta=1.0)")}),
    _info("gpo", "offline-preference", "preference-pairs", True, ("oxstudy.GPOTrainer", "trl.DPOConfig"),
          defaults={"gpo_loss": "exponential"}, tags=_pref("convex"),
          paper="Tang et al. 2024, Generalized Preference Optimization: A Unified Approach to Offline "
          "Alignment (arXiv:2402.05749)",
          loss="f(beta h), f in {exponential: exp(-z), truncated_quadratic: max(0, 1 - z)^2, "
          "savage: 1/(1 + exp(z))^2}",
          description="Generalised preference optimisation with a chosen convex loss f.",
          oxrl={"gpo_loss": ("exponential", "oxrl/algs/gpo.py GPO(gpo_loss_type=\"exponential\")")}),
    _info("focalpo", "offline-preference", "preference-pairs", True,
          ("oxstudy.FocalPOTrainer", "trl.DPOConfig"), defaults={"gamma": 0.05}, tags=_pref("focal"),
          paper="Liu et al. 2025, FocalPO: Enhancing Preference Optimizing by Focusing on Correct "
          "Preference Rankings (arXiv:2501.06645)", loss="-sigma(beta h)^gamma log sigma(beta h)",
          description="DPO with a focal modulating factor that favours correctly ranked pairs.",
          oxrl={"gamma": (1.0, "oxrl/algs/focalpo.py FocalPO(focalpo_gamma=1.0); OXRL detaches the factor p^gamma")}),
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
          loss="-log sigma(beta (log pi_w/|y_w| - log pi_l/|y_l|) - gamma),  gamma = simpo_gamma  (the paper "
          "uses beta 2.0-2.5; beta is the shared training.beta)",
          description="Reference-free, length-normalised logistic loss with a target margin.",
          paper_training={"beta": 2.0}),
    _info("alphapo", "offline-preference", "preference-pairs", False, _CPO,
          defaults={"alpha": 0.25, "simpo_gamma": 0.5},
          fixed={"loss_type": "alphapo", "cpo_alpha": 0.0}, tags=_pref("reference-free"),
          paper="Gupta et al. 2025, AlphaPO: Reward Shape Matters for LLM Alignment (arXiv:2501.03884)",
          loss="-log sigma(beta/alpha (p_l^-alpha - p_w^-alpha) - gamma),  p = exp(log pi/|y|)",
          description="SimPO with an alpha-parameterised reward shape.",
          oxrl={"alpha": (1.0, "oxrl/algs/alphapo.py AlphaPO(alpha=1.0)"), "simpo_gamma": (0.5, "oxrl/algs/alphapo.py AlphaPO(gamma=0.5)")}),
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
          description="Kahneman-Tversky optimisation on unpaired desirable/undesirable labels.",
          oxrl={"desirable_weight": (1.0, "oxrl/algs/kto.py KTO(lambda_p=1.0)"), "undesirable_weight": (1.0, "oxrl/algs/kto.py KTO(lambda_n=1.0)")}),
    _info("apo-unpaired", "offline-preference", "unpaired-labels", True, ("trl.KTOTrainer", "trl.KTOConfig"),
          fixed={"loss_type": "apo_zero_unpaired"}, tags=_pref("anchored"),
          paper="D'Oosterlinck et al. 2024, Anchored Preference Optimization and Contrastive Revisions "
          "(arXiv:2408.06266)", loss="1 - sigma(beta h_w) | sigma(beta h_l)",
          description="APO-zero on unpaired labels."),
    # --- online RL ---------------------------------------------------------------------------------
    _info("grpo", "online-rl", "prompts-reward", True, _GRPO,
          defaults={**_GRPO_DEFAULTS, "beta": 0.04, "use_bias_correction_kl": False},
          fixed={"loss_type": "grpo", "importance_sampling_level": "token"}, tags=_online("group-pg"),
          paper="Shao et al. 2024, DeepSeekMath: Pushing the Limits of Mathematical Reasoning in Open "
          "Language Models (arXiv:2402.03300)",
          loss="-mean_i 1/|o_i| sum_t [min(r_t A_i, clip(r_t, 1-eps, 1+eps) A_i) - beta KL_t],  "
          "A_i = (R_i - mean_G R) / std_G R,  KL_t = pi_ref/pi - log(pi_ref/pi) - 1",
          description="Group relative policy optimisation: per-sequence token mean, token-level ratios, "
          "KL penalty to the reference (beta 0.04 as in the paper; DAPO and Dr. GRPO argue for 0).",
          oxrl={**_OXRL_GRPO, "beta": (0.0, f"{_OXRL_RL} train.kl_coeff (OXRL runs every GRPO variant "
                                            "without a KL term)")}),
    _info("sgrpo", "online-rl", "prompts-reward", False, _GRPO,
          defaults={**_GRPO_DEFAULTS, "epsilon_high": 0.2}, fixed={"loss_type": "bnpo"},
          tags=_online("group-pg"),
          paper="OXRL study's default GRPO variant (oxrl/algs/losses/sgrpo.py): the GRPO surrogate "
          "(Shao et al. 2024, arXiv:2402.03300) averaged over all tokens of the (micro-)batch",
          loss="-sum_{i,t} min(r_t A_i, clip(r_t, 1-eps, 1+eps_high) A_i) / (tokens in the micro-batch)",
          description="GRPO with a token-level mean over the micro-batch (TRL's loss_type 'bnpo', which "
          "is local-batch token normalisation, not the BNPO paper's Beta normalisation).",
          oxrl=dict(_OXRL_GRPO)),
    _info("gspo", "online-rl", "prompts-reward", False, _GRPO,
          defaults={**_GRPO_DEFAULTS, "epsilon": 3e-4, "epsilon_high": 4e-4},
          fixed={"loss_type": "grpo", "importance_sampling_level": "sequence"}, tags=_online("group-pg"),
          paper="Zheng et al. 2025, Group Sequence Policy Optimization (arXiv:2507.18071)",
          loss="-mean_i min(s_i A_i, clip(s_i, 1-eps, 1+eps_high) A_i),  s_i = (pi(o_i)/pi_old(o_i))^(1/|o_i|)",
          description="GRPO with sequence-level (length-normalised) importance ratios.",
          oxrl=dict(_OXRL_GRPO)),
    _info("cispo", "online-rl", "prompts-reward", False, _GRPO,
          defaults={**_NO_EPSILON, "epsilon_high": 5.0}, fixed={"loss_type": "cispo"},
          tags=_online("clipped-is"), paper="MiniMax 2025, MiniMax-M1: Scaling Test-Time Compute "
          "Efficiently with Lightning Attention (CISPO, arXiv:2506.13585)",
          loss="-sum_{i,t} sg(min(r_t, epsilon_high)) A_i log pi(o_t) / (tokens per accumulation window)  "
          "(TRL caps the weight at epsilon_high itself, not 1 + epsilon_high; no lower bound)",
          description="Clipped importance-sampling policy optimisation: clip the weight, keep every "
          "token's gradient.",
          oxrl={**{k: v for k, v in _OXRL_GRPO.items() if k != "epsilon"}, "epsilon_high": (1.2, f"{_OXRL_RL} train.clip_high = 0.2: OXRL clamps the "
                                                     "weight to [1 - clip_low, 1 + clip_high]; TRL's cap is "
                                                     "absolute, so 1 + 0.2 (OXRL's lower clip 0.8 has no "
                                                     "TRL equivalent)")}),
    _info("dr-grpo", "online-rl", "prompts-reward", False, _GRPO,
          defaults={**_GRPO_DEFAULTS, "scale_rewards": "none"}, fixed={"loss_type": "dr_grpo"},
          tags=_online("group-pg"), paper="Liu et al. 2025, Understanding R1-Zero-Like Training: A "
          "Critical Perspective (Dr. GRPO, arXiv:2503.20783)",
          loss="-sum_{i,t} min(r_t A_i, clip(r_t) A_i) / (G * max_completion_length),  A_i = R_i - mean_G R",
          description="GRPO without length and std normalisation biases.",
          aliases=("drgrpo",)),
    _info("dapo", "online-rl", "prompts-reward", False, ("oxstudy.DAPOTrainer", "trl.GRPOConfig"),
          defaults={**_GRPO_DEFAULTS, "epsilon_high": 0.28, "mask_truncated_completions": True,
                    "dynamic_sampling": True, "dynamic_sampling_max_rounds": 3,
                    "overlong_buffer_ratio": 0.2, "overlong_penalty_factor": 1.0},
          fixed={"loss_type": "dapo"}, tags=_online("group-pg"),
          paper="Yu et al. 2025, DAPO: An Open-Source LLM Reinforcement Learning System at Scale "
          "(arXiv:2503.14476)",
          loss="-sum_{i,t} min(r_t A_i, clip(r_t, 1-eps, 1+eps_high) A_i) / sum_i |o_i|;  R_i += overlong "
          "penalty -factor * clamp((|o_i| - (L - L_buf)) / L_buf, 0, 1), L = max_completion_length, "
          "L_buf = overlong_buffer_ratio * L;  groups with equal rewards dropped and refilled",
          description="Decoupled clip, token-level normalisation, truncated completions masked, soft "
          "overlong punishment, dynamic sampling (a TRL GRPOTrainer subclass)."),
    _info("sapo", "online-rl", "prompts-reward", False, _GRPO,
          defaults={**_NO_EPSILON, "sapo_temperature_pos": 1.0, "sapo_temperature_neg": 1.05},
          fixed={"loss_type": "sapo"}, tags=_online("soft-gate"),
          paper="Gao et al. 2025, Soft Adaptive Policy Optimization (arXiv:2511.20347)",
          loss="-mean_i 1/|o_i| sum_t sigma(tau (r_t - 1)) * 4/tau * A_i,  tau = tau_pos if A_i > 0 else tau_neg",
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

#: Names oxstudy no longer accepts, with the reason (a spec using one gets this message).
RENAMED: dict[str, str] = {
    "bnpo": "'bnpo' was TRL's loss_type 'bnpo', a token mean over the local batch, not the BNPO paper's "
            "Beta-distribution reward normalisation (Xiao et al. 2025, arXiv:2506.02864), which oxstudy does "
            "not implement; that objective is method 'sgrpo'",
}
_ALIASES: dict[str, str] = {alias: info.name for info in _ENTRIES for alias in info.aliases}


def names() -> list[str]:
    """Canonical method names, in registry order (aliases such as ``drgrpo`` not repeated)."""
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
    if key in RENAMED:
        raise KeyError(f"unknown algorithm {name!r}: {RENAMED[key]}")
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


# DPOConfig fields that only some of TRL's loss types read (TRL 1.16 DPOTrainer._compute_loss).
_DPO_LOSS_SPECIFIC: dict[str, frozenset[str]] = {
    "label_smoothing": frozenset({"robust", "exo_pair", "aot", "aot_unpaired"}),
    "discopop_tau": frozenset({"discopop"}),
    "f_divergence_type": frozenset({"sigmoid", "sigmoid_norm", "hinge", "ipo", "exo_pair", "robust",
                                    "discopop", "sft"}),
    "f_alpha_divergence_coef": frozenset({"sigmoid", "sigmoid_norm", "hinge", "ipo", "exo_pair", "robust",
                                          "discopop", "sft"}),
}
# DPOConfig fields an oxstudy loss override never reads: it computes its own loss from summed
# log-probabilities (ld_alpha would reach only TRL's reference log-probs, not the policy's).
_OVERRIDE_IGNORES = ("loss_type", "loss_weights", "use_weighting", "f_divergence_type",
                     "f_alpha_divergence_coef", "discopop_tau", "ld_alpha", "label_smoothing")
# GRPOConfig fields each loss type reads (TRL 1.16 GRPOTrainer._compute_loss).
_GRPO_LOSS_READS: dict[str, dict[str, frozenset[str]]] = {
    "epsilon": {"loss_type": frozenset({"grpo", "bnpo", "dr_grpo", "dapo"})},
    "epsilon_high": {"loss_type": frozenset({"grpo", "bnpo", "dr_grpo", "dapo", "cispo"})},
    "delta": {"loss_type": frozenset({"grpo", "bnpo", "dr_grpo", "dapo"})},
    "sapo_temperature_pos": {"loss_type": frozenset({"sapo"})},
    "sapo_temperature_neg": {"loss_type": frozenset({"sapo"})},
    "vespo_k_pos": {"loss_type": frozenset({"vespo"})},
    "vespo_lambda_pos": {"loss_type": frozenset({"vespo"})},
    "vespo_k_neg": {"loss_type": frozenset({"vespo"})},
    "vespo_lambda_neg": {"loss_type": frozenset({"vespo"})},
}
# CPOConfig fields read only by some loss types (trl.experimental.cpo.CPOTrainer.cpo_loss).
_CPO_LOSS_READS: dict[str, frozenset[str]] = {
    "simpo_gamma": frozenset({"simpo", "alphapo"}),
    "alpha": frozenset({"alphapo"}),
    "label_smoothing": frozenset({"sigmoid", "simpo", "alphapo"}),
}


def ignored_settings(name: str) -> dict[str, str]:
    """Config fields that method ``name`` would accept by type but never reads, with the reason.

    A spec setting one of them is an error (:func:`validate_hyperparameters`): silently running
    the method without the setting would make an arm differ from what its spec says."""
    info = get(name)
    ignored: dict[str, str] = {}
    if info.config == "trl.DPOConfig":
        if info.trainer.startswith("oxstudy."):
            for key in _OVERRIDE_IGNORES:
                if key not in info.defaults:
                    ignored[key] = (f"the oxstudy loss override {info.trainer} computes its own loss and "
                                    "never reads it")
        else:
            loss_types = set(info.fixed.get("loss_type", []))
            for key, readers in _DPO_LOSS_SPECIFIC.items():
                if key in info.defaults:
                    continue
                if key.startswith("f_") and loss_types <= readers:
                    continue
                if not key.startswith("f_") and loss_types & readers:
                    continue
                ignored[key] = f"TRL reads it only for loss types {sorted(readers)}, and this method runs {sorted(loss_types)}"
    elif info.config == "trl.GRPOConfig":
        loss_type = info.fixed.get("loss_type")
        for key, rule in _GRPO_LOSS_READS.items():
            if loss_type not in rule["loss_type"]:
                ignored[key] = f"TRL reads it only for loss types {sorted(rule['loss_type'])}, and this method runs {loss_type!r}"
    elif info.config == "trl.experimental.cpo.CPOConfig":
        loss_type = info.fixed.get("loss_type")
        for key, readers in _CPO_LOSS_READS.items():
            if loss_type not in readers:
                ignored[key] = f"TRL's CPOTrainer reads it only for loss types {sorted(readers)}, and this method runs {loss_type!r}"
    return ignored


def allowed_hyperparameters(name: str) -> set[str]:
    """Keys a spec may set in ``hyperparameters`` for ``name``: the method's defaults plus the
    trainer config's own fields, minus those fixed by the method, shared through ``training``,
    set by oxstudy itself or never read by the method (:func:`ignored_settings`)."""
    info = get(name)
    config_fields = set(TRAINER_CONFIG_FIELDS.get(info.config, ()))
    allowed = (config_fields - set(info.fixed) - set(SHARED_TRAINING_KEYS) - _INFRASTRUCTURE_KEYS
               - set(ignored_settings(name)))
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
    ignored = ignored_settings(info.name)
    for key in hyperparameters:
        if key in allowed:
            continue
        if key in ignored:
            errors.append(f"method {info.name!r} ignores {key!r}: {ignored[key]}")
        elif key in info.fixed:
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


def validate_schedule(name: str, hyperparameters: dict[str, Any], optimizer_steps: int | None) -> list[str]:
    """Error messages (empty if fine) for running method ``name`` for ``optimizer_steps`` steps
    (``None``: not known yet, nothing to check).

    tr-dpo moves its reference towards the policy after every ``ref_model_sync_steps``-th
    optimizer step (TRL's SyncRefModelCallback: ``global_step % ref_model_sync_steps == 0``); a
    run that ends at or before the first sync never trains against a moved reference, so it
    would silently *equal dpo*. That is an error, not a quiet fallback."""
    info = get(name)
    if not info.fixed.get("sync_ref_model") or optimizer_steps is None:
        return []
    tau = int(resolve_hyperparameters(info.name, hyperparameters)["ref_model_sync_steps"])
    if optimizer_steps > tau:
        return []
    return [f"method {info.name!r} syncs its reference every ref_model_sync_steps = {tau} optimizer steps, "
            f"but this run takes {optimizer_steps}: no step would see a moved reference, so it would equal dpo; "
            f"set hyperparameters.ref_model_sync_steps below {optimizer_steps} (the paper's 512 assumes "
            "thousands of steps) or train longer"]


def resolve_hyperparameters(name: str, hyperparameters: dict[str, Any] | None = None) -> dict[str, Any]:
    """The method's defaults with ``hyperparameters`` merged over them (a new dict)."""
    info = get(name)
    return {**info.defaults, **(hyperparameters or {})}
