"""Statistics for controlled comparisons of post-training algorithms.

Small, pure functions over numpy arrays and pandas frames that return plain data
(dicts, floats, arrays); :func:`oxstudy.stats.analyze.analyze` assembles them into the
versioned JSON result documented in ``docs/analysis.md``. Nothing here imports torch.

Conventions (see ``docs/analysis.md`` for the full list):

* seeds are the replicates: sample sd (ddof=1), t-based confidence intervals;
* two-sample tests default to Welch's t-test (unequal variances);
* Cohen's d uses the pooled sd with n-1 weights; Hedges' g multiplies it by
  ``J = 1 - 3 / (4 (n_a + n_b) - 9)``;
* bootstraps use ``numpy.random.default_rng(rng_seed)`` (``rng_seed=0`` by default), so
  results are reproducible bit for bit.
"""

from __future__ import annotations

SCHEMA = "oxstudy.analysis/1"

__all__ = ["SCHEMA", "analyze"]


def analyze(*args, **kwargs):  # noqa: D401 - thin lazy wrapper
    """Run the full analysis; see :func:`oxstudy.stats.analyze.analyze`."""
    from oxstudy.stats.analyze import analyze as _analyze

    return _analyze(*args, **kwargs)
