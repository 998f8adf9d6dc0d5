"""One ``oxstudy run`` per study directory at a time.

``<study>/.oxstudy.lock`` is created atomically (``O_CREAT | O_EXCL``, which is atomic on
local filesystems and on NFSv3+) and holds JSON naming its holder::

    {"pid": 4242, "host": "node17", "started_at": "2026-01-01T12:00:00+00:00",
     "command": "oxstudy run specs/quickstart.yaml", "token": "...", "pid_start": "..."}

A second run finds the file and is refused with one line naming the holder. A lock whose
holder is gone is *stale* and is taken over with a warning - but only when that can be
known: the holder ran on this host and its pid is no longer alive (or the pid now belongs
to a different process: ``pid_start`` is the process's start time from ``/proc``, which
catches pid reuse). A lock from another host is never taken over automatically, because
no process on this machine can tell whether that run is still alive; the message says to
pass ``--break-lock`` once you know it is not.

Taking over is itself guarded: two runs that find the same stale lock at once would
otherwise both delete it and both create a new one. The takeover happens under a second,
short-lived ``.oxstudy.lock.takeover`` file (also ``O_EXCL``), and the stale lock is
re-read under it, so exactly one of them wins.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import sys
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from oxstudy.errors import OxstudyError

LOCK_NAME = ".oxstudy.lock"
#: a lock file that is still empty or unparsable after this long was left by a writer that died
UNREADABLE_GRACE_S = 10.0
#: a takeover guard older than this was left by a process killed mid-takeover
TAKEOVER_GRACE_S = 30.0

logger = logging.getLogger("oxstudy.lock")


class StudyLocked(OxstudyError):
    """The study directory is locked by another ``oxstudy run``."""


def process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), to detect pid reuse."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may contain spaces and parentheses: split after the last ')'
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else None


_process_start = process_start  # the former private name


def pid_alive(pid: int, pid_start: str | None = None) -> bool:
    """Whether ``pid`` is a live process on this host (and the same one, when ``pid_start`` is known).

    A zombie (killed, never reaped by its parent) is dead: it holds nothing and will never
    act again, although ``os.kill(pid, 0)`` still succeeds on it. The study lock and the
    cell processes watching their driver both decide liveness here, so they always agree.
    """
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        pass
    if pid_start is not None:
        current = process_start(pid)
        if current is not None and current != pid_start:
            return False  # the pid was reused by another process
    try:  # a zombie (killed, not yet reaped by its parent) holds nothing
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if state == "Z":
            return False
    except (OSError, IndexError):
        pass
    return True


def _describe(holder: dict[str, Any]) -> str:
    command = f", command: {holder['command']}" if holder.get("command") else ""
    return (
        f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')} "
        f"since {holder.get('started_at', '?')}{command}"
    )


class StudyLock:
    """Context manager holding ``<study_dir>/.oxstudy.lock`` for the duration of a run.

    ``command``: recorded for the message a second run shows (default: this process's argv).
    ``break_lock``: remove any existing lock first, whoever holds it (``--break-lock``).
    ``on_warning``: called with a one-line message on a takeover (default: the
    ``oxstudy.lock`` logger). After ``acquire``, ``took_over`` is the stale holder's JSON
    (or None).
    """

    def __init__(
        self,
        study_dir: str | Path,
        *,
        command: str | None = None,
        break_lock: bool = False,
        on_warning: Callable[[str], None] | None = None,
    ) -> None:
        self.study_dir = Path(study_dir)
        self.path = self.study_dir / LOCK_NAME
        self.command = command if command is not None else " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])
        self.break_lock = break_lock
        self.on_warning = on_warning or logger.warning
        self.took_over: dict[str, Any] | None = None
        self._token: str | None = None

    # ------------------------------------------------------------------ public
    def __enter__(self) -> StudyLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    @property
    def held(self) -> bool:
        return self._token is not None

    def acquire(self) -> None:
        if self.held:
            raise RuntimeError(f"{self.path} is already held by this StudyLock")
        self.study_dir.mkdir(parents=True, exist_ok=True)
        if self.break_lock:
            holder = self.read_holder()
            if self.path.exists():
                self._remove_stale(holder, reason="--break-lock")
                self.took_over = holder or {}
        for _ in range(50):  # only loops when the lock vanished or was taken over between steps
            if self._try_create():
                return
            holder = self.read_holder()
            if holder is None and not self.path.exists():
                continue  # released between our attempt and our read
            stale_reason = self._stale_reason(holder)
            if stale_reason is None:
                raise self._refusal(holder)
            if self._take_over(holder, stale_reason):
                return
        raise StudyLocked(f"{self.path}: could not acquire the study lock (it keeps changing hands)")

    def release(self) -> None:
        """Remove the lock if it is still ours (someone may have broken it meanwhile)."""
        if self._token is None:
            return
        holder = self.read_holder()
        if holder is not None and holder.get("token") == self._token:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
        self._token = None

    def read_holder(self) -> dict[str, Any] | None:
        """The lock's JSON, or None if there is no lock or it cannot be parsed."""
        try:
            holder = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return None
        return holder if isinstance(holder, dict) else None

    # ------------------------------------------------------------------ internals
    def _payload(self) -> dict[str, Any]:
        pid = os.getpid()
        return {
            "pid": pid,
            "host": socket.gethostname(),
            "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "command": self.command,
            "token": uuid.uuid4().hex,
            "pid_start": process_start(pid),
        }

    def _try_create(self) -> bool:
        payload = self._payload()
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        try:
            os.write(fd, json.dumps(payload, indent=1).encode())
            os.fsync(fd)
        except OSError as exc:  # a full disk: leave no empty lock behind, and name the file
            os.close(fd)
            with contextlib.suppress(OSError):
                self.path.unlink()
            raise OSError(exc.errno, exc.strerror, str(self.path)) from exc
        os.close(fd)
        self._token = payload["token"]
        return True

    def _stale_reason(self, holder: dict[str, Any] | None) -> str | None:
        """Why the existing lock can be taken over, or None if it must be respected."""
        if holder is None:
            try:
                age = time.time() - self.path.stat().st_mtime
            except FileNotFoundError:
                return "it vanished"
            # an empty file is a holder between create and write; give it time
            return f"unreadable lock file {age:.0f}s old" if age > UNREADABLE_GRACE_S else None
        if holder.get("host") != socket.gethostname():
            return None  # cannot know whether a process on another host is alive
        pid = holder.get("pid")
        if not isinstance(pid, int):
            return "the lock names no pid"
        if pid_alive(pid, holder.get("pid_start")):
            return None
        return f"pid {pid} is no longer running"

    def _refusal(self, holder: dict[str, Any] | None) -> StudyLocked:
        where = f"{self.study_dir} is locked by another oxstudy run"
        if holder is None:
            return StudyLocked(f"{where} (its lock {self.path} is being written); try again in a few seconds")
        if holder.get("host") == socket.gethostname():
            return StudyLocked(f"{where}: {_describe(holder)}; wait for it to finish or stop it")
        return StudyLocked(
            f"{where}: {_describe(holder)}; if that run is no longer alive, "
            f"rerun with --break-lock (or delete {self.path})"
        )

    def _take_over(self, holder: dict[str, Any] | None, reason: str) -> bool:
        guard = self.path.with_name(LOCK_NAME + ".takeover")
        try:
            fd = os.open(guard, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                if time.time() - guard.stat().st_mtime > TAKEOVER_GRACE_S:
                    guard.unlink()  # left by a process killed mid-takeover
            except FileNotFoundError:
                pass
            time.sleep(0.05)
            return False  # another process is taking over: look again
        os.close(fd)
        try:
            current = self.read_holder()
            if current != holder:
                return False  # the lock changed hands meanwhile: look again
            # Replace the stale lock in one rename: the lock file never disappears, so a
            # process that is not taking over cannot create it in between and win too.
            payload = self._payload()
            tmp = self.path.with_name(f"{LOCK_NAME}.{payload['token']}.tmp")
            tmp.write_text(json.dumps(payload, indent=1), encoding="utf-8")
            os.replace(tmp, self.path)
            self._token = payload["token"]
            self.took_over = holder or {}
            described = _describe(holder) if holder else "an unreadable lock"
            self.on_warning(f"{self.study_dir}: took over the study lock of {described} (stale: {reason})")
            return True
        finally:
            with contextlib.suppress(FileNotFoundError):
                guard.unlink()

    def _remove_stale(self, holder: dict[str, Any] | None, reason: str) -> None:
        described = _describe(holder) if holder else "an unreadable lock"
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self.on_warning(f"{self.study_dir}: took over the study lock of {described} ({reason})")
