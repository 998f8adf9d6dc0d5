"""Time ``oxstudy report`` on a synthetic 240-run study (target: under 10 s on 2 cores).

12 algorithms x 4 scales x 5 seeds = 240 runs, each evaluated on 3 benchmarks, with a
params x finetune factorial and a training curve per run. The statistics engine runs first
(timed separately: the target is for report generation, i.e. figures, tables and HTML), then
the report and every export are built from its output.

Usage: .venv/bin/python benchmarks/bench_report.py [--resamples 2000] [--out reports/bench.html]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path


def synthetic_inputs(n_items: int):
    import numpy as np

    from oxstudy.stats.synthetic import synthetic_study

    runs, items = synthetic_study(n_algorithms=12, n_models=4, n_seeds=5, n_benchmarks=3, n_items=n_items)
    runs["finetune"] = np.where(runs["seed"] % 2 == 1, "lora", "full")
    rng = np.random.default_rng(0)
    curves = []
    for (model, algorithm, seed), _ in runs.groupby(["model", "algorithm", "seed"], sort=False):
        steps = list(range(1, 101))
        base = rng.uniform(0.6, 1.2)
        curves.append({"model": model, "algorithm": algorithm, "seed": int(seed), "step": steps,
                       "loss": [base / (1 + 0.05 * s) for s in steps],
                       "reward": [0.01 * s * base for s in steps]})
    return runs, items, curves


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples for the analysis")
    parser.add_argument("--items", type=int, default=0,
                        help="items per benchmark passed to the analysis (0: run values only, no item-level tests)")
    parser.add_argument("--out", type=Path, default=Path("reports") / "bench_report.html")
    args = parser.parse_args()

    from oxstudy.report.build import build_report, write_report
    from oxstudy.report.export import export_tables
    from oxstudy.report.inputs import meta_from_table
    from oxstudy.stats.analyze import analyze

    runs, items, curves = synthetic_inputs(args.items or 200)
    n_runs = runs[["model", "algorithm", "seed"]].drop_duplicates().shape[0]
    t0 = time.perf_counter()
    analysis = analyze(runs, items=items if args.items else None, baseline="dpo", correction="bonferroni",
                       factors=["params", "finetune"], n_resamples=args.resamples)
    t_analysis = time.perf_counter() - t0

    import matplotlib  # noqa: F401 - imported before timing, as the CLI has by then

    meta = meta_from_table(runs, study="bench: 240-run synthetic study", source="synthetic",
                           input_kind="per-run results")
    t1, c1 = time.perf_counter(), time.process_time()
    html = build_report(analysis, meta, curves=curves)
    t_html, c_html = time.perf_counter() - t1, time.process_time() - c1
    path = write_report(html, args.out)
    t2, c2 = time.perf_counter(), time.process_time()
    for fmt in ("md", "tex", "csv", "json"):
        export_tables(analysis, fmt, args.out)
    t_exports, c_exports = time.perf_counter() - t2, time.process_time() - c2
    total, cpu = t_html + t_exports, c_html + c_exports
    print(f"study: {n_runs} runs x {runs['benchmark'].nunique()} benchmarks, {len(analysis['cells'])} cells, "
          f"{len(analysis['comparisons'])} comparisons, {len(analysis['inversions'])} inversions")
    print(f"analysis (stats engine, {args.resamples} resamples): {t_analysis:.2f} s")
    print(f"report HTML: {t_html:.2f} s wall, {c_html:.2f} s CPU ({len(html) / 1e6:.2f} MB, "
          f"{html.count('<svg')} figures) -> {path}")
    print(f"exports md/tex/csv/json: {t_exports:.2f} s wall, {c_exports:.2f} s CPU")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"report generation total: {total:.2f} s wall, {cpu:.2f} s CPU (target < 10 s) on {os.cpu_count()} CPUs, "
          f"load average {load:.1f} [{'OK' if total < 10 else 'SLOW'}]")
    if load > (os.cpu_count() or 1):
        print("note: the machine is busy (load above the CPU count): wall time is inflated; CPU time is "
              "the better estimate of an idle run")


if __name__ == "__main__":
    main()
