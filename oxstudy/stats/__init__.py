"""Statistics for controlled comparisons of post-training algorithms.

Small, pure functions over numpy arrays and pandas frames that return plain data
(dicts, floats, arrays); :func:`oxstudy.stats.analyze.analyze` assembles them into the
versioned JSON result documented in ``docs/analysis.md``. Nothing here imports torch.

Conventions (see ``docs/analysis.md`` for the full list):

* seeds are the replicates: sample sd (ddof=1), t-based confidence intervals;
* the seed-level test (default Welch's t-test, unequal variances) sets every significance
  flag; per-item outcomes give McNemar between two checkpoints only, which sets none;
* calibration of every test and interval: ``benchmarks/bench_calibration.py``;
* Cohen's d uses the pooled sd with n-1 weights; Hedges' g multiplies it by
  ``J = 1 - 3 / (4 (n_a + n_b) - 9)``;
* replicates of cell means use ``numpy.random.default_rng([rng_seed, ...])`` (``rng_seed=0``
  by default), so results are reproducible bit for bit.
"""

from __future__ import annotations

SCHEMA = "oxstudy.analysis/2"

# ``oxstudy.stats.analyze`` is the submodule holding ``analyze()``; import the function as
# ``from oxstudy.stats.analyze import analyze``. (A same-named wrapper here would be shadowed
# by the submodule as soon as it is imported, depending on import order.)
__all__ = ["SCHEMA"]
