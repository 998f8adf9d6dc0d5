"""Experiment tracking: ``execution.report_to`` passed to every TRL trainer, offline by default.

TRL trainers report through transformers' integration callbacks (``TensorBoardCallback``,
``WandbCallback``, ``MLflowCallback``), chosen by ``TrainingArguments.report_to`` and set up
from ``TrainingArguments.run_name`` and environment variables read when training starts.
oxstudy sets both per cell, identically on every backend (the worker calls
:func:`tracking_environment` before training):

- run name ``<study>/<model>/<algorithm>/seed<seed>/<run_id>``;
- tags ``study, model, algorithm, method, seed, run_id`` (MLflow ``MLFLOW_TAGS``, W&B
  ``WANDB_TAGS``; TensorBoard has no tags, so the run directory carries them:
  ``<study>/tracking/tensorboard/<model>/<algorithm>/seed<seed>-<run_id>``);
- nothing leaves the machine unless asked: MLflow writes a file store under
  ``<study>/tracking/mlruns`` (``MLFLOW_TRACKING_URI``; ``MLFLOW_ALLOW_FILE_STORE=true``, which
  MLflow 3 requires for a file store), W&B runs with ``WANDB_MODE=offline``
  into ``<study>/tracking``.

A value already in the environment wins, so ``MLFLOW_TRACKING_URI=http://... oxstudy run`` or
``WANDB_MODE=online`` reach a server. Two kinds of value are per cell, so the user's is combined
with the cell's rather than used as is: ``TENSORBOARD_LOGGING_DIR`` becomes the root of the
per-cell directories (one directory for every cell would interleave their curves), and the
user's ``MLFLOW_TAGS`` (a JSON object) / ``WANDB_TAGS`` (comma-separated) are kept beside the
cell's tags, a user's tag winning over a cell tag of the same name.

The run id is not part of the configuration that tracking changes: enabling a tracker does
not re-run finished cells.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: report_to name -> (module that must be importable, pip package to suggest)
TRACKERS = {
    "tensorboard": (("tensorboard", "tensorboardX"), "tensorboard"),
    "mlflow": (("mlflow",), "mlflow-skinny"),
    "wandb": (("wandb",), "wandb"),
}


def run_name(cell: Any) -> str:
    return f"{cell.study}/{cell.model.id}/{cell.algorithm.id}/seed{cell.seed}/{cell.run_id}"


def run_tags(cell: Any) -> dict[str, str]:
    return {
        "study": cell.study, "model": cell.model.id, "algorithm": cell.algorithm.id,
        "method": cell.algorithm.method, "seed": str(cell.seed), "run_id": cell.run_id,
    }  # fmt: skip


def trackers(cell: Any) -> list[str]:
    return list(getattr(getattr(cell, "execution", None), "report_to", None) or [])


def tracking_arguments(cell: Any) -> dict[str, Any]:
    """``report_to`` and ``run_name`` for the cell's TRL config."""
    chosen = trackers(cell)
    return {"report_to": chosen or "none", "run_name": run_name(cell)}


def tracking_environment(cell: Any, store_root: str | Path) -> dict[str, str]:
    """The environment the chosen trackers read at the start of training: oxstudy's defaults,
    with every value the user already set winning (see the module docstring). Raises
    ``InputError`` when the user's ``MLFLOW_TAGS`` is not a JSON object (MLflow would fail on it
    after the model is loaded)."""
    chosen = trackers(cell)
    root = Path(store_root).resolve() / "tracking"
    env: dict[str, str] = {}
    tags = run_tags(cell)
    if "tensorboard" in chosen:
        tensorboard_root = Path(os.environ.get("TENSORBOARD_LOGGING_DIR") or root / "tensorboard")
        env["TENSORBOARD_LOGGING_DIR"] = str(
            tensorboard_root / cell.model.id / cell.algorithm.id / f"seed{cell.seed}-{cell.run_id}"
        )
    if "mlflow" in chosen:
        env["MLFLOW_TRACKING_URI"] = os.environ.get("MLFLOW_TRACKING_URI") or (root / "mlruns").as_uri()
        if env["MLFLOW_TRACKING_URI"].startswith("file:"):
            # MLflow 3 keeps the file store in maintenance mode and refuses it unless asked: it is
            # the one backend that needs neither a server nor a database package
            env["MLFLOW_ALLOW_FILE_STORE"] = os.environ.get("MLFLOW_ALLOW_FILE_STORE") or "true"
        env["MLFLOW_EXPERIMENT_NAME"] = os.environ.get("MLFLOW_EXPERIMENT_NAME") or cell.study
        env["MLFLOW_TAGS"] = json.dumps({**tags, **_user_mlflow_tags()})
    if "wandb" in chosen:
        env["WANDB_MODE"] = os.environ.get("WANDB_MODE") or "offline"
        env["WANDB_DIR"] = os.environ.get("WANDB_DIR") or str(root)
        env["WANDB_PROJECT"] = os.environ.get("WANDB_PROJECT") or cell.study
        user = [tag.strip() for tag in os.environ.get("WANDB_TAGS", "").split(",") if tag.strip()]
        named = {tag.split(":", 1)[0] for tag in user}
        env["WANDB_TAGS"] = ",".join([*user, *(f"{k}:{v}" for k, v in tags.items() if k not in named)])
    return env


def _user_mlflow_tags() -> dict[str, Any]:
    text = os.environ.get("MLFLOW_TAGS")
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        value, problem = None, f"not JSON ({exc.msg})"
    else:
        kinds = {list: "array", str: "string", int: "number", float: "number", bool: "boolean"}
        problem = f"a JSON {kinds.get(type(value), 'null')}"
    if not isinstance(value, dict):
        from oxstudy.errors import InputError

        raise InputError(f'MLFLOW_TAGS: {problem}; MLflow needs a JSON object, e.g. \'{{"team": "nlp"}}\'')
    return value


@contextlib.contextmanager
def tracking_env(cell: Any, store_root: str | Path) -> Iterator[None]:
    """Set :func:`tracking_environment` for the duration of a cell's training, then restore."""
    env = tracking_environment(cell, store_root)
    saved = {key: os.environ.get(key) for key in env}
    if "TENSORBOARD_LOGGING_DIR" in env:
        Path(env["TENSORBOARD_LOGGING_DIR"]).mkdir(parents=True, exist_ok=True)
    os.environ.update(env)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def missing_trackers(names: list[str]) -> list[str]:
    """One message per chosen tracker whose package is not installed."""
    problems = []
    for name in names:
        modules, package = TRACKERS[name]
        if not any(importlib.util.find_spec(module) is not None for module in modules):
            problems.append(
                f"{name} is not installed: pip install {package} (or pip install 'oxstudy[tracking]')"
            )
    return problems
