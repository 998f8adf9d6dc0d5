"""Benchmark of ``oxstudy analyze`` on a synthetic study (issue 3's speed target).

8 algorithms x 4 scales x 5 seeds x 3 benchmarks x 1,319 items with per-item outcomes; a full
analysis including a 10,000-resample hierarchical (seeds x items) bootstrap for every
vs-baseline comparison. Target: under 5 s and 2 GB on 2 CPU cores.

Prints wall and CPU time of ``analyze`` (also per step), peak resident memory, and the speed-up
over a straightforward per-resample Python loop doing the same hierarchical bootstrap (the loop
is timed on a few hundred resamples of one comparison and extrapolated linearly to 10,000
resamples x all comparisons, since running it in full takes many minutes).

Usage: .venv/bin/python benchmarks/bench_stats.py [--resamples 10000] [--factors params]
"""

from __future__ import annotations

import argparse
import json
import resource
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resamples", type=int, default=10_000)
    parser.add_argument("--loop-resamples", type=int, default=300)
    parser.add_argument("--factors", default="", help="comma-separated factor columns for the ANOVA")
    parser.add_argument("--json", default=None, help="write the figures to this path")
    args = parser.parse_args()

    from oxstudy.stats import bootstrap as bs
    from oxstudy.stats.analyze import analyze
    from oxstudy.stats.synthetic import synthetic_study

    table, items = synthetic_study()
    steps: list[tuple[str, float]] = []
    start_cpu = time.process_time()
    start = time.perf_counter()

    def progress(step: str) -> None:
        steps.append((step, time.perf_counter()))

    result = analyze(table, items=items, baseline="dpo", correction="holm", n_resamples=args.resamples,
                     factors=[f for f in args.factors.split(",") if f], progress=progress)
    wall = time.perf_counter() - start
    cpu = time.process_time() - start_cpu
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    paired = [c for c in result["comparisons"] if c.get("paired")]

    # the straightforward loop, on one comparison, extrapolated
    first = paired[0]
    sel_a = items[(items.model == first["model"]) & (items.algorithm == first["a"]) & (items.benchmark == first["benchmark"])]
    sel_b = items[(items.model == first["model"]) & (items.algorithm == first["b"]) & (items.benchmark == first["benchmark"])]
    scores_a = sel_a.pivot(index="seed", columns="doc_id", values="score").to_numpy()
    scores_b = sel_b.pivot(index="seed", columns="doc_id", values="score").to_numpy()
    t0 = time.perf_counter()
    bs.hierarchical_diff_loop(scores_a, scores_b, n_resamples=args.loop_resamples)
    loop_one = (time.perf_counter() - t0) / args.loop_resamples
    loop_total = loop_one * args.resamples * len(paired)
    t0 = time.perf_counter()
    bs.hierarchical_diff(scores_a, scores_b, n_resamples=args.resamples)
    vec_one = time.perf_counter() - t0

    marks = [(name, t) for name, t in steps] + [("end", start + wall)]
    figures = {
        "design": "8 algorithms x 4 scales x 5 seeds x 3 benchmarks x 1319 items",
        "n_resamples": args.resamples, "comparisons_with_bootstrap": len(paired),
        "analyze_wall_s": round(wall, 3), "analyze_cpu_s": round(cpu, 3), "peak_rss_mb": round(peak_mb, 1),
        "steps_s": {name: round(marks[i + 1][1] - t, 3) for i, (name, t) in enumerate(marks[:-1])},
        "loop_s_per_resample_one_comparison": loop_one,
        "loop_extrapolated_s": round(loop_total, 1),
        "speedup_vs_loop": round(loop_total / wall, 1),
        "one_comparison_vectorised_s": round(vec_one, 3),
        "one_comparison_speedup": round(loop_one * args.resamples / vec_one, 1),
    }
    print(json.dumps(figures, indent=2))
    print(f"analyze: {wall:.2f} s wall ({cpu:.2f} s CPU), peak RSS {peak_mb:.0f} MB; "
          f"target < 5 s and < 2048 MB: {'MET' if wall < 5 and peak_mb < 2048 else 'NOT MET'}")
    print(f"per-resample Python loop: {loop_one * 1e3:.2f} ms/resample, timed on {args.loop_resamples} "
          f"resamples and extrapolated to {args.resamples} x {len(paired)} comparisons = {loop_total:.0f} s "
          f"({loop_total / wall:.0f}x slower than the whole vectorised analysis)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(figures, fh, indent=2)


if __name__ == "__main__":
    main()
