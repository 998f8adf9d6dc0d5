"""Tracker settings per cell (docs/backends.md, Experiment tracking): oxstudy's defaults, and a
value already in the user's environment wins - TENSORBOARD_LOGGING_DIR as the root of the
per-cell directories, MLFLOW_TAGS / WANDB_TAGS kept beside the cell's tags, and
MLFLOW_ALLOW_FILE_STORE as set. The real-training check is in tests/test_run_hardening.py."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml

from oxstudy.errors import InputError
from oxstudy.plan import plan
from oxstudy.spec import load_spec
from oxstudy.tracking import tracking_env, tracking_environment

USER_VARIABLES = (
    "TENSORBOARD_LOGGING_DIR", "MLFLOW_TRACKING_URI", "MLFLOW_ALLOW_FILE_STORE", "MLFLOW_EXPERIMENT_NAME",
    "MLFLOW_TAGS", "WANDB_MODE", "WANDB_DIR", "WANDB_PROJECT", "WANDB_TAGS",
)  # fmt: skip


@pytest.fixture()
def cell(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    for name in USER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    spec = {
        "name": "tracked",
        "models": [{"id": "tiny", "source": "zoo:tiny"}],
        "algorithms": [{"id": "SFT", "method": "sft"}],
        "seeds": [3],
        "data": {"source": "task:oxs_arith"},
        "benchmarks": [{"id": "arith", "task": "oxs_arith", "in_domain": True}],
        "execution": {"report_to": ["tensorboard", "mlflow", "wandb"]},
    }
    path = tmp_path / "tracked.yaml"
    path.write_text(yaml.safe_dump(spec))
    (only,) = plan(load_spec(path))
    return only


CELL_TAGS = {"study": "tracked", "model": "tiny", "algorithm": "SFT", "method": "sft", "seed": "3"}


def test_defaults_without_user_values(cell, tmp_path: Path) -> None:
    env = tracking_environment(cell, tmp_path / "store")
    root = (tmp_path / "store").resolve() / "tracking"
    assert env["TENSORBOARD_LOGGING_DIR"] == str(
        root / "tensorboard" / "tiny" / "SFT" / f"seed3-{cell.run_id}"
    )
    assert env["MLFLOW_TRACKING_URI"] == (root / "mlruns").as_uri()
    assert env["MLFLOW_ALLOW_FILE_STORE"] == "true"
    assert json.loads(env["MLFLOW_TAGS"]) == {**CELL_TAGS, "run_id": cell.run_id}
    assert env["WANDB_TAGS"].split(",") == [
        f"{k}:{v}" for k, v in {**CELL_TAGS, "run_id": cell.run_id}.items()
    ]
    assert (env["WANDB_MODE"], env["WANDB_PROJECT"]) == ("offline", "tracked")


def test_user_values_win(cell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TENSORBOARD_LOGGING_DIR", str(tmp_path / "my-tb"))
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "false")
    monkeypatch.setenv("MLFLOW_TAGS", '{"team": "nlp", "seed": "mine"}')
    monkeypatch.setenv("WANDB_TAGS", "exp7, seed:mine")
    env = tracking_environment(cell, tmp_path / "store")
    # The user's directory is the root: each cell still gets its own run directory under it.
    assert env["TENSORBOARD_LOGGING_DIR"] == str(tmp_path / "my-tb" / "tiny" / "SFT" / f"seed3-{cell.run_id}")
    assert env["MLFLOW_ALLOW_FILE_STORE"] == "false"
    assert json.loads(env["MLFLOW_TAGS"]) == {
        **CELL_TAGS,
        "run_id": cell.run_id,
        "team": "nlp",
        "seed": "mine",
    }
    assert env["WANDB_TAGS"].split(",") == [
        "exp7",
        "seed:mine",
        "study:tracked",
        "model:tiny",
        "algorithm:SFT",
        "method:sft",
        f"run_id:{cell.run_id}",
    ]


def test_tensorboard_callback_reads_the_cell_directory_and_the_environment_is_restored(
    cell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("tensorboard")
    from transformers.integrations import TensorBoardCallback

    monkeypatch.setenv("TENSORBOARD_LOGGING_DIR", str(tmp_path / "my-tb"))
    monkeypatch.setenv("MLFLOW_TAGS", '{"team": "nlp"}')
    with tracking_env(cell, tmp_path / "store"):
        callback = TensorBoardCallback()  # transformers reads TENSORBOARD_LOGGING_DIR here
        assert json.loads(os.environ["MLFLOW_TAGS"])["team"] == "nlp"
    assert callback.logging_dir == str(tmp_path / "my-tb" / "tiny" / "SFT" / f"seed3-{cell.run_id}")
    assert Path(callback.logging_dir).is_dir()
    assert os.environ["TENSORBOARD_LOGGING_DIR"] == str(tmp_path / "my-tb")
    assert os.environ["MLFLOW_TAGS"] == '{"team": "nlp"}'
    assert "WANDB_MODE" not in os.environ


@pytest.mark.parametrize("value,problem", [("team=nlp", "not JSON"), ('["a"]', "a JSON array")])
def test_malformed_user_mlflow_tags_is_one_input_error(
    cell, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str, problem: str
) -> None:
    monkeypatch.setenv("MLFLOW_TAGS", value)
    with pytest.raises(InputError) as info:
        tracking_environment(cell, tmp_path / "store")
    (message,) = info.value.messages
    assert message.startswith(f"MLFLOW_TAGS: {problem}") and "JSON object" in message
