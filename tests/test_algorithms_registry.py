"""The algorithm registry: coverage of the study set, metadata, validation, CLI listing."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest

from oxstudy.algorithms import registry

STUDY_SET = [
    "sft", "sp-rft",
    # the 20-variant DPO taxonomy
    "dpo", "ipo", "simpo", "kto", "hinge", "cpo", "orpo", "rdpo", "cdpo", "beta-dpo", "cal-dpo", "dpop",
    "odpo", "exo", "alphapo", "apo", "sppo", "robust-dpo", "gpo", "focalpo",
    # more offline preference losses
    "nca", "bco", "aot", "discopop", "wpo", "f-dpo", "rpo", "sigmoid-norm",
    # online RL
    "grpo", "sgrpo", "gspo", "cispo", "dr-grpo", "dapo", "rloo", "online-dpo",
]


def test_at_least_40_methods_including_the_study_set():
    assert len(registry.names()) >= 40
    assert len(set(registry.names())) == len(registry.names())
    for name in STUDY_SET:
        assert registry.get(name).name in registry.names(), name


def test_importing_the_registry_is_cheap():
    code = ("import sys; import oxstudy.algorithms.registry as r; r.get('dpo'); r.validate_hyperparameters('dpo', {}); "
            "print(sorted(m for m in ('torch', 'trl', 'transformers', 'peft') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("name", registry.names())
def test_metadata_is_complete(name):
    info = registry.get(name)
    assert dataclasses.is_dataclass(info) and info.name == name == name.lower()
    assert info.family in ("sft", "offline-preference", "online-rl")
    assert info.data in ("demonstrations", "preference-pairs", "unpaired-labels", "prompts-reward")
    assert info.tags["paradigm"] in ("sft-like", "preference", "online-rl")
    assert isinstance(info.tags["online"], bool) and info.tags["loss_family"]
    assert info.tags["online"] == (info.family == "online-rl")
    assert info.trainer.startswith(("trl.", "oxstudy.")) and info.config in registry.TRAINER_CONFIG_FIELDS
    assert info.paper and info.loss and info.description
    # Defaults are either fields of the trainer config or consumed by an oxstudy loss override.
    fields = set(registry.TRAINER_CONFIG_FIELDS[info.config])
    if not info.trainer.startswith("oxstudy.") and name not in ("rpo", "slic"):
        assert set(info.defaults) <= fields, set(info.defaults) - fields
    assert set(info.fixed) <= fields
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.name = "x"  # type: ignore[misc]


def test_trainer_mapping_and_reference_models():
    assert registry.get("dpo").trainer == "trl.DPOTrainer"
    assert registry.get("cpo").trainer == "trl.experimental.cpo.CPOTrainer"
    assert registry.get("simpo").fixed["loss_type"] == "simpo"
    assert registry.get("rdpo").trainer == "oxstudy.RDPOTrainer"
    assert registry.get("gspo").fixed["importance_sampling_level"] == "sequence"
    assert registry.get("grpo").fixed["importance_sampling_level"] == "token"
    assert registry.get("cispo").fixed["loss_type"] == "cispo"
    assert registry.get("rpo").fixed["loss_type"] == ["sigmoid", "sft"]
    assert not registry.get("simpo").needs_reference and not registry.get("orpo").needs_reference
    assert registry.get("dpo").needs_reference and registry.get("kto").needs_reference
    assert registry.get("kto").data == "unpaired-labels"
    assert registry.get("sgrpo") is registry.get("grpo")


def test_trainer_config_snapshot_matches_installed_trl():
    import importlib

    import transformers

    base = {f.name for f in dataclasses.fields(transformers.TrainingArguments)}
    for dotted, snapshot in registry.TRAINER_CONFIG_FIELDS.items():
        module, _, name = dotted.rpartition(".")
        config = getattr(importlib.import_module(module), name)
        own = tuple(f.name for f in dataclasses.fields(config) if f.name not in base)
        assert set(own) == set(snapshot), dotted


def test_get_unknown_raises_key_error_with_suggestion():
    with pytest.raises(KeyError, match="did you mean 'dpo'"):
        registry.get("dpoo")
    assert registry.get("DPO").name == "dpo"
    assert registry.suggest("SimPo") == "simpo"
    assert registry.suggest("DPO-Positive") == "dpop"
    assert registry.suggest("Dr.GRPO") == "dr-grpo"
    assert registry.suggest("zzzzzz") is None


def test_validate_hyperparameters():
    assert registry.validate_hyperparameters("rdpo", {"alpha": 0.05}) == []
    assert registry.validate_hyperparameters("dpo", {"precompute_ref_log_probs": True}) == []
    assert registry.validate_hyperparameters("grpo", {"num_generations": 8, "beta": 0.04}) == []
    errors = registry.validate_hyperparameters("dpo", {"alpah": 1, "beta": 0.2, "loss_type": "ipo"})
    assert len(errors) == 3
    assert any("unknown hyperparameter 'alpah'" in e for e in errors)
    assert any("training.beta" in e for e in errors)
    assert any("fixed" in e and "loss_type" in e for e in errors)
    assert "did you mean 'epsilon'" in registry.validate_hyperparameters("grpo", {"epsilom": 0.1})[0]
    assert "did you mean 'dpo'" in registry.validate_hyperparameters("dpoo", {})[0]


def test_resolve_hyperparameters_merges_over_defaults():
    assert registry.resolve_hyperparameters("rdpo") == {"alpha": 0.01}
    assert registry.resolve_hyperparameters("rdpo", {"alpha": 0.1}) == {"alpha": 0.1}
    merged = registry.resolve_hyperparameters("dapo", {"num_generations": 8})
    assert merged["num_generations"] == 8 and merged["epsilon_high"] == 0.28
    assert registry.get("dapo").defaults["num_generations"] == 4  # defaults not mutated


def test_cli_lists_algorithms_as_json():
    from typer.testing import CliRunner

    from oxstudy.cli import build_app

    result = CliRunner().invoke(build_app(), ["algorithms", "--json"])
    assert result.exit_code == 0, result.output
    listed = json.loads(result.stdout)["algorithms"]
    assert [a["name"] for a in listed] == registry.names()
    assert all({"name", "family", "trainer", "data", "needs_reference", "tags"} <= set(a) for a in listed)
    one = CliRunner().invoke(build_app(), ["algorithms", "sgrpo", "--json"])
    assert json.loads(one.stdout)["algorithms"][0]["name"] == "grpo"
    unknown = CliRunner().invoke(build_app(), ["algorithms", "dpoo"])
    assert unknown.exit_code != 0
    table = CliRunner().invoke(build_app(), ["algorithms", "--family", "online-rl"])
    assert table.exit_code == 0 and "trl.GRPOTrainer" in table.stdout and "trl.DPOTrainer" not in table.stdout


def test_every_method_has_exactly_one_trainer_builder():
    import importlib

    from oxstudy.training import FAMILY_MODULES

    modules = [importlib.import_module(f"oxstudy.algorithms.{m}") for m in FAMILY_MODULES]
    for name in registry.names():
        owners = [m.__name__ for m in modules if name in m.METHODS]
        assert len(owners) == 1, (name, owners)
        assert modules[0].__doc__ and all(m.__doc__ for m in modules)


def test_methods_trl_lacks_are_named_loss_overrides_on_trl_dpo_trainer():
    from trl import DPOTrainer

    from oxstudy.algorithms.preference import CUSTOM_LOSSES, custom_trainer_class

    overrides = [n for n in registry.names()
                 if registry.get(n).trainer.startswith("oxstudy.") and registry.get(n).config == "trl.DPOConfig"]
    assert sorted(overrides) == sorted(CUSTOM_LOSSES)
    for name in overrides:
        cls = custom_trainer_class(name)
        assert issubclass(cls, DPOTrainer)
        assert cls.__name__ == registry.get(name).trainer.rpartition(".")[2]
        assert "arXiv" in CUSTOM_LOSSES[name].__doc__ or "Mitchell" in CUSTOM_LOSSES[name].__doc__


def test_validate_finetune():
    assert registry.validate_finetune("dpo", "lora") == []
    assert registry.validate_finetune("tr-dpo", "full") == []
    assert "use finetune: full" in registry.validate_finetune("tr-dpo", "lora")[0]
