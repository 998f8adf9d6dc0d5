"""Data-regime claim kinds in ``oxstudy verify``: plateau, matches_with_fewer_steps, transfer,
depends_on_alignment, on hand-built long tables whose verdicts are known by construction."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from oxstudy.claims import load_claims, verify
from oxstudy.errors import SpecError
from oxstudy.results_io import load_results


def noise(rng, n, sd=0.01):
    return rng.normal(0, sd, n)


@pytest.fixture(scope="module")
def study_files(tmp_path_factory):
    rng = np.random.default_rng(0)
    root = tmp_path_factory.mktemp("regime-claims")
    rows = []
    seeds = range(5)
    # difficulty: Full (100 steps), Easy (45 steps, same accuracy), Short (45 steps, 10 points worse)
    for algorithm, mean, steps in (("Full", 0.60, 100), ("Easy", 0.60, 45), ("Short", 0.50, 45)):
        rows += [
            {
                "model": "m",
                "algorithm": algorithm,
                "seed": s,
                "benchmark": "arith",
                "value": v,
                "steps": steps,
            }
            for s, v in zip(seeds, mean + noise(rng, 5), strict=True)
        ]
    # transfer: trained on gsm8k vs trained on math, evaluated on math_numeric
    for algorithm, mean in (("GRPO-gsm8k", 0.45), ("GRPO-math", 0.40)):
        rows += [
            {
                "model": "m",
                "algorithm": algorithm,
                "seed": s,
                "benchmark": "math_numeric",
                "value": v,
                "steps": 50,
            }
            for s, v in zip(seeds, mean + noise(rng, 5), strict=True)
        ]
    # alignment: OneShot matches GRPO where pass@k is high, falls behind where it is low
    passk = {("qwen", "arith"): 0.9, ("qwen", "logic"): 0.2, ("llama", "arith"): 0.7, ("llama", "logic"): 0.1}
    for (model, bench), p in passk.items():
        for arm, mean in (
            ("GRPO", 0.5),
            ("OneShot", 0.5 - 0.3 * (0.9 - p)),
            ("Random", 0.5 + 0.3 * (0.9 - p)),
        ):
            rows += [
                {
                    "model": model,
                    "algorithm": f"{arm}@{bench}",
                    "seed": s,
                    "benchmark": bench,
                    "value": v,
                    "steps": 50,
                }
                for s, v in zip(seeds, mean + noise(rng, 5), strict=True)
            ]
    pd.DataFrame(rows).to_csv(root / "runs.csv", index=False)
    pd.DataFrame(
        [{"model": m, "benchmark": b, "k": 16, "pass_at_k": p} for (m, b), p in passk.items()]
    ).to_csv(root / "passk.csv", index=False)
    # per-item outcomes with levels: Easy's gain over Base shrinks with level; Flat's does not
    items = []
    for algorithm, accuracy in (
        ("Base", {1: 0.3, 2: 0.3, 3: 0.3}),
        ("Easy", {1: 0.8, 2: 0.6, 3: 0.4}),
        ("Flat", {1: 0.5, 2: 0.5, 3: 0.5}),
        ("Rising", {1: 0.4, 2: 0.6, 3: 0.8}),
    ):
        for seed in seeds:
            for level, p in accuracy.items():
                scores = rng.random(100) < p
                items += [
                    {
                        "model": "m",
                        "algorithm": algorithm,
                        "seed": seed,
                        "benchmark": "arith",
                        "doc_id": level * 1000 + j,
                        "score": float(x),
                        "level": level,
                    }
                    for j, x in enumerate(scores)
                ]
    pd.DataFrame(items).to_csv(root / "items.csv", index=False)
    return root


def run_claims(root, claims):
    path = root / "claims.yaml"
    path.write_text(yaml.safe_dump({"claims": claims}))
    results = load_results([root / "runs.csv"], items=root / "items.csv")
    return {c["id"]: c["verdict"] for c in verify(load_claims(path), results, n_resamples=200)["claims"]}


def test_regime_verdicts(study_files):
    verdicts = run_claims(
        study_files,
        [
            {
                "id": "easy-45",
                "kind": "matches_with_fewer_steps",
                "candidate": "Easy",
                "full": "Full",
                "model": "m",
                "benchmark": "arith",
                "fraction": 0.45,
                "margin": 0.03,
            },
            {
                "id": "easy-30",
                "kind": "matches_with_fewer_steps",
                "candidate": "Easy",
                "full": "Full",
                "model": "m",
                "benchmark": "arith",
                "fraction": 0.30,
                "margin": 0.03,
            },
            {
                "id": "short",
                "kind": "matches_with_fewer_steps",
                "candidate": "Short",
                "full": "Full",
                "model": "m",
                "benchmark": "arith",
                "fraction": 0.5,
                "margin": 0.03,
            },
            {
                "id": "transfer",
                "kind": "transfer",
                "a": "GRPO-gsm8k",
                "b": "GRPO-math",
                "model": "m",
                "benchmark": "math_numeric",
                "at_least": 0.03,
                "significant": True,
            },
            {
                "id": "transfer-reversed",
                "kind": "transfer",
                "a": "GRPO-math",
                "b": "GRPO-gsm8k",
                "model": "m",
                "benchmark": "math_numeric",
            },
            {
                "id": "oneshot",
                "kind": "depends_on_alignment",
                "shortcut": "OneShot",
                "standard": "GRPO",
                "alignment": "passk.csv",
                "k": 16,
            },
            {
                "id": "random",
                "kind": "depends_on_alignment",
                "shortcut": "Random",
                "standard": "GRPO",
                "alignment": [
                    {"model": "qwen", "benchmark": "arith", "pass_at_k": 0.9},
                    {"model": "qwen", "benchmark": "logic", "pass_at_k": 0.2},
                    {"model": "llama", "benchmark": "arith", "pass_at_k": 0.7},
                    {"model": "llama", "benchmark": "logic", "pass_at_k": 0.1},
                ],
            },
            {
                "id": "plateau",
                "kind": "plateau",
                "algorithm": "Easy",
                "reference": "Base",
                "model": "m",
                "benchmark": "arith",
            },
            {
                "id": "flat",
                "kind": "plateau",
                "algorithm": "Flat",
                "reference": "Base",
                "model": "m",
                "benchmark": "arith",
            },
            {
                "id": "rising",
                "kind": "plateau",
                "algorithm": "Rising",
                "reference": "Base",
                "model": "m",
                "benchmark": "arith",
            },
        ],
    )
    assert verdicts == {
        "easy-45": "SUPPORTED",
        "easy-30": "REFUTED",
        "short": "REFUTED",
        "transfer": "SUPPORTED",
        "transfer-reversed": "REFUTED",
        "oneshot": "SUPPORTED",
        "random": "REFUTED",
        "plateau": "SUPPORTED",
        "flat": "INCONCLUSIVE",
        "rising": "REFUTED",
    }


def test_regime_claims_are_validated_with_locations(tmp_path):
    path = tmp_path / "claims.yaml"
    path.write_text(
        "claims:\n  - kind: matches_with_fewer_steps\n    candidate: A\n    full: B\n    model: m\n"
        "    benchmark: b\n    fraction: 1.5\n"
    )
    with pytest.raises(
        SpecError, match=r"claims.yaml:7: claims\[0\].fraction: Input should be less than or equal"
    ):
        load_claims(path)


def test_report_sections_show_regime_data_and_notes(study_files):
    from oxstudy.report.regime_section import regime_analysis, regime_sections

    results = load_results([study_files / "runs.csv"], items=study_files / "items.csv")
    results.spec = {"analysis": {"regime": {"full": "Full", "reference": "Base", "margin": 0.03}}}
    block = regime_analysis(results)
    steps = {r["candidate"]: r for r in block["steps_to_match"] if r["benchmark"] == "arith"}
    assert steps["Easy"]["fraction"] == pytest.approx(0.45) and steps["Easy"]["non_inferior"] is True
    assert steps["Short"]["non_inferior"] is False
    assert {r["algorithm"]: r["plateau"] for r in block["plateau"]}["Easy"] is True
    sections = {s.id: s for s in regime_sections({"regime": block}, styles={})}
    assert list(sections) == ["by-level", "steps-to-match", "transfer", "alignment"]
    assert sections["by-level"].figures and len(sections["by-level"].tables) == 2
    assert sections["steps-to-match"].tables and not sections["steps-to-match"].note
    assert sections["transfer"].note.startswith(
        "All arms train on the same dataset"
    )  # a table has no records
    assert sections["alignment"].note.startswith("No alignment analysis")
    assert (
        regime_sections({"regime": {"requested": False}}, styles={}) == []
    )  # plain comparisons: nothing added


def test_alignment_table_is_read_from_a_study_dir_given_relative(tmp_path, monkeypatch):
    """`oxstudy report studies/NAME` passes a relative study dir: the cached base pass@k table is
    found there (it was looked up under studies/NAME/alignment/studies/NAME/alignment/)."""
    import json
    from pathlib import Path

    from oxstudy.report.regime_section import _alignment_table

    table = tmp_path / "studies" / "s" / "alignment" / "base_pass_at_k.json"
    table.parent.mkdir(parents=True)
    table.write_text(json.dumps([{"model": "tiny", "benchmark": "arith", "k": k, "pass_at_k": v}
                                 for k, v in ((1, 0.1), (8, 0.4))]))
    monkeypatch.chdir(tmp_path)
    frame = _alignment_table({"k": [1, 8], "measure_k": 8}, Path("studies/s"), None)
    assert frame.to_dict("records") == [{"model": "tiny", "task": "arith", "pass_at_k": 0.4}]


def test_steps_to_match_reads_evaluations_during_training_from_the_records(tmp_path):
    """measure.eval_every curves (train.eval_curve of each record, plus the final evaluation at the
    steps taken) give steps-to-match per seed: the first step within the margin of the full arm's
    mean final accuracy, over the full arm's mean steps; t-interval over the seeds that match."""
    import json
    from types import SimpleNamespace

    from scipy import stats

    from oxstudy.report.regime_section import regime_analysis

    rows = []
    curves = {1: [(1, 0.2), (2, 0.49)], 2: [(1, 0.1), (2, 0.3)], 3: [(1, 0.48), (2, 0.5)]}
    finals = {1: 0.5, 2: 0.47, 3: 0.5}
    for seed in (1, 2, 3):
        for algorithm, steps, value, curve in (("Full", 4, 0.5, []), ("Easy", 3, finals[seed], curves[seed])):
            where = tmp_path / f"{algorithm}{seed}.json"
            where.write_text(json.dumps({"train": {"steps": steps, "eval_curve": [
                {"step": s, "benchmark": "arith", "value": v} for s, v in curve]}}))
            rows.append({"run_id": f"{algorithm}{seed}", "_where": str(where), "model": "tiny", "algorithm": algorithm,
                         "seed": seed, "benchmark": "arith", "value": value})
    results = SimpleNamespace(kind="runs", table=pd.DataFrame(rows), items=None,
                              spec={"analysis": {"regime": {"full": "Full", "margin": 0.02}}})
    (row,) = regime_analysis(results)["steps_to_match"]
    assert row["fraction"] == pytest.approx(0.75)  # steps taken: 3 of 4, from the final evaluations
    fractions = np.array([2 / 4, 1 / 4])  # seed 1 reaches 0.48 at step 2, seed 3 at step 1; seed 2 never
    half = stats.t.ppf(0.975, 1) * fractions.std(ddof=1) / np.sqrt(2)
    assert row["never_matched"] == 1 and row["curve_fraction"] == pytest.approx(0.375)
    assert (row["curve_ci_low"], row["curve_ci_high"]) == pytest.approx((0.375 - half, 0.375 + half))
