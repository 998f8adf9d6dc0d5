"""`oxstudy run` / `plan` / `status` refuse bad options and unusable stores before any training:
one line naming the problem, exit 2 (`--dry-run` included, so it never promises a run that
cannot happen). In-process CLI calls; nothing here trains a model."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from test_cli_fuzz import Outcome, assert_one_line_error, run_cli
from test_store import make_record

from oxstudy.errors import OxstudyError
from oxstudy.plan import plan
from oxstudy.spec import load_spec
from oxstudy.store import Store

SPEC = """\
name: inputs
output_dir: {output_dir}
models:
  - {{id: tiny, source: "zoo:tiny"}}
algorithms:
  - {{id: SFT, method: sft}}
seeds: [1, 2]
training: {{max_steps: 2, learning_rate: 1.0e-4, effective_batch_size: 4, per_device_batch_size: 4}}
data: {{source: "task:oxs_arith", train_size: 16}}
benchmarks:
  - {{id: arith, task: oxs_arith, limit: 8}}
execution: {{backend: local, max_parallel: 1, retries: 0}}
"""


@pytest.fixture()
def spec_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "200")
    path = tmp_path / "spec.yaml"
    path.write_text(textwrap.dedent(SPEC.format(output_dir="store")))
    return path


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> Outcome:
    return run_cli(list(argv), capsys)


@pytest.mark.parametrize("command", [("run", "--dry-run"), ("run",), ("plan",)])
@pytest.mark.parametrize(
    ("layout", "wording"),
    [
        ("runs_file", "runs: not a directory (a study keeps its records in runs/)"),
        ("cells_file", "cells: not a directory (a study keeps its cells' outputs in cells/)"),
        ("plan_dir", "plan.json: a directory where the study's plan.json file belongs; remove it"),
        ("store_file", "store is a file; a results store is a study directory"),
    ],
)
def test_an_unusable_store_is_refused_before_any_cell_trains(
    spec_file: Path, capsys: pytest.CaptureFixture[str], command: tuple[str, ...], layout: str, wording: str
) -> None:
    store = spec_file.parent / "store"
    if layout == "store_file":
        store.write_text("x\n")
    else:
        store.mkdir()
        {"runs_file": lambda: (store / "runs").write_text("x\n"),
         "cells_file": lambda: (store / "cells").write_text("x\n"),
         "plan_dir": lambda: (store / "plan.json").mkdir()}[layout]()  # fmt: skip
    argv = [command[0], str(spec_file), *command[1:]]
    outcome = cli(capsys, *argv)
    assert_one_line_error(outcome, argv, contains=wording)
    # refused before the lock, the plan or any cell: nothing was written into the store
    if store.is_dir():
        assert sorted(p.name for p in store.iterdir()) == sorted({"runs_file": ["runs"], "cells_file": ["cells"],
                                                                   "plan_dir": ["plan.json"]}[layout])


@pytest.mark.parametrize("command", [("run", "--dry-run"), ("plan",)])
def test_a_store_under_a_file_is_refused(
    tmp_path: Path, spec_file: Path, capsys: pytest.CaptureFixture[str], command: tuple[str, ...]
) -> None:
    (tmp_path / "afile").write_text("x\n")
    spec_file.write_text(textwrap.dedent(SPEC.format(output_dir="afile/sub")))
    argv = [command[0], str(spec_file), *command[1:]]
    outcome = cli(capsys, *argv)
    assert_one_line_error(outcome, argv, contains="afile is a file; the results store")


def test_status_and_run_agree_on_a_plan_json_directory(spec_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """status used to promise that `oxstudy run SPEC` rewrites it; run then failed with 'Is a directory'."""
    store = spec_file.parent / "store"
    (store / "runs").mkdir(parents=True)
    (store / "plan.json").mkdir()
    by_status = cli(capsys, "status", str(store))
    by_run = cli(capsys, "run", str(spec_file))
    assert_one_line_error(by_status, ["status"], contains="remove it")
    assert by_status.err == by_run.err


def test_unknown_backend_is_an_option_error_with_and_without_dry_run(
    spec_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for extra in (["--dry-run"], []):
        argv = ["run", str(spec_file), "--backend", "bogus", *extra]
        assert_one_line_error(cli(capsys, *argv), argv, contains="--backend: unknown backend 'bogus' (local, ray, slurm)")
    assert not (spec_file.parent / "store").exists()


def test_get_runner_unknown_backend_is_a_user_error() -> None:
    from runners.base import get_runner

    with pytest.raises(OxstudyError, match="unknown backend 'bogus'"):
        get_runner("bogus")


@pytest.mark.parametrize("value", ["0", "-3"])
def test_max_parallel_below_one_is_refused(spec_file: Path, capsys: pytest.CaptureFixture[str], value: str) -> None:
    argv = ["run", str(spec_file), "--dry-run", "--max-parallel", value]
    assert_one_line_error(cli(capsys, *argv), argv, contains="--max-parallel")


def test_only_matching_no_cell_names_an_example_label(spec_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for extra in (["--dry-run"], []):
        argv = ["run", str(spec_file), "--only", "tiny/sft/*", *extra]  # labels are tiny/SFT/seedN
        assert_one_line_error(cli(capsys, *argv), argv, contains="matches no cell of the plan (labels look like tiny/SFT/seed1")
    assert not (spec_file.parent / "store").exists()  # the real run did not write plan.json / spec.yaml


def test_only_matching_finished_cells_is_not_an_error(spec_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cells = plan(load_spec(spec_file))
    first = next(c for c in cells if c.seed == 1)
    Store(spec_file.parent / "store").write_record(make_record(first.run_id, algorithm="SFT", seed=1))
    outcome = cli(capsys, "run", str(spec_file), "--dry-run", "--only", "tiny/SFT/seed1")
    assert outcome.code == 0, outcome.err
    assert "would run 0 of 2 cells (1 done, 0 failed)" in outcome.out
    pending = cli(capsys, "run", str(spec_file), "--dry-run", "--only", "tiny/SFT/seed2")
    assert pending.code == 0 and "would run 1 of 2 cells" in pending.out, pending.err
    by_run_id = cli(capsys, "run", str(spec_file), "--dry-run", "--only", first.run_id[:6])
    assert by_run_id.code == 0 and "would run 0 of 2 cells" in by_run_id.out, by_run_id.err
