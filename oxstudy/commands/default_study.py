"""The study ``oxstudy report``, ``analyze`` and ``status`` use when given none: the most
recently run study under ``./studies`` (where ``oxstudy run`` writes by default).

"Most recently run" is the latest change to a study's ``plan.json`` (written when a run
starts), its ``runs/`` directory (a record lands there as each cell finishes) or its lock
(held while it runs). When that does not single one out (two studies running at once, or
run within a minute of each other) the candidates are listed and nothing is guessed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from oxstudy.errors import OxstudyError

#: studies whose last activity is this close together were run "at the same time".
SAME_TIME_S = 60.0
LOCK_NAME = ".oxstudy.lock"  # runners/lock.py's LOCK_NAME (not imported: keeps this import light)


@dataclass(frozen=True)
class StudyCandidate:
    path: Path
    last_activity: float
    running: bool


def _is_study(path: Path) -> bool:
    return path.is_dir() and ((path / "runs").is_dir() or (path / "plan.json").is_file())


def _last_activity(path: Path) -> float:
    times = []
    for name in ("plan.json", "runs", LOCK_NAME):
        try:
            times.append((path / name).stat().st_mtime)
        except OSError:
            continue
    return max(times, default=0.0)


def study_candidates(studies_dir: Path) -> list[StudyCandidate]:
    """Study directories under ``studies_dir``, most recently active first."""
    try:
        children = list(studies_dir.iterdir()) if studies_dir.is_dir() else []
    except OSError:
        children = []
    found = [StudyCandidate(p, _last_activity(p), (p / LOCK_NAME).exists()) for p in children if _is_study(p)]
    return sorted(found, key=lambda c: (-c.last_activity, c.path.name))


def _describe(candidate: StudyCandidate) -> str:
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(candidate.last_activity))
    return f"{candidate.path} ({'running, ' if candidate.running else ''}last run {when})"


def default_study(command: str, studies_dir: Path = Path("studies")) -> Path:
    """The study ``command`` should use when the user named none, or a one-line
    ``OxstudyError`` (exit 2) that says there is none or lists the candidates."""
    candidates = study_candidates(studies_dir)
    if not candidates:
        raise OxstudyError(
            f"{command}: no study given and none found in ./{studies_dir}: pass a study directory "
            f"(e.g. oxstudy {command} studies/NAME)"
        )
    if len(candidates) == 1:
        return candidates[0].path
    newest, runner_up = candidates[0], candidates[1]
    several_running = sum(c.running for c in candidates) > 1
    if several_running or newest.last_activity - runner_up.last_activity < SAME_TIME_S:
        close = [c for c in candidates if (c.running and several_running)
                 or newest.last_activity - c.last_activity < SAME_TIME_S]  # fmt: skip
        raise OxstudyError(
            f"{command}: no study given and several in ./{studies_dir} were run at about the same time; "
            f"pass one of: {'; '.join(_describe(c) for c in close)}"
        )
    return newest.path


def announce(command: str, study: Path) -> None:
    """Say on stderr which study a command picked by default (stdout stays the result)."""
    from rich.console import Console

    Console(stderr=True, highlight=False, soft_wrap=True).print(
        f"{command}: no study given; using {study}, the most recently run study in ./{study.parent}",
        markup=False,
    )


def store_for_spec(spec_path: Path, spec_store: Path | None = None) -> Path:
    """The store a spec's study lives in: the study directory itself for the ``spec.yaml`` that
    ``oxstudy run`` saves inside it (next to ``plan.json`` / ``runs/``, wherever that directory was
    moved), else the spec's own ``store`` setting (``spec_store``, or read from the spec; relative
    to the working directory)."""
    if spec_path.name == "spec.yaml" and _is_study(spec_path.parent):
        return spec_path.parent
    if spec_store is not None:
        return spec_store
    from oxstudy.spec import load_spec

    return load_spec(spec_path).store_dir
