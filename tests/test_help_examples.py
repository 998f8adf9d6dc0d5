"""The examples in `oxstudy --help`, every command's --help, README.md and docs/*.md work on
this repository: the spec and claims files they name exist, `oxstudy validate GLOB` matches only
valid study specs, a study directory `studies/NAME` is the store a bundled spec writes (its
`name:`), and `--baseline X` beside it is one of that spec's algorithm ids (ids match exactly)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest
from typer.main import get_command

from oxstudy.cli import build_app
from oxstudy.spec import StudySpec, load_spec

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

SPEC_PATH = re.compile(r"specs/[\w./*-]*\w")
VALIDATE = re.compile(r"oxstudy validate((?:\s+specs/[\w./*-]+)+)")
# A concrete study directory: placeholders (studies/<name>, studies/NAME) are not matched.
STUDY_DIR = re.compile(r"studies/([a-z0-9][a-z0-9_.-]*[a-z0-9])")
BASELINE = re.compile(r"--baseline[ =]+([^\s`]+)")


def help_texts() -> Iterator[tuple[str, str]]:
    """(where, text) of the top-level help and of every command's help and option help."""

    def walk(command, path: str) -> Iterator[tuple[str, str]]:
        yield path, command.help or ""
        for param in command.params:
            yield f"{path} {'/'.join(param.opts)}", getattr(param, "help", None) or ""
        for name, sub in getattr(command, "commands", {}).items():
            yield from walk(sub, f"{path} {name}")

    yield from walk(get_command(build_app()), "oxstudy")


def doc_lines() -> Iterator[tuple[str, str]]:
    for path in DOCS:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            yield f"{path.relative_to(REPO)}:{number}", line


@cache
def bundled_specs() -> dict[str, StudySpec]:
    """Store directory name -> spec, for every study spec in specs/."""
    specs = {}
    for path in sorted((REPO / "specs").glob("*.yaml")):
        spec = load_spec(path)
        specs[spec.store_dir.name] = spec
    return specs


def problems_in(where: str, text: str) -> list[str]:
    found = []
    for name in SPEC_PATH.findall(text):
        if not list(REPO.glob(name)):
            found.append(f"{where}: {name} does not exist")
    for match in VALIDATE.finditer(text):
        for pattern in match.group(1).split():
            for path in sorted(REPO.glob(pattern)):
                try:
                    load_spec(path)
                except Exception as exc:  # noqa: BLE001 - reported, not raised
                    found.append(f"{where}: `oxstudy validate {pattern}` fails on {path.name}: {exc}")
    stores = bundled_specs()
    for line in text.splitlines():
        for name in STUDY_DIR.findall(line):
            if name not in stores:
                found.append(
                    f"{where}: studies/{name} is no bundled spec's store (they are {', '.join(sorted(stores))})"
                )
                continue
            ids = [a.id for a in stores[name].algorithms]
            found += [
                f"{where}: --baseline {b} is not an algorithm id of studies/{name} ({', '.join(ids)})"
                for b in BASELINE.findall(line)
                if b not in ids
            ]
    return found


def test_help_examples_work_on_the_repo() -> None:
    texts = list(help_texts())
    assert any(where == "oxstudy analyze" for where, _ in texts)  # the walk reached the commands
    problems = [p for where, text in texts for p in problems_in(where, text)]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_doc_examples_work_on_the_repo(doc: Path) -> None:
    problems = [
        p
        for where, line in doc_lines()
        if where.startswith(f"{doc.relative_to(REPO)}:")
        for p in problems_in(where, line)
    ]
    assert not problems, "\n".join(problems)


def test_resamples_help_describes_replicates_not_a_bootstrap() -> None:
    """The bootstrap was removed: --resamples counts t-replicates of the cell means everywhere."""
    helps = {where: text for where, text in help_texts() if "--resamples" in where.split()[-1].split("/")}
    assert {"oxstudy analyze --resamples", "oxstudy report --resamples"} <= set(helps)
    for where, text in helps.items():
        assert "bootstrap" not in text.lower() and "replicates" in text.lower(), f"{where}: {text}"


def test_the_checker_catches_wrong_examples() -> None:
    """The rules themselves: a wrong store name, a wrong-case baseline, a missing file."""
    assert problems_in("x", "oxstudy analyze studies/dpo-taxonomy --baseline DPO") == []
    assert problems_in("x", "oxstudy analyze studies/dpo_taxonomy")
    assert problems_in("x", "oxstudy analyze studies/dpo-taxonomy --baseline dpo")
    assert problems_in("x", "oxstudy verify specs/claims/oxrl_claims.yaml")
    assert problems_in("x", "oxstudy validate specs/claims/*.yaml")  # claims files are not specs


def test_docs_name_exactly_the_specs_that_extend_the_oxrl_defaults() -> None:
    """docs/spec.md and docs/algorithms.md list the bundled specs that extend
    specs/shared/oxrl_defaults.yaml (their GRPO arms get OXRL's settings); the others are
    quickstart, grpo_family and the *_cpu specs, as both pages say."""
    import yaml

    extending, others = set(), set()
    for path in (REPO / "specs").glob("*.yaml"):
        base = (yaml.safe_load(path.read_text()) or {}).get("extends")
        (extending if base == "shared/oxrl_defaults.yaml" else others).add(path.stem)
    assert extending and all(
        name in ("quickstart", "grpo_family") or name.endswith("_cpu") for name in others
    )
    for page, start, end in (
        ("docs/spec.md", "The bundled GPU specs (", ")"),
        ("docs/algorithms.md", "reproduces OXRL's settings: the GPU specs", "(`grep"),
    ):
        text = " ".join((REPO / page).read_text().split())
        listed = text.split(start, 1)[1].split(end, 1)[0]
        assert set(re.findall(r"`(\w+)`", listed)) == extending, f"{page}: {listed}"
