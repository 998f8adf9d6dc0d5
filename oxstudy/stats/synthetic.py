"""A synthetic study with per-item outcomes, for benchmarks, tests and examples.

Each algorithm has a true accuracy per model and benchmark; each seed-run adds a run effect;
each item has a difficulty shared by all runs, and outcomes are Bernoulli draws. The run's
``value`` is its mean item score, exactly as lm-eval's exact_match is.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

ALGORITHM_TAGS = [
    ("sft", "sft-like", False, "sft"),
    ("dpo", "preference", False, "sigmoid"),
    ("ipo", "preference", False, "ipo"),
    ("simpo", "preference", False, "simpo"),
    ("kto", "preference", False, "kto"),
    ("grpo", "online-rl", True, "grpo"),
    ("rloo", "online-rl", True, "rloo"),
    ("online_dpo", "online-rl", True, "sigmoid"),
]


def synthetic_study(n_algorithms: int = 8, n_models: int = 4, n_seeds: int = 5, n_benchmarks: int = 3,
                    n_items: int = 1319, rng_seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(runs table, items table) of a synthetic study; see the module docstring.

    The first benchmark is the in-domain one, where algorithms differ most; the others
    compress the differences. Algorithm tags (``paradigm``, ``online``, ``loss_family``) are
    columns, so leverage works without the algorithm registry.
    """
    rng = np.random.default_rng(rng_seed)
    tags = [ALGORITHM_TAGS[i % len(ALGORITHM_TAGS)] for i in range(n_algorithms)]
    algorithms = [t[0] if i < len(ALGORITHM_TAGS) else f"{t[0]}_{i}" for i, t in enumerate(tags)]
    params = [int(0.5e9 * 2**i) for i in range(n_models)]
    models = [f"m{p / 1e9:g}b" for p in params]
    benchmarks = [f"bench{b}" for b in range(n_benchmarks)]
    run_rows = []
    item_frames = []
    doc_ids = np.arange(n_items)
    for b, bench in enumerate(benchmarks):
        difficulty = rng.normal(0.0, 1.5, n_items)
        spread = 0.25 if b == 0 else 0.03
        for m, model in enumerate(models):
            base = -0.6 + 0.5 * m
            alg_effect = rng.normal(0.0, spread, n_algorithms)
            for a, alg in enumerate(algorithms):
                for seed in range(n_seeds):
                    logit = base + alg_effect[a] + rng.normal(0, 0.05) - difficulty
                    scores = (rng.random(n_items) < 1 / (1 + np.exp(-logit))).astype(np.float64)
                    run_rows.append({"model": model, "params": params[m], "algorithm": alg, "seed": seed,
                                     "benchmark": bench, "metric": "exact_match", "value": float(scores.mean()),
                                     "in_domain": b == 0, "paradigm": tags[a][1], "online": tags[a][2],
                                     "loss_family": tags[a][3]})
                    item_frames.append(pd.DataFrame({"model": model, "algorithm": alg, "seed": seed,
                                                     "benchmark": bench, "doc_id": doc_ids, "score": scores}))
    return pd.DataFrame(run_rows), pd.concat(item_frames, ignore_index=True)
