"""Zoo ladder benchmark: build time, parameters and base accuracy per zoo model and
pretraining seed, with the ladder's ordering and margin check.

Builds into a fresh cache directory (so every model is really built) unless --cached is
given. With ``--seeds N`` every size is built with pretraining seeds 0..N-1 (seed 0 is
the one users get; others via ``OXSTUDY_ZOO_SEED``) and the check is:

* adjacent sizes are ordered for EVERY seed pair with a gap of at least ``--margin``
  (default 5 points): min over seeds of the larger model minus max over seeds of the
  smaller one >= margin;
* the smallest model's accuracy lies in [5%, 20%] and the largest's in [40%, 70%] for
  every seed;
* every model beats always giving the test set's most common answer by the margin (a
  model that learned only the answer format scores exactly that).

The exit status is 1 when the check fails. ``--all-tasks`` also measures every bundled
task on the default-seed models (the table in docs/world.md); ``--record`` prints the
``RECORDED`` table for ``oxstudy/zoo_recorded.py``.

Usage: python benchmarks/bench_zoo.py [NAMES] [--seeds 3] [--jobs 2] [--all-tasks] [--record]
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

SMALLEST_RANGE = (0.05, 0.20)
LARGEST_RANGE = (0.40, 0.70)


def _build(name: str, seed: int) -> dict:
    """Build one (model, seed) in this process; returns its metadata."""
    os.environ["OXSTUDY_ZOO_SEED"] = str(seed)
    from oxstudy import zoo

    zoo.build(name)
    return zoo.zoo_metadata(name) or {}


def _measure_all(name: str) -> dict:
    os.environ.pop("OXSTUDY_ZOO_SEED", None)
    from oxstudy import zoo
    from oxstudy.tasks import bundled_tasks

    path = zoo.build(name)
    with zoo.quiet_third_party(zoo.build_log(name)):
        return zoo.measure_base_accuracy(path, None, bundled_tasks())


def constant_answer_accuracy(task: str = "oxs_arith") -> tuple[str, float]:
    """The best accuracy a model gets by always giving one answer (the test set's most
    common one): a model at or below it has learned the format, not the task."""
    from collections import Counter

    from oxstudy.tasks import task_split

    answers = Counter(e["answer"] for e in task_split(task, "test"))
    answer, count = answers.most_common(1)[0]
    return answer, count / sum(answers.values())


def ladder_check(
    accuracy: dict[str, dict[int, float]], margin: float, floor: tuple[str, float] | None = None
) -> list[str]:
    """Problems with the ladder (empty when it passes): see the module docstring. With
    ``floor`` = (answer, accuracy) every model must beat always answering that by ``margin``."""
    problems = []
    if floor is not None:
        answer, floor_accuracy = floor
        for name, by_seed in accuracy.items():
            if min(by_seed.values()) < floor_accuracy + margin:
                problems.append(
                    f"{name}: {min(by_seed.values()) * 100:.1f}% is within {margin * 100:.0f} points of always "
                    f"answering {answer} ({floor_accuracy * 100:.1f}%)"
                )
    names = list(accuracy)
    for small, large in itertools.pairwise(names):
        gap = min(accuracy[large].values()) - max(accuracy[small].values())
        if gap < margin:
            problems.append(
                f"{small} -> {large}: worst seed-pair gap {gap * 100:.1f} points < {margin * 100:.0f}"
            )
    lo, hi = SMALLEST_RANGE
    if not all(lo <= v <= hi for v in accuracy[names[0]].values()):
        problems.append(f"{names[0]}: {sorted(accuracy[names[0]].values())} not all within [{lo}, {hi}]")
    lo, hi = LARGEST_RANGE
    if not all(lo <= v <= hi for v in accuracy[names[-1]].values()):
        problems.append(f"{names[-1]}: {sorted(accuracy[names[-1]].values())} not all within [{lo}, {hi}]")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="zoo models (default: all)")
    parser.add_argument("--seeds", type=int, default=1, help="pretraining seeds per size (0..N-1)")
    parser.add_argument("--jobs", type=int, default=1, help="parallel builds (one thread each)")
    parser.add_argument("--margin", type=float, default=0.05, help="least gap between adjacent sizes")
    parser.add_argument("--cached", action="store_true", help="use the normal cache (no rebuild if present)")
    parser.add_argument("--all-tasks", action="store_true", help="measure every bundled task (seed 0)")
    parser.add_argument(
        "--record", action="store_true", help="print the RECORDED table (implies --all-tasks)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if not args.cached:
        os.environ["OXSTUDY_CACHE"] = tempfile.mkdtemp(prefix="oxstudy-bench-zoo-")

    from oxstudy import zoo

    names = args.names or zoo.zoo_names()
    seeds = list(range(args.seeds))
    # Largest first: the longest builds start first, so -j 2 packs them best.
    jobs = sorted(itertools.product(names, seeds), key=lambda job: -zoo.estimate_params(job[0]))
    started = time.perf_counter()
    with ProcessPoolExecutor(max(1, args.jobs), mp_context=get_context("spawn")) as pool:
        futures = {job: pool.submit(_build, *job) for job in jobs}
        metas = {job: future.result() for job, future in futures.items()}
    wall_s = time.perf_counter() - started
    all_tasks = None
    if args.all_tasks or args.record:
        with ProcessPoolExecutor(max(1, args.jobs), mp_context=get_context("spawn")) as pool:
            all_tasks = dict(zip(names, pool.map(_measure_all, names), strict=True))

    accuracy = {n: {s: metas[(n, s)]["base_accuracy"]["value"] for s in seeds} for n in names}
    problems = ladder_check(accuracy, args.margin, floor=constant_answer_accuracy()) if len(names) > 1 else []
    first = metas[(names[0], seeds[0])]
    report = {
        "benchmark": "zoo_ladder",
        "seeds": seeds,
        "jobs": args.jobs,
        "wall_s": round(wall_s, 1),
        "load_avg_1m": os.getloadavg()[0],  # timings are inflated when other work shares the cores
        "machine": first.get("machine"),
        "models": [
            {
                "model": n,
                "params": metas[(n, seeds[0])]["params"],
                "steps": metas[(n, seeds[0])]["config"]["steps"],
                "build_s": {s: metas[(n, s)]["build_s"] for s in seeds},
                "train_s": {s: metas[(n, s)]["train_s"] for s in seeds},
                "accuracy": accuracy[n],
                "by_level": {s: metas[(n, s)]["base_accuracy"].get("by_level") for s in seeds},
                "config_hash": {s: metas[(n, s)]["config_hash"] for s in seeds},
            }
            for n in names
        ],
        "check": {"margin": args.margin, "passed": not problems, "problems": problems},
        "all_tasks": all_tasks,
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        header = f"{'model':<8} {'params':>9} {'steps':>5} " + " ".join(
            f"{'seed ' + str(s):>8}" for s in seeds
        )
        print(header + f" {'build s (each seed)':>22}")
        for row in report["models"]:
            accs = " ".join(f"{row['accuracy'][s] * 100:>7.1f}%" for s in seeds)
            builds = "/".join(f"{row['build_s'][s]:.0f}" for s in seeds)
            print(f"{row['model']:<8} {row['params']:>9,} {row['steps']:>5} {accs} {builds:>22}")
        for row in report["models"]:
            print(f"  {row['model']} accuracy by level (seed {seeds[0]}): {row['by_level'][seeds[0]]}")
        print(
            f"wall time {wall_s:.0f} s for {len(jobs)} builds with {args.jobs} job(s); "
            f"1-min load {report['load_avg_1m']:.1f}; machine {report['machine']}"
        )
        if all_tasks:
            tasks = list(next(iter(all_tasks.values())))
            print(f"{'model':<8} " + " ".join(f"{t:>17}" for t in tasks))
            for n in names:
                print(f"{n:<8} " + " ".join(f"{all_tasks[n][t]['value'] * 100:>16.1f}%" for t in tasks))
        verdict = "PASS" if not problems else "FAIL: " + "; ".join(problems)
        print(f"ladder check (adjacent gap >= {args.margin * 100:.0f} points for every seed pair): {verdict}")
    if args.record:
        record = {
            "machine": first.get("machine"),
            "measured": time.strftime("%Y-%m-%d"),
            "models": {
                n: {
                    "config_hash": metas[(n, 0)]["config_hash"] if 0 in seeds else None,
                    "params": metas[(n, seeds[0])]["params"],
                    "accuracy": {t: round(v["value"], 4) for t, v in (all_tasks or {}).get(n, {}).items()},
                    "seed_accuracy": {str(s): round(accuracy[n][s], 4) for s in seeds},
                }
                for n in names
            },
        }
        print("RECORDED = " + json.dumps(record, indent=4))
    raise SystemExit(1 if problems else 0)


if __name__ == "__main__":
    main()
