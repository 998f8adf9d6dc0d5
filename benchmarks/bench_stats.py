"""Benchmark of ``oxstudy analyze`` on a synthetic study (issue 3's speed target).

8 algorithms x 4 scales x 5 seeds x 3 benchmarks x 1,319 items with per-item outcomes; a full
analysis: Welch tests with Holm correction for every vs-baseline comparison, McNemar between the
checkpoints of every seed pair of those comparisons, 10,000 t replicates of every cell mean for
rank / Kendall tau / leverage / compression intervals and inversion probabilities, and power.
Target: under 5 s and 2 GB on 2 CPU cores.

Prints wall and CPU time of ``analyze`` (also per step) and peak resident memory.

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
    parser.add_argument("--factors", default="", help="comma-separated factor columns for the ANOVA")
    parser.add_argument("--json", default=None, help="write the figures to this path")
    args = parser.parse_args()

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
    checkpoints = [c for c in result["comparisons"] if c.get("checkpoints")]

    marks = [(name, t) for name, t in steps] + [("end", start + wall)]
    figures = {
        "design": "8 algorithms x 4 scales x 5 seeds x 3 benchmarks x 1319 items",
        "n_resamples": args.resamples, "comparisons": len(result["comparisons"]),
        "comparisons_with_checkpoint_mcnemar": len(checkpoints), "inversions": len(result["inversions"]),
        "analyze_wall_s": round(wall, 3), "analyze_cpu_s": round(cpu, 3), "peak_rss_mb": round(peak_mb, 1),
        "steps_s": {name: round(marks[i + 1][1] - t, 3) for i, (name, t) in enumerate(marks[:-1])},
    }
    print(json.dumps(figures, indent=2))
    print(f"analyze: {wall:.2f} s wall ({cpu:.2f} s CPU), peak RSS {peak_mb:.0f} MB; "
          f"target < 5 s and < 2048 MB: {'MET' if wall < 5 and peak_mb < 2048 else 'NOT MET'}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(figures, fh, indent=2)


if __name__ == "__main__":
    main()
