"""The study lock, exercised across real processes: refusal, stale takeover, no double takeover."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from oxstudy.errors import OxstudyError
from runners.lock import LOCK_NAME, StudyLock, pid_alive

ROOT = Path(__file__).resolve().parents[1]

# A holder process: takes the lock, says so, then sleeps until killed (or for `hold` seconds).
HOLDER = """
import sys, time
sys.path.insert(0, {root!r})
from runners.lock import StudyLock
from oxstudy.errors import OxstudyError
hold = float(sys.argv[2])
try:
    with StudyLock(sys.argv[1], command="oxstudy run holder.yaml", on_warning=lambda m: print("WARN", m, flush=True)):
        print("LOCKED", flush=True)
        time.sleep(hold)
    print("RELEASED", flush=True)
except OxstudyError as exc:
    print("REFUSED", exc, flush=True)
"""


def _holder(study: Path, hold: float = 60.0) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER.format(root=str(ROOT)), str(study), str(hold)],
        stdout=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline()
    assert line.startswith("LOCKED"), line
    return proc


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_lock_file_contents_and_release(tmp_path: Path) -> None:
    study = tmp_path / "study"
    with StudyLock(study, command="oxstudy run x.yaml") as lock:
        holder = json.loads((study / LOCK_NAME).read_text())
        assert holder["pid"] == os.getpid()
        assert holder["host"] == socket.gethostname()
        assert holder["command"] == "oxstudy run x.yaml"
        assert holder["started_at"].endswith("+00:00")
        assert lock.held and lock.took_over is None
    assert not (study / LOCK_NAME).exists()
    # reusable once released
    with StudyLock(study):
        pass


def test_second_run_is_refused_across_processes(tmp_path: Path) -> None:
    study = tmp_path / "study"
    proc = _holder(study)
    try:
        with pytest.raises(OxstudyError) as info, StudyLock(study):
            pass
        message = str(info.value)
        assert "\n" not in message
        assert f"pid {proc.pid} on host {socket.gethostname()} since " in message
        assert "oxstudy run holder.yaml" in message
        # the refused attempt left the holder's lock alone
        assert json.loads((study / LOCK_NAME).read_text())["pid"] == proc.pid
        # and a second process is refused the same way
        second = subprocess.run(
            [sys.executable, "-c", HOLDER.format(root=str(ROOT)), str(study), "0"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.stdout.startswith("REFUSED") and str(proc.pid) in second.stdout
    finally:
        proc.kill()
        proc.wait()


def test_clean_exit_releases_for_the_next_process(tmp_path: Path) -> None:
    study = tmp_path / "study"
    proc = _holder(study, hold=0.2)
    assert proc.stdout.readline().startswith("RELEASED")
    proc.wait()
    assert not (study / LOCK_NAME).exists()


def test_stale_lock_of_sigkilled_holder_is_taken_over(tmp_path: Path) -> None:
    study = tmp_path / "study"
    proc = _holder(study)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (study / LOCK_NAME).exists()  # SIGKILL leaves the lock behind
    assert not pid_alive(proc.pid)
    warnings: list[str] = []
    with StudyLock(study, on_warning=warnings.append) as lock:
        assert lock.took_over is not None and lock.took_over["pid"] == proc.pid
        assert json.loads((study / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert len(warnings) == 1
    assert f"pid {proc.pid}" in warnings[0] and "no longer running" in warnings[0]


def test_reused_pid_is_not_mistaken_for_the_holder(tmp_path: Path) -> None:
    """A lock naming a live pid whose process started at another time (pid reuse) is stale."""
    study = tmp_path / "study"
    study.mkdir()
    me = os.getpid()
    lock = {"pid": me, "host": socket.gethostname(), "started_at": "x", "command": "c", "pid_start": "1"}
    (study / LOCK_NAME).write_text(json.dumps(lock))
    if StudyLock(study)._payload()["pid_start"] is None:
        pytest.skip("no /proc: process start times unavailable")
    with StudyLock(study, on_warning=lambda m: None) as taken:
        assert taken.took_over["pid_start"] == "1"


def test_lock_from_another_host_is_never_taken_over(tmp_path: Path) -> None:
    study = tmp_path / "study"
    study.mkdir()
    foreign = {
        "pid": _dead_pid(),
        "host": "gpu-node-17",
        "started_at": "2026-01-01T00:00:00+00:00",
        "command": "c",
    }
    (study / LOCK_NAME).write_text(json.dumps(foreign))
    with (
        pytest.raises(OxstudyError, match=r"host gpu-node-17 since 2026-01-01.*--break-lock"),
        StudyLock(study),
    ):
        pass
    assert json.loads((study / LOCK_NAME).read_text())["host"] == "gpu-node-17"
    warnings: list[str] = []
    with StudyLock(study, break_lock=True, on_warning=warnings.append) as lock:
        assert lock.took_over["host"] == "gpu-node-17"
    assert "--break-lock" in warnings[0]
    assert not (study / LOCK_NAME).exists()


def test_unreadable_lock_waits_then_counts_as_stale(tmp_path: Path) -> None:
    study = tmp_path / "study"
    study.mkdir()
    path = study / LOCK_NAME
    path.write_text("")  # a holder between O_EXCL create and its write
    with pytest.raises(OxstudyError, match="being written"), StudyLock(study):
        pass
    old = time.time() - 60
    os.utime(path, (old, old))  # ... whose writer died long ago
    with StudyLock(study, on_warning=lambda m: None) as lock:
        assert lock.took_over == {}


def test_racing_takeovers_of_one_stale_lock_have_one_winner(tmp_path: Path) -> None:
    study = tmp_path / "study"
    study.mkdir()
    stale = {"pid": _dead_pid(), "host": socket.gethostname(), "started_at": "x", "command": "dead"}
    (study / LOCK_NAME).write_text(json.dumps(stale))
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", HOLDER.format(root=str(ROOT)), str(study), "6"],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outputs = [proc.communicate(timeout=120)[0] for proc in procs]
    winners = [out for out in outputs if "LOCKED" in out]
    assert len(winners) == 1, outputs
    assert sum("REFUSED" in out for out in outputs) == 3, outputs
    assert "no longer running" in winners[0]
    assert not (study / LOCK_NAME).exists()


def test_release_does_not_remove_a_lock_that_was_broken_and_retaken(tmp_path: Path) -> None:
    study = tmp_path / "study"
    first = StudyLock(study)
    first.acquire()
    second = StudyLock(study, break_lock=True, on_warning=lambda m: None)
    second.acquire()
    first.release()  # must not delete the second holder's lock
    assert json.loads((study / LOCK_NAME).read_text())["token"] == second._token
    second.release()
    assert not (study / LOCK_NAME).exists()


# A parent that starts a lock holder and never waits on it: once killed, the holder is a zombie.
ZOMBIE_PARENT = """
import subprocess, sys, time
holder = subprocess.Popen([sys.executable, "-c", sys.argv[1], sys.argv[2], "600"], stdout=subprocess.PIPE, text=True)
assert holder.stdout.readline().startswith("LOCKED")
print(holder.pid, flush=True)
time.sleep(600)
"""


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to see a zombie")
def test_zombie_holder_is_dead_to_the_lock(tmp_path: Path) -> None:
    """os.kill(pid, 0) succeeds on a zombie; the lock (and the cells' driver watch, which uses the
    same pid_alive) must still see it as dead."""
    study = tmp_path / "study"
    parent = subprocess.Popen(
        [sys.executable, "-c", ZOMBIE_PARENT, HOLDER.format(root=str(ROOT)), str(study)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        holder = int(parent.stdout.readline())
        os.kill(holder, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while Path(f"/proc/{holder}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
            assert time.monotonic() < deadline, "the holder never became a zombie"
            time.sleep(0.05)
        os.kill(holder, 0)  # the kernel still answers for it...
        assert not pid_alive(holder)  # ...but it is dead
        with StudyLock(study, on_warning=lambda m: None) as lock:
            assert lock.took_over["pid"] == holder
    finally:
        parent.kill()
        parent.wait()
