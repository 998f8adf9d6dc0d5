"""Train one cell through Hugging Face TRL.

Batch sizes: offline methods count examples (pairs for preference methods); GRPO-family and
RLOO count completions (``effective_batch_size / num_generations`` prompts per step); online
DPO counts prompts (two samples each). Self-play sampling uses ``data.preference.max_new_tokens``;
online RL generation uses ``training.max_completion_length``.

:func:`train_cell` maps a cell's shared :class:`~oxstudy.spec.TrainingSpec` onto the TRL config
of its method *identically for every method* (:func:`shared_arguments`), adds the method's own
settings (registry ``fixed`` values and resolved hyperparameters), builds the TRL trainer (or
oxstudy's loss override on TRL's DPO trainer), trains, and returns the trained model in memory
with its training curves.

Full fine-tuning and LoRA (PEFT) are both supported; a LoRA run's adapter is merged into the
base weights for evaluation (``TrainResult.model`` is a plain causal LM either way).
Non-finite losses raise :class:`NonFiniteLossError` at the step where they appear.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oxstudy.algorithms import registry
from oxstudy.errors import ResourceError, SpecError

ProgressFn = Callable[[int, int], None]


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or infinite loss; the run is recorded as failed."""


@dataclass
class TrainResult:
    """What a training run returns.

    Attributes:
        model: the trained causal LM in memory (LoRA adapters merged into the base weights).
        tokenizer: its tokenizer.
        curves: ``{"step": [...], "loss": [...], "reward": [...], "kl": [...]}`` (None where a
            method does not log the quantity) plus the other numeric keys TRL logged.
        final_loss: the last logged training loss.
        steps: optimizer steps taken.
        train_s: wall time of ``trainer.train()`` (model loading and trainer setup excluded).
        setup_s: wall time of model loading and trainer construction.
        method: canonical method name.
        config: the TRL config as a plain dict (for provenance and for the equality tests).
        adapter_dir: where a LoRA adapter was saved, if any.
    """

    model: Any
    tokenizer: Any
    curves: dict[str, list[Any]]
    final_loss: float
    steps: int
    train_s: float
    setup_s: float
    method: str
    config: dict[str, Any] = field(default_factory=dict)
    adapter_dir: str | None = None
    #: data-regime measurements: completions the first reward scored (online RL), the reward used.
    regime: dict[str, Any] = field(default_factory=dict)
    #: parameters kept frozen by ``training.freeze`` / ``training.trainable`` (full fine-tuning)
    frozen: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------- settings


def device_kind() -> str:
    """``cuda`` when a GPU is visible, else ``cpu``."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def num_processes(cell: Any) -> int:
    """Data-parallel processes of a run: ``execution.gpus_per_run`` when > 1, else 1."""
    execution = getattr(cell, "execution", None)
    gpus = getattr(execution, "gpus_per_run", 0) or 0
    return max(int(gpus), 1)


def precision_flags(precision: str, device: str) -> dict[str, bool]:
    """``bf16``/``fp16`` flags: ``auto`` is bf16 on GPU, fp32 on CPU. Half precision on CPU is
    refused (TRL's CPU path silently autocasts, giving different numbers)."""
    if precision == "auto":
        precision = "bf16" if device == "cuda" else "fp32"
    if precision in ("bf16", "fp16") and device != "cuda":
        raise ResourceError(f"training.precision: {precision} needs a GPU; use auto or fp32 on CPU")
    return {"bf16": precision == "bf16", "fp16": precision == "fp16"}


def gradient_accumulation(training: Any, processes: int) -> int:
    """``effective_batch_size / (per_device_batch_size * processes)``, which must be a whole number."""
    per_step = training.per_device_batch_size * processes
    if training.effective_batch_size % per_step:
        raise SpecError(
            f"training.effective_batch_size: {training.effective_batch_size} is not a multiple of "
            f"per_device_batch_size x processes = {training.per_device_batch_size} x {processes}")
    return training.effective_batch_size // per_step


def shared_arguments(training: Any, *, seed: int, output_dir: str | Path, device: str,
                     processes: int = 1) -> dict[str, Any]:
    """The TrainingArguments every method gets from the shared TrainingSpec: identical for all
    methods of a study by construction (the controlled part of a comparison)."""
    arguments: dict[str, Any] = {
        "output_dir": str(output_dir),
        "learning_rate": training.learning_rate,
        "num_train_epochs": training.epochs,
        "max_steps": training.max_steps if training.max_steps is not None else -1,
        "per_device_train_batch_size": training.per_device_batch_size,
        "gradient_accumulation_steps": gradient_accumulation(training, processes),
        # transformers 5: a float in [0, 1) is a ratio of the total steps.
        "warmup_steps": float(training.warmup_ratio),
        "lr_scheduler_type": training.lr_scheduler,
        "adam_beta1": training.adam_beta1,
        "adam_beta2": training.adam_beta2,
        "adam_epsilon": training.adam_epsilon,
        "weight_decay": training.weight_decay,
        "optim": "adamw_torch",
        "seed": seed,
        "data_seed": seed,
        "logging_steps": training.logging_steps,
        "logging_first_step": True,
        # The HF default silently replaces NaN/inf step losses by the running mean: a diverged run
        # must fail instead.
        "logging_nan_inf_filter": False,
        "save_strategy": "no",
        "report_to": "none",
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
        "gradient_checkpointing": training.gradient_checkpointing,
        **precision_flags(training.precision, device),
    }
    if device == "cpu":
        arguments["use_cpu"] = True
    return arguments


def method_arguments(method: str, training: Any, hyperparameters: dict[str, Any]) -> dict[str, Any]:
    """The method's own config fields: registry ``fixed`` values, its hyperparameters that are
    fields of its TRL config, and the shared lengths / beta where the config has them."""
    info = registry.get(method)
    config_fields = set(registry.TRAINER_CONFIG_FIELDS[info.config])
    if info.config == "trl.DPOConfig":
        from oxstudy.algorithms.preference import dpo_config_kwargs

        kwargs = dpo_config_kwargs(info.name, hyperparameters)
    else:
        kwargs = dict(info.fixed)
        kwargs.update({k: v for k, v in hyperparameters.items() if k in config_fields})
    shared = {
        "max_length": training.max_length,
        "max_completion_length": training.max_completion_length,
        "max_new_tokens": training.max_completion_length,
    }
    for key, value in shared.items():
        if key in config_fields:
            kwargs[key] = value
    # The shared preference temperature: for online RL (GRPO family, RLOO) ``beta`` is instead
    # the KL coefficient, a method hyperparameter with TRL's default.
    if "beta" in config_fields and (info.family != "online-rl" or info.name == "online-dpo"):
        kwargs["beta"] = training.beta
    if "disable_dropout" in config_fields:
        kwargs.setdefault("disable_dropout", True)
    return kwargs


def _config_class(dotted: str):
    module, _, name = dotted.rpartition(".")
    import importlib

    return getattr(importlib.import_module(module), name)


def build_config(cell: Any, output_dir: str | Path, device: str | None = None):
    """The TRL config object for ``cell`` (shared arguments + method arguments)."""
    device = device or device_kind()
    method = registry.canonical(cell.algorithm.method)
    info = registry.get(method)
    hyperparameters = registry.resolve_hyperparameters(method, cell.algorithm.hyperparameters)
    errors = registry.validate_hyperparameters(method, cell.algorithm.hyperparameters)
    if errors:
        raise SpecError(*(f"algorithms[{cell.algorithm.id}].hyperparameters: {e}" for e in errors))
    finetune = getattr(cell.model, "finetune", "full")
    problems = registry.validate_finetune(method, finetune)
    if problems:
        raise SpecError(*(f"models[{cell.model.id}].finetune: {p}" for p in problems))
    if hyperparameters.get("use_vllm") and device != "cuda":
        raise ResourceError(f"algorithms[{cell.algorithm.id}].hyperparameters.use_vllm: vLLM needs a GPU")
    kwargs = shared_arguments(cell.training, seed=cell.seed, output_dir=output_dir, device=device,
                              processes=num_processes(cell))
    kwargs.update(method_arguments(method, cell.training, hyperparameters))
    if not hyperparameters.get("use_vllm"):
        # vLLM rollouts for online RL: an engine choice from execution.rollouts (oxstudy.engines).
        from oxstudy.engines import rollout_arguments

        kwargs.update(rollout_arguments(getattr(getattr(cell, "execution", None), "rollouts", None),
                                        config_class=info.config, device=device, gpus=num_processes(cell)))
    if info.config == "trl.GRPOConfig" and "steps_per_generation" not in hyperparameters \
            and "generation_batch_size" not in hyperparameters:
        # Off-policy mini-batching (registry: optimizer_steps_per_generation): one generation batch
        # feeds that many optimizer steps, so TRL keeps the sampling policy's log-probs and the
        # importance ratio (and every clip) is live after the first step.
        steps = int(hyperparameters.get("optimizer_steps_per_generation", 1))
        kwargs["steps_per_generation"] = kwargs["gradient_accumulation_steps"] * steps
    curriculum = getattr(getattr(cell, "data", None), "curriculum", None)
    if curriculum is not None:  # the trainer must consume the data in the curriculum's order
        from oxstudy.dataselect import curriculum_steps

        kwargs["shuffle_dataset"] = False
        if curriculum_steps(curriculum) is not None:
            kwargs["max_steps"] = curriculum_steps(curriculum)
    from oxstudy.tracking import tracking_arguments

    kwargs.update(tracking_arguments(cell))  # execution.report_to, run name (env: oxstudy.tracking)
    if info.config in ("trl.GRPOConfig", "trl.RLOOConfig"):
        # Online RL batches count completions: each step's batch must hold whole groups.
        generations = int(kwargs.get("num_generations", 2))
        if cell.training.effective_batch_size % generations:
            raise SpecError(
                f"training.effective_batch_size: {cell.training.effective_batch_size} completions per step is "
                f"not a multiple of algorithms[{cell.algorithm.id}].hyperparameters.num_generations = {generations}")
    return _config_class(info.config)(**kwargs)


def config_as_dict(config: Any) -> dict[str, Any]:
    """A JSON-able dict of a TRL config's fields."""
    import dataclasses

    out = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if isinstance(value, (str, int, float, bool, type(None), list, dict)):
            out[f.name] = value
        else:
            out[f.name] = str(value)
    return out


# ----------------------------------------------------------------------------- data


def _user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def _assistant(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


def trainer_dataset(method: str, data: Any):
    """The TRL-format (conversational) dataset a method trains on, from prepared data.

    ``data`` is a :class:`oxstudy.selfplay.TrainingData` or any mapping with the same keys:
    ``gold`` and ``sp_rft`` (prompt, solution), ``pairs`` (prompt, chosen, rejected),
    ``unpaired`` (prompt, completion, label), ``prompts`` (prompt, answer).
    """
    from datasets import Dataset

    info = registry.get(method)

    def rows(key: str) -> list[dict[str, Any]]:
        records = data[key] if isinstance(data, dict) else getattr(data, key)
        if not records:
            raise ResourceError(
                f"{info.name}: no {key.replace('_', '-')} training examples were derived from the data "
                "(self-play found no usable samples); increase data.train_size or "
                "data.preference.samples_per_prompt")
        return list(records)

    if info.data == "demonstrations":
        records = rows("sp_rft" if info.name == "sp-rft" else "gold")
        return Dataset.from_list([{"prompt": _user(r["prompt"]), "completion": _assistant(r["solution"])}
                                  for r in records])
    if info.data == "preference-pairs":
        return Dataset.from_list([{"prompt": _user(r["prompt"]), "chosen": _assistant(r["chosen"]),
                                   "rejected": _assistant(r["rejected"])} for r in rows("pairs")])
    if info.data == "unpaired-labels":
        return Dataset.from_list([{"prompt": _user(r["prompt"]), "completion": _assistant(r["completion"]),
                                   "label": bool(r["label"])} for r in rows("unpaired")])
    return Dataset.from_list([{"prompt": _user(r["prompt"]), "answer": str(r["answer"])}
                              for r in rows("prompts")])


# ----------------------------------------------------------------------------- model


def lora_config(lora: Any):
    """A PEFT LoraConfig from the spec's LoraSpec (default: rank 16 on all linear layers)."""
    from peft import LoraConfig

    return LoraConfig(
        r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout,
        target_modules=lora.target_modules, task_type="CAUSAL_LM",
    )


def load_model(model_path: str | Path, device: str, precision: str):
    """The base causal LM and tokenizer from a local directory (or hub id when online)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # fp32 master weights in every precision: bf16/fp16 are autocast by the Trainer (mixed
    # precision). Pure bf16 weights would round away updates at the spec's default lr of 1e-6.
    precision_flags(precision, device)  # refuses half precision on CPU
    dtype = torch.float32
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(model_path))
        model = AutoModelForCausalLM.from_pretrained(str(model_path), dtype=dtype)
    except OSError as exc:
        raise ResourceError(f"model {model_path}: cannot be loaded ({str(exc).splitlines()[0]})") from exc
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def _callbacks(curves: dict[str, list[Any]], progress: ProgressFn | None):
    from transformers import TrainerCallback

    class CurveCallback(TrainerCallback):
        """Collects logged metrics into curves; fails fast on a non-finite loss."""

        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = logs or {}
            if "loss" not in logs:  # the end-of-training summary, not a step
                return
            loss = float(logs["loss"])
            if not math.isfinite(loss):
                raise NonFiniteLossError(f"non-finite training loss {loss} at step {state.global_step}")
            reward = logs.get("reward", logs.get("rewards/margins", logs.get("rewards/chosen")))
            kl = logs.get("kl", logs.get("objective/kl"))
            row = {"step": state.global_step, "loss": loss, "reward": reward, "kl": kl}
            for key, value in logs.items():
                # Wall-clock timings are not training metrics: they would make re-runs differ.
                if key.endswith(("time", "runtime", "per_second")):
                    continue
                if key not in ("loss", "reward", "kl") and isinstance(value, (int, float)):
                    row.setdefault(key, value)
            n = len(curves.get("step", []))
            for key in set(curves) | set(row):
                column = curves.setdefault(key, [None] * n)
                value = row.get(key)
                if key == "step":
                    column.append(int(value))
                else:
                    column.append(float(value) if isinstance(value, (int, float)) else None)

        def on_step_end(self, args, state, control, **kwargs):
            if progress is not None:
                progress(state.global_step, state.max_steps)

    return [CurveCallback()]


def _eval_curve_callback(cell: Any, tokenizer: Any, device: str, points: list[dict[str, Any]]):
    """``measure.eval_every``: the in-domain benchmarks (all, if none is in-domain) evaluated every
    N optimizer steps, appended to ``points`` as ``{"step", "benchmark", "value"}``. The final step
    is left to the run's own evaluation. lm-eval reseeds python, numpy and torch, so their RNG
    states are saved and restored around each evaluation: the training trajectory (data order,
    sampled completions, dropout) is the one the run has without it."""
    from transformers import TrainerCallback

    every = int(cell.measure.eval_every)
    benchmarks = [b for b in cell.benchmarks if b.in_domain] or list(cell.benchmarks)
    if cell.measure.eval_limit is not None:
        benchmarks = [b.model_copy(update={"limit": cell.measure.eval_limit, "pass_at_k": None}) for b in benchmarks]

    class EvalCurveCallback(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kwargs):
            step = state.global_step
            if model is None or step % every or step >= state.max_steps:
                return
            from oxstudy.evaluation import evaluate_model

            with _rng_preserved():
                was_training = model.training
                model.eval()
                try:
                    metrics = evaluate_model(model, benchmarks, tokenizer, device=device)["metrics"]
                finally:
                    model.train(was_training)
            points.extend({"step": int(step), "benchmark": b.id, "value": metrics[b.id]["value"]}
                          for b in benchmarks)

    return EvalCurveCallback()


@contextlib.contextmanager
def _rng_preserved():
    """Python, numpy and torch (CPU and CUDA) RNG states restored on exit."""
    import random

    import numpy as np
    import torch

    states = (random.getstate(), np.random.get_state(), torch.get_rng_state(),
              torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None)
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])
        if states[3] is not None:
            torch.cuda.set_rng_state_all(states[3])


#: Family modules: each exposes ``METHODS`` and ``build_trainer``.
FAMILY_MODULES = ("sft", "preference", "cpo", "orpo", "kto", "online", "polarity")


def family_module(method: str):
    """The :mod:`oxstudy.algorithms` module that builds ``method``'s trainer."""
    import importlib

    name = registry.canonical(method)
    for module_name in FAMILY_MODULES:
        module = importlib.import_module(f"oxstudy.algorithms.{module_name}")
        if name in module.METHODS:
            return module
    raise KeyError(f"no trainer builder for method {name!r}")


def _build_trainer(info: registry.AlgorithmInfo, *, model, tokenizer, args, dataset, peft_config,
                   hyperparameters: dict[str, Any], reward_funcs: list, callbacks: list):
    return family_module(info.name).build_trainer(
        info, model=model, tokenizer=tokenizer, args=args, dataset=dataset, peft_config=peft_config,
        hyperparameters=hyperparameters, reward_funcs=reward_funcs, callbacks=callbacks)


def _quiet_libraries() -> None:
    """No per-library progress bars: the runner shows one progress bar per cell."""
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()


@dataclass
class PreparedRun:
    """A constructed TRL trainer and what :func:`train_cell` needs to finish the run."""

    trainer: Any
    tokenizer: Any
    method: str
    config: Any
    curves: dict[str, list[Any]]
    lora: bool
    setup_s: float
    frozen: list[str] = field(default_factory=list)
    #: ``measure.eval_every``: ``{"step", "benchmark", "value"}`` evaluations during training
    eval_curve: list[dict[str, Any]] = field(default_factory=list)


def build_trainer(cell: Any, *, model_path: str | Path, output_dir: str | Path, data: Any,
                  progress: ProgressFn | None = None, device: str | None = None,
                  reward_funcs: list[Callable[..., list[float]]] | None = None) -> PreparedRun:
    """Load the base model and construct the TRL trainer of ``cell`` without training it
    (arguments as for :func:`train_cell`)."""
    from transformers import set_seed
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    started = time.perf_counter()
    device = device or device_kind()
    method = registry.canonical(cell.algorithm.method)
    info = registry.get(method)
    hyperparameters = registry.resolve_hyperparameters(method, cell.algorithm.hyperparameters)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    args = build_config(cell, output_dir, device)

    _quiet_libraries()
    set_seed(cell.seed)  # before model loading: LoRA initialisation draws from it
    model, tokenizer = load_model(model_path, device, cell.training.precision)
    dataset = trainer_dataset(method, data)
    peft_config = None
    if getattr(cell.model, "finetune", "full") == "lora":
        from oxstudy.spec import LoraSpec

        peft_config = lora_config(cell.model.lora or LoraSpec())
    frozen = _apply_freeze(cell, model, peft_config)
    if info.family == "online-rl" and reward_funcs is None:
        from oxstudy.rewards import reward_functions

        reward_funcs = reward_functions(getattr(getattr(cell, "data", None), "reward", None))
    curves: dict[str, list[Any]] = {"step": [], "loss": [], "reward": [], "kl": []}
    callbacks = _callbacks(curves, progress)
    eval_points: list[dict[str, Any]] = []
    if getattr(getattr(cell, "measure", None), "eval_every", 0):
        callbacks.append(_eval_curve_callback(cell, tokenizer, device, eval_points))
    trainer = _build_trainer(info, model=model, tokenizer=tokenizer, args=args, dataset=dataset,
                             peft_config=peft_config, hyperparameters=hyperparameters,
                             reward_funcs=list(reward_funcs or []), callbacks=callbacks)
    trainer.remove_callback(PrinterCallback)  # logs go to the curves, not stdout
    trainer.remove_callback(ProgressCallback)
    return PreparedRun(trainer=trainer, tokenizer=tokenizer, method=method, config=args, curves=curves,
                       lora=peft_config is not None, setup_s=time.perf_counter() - started, frozen=frozen,
                       eval_curve=eval_points)


def _apply_freeze(cell: Any, model: Any, peft_config: Any) -> list[str]:
    """``training.freeze`` / ``training.trainable`` (oxstudy/freezing.py): full fine-tuning turns
    off ``requires_grad`` of the frozen parameters; LoRA puts adapters only on linear modules
    with no frozen parameter. Returns the frozen parameter names (full fine-tuning)."""
    training = cell.training
    if getattr(training, "freeze", None) is None and getattr(training, "trainable", None) is None:
        return []
    from oxstudy import freezing

    if peft_config is None:
        return freezing.apply_freeze(model, training)
    targets = freezing.lora_target_modules(model, training)
    if peft_config.target_modules != "all-linear" and not isinstance(peft_config.target_modules, str):
        wanted = set(peft_config.target_modules)
        targets = [t for t in targets if t.split(".")[-1] in wanted or t in wanted]
        if not targets:
            raise SpecError("training.freeze: no LoRA target module of models[].lora.target_modules is left trainable")
    peft_config.target_modules = targets
    return []


def train_cell(cell: Any, *, model_path: str | Path, output_dir: str | Path, data: Any,
               progress: ProgressFn | None = None, device: str | None = None,
               reward_funcs: list[Callable[..., list[float]]] | None = None) -> TrainResult:
    """Train ``cell`` (an :class:`oxstudy.plan.Cell`) from ``model_path`` on prepared ``data``.

    Args:
        cell: the resolved run (``.model``, ``.algorithm.method/.hyperparameters``, ``.seed``,
            ``.training``, ``.data``, ``.execution``).
        model_path: local directory of the base model.
        output_dir: scratch directory for TRL (nothing is checkpointed; LoRA adapters are saved
            under ``adapter/``).
        data: :class:`oxstudy.selfplay.TrainingData` (or a mapping with its keys).
        progress: called as ``progress(step, total_steps)`` after every optimizer step.
        device: ``cpu`` or ``cuda`` (default: detected).
        reward_funcs: online RL reward callables replacing the default verifier rewards
            (:func:`oxstudy.selfplay.reward_functions`).

    Raises:
        NonFiniteLossError: a logged loss was NaN or infinite.
        SpecError / ResourceError: invalid settings or unusable data / model.
    """
    device = device or device_kind()
    run = build_trainer(cell, model_path=model_path, output_dir=output_dir, data=data, progress=progress,
                        device=device, reward_funcs=reward_funcs)
    trainer, curves = run.trainer, run.curves
    train_started = time.perf_counter()
    output = trainer.train()
    train_s = time.perf_counter() - train_started
    losses = [x for x in curves["loss"] if x is not None]
    final_loss = losses[-1] if losses else float(output.training_loss)
    if not math.isfinite(final_loss):
        raise NonFiniteLossError(f"non-finite training loss {final_loss} at the end of training")

    trained = trainer.model
    adapter_dir = None
    if run.lora:
        adapter_dir = str(Path(output_dir) / "adapter")
        trained.save_pretrained(adapter_dir)
        trained = trained.merge_and_unload()
    trained.eval()
    if device == "cuda":
        import torch

        torch.cuda.empty_cache()
    return TrainResult(model=trained, tokenizer=run.tokenizer, curves=curves, final_loss=final_loss,
                       steps=int(trainer.state.global_step), train_s=train_s, setup_s=run.setup_s,
                       method=run.method, config=config_as_dict(run.config), adapter_dir=adapter_dir,
                       regime={**_regime_measurements(cell, trainer),
                               **({"eval_curve": run.eval_curve} if run.eval_curve else {})},
                       frozen=run.frozen)


def _regime_measurements(cell: Any, trainer: Any) -> dict[str, Any]:
    """Completions scored by the main reward (online RL) and the reward settings used."""
    from oxstudy.rewards import describe

    functions = list(getattr(trainer, "reward_funcs", None) or [])
    out: dict[str, Any] = {}
    if functions and hasattr(functions[0], "scored"):
        out["completions_scored"] = int(functions[0].scored)
        out["reward"] = describe(getattr(getattr(cell, "data", None), "reward", None))
    return out


# ----------------------------------------------------------------------------- multi-GPU


def deepspeed_zero3_config(cell: Any) -> dict[str, Any]:
    """A DeepSpeed ZeRO-3 config for a multi-GPU run of ``cell`` ("auto" values are filled in by
    the HF Trainer from the TRL config, so batch sizes and precision stay those of the spec)."""
    flags = precision_flags(cell.training.precision, "cuda")
    return {
        "zero_optimization": {
            "stage": 3,
            "overlap_comm": True,
            "contiguous_gradients": True,
            "reduce_bucket_size": "auto",
            "stage3_prefetch_bucket_size": "auto",
            "stage3_param_persistence_threshold": "auto",
            "stage3_gather_16bit_weights_on_model_save": True,
        },
        "bf16": {"enabled": flags["bf16"]},
        "fp16": {"enabled": flags["fp16"]},
        "gradient_accumulation_steps": "auto",
        "gradient_clipping": "auto",
        "train_batch_size": "auto",
        "train_micro_batch_size_per_gpu": "auto",
    }


def accelerate_config(cell: Any) -> dict[str, Any]:
    """An ``accelerate launch --config_file`` config (DeepSpeed ZeRO-3) for ``cell``; only for
    ``execution.gpus_per_run > 1``."""
    processes = num_processes(cell)
    if processes < 2:
        raise SpecError("execution.gpus_per_run: an accelerate/DeepSpeed config is only for runs on 2+ GPUs")
    flags = precision_flags(cell.training.precision, "cuda")
    mixed = "bf16" if flags["bf16"] else "fp16" if flags["fp16"] else "no"
    return {
        "compute_environment": "LOCAL_MACHINE",
        "distributed_type": "DEEPSPEED",
        "deepspeed_config": {
            "deepspeed_multinode_launcher": "standard",
            "offload_optimizer_device": "none",
            "offload_param_device": "none",
            "zero3_init_flag": True,
            "zero3_save_16bit_model": True,
            "zero_stage": 3,
        },
        "downcast_bf16": "no",
        "machine_rank": 0,
        "main_training_function": "main",
        "mixed_precision": mixed,
        "num_machines": 1,
        "num_processes": processes,
        "rdzv_backend": "static",
        "same_network": True,
        "use_cpu": False,
    }


def write_accelerate_config(cell: Any, path: str | Path) -> Path:
    """Write :func:`accelerate_config` as YAML to ``path`` and return it."""
    import yaml

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(accelerate_config(cell), sort_keys=True))
    return path


def accelerate_launch_command(cell: Any, config_path: str | Path, program: list[str]) -> list[str]:
    """The ``accelerate launch`` command line that runs ``program`` (e.g. ``["-m", "oxstudy.worker",
    ...]``) for ``cell`` on ``execution.gpus_per_run`` GPUs with the config written by
    :func:`write_accelerate_config`."""
    return ["accelerate", "launch", "--config_file", str(config_path),
            "--num_processes", str(num_processes(cell)), *program]
