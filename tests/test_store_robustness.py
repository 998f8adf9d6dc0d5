"""Malformed run records (valid checksum, wrong shape) are left out as corrupt, alike in every command.

Each case writes a small study (3 algorithms x 3 seeds, one benchmark) with ``Store.write_record``,
then rewrites one record through a mutation and recomputes its checksum, as an edit by hand or
a writer of another version would. The loader must name the file and the field, and every
command (analyze, status, plan, verify, report) must run on without a traceback.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from test_report import run_cli
from test_store import make_record

from oxstudy.store import Store, load_study, record_checksum

ALGORITHMS = ("DPO", "IPO", "SFT")
SEEDS = (0, 1, 2)


def write_study(root: Path) -> Store:
    store = Store(root)
    run = 0
    for algorithm in ALGORITHMS:
        for seed in SEEDS:
            run += 1
            store.write_record(
                make_record(
                    f"{run:016x}",
                    algorithm=algorithm,
                    seed=seed,
                    value=0.3 + 0.1 * ALGORITHMS.index(algorithm) + 0.01 * seed,
                )
            )
    return store


def rewrite(store: Store, run_id: str, mutate: Any) -> Path:
    """Apply ``mutate(record)`` and write the record back with a fresh, valid checksum."""
    path = store.record_path(run_id)
    record = json.loads(path.read_text())
    mutate(record)
    record["checksum"] = record_checksum(record)
    path.write_text(json.dumps(record, allow_nan=True))
    return path


TARGET = f"{1:016x}"  # DPO seed 0


def _set(path: str, value: Any):
    def mutate(record: dict[str, Any]) -> None:
        keys = path.split(".")
        node = record
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value

    return mutate


#: (mutation, the field the warning must name): issue items 1, 3, 4 and 5
MALFORMED = [
    (_set("metrics.arith.value", math.nan), "metrics.arith.value"),
    (_set("metrics.arith.value", None), "metrics.arith.value"),
    (_set("metrics.arith.value", "abc"), "metrics.arith.value"),
    (_set("metrics.arith", "oops"), "metrics.arith"),
    (_set("metrics", [1, 2]), "metrics"),
    (_set("cell", "x"), "cell"),
    (_set("items", [1]), "items"),
    (_set("items.arith.score", [1, 2]), "items.arith.doc_id"),
    (_set("params", "abc"), "params"),
    (_set("cell.seed", None), "cell.seed"),
    (_set("schema", "oxstudy.run/99"), "schema"),
    (_set("status", "weird"), "status"),
]
IDS = [
    "nan-value",
    "null-value",
    "str-value",
    "str-metric",
    "list-metrics",
    "str-cell",
    "list-items",
    "short-scores",
    "str-params",
    "null-seed",
    "schema-99",
    "weird-status",
]


@pytest.mark.parametrize(("mutate", "field"), MALFORMED, ids=IDS)
def test_a_malformed_record_is_left_out_as_corrupt_naming_file_and_field(
    tmp_path: Path, mutate, field
) -> None:
    store = write_study(tmp_path)
    path = rewrite(store, TARGET, mutate)
    tables = load_study(tmp_path)
    assert len(tables.corrupt) == 1 and str(path) in tables.corrupt[0] and f"{field}:" in tables.corrupt[0]
    assert TARGET not in set(tables.runs["run_id"]) and TARGET not in set(tables.failed["run_id"])
    assert len(tables.runs) == 8 and tables.runs["value"].notna().all()
    statuses, corrupt = store.statuses()
    assert TARGET not in statuses and len(statuses) == 8 and corrupt == tables.corrupt


@pytest.mark.parametrize(("mutate", "field"), MALFORMED, ids=IDS)
def test_analyze_and_status_warn_and_go_on_past_a_malformed_record(
    tmp_path: Path, capsys, mutate, field
) -> None:
    store = write_study(tmp_path)
    rewrite(store, TARGET, mutate)
    code, out, err = run_cli(["analyze", str(tmp_path), "--resamples", "100", "--json", "-"], capsys)
    assert code == 0, err
    result = json.loads(out)  # strict JSON: a NaN would not parse with parse_constant raising
    json.loads(out, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    assert any(TARGET in w and f"{field}:" in w for w in result["warnings"]), result["warnings"]
    dpo = [c for c in result["cells"] if c["algorithm"] == "DPO"]
    assert dpo and all(c["n"] == 2 and c["mean"] is not None for c in dpo)
    code, out, err = run_cli(["status", str(tmp_path), "--json"], capsys)
    assert code == 0, err
    status = json.loads(out)
    assert len(status["corrupt"]) == 1 and f"{field}:" in status["corrupt"][0]
    assert status["done"] == 8


def test_verify_and_report_go_on_past_a_nan_metric_with_strict_json(tmp_path: Path, capsys) -> None:
    """Item 1: a NaN metric crashed `verify` (TypeError, exit 1 read as a verdict) and `report --claims`."""
    study = tmp_path / "study"
    store = write_study(study)
    rewrite(store, f"{9:016x}", _set("metrics.arith.value", math.nan))  # SFT seed 2, the best arm
    claims = tmp_path / "claims.yaml"
    claims.write_text(
        f"results: [{study}]\nclaims:\n  - {{id: b, kind: best, algorithm: SFT, model: tiny, benchmark: arith}}\n"
    )
    code, out, err = run_cli(["verify", str(claims), "--resamples", "100", "--json", "-"], capsys)
    assert code == 0, err
    report = json.loads(out, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    assert report["claims"][0]["verdict"] == "SUPPORTED"
    output = tmp_path / "report"
    code, out, err = run_cli(
        [
            "report",
            str(study),
            "--claims",
            str(claims),
            "-f",
            "json",
            "-o",
            str(output),
            "--resamples",
            "100",
        ],
        capsys,
    )
    assert code == 0, err
    written = json.loads(
        output.with_suffix(".json").read_text(), parse_constant=lambda c: pytest.fail(f"non-strict JSON {c}")
    )
    assert any(f"{9:016x}" in w and "metrics.arith.value" in w for w in written["warnings"])


def test_plan_shows_a_record_with_an_unknown_status_as_corrupt(tmp_path: Path, capsys) -> None:
    """Item 3: a record with status 'weird' at a planned cell made `plan` fail with KeyError: 'weird'."""
    from oxstudy.plan import plan
    from oxstudy.spec import load_spec

    spec_path = Path(__file__).resolve().parents[1] / "specs" / "quickstart.yaml"
    cell = plan(load_spec(spec_path))[0]
    store = Store(tmp_path)
    record = make_record(cell.run_id, algorithm=cell.algorithm.id, seed=cell.seed)
    store.write_record(record)
    rewrite(store, cell.run_id, _set("status", "weird"))
    for extra in ([], ["--json"]):
        code, out, err = run_cli(["plan", str(spec_path), "--store", str(tmp_path), *extra], capsys)
        assert code == 0, err
        assert "status: 'weird'" in " ".join(out.split())  # rich may wrap the line
    totals = json.loads(out)["totals"]
    assert totals["done"] == 0 and totals["pending"] == totals["cells"]


# ----------------------------------------------------------------------------- status (items 6, 7, 13, 14, 22)
def planned_study(root: Path) -> Store:
    """``write_study`` plus the plan.json ``oxstudy run`` saves (run_id -> labels of all 9 cells)."""
    store = write_study(root)
    cells = [{"run_id": r["run_id"], "model": "tiny", "algorithm": r["cell"]["algorithm"]["id"],
              "seed": r["cell"]["seed"]} for _, r, _ in store.iter_records()]  # fmt: skip
    (root / "plan.json").write_text(json.dumps({"cells": cells}))
    return store


def status_json(root: Path | str, capsys) -> dict[str, Any]:
    code, out, err = run_cli(["status", str(root), "--json"], capsys)
    assert code == 0, err
    return json.loads(out, parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))


def test_status_escapes_record_text_and_ignores_malformed_progress_files(tmp_path: Path, capsys) -> None:
    root = tmp_path / "br[red]"
    store = planned_study(root)
    failed = {
        "status": "failed",
        "error": {"reason": "CUDA error [/bold] at [x]"},
        "metrics": {},
        "items": {},
    }
    rewrite(store, TARGET, lambda r: r.update(failed))
    pending = f"{2:016x}"
    store.record_path(pending).unlink()
    progress = store.cell_dir(pending) / "progress.json"
    progress.parent.mkdir(parents=True)
    progress.write_text(json.dumps({"phase": "train [/b]", "updated_at": 4e9, "step": 3, "total": 9}))
    code, out, err = run_cli(["status", str(root)], capsys)
    assert code == 0, err
    text = " ".join(out.split())
    assert "CUDA error [/bold] at [x]" in text and "train [/b] 3/9" in text and "br[red]" in text
    bad = (
        '{"phase": "train", "updated_at": "soon"}',
        "[1, 2]",
        '{"updated_at": 1}',
        '{"phase": "x", "step": NaN}',
    )
    for content in bad:
        progress.write_text(content)
        code, out, err = run_cli(["status", str(root)], capsys)
        assert code == 0, err
        assert "malformed progress file ignored" in out and "progress.json" in " ".join(out.split())


def test_status_json_is_strict_and_seeds_stay_integers(tmp_path: Path, capsys) -> None:
    store = planned_study(tmp_path)
    for run_id in (f"{4:016x}", f"{5:016x}"):
        rewrite(store, run_id, lambda r: r.update({"status": "failed", "error": {"reason": "oom"}}))
    rewrite(
        store,
        TARGET,
        lambda r: r.update({"status": "failed", "error": {"reason": "oom"}}) or r["cell"].pop("seed"),
    )
    status = status_json(tmp_path, capsys)
    assert sorted((f["seed"], type(f["seed"])) for f in status["failures"]) == [(0, int), (1, int)]
    assert len(status["corrupt"]) == 1 and "cell.seed" in status["corrupt"][0]


def test_status_totals_count_the_planned_cells_only(tmp_path: Path, capsys) -> None:
    """Item 6: a record outside the plan was counted as done while a planned cell was pending."""
    store = planned_study(tmp_path)
    record = json.loads(store.record_path(TARGET).read_text())
    store.write_record({**record, "run_id": "f" * 16})  # a record the plan does not list
    store.record_path(f"{2:016x}").unlink()
    status = status_json(tmp_path, capsys)
    assert (status["done"], status["failed"], status["pending"], status["cells"]) == (8, 0, 1, 9)
    assert sum(arm["pending"] for arm in status["arms"]) == 1
    assert status["notes"] == ["1 record(s) not in the current plan (left out of the totals)"]


def test_status_without_a_plan_says_pending_is_unknown_and_a_runs_file_is_an_error(
    tmp_path: Path, capsys
) -> None:
    """Item 7: without plan.json the arms were empty and pending 0; `runs` as a file gave '0 done'."""
    write_study(tmp_path)
    status = status_json(tmp_path, capsys)
    assert status["pending"] is None and status["done"] == 9
    assert {(a["algorithm"], a["done"], a["pending"]) for a in status["arms"]} == {
        (a, 3, None) for a in ALGORITHMS
    }
    assert any("no plan.json" in note and "pending cells unknown" in note for note in status["notes"])
    other = tmp_path / "other"
    other.mkdir()
    (other / "plan.json").write_text(json.dumps({"cells": []}))
    (other / "runs").write_text("")
    for command in (["status", str(other)], ["analyze", str(other)]):
        code, out, err = run_cli(command, capsys)
        assert code == 2 and f"{other / 'runs'}: not a directory" in err and "Traceback" not in err


def test_status_and_plan_of_a_studys_saved_spec_read_that_study(tmp_path: Path, capsys, monkeypatch) -> None:
    """Item 22: `status STUDY/spec.yaml` resolved the spec's store against the working directory."""
    import shutil

    spec_path = Path(__file__).resolve().parents[1] / "specs" / "quickstart.yaml"
    from oxstudy.plan import plan
    from oxstudy.spec import load_spec

    cells = plan(load_spec(spec_path))
    study = tmp_path / "moved" / "quickstart"
    store = Store(study)
    for cell in cells[:3]:
        store.write_record(make_record(cell.run_id, algorithm=cell.algorithm.id, seed=cell.seed))
    (study / "plan.json").write_text(
        json.dumps(
            {
                "cells": [
                    {"run_id": c.run_id, "model": c.model.id, "algorithm": c.algorithm.id, "seed": c.seed}
                    for c in cells
                ]
            }
        )
    )
    shutil.copy(spec_path, study / "spec.yaml")
    monkeypatch.chdir(tmp_path)  # the spec's own store (studies/quickstart) does not exist here
    status = status_json(study / "spec.yaml", capsys)
    assert status["store"] == str(study) and status["done"] == 3
    code, out, err = run_cli(["plan", str(study / "spec.yaml"), "--json"], capsys)
    assert code == 0, err
    planned = json.loads(out)
    assert planned["store"] == str(study) and planned["totals"]["done"] == 3


def test_analyze_and_verify_warn_of_a_partial_study_and_corrupt_records(tmp_path: Path, capsys) -> None:
    """Items 9 and 10: analyze said nothing of a partial study; verify showed no loader warning at all."""
    study = tmp_path / "study"
    store = planned_study(study)
    store.record_path(f"{2:016x}").unlink()  # a planned cell without a record
    rewrite(store, f"{3:016x}", _set("metrics.arith.value", None))
    code, out, err = run_cli(["analyze", str(study), "--resamples", "100", "--json", "-"], capsys)
    assert code == 0, err
    warnings = json.loads(out)["warnings"]
    assert f"{study}: partial study: 2 planned run(s) have no record yet" in warnings  # the corrupt one too
    claims = tmp_path / "claims.yaml"
    claims.write_text(
        f"results: [{study}]\nclaims:\n  - {{kind: best, algorithm: SFT, model: tiny, benchmark: arith}}\n"
    )
    for extra in ([], ["--json", "-"]):
        code, out, err = run_cli(["verify", str(claims), "--resamples", "100", *extra], capsys)
        assert code == 0, err
        err = " ".join(err.split())
        assert (
            "partial study: 2 planned run(s)" in err
            and "metrics.arith.value" in err
            and "Traceback" not in err
        )
    report = json.loads(out)
    assert any("partial study" in w for w in report["warnings"])
    assert any("corrupt record" in w and f"{3:016x}" in w for w in report["warnings"])


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "spec.yaml",
            "name: s\nanalysis: {baseline: DPO\n",
            "spec.yaml:3: the study's saved spec is not valid YAML",
        ),
        ("spec.yaml", "- a list\n", "spec.yaml: not a spec (a mapping)"),
        ("plan.json", '{"cells": [{"run_id": "ab', "plan.json: unreadable plan (JSONDecodeError"),
    ],
    ids=["yaml-error", "yaml-list", "truncated-plan"],
)
def test_analyze_and_report_name_a_broken_spec_or_plan_in_the_study(
    tmp_path: Path, capsys, name, content, message
):
    """Item 8: a malformed spec.yaml silently switched analyze to pairwise (baseline lost); a truncated
    plan.json silently dropped the plan's labels."""
    planned_study(tmp_path)
    (tmp_path / "spec.yaml").write_text("name: s\nanalysis: {baseline: DPO}\n")
    code, out, err = run_cli(["analyze", str(tmp_path), "--resamples", "100", "--json", "-"], capsys)
    assert code == 0 and json.loads(out)["conventions"]["baseline"] == "DPO", err
    (tmp_path / name).write_text(content)
    for command in (["analyze", str(tmp_path)], ["report", str(tmp_path), "-o", str(tmp_path / "r.html")]):
        code, out, err = run_cli(command, capsys)
        assert code == 2 and err.startswith(f"error: {tmp_path}/{message}") and len(err.splitlines()) == 1, (
            err
        )


def test_a_duplicate_run_in_a_csv_is_named_at_the_repeated_line(tmp_path: Path, capsys) -> None:
    """Item 21: the error named line 3 (seed 1, no duplicate) instead of the repeated row."""

    lines = ["model,algorithm,seed,benchmark,metric,value"]
    lines += [f"m,{a},{s},b,acc,0.{s}{i}" for i, a in enumerate(ALGORITHMS) for s in SEEDS]  # lines 2-10
    lines += [
        "m,IPO,2,b,acc_norm,0.5",  # line 11: no duplicate (another metric)
        "m,DPO,1,b,acc,0.9",  # line 12: repeats line 3
        "m,DPO,0,b,acc,0.8",  # line 13: repeats line 2
    ]
    table = tmp_path / "runs.csv"
    table.write_text("\n".join(lines) + "\n")
    code, out, err = run_cli(["analyze", str(table)], capsys)
    assert code == 2 and err == (
        f"error: {table}:12: column seed: duplicate run for model=m algorithm=DPO "
        f"benchmark=b metric=acc seed=1 (first at {table}:3)\n"
    )


@pytest.mark.filterwarnings("ignore:Mean of empty slice", "ignore:invalid value encountered")
def test_report_json_is_strict_when_a_statistic_is_undefined(tmp_path: Path, capsys) -> None:
    """Item 1 (report -f json wrote `"in_domain_gain": NaN`): a base model without an in-domain score
    (null, as the evaluator writes a non-finite one) leaves the gain undefined: null in strict JSON."""
    store = write_study(tmp_path)

    def with_base(record: dict[str, Any]) -> None:
        record["metrics"]["know"] = {**record["metrics"]["arith"], "task": "know", "in_domain": False}
        record["base"] = {"metrics": {"arith": {"value": None}, "know": {"value": 0.5}}}

    for run in range(1, 10):
        rewrite(store, f"{run:016x}", with_base)
    output = tmp_path / "out" / "r"
    code, out, err = run_cli(
        ["report", str(tmp_path), "-f", "json", "-o", str(output), "--resamples", "100"], capsys
    )
    assert code == 0, err
    written = json.loads(
        output.with_suffix(".json").read_text(), parse_constant=lambda c: pytest.fail(f"JSON {c}")
    )
    runs = written["post_training"]["forgetting"]["runs"]
    assert len(runs) == 9 and all(r["in_domain_gain"] is None for r in runs)


def test_a_corrupt_record_replaced_by_a_rerun_is_kept_beside_it(tmp_path):
    from oxstudy.store import Store

    store = Store(tmp_path / "study")
    failed = {"run_id": "abc", "status": "failed", "error": {"reason": "oom"},
              "cell": {"model": {"id": "m"}, "algorithm": {"id": "a"}, "seed": 0}}
    path = store.write_record(failed)
    newer = path.read_text().replace('"oxstudy.record/1"', '"oxstudy.record/99"')
    path.write_text(newer)  # a record this oxstudy cannot read (and its checksum no longer matches)
    store.write_record(failed)
    kept = sorted(path.parent.glob("abc.json.corrupt-*"))
    assert len(kept) == 1 and kept[0].read_text() == newer
    assert store.read_record(path)["schema"] == "oxstudy.record/1"
    store.write_record(failed)  # a sound record is simply replaced
    assert len(sorted(path.parent.glob("abc.json.corrupt-*"))) == 1
