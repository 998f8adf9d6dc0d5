"""Safe YAML loading that remembers where every value came from.

Specs and claims files report errors as ``FILE:LINE: path.to.field: message``. To do that
we compose the YAML node tree (SafeLoader: no object construction) and build plain
Python data alongside a map from each value's path to its (file, line).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from oxstudy.errors import SpecError

PathKey = tuple[str | int, ...]


@dataclass
class SourceMap:
    """Where each value of a loaded document was written: path -> (file, 1-based line)."""

    locations: dict[PathKey, tuple[str, int]] = field(default_factory=dict)
    default_file: str = "<spec>"

    def locate(self, path: PathKey) -> tuple[str, int]:
        """The location of ``path``, or of its closest written ancestor (for missing keys)."""
        for end in range(len(path), -1, -1):
            hit = self.locations.get(tuple(path[:end]))
            if hit is not None:
                return hit
        return (self.default_file, 1)

    def update(self, other: SourceMap) -> None:
        self.locations.update(other.locations)


def format_path(path: PathKey) -> str:
    """``("models", 1, "lora", "r")`` -> ``models[1].lora.r``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "<root>"


def located(source: SourceMap, path: PathKey, message: str) -> str:
    file, line = source.locate(path)
    return f"{file}:{line}: {format_path(path)}: {message}"


_PLAIN_TAGS = {yaml.MappingNode: "tag:yaml.org,2002:map", yaml.SequenceNode: "tag:yaml.org,2002:seq"}

#: Values a document may expand to through aliases. A large study spec has a few thousand; nested
#: aliases ("billion laughs": 9 anchors of 9 aliases each) expand exponentially, and every value is
#: built with its own source location, so the bomb would take minutes and gigabytes.
MAX_VALUES = 100_000


@dataclass
class _Expansion:
    """What a document's construction has built so far: for the alias checks."""

    file: str
    values: int = 0
    active: set[int] = field(default_factory=set)  # ids of the collections being built (ancestors)


def _construct(node: yaml.Node, file: str, path: PathKey, source: SourceMap, state: _Expansion | None = None) -> Any:
    if state is None:
        state = _Expansion(file)
    line = node.start_mark.line + 1
    state.values += 1
    if state.values > MAX_VALUES:
        raise SpecError(f"{file}:{line}: YAML aliases expand to more than {MAX_VALUES:,} values (nested anchors?); "
                        "write the values out")
    if id(node) in state.active:  # an alias inside its own anchor: an infinite value
        raise SpecError(f"{file}:{line}: {format_path(path)}: recursive alias (an anchor used inside itself)")
    source.locations[path] = (file, line)
    expected_tag = _PLAIN_TAGS.get(type(node))
    if expected_tag is not None and node.tag != expected_tag:
        # e.g. !!python/object/apply: never constructed, always refused
        raise SpecError(f"{file}:{node.start_mark.line + 1}: {format_path(path)}: unsupported YAML value: tag {node.tag}")
    if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
        state.active.add(id(node))
        try:
            return _construct_collection(node, file, path, source, state)
        finally:
            state.active.discard(id(node))
    return _scalar(node)


def _construct_collection(node: yaml.Node, file: str, path: PathKey, source: SourceMap, state: _Expansion) -> Any:
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise SpecError(f"{file}:{key_node.start_mark.line + 1}: YAML merge keys (<<) are not supported")
            if not isinstance(key_node, yaml.ScalarNode):
                raise SpecError(f"{file}:{key_node.start_mark.line + 1}: {format_path(path)}: keys must be plain scalars")
            key = str(_scalar(key_node))
            if key in out:
                raise SpecError(f"{file}:{key_node.start_mark.line + 1}: {format_path(path + (key,))}: duplicate key")
            # the key's own line is the most useful place to point at
            out[key] = _construct(value_node, file, path + (key,), source, state)
            source.locations[path + (key,)] = (file, key_node.start_mark.line + 1)
        return out
    return [_construct(item, file, path + (i,), source, state) for i, item in enumerate(node.value)]


def _scalar(node: yaml.Node) -> Any:
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    finally:
        loader.dispose()


def load_yaml(path: str | Path) -> tuple[Any, SourceMap]:
    """Load one YAML file safely; raise ``SpecError`` with a located message on bad syntax."""
    path = Path(path)
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"{file}:1: file not found") from None
    except OSError as exc:
        raise SpecError(f"{file}:1: cannot read file ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise SpecError(f"{file}:1: not a text file (byte {exc.start} is not UTF-8)") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        problem = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        raise SpecError(f"{file}:{line}: YAML syntax error: {problem}") from None
    except yaml.YAMLError as exc:  # pragma: no cover - non-marked errors are rare
        raise SpecError(f"{file}:1: YAML error: {exc}") from None
    source = SourceMap(default_file=file)
    if node is None:  # one problem, not one "required field is missing" per field
        raise SpecError(f"{file}:1: the file is empty (no YAML document)")
    try:
        data = _construct(node, file, (), source)
    except yaml.constructor.ConstructorError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else 1
        raise SpecError(f"{file}:{line}: unsupported YAML value: {exc.problem}") from None
    return data, source


def deep_merge(base: Any, override: Any) -> Any:
    """Merge mappings recursively; anything else (lists included) is replaced by ``override``."""
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = deep_merge(base[key], value) if key in base else value
        return merged
    return override
