"""The HTML report and its exports: sections, escaping, self-containment, export formats.

Inputs are small synthetic long tables analysed by the real statistics engine, plus a few
hand-built analysis dicts where the test needs exact numbers (headline wording).
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from oxstudy.report import export
from oxstudy.report.build import ReportMeta, build_report, build_sections
from oxstudy.report.headlines import comparison_headlines, headlines
from oxstudy.report.inputs import meta_from_table
from oxstudy.report.plots import BASELINE_COLOR, algorithm_styles
from oxstudy.stats.analyze import analyze

HOSTILE = "<script>alert(1)</script>"
SECTION_IDS = ["summary", "results", "seeds", "comparisons", "pairwise", "scaling", "rankings", "factorial",
               "leverage", "power", "claims", "curves", "anatomy"]


def long_table(algorithms=("dpo", "ipo", "simpo"), seeds=4, models=None, benchmarks=("gsm8k", "math")):
    rng = np.random.default_rng(3)
    models = models or {"m-70M": 7e7, "m-410M": 4.1e8, "m-1.4B": 1.4e9}
    rows = []
    for model, params in models.items():
        for index, algorithm in enumerate(algorithms):
            for seed in range(seeds):
                for benchmark in benchmarks:
                    value = 0.2 + 0.05 * np.log10(params / 7e7) + 0.02 * index + rng.normal(0, 0.01)
                    rows.append({"model": model, "algorithm": algorithm, "seed": seed, "benchmark": benchmark,
                                 "value": float(value), "params": params, "in_domain": benchmark == "gsm8k",
                                 "finetune": "lora" if seed % 2 else "full"})
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def hostile_report() -> tuple[dict, ReportMeta, str]:
    table = long_table(algorithms=("dpo", HOSTILE, "a$b$_&%"))
    analysis = analyze(table, baseline="dpo", factors=["params", "finetune"], n_resamples=300)
    meta = meta_from_table(table, study="study <i>x</i>", source="table.csv", input_kind="long table")
    return analysis, meta, build_report(analysis, meta)


def sections_of(html: str) -> dict[str, str]:
    parts = re.split(r'<section id="([a-z-]+)">', html)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts), 2)}


def test_all_twelve_sections_in_order(hostile_report) -> None:
    _, _, html = hostile_report
    assert re.findall(r'<section id="([a-z-]+)">', html) == SECTION_IDS
    body = sections_of(html)
    for filled in ("results", "seeds", "comparisons", "scaling", "rankings", "factorial", "leverage", "power"):
        assert 'class="note"' not in body[filled].split("<figure>")[0], filled
    for absent in ("pairwise", "claims", "curves"):
        assert 'class="note"' in body[absent], absent
    assert body["seeds"].count("<svg") >= 2  # one strip plot per benchmark
    assert "<table" in body["comparisons"] and "<svg" in body["comparisons"]


def test_hostile_names_render_as_text_everywhere(hostile_report) -> None:
    _, _, html = hostile_report
    assert "<script" not in html.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "study &lt;i&gt;x&lt;/i&gt;" in html
    # inside the SVG figures too: matplotlib writes the name as escaped text
    svgs = re.findall(r"<svg.*?</svg>", html, flags=re.S)
    assert svgs
    assert any("&lt;script&gt;alert(1)&lt;/script&gt;" in svg for svg in svgs)
    # a dollar sign must not switch matplotlib to mathtext (it would eat the $...$)
    assert any("a$b$_&amp;%" in svg for svg in svgs)


def test_report_is_self_contained(hostile_report) -> None:
    _, _, html = hostile_report
    assert not re.search(r"""(?:src|href|xlink:href)\s*=\s*["']?\s*(?:https?:|//)""", html, flags=re.I)
    assert not re.search(r"url\(\s*['\"]?(?:https?:|//)", html, flags=re.I)
    assert "@import" not in html
    assert not re.search(r"https?://", html.replace("http://www.w3.org/", ""))  # SVG namespaces only
    assert 'http-equiv="Content-Security-Policy"' in html


def test_svg_ids_are_unique_across_figures(hostile_report) -> None:
    _, _, html = hostile_report
    ids = re.findall(r'\sid="([^"]+)"', html)
    clip_ids = [i for i in ids if not re.fullmatch(r"(figure|axes|patch|line2d|text|matplotlib\.axis|xtick|ytick|"
                                                   r"legend|PolyCollection|LineCollection|PathCollection|"
                                                   r"QuadMesh|image|FillBetweenPolyCollection)_\d+", i)]
    referenced = set(re.findall(r'url\(#([^)]+)\)', html)) | set(re.findall(r'href="#([^"]+)"', html))
    duplicated = {i for i in clip_ids if clip_ids.count(i) > 1}
    assert not (duplicated & referenced), sorted(duplicated & referenced)[:5]


def test_best_mean_is_bold_and_missing_cells_marked() -> None:
    table = long_table()
    table = table[~((table["model"] == "m-1.4B") & (table["algorithm"] == "ipo"))]
    analysis = analyze(table, baseline="dpo", n_resamples=200)
    html = build_report(analysis, meta_from_table(table, study="s"))
    results = sections_of(html)["results"]
    assert 'class="missing"' in results
    # simpo has the largest effect by construction: bold in every column
    bold_rows = re.findall(r"<tr><td class=\"name\">([^<]+)</td>(.*?)</tr>", results, flags=re.S)
    simpo = [cells for name, cells in bold_rows if name == "simpo"]
    assert simpo and all(cells.count("best") == 3 for cells in simpo)


def test_summary_statistics_input_omits_per_seed_sections() -> None:
    summary = pd.DataFrame([
        {"model": m, "algorithm": a, "benchmark": "gsm8k", "mean": mean, "sd": 0.01, "n": 5}
        for m in ("7B", "70B") for a, mean in (("dpo", 0.5), ("kto", 0.52), ("orpo", 0.47))
    ])
    analysis = analyze(summary, baseline="dpo", n_resamples=200)
    meta, sections = build_sections(analysis, meta_from_table(summary, study="paper table"))
    by_id = {s.id: s for s in sections}
    assert not by_id["seeds"].available and "summary statistics" in by_id["seeds"].note
    assert by_id["results"].available and by_id["comparisons"].available
    html = build_report(analysis, meta)
    assert "No per-seed values in the input" in html


def test_empty_analysis_still_renders_every_section_with_a_note() -> None:
    meta, sections = build_sections({}, {"study": "empty"})
    assert [s.id for s in sections] == SECTION_IDS
    assert all(not s.available for s in sections[1:])
    assert all(s.note and "\n" not in s.note for s in sections[1:])
    html = build_report({}, {"study": "empty"})
    assert html.count('class="note"') == len(SECTION_IDS) - 1


def test_headline_wording_bonferroni() -> None:
    rows = [{"model": "7B", "benchmark": "gsm8k", "metric": "acc", "family": "vs-baseline", "a": f"v{i}",
             "b": "DPO", "diff": 0.01, "p_value": 0.01, "p_adjusted": 0.19, "significant": False,
             "family_size": 19} for i in range(19)]
    analysis = {"conventions": {"baseline": "DPO", "alpha": 0.05, "correction": "bonferroni",
                                "points_per_unit": 100}, "comparisons": rows}
    assert comparison_headlines(analysis) == [
        "At 7B on gsm8k no variant significantly beats DPO after Bonferroni correction "
        "(19 comparisons, alpha 0.0026)."]
    rows[3].update(significant=True, diff=0.032, p_adjusted=0.004)
    line = comparison_headlines(analysis)[0]
    assert line.startswith("At 7B on gsm8k 1 of 19 variants significantly beat DPO") and "v3 (+3.2 pp" in line


def test_headlines_from_real_analysis(hostile_report) -> None:
    analysis, meta, _ = hostile_report
    lines = headlines(analysis, meta=meta)
    assert any("leverage from most to least" in line for line in lines)
    assert any("minimum detectable difference" in line for line in lines)
    assert sum(line.startswith("At ") for line in lines) == 6  # 3 models x 2 benchmarks


def test_claims_and_curves_sections() -> None:
    table = long_table(seeds=3)
    analysis = analyze(table, baseline="dpo", n_resamples=200)
    claims = [{"description": "simpo beats dpo at m-1.4B", "kind": "difference", "verdict": "SUPPORTED",
               "evidence": {"diff": 0.04, "p_adjusted": 0.001}},
              {"id": "c2", "kind": "best", "verdict": "REFUTED", "evidence": "best is simpo"}]
    curves = [{"model": "m-70M", "algorithm": a, "seed": s, "step": [1, 2, 3], "loss": [1.0, 0.8, 0.7],
               "reward": [0.1, 0.2, 0.3]} for a in ("dpo", "simpo") for s in range(2)]
    html = build_report(analysis, meta_from_table(table, study="s"), claims=claims, curves=curves)
    body = sections_of(html)
    assert "SUPPORTED" in body["claims"] and 'class="bad"' in body["claims"]
    assert "<svg" in body["curves"] and 'class="note"' not in body["curves"]


def test_pairwise_family_fills_the_matrix() -> None:
    table = long_table(seeds=3)
    analysis = analyze(table, family="pairwise", n_resamples=200)
    body = sections_of(build_report(analysis, meta_from_table(table, study="s")))
    assert "<svg" in body["pairwise"] and 'class="note"' not in body["pairwise"].split("<figure>")[0]
    assert 'class="note"' in body["comparisons"]  # no baseline, no forest plot


def test_palette_is_consistent_and_distinct() -> None:
    names = [f"alg{i}" for i in range(20)]
    styles = algorithm_styles(["base", *names], baseline="base")
    assert styles["base"].color == BASELINE_COLOR
    pairs = {(s.color, s.marker, s.linestyle) for s in styles.values()}
    assert len(pairs) == 21
    assert algorithm_styles(["base", *names], baseline="base") == styles


# --------------------------------------------------------------------------- exports


@pytest.fixture(scope="module")
def analysis_for_export() -> dict:
    table = long_table(algorithms=("dpo", "ipo_v2", "a&b%", "simpo"), seeds=3)
    return analyze(table, baseline="dpo", n_resamples=200)


def test_csv_export_reads_back(tmp_path: Path, analysis_for_export: dict) -> None:
    paths = export.export_tables(analysis_for_export, "csv", tmp_path / "out.html")
    assert [p.name for p in paths] == ["out.cells.csv", "out.comparisons.csv"]
    cells = pd.read_csv(paths[0])
    assert len(cells) == len(analysis_for_export["cells"])
    assert {"model", "algorithm", "benchmark", "n", "mean", "sd", "ci_low", "ci_high"} <= set(cells.columns)
    assert cells["mean"].dtype.kind == "f" and set(cells["algorithm"]) == {"dpo", "ipo_v2", "a&b%", "simpo"}
    expected = pd.DataFrame(analysis_for_export["cells"])
    np.testing.assert_allclose(cells["mean"], expected["mean"])
    comparisons = pd.read_csv(paths[1])
    assert len(comparisons) == len(analysis_for_export["comparisons"])
    np.testing.assert_allclose(comparisons["p_value"], pd.DataFrame(analysis_for_export["comparisons"])["p_value"])


def test_latex_export_is_booktabs_and_escaped(tmp_path: Path, analysis_for_export: dict) -> None:
    (path,) = export.export_tables(analysis_for_export, "tex", tmp_path / "out.html")
    tex = path.read_text()
    n_tables = tex.count("\\begin{tabular}")
    assert n_tables == 3  # two benchmarks + comparisons
    for rule in ("\\toprule", "\\midrule", "\\bottomrule"):
        assert tex.count(rule) == n_tables
    assert "a\\&b\\%" in tex and "ipo\\_v2" in tex
    assert "\\textbf{" in tex and "$\\pm$" in tex
    # every row of a tabular has as many cells as the header
    for body in re.findall(r"\\begin\{tabular\}\{(\w+)\}(.*?)\\end\{tabular\}", tex, flags=re.S):
        spec, content = body
        rows = [r for r in content.split("\\\\") if "&" in r or r.strip().startswith(("algorithm", "model"))]
        for row in rows:
            cells = re.split(r"(?<!\\)&", row)
            assert len(cells) == len(spec), row


def test_markdown_export_table_shape(tmp_path: Path, analysis_for_export: dict) -> None:
    (path,) = export.export_tables(analysis_for_export, "md", tmp_path / "out.html")
    text = path.read_text()
    blocks = [b for b in text.split("### ") if b.strip()]
    assert blocks[0].startswith("**Warnings**")  # the analysis' warnings come first
    blocks = blocks[1:]
    assert len(blocks) == 3
    for block in blocks:
        lines = [line for line in block.splitlines() if line.startswith("|")]
        widths = {len(re.split(r"(?<!\\)\|", line)) for line in lines}
        assert len(widths) == 1, block[:200]
        assert re.fullmatch(r"\|---(\|---:)+\|", lines[1])
    assert "**" in text and "a&amp;b%" in text


def test_json_export_is_the_analysis(tmp_path: Path, analysis_for_export: dict) -> None:
    import json

    (path,) = export.export_tables(analysis_for_export, "json", tmp_path / "out.html")
    assert json.loads(path.read_text()) == json.loads(json.dumps(analysis_for_export))
    # strict JSON: a NaN anywhere (an undefined measurement) is written as null
    (path,) = export.export_tables({**analysis_for_export, "extra": {"gain": float("nan")}}, "json", tmp_path / "n")
    assert json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"non-strict JSON: {c}"))["extra"] == {
        "gain": None}


def test_unknown_export_format_is_an_input_error(tmp_path: Path, analysis_for_export: dict) -> None:
    from oxstudy.errors import InputError

    with pytest.raises(InputError, match="--format"):
        export.export_tables(analysis_for_export, "docx", tmp_path / "x.html")


def test_markdown_and_latex_escape_a_hostile_name(tmp_path: Path) -> None:
    table = long_table(algorithms=("dpo", HOSTILE), seeds=2, benchmarks=("gsm8k",))
    analysis = analyze(table, baseline="dpo", n_resamples=100)
    tables = export.main_tables(analysis)
    assert "<script>" not in export.to_markdown(tables)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in export.to_markdown(tables)
    assert "\\textless{}script\\textgreater{}" in export.to_latex(tables)


def test_markdown_from_string_buffer_parses_with_pandas(tmp_path: Path, analysis_for_export: dict) -> None:
    # Markdown tables are pipe-separated: pandas reads the comparisons table back.
    text = export.to_markdown(export.main_tables(analysis_for_export)[-1:])
    lines = [line for line in text.splitlines() if line.startswith("|") and not line.startswith("|---")]
    frame = pd.read_csv(io.StringIO("\n".join(line.strip("|") for line in lines)), sep="|")
    assert len(frame) == len(analysis_for_export["comparisons"])


# --------------------------------------------------------------------------- the command


def write_study(root: Path, *, hostile: bool = False) -> Path:
    """A small study directory written through the real store: 3 algorithms x 2 models x
    3 seeds, 2 benchmarks with per-item scores, training curves, one failed run."""
    from oxstudy.store import Store

    store = Store(root)
    rng = np.random.default_rng(11)
    algorithms = ["dpo", HOSTILE if hostile else "ipo", "simpo"]
    index = 0
    for model, params in (("tiny", 7e7), ("small", 4.1e8)):
        for a, algorithm in enumerate(algorithms):
            for seed in range(3):
                index += 1
                run_id = f"{index:016x}"
                cell = {"run_id": run_id, "study": "mini", "seed": seed,
                        "model": {"id": model, "params": params, "finetune": "full"},
                        "algorithm": {"id": algorithm, "method": algorithm if algorithm != HOSTILE else "dpo"}}
                timings = {"data_s": 1.0, "train_s": 30.0, "eval_s": 5.0, "total_s": 36.0}
                provenance = {"oxstudy": "0.1.0", "torch": "2.13.0", "trl": "1.16.0", "git_commit": "abc123",
                              "device": "cpu", "python": "3.11"}
                if model == "small" and algorithm == "simpo" and seed == 2:
                    store.write_record({"run_id": run_id, "study": "mini", "cell": cell, "status": "failed",
                                        "error": {"reason": "CUDA <oom>", "log_tail": "..."}, "attempts": 2,
                                        "timings": timings, "provenance": provenance})
                    continue
                metrics, items = {}, {}
                for bench in ("gsm8k", "math"):
                    p = 0.2 + 0.1 * (params > 1e8) + 0.03 * a
                    scores = (rng.random(40) < p).astype(float).tolist()
                    metrics[bench] = {"task": bench, "metric": "exact_match,strict-match",
                                      "value": float(np.mean(scores)), "stderr": 0.05, "n": 40,
                                      "in_domain": bench == "gsm8k"}
                    items[bench] = {"doc_id": list(range(40)), "doc_hash": [f"h{i}" for i in range(40)],
                                    "score": scores}
                steps = list(range(1, 11))
                curves = {"step": steps, "loss": [1.0 / s + 0.01 * a for s in steps],
                          "reward": [0.1 * s for s in steps]}
                store.write_record({"run_id": run_id, "study": "mini", "cell": cell, "status": "done",
                                    "error": None, "attempts": 1, "timings": timings, "metrics": metrics,
                                    "items": items, "curves": curves, "provenance": provenance})
    return root


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    from oxstudy.cli import main

    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_report_on_a_study_directory(tmp_path: Path, capsys) -> None:
    import json

    study = write_study(tmp_path / "studies" / "mini", hostile=True)
    target = tmp_path / "reports" / "mini.html"
    code, out, err = run_cli(["report", str(study), "-o", str(target), "--baseline", "dpo", "--resamples", "300",
                              "-f", "html", "-f", "tex", "--json"], capsys)
    assert code == 0, err
    result = json.loads(out)
    assert result["outputs"] == [str(target), str(target.with_suffix(".tex"))] and result["seconds"] > 0
    # the analysis' warnings reach the terminal too (here: the failed run left out)
    assert "warning:" in err and "failed" in err.split("warning:", 1)[1], err
    html = target.read_text()
    body = sections_of(html)
    assert "<script" not in html.lower() and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "CUDA &lt;oom&gt;" in body["summary"]  # the failed run and its reason
    assert "17 done, 1 failed, 0 missing of 18 planned" in body["summary"]
    assert "2.13.0" in body["summary"] and "abc123" in body["summary"]  # provenance
    assert "train" in body["summary"] and "min" in body["summary"]  # compute used (18 x 30 s)
    assert "<svg" in body["curves"] and 'class="note"' not in body["curves"]
    assert "<svg" in body["seeds"]
    assert "\\toprule" in target.with_suffix(".tex").read_text()


def test_cli_report_bad_input_is_one_line(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("model,algorithm,seed,benchmark,value\nm,a,0,b,notanumber\n")
    code, out, err = run_cli(["report", str(bad), "-o", str(tmp_path / "r.html")], capsys)
    assert code == 2
    assert err.startswith("error:") and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "r.html").exists()


def test_cli_report_with_claims(tmp_path: Path, capsys) -> None:
    data = Path(__file__).parent / "data"
    target = tmp_path / "claims.html"
    code, out, err = run_cli(["report", str(data / "analysis_runs.csv"), "--claims", str(data / "analysis_claims.yaml"),
                              "--baseline", "dpo", "--resamples", "300", "-o", str(target)], capsys)
    assert code == 0, err
    assert out.strip() == str(target)
    body = sections_of(target.read_text())["claims"]
    assert 'class="note"' not in body
    assert "simpo-worse-large" in body or "SimPO is significantly worse" in body
    verdicts = re.findall(r'<td class="(ok|bad|warn)">(SUPPORTED|REFUTED|INCONCLUSIVE)</td>', body)
    assert len(verdicts) >= 5


def test_partial_study_with_spec_baseline_missing_still_reports(tmp_path: Path, capsys) -> None:
    import yaml

    study = write_study(tmp_path / "studies" / "mini")
    (study / "spec.yaml").write_text(yaml.safe_dump({"name": "mini", "analysis": {"baseline": "grpo"}}))
    target = tmp_path / "partial.html"
    code, out, err = run_cli(["report", str(study), "-o", str(target), "--resamples", "200"], capsys)
    assert code == 0, err
    html = target.read_text()
    assert "baseline grpo has no finished runs yet" in html
    assert "<svg" in sections_of(html)["pairwise"]  # falls back to pairwise comparisons
    assert "<details><summary>Study spec</summary><pre>" in html and "name: mini" in html


def test_curves_with_only_null_rewards_draw_no_empty_panel() -> None:
    table = long_table(seeds=2)
    analysis = analyze(table, baseline="dpo", n_resamples=100)
    curves = [{"model": "m-70M", "algorithm": "dpo", "seed": 0, "step": [1, 2], "loss": [0.7, 0.6],
               "reward": [None, None], "kl": [None, None]}]
    body = sections_of(build_report(analysis, meta_from_table(table, study="s"), curves=curves))["curves"]
    assert "m-70M · loss" in body and "reward" not in body.split("<figure>")[1]


def test_item_level_checkpoint_results_are_shown_with_their_test() -> None:
    from oxstudy.stats.synthetic import synthetic_study

    runs, items = synthetic_study(n_algorithms=3, n_models=2, n_seeds=3, n_benchmarks=1, n_items=60)
    analysis = analyze(runs, items=items, baseline="dpo", n_resamples=200)
    assert any(isinstance(c.get("checkpoints"), dict) for c in analysis["comparisons"])
    body = sections_of(build_report(analysis, meta_from_table(runs, study="s")))["comparisons"]
    assert "<th scope=\"col\">flag_set_by</th>" in body and ">welch<" in body
    assert "<th scope=\"col\">checkpoint_mcnemar</th>" in body and "not a test between algorithms" in body


def test_cli_outputs_to_a_folder_a_device_and_a_file_in_the_way(tmp_path: Path, capsys) -> None:
    study = write_study(tmp_path / "studies" / "mini")
    folder = tmp_path / "out"
    folder.mkdir()
    code, out, err = run_cli(["report", str(study), "-o", str(folder), "--resamples", "200"], capsys)
    assert code == 0, err
    assert (folder / "mini.html").is_file() and not (tmp_path / "out.html").exists()
    # a full disk: one line naming the device, nothing created beside it
    if Path("/dev/full").exists():
        for argv in (["report", str(study), "-o", "/dev/full", "--resamples", "200"],
                     ["analyze", str(study), "--resamples", "200", "--json", "/dev/full"]):
            code, out, err = run_cli(argv, capsys)
            assert code == 2 and err.strip() == "error: /dev/full: No space left on device (disk full)", err
        assert not Path("/dev/full.html").exists()
    # a parent that is a file
    (tmp_path / "afile").write_text("x")
    code, out, err = run_cli(["report", str(study), "-o", str(tmp_path / "afile" / "r.html")], capsys)
    assert code == 2 and err.strip() == f"error: {tmp_path / 'afile'}: is a file, not a directory", err


def test_a_bad_analysis_setting_in_the_study_spec_is_blamed_on_the_spec(tmp_path: Path, capsys) -> None:
    study = write_study(tmp_path / "studies" / "mini")
    (study / "spec.yaml").write_text("name: mini\nanalysis:\n  alpha: 2\n  baseline: dpo\n")
    code, out, err = run_cli(["analyze", str(study), "--resamples", "100"], capsys)
    assert code == 2 and err.strip() == f"error: {study}/spec.yaml: analysis.alpha: Input should be less than 1, got 2"
    code, out, err = run_cli(["analyze", str(study), "--resamples", "100", "--alpha", "0.1", "--json", "-"], capsys)
    assert code == 0, err  # a flag given on the command line replaces the spec's value
    code, out, err = run_cli(["report", str(study), "--resamples", "100", "-o", str(tmp_path / "r.html")], capsys)
    assert code == 2 and err.strip() == f"error: {study}/spec.yaml: analysis.alpha: Input should be less than 1, got 2"
    code, out, err = run_cli(["report", str(study), "--resamples", "100", "--alpha", "0.1",
                              "-o", str(tmp_path / "r.html")], capsys)
    assert code == 0, err


def test_markdown_and_latex_exports_state_their_conventions_and_warnings(tmp_path: Path,
                                                                          analysis_for_export: dict) -> None:
    analysis = {**analysis_for_export, "warnings": ["1 corrupt record left out: runs/x.json"]}
    (md,) = export.export_tables(analysis, "md", tmp_path / "out")
    (tex,) = export.export_tables(analysis, "tex", tmp_path / "out")
    text, latex = md.read_text(), tex.read_text()
    correction = analysis["conventions"]["correction"]
    for body in (text, latex.replace("\\pm", "±").replace("$", "").replace("\\%", "%")):
        assert "Mean ± sample sd over seeds" in body and "95% t-interval" in body
        assert "two-sided Welch t-test over seeds" in body and f"{correction} correction" in body
    assert "- 1 corrupt record left out: runs/x.json" in text
    assert "% warning: 1 corrupt record left out: runs/x.json" in latex
    assert latex.count("\\footnotesize") == latex.count("\\begin{table}")
