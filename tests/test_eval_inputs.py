"""``oxstudy eval`` checks every input before the model is resolved or loaded: empty or
unknown benchmarks, a metric a task does not report, out-of-range numbers and malformed
pass@k options are one-line errors (exit 2) in seconds, not after evaluating the
benchmarks before them. The model given is a path that does not exist: an error that
names the model instead of the input shows the input was checked too late."""

from __future__ import annotations

from pathlib import Path

import pytest

from oxstudy.cli import main

MISSING_MODEL = "/nonexistent/oxstudy-test-model"


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    code = exit_info.value.code
    return (0 if code is None else code), capsys.readouterr().err


CASES = {
    "limit-zero": (["-b", "oxs_arith", "--limit", "0"], "--limit: must be > 0 (got 0)"),
    "limit-negative": (["-b", "oxs_arith", "--limit", "-1"], "--limit: must be > 0 (got -1)"),
    "fewshot-negative": (["-b", "oxs_arith", "--num-fewshot", "-1"], "--num-fewshot: must be >= 0"),
    "batch-size-zero": (["-b", "oxs_arith", "--batch-size", "0"], "--batch-size: must be > 0"),
    "benchmarks-empty": (["-b", ""], "--benchmarks: no benchmark given"),
    "benchmarks-commas": (["-b", ",", "-b", " , "], "--benchmarks: no benchmark given"),
    "unknown-task-after-a-good-one": (
        ["-b", "oxs_arith,oxs_nope", "--limit", "3"],
        "oxs_nope: not a bundled task",
    ),
    "metric-not-reported": (
        ["-b", "oxs_arith", "--metric", "bogus,none"],
        "--metric: 'bogus,none' is not a result",
    ),
    "pass-at-k-not-integers": (["-b", "oxs_arith", "--pass-at-k", "x,y"], "--pass-at-k: 'x,y' is not"),
    "pass-at-k-empty": (["-b", "oxs_arith", "--pass-at-k", ","], "--pass-at-k: ',' names no k"),
    "pass-at-k-beyond-samples": (
        ["-b", "oxs_arith", "--pass-at-k", "1,8", "--samples", "4"],
        "k 8 outside 1..--samples (4)",
    ),
    "samples-zero": (["-b", "oxs_arith", "--pass-at-k", "1", "--samples", "0"], "--samples: must be > 0"),
    "temperature-negative": (
        ["-b", "oxs_arith", "--pass-at-k", "1", "--temperature", "-1"],
        "--temperature: must be > 0",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_eval_input_fails_before_the_model(case: str, capsys: pytest.CaptureFixture[str]) -> None:
    args, expected = CASES[case]
    code, err = _run(["eval", "-m", MISSING_MODEL, *args], capsys)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and "Traceback" not in err, err
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], err
    assert "nonexistent" not in err  # the model was not reached


def test_good_eval_input_reaches_the_model(capsys: pytest.CaptureFixture[str]) -> None:
    """The same options in range pass the checks: the error is then the model's (so the
    cases above fail on their input, not on the missing model)."""
    argv = [
        "eval",
        "-m",
        MISSING_MODEL,
        "-b",
        "oxs_arith,oxs_compare",
        "--limit",
        "1",
        "--num-fewshot",
        "0",
        "--batch-size",
        "1",
        "--pass-at-k",
        "1,4",
        "--samples",
        "4",
        "--temperature",
        "0.5",
    ]
    code, err = _run(argv, capsys)
    assert code == 2 and f"{MISSING_MODEL}: model path does not exist" in err, err
    assert Path(MISSING_MODEL).name in err
