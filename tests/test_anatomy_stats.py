"""Post-training statistics (oxstudy/stats/anatomy.py) and the claim kinds update_concentration,
larger_update, forgets_less (oxstudy/claims_anatomy.py) on synthetic run records with known values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from oxstudy.stats.anatomy import analyze_post_training, forgetting, holm_within, t_interval, welch

TYPES = ["q", "k", "v", "down"]


def _record(
    run_id: str,
    algorithm: str,
    seed: int,
    update_sq: dict[str, float],
    *,
    in_domain: float,
    knowledge: float,
    base_in: float = 0.2,
    base_knowledge: float = 0.6,
    frozen: bool = False,
) -> dict:
    """A done record whose anatomy has one 2-layer tensor per type, each with base norm 10."""
    names, kinds, layers, upd, basen = [], [], [], [], []
    for layer in (0, 1):
        for kind in TYPES:
            names.append(f"model.layers.{layer}.x.{kind}_proj.weight")
            kinds.append(kind)
            layers.append(layer)
            upd.append(math.sqrt(update_sq[kind] / 2))  # split over the two layers
            basen.append(10.0)
    return {
        "run_id": run_id, "status": "done",
        "cell": {"model": {"id": "m"}, "algorithm": {"id": algorithm, "method": algorithm.split("-")[0].lower()},
                 "seed": seed, "training": {"freeze": {"modules": ["q_proj"]}} if frozen else {}},
        "anatomy": {"params": {"name": names, "type": kinds, "layer": layers, "numel": [1] * len(names),
                               "base_norm": basen, "update_norm": upd, "relative": [u / 10 for u in upd]}},
        "metrics": {"arith": {"value": in_domain, "in_domain": True}, "compare": {"value": knowledge, "role": "knowledge"},
                    "sequence": {"value": 0.1, "in_domain": False}},
        "base": {"metrics": {"arith": {"value": base_in}, "compare": {"value": base_knowledge},
                             "sequence": {"value": 0.1}}},
        "kl_drift": {"value": 0.01 * seed},
    }  # fmt: skip


def _study() -> list[dict]:
    rng = np.random.default_rng(0)
    records = []
    for seed in range(5):
        jitter = rng.normal(0, 0.02)
        # SFT: q/k share ~0.6, large update, forgets (knowledge drops); GRPO: q/k ~0.3, small, keeps knowledge
        records.append(
            _record(
                f"s{seed}",
                "SFT",
                seed,
                {"q": 3 + jitter, "k": 3, "v": 2, "down": 2},
                in_domain=0.5 + jitter,
                knowledge=0.45 + jitter,
            )
        )
        records.append(
            _record(
                f"g{seed}",
                "GRPO",
                seed,
                {"q": 0.3, "k": 0.3 + jitter / 10, "v": 0.7, "down": 0.7},
                in_domain=0.3 + jitter,
                knowledge=0.6 - jitter,
            )
        )
    return records


def test_conventions_against_references() -> None:
    x = [0.2, 0.5, 0.4, 0.9, 0.3]
    low, high = stats.t.interval(0.95, len(x) - 1, loc=np.mean(x), scale=stats.sem(x))
    assert t_interval(x)["low"] == pytest.approx(low) and t_interval(x)["high"] == pytest.approx(high)
    y = [0.1, 0.2, 0.15]
    # 5 vs 3 runs, the 3-run arm with the smaller sd: scipy's Welch test
    assert welch(x, y)["test"] == "welch"
    assert welch(x, y)["p"] == pytest.approx(stats.ttest_ind(x, y, equal_var=False).pvalue)
    # 5 vs 2 runs: Hsu's df = 1, as oxstudy analyze's flag rule
    ref = stats.ttest_ind(x, y[:2], equal_var=False)
    assert welch(x, y[:2])["test"] == "welch-hsu"
    assert welch(x, y[:2])["p"] == pytest.approx(2 * stats.t.sf(abs(ref.statistic), 1))
    # Holm within one quantity of one model; an undefined p counts in m as p = 1 and stays NaN
    rows = [{"model": "m", "quantity": "q", "p": p} for p in (0.01, 0.04, 0.03)]
    rows += [{"model": "m", "quantity": "r", "p": 0.01}, {"model": "m", "quantity": "r", "p": float("nan")},
             {"model": "n", "quantity": "q", "p": 0.02}]
    holm_within(rows)
    assert [r["p_holm"] for r in rows[:3]] == pytest.approx([0.03, 0.06, 0.06])
    assert rows[3]["p_holm"] == pytest.approx(0.02) and math.isnan(rows[4]["p_holm"])
    assert rows[5]["p_holm"] == pytest.approx(0.02)


def test_shares_contrasts_and_heatmaps() -> None:
    post = analyze_post_training(_study())
    shares = {s["algorithm"]: s for s in post["shares"]}
    assert shares["SFT"]["share:q/k"]["mean"] == pytest.approx(0.6, abs=0.01)
    assert shares["GRPO"]["share:q/k"]["mean"] == pytest.approx(0.3, abs=0.01)
    # relative update = sqrt(sum update^2 / sum base^2) = sqrt(10 / (8 * 100))
    assert shares["SFT"]["relative_update"]["mean"] == pytest.approx(math.sqrt(10 / 800), rel=0.01)
    contrast = next(c for c in post["contrasts"] if c["quantity"] == "share:q/k")
    assert (contrast["a"], contrast["b"]) == ("SFT", "GRPO") and contrast["diff"] > 0 and contrast["p"] < 1e-6
    (sft_map,) = [h for h in post["heatmaps"] if h["algorithm"] == "SFT"]
    q = sft_map["types"].index("q")
    assert sft_map["relative"][0][q] == pytest.approx(math.sqrt(1.5) / 10, rel=0.02)


def test_forgetting_correlation_with_fisher_interval() -> None:
    data = forgetting(_study())
    assert data["knowledge_benchmarks"] == "role: knowledge"
    gains = np.array([r["in_domain_gain"] for r in data["runs"]])
    changes = np.array([r["knowledge_change"] for r in data["runs"]])
    r, p = stats.pearsonr(gains, changes)
    corr = data["correlation"]
    assert corr["r"] == pytest.approx(r) and corr["p"] == pytest.approx(p)
    z, se = np.arctanh(r), 1 / math.sqrt(len(gains) - 3)
    assert corr["low"] == pytest.approx(np.tanh(z - 1.96 * se)) and corr["high"] == pytest.approx(
        np.tanh(z + 1.96 * se)
    )
    assert r < -0.5  # SFT gains more and forgets more
    # without role: knowledge the out-of-domain benchmarks are used
    records = _study()
    for record in records:
        record["metrics"]["compare"].pop("role")
    assert forgetting(records)["knowledge_benchmarks"] == "in_domain: false"


def _write_study(tmp_path, records) -> str:
    from oxstudy.store import Store

    store = Store(tmp_path / "study")
    for record in records:
        record["cell"].update(run_id=record["run_id"], study="s")
        store.write_record(record)
    return str(store.root)


def test_claim_kinds_verdicts(tmp_path) -> None:
    from oxstudy.claims import load_claims, verify
    from oxstudy.results_io import Results

    root = _write_study(tmp_path, _study())
    claims = tmp_path / "claims.yaml"
    claims.write_text("""
description: scalpel vs hammer
claims:
  - {id: sft-qk, kind: update_concentration, algorithm: SFT, types: [q, k], at_least: 0.5, significant: true}
  - {id: grpo-qk, kind: update_concentration, algorithm: GRPO, types: [q, k], at_least: 0.5}
  - {id: sft-moves-more, kind: larger_update, a: SFT, b: GRPO, significant: true}
  - {id: grpo-moves-more, kind: larger_update, a: GRPO, b: SFT}
  - {id: rl-forgets-less, kind: forgets_less, a: GRPO, b: SFT, benchmark: compare, significant: true}
""")
    loaded = load_claims(claims)
    import pandas as pd

    results = Results(table=pd.DataFrame(), kind="runs", source=root)
    verdicts = {c["id"]: c["verdict"] for c in verify(loaded, results)["claims"]}
    assert verdicts == {
        "sft-qk": "SUPPORTED",
        "grpo-qk": "REFUTED",
        "sft-moves-more": "SUPPORTED",
        "grpo-moves-more": "REFUTED",
        "rl-forgets-less": "SUPPORTED",
    }


def test_claim_errors_are_located(tmp_path) -> None:
    from oxstudy.claims import load_claims, verify
    from oxstudy.errors import InputError, SpecError
    from oxstudy.results_io import Results

    root = _write_study(tmp_path, _study())
    bad_kind = tmp_path / "bad.yaml"
    bad_kind.write_text(
        "claims:\n  - {kind: update_concentration, algorithm: SFT, types: [q], at_least: 1.5}\n"
    )
    with pytest.raises(SpecError, match=r"bad.yaml:2: claims\[0\].at_least"):
        load_claims(bad_kind)
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("claims:\n  - {kind: larger_update, a: SFT, b: PPO}\n")
    import pandas as pd

    with pytest.raises(InputError, match=r"unknown.yaml:2: claims\[0\].b: unknown algorithm 'PPO'"):
        verify(load_claims(unknown), Results(table=pd.DataFrame(), kind="runs", source=root))


def test_report_section_renders_or_notes() -> None:
    import re

    from oxstudy.report.build import build_report, build_sections

    post = analyze_post_training(_study())
    _, sections = build_sections({"post_training": post}, {"study": "s"})
    section = next(s for s in sections if s.id == "anatomy")
    assert section.available and len(section.figures) == 3  # heatmaps, q/k shares, forgetting (no pass@k here)
    assert {t.name for t in section.tables} >= {"anatomy-shares", "anatomy-contrasts", "forgetting", "kl-drift"}
    assert any("No pass@k curves" in p for p in section.paragraphs)
    html = build_report({"post_training": post}, {"study": "s"})
    body = html[html.index('id="anatomy"'):]
    assert body.count("<svg") == 3 and re.search(r"r = -0\.\d\d \(95% CI", body)
    _, empty = build_sections({}, {"study": "s"})
    assert next(s for s in empty if s.id == "anatomy").note.startswith("No post-training measurements")
