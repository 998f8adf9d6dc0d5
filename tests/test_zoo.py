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
    for name in (
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        zoo.META_FILE,
    ):
        assert (path / name).exists(), name
    meta = json.loads((path / zoo.META_FILE).read_text())
    assert meta["name"] == "tiny" and meta["config_hash"] == zoo.ZOO["tiny"].config_hash()
    assert meta["params"] == zoo.model_param_count(path)
    assert 20_000 < meta["params"] < 1_000_000
    base = meta["base_accuracy"]
    assert base["task"] == "oxs_arith" and base["n"] == 500
    # A meaningful base for post-training: above zero, far from saturated.
    assert 0.05 <= base["value"] <= 0.20, base
    assert base["stderr"] is not None and base["stderr"] > 0
    # accuracy per difficulty level: a competence gradient, easiest level best
    levels = base["by_level"]
    assert sorted(levels) == [str(i) for i in range(1, 7)]
    assert levels["1"] == max(levels.values()) and levels["1"] > levels["6"]
    assert meta["machine"]["cpu_count"] and meta["machine"]["torch"]


def test_fresh_tiny_matches_its_recorded_accuracy(zoo_tiny):
    """A build of zoo:tiny on this machine (the shared cache entry when its config hash
    matches, otherwise built fresh by the fixture) lands within TOLERANCE of the accuracy
    recorded where the ladder was tuned."""
    from oxstudy.zoo_recorded import RECORDED, TOLERANCE

    if not RECORDED["models"]:
        pytest.skip(
            "no ladder recorded yet: run benchmarks/bench_zoo.py --seeds 3 --record on an idle machine"
        )
    recorded = zoo.recorded_accuracy("tiny")
    assert recorded is not None, "RECORDED is stale: its tiny config hash is not the current one"
    assert RECORDED["models"]["tiny"]["config_hash"] == zoo.ZOO["tiny"].config_hash()
    measured = zoo.zoo_metadata("tiny")["base_accuracy"]["value"]
    assert abs(measured - recorded) <= TOLERANCE, (measured, recorded)


def test_seed_override_is_another_model(monkeypatch):
    default = zoo.ZOO["tiny"]
    monkeypatch.setenv(zoo.SEED_ENV, "7")
    other = zoo.ZOO["tiny"]
    assert other.seed == 7 and other.config_hash() != default.config_hash()
    assert zoo.model_dir("tiny").name == f"tiny-{other.config_hash()}"
    assert zoo.recorded_accuracy("tiny") is None, "nothing recorded for another seed"
    monkeypatch.setenv(zoo.SEED_ENV, str(default.seed))
    assert zoo.ZOO["tiny"].config_hash() == default.config_hash(), "the default seed is the users' model"
    monkeypatch.setenv(zoo.SEED_ENV, "seven")
    with pytest.raises(ResourceError, match="OXSTUDY_ZOO_SEED='seven'"):
        zoo.model_dir("tiny")


def test_corpus_renders_like_the_chat_template(zoo_tiny):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(zoo_tiny)
    for user, assistant in zoo.corpus_texts(zoo.ZOO["tiny"])[:50]:
        messages = [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
        assert zoo.chat_text(user, assistant) == tokenizer.apply_chat_template(messages, tokenize=False)
    # the corpus mixes every bundled family it names, facts included
    prompts = [u for u, _ in zoo.corpus_texts(zoo.ZOO["tiny"])]
    assert (
        sum(p.startswith(("Compute", "Solve", "Simplify")) for p in prompts)
        == zoo.ZOO["tiny"].corpus["oxs_math"]
    )


def test_third_party_chatter_goes_to_the_log(tmp_path, capfd, zoo_tiny):
    import logging
    import warnings

    from lm_eval.models.huggingface import HFLM

    from oxstudy.evaluation import load_model

    model, tokenizer = load_model(zoo_tiny, device="cpu")
    log = tmp_path / "build.log"
    with zoo.quiet_third_party(log):
        HFLM(pretrained=model, tokenizer=tokenizer, batch_size=4)  # lm-eval's "not of type str" warning
        logging.getLogger("lm_eval.evaluator").warning("lm-eval says hi")
        warnings.warn("a library warning", UserWarning, stacklevel=1)
    logging.getLogger("lm_eval").warning("after the context")
    out, err = capfd.readouterr()
    text = log.read_text()
    assert "not of type `str`" in text and "lm-eval says hi" in text and "a library warning" in text
    assert "not of type" not in err + out and "says hi" not in err and "library warning" not in err
    assert "after the context" not in text, "handlers are restored afterwards"


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
        [{"role": "user", "content": "Mia has 3 pens, buys 4 more. How many now?"}],
        tokenize=False,
        add_generation_prompt=True,
    )
    assert chat.startswith("<|user|>Mia has 3 pens,") and chat.endswith("<|end|><|assistant|>")
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
    gaps = [b - a for a, b in zip(accuracy, accuracy[1:], strict=False)]
    assert min(gaps) >= 0.05, dict(zip(names, accuracy, strict=True))
    assert 0.05 <= accuracy[0] <= 0.20 and 0.40 <= accuracy[-1] <= 0.70


def _bench_zoo():
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_zoo.py"
    spec = importlib.util.spec_from_file_location("bench_zoo", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ladder_check_needs_every_seed_pair_ordered_by_the_margin():
    check = _bench_zoo().ladder_check
    good = {"tiny": {0: 0.12, 1: 0.14}, "small": {0: 0.25, 1: 0.20}, "medium": {0: 0.45, 1: 0.50}}
    assert check(good, 0.05) == []
    # means are ordered with a 6-point gap, but seed 1 of tiny (0.17) vs seed 1 of small (0.20) is 3 points
    close = {"tiny": {0: 0.10, 1: 0.17}, "small": {0: 0.25, 1: 0.20}, "medium": {0: 0.45, 1: 0.50}}
    (problem,) = check(close, 0.05)
    assert problem.startswith("tiny -> small") and "3.0 points" in problem
    inverted = {"tiny": {0: 0.10}, "small": {0: 0.50}, "medium": {0: 0.45}}
    assert any(p.startswith("small -> medium") for p in check(inverted, 0.05))
    # a model that always answers "1" scores the share of items whose answer is 1
    answer, floor = _bench_zoo().constant_answer_accuracy()
    from oxstudy.tasks import task_split

    assert floor == sum(e["answer"] == answer for e in task_split("oxs_arith", "test")) / 500 > 0
    degenerate = {"tiny": {0: floor}, "small": {0: 0.25}, "medium": {0: 0.45}}
    assert check(degenerate, 0.05) == [] and check(good, 0.05, floor=(answer, floor)) == []
    assert check(degenerate, 0.05, floor=(answer, floor))[0].startswith(f"tiny: {floor * 100:.1f}% is within")
    out_of_range = {"tiny": {0: 0.02}, "small": {0: 0.30}, "medium": {0: 0.80}}
    problems = check(out_of_range, 0.05)
    assert any(p.startswith("tiny:") for p in problems) and any(p.startswith("medium:") for p in problems)
