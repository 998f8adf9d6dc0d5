"""`oxstudy report`, `analyze` and `status` with no argument use the most recently run study
in ./studies (and say so), or list the candidates when that is ambiguous; an unreadable
plan.json is one line in `status`."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from test_cli_fuzz import assert_one_line_error, run_cli
from test_store import make_record

from oxstudy.store import Store


def make_study(root: Path, name: str, last_run: float) -> Path:
    """A finished two-arm study (3 seeds each) whose last activity is ``last_run``."""
    store = Store(root / "studies" / name)
    cells = []
    run = 0
    for algorithm in ("DPO", "IPO"):
        for seed in (1, 2, 3):
            run += 1
            run_id = f"{name}-{run:02d}"
            store.write_record(make_record(run_id, algorithm=algorithm, seed=seed, value=0.1 * run))
            cells.append({"run_id": run_id, "model": "tiny", "algorithm": algorithm, "seed": seed})
    store.save_plan({"name": name, "analysis": {"baseline": "DPO"}}, cells)
    for path in (store.root / "plan.json", store.runs_dir):
        os.utime(path, (last_run, last_run))
    return store.root


@pytest.fixture()
def two_studies(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "200")
    now = time.time()
    old = make_study(tmp_path, "older", now - 3600)
    new = make_study(tmp_path, "newer", now - 60)
    return old, new


def test_report_with_no_argument_reports_the_latest_study(two_studies, capsys) -> None:
    outcome = run_cli(["report", "--resamples", "200", "-o", "reports/latest.html"], capsys)
    assert outcome.code == 0, outcome.err
    assert "using studies/newer, the most recently run study" in outcome.err
    assert "report of studies/newer written to reports/latest.html" in outcome.err
    assert outcome.out.strip() == "reports/latest.html" and Path("reports/latest.html").is_file()
    # The report is of that study: its records, not the other's.
    assert "studies/newer" in Path("reports/latest.html").read_text()


def test_analyze_and_status_with_no_argument_use_the_latest_study(two_studies, capsys) -> None:
    outcome = run_cli(["analyze", "--resamples", "200", "--json", "-"], capsys)
    assert outcome.code == 0, outcome.err
    assert "using studies/newer" in outcome.err
    assert json.loads(outcome.out)["input"]["source"].endswith("studies/newer")
    outcome = run_cli(["status", "--json"], capsys)
    assert outcome.code == 0, outcome.err
    summary = json.loads(outcome.out)
    assert (
        summary["store"] == "studies/newer" and summary["done"] == 6 and "using studies/newer" in outcome.err
    )


def test_a_study_being_run_now_counts_as_the_latest(two_studies, capsys) -> None:
    old, _ = two_studies
    (old / ".oxstudy.lock").write_text("{}")  # `oxstudy run` holds it while it works: activity now
    outcome = run_cli(["status", "--json"], capsys)
    assert outcome.code == 0 and json.loads(outcome.out)["store"] == "studies/older", outcome.err


def test_studies_run_at_the_same_time_are_listed_not_guessed(two_studies, capsys) -> None:
    old, new = two_studies
    now = time.time()
    for study in (old, new):
        os.utime(study / "runs", (now, now))
    for command in ("report", "analyze", "status"):
        outcome = run_cli([command], capsys)
        assert_one_line_error(
            outcome, [command], contains="several in ./studies were run at about the same time"
        )
        assert "studies/older" in outcome.err and "studies/newer" in outcome.err
    assert not Path("reports").exists()


def test_a_single_study_is_used_whatever_its_age(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    make_study(tmp_path, "only", time.time() - 86_400 * 30)
    (tmp_path / "studies" / "notes").mkdir()  # not a study: ignored
    outcome = run_cli(["status", "--json"], capsys)
    assert outcome.code == 0 and json.loads(outcome.out)["store"] == "studies/only", outcome.err


@pytest.mark.parametrize(
    "content",
    ['{"cells": [{"run_id": "ab', "", '{"cells": [1, 2]}', '{"cells": [{"run_id": "x"}]}'],
    ids=["truncated", "empty", "not-cells", "no-labels"],
)
def test_status_names_an_unreadable_plan(content: str, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    study = make_study(tmp_path, "broken", time.time())
    (study / "plan.json").write_text(content)
    outcome = run_cli(["status", str(study)], capsys)
    assert_one_line_error(outcome, ["status", str(study)], contains=f"{study / 'plan.json'}: unreadable plan")
