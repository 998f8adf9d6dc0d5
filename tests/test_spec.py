"""Spec validation: every rule has a broken spec here, with a located one-line error."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from oxstudy.errors import SpecError
from oxstudy.plan import plan
from oxstudy.spec import load_spec, source_kind

REPO = Path(__file__).resolve().parents[1]

GOOD = """\
name: mini
models:
  - {id: small, source: "zoo:tiny"}
  - {id: big, source: "zoo:tiny", finetune: lora, lora: {r: 4, alpha: 8}}
algorithms:
  - {id: DPO, method: dpo}
  - {id: SimPO, method: simpo}
  - {id: SFT, method: sft}
seeds: [1, 2, 3]
training:
  learning_rate: 1.0e-4
  max_steps: 2
data:
  source: task:oxs_arith
benchmarks:
  - {id: arith, task: oxs_arith, in_domain: true}
analysis:
  baseline: DPO
"""


def write(tmp_path: Path, text: str, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def errors_of(path: Path) -> list[str]:
    with pytest.raises(SpecError) as info:
        load_spec(path)
    return info.value.messages


def assert_located(messages: list[str], path: Path, line: int, field: str, fragment: str) -> None:
    wanted = f"{path}:{line}: {field}: "
    hits = [m for m in messages if m.startswith(wanted) and fragment in m]
    assert hits, f"no error '{wanted}...{fragment}' in:\n" + "\n".join(messages)


def test_good_spec_validates_and_plans(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, GOOD))
    cells = plan(spec)
    assert len(cells) == 2 * 3 * 3
    assert all(re.fullmatch(r"[0-9a-f]{16}", c.run_id) for c in cells)
    assert len({c.run_id for c in cells}) == len(cells)


def test_unknown_top_level_key_with_suggestion(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + "sedes: [4]\n")
    assert_located(errors_of(path), path, 19, "sedes", "unknown key (did you mean 'seeds'?)")


def test_unknown_nested_key(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("lora: {r: 4, alpha: 8}", "lora: {rank: 4, alpha: 8}"))
    assert_located(errors_of(path), path, 4, "models[1].lora.rank", "unknown key (did you mean 'r'?)")


def test_baseline_must_be_an_algorithm(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("baseline: DPO", "baseline: DPOO"))
    assert_located(errors_of(path), path, 18, "analysis.baseline", "did you mean 'DPO'")


def test_seeds_unique(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("seeds: [1, 2, 3]", "seeds: [1, 2, 1]"))
    assert_located(errors_of(path), path, 9, "seeds[2]", "seed 1 is listed twice")


def test_lora_rank_positive(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("lora: {r: 4, alpha: 8}", "lora: {r: 0, alpha: 8}"))
    assert_located(errors_of(path), path, 4, "models[1].lora.r", "greater than 0")


def test_learning_rate_positive_shared_and_override(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("learning_rate: 1.0e-4", "learning_rate: 0"))
    assert_located(errors_of(path), path, 11, "training.learning_rate", "greater than 0")
    path = write(tmp_path, GOOD.replace("{id: SFT, method: sft}", "{id: SFT, method: sft, training: {learning_rate: -1}}"))
    assert_located(errors_of(path), path, 8, "algorithms[2].training.learning_rate", "greater than 0")


def test_unknown_method_suggests(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("method: simpo", "method: simpoo"))
    assert_located(errors_of(path), path, 7, "algorithms[1].method", "unknown method 'simpoo' (did you mean 'simpo'?)")


def test_unknown_hyperparameter(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("{id: DPO, method: dpo}", "{id: DPO, method: dpo, hyperparameters: {bogus_knob: 1}}"))
    messages = errors_of(path)
    assert_located(messages, path, 6, "algorithms[0].hyperparameters", "bogus_knob")


def test_referenced_files_must_exist(tmp_path: Path) -> None:
    text = GOOD.replace('source: "zoo:tiny"}\n  - {id: big', 'source: ./no/such/model}\n  - {id: big')
    text = text.replace("source: task:oxs_arith", "source: ./missing.jsonl")
    text = text.replace("task: oxs_arith", "task: ./tasks/missing.yaml")
    text += "  claims: ./claims.yaml\n"
    path = write(tmp_path, text)
    messages = errors_of(path)
    assert_located(messages, path, 3, "models[0].source", "does not exist")
    assert_located(messages, path, 14, "data.source", "data file ./missing.jsonl does not exist")
    assert_located(messages, path, 16, "benchmarks[0].task", "does not exist")
    assert_located(messages, path, 19, "analysis.claims", "does not exist")
    assert len(messages) == 4, messages  # all at once


def test_unknown_zoo_model_and_task(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace('source: "zoo:tiny"}\n  - {id: big', 'source: "zoo:huge"}\n  - {id: big').replace("task:oxs_arith", "task:nope"))
    messages = errors_of(path)
    assert_located(messages, path, 3, "models[0].source", "unknown zoo model 'huge'")
    assert_located(messages, path, 14, "data.source", "unknown bundled task 'nope'")


def test_empty_matrix(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + "exclude:\n  - {seed: 1}\n  - {seed: 2}\n  - {seed: 3}\n")
    assert_located(errors_of(path), path, 19, "exclude", "the run matrix is empty")


def test_per_model_subset_must_name_algorithms(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("{id: small, source: \"zoo:tiny\"}", "{id: small, source: \"zoo:tiny\", algorithms: [DPO, SimPOO]}"))
    assert_located(errors_of(path), path, 3, "models[0].algorithms[1]", "did you mean 'SimPO'")


def test_per_model_subset_and_exclusions_shape_the_matrix(tmp_path: Path) -> None:
    text = GOOD.replace("{id: small, source: \"zoo:tiny\"}", "{id: small, source: \"zoo:tiny\", algorithms: [DPO]}")
    text += "exclude:\n  - {model: big, algorithm: SFT, seed: 3}\n"
    cells = plan(load_spec(write(tmp_path, text)))
    keys = {(c.model.id, c.algorithm.id, c.seed) for c in cells}
    assert len(cells) == 3 + 9 - 1
    assert ("small", "SimPO", 1) not in keys and ("big", "SFT", 3) not in keys and ("big", "SFT", 2) in keys


def test_duplicate_ids_and_identical_arms(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("{id: SFT, method: sft}", "{id: DPO, method: sft}"))
    assert_located(errors_of(path), path, 8, "algorithms[2].id", "id 'DPO' is used twice")
    path = write(tmp_path, GOOD.replace("{id: SFT, method: sft}", "{id: DPO2, method: dpo}"))
    assert any("resolves to the same configuration" in m for m in errors_of(path))


def test_lora_settings_with_full_finetune(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("finetune: lora, ", ""))
    assert_located(errors_of(path), path, 4, "models[1].lora", "finetune is 'full'")


def test_method_incompatible_with_lora(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("{id: SFT, method: sft}", "{id: TRDPO, method: tr-dpo}"))
    assert_located(errors_of(path), path, 4, "models[1].finetune", "algorithm TRDPO: method 'tr-dpo'")


def test_bad_yaml_syntax_is_located(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("seeds: [1, 2, 3]", "seeds: [1, 2, 3"))
    (message,) = errors_of(path)
    assert message.startswith(f"{path}:") and "YAML syntax error" in message


def test_yaml_is_loaded_safely(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = write(tmp_path, GOOD + f'description: !!python/object/apply:os.system ["touch {marker}"]\n')
    (message,) = errors_of(path)
    assert "unsupported YAML value" in message and message.startswith(f"{path}:19: description:")
    assert not marker.exists()


@pytest.mark.timeout(60)
def test_recursive_yaml_alias_is_one_located_error(tmp_path: Path) -> None:
    for text in ("x: &a [1, *a]\n", "x: &m {k: [*m]}\n"):
        path = write(tmp_path, GOOD + text)  # GOOD has 18 lines
        (message,) = errors_of(path)
        assert message.startswith(f"{path}:19: x") and message.endswith("recursive alias (an anchor used inside itself)")


@pytest.mark.timeout(60)
def test_alias_bomb_is_refused_before_it_expands(tmp_path: Path) -> None:
    """Nested anchors expand exponentially ("billion laughs"): 5 levels of 10 aliases are 111,110
    values from 60 written ones (9 levels of 9 used to run for minutes and gigabytes)."""
    levels = ["l0: &l0 [" + ", ".join(["x"] * 10) + "]"]
    levels += [f"l{k}: &l{k} [" + ", ".join([f"*l{k - 1}"] * 10) + "]" for k in range(1, 5)]
    path = write(tmp_path, "bomb:\n" + "".join(f"  {line}\n" for line in levels) + GOOD)
    (message,) = errors_of(path)
    assert message == f"{path}:2: YAML aliases expand to more than 100,000 values (nested anchors?); write the values out"


def test_anchors_and_aliases_within_the_limit_still_work(tmp_path: Path) -> None:
    text = GOOD.replace("learning_rate: 1.0e-4", "learning_rate: *lr").replace(
        "{id: SFT, method: sft}", "{id: SFT, method: sft, training: {learning_rate: &lr 2.0e-4}}"
    )
    spec = load_spec(write(tmp_path, text))
    assert spec.training.learning_rate == spec.algorithms[2].training.learning_rate == 2.0e-4


@pytest.mark.parametrize(
    ("seeds", "fragment"),
    [("[-1]", "greater than or equal to 0"), ("[4294967296]", "less than or equal to 4294967295"),
     ("[true]", "valid integer"), ("[1, false]", "valid integer"), ("[1.5]", "valid integer")],
)  # fmt: skip
def test_seeds_are_integers_numpy_and_torch_accept(tmp_path: Path, seeds: str, fragment: str) -> None:
    """A seed outside 0..2**32-1 used to pass validation and fail every cell in the worker; `true` was seed 1."""
    path = write(tmp_path, GOOD.replace("seeds: [1, 2, 3]", f"seeds: {seeds}"))
    index = 1 if seeds.startswith("[1,") else 0
    assert_located(errors_of(path), path, 9, f"seeds[{index}]", fragment)


def test_seed_range_ends_are_valid(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, GOOD.replace("seeds: [1, 2, 3]", "seeds: [0, 4294967295]")))
    assert spec.seeds == [0, 2**32 - 1]


def test_missing_required_fields_and_wrong_types(tmp_path: Path) -> None:
    path = write(tmp_path, "name: x\nmodels: []\nalgorithms:\n  - {id: a}\nseeds: [one]\nbenchmarks: []\n")
    messages = errors_of(path)
    assert_located(messages, path, 2, "models", "at least 1")
    assert_located(messages, path, 4, "algorithms[0].method", "required field is missing")
    assert_located(messages, path, 5, "seeds[0]", "integer")
    assert len(messages) >= 4


def test_extends_merges_and_locates_errors_in_the_right_file(tmp_path: Path) -> None:
    base = write(tmp_path, "training: {learning_rate: 0.5, epochs: 2}\nseeds: [7]\n", "base.yaml")
    child = write(tmp_path, "extends: base.yaml\n" + GOOD.replace("seeds: [1, 2, 3]\n", ""))
    spec = load_spec(child)
    assert spec.seeds == [7] and spec.training.epochs == 2 and spec.training.learning_rate == 1e-4
    base.write_text("training: {epochs: -1}\nseeds: [7]\n")
    assert_located(errors_of(child), base, 1, "training.epochs", "greater than 0")
    missing = write(tmp_path, "extends: nope.yaml\n" + GOOD)
    assert_located(errors_of(missing), missing, 1, "extends", "not found")


def test_source_kinds() -> None:
    assert source_kind("zoo:small") == "zoo"
    assert source_kind("Qwen/Qwen2.5-1.5B-Instruct") == "hub"
    assert source_kind("hf:openai/gsm8k") == "hub"
    assert source_kind("./models/x") == "path"
    assert source_kind("data/train.jsonl") == "path"
    assert source_kind("task:oxs_arith") == "task"


@pytest.mark.parametrize("name,cells", [("dpo_taxonomy", 100), ("scaling", 120), ("lora_factorial", 60)])
def test_bundled_specs(name: str, cells: int) -> None:
    spec = load_spec(REPO / "specs" / f"{name}.yaml")
    assert len(plan(spec)) == cells
    assert spec.training.adam_beta2 == 0.95 and spec.training.learning_rate == 1e-6 and spec.training.beta == 0.1


def test_quickstart_spec_validates() -> None:
    spec = load_spec(REPO / "specs" / "quickstart.yaml")
    methods = {a.method for a in spec.algorithms}
    # one algorithm per paradigm: imitation, rejection-sampling self-training, offline
    # preference, online RL
    assert {"sft", "sp-rft", "dpo", "grpo"} <= methods
    assert len(spec.seeds) >= 4 and len(spec.models) >= 3
    assert {b.in_domain for b in spec.benchmarks} == {True, False}


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "oxstudy.cli", *args], capture_output=True, text=True, cwd=REPO, timeout=120
    )


def test_cli_validate_errors_are_one_line_each_exit_2(tmp_path: Path) -> None:
    text = GOOD.replace("baseline: DPO", "baseline: DPOO").replace("seeds: [1, 2, 3]", "seeds: [1, 1]")
    path = write(tmp_path, text)
    result = run_cli("validate", str(path), str(REPO / "specs" / "dpo_taxonomy.yaml"))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 2 and all(line.startswith(f"error: {path}:") for line in lines)
    assert "dpo_taxonomy.yaml: study 'dpo-taxonomy', 100 cells" in result.stdout


def test_cli_bad_yaml_exit_2(tmp_path: Path) -> None:
    path = write(tmp_path, "name: [unclosed\n")
    result = run_cli("validate", str(path))
    assert result.returncode == 2 and "Traceback" not in result.stderr and f"{path}:" in result.stderr


def test_cli_plan_json_has_100_cells() -> None:
    result = run_cli("plan", "specs/dpo_taxonomy.yaml", "--json", "--store", "/nonexistent-store")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert len(out["cells"]) == 100 and out["totals"]["pending"] == 100
    assert set(out["cells"][0]) >= {"run_id", "model", "algorithm", "seed", "status"}
    assert out["estimate"]["gpu_hours"] > 0


def test_cli_schema_is_json_schema() -> None:
    result = run_cli("schema")
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    assert schema["additionalProperties"] is False and "models" in schema["properties"]


def test_spec_reference_matches_the_models() -> None:
    sys.path.insert(0, str(REPO / "scripts"))
    from gen_spec_docs import tables

    assert tables() in (REPO / "docs" / "spec.md").read_text(), "run: python scripts/gen_spec_docs.py"


def test_retired_method_error_says_why(tmp_path: Path) -> None:
    """A method oxstudy dropped on purpose (registry.RENAMED) is refused with the reason, in the
    spec error itself (docs/algorithms.md), not only in `oxstudy algorithms bnpo`."""
    path = write(tmp_path, GOOD.replace("method: simpo", "method: bnpo"))
    messages = errors_of(path)
    assert_located(messages, path, 7, "algorithms[1].method", "unknown method 'bnpo': ")
    assert any("Beta-distribution" in m and "method 'sgrpo'" in m for m in messages), messages
    # A plain typo still gets the suggestion, not the retired-name text.
    path = write(tmp_path, GOOD.replace("method: simpo", "method: simpoo"), "typo.yaml")
    assert_located(errors_of(path), path, 7, "algorithms[1].method", "unknown method 'simpoo' (did you mean")


BATCH = GOOD.replace("  max_steps: 2\n", "  max_steps: 2\n  effective_batch_size: 10\n  per_device_batch_size: 4\n")


def test_batch_arithmetic_error_names_the_study_training_when_set_there(tmp_path: Path) -> None:
    path = write(tmp_path, BATCH)
    messages = errors_of(path)
    assert messages == [f"{path}:13: training.effective_batch_size: effective_batch_size 10 is not a multiple of "
                        "per_device_batch_size 4"]


def test_batch_arithmetic_error_names_the_override_that_breaks_it(tmp_path: Path) -> None:
    # The study's 10 / 5 is fine; the model's per-device 4 breaks it: located at the model's value.
    text = BATCH.replace("per_device_batch_size: 4", "per_device_batch_size: 5").replace(
        '{id: small, source: "zoo:tiny"}', '{id: small, source: "zoo:tiny", training: {per_device_batch_size: 4}}')
    path = write(tmp_path, text)
    assert errors_of(path) == [f"{path}:3: models[0].training.per_device_batch_size: effective_batch_size 10 is not a "
                               "multiple of per_device_batch_size 4 (effective_batch_size is set in training)"]
    # An algorithm's own effective batch against the study's per-device size: located at the algorithm.
    text = BATCH.replace("effective_batch_size: 10", "effective_batch_size: 8").replace(
        "{id: SimPO, method: simpo}", "{id: SimPO, method: simpo, training: {effective_batch_size: 6}}")
    path = write(tmp_path, text, "alg.yaml")
    assert errors_of(path) == [f"{path}:7: algorithms[1].training.effective_batch_size: effective_batch_size 6 is not "
                               "a multiple of per_device_batch_size 4 (per_device_batch_size is set in training)"]


def test_every_bundled_spec_validates_and_claims_files_live_apart() -> None:
    """`oxstudy validate specs/*.yaml` (README, `oxstudy --help`, `validate --help`) passes on the
    repo: claims files, which are not study specs, live in specs/claims/ and load as claims."""
    from oxstudy.claims import load_claims

    specs = sorted((REPO / "specs").glob("*.yaml"))
    assert len(specs) >= 10
    result = run_cli("validate", *map(str, specs))
    assert result.returncode == 0, result.stderr
    claims = sorted((REPO / "specs" / "claims").glob("*.yaml"))
    assert claims and all(load_claims(path).claims for path in claims)
    for path in (REPO / "README.md", *(REPO / "docs").glob("*.md"), *specs):
        for name in re.findall(r"specs/claims/[\w./-]+\.yaml", path.read_text()):
            assert (REPO / name).is_file(), f"{path.name} names {name}, which does not exist"
