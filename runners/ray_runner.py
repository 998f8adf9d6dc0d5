"""The Ray backend: each cell is a Ray task on an existing cluster or a local instance.

Every cell runs as ``@ray.remote(num_cpus=..., num_gpus=execution.gpus_per_run,
max_calls=1)``: ``max_calls=1`` makes Ray start a fresh worker process for each cell and
retire it afterwards, so a crash, an out-of-memory kill or leaked GPU memory ends that cell
only - the same isolation the local backend gets from one process per cell. Ray's own
task retries are off (``max_retries=0``): the driver retries a failed cell itself, up to
the spec's ``execution.retries``, so every attempt leaves its record and its reason.

The worker calls ``oxstudy.execute.execute_cell``, which writes the cell's record into the
store; the store must therefore be on a filesystem every Ray node sees (NFS, Lustre, a
mounted bucket). A worker that dies without a record (``WorkerCrashedError``, Ray's
memory monitor, a timeout) gets a failed record written by the driver.

Timeouts count from when the cell starts running (its first progress write), not from
submission: on a busy cluster a queued task is not slow, only waiting. A timed-out task is
cancelled with ``ray.cancel(force=True)``, which kills its worker process.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from runners.attempts import Attempt, AttemptBook, short_reason, unrecorded_reason
from runners.base import CellOutcome, EventSink, Runner, RunnerEvent

if TYPE_CHECKING:
    from oxstudy.plan import Cell
    from oxstudy.store import Store

#: Environment passed to every worker (also on remote nodes, through the runtime env): the
#: driver's cache, and the hub caches, endpoint and token it reads models with. (The zoo's
#: pretraining seed travels in each cell: ``Cell.zoo_seed``.)
FORWARDED_ENV = (
    "OXSTUDY_CACHE",
    "HF_HOME", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_DATASETS_CACHE", "HF_ENDPOINT", "HF_TOKEN",
    "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE",
    "TRL_EXPERIMENTAL_SILENCE", "TOKENIZERS_PARALLELISM",
)  # fmt: skip


def worker_env(environ: Mapping[str, str], runtime_env: dict[str, Any] | None = None) -> dict[str, Any]:
    """The Ray runtime env for the workers: ``runtime_env`` with the ``FORWARDED_ENV``
    variables set in ``environ`` added to its ``env_vars`` (the caller's own values win)."""
    merged = dict(runtime_env or {})
    forwarded = {name: environ[name] for name in FORWARDED_ENV if name in environ}
    merged["env_vars"] = {**forwarded, **merged.get("env_vars", {})}
    return merged


def _ray_cell(
    cell: dict[str, Any], store_root: str, attempt: int, threads: int | None, corpus_shas: dict[str, str] | None = None
) -> dict[str, Any]:
    """The task body: runs in a fresh Ray worker process. ``corpus_shas``: the driver's zoo
    corpus hashes, so the worker does not regenerate the corpus to find its model."""
    from oxstudy.execute import execute_cell

    return execute_cell(cell, store_root, attempt=attempt, threads=threads, corpus_shas=corpus_shas)


def _crash_reason(exc: BaseException) -> str:
    import ray.exceptions as rex

    if isinstance(exc, rex.OutOfMemoryError):
        return "killed by Ray's memory monitor (out of memory): " + short_reason(exc, 200)
    if isinstance(exc, rex.WorkerCrashedError):
        return "worker process crashed (killed, segfault or out of memory)"
    if isinstance(exc, rex.TaskCancelledError):
        return "task cancelled"
    if isinstance(exc, rex.RayTaskError):
        return "task raised " + short_reason(exc)
    return short_reason(exc)


@dataclass
class RayRunner(Runner):
    """Run each cell as a Ray task.

    Attributes:
        address: an existing cluster (``auto``, ``ray://head:10001``, ``host:6379``); None starts
            a local instance for the duration of the run (or reuses one this process started).
        num_cpus: CPUs of a local instance (None: Ray detects them). Ignored with ``address``.
        num_gpus: GPUs of a local instance (None: Ray detects them).
        max_parallel: cells in flight at once (None: each cell's ``execution.max_parallel``);
            Ray queues whatever the cluster cannot place yet.
        retries: extra attempts for a failed cell (None: ``execution.retries``).
        timeout_s: per-cell limit from the start of its run (None: ``execution.timeout_s``).
        cpus_per_cell: CPUs each task reserves; also its torch thread count.
        runtime_env: merged into the job's Ray runtime env (e.g. ``{"working_dir": "."}`` or
            ``{"pip": [...]}`` for clusters without oxstudy installed).
        object_store_mb: object store of a local instance (cells return small dicts only).
        poll_s: how often the driver looks at progress and timeouts.
    """

    address: str | None = None
    num_cpus: int | None = None
    num_gpus: int | None = None
    max_parallel: int | None = None
    retries: int | None = None
    timeout_s: float | None = None
    cpus_per_cell: float = 1
    runtime_env: dict[str, Any] | None = None
    object_store_mb: int = 128
    poll_s: float = 0.5
    name: str = field(default="ray", init=False)

    # ------------------------------------------------------------------ cluster
    def _connect(self) -> bool:
        """Initialise Ray unless already initialised; returns True if this call started it."""
        import ray

        if ray.is_initialized():
            return False
        runtime_env = worker_env(os.environ, self.runtime_env)
        options: dict[str, Any] = {
            "include_dashboard": False,
            "log_to_driver": False,
            "configure_logging": False,
            "runtime_env": runtime_env,
        }
        if self.address is None:
            # "local": a new instance even if a cluster runs on this machine
            options.update(
                address="local",
                num_cpus=self.num_cpus,
                num_gpus=self.num_gpus,
                object_store_memory=self.object_store_mb * 1024 * 1024,
            )
        else:
            options["address"] = self.address
        ray.init(**options)
        return True

    def task_options(self, cell: Cell) -> dict[str, Any]:
        """Ray task options of one cell. The forwarded environment goes with every task too
        (Ray merges a task's ``env_vars`` into the job's), so it reaches the workers also when
        Ray was initialised before this runner, by the user or another library."""
        return {
            "num_cpus": self.cpus_per_cell,
            "num_gpus": cell.execution.gpus_per_run,
            "retry_exceptions": False,
            "name": f"oxstudy:{cell.label}",
            "runtime_env": {"env_vars": worker_env(os.environ, self.runtime_env)["env_vars"]},
        }

    # ------------------------------------------------------------------ run
    def run(self, cells: list[Cell], store: Store, *, on_event: EventSink | None = None) -> list[CellOutcome]:
        import ray

        from oxstudy import zoo

        emit = on_event or (lambda event: None)
        book = AttemptBook(store, emit, retries=self.retries)
        if not cells:
            return []
        started_here = self._connect()
        corpus_shas = zoo.corpus_sha_memo()
        # max_calls cannot go through .options(): a fresh worker process for every cell
        remote = ray.remote(max_calls=1, max_retries=0)(_ray_cell)
        max_parallel = self.max_parallel or max(c.execution.max_parallel for c in cells)
        queue: deque[tuple[Cell, int]] = deque((cell, 1) for cell in cells)
        inflight: dict[Any, Attempt] = {}

        def submit(cell: Cell, number: int) -> None:
            attempt = book.new_attempt(cell, number)
            threads = max(1, int(self.cpus_per_cell))
            attempt.handle = remote.options(**self.task_options(cell)).remote(
                cell.model_dump(mode="json"), str(store.root.resolve()), number, threads, corpus_shas
            )
            inflight[attempt.handle] = attempt
            emit(RunnerEvent("start", cell.run_id, {"attempt": number, "gpus": cell.execution.gpus_per_run}))

        def settle(attempt: Attempt, crash_reason: str | None) -> None:
            del inflight[attempt.handle]
            if book.settle(attempt, crash_reason=crash_reason):
                queue.append((attempt.cell, attempt.attempt + 1))

        try:
            while queue or inflight:
                while queue and len(inflight) < max_parallel:
                    submit(*queue.popleft())
                ready, _ = ray.wait(list(inflight), num_returns=1, timeout=self.poll_s)
                for ref in ready:
                    attempt = inflight[ref]
                    try:
                        crash = unrecorded_reason(ray.get(ref))
                    except ray.exceptions.RayError as exc:
                        crash = _crash_reason(exc)
                    settle(attempt, crash)
                for ref, attempt in list(inflight.items()):
                    timeout = attempt.watch(store, emit, self.timeout_s)
                    if timeout is not None:
                        ray.cancel(ref, force=True)
                        # wait for the worker to be gone before judging what it left behind
                        ray.wait([ref], timeout=30)
                        settle(attempt, f"timeout after {timeout:.0f} s (task cancelled)")
        finally:
            for ref in inflight:  # interrupted: leave no task running behind us
                ray.cancel(ref, force=True)
            if started_here:
                ray.shutdown()
        return book.ordered(cells)
