"""Model-task alignment: does a shortcut's effect against standard RL depend on the base model's
pass@k on the task? (Mirage or Method?, arXiv:2508.21188.)

Pure numpy / scipy / pandas. Inputs:

- ``runs``: one row per run on its task's benchmark: ``model, task, algorithm, seed, value``;
- ``alignment``: the base model's pass@k per (model, task): ``model, task, pass_at_k`` (computed
  once per (model, task) by the pass@k evaluation and cached; here only consumed).

The interaction test is an ordinary least-squares regression over runs

    value_r = alpha_{cell(r)} + beta * S_r + gamma * S_r * (passk_{cell(r)} - mean passk) + e_r

with ``S_r`` = 1 for a shortcut run and 0 for a standard-RL run, one intercept per (model, task)
cell (the cell's standard-RL level, which absorbs every main effect of model, task and
alignment) and iid seed noise. ``gamma`` is the change of the shortcut's effect per unit of
base pass@k; its t-test has ``n_runs - n_cells - 2`` degrees of freedom. Inference is over seeds
*for these cells*: with few (model, task) cells it does not generalise to other models or tasks,
and cell-specific shortcut effects unrelated to pass@k would count as evidence (state it with the
verdict). The stratified table reports each cell's Welch effect and whether its pass@k reaches the
alignment threshold.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from oxstudy.stats.transfer import welch_difference


def shortcut_effects(
    runs: pd.DataFrame,
    alignment: pd.DataFrame,
    standard: str,
    shortcuts: list[str],
    threshold: float = 0.5,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Effect of each shortcut vs standard RL per (model, task), beside the base pass@k.

    Estimated: ``mean_seeds(shortcut) - mean_seeds(standard)`` with Welch's t-interval.
    Returns ``model, task, shortcut, pass_at_k, aligned, difference, ci_low, ci_high, p_value``.
    """
    passk = {(r.model, r.task): float(r.pass_at_k) for r in alignment.itertuples()}
    rows = []
    for (model, task), group in runs.groupby(["model", "task"], sort=True):
        base = group.loc[group["algorithm"] == standard, "value"].to_numpy()
        for shortcut in shortcuts:
            values = group.loc[group["algorithm"] == shortcut, "value"].to_numpy()
            if not values.size or not base.size:
                continue
            result = welch_difference(values, base, confidence)
            value = passk.get((model, task))
            rows.append(
                {
                    "model": model,
                    "task": task,
                    "shortcut": shortcut,
                    "pass_at_k": value,
                    "aligned": None if value is None else bool(value >= threshold),
                    **{k: result[k] for k in ("difference", "ci_low", "ci_high", "p_value")},
                }
            )
    return pd.DataFrame(
        rows,
        columns=[
            "model",
            "task",
            "shortcut",
            "pass_at_k",
            "aligned",
            "difference",
            "ci_low",
            "ci_high",
            "p_value",
        ],
    )


def interaction_design(runs: pd.DataFrame, alignment: pd.DataFrame, standard: str, shortcut: str):
    """The regression's response, design matrix and column names (see the module docstring)."""
    frame = runs[runs["algorithm"].isin([standard, shortcut])].merge(alignment, on=["model", "task"])
    frame = frame.sort_values(["model", "task", "algorithm", "seed"]).reset_index(drop=True)
    cells = sorted(set(zip(frame["model"], frame["task"], strict=True)))
    cell_index = {c: i for i, c in enumerate(cells)}
    is_shortcut = (frame["algorithm"] == shortcut).to_numpy(dtype=float)
    centred = frame["pass_at_k"].to_numpy(dtype=float) - np.mean(
        [alignment.set_index(["model", "task"]).loc[c, "pass_at_k"] for c in cells]
    )
    design = np.zeros((len(frame), len(cells) + 2))
    for row, cell in enumerate(zip(frame["model"], frame["task"], strict=True)):
        design[row, cell_index[cell]] = 1.0
    design[:, -2] = is_shortcut
    design[:, -1] = is_shortcut * centred
    names = [f"cell[{m}|{t}]" for m, t in cells] + ["shortcut", "shortcut:pass_at_k"]
    return frame["value"].to_numpy(dtype=float), design, names


def interaction_test(
    runs: pd.DataFrame, alignment: pd.DataFrame, standard: str, shortcut: str, confidence: float = 0.95
) -> dict:
    """OLS test of the shortcut x alignment interaction (``gamma`` in the module docstring).

    Returns ``gamma`` (effect change per unit pass@k), its se, t-interval, two-sided p-value and
    df, ``beta`` (the shortcut's effect at the mean pass@k), and the numbers of runs and cells.
    """
    y, design, names = interaction_design(runs, alignment, standard, shortcut)
    n_cells = len(names) - 2
    out = {
        "shortcut": shortcut,
        "standard": standard,
        "n_runs": int(y.size),
        "n_cells": n_cells,
        "gamma": None,
        "se": None,
        "ci_low": None,
        "ci_high": None,
        "p_value": None,
        "df": None,
        "beta": None,
        "note": None,
        "model": "value ~ cell + shortcut + shortcut:(pass_at_k - mean); OLS, iid seed errors",
    }
    if n_cells < 2 or np.linalg.matrix_rank(design) < design.shape[1]:
        out["note"] = (
            "needs the shortcut and standard RL on at least 2 (model, task) cells with different pass@k"
        )
        return out
    fit = ols_last_coefficient(y, design, confidence)
    out.update(
        gamma=fit["coefficient"],
        se=fit["se"],
        df=fit["df"],
        beta=fit["previous"],
        ci_low=fit["ci_low"],
        ci_high=fit["ci_high"],
        p_value=fit["p_value"],
        note=fit["note"],
    )
    return out


def ols_last_coefficient(y: np.ndarray, design: np.ndarray, confidence: float = 0.95) -> dict:
    """OLS of ``y`` on a full-rank ``design``: the last coefficient with its classical se
    (``sigma^2 (X'X)^-1``, ``sigma^2`` = RSS / (n - p)), t-interval and two-sided p-value; ``previous``
    is the coefficient before it."""
    df = y.size - design.shape[1]
    out = {
        "coefficient": None,
        "se": None,
        "df": int(df),
        "ci_low": None,
        "ci_high": None,
        "p_value": None,
        "previous": None,
        "note": None,
    }
    if df < 1:
        out["note"] = "no residual degrees of freedom (add seeds)"
        return out
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    residual = y - design @ coef
    sigma2 = float(residual @ residual) / df
    se = float(np.sqrt(sigma2 * np.linalg.inv(design.T @ design)[-1, -1]))
    out.update(coefficient=float(coef[-1]), se=se, previous=float(coef[-2]) if coef.size > 1 else None)
    if se == 0.0:
        out["note"] = "zero residual variance"
        return out
    half = float(stats.t.ppf(0.5 + confidence / 2, df)) * se
    out.update(
        ci_low=out["coefficient"] - half,
        ci_high=out["coefficient"] + half,
        p_value=float(2 * stats.t.sf(abs(out["coefficient"] / se), df)),
    )
    return out


def simulate_interaction_rejections(
    n_studies: int,
    gamma: float,
    *,
    seeds: int = 5,
    passk=(0.1, 0.4, 0.6, 0.9),
    noise_sd: float = 0.03,
    shortcut_effect: float = -0.05,
    alpha: float = 0.05,
    cell_effect_sd: float = 0.0,
    rng_seed: int = 0,
) -> float:
    """Fraction of simulated studies whose interaction test rejects at ``alpha`` (calibration:
    ``gamma = 0`` should give ~alpha). Each study: one cell per pass@k value with a random standard
    level, the shortcut's effect ``shortcut_effect + gamma * (passk - mean)`` plus a cell-specific
    deviation of sd ``cell_effect_sd`` (unrelated to pass@k: the test then over-rejects, see the module
    docstring), seed noise ``noise_sd``."""
    rng = np.random.default_rng(rng_seed)
    cells = [(f"m{i}", "t") for i in range(len(passk))]
    alignment = pd.DataFrame({"model": [c[0] for c in cells], "task": "t", "pass_at_k": list(passk)})
    template = pd.DataFrame(
        [
            (model, task, algorithm, seed, 0.0)
            for model, task in cells
            for algorithm in ("sc", "std")
            for seed in range(seeds)
        ],
        columns=["model", "task", "algorithm", "seed", "value"],
    )
    # the design does not depend on the values: build it once through the function under test
    _, design, _ = interaction_design(template, alignment, "std", "sc")
    frame = template.sort_values(["model", "task", "algorithm", "seed"]).reset_index(drop=True)
    cell_of = {m: i for i, (m, _) in enumerate(cells)}
    p_of_run = np.array([passk[cell_of[m]] for m in frame["model"]])
    shortcut = (frame["algorithm"] == "sc").to_numpy(dtype=float)
    cell_idx = np.array([cell_of[m] for m in frame["model"]])
    centre = float(np.mean(passk))
    rejections = 0
    for _ in range(n_studies):
        levels = rng.uniform(0.2, 0.8, size=len(cells))
        deviation = rng.normal(0, cell_effect_sd, size=len(cells)) if cell_effect_sd else np.zeros(len(cells))
        y = (
            levels[cell_idx]
            + shortcut * (shortcut_effect + gamma * (p_of_run - centre) + deviation[cell_idx])
            + rng.normal(0, noise_sd, size=len(frame))
        )
        p_value = ols_last_coefficient(y, design)["p_value"]
        rejections += p_value is not None and p_value < alpha
    return rejections / n_studies
