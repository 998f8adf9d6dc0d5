"""Freezing parts of the model during training (``training.freeze`` / ``training.trainable``).

A selection is module-name glob patterns and/or a layer range::

    training:
      freeze: {modules: ["layers.*.self_attn.q_proj", "layers.*.self_attn.k_proj"]}
      # or the shorthand: freeze: ["layers.*.self_attn.q_proj", ...]
      # trainable: {layers: "8-15"}     (the inverse: everything else is frozen)

A parameter is *selected* when its module path matches one of ``modules`` (an ``fnmatch``
glob, case-sensitive, matched against every dot-aligned suffix of the module path, so
``q_proj``, ``self_attn.q_proj`` and ``model.layers.*.self_attn.q_proj`` all select the
query projections) **and**, when ``layers`` is given, it lives in one of those decoder
layers (``"0-3"``, ``"0-3,6"``, ``"12-"`` = from 12 to the last). ``freeze`` freezes the
selected parameters; ``trainable`` freezes all the others. Frozen parameters get
``requires_grad = False`` before the trainer is built, so the optimizer never sees them and
they are bit-identical after training (weight decay included).

With LoRA, freezing restricts where adapters go: adapters are put only on linear modules
(not the LM head) with no frozen parameter; a selection that leaves no such module is an
error. Tied weights (a tied LM head is the embedding matrix) are one parameter: freezing
either name freezes both.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable
from typing import Any

from oxstudy.errors import SpecError

#: The decoder-layer index in a parameter name (Llama / Qwen2 / Mistral ``layers.N``, GPT-2 ``h.N``).
LAYER_PATTERN = re.compile(r"(?:^|\.)(?:layers|h|blocks|layer)\.(\d+)\.")


def layer_index(name: str) -> int | None:
    """The decoder layer a parameter belongs to, or None (embeddings, final norm, LM head)."""
    match = LAYER_PATTERN.search(name)
    return int(match.group(1)) if match else None


def parse_layers(text: str | int, num_layers: int | None = None) -> set[int]:
    """``"0-3,6,10-"`` -> {0, 1, 2, 3, 6, 10, ..., num_layers - 1}. Raises ``ValueError``."""
    out: set[int] = set()
    for part in str(text).replace(" ", "").split(","):
        if not part:
            continue
        match = re.fullmatch(r"(\d+)(?:-(\d*))?", part)
        if not match:
            raise ValueError(f"'{part}' is not a layer index or range (e.g. 0-3, 6, 12-)")
        start = int(match.group(1))
        if match.group(2) is None:
            end = start
        elif match.group(2) == "":
            if num_layers is None:
                raise ValueError(f"open range '{part}' needs the model's layer count")
            end = num_layers - 1
        else:
            end = int(match.group(2))
        if end < start:
            raise ValueError(f"range '{part}' ends before it starts")
        out.update(range(start, end + 1))
    if not out:
        raise ValueError("empty layer selection")
    return out


def _suffixes(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[i:]) for i in range(len(parts))]


def pattern_matches(pattern: str, parameter: str) -> bool:
    """Whether a module glob selects ``parameter`` (a full parameter name such as
    ``model.layers.0.self_attn.q_proj.weight``): the pattern is matched against every
    dot-aligned suffix of the module path and of the parameter name itself."""
    module = parameter.rsplit(".", 1)[0] if "." in parameter else parameter
    return any(fnmatch.fnmatchcase(s, pattern) for s in (*_suffixes(module), *_suffixes(parameter)))


def _field(selection: Any, name: str) -> Any:
    return selection.get(name) if isinstance(selection, dict) else getattr(selection, name, None)


def selected(parameter: str, selection: Any, num_layers: int | None) -> bool:
    """Whether ``selection`` (``modules`` globs and/or ``layers`` range) selects ``parameter``."""
    modules = list(_field(selection, "modules") or [])
    layers = _field(selection, "layers")
    if modules and not any(pattern_matches(p, parameter) for p in modules):
        return False
    if layers is not None:
        index = layer_index(parameter)
        return index is not None and index in parse_layers(layers, num_layers)
    return True


def frozen_parameters(names: Iterable[str], training: Any, num_layers: int | None) -> list[str]:
    """The names among ``names`` that ``training.freeze`` / ``training.trainable`` freeze."""
    freeze, trainable = getattr(training, "freeze", None), getattr(training, "trainable", None)
    names = list(names)
    if freeze is not None:
        return [n for n in names if selected(n, freeze, num_layers)]
    if trainable is not None:
        return [n for n in names if not selected(n, trainable, num_layers)]
    return []


def selection_problems(
    names: list[str], training: Any, num_layers: int | None, where: str, model_label: str
) -> list[str]:
    """Located messages for patterns that match no parameter, layers outside the model, and
    selections that freeze everything or nothing."""
    problems: list[str] = []
    for key in ("freeze", "trainable"):
        selection = getattr(training, key, None)
        if selection is None:
            continue
        for i, pattern in enumerate(_field(selection, "modules") or []):
            if not any(pattern_matches(pattern, n) for n in names):
                examples = sorted({n.rsplit(".", 1)[0] for n in names if layer_index(n) in (None, 0)})[:6]
                problems.append(
                    f"{where}.{key}.modules[{i}]: pattern '{pattern}' matches no parameter of model "
                    f"{model_label} (module names look like: {', '.join(examples)})"
                )
        layers = _field(selection, "layers")
        if layers is not None:
            try:
                wanted = parse_layers(layers, num_layers)
            except ValueError as exc:
                problems.append(f"{where}.{key}.layers: {exc}")
                continue
            if num_layers is not None and max(wanted) >= num_layers:
                problems.append(
                    f"{where}.{key}.layers: '{layers}' reaches layer {max(wanted)} but model "
                    f"{model_label} has layers 0-{num_layers - 1}"
                )
    if problems:
        return problems
    frozen = frozen_parameters(names, training, num_layers)
    if getattr(training, "freeze", None) is not None or getattr(training, "trainable", None) is not None:
        if not frozen:
            problems.append(f"{where}: the selection freezes no parameter of model {model_label}")
        elif len(frozen) == len(names):
            problems.append(
                f"{where}: the selection freezes every parameter of model {model_label}: nothing would train"
            )
    return problems


def num_layers_of(model: Any) -> int | None:
    config = getattr(model, "config", None)
    return getattr(config, "num_hidden_layers", None) or getattr(config, "n_layer", None)


def apply_freeze(model: Any, training: Any) -> list[str]:
    """Set ``requires_grad = False`` on the parameters the spec freezes; returns their names.
    Raises ``SpecError`` for a selection that does not fit the model."""
    names = [n for n, _ in model.named_parameters()]
    problems = selection_problems(names, training, num_layers_of(model), "training", "(loaded)")
    if problems:
        raise SpecError(*problems)
    frozen = set(frozen_parameters(names, training, num_layers_of(model)))
    for name, parameter in model.named_parameters():
        if name in frozen:
            parameter.requires_grad_(False)
    return sorted(frozen)


def lora_target_modules(model: Any, training: Any) -> list[str]:
    """Full names of the linear modules that get LoRA adapters under a freeze selection: every
    ``nn.Linear`` except the LM head whose parameters are all left trainable. Raises ``SpecError``
    when none is left."""
    import torch

    names = [n for n, _ in model.named_parameters()]
    frozen = set(frozen_parameters(names, training, num_layers_of(model)))
    targets = []
    for module_name, module in model.named_modules():
        if not isinstance(module, torch.nn.Linear) or module_name.split(".")[-1] == "lm_head":
            continue
        own = [f"{module_name}.{p}" for p, _ in module.named_parameters(recurse=False)]
        if own and not any(p in frozen for p in own):
            targets.append(module_name)
    if not targets:
        raise SpecError(
            "training.freeze: with finetune lora, the selection leaves no linear module for adapters"
        )
    return targets


def meta_model(model_path: str) -> Any:
    """The model's module structure without its weights (on the meta device): for pre-flight."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(str(model_path))
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config)


def preflight_freeze(cells: list[Any]) -> None:
    """Check every cell's freeze / trainable selection against its model's real parameter names
    (one meta-device model per source). Raises ``SpecError`` with every problem."""
    from oxstudy.zoo import resolve_model_source

    problems: list[str] = []
    models: dict[str, Any] = {}
    seen: set[tuple[str, str]] = set()
    for cell in cells:
        training = cell.training
        if training.freeze is None and training.trainable is None:
            continue
        key = (cell.model.source, training.model_dump_json(include={"freeze", "trainable"}))
        if key in seen:
            continue
        seen.add(key)
        if cell.model.source not in models:
            models[cell.model.source] = meta_model(resolve_model_source(cell.model.source))
        model = models[cell.model.source]
        names = [n for n, _ in model.named_parameters()]
        where = f"training (model {cell.model.id}, algorithm {cell.algorithm.id})"
        problems += selection_problems(names, training, num_layers_of(model), where, cell.model.source)
        if not problems and cell.model.finetune == "lora":
            try:
                lora_target_modules(model, training)
            except SpecError as exc:
                problems += [f"{where}: {m}" for m in exc.messages]
    if problems:
        raise SpecError(*dict.fromkeys(problems))
