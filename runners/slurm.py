"""The SLURM backend, through submitit: one array task per cell.

Pending cells are submitted as a SLURM job array (``executor.map_array``) with the
partition, time limit, CPUs, memory, GPUs and array parallelism of the spec's
``execution.slurm`` section; each array task runs ``oxstudy.execute.execute_cell`` on one
cell in its own process and writes the record into the study's store, which must be on a
filesystem the compute nodes share with the driver (the usual ``$HOME`` / project space).
submitit's files (pickled calls, job stdout/stderr) go to ``<study>/slurm/``.

The driver (``oxstudy run``) stays up while the jobs run, polls them, and treats their ends
like every other backend: a record written by the job is trusted; a job that ended
without one (SLURM's time limit, an out-of-memory kill, ``scancel``, a node failure) gets a
failed record with the reason the driver knows and the tail of the cell's log; failed cells
are resubmitted (as a new array) while ``execution.retries`` allows. ``execution.timeout_s``
is enforced by the driver from the moment the cell starts running (its first progress
write), as on Ray; ``slurm.time_min`` is SLURM's own limit per array task.

``cluster="local"`` runs the same submission through submitit's local executor (one
subprocess per cell on this machine); the test suite uses it to run real cells without a
cluster. It assigns GPUs naively (every job sees GPUs 0..n-1), so use the local backend,
not this, for GPU work on one machine.
"""

from __future__ import annotations

import contextlib
import shlex
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runners.attempts import Attempt, AttemptBook, short_reason, unrecorded_reason
from runners.base import CellOutcome, EventSink, Runner, RunnerEvent

if TYPE_CHECKING:
    from oxstudy.plan import Cell
    from oxstudy.spec import ExecutionSpec
    from oxstudy.store import Store


def _slurm_cell(
    cell: dict[str, Any], store_root: str, attempt: int, threads: int | None, corpus_shas: dict[str, str] | None = None
) -> dict[str, Any]:
    """The array task's body (unpickled and run on the compute node). ``corpus_shas``: the
    driver's zoo corpus hashes, so the task does not regenerate the corpus to find its model."""
    from oxstudy.execute import execute_cell

    return execute_cell(cell, store_root, attempt=attempt, threads=threads, corpus_shas=corpus_shas)


def slurm_parameters(
    execution: ExecutionSpec, *, job_name: str, setup: list[str] | None = None
) -> dict[str, Any]:
    """sbatch parameters (submitit's SLURM names) for cells with this execution section."""
    slurm = execution.slurm
    params: dict[str, Any] = {
        "job_name": job_name,
        "time": slurm.time_min,
        "nodes": 1,
        "ntasks_per_node": 1,
        "cpus_per_task": slurm.cpus_per_task,
        "mem": f"{slurm.mem_gb}GB",
        "array_parallelism": slurm.array_parallelism,
    }
    if execution.gpus_per_run > 0:
        params["gpus_per_node"] = execution.gpus_per_run
    if slurm.partition:
        params["partition"] = slurm.partition
    if slurm.additional_parameters:
        params["additional_parameters"] = dict(slurm.additional_parameters)
    if setup:
        params["setup"] = list(setup)
    return params


def _job_reason(job: Any, exc: BaseException | None) -> str:
    """Why a job ended without a record, in SLURM's words where it has them."""
    try:
        state = str(job.state)
    except Exception:  # sacct unavailable: the exception still tells something
        state = "UNKNOWN"
    hints = {
        "TIMEOUT": "SLURM time limit reached (raise execution.slurm.time_min)",
        "OUT_OF_MEMORY": "out of memory (raise execution.slurm.mem_gb)",
        "CANCELLED": "job cancelled (scancel or preemption)",
        "NODE_FAIL": "node failure",
        "PREEMPTED": "job preempted",
        "INTERRUPTED": "job interrupted by a signal",
    }
    for key, text in hints.items():
        if state.startswith(key):
            return f"{text}; job {job.job_id} state {state}"
    detail = f": {short_reason(exc)}" if exc is not None else ""
    return f"job {job.job_id} ended in state {state} without a record{detail}"


@dataclass
class SlurmRunner(Runner):
    """Run cells as SLURM array tasks through submitit.

    Attributes:
        folder: submitit's working folder (default ``<study>/slurm``).
        cluster: ``slurm`` (default), or ``local`` / ``debug`` (submitit's executors for testing).
        max_parallel: cells in flight with ``cluster="local"`` (None: ``execution.max_parallel``);
            on SLURM the array's ``%array_parallelism`` throttles instead.
        retries: extra attempts for a failed cell (None: ``execution.retries``).
        timeout_s: per-cell limit from the start of its run (None: ``execution.timeout_s``).
        setup: shell lines run in the sbatch script before the task (e.g. ``module load cuda``,
            ``source /path/to/.venv/bin/activate``).
        poll_s: seconds between polls (None: 10 on SLURM, where each poll may call sacct; 0.5 locally).
        slurm: a ``SlurmSpec`` used instead of each cell's ``execution.slurm`` (a CLI override).
    """

    folder: str | Path | None = None
    cluster: str | None = None
    max_parallel: int | None = None
    retries: int | None = None
    timeout_s: float | None = None
    setup: list[str] | None = None
    poll_s: float | None = None
    slurm: Any = None
    name: str = field(default="slurm", init=False)
    _executors: dict[str, Any] = field(default_factory=dict, init=False, repr=False)

    def _execution(self, cell: Cell) -> ExecutionSpec:
        if self.slurm is None:
            return cell.execution
        return cell.execution.model_copy(update={"slurm": self.slurm})

    @property
    def on_slurm(self) -> bool:
        return (self.cluster or "slurm") == "slurm"

    # ------------------------------------------------------------------ submission
    def executor(self, execution: ExecutionSpec, folder: Path, job_name: str) -> Any:
        """The submitit executor for cells with this execution section (cached per section)."""
        import submitit

        key = execution.model_dump_json()
        if key in self._executors:
            return self._executors[key]
        executor = submitit.AutoExecutor(folder=folder, cluster=self.cluster or "slurm")
        params = slurm_parameters(execution, job_name=job_name, setup=self.setup)
        generic = {
            "name": job_name,
            "timeout_min": params.pop("time"),
            "nodes": params.pop("nodes"),
            "tasks_per_node": params.pop("ntasks_per_node"),
            "cpus_per_task": params.pop("cpus_per_task"),
            "mem_gb": execution.slurm.mem_gb,
        }
        params.pop("job_name")
        params.pop("mem")
        if "gpus_per_node" in params:
            generic["gpus_per_node"] = params.pop("gpus_per_node")
        # generic names reach every executor; slurm_* ones only the SLURM one
        executor.update_parameters(**generic, **{f"slurm_{k}": v for k, v in params.items()})
        self._executors[key] = executor
        return executor

    def sbatch_script(self, cells: list[Cell], folder: str | Path = "slurm") -> str:
        """The sbatch script an array of ``cells`` would be submitted with (for --dry-run)."""
        from submitit.slurm.slurm import _make_sbatch_string

        execution = self._execution(cells[0])
        params = slurm_parameters(execution, job_name=f"oxstudy-{cells[0].study}", setup=self.setup)
        command = " ".join(
            [shlex.quote(sys.executable), "-u -m submitit.core._submit", shlex.quote(str(folder))]
        )
        return _make_sbatch_string(command=command, folder=folder, map_count=len(cells), **params)

    # ------------------------------------------------------------------ run
    def run(self, cells: list[Cell], store: Store, *, on_event: EventSink | None = None) -> list[CellOutcome]:
        from oxstudy import zoo

        corpus_shas = zoo.corpus_sha_memo()
        emit = on_event or (lambda event: None)
        book = AttemptBook(store, emit, retries=self.retries)
        if not cells:
            return []
        folder = Path(self.folder) if self.folder is not None else store.root / "slurm"
        folder.mkdir(parents=True, exist_ok=True)
        poll_s = self.poll_s if self.poll_s is not None else (10.0 if self.on_slurm else 0.5)
        window = (
            None if self.on_slurm else (self.max_parallel or max(c.execution.max_parallel for c in cells))
        )
        store_root = str(store.root.resolve())
        queue: deque[tuple[Cell, int]] = deque((cell, 1) for cell in cells)
        inflight: list[Attempt] = []

        def submit_pending() -> None:
            free = len(queue) if window is None else max(0, window - len(inflight))
            batch = [queue.popleft() for _ in range(min(free, len(queue)))]
            groups: dict[str, list[tuple[Cell, int]]] = {}
            for cell, number in batch:
                groups.setdefault(self._execution(cell).model_dump_json(), []).append((cell, number))
            for group in groups.values():
                execution = self._execution(group[0][0])
                executor = self.executor(execution, folder, f"oxstudy-{group[0][0].study}")
                attempts = [book.new_attempt(cell, number) for cell, number in group]
                threads = execution.slurm.cpus_per_task if self.on_slurm else None
                jobs = executor.map_array(
                    _slurm_cell,
                    [cell.model_dump(mode="json") for cell, _ in group],
                    [store_root] * len(group),
                    [number for _, number in group],
                    [threads] * len(group),
                    [corpus_shas] * len(group),
                )
                for attempt, job in zip(attempts, jobs, strict=True):
                    attempt.handle = job
                    inflight.append(attempt)
                    emit(
                        RunnerEvent(
                            "start", attempt.run_id, {"attempt": attempt.attempt, "job_id": job.job_id}
                        )
                    )

        def settle(attempt: Attempt, crash_reason: str | None) -> None:
            inflight.remove(attempt)
            if book.settle(attempt, crash_reason=crash_reason):
                queue.append((attempt.cell, attempt.attempt + 1))

        try:
            while queue or inflight:
                if queue:
                    submit_pending()
                time.sleep(poll_s)
                for attempt in list(inflight):
                    job = attempt.handle
                    if job.done():
                        try:
                            crash = unrecorded_reason(job.result())
                        except Exception as exc:  # submitit raises several kinds
                            crash = _job_reason(job, exc)
                        settle(attempt, crash)
                        continue
                    timeout = attempt.watch(store, emit, self.timeout_s)
                    if timeout is not None:
                        job.cancel(check=False)
                        deadline = time.monotonic() + 60
                        while not job.done() and time.monotonic() < deadline:
                            time.sleep(min(poll_s, 1.0))
                        settle(attempt, f"timeout after {timeout:.0f} s (job {job.job_id} cancelled)")
        finally:
            for attempt in inflight:  # interrupted: cancel what we submitted
                with contextlib.suppress(Exception):  # best effort while unwinding
                    attempt.handle.cancel(check=False)
        return book.ordered(cells)
