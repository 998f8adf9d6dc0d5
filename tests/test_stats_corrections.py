"""Multiple-comparison corrections against statsmodels.multipletests."""

from __future__ import annotations

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from oxstudy.stats import corrections


@pytest.mark.parametrize("method,ref", [("bonferroni", "bonferroni"), ("holm", "holm"), ("bh", "fdr_bh")])
@pytest.mark.parametrize("seed", range(5))
def test_adjusted_p_values_equal_statsmodels(method, ref, seed):
    rng = np.random.default_rng(seed)
    p = np.concatenate([rng.random(12) ** 3, [0.01, 0.01, 0.2]])  # with ties
    reject, adjusted, _, _ = multipletests(p, alpha=0.05, method=ref)
    ours = corrections.adjust(p, method)
    np.testing.assert_allclose(ours, adjusted, rtol=1e-12)
    np.testing.assert_array_equal(corrections.reject(ours, 0.05), reject)


def test_none_and_empty():
    p = np.array([0.01, 0.5])
    np.testing.assert_array_equal(corrections.adjust(p, "none"), p)
    assert corrections.adjust(np.array([]), "holm").size == 0
    with pytest.raises(ValueError):
        corrections.adjust(p, "sidak")
