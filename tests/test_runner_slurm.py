"""The SLURM backend: the sbatch it would submit, and real cells through submitit's local executor."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from tiny_study import tiny_cells

from oxstudy.plan import Cell
from oxstudy.store import Store
from runners.base import RunnerEvent, get_runner
from runners.slurm import SlurmRunner, slurm_parameters

submitit = pytest.importorskip("submitit")


def cells_for(name: str, seeds: list[int], **execution: object) -> list[Cell]:
    return tiny_cells(name, seeds, "slurm", **execution)


GPU_EXECUTION = {
    "gpus_per_run": 2,
    "slurm": {
        "partition": "h100",
        "time_min": 120,
        "cpus_per_task": 16,
        "mem_gb": 200,
        "array_parallelism": 4,
        "additional_parameters": {"account": "oxrl", "qos": "high"},
    },
}


@pytest.fixture
def fake_srun(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """submitit's SLURM executor refuses to exist where ``srun`` is not on PATH. Nothing is
    submitted in these tests (building the executor and its sbatch text only), so an
    ``srun`` that is never run stands in for the cluster's."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    srun = bin_dir / "srun"
    srun.write_text("#!/bin/sh\necho 'not a cluster' >&2\nexit 1\n")
    srun.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


def _sbatch_lines(text: str) -> set[str]:
    return {line for line in text.splitlines() if line.startswith("#SBATCH")}


def test_sbatch_parameters_from_the_execution_section(fake_srun: None, tmp_path: Path) -> None:
    cells = cells_for("slurm-params", list(range(10)), **GPU_EXECUTION)
    runner = SlurmRunner(setup=["source /shared/venv/bin/activate"])
    executor = runner.executor(cells[0].execution, tmp_path / "slurm", "oxstudy-slurm-params")
    params = executor._executor.parameters
    assert params["partition"] == "h100"
    assert params["time"] == 120
    assert params["gpus_per_node"] == 2
    assert params["cpus_per_task"] == 16
    assert params["mem"] == "200GB"
    assert params["array_parallelism"] == 4
    assert params["additional_parameters"] == {"account": "oxrl", "qos": "high"}
    assert params["job_name"] == "oxstudy-slurm-params"
    # what the executor would submit is exactly what the dry-run preview shows
    assert params == slurm_parameters(
        cells[0].execution, job_name="oxstudy-slurm-params", setup=["source /shared/venv/bin/activate"]
    )

    from submitit.slurm.slurm import _make_sbatch_string

    folder = tmp_path / "slurm"
    submitted = _make_sbatch_string(command="CMD", folder=folder, map_count=len(cells), **params)
    lines = _sbatch_lines(submitted)
    for expected in (
        "#SBATCH --partition=h100",
        "#SBATCH --time=120",
        "#SBATCH --gpus-per-node=2",
        "#SBATCH --cpus-per-task=16",
        "#SBATCH --mem=200GB",
        "#SBATCH --array=0-9%4",  # 10 cells, at most 4 at once
        "#SBATCH --account=oxrl",
        "#SBATCH --qos=high",
        "#SBATCH --job-name=oxstudy-slurm-params",
        "#SBATCH --nodes=1",
        "#SBATCH --ntasks-per-node=1",
    ):
        assert expected in lines, (expected, sorted(lines))
    assert "source /shared/venv/bin/activate" in submitted
    preview = runner.sbatch_script(cells, folder=folder)
    assert _sbatch_lines(preview) == lines


def test_cli_slurm_override_wins_over_the_cells_section() -> None:
    from oxstudy.spec import SlurmSpec

    cells = cells_for("slurm-override", [1, 2], **GPU_EXECUTION)
    runner = get_runner("slurm", slurm=SlurmSpec(partition="debug", time_min=30, array_parallelism=1))
    lines = _sbatch_lines(runner.sbatch_script(cells))
    assert {"#SBATCH --partition=debug", "#SBATCH --time=30", "#SBATCH --array=0-1%1"} <= lines
    assert "#SBATCH --gpus-per-node=2" in lines  # GPUs still come from the execution section


def test_cpu_cells_request_no_gpus_and_no_partition() -> None:
    cells = cells_for("slurm-cpu", [1, 2, 3])
    text = SlurmRunner().sbatch_script(cells)
    lines = _sbatch_lines(text)
    assert not any("gpus" in line for line in lines)
    assert not any("partition" in line for line in lines)
    assert "#SBATCH --time=240" in lines and "#SBATCH --array=0-2%3" in lines  # spec defaults


@pytest.mark.slow
def test_local_executor_runs_real_cells_into_the_store(zoo_tiny: str, tmp_path: Path) -> None:
    """submitit's local executor, real processes: one cell trains and evaluates, one cannot
    load its model; each ends with exactly one record, the failure with its reason."""
    good = cells_for("slurm-local", [1])[0]
    broken = good.model_copy(
        update={
            "run_id": "broken1111111111",
            "model": good.model.model_copy(update={"source": str(tmp_path / "missing-model")}),
        }
    )
    store = Store(tmp_path / "study")
    events: list[RunnerEvent] = []
    runner = get_runner("slurm", cluster="local", max_parallel=2, retries=0)
    outcomes = {o.run_id: o for o in runner.run([good, broken], store, on_event=events.append)}
    assert outcomes[good.run_id].status == "done"
    assert outcomes[broken.run_id].status == "failed"
    stored = {path.stem: store.read_record(path) for path in store.record_paths()}
    assert sorted(stored) == sorted([good.run_id, broken.run_id])
    record = stored[good.run_id]
    assert record["status"] == "done" and record["attempts"] == 1
    assert record["metrics"]["arith"]["n"] == 8 and len(record["items"]["arith"]["score"]) == 8
    assert "model path does not exist" in stored[broken.run_id]["error"]["reason"]
    # submitit really ran them as jobs: its folder holds their pickles and logs
    assert list((tmp_path / "study" / "slurm").glob("*_result.pkl"))
    started = [e for e in events if e.kind == "start"]
    assert len(started) == 2 and all(e.detail["job_id"] for e in started)


@pytest.mark.slow
def test_local_executor_timeout_cancels_and_records(zoo_tiny: str, tmp_path: Path) -> None:
    cell = cells_for("slurm-timeout", [4], timeout_s=1, retries=0)[0]
    store = Store(tmp_path / "study")
    outcomes = get_runner("slurm", cluster="local").run([cell], store)
    assert outcomes[0].status == "failed"
    record = store.read_record(store.record_path(cell.run_id))
    assert record["error"]["reason"].startswith("timeout after 1 s")


def test_a_cells_time_limit_counts_from_its_own_start_not_from_the_first_poll(tmp_path: Path) -> None:
    import json
    import time

    from oxstudy.execute import PROGRESS_NAME
    from runners.attempts import Attempt

    cell = cells_for("slurm-clock", [0], timeout_s=10)[0]
    store = Store(tmp_path / "study")
    progress = store.cell_dir(cell.run_id) / PROGRESS_NAME
    progress.parent.mkdir(parents=True, exist_ok=True)

    def attempt_seeing(started_ago: float, submitted_ago: float = 60.0) -> Attempt:
        attempt = Attempt(cell, 1, submitted_wall=time.time() - submitted_ago,
                          submitted=time.monotonic() - submitted_ago)
        now = time.time()
        progress.write_text(json.dumps({"phase": "train", "step": 1, "total": 2, "updated_at": now,
                                        "started_at": now - started_ago}))
        assert attempt.poll_progress(store) is not None
        return attempt

    # the cell started 30 s ago; a driver that first polls now must see it past its 10 s limit
    assert attempt_seeing(30.0).watch(store, lambda event: None, None) == 10
    assert attempt_seeing(5.0).watch(store, lambda event: None, None) is None
    # another node's clock far behind cannot make the cell older than its submission (60 s)
    skewed = attempt_seeing(started_ago=1e6)
    assert 59.0 <= time.monotonic() - skewed.running_since <= 61.0
