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
    "grpo", "sgrpo", "gspo", "cispo", "dr-grpo", "dapo", "sapo", "rloo", "online-dpo",
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
    if not info.trainer.startswith("oxstudy."):
        assert set(info.defaults) - registry.GRPO_OXSTUDY_KEYS <= fields, set(info.defaults) - fields
    # Neither profile may set something the method never reads.
    assert not set(info.defaults) & set(registry.ignored_settings(name))
    assert set(info.oxrl) <= registry.allowed_hyperparameters(name), name
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
    # rpo and slic follow their papers through loss overrides (TRL's sft term pools the batch's
    # tokens; SLiC-HF is reference-free): tests/test_algorithms_losses.py checks both formulas.
    assert registry.get("rpo").trainer == "oxstudy.RPOTrainer" and registry.get("rpo").needs_reference
    assert registry.get("slic").trainer == "oxstudy.SLiCTrainer" and not registry.get("slic").needs_reference
    assert not registry.get("simpo").needs_reference and not registry.get("orpo").needs_reference
    assert registry.get("dpo").needs_reference and registry.get("kto").needs_reference
    assert registry.get("kto").data == "unpaired-labels"
    # OXRL's sgrpo averages over all tokens of the micro-batch: TRL's loss_type "bnpo", not grpo's
    # per-sequence mean.
    assert registry.get("sgrpo").fixed == {"loss_type": "bnpo"}
    assert registry.get("grpo").fixed["loss_type"] == "grpo"


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


def test_validation_rejects_settings_a_method_ignores():
    # Override methods compute their own loss: TRL's loss selectors would be silently ignored.
    for method in ("rdpo", "cdpo", "beta-dpo", "cal-dpo", "dpop", "odpo", "gpo", "focalpo"):
        for key, value in (("loss_type", ["ipo"]), ("use_weighting", True), ("f_divergence_type", "js_divergence"),
                           ("loss_weights", [2.0]), ("ld_alpha", 0.5), ("discopop_tau", 0.1)):
            errors = registry.validate_hyperparameters(method, {key: value})
            assert len(errors) == 1 and f"method {method!r} ignores {key!r}" in errors[0], (method, key, errors)
    assert "ignores 'label_smoothing'" in registry.validate_hyperparameters("rdpo", {"label_smoothing": 0.1})[0]
    assert registry.validate_hyperparameters("cdpo", {"label_smoothing": 0.2}) == []  # cDPO's own epsilon
    # TRL's own loss types read some fields only for some losses.
    assert "ignores 'label_smoothing'" in registry.validate_hyperparameters("dpo", {"label_smoothing": 0.1})[0]
    assert registry.validate_hyperparameters("robust-dpo", {"label_smoothing": 0.2}) == []
    assert "ignores 'discopop_tau'" in registry.validate_hyperparameters("ipo", {"discopop_tau": 0.1})[0]
    assert "ignores 'loss_weights'" in registry.validate_hyperparameters("rpo", {"loss_weights": [1, 2]})[0]
    assert "ignores 'epsilon'" in registry.validate_hyperparameters("cispo", {"epsilon": 0.1})[0]
    assert "ignores 'epsilon_high'" in registry.validate_hyperparameters("sapo", {"epsilon_high": 0.3})[0]
    assert "ignores 'sapo_temperature_pos'" in registry.validate_hyperparameters("grpo", {"sapo_temperature_pos": 2})[0]
    assert "ignores 'alpha'" in registry.validate_hyperparameters("simpo", {"alpha": 0.5})[0]
    assert "ignores 'simpo_gamma'" in registry.validate_hyperparameters("cpo", {"simpo_gamma": 0.5})[0]
    assert registry.validate_hyperparameters("ld-dpo", {"ld_alpha": 0.3}) == []


def test_bnpo_is_refused_with_the_reason():
    with pytest.raises(KeyError, match="Beta-distribution reward normalisation.*'sgrpo'"):
        registry.get("bnpo")
    assert "bnpo" not in registry.all_names()


def test_spec_rejects_an_ignored_setting_with_a_located_error(tmp_path):
    from oxstudy.errors import SpecError
    from oxstudy.spec import load_spec

    path = tmp_path / "s.yaml"
    path.write_text("name: s\nmodels: [{id: t, source: 'zoo:tiny'}]\nseeds: [1]\n"
                    "benchmarks: [{id: a, task: oxs_arith}]\n"
                    "algorithms:\n  - {id: R, method: rdpo, hyperparameters: {ld_alpha: 0.5}}\n"
                    "method_defaults: {focalpo: {loss_type: [ipo]}}\n")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    message = str(info.value)
    assert f"{path}:6: algorithms[0].hyperparameters: method 'rdpo' ignores 'ld_alpha'" in message
    assert f"{path}:7: method_defaults.focalpo: method 'focalpo' ignores 'loss_type'" in message


def test_oxrl_profile_in_the_shared_spec_matches_the_registry():
    """specs/shared/oxrl_defaults.yaml carries the OXRL values; the registry's oxrl profile (with
    sources) is what `oxstudy algorithms --json` shows: the two must agree."""
    from pathlib import Path

    import yaml

    shared = yaml.safe_load((Path(__file__).resolve().parents[1] / "specs/shared/oxrl_defaults.yaml").read_text())
    in_yaml = shared["method_defaults"]
    in_registry = {n: {k: v for k, (v, _) in registry.get(n).oxrl.items()} for n in registry.names() if registry.get(n).oxrl}
    assert in_yaml == in_registry


def test_specs_extending_the_oxrl_defaults_run_oxrl_values(tmp_path):
    from oxstudy.plan import plan
    from oxstudy.spec import load_spec

    cells = plan(load_spec(Path_repo() / "specs/dpo_taxonomy.yaml"))
    dpop = next(c for c in cells if c.algorithm.method == "dpop")
    assert dpop.algorithm.hyperparameters["dpop_lambda"] == 5.0
    focal = next(c for c in cells if c.algorithm.method == "focalpo")
    assert focal.algorithm.hyperparameters["gamma"] == 1.0
    scaling = plan(load_spec(Path_repo() / "specs/scaling.yaml"))
    sgrpo = next(c for c in scaling if c.algorithm.method == "sgrpo")
    assert sgrpo.algorithm.hyperparameters["optimizer_steps_per_generation"] == 5


def Path_repo():
    from pathlib import Path

    return Path(__file__).resolve().parents[1]


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
    assert json.loads(one.stdout)["algorithms"][0]["name"] == "sgrpo"
    by_name = {a["name"]: a for a in listed}
    for entry in listed:  # the objective actually run, both profiles, the settings accepted/rejected
        assert {"objective", "profiles", "accepted_settings", "rejected_settings"} <= set(entry)
        assert set(entry["profiles"]) == {"paper", "oxrl"}
        assert set(entry["profiles"]["paper"]) - {"training.beta"} <= set(entry["accepted_settings"])
    assert by_name["rdpo"]["objective"].startswith("oxstudy override oxstudy.RDPOTrainer")
    assert by_name["ipo"]["objective"] == "trl.DPOTrainer (loss_type=['ipo'])"
    assert by_name["dpop"]["profiles"]["paper"]["dpop_lambda"] == 50.0
    assert by_name["dpop"]["profiles"]["oxrl"]["dpop_lambda"]["value"] == 5.0
    assert "oxrl/algs/dpop.py" in by_name["dpop"]["profiles"]["oxrl"]["dpop_lambda"]["source"]
    assert by_name["simpo"]["profiles"]["paper"]["training.beta"] == 2.0
    assert "ld_alpha" in by_name["rdpo"]["rejected_settings"] and "ld_alpha" not in by_name["rdpo"]["accepted_settings"]
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

    overrides = [n for n in registry.names() if registry.get(n).trainer.startswith("oxstudy.")
                 and registry.get(n).config == "trl.DPOConfig"]
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


def test_tr_dpo_that_never_syncs_its_reference_is_an_error():
    """TRL syncs after every tau-th optimizer step (global_step % tau == 0): a run of <= tau steps
    never trains against a moved reference, i.e. it is dpo under another name."""
    assert registry.validate_schedule("tr-dpo", {}, None) == []  # step count unknown at plan time
    assert registry.validate_schedule("tr-dpo", {}, 513) == []  # paper tau 512: step 513 sees the sync
    (message,) = registry.validate_schedule("tr-dpo", {}, 512)
    assert "ref_model_sync_steps = 512" in message and "equal dpo" in message
    assert registry.validate_schedule("tr-dpo", {"ref_model_sync_steps": 4}, 5) == []
    assert registry.validate_schedule("tr-dpo", {"ref_model_sync_steps": 4}, 4)
    assert registry.validate_schedule("dpo", {}, 3) == []  # only methods that sync a reference


def test_spec_rejects_a_tr_dpo_arm_shorter_than_its_sync_period(tmp_path):
    from oxstudy.errors import SpecError
    from oxstudy.spec import load_spec

    path = tmp_path / "s.yaml"
    head = ("name: s\nmodels: [{id: t, source: 'zoo:tiny'}]\nseeds: [1]\nbenchmarks: [{id: a, task: oxs_arith}]\n"
            "training: {max_steps: 20}\nalgorithms:\n")
    path.write_text(head + "  - {id: D, method: dpo}\n  - {id: T, method: tr-dpo}\n")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert f"{path}:8: algorithms[1].hyperparameters: model t: method 'tr-dpo' syncs its reference every " \
           "ref_model_sync_steps = 512 optimizer steps, but this run takes 20" in str(info.value)
    path.write_text(head + "  - {id: T, method: tr-dpo, hyperparameters: {ref_model_sync_steps: 8}}\n")
    load_spec(path)  # syncs at steps 8 and 16
    path.write_text(head + "  - {id: T, method: tr-dpo}\nmethod_defaults: {tr-dpo: {ref_model_sync_steps: 8}}\n")
    load_spec(path)  # the spec's method_defaults count too
