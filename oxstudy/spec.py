"""The study spec: pydantic models, loading with ``extends``, and located validation.

A spec declares algorithms x model scales x seeds x benchmarks plus the shared training
settings that make the comparison controlled. ``load_spec(path)`` returns a validated
``StudySpec`` or raises ``SpecError`` whose messages read ``FILE:LINE: path.to.field: message``
(all problems at once, one line each).

Precedence of training settings (most specific wins): ``training`` (shared) <- the model's
``training`` <- the algorithm's ``training``.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Optional

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    field_validator,
    model_serializer,
    model_validator,
)
from typing_extensions import TypeAliasType

from oxstudy.errors import SpecError
from oxstudy.yamlsource import PathKey, SourceMap, deep_merge, format_path, load_yaml, located

Identifier = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.+@-]*$", description="Short label: letters, digits, _ . + - @ (ARM@BENCHMARK: an arm trained for one benchmark, see analysis.alignment)")


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


# --------------------------------------------------------------------------- freezing
class ParamSelection(StrictModel):
    """Parameters selected by module-name globs and/or decoder-layer ranges (see oxstudy/freezing.py).

    A bare list is shorthand for ``{modules: [...]}``. A parameter is selected when its module
    path matches one of ``modules`` (any dot-aligned suffix, fnmatch globs) and, if ``layers``
    is given, it belongs to one of those layers.
    """

    modules: list[str] = Field(default_factory=list, description='Module-name globs, e.g. "layers.*.self_attn.q_proj".')
    layers: str | None = Field(None, description='Decoder layers: "0-3", "0-3,6", "12-" (to the last).')

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"modules": value} if isinstance(value, list) else value

    @model_validator(mode="after")
    def _not_empty(self) -> ParamSelection:
        if not self.modules and self.layers is None:
            raise ValueError("select modules and/or layers")
        if self.layers is not None:
            from oxstudy.freezing import parse_layers

            try:
                parse_layers(self.layers, num_layers=10**6)
            except ValueError as exc:
                raise ValueError(f"layers: {exc}") from None
        return self


def _drop_none(data: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """Leave optional fields out of a dump while unset, so adding them changed no existing run id."""
    for key in keys:
        if key in data and data[key] is None:
            del data[key]
    return data


# --------------------------------------------------------------------------- training
class TrainingSpec(StrictModel):
    """Shared training settings: identical for every algorithm unless overridden."""

    learning_rate: float = Field(1e-6, gt=0, description="Peak learning rate (AdamW).")
    epochs: float = Field(3.0, gt=0, description="Passes over the training data.")
    effective_batch_size: int = Field(8, gt=0, description="Examples per optimizer step, all processes together.")
    per_device_batch_size: int = Field(
        8, gt=0, description="Examples per forward pass; accumulation = effective / (per_device x processes)."
    )
    warmup_ratio: float = Field(0.1, ge=0, lt=1, description="Fraction of steps with linear warmup.")
    lr_scheduler: Literal["cosine", "linear", "constant", "constant_with_warmup"] = "cosine"
    adam_beta1: float = Field(0.9, ge=0, lt=1)
    adam_beta2: float = Field(0.95, ge=0, lt=1)
    adam_epsilon: float = Field(1e-8, gt=0)
    weight_decay: float = Field(0.01, ge=0)
    max_length: int = Field(512, gt=0, description="Maximum tokens of prompt + completion.")
    max_prompt_length: int = Field(256, gt=0)
    max_completion_length: int = Field(256, gt=0, description="Generation length for online RL and self-play.")
    precision: Literal["auto", "bf16", "fp16", "fp32"] = Field(
        "auto", description="auto = bf16 on GPU, fp32 on CPU. bf16/fp16 fall back to fp32 on CPU with a warning."
    )
    beta: float = Field(0.1, gt=0, description="Preference / KL temperature shared by preference methods.")
    max_steps: int | None = Field(None, gt=0, description="Cap on optimizer steps (overrides epochs).")
    gradient_checkpointing: bool = False
    logging_steps: int = Field(1, gt=0)
    freeze: ParamSelection | None = Field(
        None, description="Parameters kept frozen during training (identical for every algorithm unless overridden)."
    )
    trainable: ParamSelection | None = Field(None, description="The inverse of freeze: only these parameters train.")

    @model_validator(mode="after")
    def _freeze_or_trainable(self) -> TrainingSpec:
        if self.freeze is not None and self.trainable is not None:
            raise ValueError("give freeze or trainable, not both")
        return self

    @model_serializer(mode="wrap")
    def _serialize(self, handler: Any) -> dict[str, Any]:
        return _drop_none(handler(self), ("freeze", "trainable"))


def _optional_copy(model: type[BaseModel], name: str) -> type[BaseModel]:
    """The same fields as ``model``, each optional with default None (for overrides)."""
    fields: dict[str, Any] = {}
    for field_name, info in model.model_fields.items():
        fields[field_name] = (Optional[info.annotation], Field(None, description=info.description))  # noqa: UP045
    return create_model(name, __base__=StrictModel, **fields)


TrainingOverrides = _optional_copy(TrainingSpec, "TrainingOverrides")


def _check_overrides(overrides: BaseModel | None) -> BaseModel | None:
    """Run the shared field constraints on the overridden values."""
    if overrides is not None:
        values = overrides.model_dump(exclude_none=True)
        TrainingSpec.model_validate(values)
    return overrides


# --------------------------------------------------------------------------- models
class LoraSpec(StrictModel):
    """LoRA through PEFT."""

    r: int = Field(16, gt=0, description="Adapter rank (> 0).")
    alpha: int = Field(32, gt=0)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: Literal["all-linear"] | list[str] = Field("all-linear", description="Default: all linear layers.")


class ModelSpec(StrictModel):
    """One model scale."""

    id: str = Identifier
    source: str = Field(
        description="zoo:NAME (built-in tiny model), a Hugging Face id (Qwen/Qwen2.5-1.5B-Instruct) or a local path."
    )
    revision: str | None = Field(
        None, description="Hub models: branch, tag or commit to use (default main); the resolved commit is recorded."
    )
    params: int | None = Field(None, gt=0, description="Parameter count; read from the model config when absent.")
    family: str | None = None
    finetune: Literal["full", "lora"] = "full"
    lora: LoraSpec | None = None
    training: TrainingOverrides | None = None  # type: ignore[valid-type]
    algorithms: list[str] | None = Field(None, description="Subset of algorithm ids run at this model.")

    @field_validator("training")
    @classmethod
    def _valid_overrides(cls, value: Any) -> Any:
        return _check_overrides(value)


class AlgorithmSpec(StrictModel):
    """One algorithm arm: a registry method plus hyperparameter overrides."""

    id: str = Identifier
    method: str = Field(description="A method from `oxstudy algorithms`.")
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    training: TrainingOverrides | None = None  # type: ignore[valid-type]
    data: ArmDataSpec | None = Field(None, description="Overrides of the study's data for this arm (source, "
                                     "select, curriculum): e.g. an easy-only or one-shot arm.")
    reward: RewardSpec | None = Field(None, description="This arm's online-RL reward (replaces data.reward), "
                                      "e.g. {kind: random, p: 0.5}.")

    @field_validator("training")
    @classmethod
    def _valid_overrides(cls, value: Any) -> Any:
        return _check_overrides(value)


# --------------------------------------------------------------------------- data
class DatasetSource(StrictModel):
    source: str = Field(description="hf:ID or a local .jsonl / .parquet path.")
    revision: str | None = Field(None, description="hf: datasets: branch, tag or commit (default main).")
    config: str | None = None
    split: str = "train"
    fields: dict[str, str] = Field(default_factory=dict, description="canonical column -> column in the source")


class PreferenceSpec(StrictModel):
    """How preference / unpaired / RL data is made."""

    mode: Literal["self-play", "dataset"] = "self-play"
    samples_per_prompt: int = Field(4, ge=2)
    temperature: float = Field(1.0, gt=0)
    max_new_tokens: int = Field(128, gt=0)
    dataset: DatasetSource | None = None


class RewardSpec(StrictModel):
    """The online-RL reward (see :mod:`oxstudy.rewards` for each kind and its paper)."""

    format_weight: float = Field(0.0, ge=0, description="Weight of a format reward added to exact match.")
    kind: Literal["exact_match", "format", "random", "noisy", "incorrect"] = Field(
        "exact_match", description="exact_match (default); format (format only); random (Bernoulli p); "
        "noisy (exact match flipped with probability q); incorrect (1 for a wrong final answer).")
    p: float | None = Field(None, ge=0, le=1, description="kind random: probability of reward 1.")
    q: float | None = Field(None, ge=0, le=1, description="kind noisy: probability of flipping the reward.")
    seed: int = Field(0, description="Seed of random / noisy rewards (hashed with prompt and completion).")

    @model_validator(mode="after")
    def _parameters_match_kind(self) -> RewardSpec:
        if self.kind == "random" and self.p is None:
            raise ValueError("kind 'random' needs p (probability of reward 1)")
        if self.kind == "noisy" and self.q is None:
            raise ValueError("kind 'noisy' needs q (probability of flipping the reward)")
        if self.p is not None and self.kind != "random":
            raise ValueError(f"p is only used by kind 'random' (kind is '{self.kind}')")
        if self.q is not None and self.kind != "noisy":
            raise ValueError(f"q is only used by kind 'noisy' (kind is '{self.kind}')")
        return self


Scalar = str | int | float | bool


class SelectSpec(StrictModel):
    """Which training examples an arm trains on (applied after ``train_size``; see oxstudy.dataselect)."""

    where: dict[str, Scalar | list[Scalar]] = Field(
        default_factory=dict, description="field -> allowed value(s), e.g. {level: [1, 2]}; every key must match. "
        "`level` is derived when the data has none (docs/spec.md, Training-data selection).")
    size: int | None = Field(None, gt=0, description="Keep this many of the matching examples (1 = one-shot RL).")
    rule: Literal["first", "random", "ids", "indices"] = Field(
        "first", description="How `size` examples are chosen: first (in source order), random (seeded by `seed`), "
        "ids (the examples named in `ids`), indices (positions in `indices`, after `where`).")
    seed: int = Field(0, description="Seed of rule random (independent of the run seed: every seed trains on "
                      "the same subset).")
    ids: list[str] | None = Field(None, description="rule ids: example ids to keep, in this order.")
    indices: list[int] | None = Field(None, description="rule indices: 0-based positions among the matching examples.")

    @model_validator(mode="after")
    def _rule_arguments(self) -> SelectSpec:
        if self.rule == "ids" and not self.ids:
            raise ValueError("rule 'ids' needs ids: [...]")
        if self.rule == "indices" and not self.indices:
            raise ValueError("rule 'indices' needs indices: [...]")
        if self.ids and self.rule != "ids":
            raise ValueError(f"ids are only used by rule 'ids' (rule is '{self.rule}')")
        if self.indices and self.rule != "indices":
            raise ValueError(f"indices are only used by rule 'indices' (rule is '{self.rule}')")
        if self.indices and any(i < 0 for i in self.indices):
            raise ValueError("indices must be >= 0")
        if self.rule == "random" and self.size is None:
            raise ValueError("rule 'random' needs size")
        return self


class CurriculumStage(StrictModel):
    where: dict[str, Scalar | list[Scalar]] = Field(description="The examples of this stage, e.g. {level: [1]}.")
    steps: int = Field(gt=0, description="Optimizer steps spent on this stage.")


class CurriculumSpec(StrictModel):
    """The order in which the trainer sees the (selected) examples; turns the trainer's shuffling off."""

    by: str = Field("level", description="The field that orders the data (numeric or sortable).")
    order: Literal["ascending", "descending"] = Field("ascending", description="Easiest first (ascending) or last.")
    stages: list[CurriculumStage] | None = Field(
        None, description="Stages with their own step counts (max_steps becomes their sum); without stages the "
        "whole set is ordered by `by` and trained for the usual epochs / max_steps.")
    seed: int = Field(0, description="Seed of the shuffle within a level / stage.")


class ArmDataSpec(StrictModel):
    """Per-algorithm overrides of the study's ``data`` (a different source, subset or curriculum)."""

    source: str | None = None
    config: str | None = None
    split: str | None = None
    fields: dict[str, str] | None = None
    train_size: int | None = Field(None, gt=0)
    select: SelectSpec | None = None
    curriculum: CurriculumSpec | None = None


class DataSpec(StrictModel):
    """The training source."""

    source: str = Field("task:oxs_arith", description="task:NAME (bundled generator), hf:ID, or a local .jsonl/.parquet path.")
    revision: str | None = Field(None, description="hf: datasets: branch, tag or commit (default main).")
    config: str | None = None
    split: str = "train"
    fields: dict[str, str] = Field(default_factory=dict, description="canonical column (prompt, solution, answer) -> source column")
    train_size: int | None = Field(None, gt=0, description="Use at most this many training examples.")
    preference: PreferenceSpec = Field(default_factory=PreferenceSpec)
    reward: RewardSpec = Field(default_factory=RewardSpec)
    select: SelectSpec | None = Field(None, description="Training-data selection: filter, subset, one-shot.")
    curriculum: CurriculumSpec | None = Field(None, description="Order the trainer sees the data in.")

    def identity(self) -> dict[str, Any]:
        """``model_dump()`` without the data-regime settings left at their defaults, so that
        specs written before they existed keep their run ids."""
        dump = self.model_dump()
        for key in ("select", "curriculum"):
            if dump.get(key) is None:
                dump.pop(key, None)
        defaults = RewardSpec().model_dump()
        for key in ("kind", "p", "q", "seed"):
            if dump["reward"].get(key) == defaults[key]:
                dump["reward"].pop(key)
        return dump


AlgorithmSpec.model_rebuild()


# --------------------------------------------------------------------------- benchmarks
class PassAtKSpec(StrictModel):
    """pass@k by the unbiased estimator of Chen et al. (2021) from ``samples`` completions per item,
    sampled through lm-eval's ``repeats`` (oxstudy/passk.py)."""

    samples: int = Field(16, gt=0, description="n: completions sampled per item.")
    k: list[int] = Field(default_factory=list, description="k values reported (default: powers of two up to n, and n).")
    temperature: float = Field(1.0, gt=0)
    top_p: float = Field(1.0, gt=0, le=1)
    seed: int = Field(0, description="Sampling seed (the same for every run: base and trained models see one draw).")
    limit: int | None = Field(None, gt=0, description="Items sampled (default: the benchmark's limit).")

    @model_validator(mode="after")
    def _k_within_samples(self) -> PassAtKSpec:
        bad = [k for k in self.k if k < 1 or k > self.samples]
        if bad:
            raise ValueError(f"k {bad} outside 1..samples ({self.samples})")
        return self


class BenchmarkSpec(StrictModel):
    """One evaluation through lm-eval-harness."""

    id: str = Identifier
    task: str = Field(description="Bundled task, lm-eval task name, or a path to a task YAML.")
    num_fewshot: int = Field(0, ge=0)
    metric: str = Field("exact_match,strict-match", description="lm-eval result key: metric,filter.")
    limit: int | None = Field(None, gt=0)
    in_domain: bool = False
    apply_chat_template: bool = True
    fewshot_as_multiturn: bool = False
    gen_kwargs: dict[str, Any] = Field(default_factory=dict)
    batch_size: int = Field(16, gt=0)
    backend: Literal["auto", "hf", "vllm"] | None = Field(
        None, description="lm-eval model type for this benchmark; None = evaluation.backend."
    )
    role: Literal["knowledge"] | None = Field(
        None, description="knowledge: a knowledge-style benchmark for the forgetting analysis (in-domain gain vs change here)."
    )
    pass_at_k: PassAtKSpec | None = Field(None, description="Also estimate pass@k from sampled completions (generative tasks).")

    @model_serializer(mode="wrap")
    def _serialize(self, handler: Any) -> dict[str, Any]:
        return _drop_none(handler(self), ("role", "pass_at_k"))


class EvaluationSpec(StrictModel):
    """How checkpoints are evaluated (an engine choice: not part of a run's identity, recorded
    in each record's provenance)."""

    backend: Literal["auto", "hf", "vllm"] = Field(
        "auto", description="lm-eval model type: hf (transformers), vllm, or auto = vllm when installed and a GPU is present."
    )
    gpu_memory_utilization: float = Field(0.8, gt=0, le=1, description="vllm: fraction of GPU memory vLLM may take.")
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = Field(
        "float32", description="vllm: weight dtype; float32 = the numbers of the hf path (fp32 trained weights), bfloat16 is faster."
    )
    lora: Literal["merged", "enable_lora"] = Field(
        "merged", description="vllm, LoRA runs: evaluate the merged checkpoint, or the base + adapter (enable_lora)."
    )


# --------------------------------------------------------------------------- analysis / execution
class AlignmentSpec(StrictModel):
    """Model-task alignment (Mirage or Method?, arXiv:2508.21188): base pass@k per (model, task) and the
    effect of each shortcut arm against standard RL, by alignment."""

    k: list[int] = Field(default_factory=lambda: [1, 16], min_length=1, description="pass@k values computed.")
    samples: int = Field(64, gt=0, description="Samples per item for the base model's pass@k (n >= max k).")
    measure_k: int | None = Field(None, gt=0, description="The k whose pass@k is the alignment (default: max k).")
    standard: str = Field(description="Arm of standard RL (e.g. GRPO on the full data, true reward). An algorithm "
                          "id, or the part before '@' of ids named ARM@BENCHMARK (trained for that benchmark).")
    shortcuts: list[str] = Field(min_length=1, description="Algorithm ids of the shortcut arms (one-shot, "
                                 "random reward, NSR...).")
    threshold: float = Field(0.5, gt=0, lt=1, description="Base pass@k at or above which a (model, task) is "
                             "'aligned' (for the stratified table).")
    base_pass_at_k: str | None = Field(None, description="A CSV/JSON file of base pass@k (columns model, "
                                       "benchmark, k, pass_at_k) when the study store has none cached.")
    @model_validator(mode="after")
    def _measure_in_k(self) -> AlignmentSpec:
        if self.measure_k is not None and self.measure_k not in self.k:
            raise ValueError(f"measure_k {self.measure_k} is not one of k {self.k}")
        if self.samples < max(self.k):
            raise ValueError(f"samples {self.samples} must be >= the largest k ({max(self.k)})")
        return self


class RegimeSpec(StrictModel):
    """Difficulty and data-regime analyses (docs/analysis.md, Data regimes)."""

    full: str | None = Field(None, description="Algorithm id of the full-data arm that subset / curriculum arms "
                             "are compared with (steps-to-match).")
    reference: str | None = Field(None, description="Algorithm id whose accuracy is subtracted in the plateau "
                                  "test (default: the base model where the store has it, else analysis.baseline).")
    margin: float = Field(0.02, ge=0, lt=1, description="Non-inferiority margin (accuracy points, 0-1 scale).")


class AnalysisSpec(StrictModel):
    baseline: str | None = Field(None, description="Algorithm id every other arm is compared against.")
    alpha: float = Field(0.05, gt=0, lt=1)
    correction: Literal["bonferroni", "holm", "bh", "none"] = "bonferroni"
    family: Literal["vs-baseline", "pairwise"] = "vs-baseline"
    factors: list[str] = Field(default_factory=list, description="Columns for the factorial ANOVA, e.g. [params, finetune].")
    claims: str | None = Field(None, description="Path to a claims file checked by `oxstudy verify` and the report.")
    alignment: AlignmentSpec | None = Field(None, description="Model-task alignment analysis (base pass@k).")
    regime: RegimeSpec | None = Field(None, description="Difficulty / data-regime analyses (steps-to-match...).")


def study_analysis_settings(spec: Any, where: str, overridden: set[str] = frozenset()) -> dict[str, Any]:
    """The ``analysis:`` section of a study's saved spec (``analyze`` / ``report`` defaults), its
    values checked here so that a bad one is blamed on ``where`` (the spec file), not on a --flag
    the user never gave. A setting given on the command line (``overridden``) replaces the spec's
    and is checked as a flag."""
    from oxstudy.errors import InputError

    section = (spec.get("analysis") or {}) if isinstance(spec, dict) else {}
    if not isinstance(section, dict):
        raise InputError(f"{where}: analysis: expected a mapping, got {type(section).__name__}")
    for name in ("alpha", "correction", "family", "baseline", "factors"):
        if name not in section or name in overridden:
            continue
        try:
            AnalysisSpec.model_validate({name: section[name]})
        except ValidationError as exc:
            raise InputError(f"{where}: analysis.{name}: {exc.errors()[0]['msg']}, got {section[name]!r}") from None
    return section


class KLDriftSpec(StrictModel):
    """Output drift: mean per-token KL(trained || base) on a fixed held-out prompt set."""

    enabled: bool = True
    prompts: str | None = Field(
        None, description="task:NAME (its test split) or a .jsonl with a prompt column; default: the data task's test split."
    )
    n: int = Field(32, gt=0, description="Prompts used.")
    max_new_tokens: int = Field(32, gt=0, description="Greedy continuation length (from the trained model).")


class MeasureSpec(StrictModel):
    """Post-training measurements run in the worker (not part of run ids: they do not change training)."""

    anatomy: bool = Field(True, description="Weight-update anatomy per layer and module type (oxstudy/anatomy.py).")
    effective_rank: int = Field(
        0, ge=0, description="Top singular values for the effective rank of attention/MLP updates (0 = off)."
    )
    module_types: dict[str, str] = Field(
        default_factory=dict, description="Extra or replacing module-type regexes on parameter names (Llama/Qwen2 built in)."
    )
    kl_drift: KLDriftSpec = Field(default_factory=KLDriftSpec)
    base_eval: bool = Field(
        True, description="Evaluate the base model once per model (cached in the store): changes from base per run."
    )
    eval_every: int = Field(
        0, ge=0, description="Evaluate the in-domain benchmarks (all, if none is in-domain) every N optimizer steps "
        "during training (0 = off; RNG state restored, so training is unchanged): steps-to-match then reads the curve. "
        "Full fine-tuning on one process only.",
    )
    eval_limit: int | None = Field(None, gt=0, description="Items per evaluation during training (default: the "
                                   "benchmark's limit).")
    alignment: PassAtKSpec | None = Field(
        None, description="Base pass@k per (model, generative benchmark), cached in <store>/alignment/ (model-task "
        "alignment). Set from analysis.alignment (samples, k) unless it names a base_pass_at_k file.",
    )


class RaySpec(StrictModel):
    address: str | None = Field(None, description="Existing cluster (ray://... or auto); None starts a local instance.")


class SlurmSpec(StrictModel):
    partition: str | None = None
    time_min: int = Field(240, gt=0, description="Job time limit in minutes.")
    cpus_per_task: int = Field(8, gt=0)
    mem_gb: int = Field(64, gt=0)
    array_parallelism: int = Field(64, gt=0)
    additional_parameters: dict[str, Any] = Field(default_factory=dict)


class RolloutSpec(StrictModel):
    """vLLM generation for online RL (GRPO family, RLOO, online DPO), as TRL's ``use_vllm``."""

    use_vllm: Literal["auto"] | bool = Field(
        "auto", description="auto = on for online-RL cells on a GPU when vllm is installed; false = transformers generate."
    )
    mode: Literal["auto", "colocate", "server"] = Field(
        "auto", description="auto = colocate (vLLM inside the training process); server on multi-GPU cells with server_url."
    )
    gpu_memory_utilization: float = Field(0.3, gt=0, lt=1, description="colocate: fraction of GPU memory for vLLM.")
    server_url: str | None = Field(None, description="server mode: a running `trl vllm-serve` (http://host:8000).")


class ExecutionSpec(StrictModel):
    backend: Literal["local", "ray", "slurm"] = "local"
    gpus_per_run: int = Field(0, ge=0, description="0 = CPU; > 1 launches through accelerate + DeepSpeed ZeRO-3.")
    max_parallel: int = Field(1, gt=0)
    retries: int = Field(1, ge=0, description="Extra attempts for a failed cell.")
    timeout_s: int | None = Field(None, gt=0, description="Per-cell wall-clock limit.")
    keep_checkpoints: bool = False
    rollouts: RolloutSpec = Field(default_factory=RolloutSpec)
    report_to: list[Literal["tensorboard", "wandb", "mlflow"]] = Field(
        default_factory=list,
        description="Experiment trackers every trainer logs to (none by default; `none` or one name also accepted). "
        "Offline by default: TensorBoard files and an MLflow file store under <study>/tracking, WANDB_MODE=offline.",
    )
    ray: RaySpec = Field(default_factory=RaySpec)

    @field_validator("report_to", mode="before")
    @classmethod
    def _report_to_list(cls, value: Any) -> Any:
        if value is None or value == "none" or value == ["none"]:
            return []
        return [value] if isinstance(value, str) else value
    slurm: SlurmSpec = Field(default_factory=SlurmSpec)


class Exclusion(StrictModel):
    """Cells to leave out: every key given must match."""

    model: str | None = None
    algorithm: str | None = None
    seed: int | None = None


#: strict: `true` is not seed 1; the range is numpy's and torch's (a seed outside it failed every cell in the worker)
Seed = TypeAliasType("Seed", Annotated[int, Field(strict=True, ge=0, le=2**32 - 1)])


class StudySpec(StrictModel):
    """A controlled comparison: algorithms x models x seeds, evaluated on benchmarks."""

    name: str = Identifier
    description: str = ""
    output_dir: str | None = Field(None, description="Results store; default studies/<name>.")
    extends: str | None = Field(None, description="A base spec whose settings this one overrides.")
    models: list[ModelSpec] = Field(min_length=1)
    algorithms: list[AlgorithmSpec] = Field(min_length=1)
    seeds: list[Seed] = Field(min_length=1, description="Integers 0..2**32-1 (what numpy and torch seeding accept).")
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    data: DataSpec = Field(default_factory=DataSpec)
    benchmarks: list[BenchmarkSpec] = Field(min_length=1)
    evaluation: EvaluationSpec = Field(default_factory=EvaluationSpec)
    analysis: AnalysisSpec = Field(default_factory=AnalysisSpec)
    execution: ExecutionSpec = Field(default_factory=ExecutionSpec)
    measure: MeasureSpec = Field(default_factory=MeasureSpec)
    exclude: list[Exclusion] = Field(default_factory=list)
    method_defaults: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Per-method hyperparameter defaults (e.g. a published study's settings) applied "
        "under each arm's own hyperparameters; see `oxstudy algorithms --json` (profiles).")

    # Not part of the YAML: where the spec was loaded from (resolves relative paths).
    _spec_path: Path | None = None

    @property
    def spec_path(self) -> Path | None:
        return self._spec_path

    @property
    def base_dir(self) -> Path:
        return self._spec_path.parent if self._spec_path else Path.cwd()

    def resolve_path(self, value: str) -> Path:
        """A path from the spec, relative to the spec file."""
        path = Path(value).expanduser()
        return path if path.is_absolute() else (self.base_dir / path)

    @property
    def store_dir(self) -> Path:
        if self.output_dir:
            return self.resolve_path(self.output_dir)
        return Path("studies") / self.name

    def model(self, model_id: str) -> ModelSpec:
        return next(m for m in self.models if m.id == model_id)

    def algorithm(self, algorithm_id: str) -> AlgorithmSpec:
        return next(a for a in self.algorithms if a.id == algorithm_id)


# --------------------------------------------------------------------------- source kinds
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")


def source_kind(source: str) -> Literal["zoo", "task", "hub", "path"]:
    """Classify a model or data source string.

    ``zoo:NAME`` and ``task:NAME`` are built in, ``hf:ID`` is always the hub; a string that
    starts like a path (``./``, ``../``, ``/``, ``~``) or has a file suffix is a local path;
    ``owner/name`` is a hub id.
    """
    if source.startswith("zoo:"):
        return "zoo"
    if source.startswith("task:"):
        return "task"
    if source.startswith("hf:"):
        return "hub"
    if source.startswith((".", "/", "~")) or Path(source).suffix in {".jsonl", ".json", ".parquet", ".csv"}:
        return "path"
    if _HUB_ID.match(source):
        return "hub"
    return "path"


# --------------------------------------------------------------------------- loading
def _read_with_extends(path: Path, seen: tuple[Path, ...] = ()) -> tuple[dict[str, Any], SourceMap]:
    data, source = load_yaml(path)
    if not isinstance(data, dict):
        raise SpecError(f"{path}:1: <root>: a spec must be a mapping of settings, got {type(data).__name__}")
    base_name = data.get("extends")
    if base_name is None:
        return data, source
    if not isinstance(base_name, str):
        raise SpecError(located(source, ("extends",), "must be a path to a base spec"))
    base_path = (path.parent / base_name).resolve()
    if base_path in seen or base_path == path.resolve():
        raise SpecError(located(source, ("extends",), f"circular extends via {base_name}"))
    if not base_path.exists():
        raise SpecError(located(source, ("extends",), f"base spec {base_name} not found (looked in {base_path.parent})"))
    base_data, base_source = _read_with_extends(base_path, seen + (path.resolve(),))
    base_data.pop("extends", None)
    merged = deep_merge(base_data, data)
    # The child's locations win; paths only the base defines point into the base file.
    base_source.update(source)
    base_source.default_file = str(path)
    return merged, base_source


def _field_suggestion(model_cls: type[BaseModel] | None, key: str) -> str:
    if model_cls is None:
        return ""
    fields = list(model_cls.model_fields)
    close = difflib.get_close_matches(key, fields, n=1, cutoff=0.6)
    close = close or [f for f in fields if key.startswith(f) or f.startswith(key)][:1]  # rank -> r
    return f" (did you mean '{close[0]}'?)" if close else ""


def _model_at(path: PathKey) -> type[BaseModel] | None:
    """The pydantic model that owns the mapping at ``path`` (for 'did you mean' on unknown keys)."""
    cls: Any = StudySpec
    for part in path:
        if isinstance(part, int):
            continue
        if cls is None or not hasattr(cls, "model_fields") or part not in cls.model_fields:
            return None
        annotation = cls.model_fields[part].annotation
        cls = _unwrap_model(annotation)
    return cls if isinstance(cls, type) and issubclass(cls, BaseModel) else None


def _unwrap_model(annotation: Any) -> Any:
    args = getattr(annotation, "__args__", None)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in args or ():
        found = _unwrap_model(arg)
        if found is not None:
            return found
    return None


def _pydantic_messages(exc: ValidationError, source: SourceMap) -> list[str]:
    messages = []
    for error in exc.errors():
        loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and p.startswith(("function-", "literal["))))
        kind = error["type"]
        if kind == "extra_forbidden":
            key = str(loc[-1])
            msg = f"unknown key{_field_suggestion(_model_at(loc[:-1]), key)}"
        elif kind == "missing":
            msg = "required field is missing"
        else:
            msg = error["msg"]
            if msg.startswith("Value error, "):
                msg = msg[len("Value error, ") :]
        messages.append(located(source, loc, msg))
    return messages


def load_spec(path: str | Path) -> StudySpec:
    """Load, merge ``extends`` and validate a spec; raise ``SpecError`` with every problem."""
    path = Path(path)
    data, source = _read_with_extends(path)
    try:
        spec = StudySpec.model_validate(data)
    except ValidationError as exc:
        messages = _pydantic_messages(exc, source)
        # Cross-field checks on the raw data still run, so every problem shows at once.
        messages += [located(source, p, m) for p, m in _raw_cross_checks(data)]
        raise SpecError(*dict.fromkeys(messages)) from None
    spec._spec_path = path.resolve()
    problems = check_spec(spec)
    if problems:
        raise SpecError(*dict.fromkeys(located(source, p, m) for p, m in problems))
    return spec


def load_spec_data(data: dict[str, Any], base_dir: Path | None = None) -> StudySpec:
    """Validate an in-memory spec (tests, smoke mode). Errors are located as ``<spec>:1``."""
    source = SourceMap(default_file="<spec>")
    try:
        spec = StudySpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(*_pydantic_messages(exc, source)) from None
    if base_dir is not None:
        spec._spec_path = (Path(base_dir) / "spec.yaml").resolve()
    problems = check_spec(spec)
    if problems:
        raise SpecError(*(located(source, p, m) for p, m in problems))
    return spec


# --------------------------------------------------------------------------- cross-field checks
Problem = tuple[PathKey, str]


def _duplicates(values: list[Any]) -> list[int]:
    seen: set[Any] = set()
    out = []
    for i, value in enumerate(values):
        if value in seen:
            out.append(i)
        seen.add(value)
    return out


def _raw_cross_checks(data: dict[str, Any]) -> list[Problem]:
    """The id-reference checks on unvalidated data (best effort, for all-at-once reporting)."""
    problems: list[Problem] = []
    algorithms = data.get("algorithms") if isinstance(data.get("algorithms"), list) else []
    algorithm_ids = {a.get("id") for a in algorithms if isinstance(a, dict)}
    analysis = data.get("analysis") if isinstance(data.get("analysis"), dict) else {}
    baseline = analysis.get("baseline")
    if baseline is not None and algorithm_ids and baseline not in algorithm_ids:
        problems.append((("analysis", "baseline"), _unknown_id("algorithm", baseline, algorithm_ids)))
    for i, algorithm in enumerate(algorithms):
        if isinstance(algorithm, dict) and isinstance(algorithm.get("method"), str):
            problem = _method_problem(algorithm["method"])
            if problem:
                problems.append((("algorithms", i, "method"), problem))
    seeds = data.get("seeds")
    if isinstance(seeds, list):
        for i in _duplicates(seeds):
            problems.append((("seeds", i), f"seed {seeds[i]} is listed twice"))
    return problems


def _unknown_id(kind: str, value: Any, known: set[Any]) -> str:
    close = difflib.get_close_matches(str(value), [str(k) for k in known], n=1, cutoff=0.5)
    hint = f" (did you mean '{close[0]}'?)" if close else f" (known: {', '.join(sorted(map(str, known)))})"
    return f"'{value}' is not one of the study's {kind}s{hint}"


def _method_problem(method: str) -> str | None:
    from oxstudy.algorithms import registry

    try:
        registry.canonical(method)
        return None
    except KeyError:
        pass
    renamed = registry.RENAMED.get(method.strip().lower())
    if renamed:  # a name oxstudy retired on purpose: say why, not just "unknown"
        return f"unknown method '{method}': {renamed}"
    suggestion = registry.suggest(method)
    hint = f" (did you mean '{suggestion}'?)" if suggestion else " (see `oxstudy algorithms`)"
    return f"unknown method '{method}'{hint}"


def check_spec(spec: StudySpec) -> list[Problem]:
    """Cross-field rules; returns (path, message) for each problem."""
    from oxstudy.algorithms import registry

    problems: list[Problem] = []
    model_ids = [m.id for m in spec.models]
    algorithm_ids = [a.id for a in spec.algorithms]
    for key, ids in (("models", model_ids), ("algorithms", algorithm_ids), ("benchmarks", [b.id for b in spec.benchmarks])):
        for i in _duplicates(ids):
            problems.append(((key, i, "id"), f"id '{ids[i]}' is used twice"))
    for i in _duplicates(spec.seeds):
        problems.append((("seeds", i), f"seed {spec.seeds[i]} is listed twice"))

    for i, algorithm in enumerate(spec.algorithms):
        problem = _method_problem(algorithm.method)
        if problem:
            problems.append((("algorithms", i, "method"), problem))
            continue
        for message in registry.validate_hyperparameters(algorithm.method, algorithm.hyperparameters):
            problems.append((("algorithms", i, "hyperparameters"), message))

    for method, values in spec.method_defaults.items():
        problem = _method_problem(method)
        messages = [problem] if problem else registry.validate_hyperparameters(method, values)
        problems += [(("method_defaults", method), message) for message in messages]

    if spec.analysis.baseline is not None and spec.analysis.baseline not in algorithm_ids:
        problems.append((("analysis", "baseline"), _unknown_id("algorithm", spec.analysis.baseline, set(algorithm_ids))))

    for i, model in enumerate(spec.models):
        if model.finetune == "full" and model.lora is not None:
            problems.append((("models", i, "lora"), "LoRA settings given but finetune is 'full' (set finetune: lora)"))
        for j, algorithm_id in enumerate(model.algorithms or []):
            if algorithm_id not in algorithm_ids:
                problems.append((("models", i, "algorithms", j), _unknown_id("algorithm", algorithm_id, set(algorithm_ids))))
        for algorithm in spec.algorithms:
            if (model.algorithms is None or algorithm.id in model.algorithms) and not _method_problem(algorithm.method):
                for message in registry.validate_finetune(algorithm.method, model.finetune):
                    problems.append((("models", i, "finetune"), f"algorithm {algorithm.id}: {message}"))
                steps = resolve_training(spec, model, algorithm).max_steps
                method = registry.canonical(algorithm.method)
                profile = {k: v for name, values in spec.method_defaults.items()
                           if registry.canonical(name) == method for k, v in values.items()}
                merged = {**profile, **algorithm.hyperparameters}  # as plan._resolve_method merges them
                for message in registry.validate_schedule(method, merged, steps):
                    j = spec.algorithms.index(algorithm)
                    problems.append((("algorithms", j, "hyperparameters"), f"model {model.id}: {message}"))
        kind = source_kind(model.source)
        if kind == "path" and not spec.resolve_path(model.source).exists():
            problems.append((("models", i, "source"), f"local model path {model.source} does not exist"))
        if kind == "zoo":
            from oxstudy.zoo import ZOO

            name = model.source.split(":", 1)[1]
            if name not in ZOO:
                problems.append((("models", i, "source"), f"unknown zoo model '{name}' (zoo: {', '.join(ZOO)})"))

    problems += _data_problems(spec)
    problems += _engine_problems(spec)
    from oxstudy.dataselect import regime_problems

    problems += regime_problems(spec)
    for i, benchmark in enumerate(spec.benchmarks):
        if benchmark.task.endswith((".yaml", ".yml")) and not spec.resolve_path(benchmark.task).exists():
            problems.append((("benchmarks", i, "task"), f"task file {benchmark.task} does not exist"))
    problems += _measure_problems(spec)
    if spec.analysis.claims and not spec.resolve_path(spec.analysis.claims).exists():
        problems.append((("analysis", "claims"), f"claims file {spec.analysis.claims} does not exist"))

    for i, exclusion in enumerate(spec.exclude):
        if exclusion.model is not None and exclusion.model not in model_ids:
            problems.append((("exclude", i, "model"), _unknown_id("model", exclusion.model, set(model_ids))))
        if exclusion.algorithm is not None and exclusion.algorithm not in algorithm_ids:
            problems.append((("exclude", i, "algorithm"), _unknown_id("algorithm", exclusion.algorithm, set(algorithm_ids))))

    if problems:
        return problems
    # Rules that need a consistent spec: the batch arithmetic and the matrix itself.
    from oxstudy.plan import expand_cells

    problems += _batch_problems(spec)
    if problems:
        return problems
    cells, clashes = expand_cells(spec, check=True)
    problems += clashes
    if not cells:
        problems.append((("exclude",) if spec.exclude else ("models",), "the run matrix is empty after subsets and exclusions"))
    return problems


def _batch_problems(spec: StudySpec) -> list[Problem]:
    """``effective_batch_size`` must be a multiple of ``per_device_batch_size`` in every arm.

    The problem is located where the user must change it: at the more specific of the two
    values' origins (the study's ``training``, a model's or an algorithm's ``training``, as
    :func:`resolve_training` merges them); when the two come from different places, the
    message says where the other one is set.
    """
    problems: list[Problem] = []
    fields = ("effective_batch_size", "per_device_batch_size")
    for i, model in enumerate(spec.models):
        for j, algorithm in enumerate(spec.algorithms):
            training = resolve_training(spec, model, algorithm)
            effective, per_device = training.effective_batch_size, training.per_device_batch_size
            if not effective % min(per_device, effective):
                continue
            overrides = ((("algorithms", j, "training"), algorithm.training), (("models", i, "training"), model.training))
            # Most specific first; a value no override sets comes from the study's `training`.
            origins = {name: next((where for where, values in overrides
                                   if values is not None and getattr(values, name) is not None), ("training",))
                       for name in fields}
            specificity = [where for where, _ in overrides] + [("training",)]
            # The more specific origin is where the clash was introduced; ties name effective_batch_size.
            field_name = min(fields, key=lambda name: specificity.index(origins[name]))
            other = fields[1 - fields.index(field_name)]
            message = f"effective_batch_size {effective} is not a multiple of per_device_batch_size {per_device}"
            if origins[other] != origins[field_name]:
                message += f" ({other} is set in {format_path(origins[other])})"
            problems.append(((*origins[field_name], field_name), message))
    return list(dict.fromkeys(problems))


def _measure_problems(spec: StudySpec) -> list[Problem]:
    """pass@k only on generative bundled tasks; a KL prompt source that exists."""
    from oxstudy.tasks import TASKS

    problems: list[Problem] = []
    for i, benchmark in enumerate(spec.benchmarks):
        task = TASKS.get(benchmark.task)
        if benchmark.pass_at_k is not None and task is not None and task.output_type != "generate_until":
            problems.append((("benchmarks", i, "pass_at_k"), f"task {benchmark.task} is {task.output_type}: pass@k "
                             "needs a generative task"))
    prompts = spec.measure.kl_drift.prompts
    if prompts is not None:
        kind = source_kind(prompts)
        if kind == "task" and prompts.split(":", 1)[1] not in TASKS:
            problems.append((("measure", "kl_drift", "prompts"), f"unknown bundled task '{prompts}' "
                             f"(bundled: {', '.join(TASKS)})"))
        elif kind == "path" and not spec.resolve_path(prompts).exists():
            problems.append((("measure", "kl_drift", "prompts"), f"prompt file {prompts} does not exist"))
        elif kind == "hub":
            problems.append((("measure", "kl_drift", "prompts"), "use task:NAME or a local .jsonl with a prompt column"))
    if spec.measure.eval_every:
        # Evaluating a PEFT-wrapped or a distributed model mid-training is not supported: say so
        # rather than record a curve of something else.
        lora = [m.id for m in spec.models if m.finetune == "lora"]
        if lora:
            problems.append((("measure", "eval_every"), f"evaluations during training need full fine-tuning; "
                             f"model(s) {', '.join(lora)} use LoRA"))
        if spec.execution.gpus_per_run > 1:
            problems.append((("measure", "eval_every"), "evaluations during training run on one process; "
                             f"execution.gpus_per_run is {spec.execution.gpus_per_run}"))
    return problems


def _bundled_training_refusal(name: str) -> str | None:
    from oxstudy.tasks import TASKS

    return TASKS[name].training_refusal


def _data_problems(spec: StudySpec) -> list[Problem]:
    problems: list[Problem] = []
    sources: list[tuple[PathKey, str]] = [(("data", "source"), spec.data.source)]
    if spec.data.preference.dataset is not None:
        sources.append((("data", "preference", "dataset", "source"), spec.data.preference.dataset.source))
    for path, value in sources:
        kind = source_kind(value)
        if kind == "path" and not spec.resolve_path(value).exists():
            problems.append((path, f"data file {value} does not exist"))
        elif kind == "task":
            from oxstudy.tasks import bundled_tasks

            name = value.split(":", 1)[1]
            if name not in bundled_tasks():
                problems.append((path, f"unknown bundled task '{name}' (bundled: {', '.join(bundled_tasks())})"))
            elif refusal := _bundled_training_refusal(name):
                problems.append((path, f"task:{name} is no training data: {refusal}"))
    if spec.data.preference.mode == "dataset" and spec.data.preference.dataset is None:
        problems.append((("data", "preference", "dataset"), "mode 'dataset' needs a dataset (source, split, fields)"))
    return problems


def _engine_problems(spec: StudySpec) -> list[Problem]:
    """Hub revisions only on hub sources; vLLM only where cells run on a GPU (whether this
    machine has one is checked in pre-flight, since cells may run elsewhere)."""
    problems: list[Problem] = []
    for i, model in enumerate(spec.models):
        if model.revision is not None and source_kind(model.source) != "hub":
            problems.append((("models", i, "revision"), f"revision applies to Hugging Face models, not {model.source}"))
    datasets: list[tuple[PathKey, Any]] = [(("data",), spec.data)]
    if spec.data.preference.dataset is not None:
        datasets.append((("data", "preference", "dataset"), spec.data.preference.dataset))
    for path, data in datasets:
        if data.revision is not None and not data.source.startswith("hf:"):
            problems.append(((*path, "revision"), f"revision applies to hf: datasets, not {data.source}"))
    on_cpu = spec.execution.gpus_per_run == 0
    wants_vllm: list[PathKey] = [("benchmarks", i, "backend") for i, b in enumerate(spec.benchmarks) if b.backend == "vllm"]
    if spec.evaluation.backend == "vllm" and any(b.backend is None for b in spec.benchmarks):
        wants_vllm.insert(0, ("evaluation", "backend"))
    if spec.execution.rollouts.use_vllm is True:
        wants_vllm.append(("execution", "rollouts", "use_vllm"))
    for path in wants_vllm if on_cpu else []:
        problems.append((path, "vllm needs a GPU but execution.gpus_per_run is 0 (use hf / auto, or give the cells GPUs)"))
    rollouts = spec.execution.rollouts
    if rollouts.mode == "server" and not rollouts.server_url:
        problems.append((("execution", "rollouts", "server_url"),
                         "mode server needs the URL of a running `trl vllm-serve --model MODEL` (or use colocate)"))
    return problems


def resolve_training(spec: StudySpec, model: ModelSpec, algorithm: AlgorithmSpec) -> TrainingSpec:
    """Shared settings <- model overrides <- algorithm overrides (most specific wins)."""
    values = spec.training.model_dump()
    for overrides in (model.training, algorithm.training):
        if overrides is not None:
            values.update(overrides.model_dump(exclude_none=True))
    return TrainingSpec.model_validate(values)


def spec_json_schema() -> dict[str, Any]:
    """JSON Schema of the spec file, for editor completion (``oxstudy schema``)."""
    schema = StudySpec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "oxstudy study spec"
    return schema
