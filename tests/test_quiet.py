"""`oxstudy zoo build` and `oxstudy run` as a user sees them, in real subprocesses: the terminal
(stderr) shows oxstudy's own progress and none of the third-party chatter, which lands in
the build log / the cell's log instead. The fresh build is also the reproducibility check: a
new zoo:tiny matches its recorded base accuracy (oxstudy/zoo_recorded.py) within TOLERANCE,
and a real run's per-item outcomes carry difficulty levels."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_run_hardening import study_spec

from oxstudy import zoo
from oxstudy.store import load_study
from oxstudy.tasks import task_split
from oxstudy.zoo_recorded import TOLERANCE

REPO = Path(__file__).resolve().parents[1]
#: Third-party output a user should not see on the terminal: lm-eval's warning for an
#: in-memory model, datasets' bars when a JSONL split is first read, transformers' deprecations.
CHATTER = ("not of type `str`", "Generating train split", "FutureWarning")


def oxstudy(*args: str, env: dict[str, str], timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "oxstudy.cli", *args],
        cwd=REPO,
        env={**os.environ, "COLUMNS": "160", **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.slow
def test_fresh_tiny_build_is_quiet_and_matches_its_recorded_accuracy(tmp_path):
    env = {"OXSTUDY_CACHE": str(tmp_path / "cache"), "HF_DATASETS_CACHE": str(tmp_path / "datasets")}
    done = oxstudy("zoo", "build", "tiny", "--json", env={**env, zoo.SEED_ENV: ""})
    assert done.returncode == 0, done.stderr
    assert "zoo:tiny" in done.stderr and "built" in done.stderr, "oxstudy's own progress is shown"
    for text in CHATTER:
        assert text not in done.stderr, text
    (log,) = (tmp_path / "cache" / "zoo" / "logs").glob("tiny-*.log")
    assert log.name == f"tiny-{zoo.ZOO['tiny'].config_hash()}.log"
    build_log = log.read_text()
    assert "not of type `str`" in build_log and "Generating train split" in build_log
    row = next(r for r in json.loads(done.stdout)["models"] if r["name"] == "tiny")
    assert row["recorded_accuracy"] is not None, "recorded for the default tiny config hash"
    assert abs(row["drift"]) <= TOLERANCE, row  # the value measured by the fresh build is in row
    assert row["drift"] == pytest.approx(row["base_accuracy"] - row["recorded_accuracy"], abs=1e-4)
    assert row["machine"]["cpu"] and row["machine"]["torch"] and row["machine"]["torch_threads"] == 1
    # the base accuracy per difficulty level: its item-weighted mean is the overall accuracy
    base = json.loads((Path(row["path"]) / zoo.META_FILE).read_text())["base_accuracy"]
    by_level = base["by_level"]
    assert list(by_level) == ["1", "2", "3"] and sum(v["n"] for v in by_level.values()) == base["n"] == 500
    weighted = sum(v["accuracy"] * v["n"] for v in by_level.values()) / base["n"]
    assert weighted == pytest.approx(base["value"])


@pytest.mark.slow
def test_run_terminal_shows_progress_and_the_cell_log_the_chatter(tmp_path, zoo_tiny):
    path = study_spec(tmp_path, "quiet", output_dir=tmp_path / "study", execution={"retries": 0})
    # a fresh datasets cache: the JSONL splits are generated (with their bars) in this run
    done = oxstudy("run", str(path), env={"HF_DATASETS_CACHE": str(tmp_path / "datasets")})
    assert done.returncode == 0, done.stderr
    assert "cells" in done.stderr and "1/1" in done.stderr, "oxstudy's own progress is shown"
    for text in CHATTER:
        assert text not in done.stderr + done.stdout, text
    (log,) = (tmp_path / "study" / "cells").glob("*/log.txt")
    cell_log = log.read_text()
    # (cells turn datasets' bars off altogether: "Generating train split" is in neither)
    assert "not of type `str`" in cell_log and "FutureWarning" in cell_log
    # the run record's per-item outcomes carry the items' difficulty levels
    items = load_study(tmp_path / "study").items
    truth = task_split("oxs_arith", "test")
    assert items["level"].tolist() == [truth[i]["level"] for i in items["doc_id"]]
    assert items["level"].nunique() == 3
