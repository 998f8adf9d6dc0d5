"""Claims files: schema with located errors, and verdicts against a table."""

from __future__ import annotations

from pathlib import Path

import pytest

from oxstudy.claims import load_claims, verify
from oxstudy.errors import InputError, SpecError
from oxstudy.results_io import load_results

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def results():
    return load_results([DATA / "analysis_runs.csv"])


def _claims(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "claims.yaml"
    path.write_text(body)
    return path


def test_example_claims_file_is_all_supported(results):
    loaded = load_claims(DATA / "analysis_claims.yaml")
    assert loaded.results == [DATA / "analysis_runs.csv"]
    report = verify(loaded, results, n_resamples=1000)
    assert [c["verdict"] for c in report["claims"]] == ["SUPPORTED"] * 6
    assert report["all_supported"] and report["schema"] == "oxstudy.verify/1"
    diff = report["claims"][0]["numbers"]
    assert diff["diff"] < 0 and diff["p_adjusted"] < 0.05 and diff["test"] == "welch"


def test_refuted_and_inconclusive_verdicts(tmp_path, results):
    path = _claims(tmp_path, """\
defaults: {baseline: dpo}
claims:
  - {kind: best, algorithm: simpo, model: m1b, benchmark: bench0}
  - {kind: difference, a: simpo, b: dpo, model: m1b, benchmark: bench0, direction: greater}
  - {kind: difference, a: ipo, b: dpo, model: m0.5b, benchmark: bench0, direction: greater, significant: true}
  - {kind: difference, a: ipo, b: dpo, model: m0.5b, benchmark: bench0, direction: none}
  - {kind: inversion, a: ipo, b: simpo, from_model: m0.5b, to_model: m1b, benchmark: bench0}
  - {kind: inversion, a: sft, b: dpo, from_model: m0.5b, to_model: m1b, benchmark: bench0, significant: true}
  - {kind: spread_ratio, numerator: bench0, denominator: bench1, at_least: 50}
  - {kind: leverage_order, order: [paradigm, scale], benchmark: bench0}
  - {kind: none_better_than_baseline, model: m1b, benchmark: bench0, baseline: simpo, correction: none}
""")
    report = verify(load_claims(path), results, n_resamples=500)
    verdicts = [c["verdict"] for c in report["claims"]]
    assert verdicts == ["REFUTED", "INCONCLUSIVE", "INCONCLUSIVE", "SUPPORTED", "REFUTED", "INCONCLUSIVE",
                        "REFUTED", "REFUTED", "REFUTED"]
    assert not report["all_supported"]
    assert report["summary"] == {"SUPPORTED": 1, "REFUTED": 5, "INCONCLUSIVE": 3}


def test_located_schema_errors(tmp_path):
    path = _claims(tmp_path, """\
description: x
claims:
  - kind: difference
    a: ipo
    b: dpo
    model: m1b
    benchmark: bench0
    direction: sideways
  - kind: bestest
    algorithm: ipo
  - kind: best
    algorithm: ipo
    model: m1b
    bench: bench0
""")
    with pytest.raises(SpecError) as exc:
        load_claims(path)
    messages = exc.value.messages
    assert any(m.startswith(f"{path}:8: claims[0].direction:") for m in messages)
    assert any(m.startswith(f"{path}:9: claims[1].kind: unknown claim kind 'bestest'") for m in messages)
    assert any(f"{path}:14: claims[2].bench: unknown key" in m for m in messages)
    assert any("claims[2].benchmark: required field is missing" in m for m in messages)
    with pytest.raises(SpecError, match="claims"):
        load_claims(_claims(tmp_path, "description: nothing\n"))


def test_unknown_names_are_located_input_errors(tmp_path, results):
    path = _claims(tmp_path, "claims:\n  - kind: best\n    algorithm: ipo\n    model: m70b\n    benchmark: bench0\n")
    with pytest.raises(InputError, match=r"claims.yaml:4: claims\[0\].model: unknown model 'm70b'"):
        verify(load_claims(path), results, n_resamples=200)


def test_a_claim_with_an_uncalibrated_test_gets_its_verdict_from_welch(tmp_path):
    """5 narrow seeds vs 3 wide ones: Student's p = 0.014 would make the claim SUPPORTED, but Student is
    not calibrated there (type-I 0.138 in bench_calibration): Welch on Hsu's df (p = 0.128) decides, so
    the verdict is INCONCLUSIVE and Student's p is only reported."""
    from scipy import stats

    narrow, wide = [0.50, 0.51, 0.49, 0.50, 0.52], [0.55, 0.75, 0.65]
    table = tmp_path / "runs.csv"
    table.write_text("model,algorithm,seed,benchmark,metric,value\n" + "".join(
        f"m,{alg},{s},x,acc,{v}\n" for alg, vals in (("wide", wide), ("narrow", narrow)) for s, v in enumerate(vals)))
    path = _claims(tmp_path, """\
defaults: {baseline: narrow, test: student}
claims:
  - {kind: difference, a: wide, b: narrow, model: m, benchmark: x, direction: greater, significant: true}
  - {kind: none_better_than_baseline, model: m, benchmark: x, test: mannwhitney}
""")
    report = verify(load_claims(path), load_results([table]), n_resamples=200)
    diff, none_better = report["claims"]
    # Mann-Whitney's exact p = 2/56 < 0.05 would refute "none better"; Welch does not
    assert diff["verdict"] == "INCONCLUSIVE" and none_better["verdict"] == "SUPPORTED"
    numbers = diff["numbers"]
    assert numbers["flag_set_by"] == numbers["test"] == "welch-hsu"
    welch = stats.ttest_ind(wide, narrow, equal_var=False)
    assert numbers["p_value"] == pytest.approx(2 * stats.t.sf(welch.statistic, 2))
    assert numbers["reported_test"] == "student"
    assert numbers["p_value_student"] == pytest.approx(stats.ttest_ind(wide, narrow).pvalue)
    assert numbers["p_value_student"] < 0.05  # Student alone would have supported the claim
    assert "sets no verdict" in diff["message"]


def test_self_comparisons_and_duplicate_ids_are_located_errors(tmp_path):
    """Issue E item 24: these were judged (INCONCLUSIVE / REFUTED, exit 1) instead of rejected (exit 2)."""
    path = _claims(tmp_path, """\
claims:
  - {id: c1, kind: difference, a: sft, b: sft, model: m1b, benchmark: bench0}
  - {id: c2, kind: inversion, a: sft, b: dpo, from_model: m1b, to_model: m1b, benchmark: bench0}
  - {id: c1, kind: best, algorithm: sft, model: m1b, benchmark: bench0}
  - {id: c4, kind: spread_ratio, numerator: bench0, denominator: bench0, at_least: 2}
""")
    with pytest.raises(SpecError) as info:
        load_claims(path)
    assert str(info.value).splitlines() == [
        f"{path}:2: claims[0].b: b is the same algorithm as a ('sft'): nothing to compare",
        f"{path}:3: claims[1].to_model: to_model is the same model as from_model ('m1b'): nothing to compare",
        f"{path}:5: claims[3].denominator: denominator is the same benchmark as numerator ('bench0'): "
        "nothing to compare",
        f"{path}:4: claims[2].id: duplicate claim id 'c1' (also claims[0])",
    ]


def test_a_claim_without_metric_on_a_benchmark_with_several_metrics_is_a_located_error(tmp_path):
    """Issue E item S5: `best A` compared A's acc with B's acc_norm; `difference` took the first metric."""
    import pandas as pd

    rows = []
    for algorithm, acc, acc_norm in (("A", 0.50, 0.60), ("B", 0.40, 0.70)):
        for seed, noise in enumerate((-0.01, 0.0, 0.01)):
            rows.append({"model": "m", "algorithm": algorithm, "seed": seed, "benchmark": "b", "metric": "acc",
                         "value": acc + noise})
            rows.append({"model": "m", "algorithm": algorithm, "seed": seed, "benchmark": "b",
                         "metric": "acc_norm", "value": acc_norm + noise})
    table = tmp_path / "runs.csv"
    pd.DataFrame(rows).to_csv(table, index=False)
    results = load_results([table])
    for claim in ("{kind: best, algorithm: A, model: m, benchmark: b}",
                  "{kind: best, algorithm: B, model: m, benchmark: b}",
                  "{kind: difference, a: B, b: A, model: m, benchmark: b, direction: greater, family: pairwise}",
                  "{kind: leverage_order, order: [paradigm, scale]}"):
        path = _claims(tmp_path, f"claims:\n  - {claim}\n")
        with pytest.raises(InputError, match=r"claims\.yaml:2: claims\[0\]\.metric: benchmark 'b' has several "
                                             r"metrics in the results \(acc, acc_norm\): name one with metric:"):
            verify(load_claims(path), results, n_resamples=200)
    path = _claims(tmp_path, """\
claims:
  - {kind: best, algorithm: A, model: m, benchmark: b, metric: acc}
  - {kind: best, algorithm: B, model: m, benchmark: b, metric: acc_norm}
  - {kind: difference, a: B, b: A, model: m, benchmark: b, direction: greater, family: pairwise, metric: acc_norm}
""")
    report = verify(load_claims(path), results, n_resamples=200)
    assert [c["verdict"] for c in report["claims"]] == ["SUPPORTED"] * 3
    assert report["claims"][0]["numbers"]["runner_up_mean"] == pytest.approx(0.40)
