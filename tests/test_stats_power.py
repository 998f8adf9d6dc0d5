"""Power and seed planning against statsmodels TTestIndPower."""

from __future__ import annotations

import math

import numpy as np
import pytest
from statsmodels.stats.power import TTestIndPower

from oxstudy.stats import power as pw


def test_minimum_detectable_effect_matches_statsmodels():
    for n, alpha in [(5, 0.05), (5, 0.05 / 19), (3, 0.05), (10, 0.01)]:
        ref = TTestIndPower().solve_power(effect_size=None, nobs1=n, alpha=alpha, power=0.8, ratio=1.0)
        assert pw.minimum_detectable_effect(n, alpha, 0.8) == pytest.approx(float(ref), rel=1e-6)
    assert pw.minimum_detectable_effect(1, 0.05) is None


def test_five_seeds_nineteen_bonferroni_comparisons_need_d_about_3_4():
    # the stack notes' measured fact: 5 seeds/arm, 19 Bonferroni comparisons, 80% power -> d >= ~3.4
    d = pw.minimum_detectable_effect(5, pw.per_comparison_alpha(0.05, "bonferroni", 19), 0.8)
    assert 3.2 < d < 3.6


@pytest.mark.parametrize("d,alpha", [(0.3, 0.05), (0.74, 0.007), (1.5, 0.05), (3.7, 0.0026), (5.0, 0.05)])
def test_seeds_needed_is_ceil_of_solve_power(d, alpha):
    ref = TTestIndPower().solve_power(effect_size=d, nobs1=None, alpha=alpha, power=0.8, ratio=1.0)
    assert pw.seeds_needed(d, alpha, 0.8) == max(2, math.ceil(float(ref)))


def test_pooled_sd_and_alpha_rules():
    sds, ns = np.array([1.0, 2.0, 3.0]), np.array([5, 3, 1])
    assert pw.pooled_sd(sds, ns) == pytest.approx(math.sqrt((4 * 1 + 2 * 4) / 6))
    assert pw.pooled_sd(np.array([1.0]), np.array([1])) is None
    assert pw.per_comparison_alpha(0.05, "holm", 5) == 0.01
    assert pw.per_comparison_alpha(0.05, "none", 5) == 0.05
    assert pw.seeds_needed(0.0, 0.05) is None
    assert pw.seeds_needed(1e-4, 0.05, max_seeds=1000) is None
