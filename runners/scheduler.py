"""GPU scheduling for the local runner: which pending cells start on which GPU ids, now.

Pure Python, no clock and no processes: the caller says what time it is (``assign(now)``)
and which job finished (``release(job_id)``); the same object therefore drives the real
runner and the discrete-event simulation in ``benchmarks/bench_scheduler.py``.

Policy (longest-processing-time first with backfilling and a bounded reservation):

1. **Order.** Pending cells are ranked by estimated duration, longest first (LPT; ties:
   more GPUs first, then submission order). Starting long cells early is what keeps the
   tail of a study short: the last cells to finish are then the short ones.
2. **Backfill.** At every decision point the ranked list is walked and *every* cell that
   fits the free GPUs starts. A 2-GPU cell waiting for a second GPU never blocks 1-GPU
   cells that fit now (no head-of-line blocking: the GPU scheduler that stopped at the
   first job that did not fit is the mistake this module exists to avoid).
3. **No starvation.** Pure backfilling can pass a multi-GPU cell over again and again
   while single GPUs free up one at a time. Each time a lower-ranked cell starts in front
   of a waiting one, the waiting cell's bypass count goes up; once it reaches
   ``max_bypass`` the cell holds a *reservation* (EASY backfilling): from the running
   cells' estimated end times the scheduler computes when enough GPUs will be free for
   it (the shadow time) and how many GPUs it leaves over then; a later cell may still
   start now only if it is estimated to end before the shadow time or fits in the GPUs
   left over. The reserved cell therefore starts no later than the estimates say, while
   GPUs keep working on everything that does not delay it. The only idling this allows
   is the short drain before a reserved multi-GPU cell starts.

GPU ids: a multi-GPU cell takes the lowest-numbered free ids inside one aligned group
where possible (0-1, 2-3, ... for 2 GPUs: the pairs that usually share a fast link), and a
1-GPU cell prefers a GPU whose group is already partly busy, so that whole groups stay
free for multi-GPU cells (best fit against fragmentation).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field

from oxstudy.errors import ResourceError

JobId = Hashable


@dataclass
class _Job:
    job_id: JobId
    gpus: int
    est_duration: float
    order: int  # submission order, the last tie-breaker
    bypassed: int = 0
    started_at: float | None = None
    gpu_ids: tuple[int, ...] = ()

    def rank(self) -> tuple[float, int, int]:
        return (-self.est_duration, -self.gpus, self.order)


@dataclass
class GpuScheduler:
    """Assign GPU ids to pending jobs; see the module docstring for the policy.

    ``num_gpus``: GPUs on this machine (ids ``0 .. num_gpus-1``).
    ``max_bypass``: how many later jobs may start in front of a waiting job before it holds
    a reservation (``None``: never reserve, pure greedy backfill).
    ``policy``: ``"lpt-backfill"`` (the default above); ``"backfill"``, the same in submission
    order instead of LPT; or ``"fifo"``, the naive submission-order scheduler that stops at
    the first job that does not fit (the last two are kept as contrasts for the benchmark).
    """

    num_gpus: int
    max_bypass: int | None = None
    policy: str = "lpt-backfill"
    _pending: dict[JobId, _Job] = field(default_factory=dict, init=False, repr=False)
    _running: dict[JobId, _Job] = field(default_factory=dict, init=False, repr=False)
    _free: set[int] = field(default_factory=set, init=False, repr=False)
    _counter: itertools.count = field(default_factory=itertools.count, init=False, repr=False)
    #: the job holding a reservation after the last ``assign`` (None: pure backfilling)
    reserved: JobId | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.num_gpus < 1:
            raise ResourceError(f"GpuScheduler needs at least one GPU, got num_gpus={self.num_gpus}")
        if self.policy not in ("lpt-backfill", "backfill", "fifo"):
            raise ValueError(f"unknown scheduling policy {self.policy!r} (lpt-backfill, backfill, fifo)")
        if self.max_bypass is None:
            # enough that ordinary backfilling is untouched, small enough to bound the wait
            self.max_bypass = 2 * self.num_gpus
        self._free = set(range(self.num_gpus))

    # ------------------------------------------------------------------ bookkeeping
    def submit(self, job_id: JobId, gpus: int, est_duration: float | None = None) -> None:
        """Queue a job needing ``gpus`` GPUs for about ``est_duration`` (any unit; None = 1)."""
        if job_id in self._pending or job_id in self._running:
            raise ValueError(f"job {job_id!r} is already queued or running")
        if gpus < 1:
            raise ValueError(
                f"job {job_id!r}: gpus must be >= 1 (CPU cells are not GPU-scheduled), got {gpus}"
            )
        if gpus > self.num_gpus:
            raise ResourceError(
                f"cell {job_id}: needs {gpus} GPUs per run (execution.gpus_per_run) but this machine has "
                f"{self.num_gpus}; lower gpus_per_run or run on a larger node"
            )
        duration = 1.0 if est_duration is None else float(est_duration)
        if not duration >= 0:  # also rejects NaN
            raise ValueError(f"job {job_id!r}: est_duration must be a number >= 0, got {est_duration!r}")
        self._pending[job_id] = _Job(job_id, gpus, duration, next(self._counter))

    def release(self, job_id: JobId) -> tuple[int, ...]:
        """Mark a running job finished; returns the GPU ids it freed."""
        job = self._running.pop(job_id, None)
        if job is None:
            raise KeyError(f"job {job_id!r} is not running")
        self._free.update(job.gpu_ids)
        return job.gpu_ids

    def cancel(self, job_id: JobId) -> None:
        """Drop a job that has not started (e.g. the study was interrupted)."""
        self._pending.pop(job_id, None)

    @property
    def free_gpus(self) -> tuple[int, ...]:
        return tuple(sorted(self._free))

    @property
    def pending(self) -> list[JobId]:
        """Queued job ids in the order they would be considered."""
        return [job.job_id for job in self._ranked()]

    @property
    def running(self) -> dict[JobId, tuple[int, ...]]:
        return {job_id: job.gpu_ids for job_id, job in self._running.items()}

    def idle(self) -> bool:
        return not self._pending and not self._running

    # ------------------------------------------------------------------ decisions
    def _ranked(self) -> list[_Job]:
        jobs = list(self._pending.values())
        if self.policy in ("fifo", "backfill"):
            return sorted(jobs, key=lambda job: job.order)
        return sorted(jobs, key=_Job.rank)

    def assign(self, now: float = 0.0, max_starts: int | None = None) -> list[tuple[JobId, tuple[int, ...]]]:
        """Start every job that may start at time ``now``: [(job_id, gpu_ids), ...].

        The returned jobs count as running from now on (the caller must start them and later
        ``release`` them). ``max_starts`` caps how many start (e.g. a ``max_parallel`` limit on
        processes); the rest stay queued in rank order.
        """
        started: list[tuple[JobId, tuple[int, ...]]] = []
        if max_starts is not None and max_starts <= 0:
            return started
        if self.policy == "fifo":
            for job in self._ranked():
                if len(started) == max_starts:
                    break
                if job.gpus > len(self._free):
                    break  # head-of-line blocking, on purpose: this is the naive contrast
                started.append(self._start(job, now))
            return started

        self.reserved = None
        reservation: tuple[float, int] | None = None  # (shadow time, GPUs spare at that time)
        waiting: list[_Job] = []  # higher-ranked jobs that did not fit
        for job in self._ranked():
            if len(started) == max_starts:
                break
            if job.gpus <= len(self._free):
                if reservation is not None:
                    shadow, spare = reservation
                    ends_before = now + job.est_duration <= shadow
                    if not ends_before and job.gpus > spare:
                        waiting.append(job)  # held back for the reservation: later starts bypass it too
                        continue
                    if not ends_before:
                        reservation = (shadow, spare - job.gpus)
                started.append(self._start(job, now))
                for other in waiting:
                    other.bypassed += 1
                continue
            waiting.append(job)
            if reservation is None and job.bypassed >= (self.max_bypass or 0):
                reservation = self._shadow(job, now)
                self.reserved = job.job_id
        return started

    def _shadow(self, job: _Job, now: float) -> tuple[float, int]:
        """When ``job`` can start if nothing else starts (from estimated end times), and
        how many GPUs beyond its need are free at that moment."""
        free = len(self._free)
        ends = sorted(
            (max(now, (now if r.started_at is None else r.started_at) + r.est_duration), len(r.gpu_ids))
            for r in self._running.values()
        )
        shadow = now
        for end, gpus in ends:
            if free >= job.gpus:
                break
            free += gpus
            shadow = end
        return shadow, free - job.gpus

    def _start(self, job: _Job, now: float) -> tuple[JobId, tuple[int, ...]]:
        gpu_ids = self._pick_gpus(job.gpus)
        self._free.difference_update(gpu_ids)
        del self._pending[job.job_id]
        job.started_at = now
        job.gpu_ids = gpu_ids
        self._running[job.job_id] = job
        return job.job_id, gpu_ids

    def _pick_gpus(self, count: int) -> tuple[int, ...]:
        free = sorted(self._free)
        if count == 1:
            # best fit: a GPU whose aligned pair is already busy keeps whole pairs free
            lonely = [g for g in free if (g ^ 1) not in self._free]
            return (lonely[0] if lonely else free[0],)
        group = 1
        while group < count:
            group *= 2
        for base in range(0, self.num_gpus, group):
            block = [g for g in range(base, min(base + group, self.num_gpus)) if g in self._free]
            if len(block) >= count:
                return tuple(block[:count])
        return tuple(free[:count])


# ---------------------------------------------------------------------- simulation
@dataclass
class SimJob:
    """One job of a simulation: GPUs needed, the scheduler's estimate and the true duration."""

    job_id: JobId
    gpus: int
    duration: float
    est_duration: float | None = None  # None: the estimate is exact


@dataclass
class SimResult:
    makespan: float
    lower_bound: float
    busy_gpu_time: float
    starts: dict[JobId, tuple[float, tuple[int, ...]]]

    @property
    def ratio(self) -> float:
        return self.makespan / self.lower_bound if self.lower_bound > 0 else 1.0


def lower_bound(jobs: Iterable[SimJob], num_gpus: int) -> float:
    """No schedule beats max(total GPU-time / GPUs, longest job)."""
    jobs = list(jobs)
    if not jobs:
        return 0.0
    return max(sum(j.gpus * j.duration for j in jobs) / num_gpus, max(j.duration for j in jobs))


def simulate_schedule(
    jobs: Iterable[SimJob], num_gpus: int, *, policy: str = "lpt-backfill", max_bypass: int | None = None
) -> SimResult:
    """Discrete-event run of ``jobs`` (all submitted at t=0) through a :class:`GpuScheduler`.

    Checks as it goes that no GPU id is ever held by two jobs at once.
    """
    jobs = list(jobs)
    scheduler = GpuScheduler(num_gpus, max_bypass=max_bypass, policy=policy)
    by_id = {job.job_id: job for job in jobs}
    for job in jobs:
        scheduler.submit(job.job_id, job.gpus, job.duration if job.est_duration is None else job.est_duration)
    now = 0.0
    events: list[tuple[float, int, JobId]] = []
    tie = itertools.count()
    starts: dict[JobId, tuple[float, tuple[int, ...]]] = {}
    held: set[int] = set()
    busy = 0.0
    while True:
        for job_id, gpu_ids in scheduler.assign(now):
            if held.intersection(gpu_ids):
                raise AssertionError(f"GPU ids {sorted(held.intersection(gpu_ids))} double-booked at t={now}")
            held.update(gpu_ids)
            starts[job_id] = (now, gpu_ids)
            busy += by_id[job_id].duration * len(gpu_ids)
            heapq.heappush(events, (now + by_id[job_id].duration, next(tie), job_id))
        if not events:
            break
        now, _, job_id = heapq.heappop(events)
        held.difference_update(scheduler.release(job_id))
        # release everything ending at the same instant before deciding again
        while events and events[0][0] == now:
            _, _, other = heapq.heappop(events)
            held.difference_update(scheduler.release(other))
    if len(starts) != len(jobs):
        raise AssertionError(f"{len(jobs) - len(starts)} jobs never started")
    return SimResult(makespan=now, lower_bound=lower_bound(jobs, num_gpus), busy_gpu_time=busy, starts=starts)


def simulate(jobs: Iterable[SimJob | tuple], num_gpus: int, *, policy: str = "lpt-backfill") -> float:
    """Makespan of ``jobs`` on ``num_gpus`` GPUs; jobs are SimJob or (job_id, gpus, duration) tuples."""
    converted = [job if isinstance(job, SimJob) else SimJob(*job) for job in jobs]
    return simulate_schedule(converted, num_gpus, policy=policy).makespan
