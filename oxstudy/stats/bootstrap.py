"""Replicates of cell means, the basis of every interval on a derived quantity.

Rank intervals, Kendall tau intervals, leverage spreads, compression ratios and inversion
probabilities are functions of the cell means. Their intervals are percentile intervals of the
same function over ``B`` replicates of every cell mean, drawn independently per cell as

    mean* = mean + (sd / sqrt(n)) * T,   T ~ Student t with n - 1 degrees of freedom

(:func:`t_replicates`). For one cell the percentile interval of these replicates *is* the
t-interval ``mean +- t_{n-1} sd / sqrt(n)``, which covers 95% at any number of seeds when run
scores are normal; the percentile seed bootstrap it replaces covers ~83% at 5 seeds and less
below (``benchmarks/bench_calibration.py``). The replicates are also exact posterior draws of the
cell's true mean under a normal model with the reference prior ``p(mu, sigma) ~ 1/sigma``, which is
what makes the inversion probability a probability (see :func:`oxstudy.stats.ranking.flip_probability`).
A summary-statistics table (mean, sd, n) gives exactly the same replicates as its per-seed values.

Random numbers come from ``numpy.random.default_rng([rng_seed, stream, ...])``, so each quantity
is reproducible on its own, whatever else is computed.
"""

from __future__ import annotations

import numpy as np

#: Streams of random numbers, so each kind of replicate has its own reproducible generator.
STREAM_CELLS = 3


def generator(rng_seed: int, *stream: int) -> np.random.Generator:
    """An independent, reproducible generator for one stream of a study's replicates."""
    return np.random.default_rng([int(rng_seed), *[int(s) for s in stream]])


def t_replicates(mean, sd, n, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(B,) or (B x C) replicates ``mean + sd / sqrt(n) * T_{n-1}`` of cell means.

    ``mean``, ``sd`` and ``n`` are scalars or (C,) arrays (sd is the sample sd, ddof=1). A cell
    with ``n < 2`` or an unknown sd has no spread to draw from: its replicates are its mean.
    """
    mean = np.asarray(mean, dtype=float)
    sd = np.asarray(sd, dtype=float)
    n = np.broadcast_to(np.asarray(n, dtype=float), mean.shape)
    df = np.where(n >= 2, n - 1, 1.0)
    se = np.where((n >= 2) & np.isfinite(sd), np.nan_to_num(sd) / np.sqrt(np.maximum(n, 1.0)), 0.0)
    draws = rng.standard_t(df, size=(n_resamples, *mean.shape))
    return mean + se * draws


def percentile_interval(samples: np.ndarray, confidence: float = 0.95, axis: int = 0) -> tuple:
    """Percentile interval of replicates."""
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(samples, [tail, 100.0 - tail], axis=axis)
    return low, high
