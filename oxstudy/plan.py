"""The run matrix: a spec expanded into fully resolved cells with content-addressed ids.

A cell is one training run: model x algorithm x seed, with every setting resolved
(shared training defaults <- model overrides <- algorithm overrides; method
hyperparameters merged over the registry defaults). Its ``run_id`` is a hash of that
resolved configuration, so

- renaming the study, a model or an algorithm, or reordering any list, changes no id;
- changing a hyperparameter changes exactly the ids of the cells it reaches;
- two different configurations can never share a record in the store.

Labels (model id, algorithm id) are deliberately left out of the hash: the store keys
records by ``run_id`` and the current spec supplies the labels when a study is loaded.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from oxstudy.spec import (
    AlgorithmSpec,
    BenchmarkSpec,
    DataSpec,
    EvaluationSpec,
    ExecutionSpec,
    LoraSpec,
    MeasureSpec,
    ModelSpec,
    PassAtKSpec,
    StudySpec,
    TrainingSpec,
    resolve_training,
    source_kind,
)

RUN_ID_LENGTH = 16


class ResolvedAlgorithm(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    method: str
    hyperparameters: dict[str, Any] = Field(default_factory=dict)


class Cell(BaseModel):
    """One fully resolved run. ``model_dump()`` is plain JSON."""

    model_config = ConfigDict(extra="forbid")

    run_id: str
    study: str
    model: ModelSpec
    algorithm: ResolvedAlgorithm
    seed: int
    training: TrainingSpec
    data: DataSpec
    benchmarks: list[BenchmarkSpec]
    execution: ExecutionSpec
    evaluation: EvaluationSpec = Field(default_factory=EvaluationSpec)
    #: post-training measurements (anatomy, KL drift, base evaluation): not part of the run id
    measure: MeasureSpec = MeasureSpec()
    #: the zoo pretraining seed the run id records (``$OXSTUDY_ZOO_SEED`` when the cell was
    #: planned; None: the model's default). Workers build and load ``zoo:NAME`` with it, whatever
    #: their own environment says, so a record never holds another model than its id names.
    zoo_seed: int | None = None

    @property
    def label(self) -> str:
        return f"{self.model.id}/{self.algorithm.id}/seed{self.seed}"


def canonical_json(value: Any) -> str:
    """Deterministic JSON: sorted keys, no whitespace, floats in repr form."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)


def content_hash(value: Any, length: int = RUN_ID_LENGTH) -> str:
    # sha256 over canonical JSON, never Python's salted hash(): ids must agree across processes.
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()[:length]


def run_identity(
    model: ModelSpec,
    method: str,
    hyperparameters: dict[str, Any],
    seed: int,
    training: TrainingSpec,
    data: DataSpec,
    benchmarks: list[BenchmarkSpec],
) -> dict[str, Any]:
    """Everything that can change a run's results, and nothing else."""
    model_part: dict[str, Any] = {"source": model.source, "finetune": model.finetune}
    if model.finetune == "lora":
        model_part["lora"] = (model.lora or LoraSpec()).model_dump()
    # Hub revisions count only when pinned (ids of specs without them stay as they were); the
    # evaluation backend is an engine choice, recorded in provenance like the device.
    if model.revision is not None:
        model_part["revision"] = model.revision
    zoo_seed = _zoo_seed_override(model.source)
    if zoo_seed is not None:  # $OXSTUDY_ZOO_SEED builds another model: never the default's records
        model_part["zoo_seed"] = zoo_seed
    data_part = data.identity()  # data-regime settings at their defaults leave older ids unchanged
    if data_part.get("revision") is None:
        data_part.pop("revision", None)
    dataset = data_part["preference"].get("dataset")
    if dataset is not None and dataset.get("revision") is None:
        dataset.pop("revision", None)
    return {
        "model": model_part,
        "method": method,
        "hyperparameters": hyperparameters,
        "seed": seed,
        "training": training.model_dump(),
        "data": data_part,
        # sorted so that reordering benchmarks in the spec changes nothing
        "benchmarks": sorted((b.model_dump(exclude={"backend"}) for b in benchmarks), key=canonical_json),
    }


def _zoo_seed_override(source: str) -> int | None:
    """The ``$OXSTUDY_ZOO_SEED`` pretraining seed of a ``zoo:NAME`` model when it is not the
    model's default seed (None otherwise, so default ids stay as they were)."""
    if not source.startswith("zoo:"):
        return None
    from oxstudy.zoo import ZOO, seed_override

    seed, default = seed_override(), ZOO.get(source[4:])
    return seed if seed is not None and default is not None and seed != default.seed else None


def _excluded(spec: StudySpec, model_id: str, algorithm_id: str, seed: int) -> bool:
    for rule in spec.exclude:
        if (
            (rule.model is None or rule.model == model_id)
            and (rule.algorithm is None or rule.algorithm == algorithm_id)
            and (rule.seed is None or rule.seed == seed)
        ):
            return True
    return False


def _absolute(spec: StudySpec, value: str) -> str:
    return str(spec.resolve_path(value).resolve())


def _resolved_model(spec: StudySpec, model: ModelSpec) -> ModelSpec:
    update: dict[str, Any] = {}
    if model.finetune == "lora" and model.lora is None:
        update["lora"] = LoraSpec()
    if source_kind(model.source) == "path":
        update["source"] = _absolute(spec, model.source)
    return model.model_copy(update=update) if update else model


def _resolved_data(spec: StudySpec, data: DataSpec | None = None) -> DataSpec:
    data = spec.data if data is None else data
    if source_kind(data.source) == "path":
        data = data.model_copy(update={"source": _absolute(spec, data.source)})
    dataset = data.preference.dataset
    if dataset is not None and source_kind(dataset.source) == "path":
        preference = data.preference.model_copy(
            update={"dataset": dataset.model_copy(update={"source": _absolute(spec, dataset.source)})}
        )
        data = data.model_copy(update={"preference": preference})
    return data


def _resolved_measure(spec: StudySpec) -> MeasureSpec:
    """The spec's measurements with a KL prompt file made absolute (relative to the spec file,
    like every other path in it; workers run in another directory), and the base pass@k that
    ``analysis.alignment`` needs."""
    measure = spec.measure
    prompts = measure.kl_drift.prompts
    if prompts is not None and source_kind(prompts) == "path":
        kl_drift = measure.kl_drift.model_copy(update={"prompts": _absolute(spec, prompts)})
        measure = measure.model_copy(update={"kl_drift": kl_drift})
    alignment = spec.analysis.alignment
    if measure.alignment is None and alignment is not None and alignment.base_pass_at_k is None:
        # analysis.alignment asks for the base models' pass@k: the workers sample it (once per model and task)
        measure = measure.model_copy(
            update={"alignment": PassAtKSpec(samples=alignment.samples, k=sorted(set(alignment.k)))})
    return measure


def _resolved_benchmarks(spec: StudySpec) -> list[BenchmarkSpec]:
    out = []
    for benchmark in spec.benchmarks:
        if benchmark.task.endswith((".yaml", ".yml")):
            benchmark = benchmark.model_copy(update={"task": _absolute(spec, benchmark.task)})
        out.append(benchmark)
    return out


def _resolve_method(algorithm: AlgorithmSpec, method_defaults: dict[str, dict[str, Any]] | None = None,
                    ) -> tuple[str, dict[str, Any]]:
    """The canonical method name (aliases like drgrpo -> dr-grpo) and merged hyperparameters:
    registry defaults < the spec's ``method_defaults`` for the method < the arm's own."""
    from oxstudy.algorithms import registry

    method = registry.canonical(algorithm.method)
    profile = {}
    for name, values in (method_defaults or {}).items():
        if registry.canonical(name) == method:
            profile.update(values)
    return method, registry.resolve_hyperparameters(method, {**profile, **algorithm.hyperparameters})


def expand_cells(spec: StudySpec, check: bool = False) -> tuple[list[Cell], list[tuple[tuple, str]]]:
    """All cells of the matrix, in spec order (model, algorithm, seed).

    With ``check``, also return problems: two arms that resolve to the same configuration.
    """
    cells: list[Cell] = []
    clashes: list[tuple[tuple, str]] = []
    seen: dict[str, tuple[str, str]] = {}
    from oxstudy.dataselect import arm_data

    arm_datas = {a.id: arm_data(spec.data, a) for a in spec.algorithms}  # per-arm data / reward overrides
    measure = _resolved_measure(spec)
    resolved_datas = {key: _resolved_data(spec, value) for key, value in arm_datas.items()}
    benchmarks = _resolved_benchmarks(spec)
    methods = {a.id: _resolve_method(a, spec.method_defaults) for a in spec.algorithms}
    for model in spec.models:
        subset = set(model.algorithms) if model.algorithms is not None else None
        resolved_model = _resolved_model(spec, model)
        for algorithm in spec.algorithms:
            if subset is not None and algorithm.id not in subset:
                continue
            training = resolve_training(spec, model, algorithm)
            for seed in spec.seeds:
                if _excluded(spec, model.id, algorithm.id, seed):
                    continue
                # the model source as written: moving the repository must not change ids
                method, hyperparameters = methods[algorithm.id]
                identity = run_identity(
                    model,
                    method,
                    hyperparameters,
                    seed,
                    training,
                    arm_datas[algorithm.id],
                    spec.benchmarks,
                )
                run_id = content_hash(identity)
                if run_id in seen:
                    if check:
                        other_model, other_algorithm = seen[run_id]
                        index = spec.algorithms.index(algorithm)
                        clashes.append(
                            (
                                ("algorithms", index),
                                f"'{algorithm.id}' at model '{model.id}' resolves to the same configuration as "
                                f"'{other_algorithm}' at model '{other_model}' (identical runs would share one record)",
                            )
                        )
                    continue
                seen[run_id] = (model.id, algorithm.id)
                cells.append(
                    Cell(
                        run_id=run_id,
                        study=spec.name,
                        model=resolved_model,
                        algorithm=ResolvedAlgorithm(id=algorithm.id, method=method, hyperparameters=hyperparameters),
                        seed=seed,
                        training=training,
                        data=resolved_datas[algorithm.id],
                        benchmarks=benchmarks,
                        execution=spec.execution,
                        evaluation=spec.evaluation,
                        measure=measure,
                        zoo_seed=identity["model"].get("zoo_seed"),
                    )
                )
    # a clash is reported once per algorithm, not per seed
    return cells, list(dict.fromkeys(clashes))


def plan(spec: StudySpec) -> list[Cell]:
    cells, _ = expand_cells(spec)
    return cells


# --------------------------------------------------------------------------- compute estimate
#: Assumed sustained throughput of one GPU for the estimate (bf16, ~40% of an H100's dense peak).
ASSUMED_GPU_FLOPS = 4.0e14
#: Examples assumed when the training set size is unknown before loading (GSM8K's train split).
ASSUMED_TRAIN_EXAMPLES = 7473
_ONLINE_GENERATION_FACTOR = 3.0  # generation is memory-bound: ~3x the FLOPs' worth of time


@dataclass
class ComputeEstimate:
    cells: int
    gpu_hours: float
    assumptions: str


def _approx_params(hidden: int, layers: int, vocab: int) -> int:
    return 12 * layers * hidden * hidden + vocab * hidden


def _param_count(cell: Cell) -> int | None:
    """Declared, or approximated from the architecture (12 L h^2 + V h) without loading weights."""
    if cell.model.params:
        return cell.model.params
    if source_kind(cell.model.source) == "zoo":
        from oxstudy.zoo import ZOO

        config = ZOO.get(cell.model.source.split(":", 1)[1])
        return _approx_params(config.hidden_size, config.num_layers, config.vocab_size) if config else None
    config_file = Path(cell.model.source) / "config.json"
    if config_file.exists():
        try:
            cfg = json.loads(config_file.read_text())
            return _approx_params(cfg["hidden_size"], cfg["num_hidden_layers"], cfg["vocab_size"])
        except (KeyError, ValueError, TypeError):
            return None
    return None


def cell_flops(cell: Cell) -> float | None:
    """Rough training FLOPs: 6 N tokens, plus sampling cost for online and self-play methods."""
    params = _param_count(cell)
    if params is None:
        return None
    from oxstudy.algorithms import registry

    info = registry.get(cell.algorithm.method)
    examples = cell.data.train_size or ASSUMED_TRAIN_EXAMPLES
    tokens = examples * cell.training.max_length * cell.training.epochs
    flops = 6.0 * params * tokens
    samples = 0
    if info.tags.get("online"):
        samples = cell.algorithm.hyperparameters.get("num_generations", 8) * cell.training.epochs
    elif info.data != "demonstrations" or cell.algorithm.method == "sp-rft":
        samples = cell.data.preference.samples_per_prompt
    if samples:
        flops += _ONLINE_GENERATION_FACTOR * 2.0 * params * examples * samples * cell.training.max_completion_length
    return flops


def estimate_compute(cells: list[Cell]) -> ComputeEstimate:
    total = 0.0
    unknown = 0
    for cell in cells:
        flops = cell_flops(cell)
        if flops is None:
            unknown += 1
        else:
            total += flops
    gpu_hours = total / ASSUMED_GPU_FLOPS / 3600
    assumptions = (
        f"6·N·tokens per training pass + sampling for online/self-play methods, at {ASSUMED_GPU_FLOPS:.0e} FLOP/s "
        f"per GPU; {ASSUMED_TRAIN_EXAMPLES} examples where data.train_size is unset"
    )
    if unknown:
        assumptions += f"; {unknown} cells without a known parameter count are not counted"
    return ComputeEstimate(cells=len(cells), gpu_hours=gpu_hours, assumptions=assumptions)
