"""`oxstudy run` under faults, with real zoo cells: kills, corruption, NaN loss, a second run.

Each study here is a few SFT cells on the smallest zoo model with two optimizer steps and
eight evaluation items, so a cell takes seconds. Everything runs through the real CLI in a
subprocess, like a user would.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from oxstudy.store import Store, load_study

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]


def study_spec(tmp_path: Path, name: str, *, seeds=(1, 2, 3), extra_algorithms=(), max_parallel: int = 1,
               retries: int = 0) -> Path:
    spec = {
        "name": name,
        "output_dir": str(tmp_path / "studies" / name),
        "models": [{"id": "tiny", "source": "zoo:tiny"}],
        "algorithms": [{"id": "SFT", "method": "sft"}, *extra_algorithms],
        "seeds": list(seeds),
        "training": {"learning_rate": 1e-4, "max_steps": 2, "effective_batch_size": 4, "per_device_batch_size": 4,
                     "max_length": 128, "max_prompt_length": 64, "max_completion_length": 32},
        "data": {"source": "task:oxs_arith", "train_size": 8},
        "benchmarks": [{"id": "arith", "task": "oxs_arith", "in_domain": True, "limit": 8}],
        "execution": {"max_parallel": max_parallel, "retries": retries, "timeout_s": 600},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def oxstudy(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "oxstudy.cli", *args], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def run_to_end(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "oxstudy.cli", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=900)


def results(store_dir: Path) -> dict[tuple, tuple]:
    tables = load_study(store_dir)
    return {
        (r.algorithm, r.seed, r.benchmark): (r.value, r.stderr)
        for r in tables.runs.itertuples()
    }


def wait_for(predicate, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError("timed out waiting")


def record_count(store_dir: Path) -> int:
    return len(Store(store_dir).record_paths())


def test_sigkill_the_runner_then_resume_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    reference_spec = study_spec(tmp_path, "reference")
    done = run_to_end("run", str(reference_spec))
    assert done.returncode == 0, done.stderr[-2000:]
    reference = results(tmp_path / "studies" / "reference")
    assert len(reference) == 3

    spec = study_spec(tmp_path, "killed")
    store_dir = tmp_path / "studies" / "killed"
    # kill 1: while the first cell is training (no record yet); kill 2: after one record exists
    for kill_when in (lambda: (store_dir / "cells").exists() and any((store_dir / "cells").iterdir()),
                      lambda: record_count(store_dir) >= 1):
        proc = oxstudy("run", str(spec), start_new_session=False)
        wait_for(kill_when)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    time.sleep(1.5)  # orphaned cell processes notice the dead driver and exit without writing
    before = record_count(store_dir)
    assert before < 3

    resumed = run_to_end("run", str(spec))
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    planned = [c["run_id"] for c in json.loads((store_dir / "plan.json").read_text())["cells"]]
    assert sorted(p.stem for p in Store(store_dir).record_paths()) == sorted(planned)  # exactly one each
    assert not list((store_dir / "runs").glob(".*.tmp"))
    assert results(store_dir) == reference


def test_corrupt_record_is_detected_and_rerun_and_failures_are_isolated(tmp_path: Path) -> None:
    # a constant learning rate of 1e30 drives the loss to NaN by step 3: that cell must fail alone,
    # and, being deterministic, it is not retried although retries allow it
    spec = study_spec(tmp_path, "faults", seeds=(1, 2), retries=1,
                      extra_algorithms=[{"id": "Exploding", "method": "sft",
                                         "training": {"learning_rate": 1e30, "max_steps": 4, "warmup_ratio": 0.0,
                                                      "lr_scheduler": "constant"}}])
    store_dir = tmp_path / "studies" / "faults"
    first = run_to_end("run", str(spec), "--json")
    assert first.returncode == 1  # some cells failed
    summary = json.loads(first.stdout)
    assert summary["done"] == 2 and summary["failed"] == 2
    assert all(o["attempts"] == 1 for o in summary["outcomes"]) and "retry" not in first.stderr
    tables = load_study(store_dir)
    assert set(tables.failed["algorithm"]) == {"Exploding"}
    assert all("non-finite" in reason.lower() or "nan" in reason.lower() for reason in tables.failed["reason"])
    failed_records = [r for r in tables.records if r["status"] == "failed"]
    assert [(r["error"]["kind"], r["error"]["failure_class"]) for r in failed_records] == [
        ("non-finite-loss", "deterministic")] * 2

    # corrupt one good record: it is reported, treated as missing and run again
    victim = Store(store_dir).record_path(tables.runs["run_id"].iloc[0])
    victim.write_text(victim.read_text()[:100])
    status = run_to_end("status", str(store_dir), "--json")
    assert json.loads(status.stdout)["corrupt"]
    again = run_to_end("run", str(spec), "--json")
    assert "corrupt record" in again.stderr
    assert json.loads(again.stdout)["ran"] == 1 and json.loads(again.stdout)["done"] == 1
    assert load_study(store_dir).corrupt == []
    # failed cells are not retried on a plain re-run, only with --rerun-failed
    dry = run_to_end("run", str(spec), "--dry-run", "--json")
    assert json.loads(dry.stdout)["would_run"] == []
    dry = run_to_end("run", str(spec), "--dry-run", "--json", "--rerun-failed", "--only", "tiny/Exploding/*")
    assert len(json.loads(dry.stdout)["would_run"]) == 2


def test_killing_a_worker_fails_that_cell_only_and_retries_it(tmp_path: Path) -> None:
    spec = study_spec(tmp_path, "workerkill", seeds=(1, 2), retries=1)
    store_dir = tmp_path / "studies" / "workerkill"
    proc = oxstudy("run", str(spec), "--json")
    # the first cell process: a child of the fork server whose name carries the run id
    first_log = {}

    def cell_started() -> bool:
        cells = store_dir / "cells"
        if not cells.exists():
            return False
        for cell in cells.iterdir():
            progress = cell / "progress.json"
            if progress.exists() and json.loads(progress.read_text()).get("phase") == "train":
                first_log["run_id"] = cell.name
                return True
        return False

    wait_for(cell_started)
    # cell processes are children of this driver's fork server (never touch other runs' cells)
    def children(pid: int | str) -> list[str]:
        return subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()

    victims = [int(cell) for server in children(proc.pid) for cell in children(server)]
    assert victims, "no cell process found"
    for pid in victims:
        os.kill(pid, signal.SIGKILL)
    out, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err[-2000:]
    summary = json.loads(out)
    assert summary["done"] == 2
    retried = [o for o in summary["outcomes"] if o["attempts"] == 2]
    assert len(retried) >= 1
    assert "killed by SIGKILL" in err


def test_a_second_concurrent_run_is_refused(tmp_path: Path) -> None:
    spec = study_spec(tmp_path, "locked", seeds=(1,))
    store_dir = tmp_path / "studies" / "locked"
    proc = oxstudy("run", str(spec))
    wait_for(lambda: (store_dir / ".oxstudy.lock").exists())
    second = run_to_end("run", str(spec))
    assert second.returncode == 2 and "Traceback" not in second.stderr
    assert "pid" in second.stderr and str(proc.pid) in second.stderr
    proc.communicate(timeout=900)
    assert proc.returncode == 0
