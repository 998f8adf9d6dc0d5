"""What changed inside the model: statistics on the post-training measurements of run records.

Pure (numpy / scipy / pandas, no torch). Input: done run records carrying ``anatomy``,
``kl_drift``, ``pass_at_k`` and ``base`` (oxstudy/anatomy.py). Conventions, stated in the
output too:

- **Relative update of a block** (a layer x module type, or a whole module type):
  ``sqrt(Σ ||dW||²_F) / sqrt(Σ ||W0||²_F)`` over its parameter tensors; heatmaps show the
  median over seeds.
- **Share of the update** held by module types X: ``Σ_X ||dW||²_F / Σ_all ||dW||²_F``
  (squared Frobenius norms add over disjoint parameter blocks). Across seeds: mean with a
  Student t-interval (df = seeds - 1; the stack notes measured ~95% coverage for t-intervals
  over 5 seeds, where percentile bootstraps under-cover).
- **Contrasts** between algorithms: Welch's t-test on per-run values (scipy
  ``ttest_ind(equal_var=False)``), Holm-adjusted over the pairs of one quantity.
- **Forgetting**: per run, the in-domain gain (trained - base, mean over ``in_domain``
  benchmarks) and the knowledge change (trained - base, mean over ``role: knowledge``
  benchmarks, or over all out-of-domain benchmarks when none has that role); their Pearson
  correlation across runs with a Fisher-z 95% CI.
- **pass@k curves**: mean over seeds of each run's unbiased pass@k (Chen et al. 2021) with a
  t-interval, against the base model's curve (one draw, the same seed for every run).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

QK = ("q", "k")
CONVENTIONS = {
    "relative_update": "sqrt(sum ||dW||_F^2) / sqrt(sum ||W0||_F^2) over the block's tensors; heatmaps: median over seeds",
    "share": "sum over the module types of ||dW||_F^2 / sum over all parameters of ||dW||_F^2",
    "interval": "mean over seeds with a Student t 95% interval (df = seeds - 1)",
    "contrast": ("two-sided Welch t-test on per-run values (the flag rule's df: Hsu's or capped with unequal "
                 "seeds), Holm-adjusted over the pairs of one quantity within one model (undefined ones count as "
                 "p = 1)"),
    "forgetting": "trained - base per run; Pearson r across runs with a Fisher-z 95% CI",
    "kl": "mean per-token KL(trained || base) over greedy continuations of the trained model",
}


def _run_labels(record: dict[str, Any]) -> dict[str, Any]:
    cell = record.get("cell", {})
    training = cell.get("training") or {}
    return {
        "run_id": record["run_id"], "model": cell.get("model", {}).get("id"),
        "algorithm": cell.get("algorithm", {}).get("id"), "method": cell.get("algorithm", {}).get("method"),
        "seed": cell.get("seed"), "frozen": bool(training.get("freeze") or training.get("trainable")),
        "finetune": cell.get("model", {}).get("finetune"),
    }  # fmt: skip


def anatomy_table(records: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """One row per run x parameter tensor: labels, name, type, layer, update_sq, base_sq."""
    frames = []
    for record in records:
        anatomy = record.get("anatomy")
        if record.get("status") != "done" or not anatomy:
            continue
        params = anatomy["params"]
        frame = pd.DataFrame({
            "name": params["name"], "type": params["type"],
            "layer": [np.nan if v is None else v for v in params["layer"]],
            "update_sq": np.square(np.asarray(params["update_norm"], dtype=float)),
            "base_sq": np.square(np.asarray(params["base_norm"], dtype=float)),
        })  # fmt: skip
        for key, value in _run_labels(record).items():
            frame[key] = value
        frames.append(frame)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def t_interval(values: Sequence[float], level: float = 0.95) -> dict[str, Any]:
    """Mean, sample sd and a Student t interval of ``values`` (NaN bounds for n < 2)."""
    x = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    n = x.size
    mean = float(x.mean()) if n else float("nan")
    if n < 2:
        return {"mean": mean, "sd": float("nan"), "low": float("nan"), "high": float("nan"), "n": int(n)}
    sd = float(x.std(ddof=1))
    half = float(sps.t.ppf(0.5 + level / 2, n - 1)) * sd / math.sqrt(n)
    return {"mean": mean, "sd": sd, "low": mean - half, "high": mean + half, "n": int(n)}


def holm_within(rows: list[dict[str, Any]], keys: Sequence[str] = ("model", "quantity")) -> None:
    """Add ``p_holm`` to each row: Holm's step-down adjustment over its family, the rows that share
    ``keys`` (one quantity of one model). As in ``oxstudy analyze``, an undefined comparison (p NaN)
    counts in the family's size as p = 1 and keeps p_holm NaN."""
    from oxstudy.stats.corrections import adjust

    families: dict[tuple[Any, ...], list[int]] = {}
    for index, row in enumerate(rows):
        families.setdefault(tuple(row[k] for k in keys), []).append(index)
    for members in families.values():
        raw = np.array([rows[i]["p"] for i in members], dtype=float)
        adjusted = adjust(np.where(np.isfinite(raw), raw, 1.0), "holm")
        for i, p, q in zip(members, raw, adjusted, strict=True):
            rows[i]["p_holm"] = float(q) if np.isfinite(p) else float("nan")


def welch(a: Sequence[float], b: Sequence[float]) -> dict[str, Any]:
    """The flag rule's Welch t-test of mean(a) - mean(b) (``oxstudy.stats.tests.flag_test``: Hsu's or
    the capped df with unequal seeds); ``t`` and ``p`` NaN where undefined (fewer than 2 runs in an
    arm, zero variance in both)."""
    from oxstudy.stats.tests import flag_test_values

    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if not x.size or not y.size:
        return {"diff": float("nan"), "t": float("nan"), "p": float("nan"), "test": None}
    result = flag_test_values(x, y)
    return {
        "diff": float(result["difference"]),
        "t": float("nan") if result["statistic"] is None else result["statistic"],
        "p": float("nan") if result["p_value"] is None else result["p_value"],
        "test": result["test"],
    }


def per_run_quantities(table: pd.DataFrame, groups: dict[str, Sequence[str]] | None = None) -> pd.DataFrame:
    """Per run: total relative update, total update norm, and the share of each group of types."""
    groups = groups or {"q/k": QK}
    keys = ["run_id", "model", "algorithm", "method", "seed", "frozen"]
    rows = []
    for key, run in table.groupby(keys, sort=False, dropna=False):
        total_update, total_base = run["update_sq"].sum(), run["base_sq"].sum()
        row = dict(zip(keys, key, strict=True))
        row["update_norm"] = math.sqrt(total_update)
        row["relative_update"] = math.sqrt(total_update / total_base) if total_base > 0 else float("nan")
        for name, types in groups.items():
            row[f"share:{name}"] = (
                run.loc[run["type"].isin(types), "update_sq"].sum() / total_update
                if total_update > 0
                else float("nan")
            )
        for kind, part in run.groupby("type"):
            row[f"share_type:{kind}"] = (
                part["update_sq"].sum() / total_update if total_update > 0 else float("nan")
            )
        rows.append(row)
    return pd.DataFrame(rows)


def heatmaps(table: pd.DataFrame) -> list[dict[str, Any]]:
    """Per model x algorithm: the layer x module-type matrix of the relative update (median over
    seeds) for the per-layer types, and the layer-free types (embed, lm_head, final norm) apart."""
    out = []
    for (model, algorithm), arm in table.groupby(["model", "algorithm"], sort=False):
        layered = arm[arm["layer"].notna()]
        per_run = layered.groupby(["run_id", "layer", "type"])[["update_sq", "base_sq"]].sum().reset_index()
        per_run["relative"] = np.sqrt(per_run["update_sq"] / per_run["base_sq"])
        median = per_run.groupby(["layer", "type"])["relative"].median().unstack("type")
        types = [
            t
            for t in ("q", "k", "v", "o", "gate", "up", "down", "attn_norm", "mlp_norm")
            if t in median.columns
        ]
        types += [t for t in median.columns if t not in types]
        median = median.reindex(columns=types)
        flat = (
            arm[arm["layer"].isna()].groupby(["run_id", "type"])[["update_sq", "base_sq"]].sum().reset_index()
        )
        flat["relative"] = np.sqrt(flat["update_sq"] / flat["base_sq"])
        out.append({
            "model": model, "algorithm": algorithm, "seeds": int(arm["run_id"].nunique()),
            "layers": [int(v) for v in median.index], "types": types,
            "relative": [[None if not np.isfinite(v) else float(v) for v in row] for row in median.to_numpy()],
            "unlayered": {str(k): float(v) for k, v in flat.groupby("type")["relative"].median().items()},
        })  # fmt: skip
    return out


def _contrasts(per_run: pd.DataFrame, quantity: str) -> list[dict[str, Any]]:
    rows = []
    for model, part in per_run.groupby("model", sort=False):
        algorithms = list(dict.fromkeys(part["algorithm"]))
        for i, a in enumerate(algorithms):
            for b in algorithms[i + 1 :]:
                x = part.loc[part["algorithm"] == a, quantity].dropna()
                y = part.loc[part["algorithm"] == b, quantity].dropna()
                rows.append(
                    {
                        "model": model,
                        "quantity": quantity,
                        "a": a,
                        "b": b,
                        "n_a": int(x.size),
                        "n_b": int(y.size),
                        **welch(x, y),
                    }
                )
    holm_within(rows)
    return rows


def _metric_value(metrics: dict[str, Any], bench: str) -> float | None:
    value = (metrics.get(bench) or {}).get("value")
    return float(value) if value is not None else None


def _change(metrics: dict[str, Any], base: dict[str, Any], benches: list[str]) -> float:
    """Mean over ``benches`` of trained minus base score."""
    values = [(_metric_value(metrics, b), _metric_value(base, b)) for b in benches]
    return float(np.mean([t - s for t, s in values if t is not None and s is not None]))


def forgetting(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per run: in-domain gain and knowledge change from base; their correlation across runs."""
    rows = []
    knowledge_rule = "role: knowledge"
    for record in records:
        base = (record.get("base") or {}).get("metrics") or {}
        metrics = record.get("metrics") or {}
        if record.get("status") != "done" or not base:
            continue
        plain = {k: v for k, v in metrics.items() if k in base}
        in_domain = [b for b, m in plain.items() if m.get("in_domain")]
        knowledge = [b for b, m in plain.items() if m.get("role") == "knowledge"]
        if not knowledge:
            knowledge, knowledge_rule = (
                [b for b, m in plain.items() if not m.get("in_domain")],
                "in_domain: false",
            )
        if not in_domain or not knowledge:
            continue

        rows.append(
            {
                **_run_labels(record),
                "in_domain_gain": _change(metrics, base, in_domain),
                "knowledge_change": _change(metrics, base, knowledge),
                "in_domain": in_domain,
                "knowledge": knowledge,
            }
        )
    out: dict[str, Any] = {"runs": rows, "knowledge_benchmarks": knowledge_rule}
    if len(rows) >= 4:
        x = np.array([r["in_domain_gain"] for r in rows])
        y = np.array([r["knowledge_change"] for r in rows])
        if x.std() > 0 and y.std() > 0:
            r = float(np.corrcoef(x, y)[0, 1])
            z, se = math.atanh(max(min(r, 0.999999), -0.999999)), 1 / math.sqrt(len(rows) - 3)
            out["correlation"] = {
                "r": r,
                "low": math.tanh(z - 1.96 * se),
                "high": math.tanh(z + 1.96 * se),
                "n": len(rows),
                "p": float(sps.pearsonr(x, y).pvalue),
                "method": "Pearson, Fisher-z CI",
            }
    arms: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        arms.setdefault((row["model"], row["algorithm"]), []).append(row)
    out["arms"] = [
        {
            "model": m,
            "algorithm": a,
            "in_domain_gain": t_interval([r["in_domain_gain"] for r in rs]),
            "knowledge_change": t_interval([r["knowledge_change"] for r in rs]),
        }
        for (m, a), rs in arms.items()
    ]
    return out


def pass_at_k_curves(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per model x benchmark: the base curve and each algorithm's mean curve over seeds (t-interval)."""
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for record in records:
        if record.get("status") != "done" or not record.get("pass_at_k"):
            continue
        labels = _run_labels(record)
        base_curves = (record.get("base") or {}).get("pass_at_k") or {}
        for bench, entry in record["pass_at_k"].items():
            group = groups.setdefault(
                (labels["model"], bench),
                {
                    "model": labels["model"],
                    "benchmark": bench,
                    "k": entry["curve"]["k"],
                    "runs": {},
                    "base": None,
                    "samples": entry["samples"],
                    "temperature": entry["temperature"],
                },
            )
            group["runs"].setdefault(labels["algorithm"], []).append(entry["curve"]["value"])
            if bench in base_curves and group["base"] is None:
                group["base"] = base_curves[bench]["curve"]["value"]
    out = []
    for group in groups.values():
        algorithms = {}
        for algorithm, curves in group.pop("runs").items():
            matrix = np.asarray(curves, dtype=float)
            intervals = [t_interval(matrix[:, j]) for j in range(matrix.shape[1])]
            algorithms[algorithm] = {
                "mean": [i["mean"] for i in intervals],
                "low": [i["low"] for i in intervals],
                "high": [i["high"] for i in intervals],
                "seeds": int(matrix.shape[0]),
            }
        out.append({**group, "algorithms": algorithms})
    return out


def kl_summary(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    arms: dict[tuple[str, str], list[float]] = {}
    for record in records:
        kl = record.get("kl_drift")
        if record.get("status") == "done" and kl and kl.get("value") is not None:
            labels = _run_labels(record)
            arms.setdefault((labels["model"], labels["algorithm"]), []).append(float(kl["value"]))
    return [{"model": m, "algorithm": a, **t_interval(v), "values": v} for (m, a), v in arms.items()]


def frozen_comparisons(per_run: pd.DataFrame, records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Arms of the same model and method with and without freezing: Welch contrasts of the in-domain
    score, the knowledge change and the total relative update (frozen minus unfrozen)."""
    scores: dict[str, dict[str, float]] = {}
    for row in forgetting(records)["runs"]:
        scores[row["run_id"]] = {
            "in_domain_gain": row["in_domain_gain"],
            "knowledge_change": row["knowledge_change"],
        }
    frame = per_run.copy()
    for quantity in ("in_domain_gain", "knowledge_change"):
        frame[quantity] = [scores.get(r, {}).get(quantity, np.nan) for r in frame["run_id"]]
    out = []
    for (model, method), part in frame.groupby(["model", "method"], sort=False):
        frozen = list(dict.fromkeys(part.loc[part["frozen"], "algorithm"]))
        free = list(dict.fromkeys(part.loc[~part["frozen"], "algorithm"]))
        for f in frozen:
            for u in free:
                for quantity in ("in_domain_gain", "knowledge_change", "relative_update"):
                    x = part.loc[part["algorithm"] == f, quantity].dropna()
                    y = part.loc[part["algorithm"] == u, quantity].dropna()
                    out.append(
                        {
                            "model": model,
                            "method": method,
                            "frozen": f,
                            "unfrozen": u,
                            "quantity": quantity,
                            **welch(x, y),
                        }
                    )
    holm_within(out)
    return out


def analyze_post_training(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Every analysis of the section "What changed inside the model"; parts without data are empty."""
    records = [r for r in records if r.get("status") == "done"]
    table = anatomy_table(records)
    out: dict[str, Any] = {
        "conventions": CONVENTIONS,
        "runs_with_anatomy": 0,
        "heatmaps": [],
        "shares": [],
        "contrasts": [],
        "forgetting": forgetting(records),
        "pass_at_k": pass_at_k_curves(records),
        "kl": kl_summary(records),
        "frozen": [],
    }
    if table.empty:
        return out
    per_run = per_run_quantities(table)
    out["runs_with_anatomy"] = int(per_run["run_id"].nunique())
    out["heatmaps"] = heatmaps(table)
    share_columns = [c for c in per_run.columns if c.startswith("share")]
    for (model, algorithm), arm in per_run.groupby(["model", "algorithm"], sort=False):
        row = {
            "model": model,
            "algorithm": algorithm,
            "relative_update": t_interval(arm["relative_update"]),
            "update_norm": t_interval(arm["update_norm"]),
        }
        row.update({c: t_interval(arm[c].fillna(0.0)) for c in share_columns})
        out["shares"].append(row)
    for quantity in ("share:q/k", "relative_update"):
        out["contrasts"] += _contrasts(per_run, quantity)
    out["frozen"] = frozen_comparisons(per_run, records)
    out["per_run"] = per_run.replace({np.nan: None}).to_dict("records")
    return out
