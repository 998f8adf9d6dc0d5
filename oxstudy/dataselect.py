"""Training-data selection and curricula: which examples an arm trains on, and in what order.

Pure Python over records (no torch, no TRL). The spec's ``data.select`` / ``data.curriculum``
(or an arm's ``algorithms[].data``) are applied to the raw records of the training source:

1. ``train_size`` caps the pool (the first N records, as before);
2. ``select.where`` keeps the records whose fields match (``{level: [1, 2]}``);
3. ``select.size`` keeps N of them by a stated rule: ``first`` (source order), ``random``
   (seeded by ``select.seed``, independent of the run seed), ``ids`` (named examples) or
   ``indices`` (positions among the matching records). ``size: 1`` is one-shot RL (Wang et al.
   2025, *Reinforcement Learning for Reasoning in Large Language Models with One Training
   Example*, arXiv:2504.20571, who pick their example by the variance of its historical training
   accuracy; that needs a prior training run, so oxstudy offers only rules definable on the data);
4. ``curriculum`` orders what remains: by level (ascending or descending, shuffled within a level
   with ``curriculum.seed``), or as stages, each drawing ``steps x prompts_per_step`` examples from
   its own pool. The trainer's own shuffling is turned off so it consumes this order.

**Difficulty level.** ``level`` is a field like any other: the column named by
``data.fields.level`` (``"Level 3"`` parses to 3: MATH's convention), else a ``level`` column,
else ``difficulty.level`` / ``difficulty.steps`` of a bundled task, else the number of solution
steps: GSM8K's ``<<a*b=c>>`` calculator annotations when present, otherwise the non-empty lines
before the ``#### N`` line. ``data.fields.level: "steps:answer"`` forces the step count of a
named column (GSM8K keeps its worked solution in ``answer``).
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

from oxstudy.errors import InputError

_LEVEL_TEXT = re.compile(r"(-?\d+)")
_CALCULATOR = re.compile(r"<<[^<>]*>>")
#: How many selected ids a run record lists in full (the hash always covers all of them).
RECORDED_IDS = 64


# ----------------------------------------------------------------------------- levels


def solution_steps(text: str) -> int:
    """Steps of a worked solution: GSM8K calculator annotations ``<<...>>`` when there are any,
    else the non-empty lines before the final ``#### N`` line."""
    annotations = _CALCULATOR.findall(text)
    if annotations:
        return len(annotations)
    body = text.split("####", 1)[0]
    return sum(1 for line in body.splitlines() if line.strip())


def parse_level(value: Any) -> int | float | None:
    """A numeric level from ``3``, ``3.0`` or ``"Level 3"`` (MATH); None when there is none."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    match = _LEVEL_TEXT.search(str(value))
    return int(match.group(1)) if match else None


def record_level(record: dict[str, Any], fields: dict[str, str] | None = None) -> int | float | None:
    """The difficulty level of a raw record (rules in the module docstring)."""
    mapping = (fields or {}).get("level")
    if mapping:
        if mapping.startswith("steps:"):
            column = mapping[len("steps:") :]
            return solution_steps(str(record.get(column, ""))) if record.get(column) is not None else None
        return parse_level(record.get(mapping))
    if "level" in record:
        return parse_level(record["level"])
    difficulty = record.get("difficulty")
    if isinstance(difficulty, dict):
        for key in ("level", "steps"):
            if key in difficulty:
                return parse_level(difficulty[key])
    solution_column = (fields or {}).get("solution", "solution")
    for column in (solution_column, "answer"):
        text = record.get(column)
        if isinstance(text, str) and "####" in text:
            return solution_steps(text)
    return None


def record_id(record: dict[str, Any], index: int, fields: dict[str, str] | None = None) -> str:
    """A stable example id: the mapped / ``id`` column, else the position in the source."""
    column = (fields or {}).get("id", "id")
    value = record.get(column)
    return str(value) if value is not None else f"#{index}"


def field_value(record: dict[str, Any], name: str, fields: dict[str, str] | None = None) -> Any:
    """A record's value of ``name`` for ``where`` filters: ``level`` is derived, other names read the
    mapped column (``data.fields``) or the same-named column (dotted names reach into dicts)."""
    if name == "level":
        return record_level(record, fields)
    column = (fields or {}).get(name, name)
    value: Any = record
    for part in column.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _normalise(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def matches(record: dict[str, Any], where: dict[str, Any], fields: dict[str, str] | None = None) -> bool:
    """Whether every ``where`` key's value is (one of) the allowed value(s). Values compare as
    numbers where both sides are numeric, else as strings."""
    for name, allowed in where.items():
        allowed_values = allowed if isinstance(allowed, list) else [allowed]
        value = _normalise(field_value(record, name, fields))
        if value is None:
            return False
        options = {_normalise(a) if not isinstance(a, str) else a for a in allowed_values}
        if value not in options and str(value) not in {str(o) for o in options}:
            return False
    return True


# ----------------------------------------------------------------------------- selection


def describe(select: Any, curriculum: Any = None) -> dict[str, Any]:
    """A JSON-able description of the selection (what the run record and the run id hash)."""
    out: dict[str, Any] = {}
    if select is not None:
        out["select"] = select.model_dump(mode="json", exclude_none=True)
    if curriculum is not None:
        out["curriculum"] = curriculum.model_dump(mode="json", exclude_none=True)
    return out


def select_records(
    records: Sequence[dict[str, Any]],
    select: Any,
    *,
    fields: dict[str, str] | None = None,
    where_label: str = "data.select",
) -> list[tuple[int, dict[str, Any]]]:
    """``(source index, record)`` pairs kept by ``select`` (a :class:`~oxstudy.spec.SelectSpec`, or
    None for all). Raises :class:`InputError` naming the setting when nothing (or too little) is left."""
    indexed = list(enumerate(records))
    if select is None:
        return indexed
    if select.where:
        indexed = [(i, r) for i, r in indexed if matches(r, select.where, fields)]
        if not indexed:
            seen = Counter(str(field_value(r, k, fields)) for r in records[:1000] for k in select.where)
            raise InputError(
                f"{where_label}.where: no training example matches {select.where} "
                f"(values seen: {', '.join(sorted(seen)[:12]) or 'none'})"
            )
    if select.rule == "ids":
        by_id = {record_id(r, i, fields): (i, r) for i, r in indexed}
        missing = [x for x in select.ids if x not in by_id]
        if missing:
            raise InputError(
                f"{where_label}.ids: {', '.join(missing[:5])} not among the {len(by_id)} matching examples"
            )
        indexed = [by_id[x] for x in select.ids]
    elif select.rule == "indices":
        too_big = [x for x in select.indices if x >= len(indexed)]
        if too_big:
            raise InputError(
                f"{where_label}.indices: {too_big[0]} is out of range ({len(indexed)} matching examples)"
            )
        indexed = [indexed[x] for x in select.indices]
    elif select.rule == "random":
        if select.size > len(indexed):
            raise InputError(f"{where_label}.size: {select.size} examples asked, {len(indexed)} match")
        # sorted positions: the subset is a seeded choice, its order stays the source order
        chosen = sorted(
            random.Random(f"oxstudy.select/{select.seed}").sample(range(len(indexed)), select.size)
        )
        indexed = [indexed[x] for x in chosen]
    if select.size is not None:
        indexed = indexed[: select.size]
    return indexed


def curriculum_order(
    items: Sequence[tuple[int, dict[str, Any]]],
    curriculum: Any,
    *,
    fields: dict[str, str] | None = None,
    prompts_per_step: int = 1,
    where_label: str = "data.curriculum",
) -> list[tuple[int, dict[str, Any]]]:
    """The examples in the order the trainer must consume them.

    Without stages: sorted by ``curriculum.by`` (ascending or descending), shuffled within equal
    values by ``curriculum.seed``. With stages: stage ``s`` contributes ``steps_s x prompts_per_step``
    examples drawn from the items matching its ``where``, cycling through a seeded permutation of them
    (a stage longer than its pool repeats it, as epochs would).
    """
    rng = random.Random(f"oxstudy.curriculum/{curriculum.seed}")
    if not curriculum.stages:
        keyed = []
        for position, (index, record) in enumerate(items):
            value = field_value(record, curriculum.by, fields)
            if value is None:
                raise InputError(
                    f"{where_label}.by: example {record_id(record, index, fields)} has no "
                    f"'{curriculum.by}' (map it with data.fields.{curriculum.by})"
                )
            keyed.append((value, rng.random(), position))
        keyed.sort(key=lambda k: (k[0], k[1]), reverse=curriculum.order == "descending")
        return [items[position] for _, _, position in keyed]
    ordered: list[tuple[int, dict[str, Any]]] = []
    for number, stage in enumerate(curriculum.stages):
        pool = [item for item in items if matches(item[1], stage.where, fields)]
        if not pool:
            raise InputError(
                f"{where_label}.stages.{number}.where: no training example matches {stage.where}"
            )
        permutation = list(pool)
        rng.shuffle(permutation)
        need = stage.steps * prompts_per_step
        ordered.extend(permutation[i % len(permutation)] for i in range(need))
    return ordered


def curriculum_steps(curriculum: Any) -> int | None:
    """Optimizer steps a staged curriculum defines (None when it has no stages)."""
    if curriculum is None or not curriculum.stages:
        return None
    return sum(stage.steps for stage in curriculum.stages)


def prompts_per_step(method: str, training: Any, hyperparameters: dict[str, Any], processes: int = 1) -> int:
    """Training examples one optimizer step consumes: prompts for online RL
    (``effective_batch_size / num_generations / num_iterations``), examples otherwise."""
    from oxstudy.algorithms import registry

    info = registry.get(method)
    if info.config in ("trl.GRPOConfig", "trl.RLOOConfig"):
        generations = int(hyperparameters.get("num_generations", 2))
        iterations = int(hyperparameters.get("num_iterations", 1))
        return max(1, training.effective_batch_size // generations // max(iterations, 1))
    return training.effective_batch_size


def summary(
    items: Sequence[tuple[int, dict[str, Any]]],
    data: Any,
    *,
    fields: dict[str, str] | None = None,
    consumed: int | None = None,
) -> dict[str, Any]:
    """What a run record keeps about the training data: the selection's description, how many
    examples (distinct and in order), their levels, and a sha256 over the ordered example ids."""
    ids = [record_id(r, i, fields) for i, r in items]
    levels = Counter(str(record_level(r, fields)) for _, r in items)
    distinct = list(dict.fromkeys(ids))
    return {
        **describe(getattr(data, "select", None), getattr(data, "curriculum", None)),
        "examples": len(distinct),
        "ordered_examples": len(ids),
        "ids_sha256": hashlib.sha256(json.dumps(ids).encode()).hexdigest()[:16],
        "ids": distinct[:RECORDED_IDS],
        "levels": dict(sorted(levels.items())),
    }


# ----------------------------------------------------------------------------- spec glue


def arm_data(data: Any, algorithm: Any) -> Any:
    """The study's :class:`~oxstudy.spec.DataSpec` with an algorithm's ``data`` / ``reward`` overrides."""
    update: dict[str, Any] = {}
    overrides = getattr(algorithm, "data", None)
    if overrides is not None:
        update.update({k: v for k, v in overrides.model_dump(exclude_none=True).items()})
        for key in ("select", "curriculum"):  # keep the models, not their dumps
            if getattr(overrides, key) is not None:
                update[key] = getattr(overrides, key)
    if getattr(algorithm, "reward", None) is not None:
        update["reward"] = algorithm.reward
    if not update:
        return data
    return data.model_validate(
        {
            **data.model_dump(),
            **{k: (v.model_dump() if hasattr(v, "model_dump") else v) for k, v in update.items()},
        }
    )


def regime_problems(spec: Any) -> list[tuple[tuple, str]]:
    """Cross-field checks of the data-regime settings: (path, message) per problem."""
    from oxstudy.algorithms import registry

    problems: list[tuple[tuple, str]] = []
    algorithm_ids = {a.id for a in spec.algorithms}
    for index, algorithm in enumerate(spec.algorithms):
        try:
            info = registry.get(algorithm.method)
        except KeyError:
            continue
        data = arm_data(spec.data, algorithm)
        where: tuple = (
            ("algorithms", index) if algorithm.data is not None or algorithm.reward is not None else ("data",)
        )
        if data.curriculum is not None and "shuffle_dataset" not in registry.TRAINER_CONFIG_FIELDS.get(
            info.config, ()
        ):
            problems.append(
                (
                    (*where, "curriculum") if where[0] == "data" else (*where, "data", "curriculum"),
                    f"method '{info.name}' cannot follow a curriculum: its TRL trainer shuffles the data "
                    "(curricula work with SFT, the GRPO family and RLOO)",
                )
            )
        if algorithm.reward is not None and info.family != "online-rl":
            problems.append(
                (
                    ("algorithms", index, "reward"),
                    f"a reward applies to online RL only; method '{info.name}' is {info.family}",
                )
            )
        if data.curriculum is not None and data.curriculum.stages:
            training = spec.training if algorithm.training is None else None
            max_steps = (algorithm.training.max_steps if algorithm.training is not None else None) or (
                training.max_steps if training is not None else None
            )
            total = curriculum_steps(data.curriculum)
            if max_steps is not None and max_steps != total:
                problems.append(
                    (
                        (*where, "curriculum", "stages")
                        if where[0] == "data"
                        else (*where, "data", "curriculum", "stages"),
                        f"the stages take {total} steps but training.max_steps is {max_steps}; "
                        "leave max_steps unset (the stages define it) or make them agree",
                    )
                )
    for section in ("alignment", "regime"):
        block = getattr(spec.analysis, section, None)
        if block is None:
            continue
        names: list[tuple[tuple, Any]] = []
        if section == "alignment":
            names.append((("analysis", "alignment", "standard"), block.standard))
            names += [(("analysis", "alignment", "shortcuts", i), s) for i, s in enumerate(block.shortcuts)]
        else:
            names += [
                (("analysis", "regime", key), getattr(block, key))
                for key in ("full", "reference")
                if getattr(block, key) is not None
            ]
        arms = algorithm_ids | {a.split("@", 1)[0] for a in algorithm_ids}
        for path, name in names:
            if name not in (arms if section == "alignment" else algorithm_ids):
                problems.append(
                    (
                        path,
                        f"'{name}' is not one of the study's algorithms "
                        f"(known: {', '.join(sorted(algorithm_ids))})",
                    )
                )
    return problems


def apply_selection(
    records: Sequence[dict[str, Any]],
    data: Any,
    *,
    prompts_per_step: int = 1,
    min_examples: int = 0,
    summary_out: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """The records ``data.select`` keeps, in ``data.curriculum``'s order (all of them, in source
    order, when neither is set), repeated cyclically up to ``min_examples`` (one trainer batch) when
    fewer. Fills ``summary_out`` with :func:`summary`."""
    fields = dict(getattr(data, "fields", None) or {})
    select, curriculum = getattr(data, "select", None), getattr(data, "curriculum", None)
    items = select_records(records, select, fields=fields)
    if curriculum is not None:
        items = curriculum_order(items, curriculum, fields=fields, prompts_per_step=prompts_per_step)
    repeated = 0
    if items and curriculum is None and len(items) < min_examples:
        # TRL's GRPO sampler drops an incomplete batch: a one-shot set would give zero steps. Repeat
        # the examples to one full batch, as one-shot RLVR duplicates its example to fill the batch.
        repeated = min_examples
        items = [items[i % len(items)] for i in range(min_examples)]
    elif items and curriculum is not None and min_examples and len(items) % min_examples:
        # A curriculum's last partial sampler batch would be dropped with its steps: pad it with the
        # last stage's examples, cyclically. max_steps (the stages' sum) still ends training on time.
        pad = min_examples - len(items) % min_examples
        tail = items[-max(prompts_per_step, 1):]  # the last step's examples: the last stage
        repeated = len(items) + pad
        items = items + [tail[i % len(tail)] for i in range(pad)]
    if summary_out is not None:
        summary_out.update(summary(items, data, fields=fields))
        summary_out["prompts_per_step"] = prompts_per_step
        if repeated:
            summary_out["repeated_to"] = repeated
    return [record for _, record in items]


def cell_batch_examples(cell: Any) -> int:
    """Examples in one batch of the trainer's sampler: prompts of a generation batch for online RL
    (``effective_batch_size / num_generations``), else the effective batch."""
    from oxstudy.algorithms import registry

    method = registry.canonical(cell.algorithm.method)
    if registry.get(method).config in ("trl.GRPOConfig", "trl.RLOOConfig"):
        hyperparameters = registry.resolve_hyperparameters(method, cell.algorithm.hyperparameters)
        per_step = max(1, cell.training.effective_batch_size // int(hyperparameters.get("num_generations", 2)))
        # one generation batch feeds optimizer_steps_per_generation optimizer steps (off-policy
        # mini-batching, oxstudy.training.build_config): the sampler batch is that many steps' prompts
        return per_step * max(1, int(hyperparameters.get("optimizer_steps_per_generation", 1)))
    return cell.training.effective_batch_size


def cell_prompts_per_step(cell: Any) -> int:
    """:func:`prompts_per_step` of a planned cell."""
    from oxstudy.algorithms import registry

    method = registry.canonical(cell.algorithm.method)
    hyperparameters = registry.resolve_hyperparameters(method, cell.algorithm.hyperparameters)
    execution = getattr(cell, "execution", None)
    processes = max(int(getattr(execution, "gpus_per_run", 0) or 0), 1)
    return prompts_per_step(method, cell.training, hyperparameters, processes)
