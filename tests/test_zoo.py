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
    assert 100_000 < meta["params"] < 1_000_000
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
