"""Zoo build benchmark: build time, parameters and base accuracy per zoo model.

Builds into a fresh cache directory (so every model is really built) unless --cached is
given, then prints one row per model (and JSON with --json). Builds run one thread each,
models one after another unless --jobs > 1.

Usage: HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 python benchmarks/bench_zoo.py [NAMES] [--jobs 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="zoo models (default: all)")
    parser.add_argument("--jobs", type=int, default=1, help="parallel builds (whole-ladder wall time)")
    parser.add_argument("--cached", action="store_true", help="use the normal cache (no rebuild if present)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if not args.cached:
        os.environ["OXSTUDY_CACHE"] = tempfile.mkdtemp(prefix="oxstudy-bench-zoo-")

    from oxstudy import zoo

    names = args.names or zoo.zoo_names()
    started = time.perf_counter()
    zoo.build_many(names, jobs=args.jobs)
    wall_s = time.perf_counter() - started
    rows = []
    for name in names:
        meta = zoo.zoo_metadata(name) or {}
        base = meta.get("base_accuracy") or {}
        rows.append(
            {
                "model": name,
                "params": meta.get("params"),
                "build_s": meta.get("build_s"),
                "train_s": meta.get("train_s"),
                "eval_s": meta.get("eval_s"),
                "steps": meta.get("config", {}).get("steps"),
                "final_loss": meta.get("final_loss"),
                "base_accuracy": base.get("value"),
                "base_stderr": base.get("stderr"),
            }
        )
    report = {
        "benchmark": "zoo_build",
        "jobs": args.jobs,
        "wall_s": round(wall_s, 1),
        "cpu_count": os.cpu_count(),
        "load_avg_1m": os.getloadavg()[0],  # timings are inflated when other work shares the cores
        "machine": platform.processor() or platform.machine(),
        "models": rows,
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"{'model':<8} {'params':>10} {'build s':>8} {'train s':>8} {'base acc':>9} {'± se':>6}")
    for r in rows:
        acc = "-" if r["base_accuracy"] is None else f"{r['base_accuracy']:.3f}"
        se = "-" if r["base_stderr"] is None else f"{r['base_stderr']:.3f}"
        print(f"{r['model']:<8} {r['params']:>10,} {r['build_s']:>8.1f} {r['train_s']:>8.1f} {acc:>9} {se:>6}")
    print(f"whole ladder wall time {wall_s:.1f} s with {args.jobs} job(s); 1-min load {report['load_avg_1m']:.1f}")


if __name__ == "__main__":
    main()
