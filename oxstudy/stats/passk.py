"""pass@k: the unbiased estimator of Chen et al. (2021) from n samples per item.

"Evaluating Large Language Models Trained on Code" (Chen et al., 2021, eq. 1): with ``n``
samples of an item of which ``c`` are correct, the probability that at least one of ``k``
samples drawn without replacement from them is correct is

    pass@k = 1 - C(n - c, k) / C(n, k)

an unbiased estimate of the item's pass@k for every ``k <= n``. The binomial coefficients
overflow for realistic n, so it is computed in the paper's product form

    C(n - c, k) / C(n, k) = prod_{i = n - c + 1}^{n} (1 - k / i)     (= 0 when n - c < k).

The benchmark's pass@k is the mean over items. Pure numpy: no torch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def pass_at_k(n: int | Sequence[int] | np.ndarray, c: int | Sequence[int] | np.ndarray, k: int) -> np.ndarray:
    """Per-item unbiased pass@k from ``n`` samples with ``c`` correct (arrays broadcast).

    Returns a float array (a 0-d array for scalar input). Raises ``ValueError`` for
    ``k > n``, ``c > n``, negative counts or ``k < 1``.
    """
    n_arr, c_arr = np.broadcast_arrays(np.asarray(n, dtype=np.int64), np.asarray(c, dtype=np.int64))
    if k < 1:
        raise ValueError(f"pass@k: k must be >= 1, got {k}")
    if np.any(c_arr < 0) or np.any(c_arr > n_arr):
        raise ValueError("pass@k: need 0 <= c <= n for every item")
    if np.any(n_arr < k):
        raise ValueError(f"pass@k: k = {k} exceeds the number of samples n = {int(n_arr.min())}")
    out = np.ones(n_arr.shape, dtype=float)
    flat_n, flat_c, flat_out = n_arr.reshape(-1), c_arr.reshape(-1), out.reshape(-1)
    for index, (total, correct) in enumerate(zip(flat_n, flat_c, strict=True)):
        if total - correct < k:
            continue  # every k-subset holds a correct sample
        i = np.arange(total - correct + 1, total + 1, dtype=float)
        flat_out[index] = 1.0 - float(np.prod(1.0 - k / i))
    return out


def pass_at_k_table(
    n: int, correct: Sequence[int] | np.ndarray, ks: Sequence[int] | None = None
) -> dict[int, np.ndarray]:
    """``{k: per-item pass@k}`` for ``ks`` (default: every k = 1..n) from per-item counts."""
    ks = list(range(1, n + 1)) if ks is None else [int(k) for k in ks]
    counts = np.asarray(correct, dtype=np.int64)
    return {k: pass_at_k(n, counts, k) for k in ks}


def pass_at_k_curve(
    n: int, correct: Sequence[int] | np.ndarray, ks: Sequence[int] | None = None
) -> dict[int, float]:
    """``{k: mean over items of pass@k}`` (the benchmark's pass@k curve)."""
    return {
        k: float(values.mean()) if values.size else float("nan")
        for k, values in pass_at_k_table(n, correct, ks).items()
    }


def default_ks(n: int) -> list[int]:
    """Powers of two up to ``n``, plus ``n`` itself: the points of a pass@k curve."""
    ks, k = [], 1
    while k < n:
        ks.append(k)
        k *= 2
    return [*ks, n]
