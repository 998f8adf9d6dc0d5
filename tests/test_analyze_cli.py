"""`oxstudy analyze` / `oxstudy verify` end to end (subprocess), and the input loaders."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from oxstudy.errors import InputError
from oxstudy.results_io import load_results

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).parent.parent


def oxstudy(*args: str) -> subprocess.CompletedProcess:
    code = "import sys; from oxstudy.cli import main; main(sys.argv[1:])"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT,
                          env={"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PATH": "/usr/bin:/bin",
                               "COLUMNS": "200"}, timeout=300)


def test_analyze_json_to_stdout_and_tables():
    proc = oxstudy("analyze", str(DATA / "analysis_runs.csv"), "--items", str(DATA / "analysis_items.parquet"),
                   "--baseline", "dpo", "--correction", "holm", "--resamples", "500", "--json", "-")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["schema"] == "oxstudy.analysis/2" and result["conventions"]["correction"] == "holm"
    assert result["conventions"]["replicates"]["n_resamples"] == 500
    assert result["comparisons"][0]["checkpoints"]["scope"] == "checkpoint-vs-checkpoint"
    proc = oxstudy("analyze", str(DATA / "analysis_runs.csv"), "--items", str(DATA / "analysis_items.parquet"),
                   "--baseline", "dpo", "--correction", "holm", "--resamples", "200")
    assert proc.returncode == 0, proc.stderr
    assert "Comparisons" in proc.stdout and "Leverage on bench0" in proc.stdout
    assert "[green]" not in proc.stdout
    # which test set each flag, and McNemar labelled as a checkpoint comparison without a flag
    assert "'sig' set by the welch test over seeds" in proc.stdout and "checkpoints differ" in proc.stdout
    assert "no flag" in proc.stdout and "P(real)" not in proc.stdout
    if result["inversions"]:
        assert "P(flip | data)" in proc.stdout


def test_text_output_flags_and_explains_comparisons(tmp_path):
    table = tmp_path / "constant.csv"
    values = {"a": (0.5, 0.5, 0.5), "b": (0.4, 0.4, 0.4), "c": (0.50, 0.51, 0.52), "d": (0.30, 0.31, 0.32)}
    table.write_text("model,algorithm,seed,benchmark,value\n" + "".join(
        f"m,{alg},{seed},x,{value}\n" for alg, seeds in values.items() for seed, value in enumerate(seeds)))
    proc = oxstudy("analyze", str(table), "--baseline", "b")
    assert proc.returncode == 0, proc.stderr
    text = " ".join(proc.stdout.split())
    # a comparison without a test says why (as the --json note does)
    assert "no test for a vs b (m, x): both arms have zero variance" in text
    # a significant comparison's 'sig' cell is styled, not printed as markup
    assert "[green]" not in proc.stdout and " yes " in proc.stdout


def test_bad_input_is_one_located_line_and_exit_2(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("model,algorithm,seed,benchmark,value\nm,a,0,x,0.5\nm,a,1,x,abc\n")
    proc = oxstudy("analyze", str(bad), "--json", "-")
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: {bad}:3: column value: not a number: 'abc'"
    assert "Traceback" not in proc.stderr
    missing = tmp_path / "missing.csv"
    missing.write_text("model,algorithm,benchmark,value\nm,a,x,0.5\n")
    proc = oxstudy("analyze", str(missing))
    assert proc.returncode == 2 and "missing column(s) seed" in proc.stderr
    proc = oxstudy("analyze", str(DATA / "analysis_runs.csv"), "--baseline", "nope")
    assert proc.returncode == 2 and "unknown baseline 'nope'" in proc.stderr


def test_verify_exit_codes(tmp_path):
    proc = oxstudy("verify", str(DATA / "analysis_claims.yaml"), "--resamples", "300", "--json", "-")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["all_supported"]
    refuted = tmp_path / "c.yaml"
    refuted.write_text("claims:\n  - {kind: best, algorithm: simpo, model: m1b, benchmark: bench0}\n")
    proc = oxstudy("verify", str(refuted), "--results", str(DATA / "analysis_runs.csv"))
    assert proc.returncode == 1 and "REFUTED" in proc.stdout
    broken = tmp_path / "broken.yaml"
    broken.write_text("claims:\n  - {kind: best, algorithm: simpo}\n")
    proc = oxstudy("verify", str(broken), "--results", str(DATA / "analysis_runs.csv"))
    assert proc.returncode == 2 and f"{broken}:2: claims[0].model: required field is missing" in proc.stderr


def test_summary_table_with_population_sd(tmp_path):
    path = tmp_path / "paper.csv"
    path.write_text("model,algorithm,benchmark,mean,sd,n,sd_ddof\n"
                    "q,dpo,gsm8k,70.0,1.0,5,0\nq,simpo,gsm8k,72.5,1.2,5,0\nq,ipo,gsm8k,69.0,0.9,3,1\n")
    res = load_results([path])
    assert res.kind == "summary"
    assert res.table.loc[0, "sd"] == pytest.approx(1.0 * np.sqrt(5 / 4))
    from scipy import stats

    from oxstudy.stats.analyze import analyze

    out = analyze(res.table, kind=res.kind, baseline="dpo", n_resamples=200)
    row = next(r for r in out["comparisons"] if r["a"] == "simpo")
    ref = stats.ttest_ind_from_stats(72.5, 1.2 * np.sqrt(5 / 4), 5, 70.0, np.sqrt(5 / 4), 5, equal_var=False)
    assert row["p_value"] == pytest.approx(ref.pvalue)
    assert out["conventions"]["points_per_unit"] == 1.0
    bad = tmp_path / "bad.csv"
    bad.write_text("model,algorithm,benchmark,mean,sd,n\nq,dpo,gsm8k,70,1,2.5\n")
    with pytest.raises(InputError, match=r"bad.csv:2: column n: not an integer"):
        load_results([bad])


def _lm_eval_dir(root: Path, name: str, accuracy: float, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    out = root / name / "model__x"
    out.mkdir(parents=True)
    scores = (rng.random(60) < accuracy).astype(float)
    results = {"results": {"gsm": {"alias": "gsm", "exact_match,strict-match": float(scores.mean()),
                                   "exact_match_stderr,strict-match": 0.01}},
               "n-shot": {"gsm": 0}, "n-samples": {"gsm": {"original": 60, "effective": 60}}}
    (out / "results_2025-01-01T00-00-00.json").write_text(json.dumps(results))
    with open(out / "samples_gsm_2025-01-01T00-00-00.jsonl", "w") as fh:
        for i, s in enumerate(scores):
            fh.write(json.dumps({"doc_id": i, "doc_hash": f"h{i}", "filter": "strict-match", "exact_match": s}) + "\n")
    return root / name


def test_lm_eval_directories_with_a_mapping_file(tmp_path):
    rows = []
    for alg, acc in (("dpo", 0.5), ("simpo", 0.7)):
        for seed in range(3):
            d = _lm_eval_dir(tmp_path, f"{alg}_{seed}", acc, seed + (10 if alg == "simpo" else 0))
            rows.append({"path": d.name, "model": "tiny", "algorithm": alg, "seed": seed})
    mapping = tmp_path / "mapping.csv"
    pd.DataFrame(rows).to_csv(mapping, index=False)
    res = load_results([], mapping=mapping)
    assert len(res.table) == 6 and set(res.table["metric"]) == {"exact_match,strict-match"}
    assert len(res.items) == 6 * 60
    proc = oxstudy("analyze", "--mapping", str(mapping), "--baseline", "dpo", "--resamples", "300", "--json", "-")
    assert proc.returncode == 0, proc.stderr
    row = json.loads(proc.stdout)["comparisons"][0]
    assert row["a"] == "simpo" and row["checkpoints"]["n_items"] == 60
    single = load_results([tmp_path / "dpo_0"], model="tiny", algorithm="dpo", seed=0)
    assert single.table["seed"].tolist() == [0]
    with pytest.raises(InputError, match="needs --model"):
        load_results([tmp_path / "dpo_0"])
    # labels for one lm-eval directory are an error elsewhere, not silently ignored
    with pytest.raises(InputError, match="--model: labels a single lm-eval output directory"):
        load_results([DATA / "analysis_runs.csv"], model="tiny")
    with pytest.raises(InputError, match="--seed: labels a single lm-eval output directory"):
        load_results([], mapping=mapping, seed=3)


def test_study_directory_with_spec_defaults(tmp_path):
    from oxstudy.store import Store

    store = Store(tmp_path / "study")
    rng = np.random.default_rng(0)
    for alg, acc in (("dpo", 0.5), ("ipo", 0.6), ("sft", 0.55)):
        for seed in range(3):
            scores = (rng.random(40) < acc).astype(float).tolist()
            store.write_record({
                "run_id": f"{alg}{seed}", "study": "s", "status": "done",
                "cell": {"model": {"id": "tiny", "params": 1000}, "algorithm": {"id": alg, "method": alg},
                         "seed": seed},
                "metrics": {"gsm": {"task": "gsm", "metric": "exact_match", "value": float(np.mean(scores)),
                                    "n": 40, "in_domain": True}},
                "items": {"gsm": {"doc_id": list(range(40)), "doc_hash": [f"h{i}" for i in range(40)],
                                  "score": scores}},
            })
    (tmp_path / "study" / "spec.yaml").write_text("name: s\nanalysis:\n  baseline: sft\n  correction: holm\n")
    proc = oxstudy("analyze", str(tmp_path / "study"), "--resamples", "300", "--json", "-")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["conventions"]["baseline"] == "sft" and result["conventions"]["correction"] == "holm"
    assert {r["b"] for r in result["comparisons"]} == {"sft"}
    assert result["comparisons"][0]["checkpoints"]["n_items"] == 40
    # registry tags (dpo/ipo preference, sft sft-like) reach the leverage analysis
    assert result["leverage"]["tags"]["dpo"]["paradigm"] == "preference"


def test_analyze_partial_study_falls_back_when_the_spec_baseline_has_no_runs(tmp_path):
    """Issue 16 item 5: no --baseline given, the spec's baseline has no finished runs yet."""
    from oxstudy.store import Store

    store = Store(tmp_path / "study")
    rng = np.random.default_rng(1)
    for alg in ("ipo", "sft"):
        for seed in range(2):
            store.write_record({
                "run_id": f"{alg}{seed}", "study": "s", "status": "done",
                "cell": {"model": {"id": "tiny", "params": 1000}, "algorithm": {"id": alg, "method": alg},
                         "seed": seed},
                "metrics": {"gsm": {"task": "gsm", "metric": "exact_match", "value": float(rng.random()), "n": 40}},
            })
    (tmp_path / "study" / "spec.yaml").write_text("name: s\nanalysis:\n  baseline: DPO\n")
    proc = oxstudy("analyze", str(tmp_path / "study"), "--resamples", "200", "--json", "-")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["conventions"]["family"] == "pairwise" and result["conventions"]["baseline"] is None
    assert result["warnings"][0] == ("the spec's baseline DPO has no finished runs yet: no comparisons against it; "
                                     "comparing every pair instead")
    proc = oxstudy("analyze", str(tmp_path / "study"), "--baseline", "DPO")
    assert proc.returncode == 2 and "unknown baseline 'DPO'" in proc.stderr


def test_stats_claims_and_loaders_never_import_torch():
    code = ("import sys; import oxstudy.stats, oxstudy.stats.analyze, oxstudy.results_io, oxstudy.claims, "
            "oxstudy.commands.analysis; from oxstudy.stats import factorial, power; "
            "heavy = [m for m in ('torch', 'trl', 'transformers', 'lm_eval', 'peft') if m in sys.modules]; "
            "print(heavy); sys.exit(1 if heavy else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_names_that_look_like_markup_print_as_themselves(tmp_path):
    """Algorithm / benchmark names come from user files; rich must not parse them as markup."""
    runs = pd.read_csv(DATA / "analysis_runs.csv")
    names = {name: f"[/{name}]" for name in runs["algorithm"].unique()}
    runs["algorithm"] = runs["algorithm"].map(names)
    table = tmp_path / "runs.csv"
    runs.to_csv(table, index=False)
    proc = oxstudy("analyze", str(table), "--resamples", "200")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "MarkupError" not in proc.stderr
    assert all(name in proc.stdout for name in names.values())


def test_analyze_with_student_reports_it_and_flags_by_welch(tmp_path):
    """`--test student` on 5 narrow vs 3 wide seeds: the JSON's flag comes from Welch (Hsu), Student's
    p-value is a labelled extra field and an extra table column that sets no flag."""
    from scipy import stats

    narrow, wide = [0.50, 0.51, 0.49, 0.50, 0.52], [0.55, 0.75, 0.65]
    table = tmp_path / "runs.csv"
    table.write_text("model,algorithm,seed,benchmark,metric,value\n" + "".join(
        f"m,{alg},{s},x,acc,{v}\n" for alg, vals in (("wide", wide), ("narrow", narrow)) for s, v in enumerate(vals)))
    proc = oxstudy("analyze", str(table), "--baseline", "narrow", "--test", "student", "--resamples", "200",
                   "--json", "-")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    row = result["comparisons"][0]
    assert row["flag_set_by"] == "welch-hsu" and row["significant"] is False
    assert row["p_value_student"] == pytest.approx(stats.ttest_ind(wide, narrow).pvalue)
    assert row["p_value_student"] < 0.05 < row["p_value"]
    assert result["conventions"]["test"] == "welch" and "sets no flag" in result["conventions"]["reported_test"]["label"]
    proc = oxstudy("analyze", str(table), "--baseline", "narrow", "--test", "student", "--resamples", "200")
    assert proc.returncode == 0, proc.stderr
    assert "p student (no flag)" in proc.stdout and "welch test sets the flags" in proc.stdout
