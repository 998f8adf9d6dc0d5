"""The results store: atomic records (tested by killing writers), checksums, tidy tables."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from oxstudy.errors import InputError
from oxstudy.store import ITEM_COLUMNS, RUN_COLUMNS, Store, load_study, provenance


def make_record(run_id: str, *, algorithm: str = "DPO", seed: int = 1, value: float = 0.5, status: str = "done",
                n_items: int = 4, pad: int = 0) -> dict:
    return {
        "run_id": run_id,
        "study": "s",
        "cell": {
            "model": {"id": "tiny", "params": 1000, "family": "zoo", "finetune": "full"},
            "algorithm": {"id": algorithm, "method": algorithm.lower(), "hyperparameters": {}},
            "seed": seed,
        },
        "status": status,
        "error": None if status == "done" else {"reason": "non-finite loss", "log_tail": "..."},
        "attempts": 1,
        "timings": {"total_s": 1.0},
        "metrics": {
            "arith": {"task": "oxs_arith", "metric": "exact_match,strict-match", "value": value, "stderr": 0.1,
                      "n": n_items, "num_fewshot": 0, "in_domain": True}
        } if status == "done" else {},
        "items": {
            "arith": {"doc_id": list(range(n_items)), "doc_hash": [f"h{i}" for i in range(n_items)],
                      "prompt_hash": [f"p{i}" for i in range(n_items)], "score": [i % 2 for i in range(n_items)]}
        } if status == "done" else {},
        "curves": {"step": [1], "loss": [0.7]},
        "provenance": {"padding": "x" * pad},
    }


def test_round_trip_and_tidy_tables(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.write_record(make_record("a" * 16, algorithm="DPO", seed=1, value=0.4))
    store.write_record(make_record("b" * 16, algorithm="IPO", seed=1, value=0.6))
    store.write_record(make_record("c" * 16, algorithm="IPO", seed=2, status="failed"))
    tables = load_study(tmp_path)
    assert list(tables.runs.columns) == RUN_COLUMNS and list(tables.items.columns) == ITEM_COLUMNS
    assert sorted(tables.runs["value"]) == [0.4, 0.6]
    assert len(tables.items) == 8 and set(tables.items["algorithm"]) == {"DPO", "IPO"}
    assert tables.failed.to_dict("records") == [
        {"run_id": "c" * 16, "model": "tiny", "algorithm": "IPO", "seed": 2, "reason": "non-finite loss"}
    ]
    assert store.statuses()[0] == {"a" * 16: "done", "b" * 16: "done", "c" * 16: "failed"}


def test_corrupt_records_are_reported_and_treated_as_missing(tmp_path: Path) -> None:
    store = Store(tmp_path)
    good = store.write_record(make_record("a" * 16))
    truncated = store.write_record(make_record("b" * 16))
    truncated.write_text(truncated.read_text()[:200])
    edited = store.write_record(make_record("c" * 16, value=0.1))
    edited.write_text(edited.read_text().replace('"value": 0.1', '"value": 0.9'))
    tables = load_study(tmp_path)
    assert list(tables.runs["run_id"]) == ["a" * 16]
    assert len(tables.corrupt) == 2
    assert any("unreadable" in c and "b" * 16 in c for c in tables.corrupt)
    assert any("checksum mismatch" in c and "c" * 16 in c for c in tables.corrupt)
    statuses, corrupt = store.statuses()
    assert statuses == {"a" * 16: "done"} and len(corrupt) == 2
    assert good.exists()


def test_labels_come_from_the_saved_plan(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.write_record(make_record("a" * 16, algorithm="DPO"))
    store.save_plan({"name": "s"}, [
        {"run_id": "a" * 16, "model": "tiny", "algorithm": "DPO-renamed", "seed": 1},
        {"run_id": "d" * 16, "model": "tiny", "algorithm": "IPO", "seed": 1},
    ])
    tables = load_study(tmp_path)
    assert list(tables.runs["algorithm"]) == ["DPO-renamed"]
    assert [m["run_id"] for m in tables.missing] == ["d" * 16]
    assert tables.spec == {"name": "s"}


def test_not_a_study_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a study directory"):
        load_study(tmp_path)


WRITER = """
import sys
from oxstudy.store import Store
sys.path.insert(0, {tests!r})
from test_store import make_record
store = Store({root!r})
i = 0
while True:
    i += 1
    store.write_record(make_record("a" * 16, value=i / 1e6, pad=8_000_000))
    print(i, flush=True)
"""


@pytest.mark.parametrize("delay", [0.05, 0.2, 0.5])
def test_killing_a_writer_mid_write_never_leaves_a_half_record(tmp_path: Path, delay: float) -> None:
    store = Store(tmp_path)
    store.write_record(make_record("a" * 16, value=0.0, pad=8_000_000))
    code = WRITER.format(tests=str(Path(__file__).parent), root=str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    time.sleep(1.0 + delay)  # past interpreter start-up, into the write loop
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    record = Store.read_record(store.record_path("a" * 16))  # raises if half-written
    assert record["run_id"] == "a" * 16
    leftovers = list(store.runs_dir.glob(".*.tmp"))
    removed = store.clean_partial()
    assert set(removed) == set(leftovers)
    assert not list(store.runs_dir.glob(".*.tmp"))
    assert load_study(tmp_path).corrupt == []


def test_provenance_has_versions_without_importing_torch() -> None:
    code = "import sys, json; from oxstudy.store import provenance; p = provenance(); " \
           "print(json.dumps([p['torch'], p['trl'], p['lm_eval'], 'torch' in sys.modules]))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    torch_version, trl_version, lm_eval_version, imported = json.loads(out)
    assert torch_version.startswith("2.") and trl_version and lm_eval_version and imported is False
    assert provenance(device="cpu")["device"] == "cpu" and "host" in provenance()


def test_record_json_is_plain_and_checksummed(tmp_path: Path) -> None:
    path = Store(tmp_path).write_record(make_record("a" * 16))
    record = json.loads(path.read_text())
    assert record["schema"] == "oxstudy.record/1" and record["checksum"].startswith("sha256:")
    assert os.stat(path).st_size > 0


PAUSED_WRITER = """
import os, sys, time
from oxstudy.store import Store
sys.path.insert(0, {tests!r})
from test_store import make_record
real_fsync = os.fsync
def slow_fsync(fd):
    print("writing", flush=True)  # the new record's bytes are in the temporary file now
    time.sleep(60)
    real_fsync(fd)
os.fsync = slow_fsync
Store({root!r}).write_record(make_record("a" * 16, value=0.75))
"""


def test_writer_killed_inside_the_write_keeps_the_old_record(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.write_record(make_record("a" * 16, value=0.25))
    code = PAUSED_WRITER.format(tests=str(Path(__file__).parent), root=str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    assert len(list(store.runs_dir.glob(".*.tmp"))) == 1  # caught mid-write
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert load_study(tmp_path).runs["value"].tolist() == [0.25]
    assert len(store.clean_partial()) == 1
