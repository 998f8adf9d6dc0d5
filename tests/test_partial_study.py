"""A study with failed cells still analyses: single-seed arms are left out with a warning."""

from __future__ import annotations

from pathlib import Path

from test_store import make_record

from oxstudy.results_io import load_results
from oxstudy.stats.analyze import analyze
from oxstudy.store import Store


def test_single_seed_arms_are_left_out_with_a_warning(tmp_path: Path) -> None:
    store = Store(tmp_path)
    run = 0
    for algorithm, seeds in (("DPO", [1, 2, 3]), ("IPO", [1, 2]), ("KTO", [1])):
        for seed in seeds:
            run += 1
            store.write_record(make_record(f"{run:016x}", algorithm=algorithm, seed=seed, value=0.1 * run))
    store.write_record(make_record(f"{99:016x}", algorithm="KTO", seed=2, status="failed"))
    results = load_results([tmp_path])
    assert sorted(results.table["algorithm"].unique()) == ["DPO", "IPO"]
    assert any("single finished seed" in w and "tiny/KTO/arith" in w for w in results.warnings)
    analysis = analyze(results.table, items=results.items, kind=results.kind, baseline="DPO")
    assert [(c["a"], c["b"]) for c in analysis["comparisons"]] == [("IPO", "DPO")]
