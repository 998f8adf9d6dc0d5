"""Vectorised bootstraps over seeds, and over seeds x test items.

Hierarchical (seeds x items) bootstrap of a difference in cell means, used when per-item
outcomes exist for both arms. One bootstrap replicate:

1. resample the arm's seed-runs with replacement (within each arm, ``n_a`` and ``n_b`` draws);
2. resample the test items with replacement, **once per replicate**, and use the same item
   draw for every seed-run of both arms. The test set is shared by every run, so items are
   crossed with seeds and paired across arms (matched by ``doc_id``/``doc_hash``); an
   independent item draw per run would wrongly average the item effect away over seeds;
3. the replicate's cell mean is the mean over resampled seed-runs of each run's mean over
   the resampled items; the replicate's difference is ``mean_a* - mean_b*``.

Implementation: an item draw is a vector of multinomial counts, so the resampled run means of
*every* run of a benchmark for all replicates are one matrix product
``W (B x I) @ scores.T (I x R)``, and seed resampling is fancy indexing into that (B x R)
matrix. No Python loop runs per replicate. Random numbers come from
``numpy.random.default_rng([rng_seed, stream, ...])`` so each quantity is reproducible on its
own, whatever else is computed.

The percentile interval of the replicates is the CI; the two-sided bootstrap p-value is
``min(1, 2 (min(#{d* <= 0}, #{d* >= 0}) + 1) / (B + 1))``.
"""

from __future__ import annotations

import numpy as np

#: Streams of random numbers, so each kind of bootstrap has its own reproducible generator.
STREAM_ITEMS, STREAM_SEEDS_PAIRED, STREAM_CELLS = 1, 2, 3


def generator(rng_seed: int, *stream: int) -> np.random.Generator:
    """An independent, reproducible generator for one stream of a study's bootstraps."""
    return np.random.default_rng([int(rng_seed), *[int(s) for s in stream]])


def item_weights(rng: np.random.Generator, n_items: int, n_resamples: int, chunk: int = 256) -> np.ndarray:
    """(B x I) float32 weights ``counts / n_items`` of ``n_resamples`` item resamples.

    Each row is a multinomial draw of ``n_items`` items with replacement (built from integer
    draws + ``bincount`` in chunks to bound memory).
    """
    out = np.empty((n_resamples, n_items), dtype=np.float32)
    for start in range(0, n_resamples, chunk):
        stop = min(n_resamples, start + chunk)
        rows = stop - start
        idx = rng.integers(0, n_items, size=(rows, n_items), dtype=np.int64)
        idx += (np.arange(rows, dtype=np.int64) * n_items)[:, None]
        counts = np.bincount(idx.ravel(), minlength=rows * n_items).reshape(rows, n_items)
        out[start:stop] = counts
    out /= np.float32(n_items)
    return out


def resampled_run_means(weights: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """(B x R) mean of each run (row of ``scores``, R x I) under each item resample."""
    return weights @ np.ascontiguousarray(scores.T, dtype=np.float32)


def resample_arm(run_means: np.ndarray, columns: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(B,) cell means after resampling the arm's seed-runs (``columns`` of ``run_means``)."""
    n_resamples = run_means.shape[0]
    columns = np.asarray(columns)
    picks = columns[rng.integers(0, columns.size, size=(n_resamples, columns.size))]
    return run_means[np.arange(n_resamples)[:, None], picks].astype(np.float64).mean(axis=1)


def seed_bootstrap_means(values: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(B,) means of ``values`` (one per seed) resampled with replacement."""
    values = np.asarray(values, dtype=float)
    if values.size == 1:
        return np.full(n_resamples, values[0])
    return values[rng.integers(0, values.size, size=(n_resamples, values.size))].mean(axis=1)


def parametric_means(mean: float, se: float, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(B,) normal draws ``mean + se * z``: the replicate means of a cell known only by summary stats."""
    return mean + (se or 0.0) * rng.standard_normal(n_resamples)


def percentile_interval(samples: np.ndarray, confidence: float = 0.95, axis: int = 0) -> tuple:
    """Percentile interval of bootstrap replicates."""
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(samples, [tail, 100.0 - tail], axis=axis)
    return low, high


def bootstrap_p_value(diffs: np.ndarray) -> float:
    """Two-sided p-value that the true difference is zero, from the replicates' signs."""
    b = diffs.size
    below = int(np.count_nonzero(diffs <= 0))
    above = int(np.count_nonzero(diffs >= 0))
    return float(min(1.0, 2.0 * (min(below, above) + 1) / (b + 1)))


def hierarchical_diff(scores_a: np.ndarray, scores_b: np.ndarray, n_resamples: int = 10_000,
                      rng_seed: int = 0) -> np.ndarray:
    """(B,) replicate differences of cell means for two arms (S_a x I and S_b x I, same items).

    A self-contained convenience over :func:`item_weights`, :func:`resampled_run_means` and
    :func:`resample_arm`; :func:`oxstudy.stats.analyze.analyze` shares one item draw per
    benchmark across all its comparisons instead.
    """
    scores = np.vstack([scores_a, scores_b])
    weights = item_weights(generator(rng_seed, STREAM_ITEMS), scores.shape[1], n_resamples)
    run_means = resampled_run_means(weights, scores)
    seeds_rng = generator(rng_seed, STREAM_SEEDS_PAIRED)
    n_a = scores_a.shape[0]
    mean_a = resample_arm(run_means, np.arange(n_a), seeds_rng)
    mean_b = resample_arm(run_means, np.arange(n_a, scores.shape[0]), seeds_rng)
    return mean_a - mean_b


def hierarchical_diff_loop(scores_a: np.ndarray, scores_b: np.ndarray, n_resamples: int = 10_000,
                           rng_seed: int = 0) -> np.ndarray:
    """The same bootstrap written as a plain per-replicate Python loop (reference and benchmark)."""
    rng = np.random.default_rng(rng_seed)
    n_a, n_items = scores_a.shape
    n_b = scores_b.shape[0]
    out = np.empty(n_resamples)
    for r in range(n_resamples):
        seeds_a = rng.integers(0, n_a, n_a)
        seeds_b = rng.integers(0, n_b, n_b)
        items = rng.integers(0, n_items, n_items)
        mean_a = np.mean([scores_a[s, items].mean() for s in seeds_a])
        mean_b = np.mean([scores_b[s, items].mean() for s in seeds_b])
        out[r] = mean_a - mean_b
    return out
