"""The Ray backend for real: a local Ray instance on CPU running real zoo cells (no mocks)."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest
from tiny_study import tiny_cells as shared_tiny_cells

from oxstudy.plan import Cell
from oxstudy.store import Store
from runners.base import RunnerEvent, get_runner
from runners.ray_runner import worker_env

ray = pytest.importorskip("ray")


def tiny_cells(name: str, seeds: list[int], **execution: object) -> list[Cell]:
    return shared_tiny_cells(name, seeds, "ray", **{"retries": 0, **execution})


def records(store: Store) -> dict[str, dict]:
    return {path.stem: store.read_record(path) for path in store.record_paths()}


@pytest.fixture(scope="module")
def local_ray(zoo_tiny: str):
    """One local Ray instance on CPU for the module, shut down at the end."""
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=128 * 1024 * 1024,
        log_to_driver=False,
        configure_logging=False,
    )
    try:
        yield ray
    finally:
        ray.shutdown()
    assert not ray.is_initialized()


def test_worker_env_forwards_the_hub_settings() -> None:
    environ = {
        "OXSTUDY_CACHE": "/cache",
        "HF_HUB_CACHE": "/hub",
        "HF_TOKEN": "t",
        "HOME": "/root",
        "PATH": "/bin",
    }
    env = worker_env(environ, {"working_dir": ".", "env_vars": {"HF_TOKEN": "mine"}})
    assert env["working_dir"] == "."
    # the caller's runtime env wins; unrelated variables stay on the driver
    assert env["env_vars"] == {"OXSTUDY_CACHE": "/cache", "HF_HUB_CACHE": "/hub", "HF_TOKEN": "mine"}


def test_a_cell_task_sees_the_hub_settings_set_after_ray_started(local_ray, monkeypatch) -> None:
    """Ray was started (by the fixture) before the variables were set, so only the task's own
    runtime env can carry them to the worker (on a remote node, the job's would not either)."""
    monkeypatch.setenv("HF_HUB_CACHE", "/somewhere/hub")
    monkeypatch.setenv("HF_TOKEN", "hf_test")
    names = ("HF_HUB_CACHE", "HF_TOKEN")

    def worker_sees() -> dict[str, str | None]:  # nested: shipped by value to the worker
        import os

        return {name: os.environ.get(name) for name in names}

    cell = tiny_cells("ray-env", [1])[0]
    options = get_runner("ray").task_options(cell)
    probe = ray.remote(max_calls=1)(worker_sees)
    assert ray.get(probe.options(**options).remote(), timeout=120) == {
        "HF_HUB_CACHE": "/somewhere/hub",
        "HF_TOKEN": "hf_test",
    }
    # and without the forwarding a worker would not have seen them
    bare = {k: v for k, v in options.items() if k != "runtime_env"}
    assert ray.get(probe.options(**bare).remote(), timeout=120) == dict.fromkeys(names)


@pytest.mark.slow
def test_two_real_cells_each_end_with_one_done_record(local_ray, tmp_path: Path) -> None:
    cells = tiny_cells("ray-two", [1, 2], max_parallel=2)
    store = Store(tmp_path / "study")
    events: list[RunnerEvent] = []
    runner = get_runner("ray", num_cpus=2)
    started = time.perf_counter()
    outcomes = runner.run(cells, store, on_event=events.append)
    elapsed = time.perf_counter() - started
    assert [o.status for o in outcomes] == ["done", "done"], outcomes
    stored = records(store)
    assert sorted(stored) == sorted(c.run_id for c in cells)  # exactly one record per cell
    for cell in cells:
        record = stored[cell.run_id]
        assert record["status"] == "done" and record["attempts"] == 1
        metric = record["metrics"]["arith"]
        assert metric["n"] == 8 and 0.0 <= metric["value"] <= 1.0
        assert len(record["items"]["arith"]["score"]) == 8
        assert record["timings"]["train_s"] > 0
        kinds = [e.kind for e in events if e.run_id == cell.run_id]
        assert kinds[0] == "start" and kinds[-1] == "done" and "failed" not in kinds
    # ran in Ray workers, not in this process: the worker redirected its output to the cell log
    assert "== oxstudy cell tiny/SFT/seed1" in (store.cell_dir(cells[0].run_id) / "log.txt").read_text()
    print(f"2 cells on local Ray (2 CPUs): {elapsed:.1f} s")


@pytest.mark.slow
def test_failures_are_recorded_retried_and_isolated(local_ray, tmp_path: Path) -> None:
    """A cell whose model cannot load fails with its reason and is not retried (deterministic); a
    cell whose worker is SIGKILLed mid-run gets a failed record naming the crash and is retried
    (transient); the study goes on."""
    missing = tmp_path / "no-such-model"
    broken = tiny_cells("ray-fail", [1])[0]
    broken = broken.model_copy(update={"model": broken.model.model_copy(update={"source": str(missing)})})
    broken = broken.model_copy(update={"run_id": "broken0000000000"})
    victim = tiny_cells("ray-fail", [2])[0]
    store = Store(tmp_path / "study")
    events: list[RunnerEvent] = []

    killed: list[int] = []

    def kill_victim_worker() -> None:
        # the victim's Ray worker titles itself "ray::oxstudy:tiny/SFT/seed2" while it runs
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not killed:
            for pid in filter(str.isdigit, os.listdir("/proc")):
                try:
                    title = Path(f"/proc/{pid}/cmdline").read_bytes()
                except OSError:
                    continue
                if (
                    b"oxstudy:tiny/SFT/seed2" in title
                    and (store.cell_dir(victim.run_id) / "progress.json").exists()
                ):
                    os.kill(int(pid), signal.SIGKILL)
                    killed.append(int(pid))
                    return
            time.sleep(0.2)

    killer = threading.Thread(target=kill_victim_worker, daemon=True)
    killer.start()
    runner = get_runner("ray", max_parallel=1, retries=1)
    outcomes = {o.run_id: o for o in runner.run([broken, victim], store, on_event=events.append)}
    killer.join(5)
    assert killed, "never found the victim's worker process"

    stored = records(store)
    assert sorted(stored) == sorted([broken.run_id, victim.run_id])
    # the broken cell: failed with the loader's reason; a missing model is certain to be missing
    # again (a deterministic failure), so it is not retried
    assert outcomes[broken.run_id].status == "failed" and outcomes[broken.run_id].attempts == 1
    assert stored[broken.run_id]["attempts"] == 1
    assert "model path does not exist" in stored[broken.run_id]["error"]["reason"]
    assert stored[broken.run_id]["error"]["failure_class"] == "deterministic"
    assert [e.kind for e in events if e.run_id == broken.run_id and e.kind != "phase"] == ["start", "failed"]
    # the victim: its first worker was killed -> a failed attempt recorded by the driver, then
    # the retry ran to completion in a fresh worker
    victim_events = [e for e in events if e.run_id == victim.run_id and e.kind != "phase"]
    assert [e.kind for e in victim_events] == ["start", "retry", "start", "done"]
    assert "crashed" in victim_events[1].detail["reason"]
    assert outcomes[victim.run_id].status == "done" and stored[victim.run_id]["attempts"] == 2


@pytest.mark.slow
def test_timeout_cancels_the_task_and_records_it(local_ray, tmp_path: Path) -> None:
    cell = tiny_cells("ray-timeout", [3], timeout_s=1)[0]
    store = Store(tmp_path / "study")
    outcomes = get_runner("ray").run([cell], store)
    assert outcomes[0].status == "failed"
    record = records(store)[cell.run_id]
    assert record["status"] == "failed" and record["error"]["reason"].startswith("timeout after 1 s")
