"""The tiny-model zoo: build, cache hit, reload through the Auto classes offline, and
model source resolution (zoo names, local paths, hub ids offline)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from oxstudy import zoo
from oxstudy.errors import ResourceError


def test_tiny_builds_with_metadata_and_base_accuracy(zoo_tiny):
    path = Path(zoo_tiny)
    assert path == zoo.model_dir("tiny") and zoo.is_built("tiny")
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", zoo.META_FILE):
        assert (path / name).exists(), name
    meta = json.loads((path / zoo.META_FILE).read_text())
    assert meta["name"] == "tiny" and meta["config_hash"] == zoo.ZOO["tiny"].config_hash()
    assert meta["params"] == zoo.model_param_count(path)
    assert 10_000 < meta["params"] < 1_000_000
    base = meta["base_accuracy"]
    assert base["task"] == "oxs_arith" and base["n"] == 500
    # A meaningful base for post-training: above zero, far from saturated.
    assert 0.02 <= base["value"] <= 0.35, base
    assert base["stderr"] is not None and base["stderr"] > 0


def test_second_build_is_a_noop(zoo_tiny):
    stamp = (Path(zoo_tiny) / "model.safetensors").stat().st_mtime_ns
    started = time.perf_counter()
    assert zoo.build("tiny") == Path(zoo_tiny)
    assert time.perf_counter() - started < 2.0
    assert (Path(zoo_tiny) / "model.safetensors").stat().st_mtime_ns == stamp
    assert zoo.resolve_model_source("zoo:tiny") == zoo_tiny


def test_reload_through_auto_classes_offline(zoo_tiny):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(zoo_tiny)
    model = AutoModelForCausalLM.from_pretrained(zoo_tiny)
    assert model.config.model_type == "llama"
    assert tokenizer.eos_token == "<|end|>" and tokenizer.pad_token == "<|pad|>"
    assert tokenizer.pad_token_id != tokenizer.eos_token_id
    chat = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Mia has 3 pens. Mia buys 4 more pens. How many pens does Mia have now?"}],
        tokenize=False,
        add_generation_prompt=True,
    )
    assert chat.startswith("<|user|>Mia has 3 pens.") and chat.endswith("<|end|><|assistant|>")
    # Digits are single tokens: the models learn digit-wise arithmetic.
    assert [t for t in tokenizer.tokenize("123") if t.strip("Ġ")] == ["1", "2", "3"]
    # The assistant turn is marked for assistant-only losses (TRL).
    mask = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "#### 7"}],
        return_assistant_tokens_mask=True,
        return_dict=True,
    )["assistant_masks"]
    assert 0 < sum(mask) < len(mask)
    inputs = tokenizer(chat, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=40, do_sample=False)
    text = tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "=" in text or "####" in text, text  # it learned the worked-solution format


def test_model_sources_resolve_or_fail_in_one_line(tmp_path, zoo_tiny):
    assert zoo.resolve_model_source(zoo_tiny) == str(Path(zoo_tiny).resolve())
    relative = Path(zoo_tiny).name
    assert zoo.resolve_model_source(relative, spec_dir=Path(zoo_tiny).parent) == str(Path(zoo_tiny).resolve())
    with pytest.raises(ResourceError, match="Qwen/Qwen2.5-1.5B-Instruct") as info:
        zoo.resolve_model_source("Qwen/Qwen2.5-1.5B-Instruct")
    message = str(info.value)
    assert "\n" not in message and "local path" in message and "quickstart" in message
    with pytest.raises(ResourceError, match="does not exist"):
        zoo.resolve_model_source("./no/such/model")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ResourceError, match="not a model directory"):
        zoo.resolve_model_source(str(tmp_path / "empty"))
    with pytest.raises(ResourceError, match="unknown zoo model"):
        zoo.resolve_model_source("zoo:gigantic")


def test_ladder_grows_and_hashes_are_stable():
    sizes = [zoo.estimate_params(n) for n in zoo.zoo_names()]
    assert len(sizes) >= 3 and sizes == sorted(sizes) and sizes[-1] > 4 * sizes[0]
    hashes = {zoo.ZOO[n].config_hash() for n in zoo.zoo_names()}
    assert len(hashes) == len(zoo.ZOO)
    assert zoo.ZOO["tiny"].config_hash() == zoo.ZOO["tiny"].config_hash()


def test_built_ladder_accuracy_rises_with_size():
    """Checked wherever the whole ladder is built (``oxstudy zoo build``; too slow for every CI run)."""
    names = zoo.zoo_names()
    if not all(zoo.is_built(n) for n in names):
        pytest.skip("the whole zoo ladder is not built in OXSTUDY_CACHE")
    metas = [zoo.zoo_metadata(n) for n in names]
    params = [m["params"] for m in metas]
    accuracy = [m["base_accuracy"]["value"] for m in metas]
    assert params == sorted(params)
    assert accuracy == sorted(accuracy), dict(zip(names, accuracy, strict=True))
    assert accuracy[0] > 0 and accuracy[-1] < 0.9


def test_seed_override_is_another_model_and_another_run(monkeypatch):
    from oxstudy.plan import run_identity
    from oxstudy.spec import BenchmarkSpec, DataSpec, ModelSpec, TrainingSpec

    default = zoo.ZOO["tiny"]
    monkeypatch.delenv(zoo.SEED_ENV, raising=False)
    assert zoo.model_config("tiny") == default and default.seed == 0
    identity = {
        "model": ModelSpec(id="tiny", source="zoo:tiny"),
        "method": "dpo",
        "hyperparameters": {},
        "seed": 0,
        "training": TrainingSpec(),
        "data": DataSpec(source="task:oxs_arith"),
        "benchmarks": [BenchmarkSpec(id="arith", task="oxs_arith")],
    }
    plain = run_identity(**identity)
    monkeypatch.setenv(zoo.SEED_ENV, "7")
    other = zoo.model_config("tiny")
    assert other.seed == 7 and other.config_hash() != default.config_hash()
    assert zoo.model_dir("tiny").name == f"tiny-{other.config_hash()}"
    assert zoo.ZOO["tiny"] == default, "the ladder's defaults never change"
    assert zoo.recorded_accuracy("tiny") is None, "nothing is recorded for another seed"
    assert run_identity(**identity)["model"]["zoo_seed"] == 7 and run_identity(**identity) != plain
    monkeypatch.setenv(zoo.SEED_ENV, str(default.seed))  # the default seed spelled out: the users' model
    assert zoo.model_dir("tiny").name == f"tiny-{default.config_hash()}"
    assert run_identity(**identity) == plain
    monkeypatch.setenv(zoo.SEED_ENV, "seven")
    with pytest.raises(ResourceError, match="OXSTUDY_ZOO_SEED='seven'"):
        zoo.model_dir("tiny")


def test_recorded_accuracies_are_for_the_current_default_ladder():
    from oxstudy.zoo_recorded import RECORDED

    assert set(RECORDED["models"]) == set(zoo.ZOO)
    for name, entry in RECORDED["models"].items():
        assert entry["config_hash"] == zoo.ZOO[name].config_hash(), f"{name}: RECORDED is stale"
        assert zoo.recorded_accuracy(name) == entry["accuracy"]["oxs_arith"]
    machine = RECORDED["machine"]
    assert machine["cpu"] and machine["cpu_count"] and machine["torch"] and machine["torch_threads"] == 1


def test_zoo_list_shows_recorded_measured_and_drift(tmp_path, monkeypatch):
    """Measured accuracies from a cache's metadata next to the recorded ones; drift beyond
    the tolerance is marked. Metadata written here (no build needed)."""
    import os
    import subprocess
    import sys

    from oxstudy.zoo_recorded import RECORDED, TOLERANCE

    monkeypatch.setenv("OXSTUDY_CACHE", str(tmp_path))
    monkeypatch.delenv(zoo.SEED_ENV, raising=False)
    recorded = {n: RECORDED["models"][n]["accuracy"]["oxs_arith"] for n in RECORDED["models"]}
    measured = {"tiny": recorded["tiny"] + 0.009, "small": recorded["small"] + 0.05}  # medium: not built
    for name, value in measured.items():
        meta = {"params": 1, "base_accuracy": {"task": "oxs_arith", "value": value, "stderr": 0.01}}
        zoo.model_dir(name).mkdir(parents=True)
        (zoo.model_dir(name) / zoo.META_FILE).write_text(json.dumps(meta))
    env = {**os.environ, "COLUMNS": "200"}

    def zoo_list(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "oxstudy.cli", "zoo", "list", *args], env=env,
                              capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout

    rows = {r["name"]: r for r in json.loads(zoo_list("--json"))["models"]}
    assert rows["tiny"]["recorded_accuracy"] == recorded["tiny"] and rows["tiny"]["drift"] == pytest.approx(0.009)
    assert rows["small"]["drift"] == pytest.approx(0.05)
    assert rows["medium"]["base_accuracy"] is None and rows["medium"]["drift"] is None
    assert rows["medium"]["recorded_accuracy"] == RECORDED["models"]["medium"]["accuracy"]["oxs_arith"]
    table = zoo_list()
    line = {n: next(x for x in table.splitlines() if f"zoo:{n} " in x) for n in zoo.ZOO}
    assert "+0.009" in line["tiny"] and "!" not in line["tiny"]  # within the tolerance
    assert "+0.050" in line["small"] and "!" in line["small"] and TOLERANCE < 0.05
    assert f"{recorded['medium']:.3f}" in line["medium"]


def test_ladder_check_orders_every_seed_pair_with_a_margin():
    """Issue 11's ladder check on hand-made accuracies (sizes x pretraining seeds)."""
    good = {
        "tiny": {0: 0.10, 1: 0.12, 2: 0.05},
        "small": {0: 0.20, 1: 0.17, 2: 0.22},  # worst small seed - best tiny seed = exactly 5 points
        "medium": {0: 0.45, 1: 0.70, 2: 0.40},  # bounds of the largest range included
    }
    assert zoo.ladder_problems(good) == []
    # one seed of small too close to the best seed of tiny: an inversion risk on another machine
    close = {**good, "small": {**good["small"], 1: 0.16}}
    (problem,) = zoo.ladder_problems(close)
    assert problem.startswith("tiny -> small") and "+4.0 points" in problem
    inverted = {**good, "medium": {0: 0.45, 1: 0.21, 2: 0.50}}
    problems = zoo.ladder_problems(inverted)
    assert any(p.startswith("small -> medium") for p in problems)
    assert any(p.startswith("medium: seed 1: 21.0%") for p in problems)  # below 40% too
    out_of_range = {**good, "tiny": {0: 0.10, 1: 0.12, 2: 0.049}}
    assert zoo.ladder_problems(out_of_range) == ["tiny: seed 2: 4.9% outside [5%, 20%]"]
    assert zoo.ladder_problems(good, margin=0.06)[0].startswith("tiny -> small")
    # a subset of the ladder: only the ranges of the positions it holds
    assert zoo.ladder_problems({"tiny": {0: 0.09, 1: 0.11}}) == []
    assert zoo.ladder_problems({"tiny": {0: 0.25}}) == ["tiny: seed 0: 25.0% outside [5%, 20%]"]
    assert zoo.ladder_problems({"small": {0: 0.9}}) == [], "a middle size has no range"


def test_task_range_check_flags_floors_ceilings_and_chance():
    """Issue 11's task check on hand-made build metadata (seeds x tasks)."""
    good = {
        0: {"oxs_arith": {"value": 0.45, "chance": 0.0}, "oxs_facts": {"value": 0.30, "chance": 0.25}},
        1: {"oxs_arith": {"value": 0.10, "chance": 0.0}, "oxs_facts": {"value": 0.90, "chance": 0.25}},
    }
    assert zoo.task_range_problems(good) == []  # bounds and chance + 5 points included
    floor = {**good, 1: {**good[1], "oxs_arith": {"value": 0.099, "chance": 0.0}}}
    assert zoo.task_range_problems(floor) == ["oxs_arith seed 1: 9.9% outside [10%, 90%]"]
    near_chance = {**good, 0: {**good[0], "oxs_facts": {"value": 0.29, "chance": 0.25}}}
    (problem,) = zoo.task_range_problems(near_chance)
    assert problem.startswith("oxs_facts seed 0: 29.0% is less than 5 points above chance (25%)")
    ceiling = {0: {"oxs_compare": {"value": 0.93, "chance": 0.25}}}
    assert zoo.task_range_problems(ceiling) == ["oxs_compare seed 0: 93.0% outside [10%, 90%]"]


@pytest.mark.slow
def test_base_task_accuracy_reports_every_task_with_chance_and_levels(zoo_tiny):
    """What a build records under ``task_accuracy`` (bench_zoo asks for every bundled task):
    lm-eval's value on the whole test split, the task's chance level and per-level accuracies
    that average back to the value."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from oxstudy.tasks.suite import TASKS, task_split

    model = AutoModelForCausalLM.from_pretrained(zoo_tiny)
    tokenizer = AutoTokenizer.from_pretrained(zoo_tiny)
    result = zoo.base_task_accuracy(model, tokenizer, ["oxs_facts", "oxs_sequence"])
    assert list(result) == ["oxs_facts", "oxs_sequence"]
    for task, row in result.items():
        assert row["n"] == len(task_split(task, "test")) and row["chance"] == TASKS[task].chance
        assert row["metric"] == TASKS[task].metric and 0.0 <= row["value"] <= 1.0
        levels = row["by_level"]
        assert sum(v["n"] for v in levels.values()) == row["n"]
        assert sum(v["accuracy"] * v["n"] for v in levels.values()) / row["n"] == pytest.approx(row["value"])
    assert result["oxs_facts"]["chance"] == 0.25 and result["oxs_sequence"]["chance"] == 0.0


def test_driver_corpus_hashes_spare_cells_regenerating_the_corpus(monkeypatch):
    """A cell finds its zoo model by config hash, which hashes the whole pretraining corpus;
    the local runner hands the driver's hashes over so a cell does not regenerate it."""
    expected = zoo.model_dir("tiny")
    memo = zoo.corpus_sha_memo()
    assert memo, "computing a zoo config hash fills the memo"

    def regenerate(config):
        raise AssertionError("corpus regenerated despite the driver's hash")

    monkeypatch.setattr(zoo, "_CORPUS_SHA", {})
    monkeypatch.setattr(zoo, "corpus_texts", regenerate)
    with pytest.raises(AssertionError, match="regenerated"):
        zoo.model_dir("tiny")
    zoo.remember_corpus_shas(memo)
    assert zoo.model_dir("tiny") == expected


def test_a_worker_builds_the_zoo_seed_its_cell_was_planned_with(monkeypatch, tmp_path):
    """The run id records ``$OXSTUDY_ZOO_SEED`` as the planner saw it; a worker whose own
    environment differs (a remote node, a job started with --export=NONE) must still train
    that model. ``zoo.build`` is replaced by a spy that notes the seed in force and stops the
    cell (no pretraining here): what is tested is the worker's environment, not the build."""
    import os

    from tiny_study import tiny_cells

    from oxstudy.execute import execute_cell
    from oxstudy.store import Store

    seen: list[str | None] = []

    def spy(name, *args, **kwargs):
        seen.append(os.environ.get(zoo.SEED_ENV))
        raise ResourceError(f"zoo:{name}: not built in this test")

    monkeypatch.setattr(zoo, "build", spy)
    monkeypatch.setenv(zoo.SEED_ENV, "3")
    planned_with_3 = tiny_cells("seed-3", [1], "local")[0]
    monkeypatch.delenv(zoo.SEED_ENV)
    planned_default = tiny_cells("seed-default", [1], "local")[0]
    assert planned_with_3.zoo_seed == 3 and planned_default.zoo_seed is None
    assert planned_with_3.run_id != planned_default.run_id

    store = Store(tmp_path / "study")
    # a worker without the variable, then one with another value
    outcome = execute_cell(planned_with_3.model_dump(mode="json"), str(store.root), redirect=False)
    monkeypatch.setenv(zoo.SEED_ENV, "5")
    execute_cell(planned_default.model_dump(mode="json"), str(store.root), redirect=False)
    assert seen == ["3", None]
    assert outcome["status"] == "failed" and "not built in this test" in outcome["reason"]
    assert os.environ[zoo.SEED_ENV] == "5", "the worker's own environment is restored afterwards"
