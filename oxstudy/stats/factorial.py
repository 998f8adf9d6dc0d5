"""Factorial ANOVA with interactions (statsmodels OLS + ``anova_lm``) and partial eta-squared."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd


def pseudo_observations(mean: float, sd: float | None, n: int) -> np.ndarray:
    """``n`` values whose mean and sample sd are exactly ``mean`` and ``sd``.

    With categorical factors the OLS fit and every ANOVA sum of squares depend on the data
    only through each cell's count, mean and within-cell sum of squares, so these values give
    the exact ANOVA of a summary-statistics table.
    """
    if n <= 1 or not sd:
        return np.full(max(n, 1), float(mean))
    z = np.arange(n, dtype=float)
    z = (z - z.mean()) / z.std(ddof=1)
    return mean + float(sd) * z


def cell_means(data: pd.DataFrame, factors: list[str], response: str = "value") -> list[dict]:
    """Mean, sd (ddof=1) and n per combination of factor levels (the interaction plot's points)."""
    grouped = data.groupby(factors, sort=True, dropna=False)[response]
    out = []
    for key, values in grouped:
        key = key if isinstance(key, tuple) else (key,)
        n = int(values.size)
        out.append({**{f: _plain(k) for f, k in zip(factors, key, strict=False)}, "n": n, "mean": float(values.mean()),
                    "sd": float(values.std(ddof=1)) if n >= 2 else None})
    return out


def anova(data: pd.DataFrame, factors: list[str], response: str = "value", typ: int = 2) -> dict:
    """ANOVA of ``response`` on the full factorial of ``factors`` (categorical), with interactions.

    Fits ``response ~ C(f1) * C(f2) * ...`` by OLS and returns ``statsmodels.stats.anova.anova_lm(
    fit, typ=typ)`` rows as ``terms``: ``term, sum_sq, df, F, p_value, partial_eta_sq`` with
    partial eta-squared = SS_term / (SS_term + SS_residual). Type II by default (type III uses
    sum-to-zero contrasts). Without residual degrees of freedom (one seed per cell) no
    inference is possible: ``terms`` is empty and ``note`` says so.
    """
    frame = data[[*factors, response]].copy()
    names = {f: f"f{i}" for i, f in enumerate(factors)}
    frame = frame.rename(columns={**names, response: "y"})
    for f in names.values():
        frame[f] = frame[f].astype(str)
    levels = {f: sorted(data[f].astype(str).unique().tolist()) for f in factors}
    result = {"factors": factors, "levels": levels, "type": typ, "n": int(len(frame)), "terms": [],
              "cell_means": cell_means(data, factors, response), "note": None}
    if any(len(v) < 2 for v in levels.values()):
        one = [f for f, v in levels.items() if len(v) < 2]
        result["note"] = f"factor(s) {', '.join(one)} have a single level: no ANOVA"
        return result
    n_cells = frame.groupby(list(names.values())).ngroups
    if len(frame) - n_cells <= 0:
        result["note"] = "one observation per cell: descriptive only, no inference is possible"
        return result
    import statsmodels.formula.api as smf
    from statsmodels.stats.anova import anova_lm

    contrast = ", Sum" if typ == 3 else ""
    n_combinations = math.prod(len(v) for v in levels.values())
    # A full factorial with an empty cell is rank-deficient: anova_lm then reports interaction dfs
    # and p-values of a model that cannot be estimated. Test main effects only (additive model).
    joiner = " * " if n_cells == n_combinations else " + "
    if n_cells < n_combinations:
        observed = set(frame.groupby(list(names.values())).groups)
        grid = itertools.product(*(levels[f] for f in factors))
        empty = [combo for combo in grid if (combo if len(factors) > 1 else combo[0]) not in observed]
        shown = "; ".join(", ".join(f"{f}={v}" for f, v in zip(factors, combo, strict=True)) for combo in empty[:3])
        result["note"] = (f"{len(empty)} of {n_combinations} factor combinations have no runs ({shown}"
                          f"{'; ...' if len(empty) > 3 else ''}): interactions are not estimable, so only main "
                          "effects are tested (additive model; the interactions stay in the residual)")
    formula = "y ~ " + joiner.join(f"C({f}{contrast})" for f in names.values())
    fit = smf.ols(formula, data=frame).fit()
    table = anova_lm(fit, typ=typ)
    back = {v: k for k, v in names.items()}
    ss_resid = float(table.loc["Residual", "sum_sq"])
    for term, row in table.iterrows():
        if term in ("Residual", "Intercept"):
            continue
        label = ":".join(back[part.split("(")[1].split(",")[0].rstrip(")")] for part in str(term).split(":"))
        ss = float(row["sum_sq"])
        f_value = row.get("F")
        p_value = row.get("PR(>F)")
        denom = ss + ss_resid
        result["terms"].append({
            "term": label, "sum_sq": ss, "df": float(row["df"]),
            "F": _finite(f_value), "p_value": _finite(p_value),
            "partial_eta_sq": ss / denom if denom > 0 else None,
        })
    result["residual"] = {"sum_sq": ss_resid, "df": float(table.loc["Residual", "df"])}
    if ss_resid == 0:
        result["note"] = "zero residual variance: F statistics are undefined"
    result["fit"] = "full factorial" if joiner == " * " else "main effects only"
    return result


def _finite(x) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _plain(x):
    return x.item() if hasattr(x, "item") else x
