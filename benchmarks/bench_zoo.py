"""Zoo ladder benchmark: every size built with several pretraining seeds, its base accuracy
per seed, build times, and issue 11's ordering-and-margin check.

Builds into a fresh cache directory (so every model is really built) unless ``--cached``.
With ``--seeds N`` each size is built with pretraining seeds 0..N-1 (seed 0 is the model
users get; the others through ``$OXSTUDY_ZOO_SEED``, each in its own cache entry), one torch
thread per build, ``--jobs`` builds at a time. The check (``oxstudy.zoo.ladder_problems``):

* adjacent sizes ordered for EVERY seed pair with a gap of at least ``--margin`` (5 points):
  the larger model's worst seed beats the smaller model's best seed by the margin;
* every seed of the ladder's smallest model in [5%, 20%], of its largest in [40%, 70%];
* every bundled task's base accuracy for the largest model (every seed) in [10%, 90%] and at
  least 5 points above chance (``oxstudy.zoo.task_range_problems``).

Every build is evaluated on all bundled tasks (whole test splits); the table per task and
model (mean over seeds, with the range) is what docs/world.md reports.

Exit status 1 when the check fails. Naming sizes (``tiny``) builds and checks only those
(the ranges of the ladder positions they hold): the whole ladder with 3 seeds takes about 20
minutes on a 2-core machine with --jobs 2, zoo:tiny about 2.5 minutes per seed.

Usage: python benchmarks/bench_zoo.py [NAMES] [--seeds 3] [--jobs 2] [--cached] [--json]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context


def build_one(name: str, seed: int) -> dict:
    """Build (name, seed) in this process (a fresh spawned worker), evaluated on every bundled
    task; returns its metadata."""
    os.environ["OXSTUDY_ZOO_SEED"] = str(seed)
    from oxstudy import zoo
    from oxstudy.tasks import bundled_tasks

    zoo.build(name, eval_tasks=bundled_tasks())
    return zoo.zoo_metadata(name) or {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="zoo models (default: the whole ladder)")
    parser.add_argument("--seeds", type=int, default=1, help="pretraining seeds per size: 0..N-1")
    parser.add_argument("--jobs", type=int, default=1, help="builds at a time (one thread each)")
    parser.add_argument("--margin", type=float, default=0.05, help="least gap between adjacent sizes")
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
    for name in names:
        zoo.model_config(name)  # unknown names fail before any build
    names = [n for n in zoo.zoo_names() if n in names]  # ladder order
    seeds = list(range(args.seeds))
    # largest first: with --jobs > 1 the longest builds start first
    jobs = sorted(itertools.product(names, seeds), key=lambda job: -zoo.build_cost(job[0]))
    started = time.perf_counter()
    with ProcessPoolExecutor(max(1, args.jobs), mp_context=get_context("spawn")) as pool:
        futures = {job: pool.submit(build_one, *job) for job in jobs}
        metas = {job: future.result() for job, future in futures.items()}
    wall_s = time.perf_counter() - started
    accuracy = {n: {s: metas[(n, s)]["base_accuracy"]["value"] for s in seeds} for n in names}
    task_accuracy = {n: {s: metas[(n, s)]["task_accuracy"] for s in seeds} for n in names}
    problems = zoo.ladder_problems(accuracy, margin=args.margin)
    if names[-1] == zoo.zoo_names()[-1]:
        problems += zoo.task_range_problems(task_accuracy[names[-1]])
    report = {
        "benchmark": "zoo_ladder",
        "seeds": seeds,
        "jobs": args.jobs,
        "wall_s": round(wall_s, 1),
        "load_avg_1m": os.getloadavg()[0],  # timings are inflated when other work shares the cores
        "machine": metas[(names[0], seeds[0])].get("machine"),
        "models": [
            {
                "model": n,
                "params": metas[(n, seeds[0])]["params"],
                "steps": metas[(n, seeds[0])]["config"]["steps"],
                "accuracy": accuracy[n],
                "by_level": {s: metas[(n, s)]["base_accuracy"].get("by_level") for s in seeds},
                "tasks": {
                    t: {s: task_accuracy[n][s][t]["value"] for s in seeds} for t in task_accuracy[n][seeds[0]]
                },
                "chance": {t: v["chance"] for t, v in task_accuracy[n][seeds[0]].items()},
                "build_s": {s: metas[(n, s)]["build_s"] for s in seeds},
                "config_hash": {s: metas[(n, s)]["config_hash"] for s in seeds},
            }
            for n in names
        ],
        "check": {"margin": args.margin, "passed": not problems, "problems": problems},
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{'model':<8} {'params':>10} {'steps':>5} " + " ".join(f"{'seed ' + str(s):>8}" for s in seeds)
              + "  build s (per seed)")  # fmt: skip
        for row in report["models"]:
            accs = " ".join(f"{row['accuracy'][s] * 100:>7.1f}%" for s in seeds)
            builds = " / ".join(f"{row['build_s'][s]:.0f}" for s in seeds)
            print(f"{row['model']:<8} {row['params']:>10,} {row['steps']:>5} {accs}  {builds}")
        for row in report["models"]:
            for s in seeds:
                levels = row["by_level"][s] or {}
                shown = ", ".join(f"level {k}: {v['accuracy'] * 100:.1f}% (n={v['n']})" for k, v in levels.items())
                print(f"  {row['model']} seed {s} by level: {shown}")
        tasks = list(report["models"][0]["tasks"])
        print("\nbase accuracy per bundled task (mean over seeds [min-max]; chance in brackets):")
        print(f"{'task':<18} " + " ".join(f"{row['model']:>20}" for row in report["models"]))
        for task in tasks:
            cells = []
            for row in report["models"]:
                values = list(row["tasks"][task].values())
                mean = sum(values) / len(values)
                cells.append(f"{mean * 100:5.1f}% [{min(values) * 100:.0f}-{max(values) * 100:.0f}]")
            chance = report["models"][0]["chance"][task]
            print(f"{task:<18} " + " ".join(f"{c:>20}" for c in cells) + f"  (chance {chance * 100:.0f}%)")
        print(f"ladder: base accuracy on oxs_arith (n=500); {len(jobs)} builds in {wall_s:.0f} s with {args.jobs} job(s); "
              f"1-min load {report['load_avg_1m']:.1f}; machine {report['machine']}")  # fmt: skip
        verdict = "PASS" if not problems else "FAIL\n  " + "\n  ".join(problems)
        print(f"ladder check (adjacent sizes >= {args.margin * 100:g} points apart for every seed pair; "
              f"smallest in 5-20%, largest in 40-70%; for the largest every task in 10-90% and >= 5 points "
              f"above chance): {verdict}")  # fmt: skip
    raise SystemExit(1 if problems else 0)


if __name__ == "__main__":
    main()
