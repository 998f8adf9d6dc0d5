"""`oxstudy run` hardening with real processes: concurrent runs, a zombie driver, typos caught by
pre-flight, a full and a read-only store, classified failures, training progress, tracking.

Cells are SFT on the smallest zoo model with two optimizer steps and eight evaluation items
(see tests/test_run_faults.py); everything runs through the real CLI in subprocesses.
"""

from __future__ import annotations

import contextlib
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
from runners.lock import LOCK_NAME, StudyLock, pid_alive

REPO = Path(__file__).resolve().parents[1]


def study_spec(tmp_path: Path, name: str, *, seeds=(1,), output_dir: Path | None = None, **overrides) -> Path:
    spec = {
        "name": name,
        "output_dir": str(output_dir or tmp_path / "studies" / name),
        "models": [{"id": "tiny", "source": "zoo:tiny"}],
        "algorithms": [{"id": "SFT", "method": "sft"}],
        "seeds": list(seeds),
        "training": {
            "learning_rate": 1e-4,
            "max_steps": 2,
            "effective_batch_size": 4,
            "per_device_batch_size": 4,
            "max_length": 128,
            "max_prompt_length": 64,
            "max_completion_length": 32,
        },
        "data": {"source": "task:oxs_arith", "train_size": 8},
        "benchmarks": [{"id": "arith", "task": "oxs_arith", "in_domain": True, "limit": 8}],
        "execution": {"max_parallel": 1, "retries": 1, "timeout_s": 600},
    }
    for key, value in overrides.items():
        spec[key] = (
            {**spec[key], **value} if isinstance(value, dict) and isinstance(spec.get(key), dict) else value
        )
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def cli(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "oxstudy.cli", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def wait_for(predicate, timeout: float = 300.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def training_cell(store_dir: Path, phase: str = "train") -> str | None:
    """The run id of a cell whose progress is at ``phase``, if any."""
    cells = store_dir / "cells"
    if not cells.exists():
        return None
    for cell in cells.iterdir():
        with contextlib.suppress(OSError, ValueError):
            if json.loads((cell / "progress.json").read_text()).get("phase") == phase:
                return cell.name
    return None


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


# ----------------------------------------------------------------------------- item 2: lock first


@pytest.mark.slow
def test_lock_is_taken_before_selection_and_preflight(tmp_path: Path) -> None:
    """With the lock held, a run is refused before it reads records or checks anything:
    no corrupt-record warning, no pre-flight of a model that cannot be reached."""
    spec = study_spec(tmp_path, "lockfirst", models=[{"id": "hub", "source": "Org/not-offline-model"}])
    store_dir = tmp_path / "studies" / "lockfirst"
    (store_dir / "runs").mkdir(parents=True)
    (store_dir / "runs" / "0123456789abcdef.json").write_text("{truncated")
    with StudyLock(store_dir, command="oxstudy run other.yaml"):
        refused = cli("run", str(spec))
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    lines = error_lines(refused.stderr)
    assert (
        len(lines) == 1
        and "locked by another oxstudy run" in lines[0]
        and "oxstudy run other.yaml" in lines[0]
    )
    assert "corrupt record" not in refused.stderr and "not-offline-model" not in refused.stderr


@pytest.mark.slow
def test_concurrent_runs_never_delete_or_retrain_a_finished_cell(tmp_path: Path) -> None:
    """A second `run` started at any moment of a first one trains nothing twice: it is refused
    while the first holds the lock, and afterwards finds every cell done."""
    spec = study_spec(tmp_path, "concurrent", seeds=(1, 2))
    store_dir = tmp_path / "studies" / "concurrent"
    first = subprocess.Popen(
        [sys.executable, "-m", "oxstudy.cli", "run", str(spec), "--json"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(lambda: (store_dir / LOCK_NAME).exists(), what="the first run's lock")
    seconds = [cli("run", str(spec), "--json")]  # one while the first cell runs
    wait_for(
        lambda: len(Store(store_dir).record_paths()) >= 1 or first.poll() is not None, what="a first record"
    )
    while first.poll() is None:  # then one after another until the first run ends: one of them
        seconds.append(cli("run", str(spec), "--json"))  # straddles the moment the last cell finishes
    seconds.append(cli("run", str(spec), "--json"))  # and one right after it
    out, err = first.communicate(timeout=900)
    assert first.returncode == 0, err[-2000:]
    assert json.loads(out)["done"] == 2
    first_records = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in Store(store_dir).record_paths()}
    for second in seconds:
        assert "Traceback" not in second.stderr
        if second.returncode == 2:
            assert "locked by another oxstudy run" in second.stderr
        else:
            assert second.returncode == 0 and json.loads(second.stdout)["ran"] == 0, second.stderr[-1000:]
    assert seconds[-1].returncode == 0
    # every record is the first run's (same file, one attempt) and its cell log was never deleted
    assert {
        p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in Store(store_dir).record_paths()
    } == first_records
    for record_path in Store(store_dir).record_paths():
        record = Store.read_record(record_path)
        assert record["status"] == "done" and record["attempts"] == 1
        log = (store_dir / "cells" / record["run_id"] / "log.txt").read_text()
        assert log.count("== oxstudy cell") == 1
        # item 11: the progress file kept the training progress (it used to stay at train 0/0)
        progress = json.loads((store_dir / "cells" / record["run_id"] / "progress.json").read_text())
        assert progress["phase"] == "done" and progress["train"] == [2, 2]


ZOMBIE_PARENT = """
import subprocess, sys, time
driver = subprocess.Popen([sys.executable, "-m", "oxstudy.cli", "run", sys.argv[1]], cwd=sys.argv[2],
                          stdout=subprocess.DEVNULL, stderr=open(sys.argv[3], "w"))
print(driver.pid, flush=True)
time.sleep(3600)  # never waits on the driver: once killed, it stays a zombie
"""


def _state(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to see a zombie")
def test_zombie_driver_is_dead_to_its_workers_and_to_the_lock(tmp_path: Path) -> None:
    spec = study_spec(tmp_path, "zombie", execution={"retries": 0})
    store_dir = tmp_path / "studies" / "zombie"
    parent = subprocess.Popen(
        [sys.executable, "-c", ZOMBIE_PARENT, str(spec), str(REPO), str(tmp_path / "driver.err")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        driver = int(parent.stdout.readline())
        # killed while evaluating: its trainer has been built (tqdm's semaphore, if any, exists)
        wait_for(lambda: training_cell(store_dir, "eval") is not None, what="a cell at evaluation")
        run_id = training_cell(store_dir, "eval")
        workers = [cell for server in children(driver) for cell in children(server)]
        assert workers, "no cell process found"
        os.kill(driver, signal.SIGKILL)
        wait_for(lambda: _state(driver) == "Z", timeout=10, what="the driver to be a zombie")
        assert not pid_alive(driver)
        # its workers see the same thing the lock sees: they stop, and write nothing
        wait_for(lambda: not any(pid_alive(pid) for pid in workers), timeout=10, what="the workers to stop")
        assert _state(driver) == "Z"  # still unreaped: the check above did not depend on reaping
        assert not Store(store_dir).record_path(run_id).exists()
        resumed = cli("run", str(spec), "--json")
        assert resumed.returncode == 0, resumed.stderr[-2000:]
        assert "took over the study lock" in resumed.stderr and f"pid {driver}" in resumed.stderr
        assert json.loads(resumed.stdout)["done"] == 1
        record = Store.read_record(Store(store_dir).record_path(run_id))
        assert record["status"] == "done" and record["attempts"] == 1
        # item 11: a killed and resumed run leaves no "leaked semaphore objects" warning
        assert "leaked semaphore" not in resumed.stderr
    finally:
        parent.kill()
        parent.wait()
    assert "leaked semaphore" not in (tmp_path / "driver.err").read_text()


# ----------------------------------------------------------------------------- item 3: pre-flight


@pytest.mark.slow
@pytest.mark.parametrize(
    ("benchmark", "field", "expected"),
    [
        (
            {"id": "arith", "task": "oxs_arithm", "in_domain": True, "limit": 8},
            "task",
            "did you mean 'oxs_arith'",
        ),
        (
            {"id": "arith", "task": "oxs_arith", "metric": "exact_match,strict_match", "limit": 8},
            "metric",
            "it reports: exact_match,flexible-extract, exact_match,strict-match",
        ),
    ],
)
def test_typo_in_task_or_metric_fails_in_seconds_with_nothing_trained(
    tmp_path: Path, benchmark, field, expected
) -> None:
    spec = study_spec(tmp_path, "typo", seeds=(1, 2), benchmarks=[benchmark])
    started = time.monotonic()
    result = cli("run", str(spec))
    elapsed = time.monotonic() - started
    assert result.returncode == 2 and "Traceback" not in result.stderr
    (line,) = error_lines(result.stderr)
    assert f"{spec}:" in line and f"benchmarks[0].{field}:" in line and expected in line
    store_dir = tmp_path / "studies" / "typo"
    assert not (store_dir / "runs").exists() and not (store_dir / "cells").exists()  # zero cells trained
    assert elapsed < 120, elapsed  # seconds on an idle machine; generous for a loaded CI


def test_task_metric_keys_from_lm_eval_configs() -> None:
    """Bundled tasks and lm-eval's registry (real task configs), groups left to run time."""
    from oxstudy.errors import InputError
    from oxstudy.execute import task_metric_keys

    assert task_metric_keys("oxs_arith") == {"exact_match,strict-match", "exact_match,flexible-extract"}
    assert task_metric_keys("oxs_compare") == {"acc,none", "acc_norm,none"}
    assert task_metric_keys("gsm8k") == {"exact_match,strict-match", "exact_match,flexible-extract"}
    assert task_metric_keys("hellaswag") == {"acc,none", "acc_norm,none"}
    assert task_metric_keys("mmlu") is None  # a group: its keys are only known from its subtasks' results
    with pytest.raises(InputError, match="not a bundled task"):
        task_metric_keys("gsm8kk")


def test_trainer_config_problems_name_the_algorithm() -> None:
    from oxstudy.execute import trainer_config_problems
    from oxstudy.plan import plan
    from oxstudy.spec import load_spec_data

    spec = load_spec_data(
        {
            "name": "cfg",
            "models": [{"id": "tiny", "source": "zoo:tiny"}],
            "algorithms": [
                {"id": "SFT", "method": "sft"},
                {"id": "GRPO3", "method": "grpo", "hyperparameters": {"num_generations": 3}},
            ],
            "seeds": [1],
            "training": {"effective_batch_size": 4, "per_device_batch_size": 4},
            "benchmarks": [{"id": "arith", "task": "oxs_arith"}],
        }
    )
    (problem,) = trainer_config_problems(plan(spec))
    where, message = problem
    assert where == ("training", "effective_batch_size")
    assert "num_generations" in message and "(algorithm GRPO3)" in message


# (a NaN loss is deterministic and not retried: tests/test_run_faults.py)


# ----------------------------------------------------------------------------- item 4: storage


@contextlib.contextmanager
def tmpfs(path: Path, size: str):
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({mounted.stderr.strip() or mounted.returncode}): needs root")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(filesystem: Path, keep_bytes: int) -> None:
    """Fill ``filesystem`` until only ``keep_bytes`` are free."""
    stats = os.statvfs(filesystem)
    free = stats.f_bavail * stats.f_frsize
    with open(filesystem / "filler", "wb") as handle, contextlib.suppress(OSError):
        handle.write(b"x" * max(0, free - keep_bytes))


@pytest.mark.slow
@pytest.mark.parametrize("keep_kb", [0, 8])
def test_disk_full_during_a_cell_reports_the_cause_in_one_line(tmp_path: Path, keep_kb: int) -> None:
    """The store's disk fills while a cell evaluates (a 1 MB tmpfs). With 8 KB left, the small
    failed record still fits and carries the cause; with nothing left, the run stops with it
    (exit 2). Never a traceback, never "exited ... without writing a record"."""
    with tmpfs(tmp_path / "small", "1m") as store_root:
        store_dir = store_root / "study"
        spec = study_spec(tmp_path, "full", output_dir=store_dir)
        proc = subprocess.Popen(
            [sys.executable, "-m", "oxstudy.cli", "run", str(spec), "--json"],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_for(lambda: training_cell(store_dir, "eval") is not None, what="a cell at evaluation")
        fill(store_root, keep_kb * 1024)
        out, err = proc.communicate(timeout=900)
        assert "Traceback" not in err, err[-3000:]
        assert "without writing a record" not in err + out
        if keep_kb == 0:  # nothing could be recorded: one line with the cause, exit 2
            assert proc.returncode == 2, err[-2000:]
            (line,) = error_lines(err)
            assert "No space left on device writing" in line and str(store_dir / "runs") in line
            assert not Store(store_dir).record_paths()
        else:
            assert proc.returncode == 1, err[-2000:]
            (record,) = load_study(store_dir).records
            assert record["status"] == "failed"
            assert record["error"]["reason"].startswith(
                f"No space left on device writing {store_dir / 'runs'}"
            )
            assert (
                record["error"]["failure_class"] == "deterministic" and record["error"]["kind"] == "storage"
            )
            assert "retry" not in err  # a full disk is not retried (retries: 1)


@pytest.mark.slow
def test_full_store_before_anything_is_written_exits_2(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "tiny", "4k") as store_root:
        (store_root / "filler").write_bytes(b"x" * 4096)
        spec = study_spec(tmp_path, "nothing", output_dir=store_root / "study")
        result = cli("run", str(spec))
        assert result.returncode == 2 and "Traceback" not in result.stderr
        (line,) = error_lines(result.stderr)
        assert f"No space left on device writing {store_root / 'study' / LOCK_NAME}" in line
        assert not (store_root / "study" / LOCK_NAME).exists()  # no empty lock left to block the next run


@pytest.mark.slow
def test_read_only_store_exits_2_with_the_cause(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "ro", "1m") as store_root:
        spec = study_spec(tmp_path, "readonly", output_dir=store_root / "study")
        (store_root / "study").mkdir()
        subprocess.run(["mount", "-o", "remount,ro", str(store_root)], check=True)
        result = cli("run", str(spec))
        status = cli("status", str(store_root / "study"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    (line,) = error_lines(result.stderr)
    assert "Read-only file system writing" in line and str(store_root / "study") in line
    assert "Traceback" not in status.stderr


# ----------------------------------------------------------------------------- tracking


@pytest.mark.slow
def test_tensorboard_and_mlflow_tracking_of_a_real_cell(
    tmp_path: Path, zoo_tiny: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("tensorboard")
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from oxstudy.execute import execute_cell
    from oxstudy.plan import plan
    from oxstudy.spec import load_spec

    spec = load_spec(study_spec(tmp_path, "tracked", execution={"report_to": ["tensorboard", "mlflow"]}))
    untracked = load_spec(study_spec(tmp_path, "tracked2"))
    (cell,) = plan(spec)
    assert [c.run_id for c in plan(untracked)] == [cell.run_id]  # tracking re-runs nothing
    store_dir = tmp_path / "studies" / "tracked"
    before = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "TENSORBOARD_LOGGING_DIR")}
    outcome = execute_cell(cell, str(store_dir), redirect=False)
    assert outcome["status"] == "done", outcome
    assert {k: os.environ.get(k) for k in before} == before  # the environment is restored

    tb_dir = store_dir / "tracking" / "tensorboard" / "tiny" / "SFT" / f"seed1-{cell.run_id}"
    assert list(tb_dir.glob("events.out.tfevents.*"))
    events = EventAccumulator(str(tb_dir))
    events.Reload()
    losses = [e.value for e in events.Scalars("train/loss")]
    record = Store.read_record(Store(store_dir).record_path(cell.run_id))
    assert losses and losses[-1] == pytest.approx(record["train"]["final_loss"], rel=1e-5)

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # to read the store back here
    client = MlflowClient(tracking_uri=(store_dir / "tracking" / "mlruns").as_uri())
    experiment = client.get_experiment_by_name("tracked")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == f"tracked/tiny/SFT/seed1/{cell.run_id}"
    assert {k: run.data.tags[k] for k in ("study", "model", "algorithm", "seed", "run_id")} == {
        "study": "tracked",
        "model": "tiny",
        "algorithm": "SFT",
        "seed": "1",
        "run_id": cell.run_id,
    }
    history = client.get_metric_history(run.info.run_id, "loss")
    assert [m.step for m in history] == record["curves"]["step"]
    assert history[-1].value == pytest.approx(record["train"]["final_loss"], rel=1e-5)
    # progress: the training phase reported its steps (it used to stay at "train 0/0")
    progress = json.loads((store_dir / "cells" / cell.run_id / "progress.json").read_text())
    assert progress["train"] == [2, 2]
