"""Attempt bookkeeping shared by the remote backends (Ray, SLURM).

A remote worker writes its own record through ``oxstudy.execute.execute_cell``; the driver
only has to decide, once an attempt has ended, what the store now says about it:

- the worker wrote a record for *this* attempt: trust it (done or failed);
- it did not (crash, out-of-memory kill, timeout, cancelled job): the driver writes the
  failed record itself, with the reason it knows and the tail of the cell's log;
- then a failed cell is retried while attempts remain, and events go to the driver's sink.

"A record for this attempt" is decided by the record file's identity (inode and mtime):
records are replaced by atomic rename, so a record written by this attempt is a new file,
and an older record of the same run (a failed first attempt, or an earlier study run)
is never mistaken for the outcome of the attempt that crashed.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from runners.base import CellOutcome, EventSink, RunnerEvent

if TYPE_CHECKING:
    from oxstudy.plan import Cell
    from oxstudy.store import Store

FileSignature = tuple[int, int] | None
#: how ``describe_os_error`` starts for a store that refuses writes (strerror of the STORAGE_ERRNOS)
STORAGE_REASONS = (
    "No space left on device",
    "Read-only file system",
    "Permission denied",
    "Operation not permitted",
    "Disk quota exceeded",
    "File too large",
)


def file_signature(path: os.PathLike[str] | str) -> FileSignature:
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_mtime_ns


def short_reason(exc: BaseException, limit: int = 300) -> str:
    """``ExceptionType: first meaningful line`` of an error raised by an engine."""
    cause = getattr(exc, "cause", None)  # RayTaskError wraps the task's own exception
    target = cause if isinstance(cause, BaseException) else exc
    lines = [line.strip() for line in str(target).splitlines() if line.strip()]
    text = lines[0] if lines else ""
    return f"{type(target).__name__}: {text}"[:limit] if text else type(target).__name__


def unrecorded_reason(outcome: Any) -> str | None:
    """The reason a worker's ``execute_cell`` outcome gives for writing no record (a full or
    read-only store), or None."""
    if isinstance(outcome, dict) and outcome.get("recorded") is False:
        return outcome.get("reason")
    return None


@dataclass
class Attempt:
    """One submission of one cell."""

    cell: Cell
    attempt: int
    submitted_wall: float = field(default_factory=time.time)
    submitted: float = field(default_factory=time.monotonic)
    running_since: float | None = None  # monotonic; the cell's start, from its progress file
    record_before: FileSignature = None
    handle: Any = None  # the engine's reference (Ray ObjectRef, submitit Job)
    last_progress: dict[str, Any] | None = None

    @property
    def run_id(self) -> str:
        return self.cell.run_id

    def poll_progress(self, store: Store) -> dict[str, Any] | None:
        """The cell's progress if it changed since the last poll (marks the attempt running)."""
        from oxstudy.execute import read_progress

        progress = read_progress(store, self.run_id)
        if progress is None or progress.get("updated_at", 0) < self.submitted_wall - 1.0:
            return None  # absent, or left by an earlier attempt
        if self.running_since is None:
            # From the cell's own start (``started_at``), not from when a poll first saw it: a
            # slow poll (a loaded driver, SLURM's 10 s) must not give the cell extra time. Bounded
            # by the submission, so another node's clock cannot make it older than that.
            now = time.monotonic()
            started = progress.get("started_at")
            elapsed = time.time() - started if isinstance(started, int | float) else 0.0
            self.running_since = now - min(max(elapsed, 0.0), now - self.submitted)
        if progress == self.last_progress:
            return None
        self.last_progress = progress
        return progress

    def timed_out(self, timeout_s: float | None) -> bool:
        """Past the limit, counted from when the cell started running (not from queueing)."""
        return (
            timeout_s is not None
            and self.running_since is not None
            and (time.monotonic() - self.running_since > timeout_s)
        )

    def watch(self, store: Store, emit: EventSink, runner_timeout_s: float | None) -> float | None:
        """One poll of a running attempt: emits its progress as a ``phase`` event when it changed,
        and returns its time limit (the runner's, else the cell's ``execution.timeout_s``) once it
        is past it, else None."""
        progress = self.poll_progress(store)
        if progress is not None:
            emit(RunnerEvent("phase", self.run_id, progress))
        timeout = runner_timeout_s if runner_timeout_s is not None else self.cell.execution.timeout_s
        return timeout if self.timed_out(timeout) else None


@dataclass
class AttemptBook:
    """Turns ended attempts into outcomes, failed records, retries and events."""

    store: Store
    emit: EventSink
    retries: int | None = None  # None: each cell's execution.retries
    outcomes: dict[str, CellOutcome] = field(default_factory=dict)

    def new_attempt(self, cell: Cell, attempt: int) -> Attempt:
        return Attempt(cell, attempt, record_before=file_signature(self.store.record_path(cell.run_id)))

    def max_retries(self, cell: Cell) -> int:
        return cell.execution.retries if self.retries is None else self.retries

    def recorded(self, attempt: Attempt) -> tuple[str | None, str | None, str | None]:
        """(status, reason, failure_class) of a record this attempt wrote, or (None, None, None)."""
        from oxstudy.execute import failure_class_of
        from oxstudy.store import CorruptRecord

        path = self.store.record_path(attempt.run_id)
        if file_signature(path) == attempt.record_before:
            return None, None, None
        try:
            record = self.store.read_record(path)
        except (CorruptRecord, FileNotFoundError):
            return None, None, None
        if record.get("attempts") != attempt.attempt:
            return None, None, None
        status = record.get("status", "failed")
        return (
            status,
            (record.get("error") or {}).get("reason"),
            failure_class_of(record) if status != "done" else None,
        )

    def settle(self, attempt: Attempt, *, crash_reason: str | None = None) -> bool:
        """Record the end of ``attempt``; returns True when the cell should be tried again.

        ``crash_reason``: what the engine reported when the worker wrote nothing (killed,
        timed out, cancelled). Ignored if the worker did write a record for this attempt.
        """
        from oxstudy.execute import DETERMINISTIC, LOG_NAME, TRANSIENT, log_tail, record_failure
        from oxstudy.store import StoreWriteError, describe_os_error, is_storage_error

        cell = attempt.cell
        wall = time.monotonic() - attempt.submitted
        status, reason, failure_class = self.recorded(attempt)
        if status is None:
            reason = crash_reason or "the worker ended without writing a record"
            storage = reason.startswith(STORAGE_REASONS)
            failure_class = DETERMINISTIC if storage else TRANSIENT
            try:
                record_failure(
                    self.store,
                    cell,
                    attempt=attempt.attempt,
                    reason=reason,
                    log_tail=log_tail(self.store.cell_dir(cell.run_id) / LOG_NAME),
                    kind="storage" if storage else "killed",
                    failure_class=failure_class,
                )
            except OSError as exc:
                if not is_storage_error(exc):
                    raise
                cause = reason if storage else describe_os_error(exc)
                raise StoreWriteError(f"{cause} (cell {cell.label}; the study was stopped)") from None
            status = "failed"
        detail: dict[str, Any] = {"attempt": attempt.attempt, "wall_s": round(wall, 3)}
        if status == "done":
            self.outcomes[cell.run_id] = CellOutcome(cell.run_id, "done", attempt.attempt, None, wall)
            self.emit(RunnerEvent("done", cell.run_id, detail))
            return False
        detail["reason"] = reason
        # a deterministic failure (bad settings, unknown task or metric, NaN loss) would only repeat
        if attempt.attempt <= self.max_retries(cell) and failure_class != DETERMINISTIC:
            self.emit(RunnerEvent("retry", cell.run_id, detail))
            return True
        self.outcomes[cell.run_id] = CellOutcome(cell.run_id, "failed", attempt.attempt, reason, wall)
        self.emit(RunnerEvent("failed", cell.run_id, detail))
        return False

    def ordered(self, cells: list[Cell]) -> list[CellOutcome]:
        return [self.outcomes[c.run_id] for c in cells if c.run_id in self.outcomes]
