"""Claim kinds about what post-training changed inside the model (registered into oxstudy/claims.py).

- ``update_concentration``: module types ``types`` hold at least a share ``at_least`` of
  ``algorithm``'s update (share of ``||dθ||²``, mean over seeds; with ``significant: true`` the
  lower end of the 95% t-interval must reach it).
- ``larger_update``: ``a`` moves the weights more than ``b`` (per-run total relative update,
  or ``measure: update_norm``; Welch t-test when ``significant``).
- ``forgets_less``: ``a`` loses less on benchmark ``benchmark`` than ``b`` (per-run trained minus
  base score; Welch t-test when ``significant``).

They read the run records of the study directories among the results (post-training
measurements live there, not in the long table). Verdicts: SUPPORTED / REFUTED when the data
point one way (and, when ``significant``, the test agrees at ``alpha``); INCONCLUSIVE when
the direction holds but significance does not, or the data are missing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from oxstudy.claims import INCONCLUSIVE, REFUTED, SUPPORTED, _Claim
from oxstudy.errors import InputError


class UpdateConcentrationClaim(_Claim):
    """Module types ``types`` hold at least ``at_least`` of ``algorithm``'s squared update norm."""

    kind: Literal["update_concentration"]
    algorithm: str
    types: list[str] = Field(min_length=1, description="Module types, e.g. [q, k] (see docs/analysis.md).")
    at_least: float = Field(gt=0, le=1, description="Share of sum ||dW||_F^2.")
    model: str | None = Field(None, description="Default: the only model of the study.")
    significant: bool = Field(False, description="The 95% t-interval's lower end must reach at_least.")


class LargerUpdateClaim(_Claim):
    """``a`` moves the weights more than ``b``."""

    kind: Literal["larger_update"]
    a: str
    b: str
    model: str | None = None
    measure: Literal["relative_update", "update_norm"] = "relative_update"
    significant: bool = False
    alpha: float = Field(0.05, gt=0, lt=1)


class ForgetsLessClaim(_Claim):
    """``a``'s change from base on ``benchmark`` is higher (it loses less) than ``b``'s."""

    kind: Literal["forgets_less"]
    a: str
    b: str
    benchmark: str
    model: str | None = None
    significant: bool = False
    alpha: float = Field(0.05, gt=0, lt=1)


CLAIM_KINDS = {
    "update_concentration": UpdateConcentrationClaim,
    "larger_update": LargerUpdateClaim,
    "forgets_less": ForgetsLessClaim,
}


def _records(verifier: Any) -> list[dict[str, Any]]:
    if "post_training_records" not in verifier.cache:
        from oxstudy.results_io import _is_study_dir
        from oxstudy.store import load_study

        records: list[dict[str, Any]] = []
        for source in str(verifier.results.source).split(", "):
            if source and _is_study_dir(Path(source)):
                records += [
                    r for r in load_study(source, with_items=False).records if r.get("status") == "done"
                ]
        verifier.cache["post_training_records"] = records
    return verifier.cache["post_training_records"]


def _per_run(verifier: Any, i: int, claim: Any) -> Any:
    from oxstudy.stats.anatomy import anatomy_table, per_run_quantities

    table = anatomy_table(_records(verifier))
    if table.empty:
        raise InputError(
            f"{verifier.loaded.where(i)}: claims[{i}] ({claim.kind}) needs run records with a weight-update "
            "anatomy (a study directory run by this version of oxstudy)"
        )
    frame = per_run_quantities(table, {"claimed": getattr(claim, "types", ["q", "k"])})
    return _one_model(verifier, i, claim, frame)


def _one_model(verifier: Any, i: int, claim: Any, frame: Any) -> Any:
    models = list(dict.fromkeys(frame["model"]))
    if claim.model is None:
        if len(models) > 1:
            raise InputError(
                f"{verifier.loaded.where(i, 'model')}: claims[{i}].model: the results have several models "
                f"({', '.join(map(str, models))}): name one"
            )
        return frame
    if claim.model not in models:
        raise InputError(
            f"{verifier.loaded.where(i, 'model')}: claims[{i}].model: unknown model {claim.model!r} "
            f"(the results have: {', '.join(map(str, models))})"
        )
    return frame[frame["model"] == claim.model]


def _algorithms(verifier: Any, i: int, frame: Any, names: dict[str, str]) -> None:
    known = set(frame["algorithm"])
    for field, value in names.items():
        if value not in known:
            raise InputError(
                f"{verifier.loaded.where(i, field)}: claims[{i}].{field}: unknown algorithm {value!r} "
                f"(the results have: {', '.join(sorted(map(str, known)))})"
            )


def _compare(a_values: Any, b_values: Any, claim: Any, what: str) -> tuple[str, str, dict[str, Any]]:
    from oxstudy.stats.anatomy import welch

    test = welch(list(a_values), list(b_values))
    numbers = {"mean_a": float(a_values.mean()), "mean_b": float(b_values.mean()), **test}
    message = (
        f"{what}: {claim.a} {numbers['mean_a']:.4g} vs {claim.b} {numbers['mean_b']:.4g} "
        f"(Welch p = {test['p']:.3g}, n = {len(a_values)}/{len(b_values)})"
    )
    if test["diff"] <= 0:
        return REFUTED, message, numbers
    if claim.significant and not (test["p"] < claim.alpha):
        return INCONCLUSIVE, message + f"; not significant at {claim.alpha}", numbers
    return SUPPORTED, message, numbers


def update_concentration(
    verifier: Any, i: int, claim: UpdateConcentrationClaim
) -> tuple[str, str, dict[str, Any]]:
    from oxstudy.stats.anatomy import t_interval

    frame = _per_run(verifier, i, claim)
    _algorithms(verifier, i, frame, {"algorithm": claim.algorithm})
    shares = frame.loc[frame["algorithm"] == claim.algorithm, "share:claimed"]
    interval = t_interval(list(shares))
    numbers = {
        "share": interval["mean"],
        "ci_low": interval["low"],
        "ci_high": interval["high"],
        "n": interval["n"],
        "at_least": claim.at_least,
    }
    message = (
        f"share of {claim.algorithm}'s update in {'+'.join(claim.types)}: {interval['mean']:.3g} "
        f"[{interval['low']:.3g}, {interval['high']:.3g}] over {interval['n']} seeds (claimed >= {claim.at_least:g})"
    )
    if interval["mean"] < claim.at_least:
        return REFUTED, message, numbers
    if claim.significant and not (interval["low"] >= claim.at_least):
        return INCONCLUSIVE, message + "; the interval's lower end is below the claimed share", numbers
    return SUPPORTED, message, numbers


def larger_update(verifier: Any, i: int, claim: LargerUpdateClaim) -> tuple[str, str, dict[str, Any]]:
    frame = _per_run(verifier, i, claim)
    _algorithms(verifier, i, frame, {"a": claim.a, "b": claim.b})
    values = {name: frame.loc[frame["algorithm"] == name, claim.measure] for name in (claim.a, claim.b)}
    return _compare(values[claim.a], values[claim.b], claim, claim.measure.replace("_", " "))


def forgets_less(verifier: Any, i: int, claim: ForgetsLessClaim) -> tuple[str, str, dict[str, Any]]:
    import pandas as pd

    rows = []
    for record in _records(verifier):
        base = ((record.get("base") or {}).get("metrics") or {}).get(claim.benchmark, {}).get("value")
        trained = ((record.get("metrics") or {}).get(claim.benchmark) or {}).get("value")
        if base is None or trained is None:
            continue
        cell = record.get("cell", {})
        rows.append(
            {
                "model": cell.get("model", {}).get("id"),
                "algorithm": cell.get("algorithm", {}).get("id"),
                "change": float(trained) - float(base),
            }
        )
    if not rows:
        raise InputError(
            f"{verifier.loaded.where(i, 'benchmark')}: claims[{i}].benchmark: no run has base and trained "
            f"scores on {claim.benchmark!r} (measure.base_eval must be on)"
        )
    frame = _one_model(verifier, i, claim, pd.DataFrame(rows))
    _algorithms(verifier, i, frame, {"a": claim.a, "b": claim.b})
    values = {name: frame.loc[frame["algorithm"] == name, "change"] for name in (claim.a, claim.b)}
    return _compare(values[claim.a], values[claim.b], claim, f"change from base on {claim.benchmark}")


VERIFIERS = {
    "update_concentration": update_concentration,
    "larger_update": larger_update,
    "forgets_less": forgets_less,
}
