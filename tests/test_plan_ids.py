"""Run ids are content addresses: stable under renames and reordering, sensitive to settings."""

from __future__ import annotations

from pathlib import Path

import yaml

from oxstudy.plan import plan
from oxstudy.spec import load_spec

BASE = {
    "name": "ids",
    "models": [{"id": "s", "source": "zoo:tiny"}, {"id": "m", "source": "zoo:small"}],
    "algorithms": [
        {"id": "DPO", "method": "dpo"},
        {"id": "IPO", "method": "ipo"},
        {"id": "SimPO", "method": "simpo", "hyperparameters": {"simpo_gamma": 0.5}},
    ],
    "seeds": [1, 2],
    "benchmarks": [
        {"id": "arith", "task": "oxs_arith", "in_domain": True},
        {"id": "mc", "task": "oxs_compare", "metric": "acc,none"},
    ],
    "analysis": {"baseline": "DPO"},
}


def ids(tmp_path: Path, data: dict, name: str = "spec.yaml") -> dict[tuple[str, str, int], str]:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return {(c.model.id, c.algorithm.id, c.seed): c.run_id for c in plan(load_spec(path))}


def variant(**changes) -> dict:
    data = yaml.safe_load(yaml.safe_dump(BASE))
    data.update(changes)
    return data


def test_rename_study_and_reorder_lists_keep_ids(tmp_path: Path) -> None:
    original = ids(tmp_path, BASE)
    shuffled = variant(
        name="renamed",
        models=list(reversed(BASE["models"])),
        algorithms=list(reversed(BASE["algorithms"])),
        seeds=[2, 1],
        benchmarks=list(reversed(BASE["benchmarks"])),
        description="other words",
    )
    assert ids(tmp_path, shuffled) == original


def test_renaming_labels_keeps_ids(tmp_path: Path) -> None:
    original = ids(tmp_path, BASE)
    renamed = variant(algorithms=[{**a, "id": a["id"] + "-v2"} for a in BASE["algorithms"]])
    renamed["analysis"] = {"baseline": "DPO-v2"}
    assert set(ids(tmp_path, renamed).values()) == set(original.values())


def test_hyperparameter_change_changes_exactly_the_affected_ids(tmp_path: Path) -> None:
    original = ids(tmp_path, BASE)
    algorithms = [dict(a) for a in BASE["algorithms"]]
    algorithms[2]["hyperparameters"] = {"simpo_gamma": 0.7}
    changed = ids(tmp_path, variant(algorithms=algorithms))
    diff = {key for key in original if original[key] != changed[key]}
    assert diff == {(m, "SimPO", s) for m in ("s", "m") for s in (1, 2)}


def test_training_override_on_one_model_changes_only_that_model(tmp_path: Path) -> None:
    original = ids(tmp_path, BASE)
    models = [dict(m) for m in BASE["models"]]
    models[1]["training"] = {"learning_rate": 3e-6}
    changed = ids(tmp_path, variant(models=models))
    diff = {key for key in original if original[key] != changed[key]}
    assert diff == {("m", a, s) for a in ("DPO", "IPO", "SimPO") for s in (1, 2)}


def test_explicit_default_equals_implicit_default(tmp_path: Path) -> None:
    # writing a registry/shared default explicitly is the same configuration
    original = ids(tmp_path, BASE)
    explicit = variant(training={"learning_rate": 1e-6})
    assert ids(tmp_path, explicit) == original


def test_shared_setting_and_benchmark_changes_change_every_id(tmp_path: Path) -> None:
    original = ids(tmp_path, BASE)
    for changed in (
        variant(training={"learning_rate": 2e-6}),
        variant(benchmarks=[{**BASE["benchmarks"][0], "num_fewshot": 3}, BASE["benchmarks"][1]]),
        variant(data={"train_size": 10}),
    ):
        new = ids(tmp_path, changed)
        assert all(new[key] != original[key] for key in original)


def test_seed_and_lora_settings_are_part_of_the_id(tmp_path: Path) -> None:
    models = [dict(m) for m in BASE["models"]]
    models[0].update(finetune="lora", lora={"r": 8})
    a = ids(tmp_path, variant(models=models))
    models[0]["lora"] = {"r": 16}
    b = ids(tmp_path, variant(models=models))
    assert a[("s", "DPO", 1)] != b[("s", "DPO", 1)] and a[("m", "DPO", 1)] == b[("m", "DPO", 1)]
    assert a[("s", "DPO", 1)] != a[("s", "DPO", 2)]
