"""The locked environment: constraints.txt pins one complete, resolved set; the running venv
is exactly that set (drift is caught); pyproject.toml bounds the libraries whose API oxstudy
calls, and the lock lies inside those bounds.

The clean-venv install from the lock is CI itself (.ci/run -> scripts/setup.sh on a fresh
clone installs with ``-c constraints.txt``); ``test_the_lock_resolves_on_its_own`` checks the
lock resolves to itself, as if nothing were installed, without downloading the packages.
"""

from __future__ import annotations

import importlib.metadata as metadata
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
#: Libraries whose API oxstudy calls: each needs an upper bound in pyproject.toml.
API_LIBRARIES = ["typer", "pydantic", "trl", "transformers", "lm-eval", "scipy", "statsmodels", "pandas"]
#: Installed by the venv itself, not by oxstudy's requirements.
NOT_LOCKED = {"pip", "oxstudy"}


def read_lock(path: Path = ROOT / "constraints.txt") -> dict[str, str]:
    pins: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9._-]+)==([A-Za-z0-9.!+_-]+)", line)
        assert match, f"constraints.txt:{number}: not an exact pin: {line!r}"
        name = canonicalize_name(match[1])
        assert name not in pins, f"constraints.txt:{number}: {name} pinned twice"
        pins[name] = match[2]
    return pins


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def installed() -> dict[str, str]:
    return {canonicalize_name(d.metadata["Name"]): d.version for d in metadata.distributions()}


def test_the_lock_is_exact_pins_with_torch_first() -> None:
    text = (ROOT / "constraints.txt").read_text()
    pins = read_lock()
    assert len(pins) > 100  # the transitive closure, not just the direct dependencies
    first_pin = next(line for line in text.splitlines() if line and not line.startswith("#"))
    assert first_pin == "torch==2.13.0"  # no local label: +cpu and CUDA builds both satisfy it
    assert "torch first" in text and "CUDA" in text


def test_the_running_venv_is_the_lock() -> None:
    """Every installed distribution is pinned, at its pinned version. Fails after an ad-hoc
    `pip install` or when the lock was refreshed without reinstalling (bash scripts/setup.sh)."""
    pins = read_lock()
    unpinned, drifted = [], []
    for name, version in sorted(installed().items()):
        if name in NOT_LOCKED:
            continue
        if name not in pins:
            unpinned.append(f"{name}=={version}")
        elif not SpecifierSet(f"=={pins[name]}").contains(Version(version), prereleases=True):
            drifted.append(f"{name}: installed {version}, locked {pins[name]}")
    assert not unpinned and not drifted, (
        f"the venv differs from constraints.txt (refresh: README 'Installing'): "
        f"not in the lock: {unpinned}; other version: {drifted}"
    )


def _requirements_closure(extras: tuple[str, ...]) -> set[str]:
    """Names of every distribution oxstudy[extras] needs, from the installed metadata."""
    dists = {canonicalize_name(d.metadata["Name"]): d for d in metadata.distributions()}
    seen: set[tuple[str, tuple[str, ...]]] = set()
    stack = [("oxstudy", extras)]
    while stack:
        name, wanted = stack.pop()
        if (name, wanted) in seen:
            continue
        seen.add((name, wanted))
        for line in dists[name].requires or []:
            req = Requirement(line)
            if req.marker is not None and not any(req.marker.evaluate({"extra": e}) for e in (*wanted, "")):
                continue
            dep = canonicalize_name(req.name)
            assert dep in dists, f"{name} needs {req}, which is not installed"
            stack.append((dep, tuple(sorted(req.extras))))
    return {name for name, _ in seen} - {"oxstudy"}


def test_every_dependency_of_oxstudy_dev_is_locked() -> None:
    closure = _requirements_closure(("dev",))
    assert {"trl", "transformers", "lm-eval", "ray", "pytest", "ruff", "aiohttp", "tokenizers"} <= closure
    assert not closure - set(read_lock()), sorted(closure - set(read_lock()))


def test_api_libraries_are_bounded_and_the_lock_is_inside_pyproject() -> None:
    project = pyproject()["project"]
    requirements = [Requirement(r) for r in project["dependencies"]]
    requirements += [Requirement(r) for r in project["optional-dependencies"]["dev"]]
    by_name = {canonicalize_name(r.name): r for r in requirements}
    for library in API_LIBRARIES:
        req = by_name[canonicalize_name(library)]
        operators = {spec.operator for spec in req.specifier}
        assert operators & {"<", "<=", "==", "~=", "==="}, f"pyproject.toml: {req} has no upper bound"
        assert operators & {">", ">=", "==", "~=", "==="}, f"pyproject.toml: {req} has no lower bound"
    pins = read_lock()
    for req in requirements:
        name = canonicalize_name(req.name)
        assert name in pins, f"{req} is not in constraints.txt"
        assert req.specifier.contains(Version(pins[name]), prereleases=True), (
            f"constraints.txt pins {name}=={pins[name]}, outside pyproject.toml's {req}"
        )


def test_the_lock_is_one_consistent_set() -> None:
    """Every requirement of every locked distribution (as installed: the venv is the lock) is
    met by the locked version of what it requires: pip check, against the lock."""
    pins = read_lock()
    dists = {canonicalize_name(d.metadata["Name"]): d for d in metadata.distributions()}
    problems = []
    for name in sorted(set(pins) & set(dists)):
        for line in dists[name].requires or []:
            req = Requirement(line)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue  # an extra nobody asked for, or another platform / Python
            dep = canonicalize_name(req.name)
            if dep not in pins:
                problems.append(f"{name} needs {req}: not locked")
            elif not req.specifier.contains(Version(pins[dep]), prereleases=True):
                problems.append(f"{name} needs {req}: locked {pins[dep]}")
    assert not problems, problems


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.skipif(
    not os.environ.get("OXSTUDY_CHECK_LOCK_RESOLVES"),
    reason="resolves ~160 packages' metadata from the index (~4 min); set OXSTUDY_CHECK_LOCK_RESOLVES=1 "
    "after refreshing the lock (CI installs from the lock on a clean venv anyway)",
)
def test_the_lock_resolves_on_its_own(tmp_path: Path) -> None:
    """pip, ignoring everything installed, resolves oxstudy[dev] with the lock to exactly the
    locked set: no conflicts, nothing unpinned pulled in (metadata only; nothing installed)."""
    report = tmp_path / "report.json"
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet", "--report",
         str(report), "-c", str(ROOT / "constraints.txt"), "-e", f"{ROOT}[dev]"],
        capture_output=True, text=True, env=env, timeout=540,
    )  # fmt: skip
    if proc.returncode != 0 and re.search(
        r"(?i)network|connection|resolve host|No matching distribution", proc.stderr
    ):
        pytest.skip(f"no package index reachable: {proc.stderr.strip().splitlines()[-1]}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    resolved = {
        canonicalize_name(item["metadata"]["name"]): item["metadata"]["version"]
        for item in json.loads(report.read_text())["install"]
    }
    resolved.pop("oxstudy", None)
    pins = read_lock()
    assert {name: Version(v).public for name, v in resolved.items()} == {
        name: pins[name] for name in resolved
    }
    missing_from_resolution = set(_requirements_closure(("dev",))) - set(resolved)
    assert not missing_from_resolution, sorted(missing_from_resolution)
