"""Issue 10: calibrated significance, checkpoint-only McNemar, and the eight defects (regressions).

The full calibration table is ``benchmarks/bench_calibration.py``; here only a small smoke test.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from oxstudy.errors import InputError
from oxstudy.results_io import load_results
from oxstudy.stats import power as pw
from oxstudy.stats import tests as ht
from oxstudy.stats.analyze import analyze

DATA = Path(__file__).parent / "data"


def _items_study(n_seeds: int, n_items: int = 80, rng_seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two algorithms x one model x one benchmark with per-item 0/1 outcomes."""
    rng = np.random.default_rng(rng_seed)
    difficulty = rng.normal(0, 1.5, n_items)
    runs, items = [], []
    for alg, shift in (("a", 0.3), ("b", 0.0)):
        for seed in range(n_seeds):
            scores = (
                rng.random(n_items) < 1 / (1 + np.exp(-(shift + rng.normal(0, 0.3) - difficulty)))
            ).astype(float)
            runs.append(
                {"model": "m", "algorithm": alg, "seed": seed, "benchmark": "x", "value": scores.mean()}
            )
            items.append(
                pd.DataFrame(
                    {
                        "model": "m",
                        "algorithm": alg,
                        "seed": seed,
                        "benchmark": "x",
                        "doc_id": np.arange(n_items),
                        "score": scores,
                    }
                )
            )
    return pd.DataFrame(runs), pd.concat(items, ignore_index=True)


def test_welch_holds_its_error_rate_in_a_small_simulation_with_seed_effects():
    """Smoke version of bench_calibration: 400 null studies, 5 seeds, run sd ~5 pp, shared items."""
    rng = np.random.default_rng(11)
    n_sims, n_seeds, n_items = 400, 5, 200
    rejections = mcnemar_summed = 0
    for _ in range(n_sims):
        logits = 0.0 - rng.normal(0, 1.5, n_items)
        outcomes = [
            rng.random((n_seeds, n_items)) < 1 / (1 + np.exp(-(logits + rng.normal(0, 0.3, (n_seeds, 1)))))
            for _arm in range(2)
        ]
        a, b = (o.mean(axis=1) for o in outcomes)
        rejections += ht.welch(a, b)["p_value"] <= 0.05
        only_a = int((outcomes[0] & ~outcomes[1]).sum())
        only_b = int((~outcomes[0] & outcomes[1]).sum())
        mcnemar_summed += ht.mcnemar(only_a, only_b)["p_value"] <= 0.05
    assert rejections / n_sims < 0.09  # nominal 0.05; 400 sims: sd 0.011
    # why McNemar summed over seed pairs is not an algorithm test: it rejects far above 5% here
    assert mcnemar_summed / n_sims > 0.2


def test_one_seed_per_arm_computes_no_p_value_flag_or_correction():
    """Defect 2: with a single seed per arm no algorithm test is possible, and none is reported."""
    runs, items = _items_study(n_seeds=1)
    res = analyze(runs, items=items, baseline="b", n_resamples=200)
    row = res["comparisons"][0]
    assert row["p_value"] is None and row["p_adjusted"] is None and row["significant"] is None
    assert row["flag_set_by"] is None and "no test between algorithms" in row["note"]
    block = row["checkpoints"]  # two checkpoints can still be compared, labelled as such
    assert block["scope"] == "checkpoint-vs-checkpoint" and block["sets_significant"] is False
    assert "significant" not in block and "p_adjusted" not in block
    assert all("significant" not in p and "p_adjusted" not in p for p in block["pairs"])
    assert any("no test between algorithms is possible" in w for w in res["warnings"])
    json.dumps(res, allow_nan=False)


def test_undefined_comparisons_stay_in_the_family():
    """Defect 7: m counts every comparison of the family, defined or not, in tests and in power."""
    rows = []
    values = {
        "base": [0.50, 0.52, 0.51],
        "good": [0.60, 0.62, 0.61],
        "flat": [0.5, 0.5, 0.5],
        "flat2": [0.4, 0.4, 0.4],
    }
    for alg, vals in values.items():
        rows += [
            {"model": "m", "algorithm": alg, "seed": s, "benchmark": "x", "value": v}
            for s, v in enumerate(vals)
        ]
    res = analyze(
        pd.DataFrame(rows), baseline="flat", correction="bonferroni", sections=["comparisons", "power"]
    )
    by_a = {r["a"]: r for r in res["comparisons"]}
    assert by_a["flat2"]["p_value"] is None  # both arms constant: undefined
    assert {r["family_size"] for r in res["comparisons"]} == {3}
    assert by_a["good"]["p_adjusted"] == pytest.approx(min(1.0, 3 * by_a["good"]["p_value"]))
    assert res["power"][0]["comparisons"] == 3
    res = analyze(pd.DataFrame(rows), baseline="flat", correction="holm", sections=["comparisons"])
    from statsmodels.stats.multitest import multipletests

    defined = [r for r in res["comparisons"] if r["p_value"] is not None]
    ref = multipletests([r["p_value"] for r in defined] + [1.0], method="holm")[1][:2]
    np.testing.assert_allclose([r["p_adjusted"] for r in defined], ref)


def test_minimum_detectable_effect_is_not_capped_at_ten():
    """Defect 4: statsmodels' solver stops at d = 10 for n = 2, alpha <= 0.01."""
    from statsmodels.stats.power import TTestIndPower

    for alpha in (0.01, 0.05 / 7):
        d = pw.minimum_detectable_effect(2, alpha, 0.8)
        assert d > 10.5
        assert TTestIndPower().power(d, 2, alpha, ratio=1.0) == pytest.approx(0.8, abs=1e-6)


def test_seeds_needed_where_statsmodels_power_is_nan():
    """Defect 5: at d = 10, alpha = 0.05/7, statsmodels' power() is NaN at n = 3 and 4; 3 seeds suffice."""
    alpha = 0.05 / 7
    assert pw.seeds_needed(10.0, alpha, 0.8) == 3
    # independent check by simulation: Welch/Student t-tests at d = 10
    rng = np.random.default_rng(0)
    for n, expect in ((2, False), (3, True)):
        a = rng.normal(10.0, 1.0, (20_000, n))
        b = rng.normal(0.0, 1.0, (20_000, n))
        power = np.mean(stats.ttest_ind(a, b, axis=1).pvalue <= alpha)
        assert (power >= 0.8) == expect, (n, power)


def test_verify_on_single_seed_results_is_inconclusive_not_a_traceback(tmp_path):
    """Defect 1: KeyError 'ci_low' in claims.py on single-seed results."""
    from oxstudy.claims import load_claims, verify

    table = tmp_path / "one_seed.csv"
    table.write_text("model,algorithm,seed,benchmark,value\nm,dpo,0,x,0.50\nm,simpo,0,x,0.55\n")
    claims = tmp_path / "c.yaml"
    claims.write_text(
        "claims:\n  - {kind: difference, a: simpo, b: dpo, model: m, benchmark: x, significant: true}\n"
    )
    report = verify(load_claims(claims), load_results([table]), n_resamples=200)
    claim = report["claims"][0]
    assert claim["verdict"] == "INCONCLUSIVE" and claim["numbers"]["ci_low"] is None


def test_hierarchical_bootstrap_claims_are_a_located_error(tmp_path):
    from oxstudy.claims import load_claims
    from oxstudy.errors import SpecError

    claims = tmp_path / "c.yaml"
    claims.write_text(
        "claims:\n  - kind: difference\n    a: a\n    b: b\n    model: m\n    benchmark: x\n"
        "    test: hierarchical-bootstrap\n"
    )
    with pytest.raises(SpecError, match=r"c.yaml:7: claims\[0\].test: .*hierarchical-bootstrap.*use welch"):
        load_claims(claims)


def test_messages_show_plain_values_columns_and_rows(tmp_path):
    """Defect 8: no np.float64(inf); 'column n' for summary tables; duplicate items name file and row."""
    bad = tmp_path / "inf.jsonl"
    bad.write_text(
        '{"model": "m", "algorithm": "a", "seed": 0, "benchmark": "x", "value": 0.5}\n'
        '{"model": "m", "algorithm": "a", "seed": 1, "benchmark": "x", "value": Infinity}\n'
    )
    with pytest.raises(InputError) as exc:
        load_results([bad])
    assert str(exc.value) == f"{bad}:2: column value: not a finite number: inf"
    summary = pd.DataFrame(
        {
            "model": "m",
            "algorithm": ["a", "b"],
            "benchmark": "x",
            "mean": [0.5, 0.6],
            "sd": [0.01, 0.0],
            "n": [3, 1],
            "_where": ["t.csv:2", "t.csv:3"],
        }
    )
    # a single-seed arm makes its comparisons descriptive; the warning locates it like an input error
    result = analyze(summary, baseline="a", sections=["comparisons"])
    assert result["comparisons"][0]["p_value"] is None
    assert any(w.startswith("t.csv:3: column n: n < 2 for a test") for w in result["warnings"])
    runs, items = _items_study(n_seeds=2, n_items=10)
    items_path = tmp_path / "items.csv"
    dup = pd.concat([items, items.iloc[[3]]], ignore_index=True)
    dup.to_csv(items_path, index=False)
    from oxstudy.results_io import load_items

    with pytest.raises(
        InputError, match=rf"^{items_path}:{len(dup) + 1}: column doc_id: item 3 appears twice"
    ):
        analyze(runs, items=load_items(items_path), baseline="b")


# ---------------------------------------------------------------------------------------------
# lm-eval 0.4.13 output directories (defect 3 / issue 16 item 6)


def lm_eval_output(root: Path, run: str, rng: np.random.Generator, accuracy: float, n_docs: int = 40) -> Path:
    """A faithful copy of what ``lm_eval --model hf ... --output_path OUT --log_samples`` writes for
    gsm8k: OUT/<sanitized model>/results_<date_id>.json and samples_gsm8k_<date_id>.jsonl with one
    line per document per filter (strict-match, then flexible-extract), fields as in
    lm_eval/evaluator.py (doc_id, doc, target, arguments, resps, filtered_resps, filter, metrics,
    doc_hash, prompt_hash, target_hash, exact_match)."""
    out = root / run / "__work__models__tiny"
    out.mkdir(parents=True)
    date_id = "2026-11-29T14-35-12.123456"
    strict = (rng.random(n_docs) < accuracy).astype(float)
    flexible = np.maximum(strict, (rng.random(n_docs) < 0.3).astype(float))  # flexible-extract finds more
    results = {
        "results": {
            "gsm8k": {
                "alias": "gsm8k",
                "exact_match,strict-match": float(strict.mean()),
                "exact_match_stderr,strict-match": float(strict.std(ddof=1) / np.sqrt(n_docs)),
                "exact_match,flexible-extract": float(flexible.mean()),
                "exact_match_stderr,flexible-extract": float(flexible.std(ddof=1) / np.sqrt(n_docs)),
            }
        },
        "group_subtasks": {"gsm8k": []},
        "configs": {
            "gsm8k": {
                "task": "gsm8k",
                "dataset_path": "gsm8k",
                "output_type": "generate_until",
                "filter_list": [{"name": "strict-match"}, {"name": "flexible-extract"}],
            }
        },
        "versions": {"gsm8k": 3.0},
        "n-shot": {"gsm8k": 5},
        "higher_is_better": {"gsm8k": {"exact_match": True}},
        "n-samples": {"gsm8k": {"original": 1319, "effective": n_docs}},
        "config": {
            "model": "hf",
            "model_args": "pretrained=/work/models/tiny",
            "batch_size": 1,
            "limit": n_docs,
        },
        "git_hash": None,
        "date": 1795000000.0,
        "lm_eval_version": "0.4.13",
    }
    (out / f"results_{date_id}.json").write_text(json.dumps(results, indent=2))
    with open(out / f"samples_gsm8k_{date_id}.jsonl", "w") as fh:
        for filt, scores in (("strict-match", strict), ("flexible-extract", flexible)):
            for doc_id, score in enumerate(scores):
                fh.write(
                    json.dumps(
                        {
                            "doc_id": doc_id,
                            "doc": {"question": f"q{doc_id}", "answer": f"#### {doc_id}"},
                            "target": f"#### {doc_id}",
                            "arguments": {"gen_args_0": {"arg_0": f"Q: q{doc_id}", "arg_1": {}}},
                            "resps": [[f"The answer is {doc_id}"]],
                            "filtered_resps": [str(doc_id) if score else "[invalid]"],
                            "filter": filt,
                            "metrics": ["exact_match"],
                            "doc_hash": f"{doc_id:064x}",
                            "prompt_hash": f"{doc_id + 1:064x}",
                            "target_hash": f"{doc_id + 2:064x}",
                            "exact_match": float(score),
                        }
                    )
                    + "\n"
                )
    return root / run


def test_lm_eval_output_with_two_filters_analyses_without_metric(tmp_path):
    rng = np.random.default_rng(4)
    rows = []
    for alg, acc in (("dpo", 0.4), ("simpo", 0.6)):
        for seed in (0, 1):
            lm_eval_output(tmp_path, f"{alg}{seed}", rng, acc)
            rows.append({"path": f"{alg}{seed}", "model": "tiny", "algorithm": alg, "seed": seed})
    mapping = tmp_path / "runs.csv"
    pd.DataFrame(rows).to_csv(mapping, index=False)
    loaded = load_results([], mapping=mapping)
    assert set(loaded.table["metric"]) == {"exact_match,strict-match", "exact_match,flexible-extract"}
    res = analyze(loaded.table, items=loaded.items, kind=loaded.kind, baseline="dpo", n_resamples=200)
    by_metric = {r["metric"]: r for r in res["comparisons"]}
    assert set(by_metric) == {"exact_match,strict-match", "exact_match,flexible-extract"}
    for metric, row in by_metric.items():
        # items paired within each metric: the checkpoint table of each metric counts that metric's items
        pair = row["checkpoints"]["pairs"][0]
        samples = loaded.items[(loaded.items.metric == metric) & (loaded.items.seed == 0)]
        a = samples[samples.algorithm == "simpo"].sort_values("doc_id")["score"].to_numpy()
        b = samples[samples.algorithm == "dpo"].sort_values("doc_id")["score"].to_numpy()
        assert (pair["only_a"], pair["only_b"]) == (
            int(((a == 1) & (b == 0)).sum()),
            int(((a == 0) & (b == 1)).sum()),
        )
        assert row["checkpoints"]["n_items"] == 40


def test_equal_variance_tests_say_so_when_sample_sds_differ():
    """Student and permutation assume equal variances: reported beside Welch with a note, no flag."""
    rows = [
        {"model": "m", "algorithm": alg, "seed": s, "benchmark": "x", "value": v}
        for alg, vals in (
            ("wide", [0.40, 0.60, 0.50, 0.45, 0.58]),
            ("narrow", [0.50, 0.51, 0.49, 0.50, 0.52]),
        )
        for s, v in enumerate(vals)
    ]
    wide, narrow = [0.40, 0.60, 0.50, 0.45, 0.58], [0.50, 0.51, 0.49, 0.50, 0.52]
    for test in ("student", "permutation"):
        res = analyze(pd.DataFrame(rows), baseline="narrow", test=test, sections=["comparisons"])
        row = res["comparisons"][0]
        assert "assumes equal variances" in row["note"] and "sets no flag" in row["note"]
        assert row["flag_set_by"] == "welch" and row["reported_test"] == test
        assert row["p_value"] == pytest.approx(stats.ttest_ind(wide, narrow, equal_var=False).pvalue)
        assert any("sets no flag" in w for w in res["warnings"])
    res = analyze(pd.DataFrame(rows), baseline="narrow", test="welch", sections=["comparisons"])
    assert res["comparisons"][0]["note"] is None and not res["warnings"]
    assert "reported_test" not in res["comparisons"][0]


def test_rank_and_split_tests_say_when_they_can_never_be_significant():
    """Mann-Whitney / permutation with 3 vs 3 seeds: smallest p = 2/20 = 0.1 > 0.05, whatever the data;
    reported beside Welch, which sets the flag."""
    rows = [
        {"model": "m", "algorithm": alg, "seed": s, "benchmark": "x", "value": v}
        for alg, vals in (("hi", [0.90, 0.91, 0.92]), ("lo", [0.10, 0.11, 0.12]))
        for s, v in enumerate(vals)
    ]
    for test in ("mannwhitney", "permutation"):
        row = analyze(pd.DataFrame(rows), baseline="lo", test=test, sections=["comparisons"])["comparisons"][
            0
        ]
        assert row[f"p_value_{test}"] == pytest.approx(0.1) and row["significant"] is True
        assert row["flag_set_by"] == "welch" and "cannot reach p < 0.1" in row["note"]
    row = analyze(pd.DataFrame(rows), baseline="lo", test="welch", sections=["comparisons"])["comparisons"][0]
    assert row["significant"] is True and row["note"] is None
