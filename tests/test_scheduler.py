"""The local runner's GPU scheduler: no head-of-line blocking, no double booking, no starvation."""

from __future__ import annotations

import random
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from oxstudy.errors import OxstudyError, ResourceError
from runners.scheduler import GpuScheduler, SimJob, lower_bound, simulate, simulate_schedule


def _fill(scheduler: GpuScheduler, n: int, duration: float = 10.0) -> None:
    for i in range(n):
        scheduler.submit(f"busy{i}", 1, duration)
    assert len(scheduler.assign(0.0)) == n


def test_no_head_of_line_blocking() -> None:
    """A 2-GPU cell waiting for a second GPU does not keep a fitting 1-GPU cell waiting."""
    scheduler = GpuScheduler(4)
    _fill(scheduler, 3)
    scheduler.submit("big", 2, 100.0)  # ranked first (longest) but does not fit one free GPU
    scheduler.submit("small", 1, 1.0)
    started = scheduler.assign(0.0)
    assert [job_id for job_id, _ in started] == ["small"]
    assert scheduler.pending == ["big"]
    assert scheduler.free_gpus == ()


def test_fifo_contrast_blocks() -> None:
    """The naive policy kept for the benchmark really does block (so the test above can fail)."""
    scheduler = GpuScheduler(4, policy="fifo")
    _fill(scheduler, 3)
    scheduler.submit("big", 2, 100.0)
    scheduler.submit("small", 1, 1.0)
    assert scheduler.assign(0.0) == []
    assert len(scheduler.free_gpus) == 1


def test_longest_first_and_aligned_pairs() -> None:
    scheduler = GpuScheduler(4)
    scheduler.submit("short", 1, 1.0)
    scheduler.submit("long2", 2, 50.0)
    scheduler.submit("mid", 1, 5.0)
    started = dict(scheduler.assign(0.0))
    assert list(started) == ["long2", "mid", "short"]  # LPT order
    assert started["long2"] == (0, 1)  # an aligned pair
    # the 1-GPU cells share the other pair rather than splitting pairs
    assert sorted(started["mid"] + started["short"]) == [2, 3]


def test_single_gpu_cells_keep_pairs_free() -> None:
    scheduler = GpuScheduler(4)
    scheduler.submit("a", 1, 5.0)
    scheduler.submit("b", 1, 4.0)
    started = dict(scheduler.assign(0.0))
    # best fit: the second 1-GPU cell goes next to the first, leaving the pair (2, 3) whole
    assert sorted(started["a"] + started["b"]) == [0, 1]
    scheduler.submit("pair", 2, 1.0)
    assert dict(scheduler.assign(0.0)) == {"pair": (2, 3)}


def test_max_starts_caps_without_losing_jobs() -> None:
    scheduler = GpuScheduler(4)
    for i, duration in enumerate([5.0, 4.0, 3.0]):
        scheduler.submit(f"j{i}", 1, duration)
    assert scheduler.assign(0.0, max_starts=0) == []
    assert [j for j, _ in scheduler.assign(0.0, max_starts=2)] == ["j0", "j1"]
    assert scheduler.pending == ["j2"] and len(scheduler.free_gpus) == 2  # j2 still queued, not lost
    assert [j for j, _ in scheduler.assign(0.0)] == ["j2"]


def _check_schedule(jobs: list[SimJob], num_gpus: int, starts: dict) -> None:
    """Independently of the scheduler: every job ran once with the GPUs it asked for, and no
    GPU id served two jobs at overlapping times."""
    assert set(starts) == {job.job_id for job in jobs}
    by_gpu: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for job in jobs:
        start, gpu_ids = starts[job.job_id]
        assert len(gpu_ids) == job.gpus == len(set(gpu_ids))
        assert all(0 <= g < num_gpus for g in gpu_ids)
        for g in gpu_ids:
            by_gpu[g].append((start, start + job.duration))
    for intervals in by_gpu.values():
        intervals.sort()
        for (_, end), (next_start, _) in zip(intervals, intervals[1:], strict=False):
            assert next_start >= end - 1e-9


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("policy", ["lpt-backfill", "backfill", "fifo"])
def test_random_matrices_run_everything_without_double_booking(seed: int, policy: str) -> None:
    rng = random.Random(seed)
    num_gpus = rng.choice([2, 3, 4, 8])
    jobs = [
        SimJob(i, rng.choice([1, 1, 2, min(4, num_gpus)]), rng.lognormvariate(0, 1), rng.lognormvariate(0, 1))
        for i in range(rng.randint(1, 120))
    ]
    result = simulate_schedule(jobs, num_gpus, policy=policy)
    _check_schedule(jobs, num_gpus, result.starts)
    assert result.makespan >= result.lower_bound - 1e-9
    assert result.busy_gpu_time == pytest.approx(sum(j.gpus * j.duration for j in jobs))


@pytest.mark.parametrize("max_bypass", [None, 10**9])
def test_never_idles_while_a_fitting_job_waits(max_bypass: int | None) -> None:
    """After every decision no waiting job fits the free GPUs, except while a multi-GPU job
    that was passed over ``max_bypass`` times holds a reservation (then only jobs that would
    delay it wait)."""
    rng = random.Random(7)
    scheduler = GpuScheduler(8, max_bypass=max_bypass)
    reservations = 0
    durations = {}
    for i in range(60):
        durations[i] = rng.uniform(1, 10)
        scheduler.submit(i, rng.choice([1, 2]), durations[i])
    now, running = 0.0, {}
    while not scheduler.idle():
        for job_id, _ in scheduler.assign(now):
            running[job_id] = now + durations[job_id]
        free = len(scheduler.free_gpus)
        waiting = [scheduler._pending[j].gpus for j in scheduler.pending]
        if scheduler.reserved is None:
            assert not any(g <= free for g in waiting), f"t={now}: {free} GPUs free while {waiting} wait"
        else:
            reservations += 1
            assert scheduler._pending[scheduler.reserved].bypassed >= scheduler.max_bypass
        job_id = min(running, key=running.get)
        now = running.pop(job_id)
        scheduler.release(job_id)
    # the default does reserve on this batch; pure backfilling never does
    assert (reservations > 0) == (max_bypass is None)


def _stream(max_bypass: int | None, horizon: float = 200.0) -> float | None:
    """Two GPUs kept half busy by an endless stream of staggered 1-GPU cells; a 2-GPU cell
    waits. Returns when it started (None: starved until the horizon)."""
    scheduler = GpuScheduler(2, max_bypass=max_bypass)
    ends: dict[str, float] = {}
    counter = 0

    def submit_small() -> None:
        nonlocal counter
        counter += 1
        scheduler.submit(f"s{counter}", 1, 2.0)

    submit_small()
    for job_id, _ in scheduler.assign(0.0):
        ends[job_id] = 2.0
    scheduler.submit("big", 2, 3.0)
    submit_small()
    now = 1.0  # the second small cell starts half-way through the first: never both free
    while now < horizon:
        for job_id, _ in scheduler.assign(now):
            if job_id == "big":
                return now
            ends[job_id] = now + 2.0
        submit_small()
        job_id = min(ends, key=ends.get)
        now = ends.pop(job_id)
        scheduler.release(job_id)
    return None


def test_multi_gpu_cells_are_not_starved() -> None:
    assert _stream(max_bypass=10**9) is None  # pure backfilling starves the 2-GPU cell ...
    started = _stream(max_bypass=None)  # ... the default reservation bounds its wait
    assert started is not None and started < 20.0


def _reservation_case(max_bypass: int) -> list[list[str]]:
    scheduler = GpuScheduler(2, max_bypass=max_bypass)
    scheduler.submit("running", 1, 10.0)
    scheduler.assign(0.0)
    scheduler.submit("big", 2, 5.0)  # needs both GPUs: shadow time 10 when "running" ends
    scheduler.submit("quick", 1, 4.0)
    starts = [[j for j, _ in scheduler.assign(0.0)]]
    scheduler.release("quick")  # it overran its estimate: finished at 6
    scheduler.submit("late", 1, 4.5)  # would end at 10.5, after the shadow time
    starts.append([j for j, _ in scheduler.assign(6.0)])
    return starts


def test_reservation_backfills_only_what_ends_in_time() -> None:
    # reserved at once: "quick" (ends 4 <= 10) backfills, "late" (ends 10.5 > 10) is held back
    assert _reservation_case(max_bypass=0) == [["quick"], []]
    # without a reservation both start and "big" would wait longer
    assert _reservation_case(max_bypass=10**9) == [["quick"], ["late"]]


def test_job_larger_than_machine_is_rejected() -> None:
    scheduler = GpuScheduler(2)
    with pytest.raises(ResourceError, match=r"cell r1: needs 4 GPUs .* this machine has 2") as info:
        scheduler.submit("r1", 4, 1.0)
    assert isinstance(info.value, OxstudyError) and "\n" not in str(info.value)
    with pytest.raises(ValueError, match="gpus must be >= 1"):
        scheduler.submit("cpu", 0, 1.0)
    with pytest.raises(ValueError, match="est_duration"):
        scheduler.submit("nan", 1, float("nan"))
    scheduler.submit("ok", 1, 1.0)
    with pytest.raises(ValueError, match="already queued"):
        scheduler.submit("ok", 1, 1.0)
    with pytest.raises(KeyError):
        scheduler.release("ok")  # not started yet
    with pytest.raises(ResourceError):
        GpuScheduler(0)


def test_simulate_and_lower_bound() -> None:
    jobs = [("a", 1, 4.0), ("b", 1, 4.0), ("c", 2, 2.0)]
    assert simulate(jobs, 2) == pytest.approx(6.0)
    assert lower_bound([SimJob(*j) for j in jobs], 2) == pytest.approx(6.0)
    assert simulate([("long", 1, 9.0), ("x", 1, 1.0)], 4) == pytest.approx(9.0)


def test_benchmark_meets_target() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import bench_scheduler

    rows = bench_scheduler.run([0, 1], 8)
    for row in rows:
        assert row["cells"] == 240 and 0 < row["two_gpu_cells"] < 240
        assert 1.0 <= row["lpt_backfill"] < 1.10
        assert row["lpt_backfill"] < row["fifo_shuffled"]
