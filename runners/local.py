"""The local backend: N worker processes on this machine, one fresh process per cell.

Each cell runs in its own process, so a crash, an out-of-memory kill or a leaked GPU
allocation ends that cell only. Processes come from a fork server that has already
imported torch, TRL, PEFT and lm-eval: a new cell process costs milliseconds instead of
the ~10 s those imports take, which matters when a study is hundreds of small cells.

On GPU machines every cell is pinned to its GPUs through CUDA_VISIBLE_DEVICES, and cells
needing several GPUs are packed by ``runners.scheduler.GpuScheduler`` (no head-of-line
blocking). On CPU the cores are divided between the workers.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from runners.base import CellOutcome, EventSink, Runner, RunnerEvent
from runners.lock import process_start

if TYPE_CHECKING:
    from oxstudy.plan import Cell
    from oxstudy.store import Store

#: Imported once by the fork server; every cell process starts with them loaded.
PRELOAD = ["oxstudy._preload"]
POLL_S = 0.2
#: how often a cell process checks that its driver is alive (the lock's stale check waits longer)
DRIVER_WATCH_S = 0.5


def _cell_process(cell: dict[str, Any], store_root: str, attempt: int, threads: int | None,
                  gpu_ids: list[int] | None, driver_pid: int, driver_start: str | None, report: Any,
                  corpus_shas: dict[str, str] | None = None) -> None:
    """Entry point of a cell process (runs in the fork server's child).

    ``report``: the write end of a pipe to the driver, for the one thing a record cannot
    carry: why no record could be written (a full or read-only store). ``corpus_shas``: the
    driver's zoo corpus hashes (``oxstudy.zoo.corpus_sha_memo``).
    """
    import sys
    import threading

    from runners.lock import pid_alive

    if gpu_ids is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, gpu_ids))

    def watch_driver() -> None:
        # If the driver dies (SIGKILL), stop: a resumed run will redo this cell, and an
        # orphan finishing later would only race with it. "Dies" is decided exactly as the
        # study lock decides it (a zombie driver is dead, a reused pid is not the driver):
        # a resumed run takes the lock over only when these processes have stopped.
        while True:
            time.sleep(DRIVER_WATCH_S)
            if not pid_alive(driver_pid, driver_start):
                os._exit(3)

    threading.Thread(target=watch_driver, daemon=True).start()
    from oxstudy.execute import execute_cell

    outcome = execute_cell(cell, store_root, attempt=attempt, threads=threads, corpus_shas=corpus_shas)
    try:
        report.send({k: outcome.get(k) for k in ("status", "reason", "failure_class", "recorded")})
        report.close()
    except OSError:
        pass
    sys.exit(0 if outcome["status"] == "done" else 1)


def _read_report(connection: Any) -> dict[str, Any] | None:
    """What the cell process sent before exiting (None if it died first)."""
    if connection is None:
        return None
    try:
        return connection.recv() if connection.poll() else None
    except (EOFError, OSError):
        return None
    finally:
        connection.close()


def _exit_reason(exitcode: int | None) -> str:
    import signal

    if exitcode is None:
        return "worker did not exit"
    if exitcode < 0:
        name = signal.Signals(-exitcode).name
        hint = " (out of memory?)" if -exitcode == signal.SIGKILL else ""
        return f"worker killed by {name}{hint}"
    return f"worker exited with code {exitcode} without writing a record"


@dataclass
class _Running:
    cell: Cell
    attempt: int
    process: Any
    started: float
    gpu_ids: list[int] | None = None
    report: Any = None  # the driver's end of the cell's report pipe


@dataclass
class LocalRunner(Runner):
    """Run cells in up to ``max_parallel`` processes on this machine.

    Attributes:
        max_parallel: concurrent cells (on GPU machines also bounded by free GPUs).
        retries: extra attempts for a failed cell.
        timeout_s: per-cell wall-clock limit; the process is killed and the cell recorded failed.
        gpus: GPU ids to schedule on; None detects them (CUDA_VISIBLE_DEVICES or nvidia-smi).
        threads: torch threads per cell on CPU; default cores / max_parallel.
    """

    max_parallel: int = 1
    retries: int = 1
    timeout_s: float | None = None
    gpus: list[int] | None = None
    threads: int | None = None
    name: str = field(default="local", init=False)

    def run(self, cells: list[Cell], store: Store, *, on_event: EventSink | None = None) -> list[CellOutcome]:
        from oxstudy import zoo

        emit = on_event or (lambda event: None)
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(PRELOAD)
        gpu_ids = self.gpus if self.gpus is not None else detect_gpus()
        needs_gpu = any(c.execution.gpus_per_run > 0 for c in cells)
        scheduler = None
        if needs_gpu and gpu_ids:
            from runners.scheduler import GpuScheduler

            scheduler = GpuScheduler(len(gpu_ids))
        threads = self.threads or max(1, (os.cpu_count() or 1) // max(1, self.max_parallel))

        pending: deque[tuple[Cell, int]] = deque((cell, 1) for cell in cells)
        by_id = {cell.run_id: cell for cell in cells}
        if scheduler is not None:
            from oxstudy.plan import cell_flops

            for cell in cells:
                scheduler.submit(cell.run_id, max(1, cell.execution.gpus_per_run), cell_flops(cell) or 1.0)
        attempts: dict[str, int] = {cell.run_id: 1 for cell in cells}
        running: dict[str, _Running] = {}
        outcomes: dict[str, CellOutcome] = {}

        driver_start = process_start(os.getpid())

        def start(cell: Cell, attempt: int, gpus: list[int] | None) -> None:
            receive, send = context.Pipe(duplex=False)
            process = context.Process(
                target=_cell_process,
                args=(cell.model_dump(mode="json"), str(store.root), attempt, None if gpus else threads, gpus,
                      os.getpid(), driver_start, send, zoo.corpus_sha_memo()),
                name=f"oxstudy-{cell.run_id}",
            )
            process.start()
            send.close()
            running[cell.run_id] = _Running(cell, attempt, process, time.monotonic(), gpus, receive)
            emit(RunnerEvent("start", cell.run_id, {"attempt": attempt, "gpus": gpus}))

        def launch() -> None:
            if scheduler is None:
                while pending and len(running) < self.max_parallel:
                    cell, attempt = pending.popleft()
                    start(cell, attempt, None)
                return
            free_slots = self.max_parallel - len(running)
            for run_id, slots in scheduler.assign(time.monotonic(), max_starts=free_slots):
                start(by_id[run_id], attempts[run_id], [gpu_ids[i] for i in slots])

        def finish(run: _Running, timed_out: bool) -> None:
            from oxstudy.execute import DETERMINISTIC, TRANSIENT, failure_class_of, log_tail, record_failure
            from oxstudy.store import CorruptRecord, StoreWriteError, describe_os_error, is_storage_error

            run_id = run.cell.run_id
            del running[run_id]
            if scheduler is not None:
                scheduler.release(run_id)
            wall = time.monotonic() - run.started
            report = _read_report(run.report)
            # Only a record written by this attempt counts: a crash after an earlier failed
            # attempt must not be mistaken for that attempt's outcome.
            status, reason, failure_class = None, None, TRANSIENT
            try:
                record = store.read_record(store.record_path(run_id))
                if record.get("attempts") == run.attempt:
                    status = record.get("status", "failed")
                    reason = (record.get("error") or {}).get("reason")
                    failure_class = failure_class_of(record)
            except (CorruptRecord, FileNotFoundError):
                pass
            if timed_out or status is None:
                status = "failed"
                if timed_out:
                    reason, kind = f"timeout after {self.timeout_s:.0f} s", "timeout"
                elif report and report.get("reason"):  # the worker knows why it wrote nothing
                    reason, kind = report["reason"], "storage"
                    failure_class = report.get("failure_class") or DETERMINISTIC
                else:
                    reason, kind = _exit_reason(run.process.exitcode), "killed"
                try:
                    record_failure(store, run.cell, attempt=run.attempt, reason=reason, kind=kind,
                                   failure_class=failure_class, log_tail=log_tail(store.cell_dir(run_id) / "log.txt"))
                except OSError as exc:
                    if not is_storage_error(exc):
                        raise
                    # Nothing can be recorded: stop the study with the real cause, not a traceback.
                    cause = reason if kind == "storage" else describe_os_error(exc)
                    raise StoreWriteError(f"{cause} (cell {run.cell.label}; the study was stopped)") from None
            if status == "done":
                outcomes[run_id] = CellOutcome(run_id, "done", run.attempt, None, wall)
                emit(RunnerEvent("done", run_id, {"attempt": run.attempt, "wall_s": wall}))
                return
            if run.attempt <= self.retries and failure_class != DETERMINISTIC:
                attempts[run_id] = run.attempt + 1
                emit(RunnerEvent("retry", run_id, {"attempt": run.attempt, "reason": reason}))
                if scheduler is not None:
                    from oxstudy.plan import cell_flops

                    scheduler.submit(run_id, max(1, run.cell.execution.gpus_per_run), cell_flops(run.cell) or 1.0)
                else:
                    pending.append((run.cell, run.attempt + 1))
                return
            outcomes[run_id] = CellOutcome(run_id, "failed", run.attempt, reason, wall)
            emit(RunnerEvent("failed", run_id, {"attempt": run.attempt, "reason": reason,
                                                "failure_class": failure_class}))

        try:
            launch()
            while running:
                time.sleep(POLL_S)
                for run_id, run in list(running.items()):
                    timed_out = (
                        self.timeout_s is not None
                        and run.process.is_alive()
                        and time.monotonic() - run.started > self.timeout_s
                    )
                    if timed_out:
                        run.process.kill()
                        run.process.join(5)
                    if not run.process.is_alive():
                        run.process.join()
                        finish(run, timed_out)
                    else:
                        emit(RunnerEvent("phase", run_id, {}))
                launch()
        finally:
            for run in running.values():  # interrupted: leave no orphan behind
                run.process.kill()
                run.process.join(5)
                if run.report is not None:
                    run.report.close()
        return [outcomes[c.run_id] for c in cells if c.run_id in outcomes]


def detect_gpus() -> list[int]:
    """GPU ids visible to this process, without initialising CUDA in the driver."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [int(x) for x in visible.split(",") if x.strip().isdigit()]
    import shutil
    import subprocess

    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return list(range(sum(1 for line in out.splitlines() if line.startswith("GPU "))))
