"""Evaluation throughput: items per second per zoo model, in memory vs reload from disk.

For each built zoo model, evaluates the bundled in-domain task (generative) and the
multiple-choice task through lm-eval-harness twice: with the model already in memory
(as after training) and from its directory (load + evaluate).

Usage: HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 python benchmarks/bench_eval.py [NAMES] [--limit 100]
"""

from __future__ import annotations

import argparse
import json
import os
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="zoo models (default: all built ones)")
    parser.add_argument("--limit", type=int, default=100, help="items per task")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch

    from oxstudy import zoo
    from oxstudy.evaluation import BenchmarkRequest, evaluate_model, load_model

    if args.threads:
        torch.set_num_threads(args.threads)
    names = args.names or [n for n in zoo.zoo_names() if zoo.is_built(n)]
    tasks = [("oxs_arith", "exact_match,strict-match"), ("oxs_compare", "acc,none")]
    rows = []
    for name in names:
        path = zoo.build(name)
        for task, metric in tasks:
            bench = [BenchmarkRequest(id=task, task=task, metric=metric, limit=args.limit, batch_size=32)]
            model, tokenizer = load_model(path, device="cpu")
            evaluate_model(model, bench, tokenizer=tokenizer)  # warm-up: dataset cache, lm-eval import
            started = time.perf_counter()
            result = evaluate_model(model, bench, tokenizer=tokenizer)
            in_memory_s = time.perf_counter() - started
            started = time.perf_counter()
            evaluate_model(path, bench)
            reload_s = time.perf_counter() - started
            n = result["metrics"][task]["n"]
            rows.append(
                {
                    "model": name,
                    "params": zoo.model_param_count(path),
                    "task": task,
                    "n": n,
                    "value": result["metrics"][task]["value"],
                    "in_memory_s": round(in_memory_s, 2),
                    "reload_s": round(reload_s, 2),
                    "in_memory_items_per_s": round(n / in_memory_s, 1),
                    "reload_items_per_s": round(n / reload_s, 1),
                }
            )
    report = {
        "benchmark": "eval_throughput",
        "threads": torch.get_num_threads(),
        "load_avg_1m": os.getloadavg()[0],  # timings are inflated when other work shares the cores
        "rows": rows,
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"{'model':<8} {'task':<12} {'n':>4} {'score':>6} {'in-mem it/s':>12} {'reload it/s':>12}")
    for r in rows:
        print(
            f"{r['model']:<8} {r['task']:<12} {r['n']:>4} {r['value']:>6.3f} "
            f"{r['in_memory_items_per_s']:>12.1f} {r['reload_items_per_s']:>12.1f}"
        )
    print(f"torch threads {report['threads']}; 1-min load {report['load_avg_1m']:.1f}")


if __name__ == "__main__":
    main()
