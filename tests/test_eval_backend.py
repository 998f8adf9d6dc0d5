"""Evaluation backend (hf | vllm | auto) and vLLM rollouts, up to the point a GPU is needed.

vLLM cannot be installed on this CPU machine, so the vllm evaluation path is checked at lm-eval's
own boundaries: the ``vllm`` model type is taken from lm-eval's registry (a stand-in records the
model_args it is built with and generates with the same tiny model through HFLM, so lm-eval then
runs for real) and every ``simple_evaluate`` call is recorded. The hf path is compared with a
direct lm-eval ``model="hf"`` call as an independent reference. TRL configs with vLLM rollouts
are constructed for real (training them needs a GPU).
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from oxstudy import engines
from oxstudy.errors import OxstudyError, ResourceError, SpecError
from oxstudy.evaluation import BenchmarkRequest, evaluate_model, load_model
from oxstudy.spec import load_spec_data

ITEMS = 6


def spec_data(**overrides) -> dict:
    data = {
        "name": "engines",
        "models": [{"id": "tiny", "source": "zoo:tiny"}],
        "algorithms": [{"id": "GRPO", "method": "grpo"}, {"id": "SFT", "method": "sft"}],
        "seeds": [1],
        "training": {
            "max_steps": 2,
            "effective_batch_size": 4,
            "per_device_batch_size": 4,
            "precision": "fp32",
        },
        "benchmarks": [{"id": "arith", "task": "oxs_arith", "limit": ITEMS}],
    }
    for key, value in overrides.items():
        data[key] = value
    return data


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("overrides", "where"),
    [
        ({"evaluation": {"backend": "vllm"}}, "evaluation.backend"),
        ({"benchmarks": [{"id": "arith", "task": "oxs_arith", "backend": "vllm"}]}, "benchmarks[0].backend"),
        ({"execution": {"rollouts": {"use_vllm": True}}}, "execution.rollouts.use_vllm"),
    ],
)
def test_a_cpu_study_asking_for_vllm_fails_validation_in_one_line(overrides, where):
    with pytest.raises(SpecError) as info:
        load_spec_data(spec_data(**overrides))
    assert len(info.value.messages) == 1
    message = info.value.messages[0]
    assert where in message and "vllm needs a GPU but execution.gpus_per_run is 0" in message


def test_engine_fields_validate():
    with pytest.raises(SpecError, match="server_url: mode server needs"):
        load_spec_data(spec_data(execution={"gpus_per_run": 2, "rollouts": {"mode": "server"}}))
    with pytest.raises(SpecError, match=r"models\[0\].revision: revision applies to Hugging Face models"):
        load_spec_data(spec_data(models=[{"id": "tiny", "source": "zoo:tiny", "revision": "main"}]))
    with pytest.raises(SpecError, match="data.revision: revision applies to hf: datasets"):
        load_spec_data(spec_data(data={"source": "task:oxs_arith", "revision": "v1"}))
    # A GPU study may ask for vLLM: whether this machine can is a pre-flight question.
    spec = load_spec_data(spec_data(evaluation={"backend": "vllm"}, execution={"gpus_per_run": 1}))
    assert spec.evaluation.backend == "vllm"


def test_preflight_refuses_vllm_on_a_machine_without_it():
    from oxstudy.execute import preflight
    from oxstudy.plan import plan

    assert engines.vllm_unavailable_reason() is not None  # this CPU machine
    cells = plan(load_spec_data(spec_data(evaluation={"backend": "vllm"}, execution={"gpus_per_run": 1})))
    with pytest.raises(OxstudyError) as info:
        preflight(cells)
    [message] = info.value.messages
    assert message.startswith(
        "evaluation.backend / benchmarks[].backend: vllm: vLLM asked for but this machine has"
    )
    assert "pip install -e '.[gpu]'" in message
    # auto is never an error: it falls back to hf here.
    preflight(plan(load_spec_data(spec_data(execution={"gpus_per_run": 1}))), check_machine=True)


def test_backend_choice():
    assert engines.vllm_importable() is False  # no vllm on this machine: auto must pick hf
    assert engines.eval_backend(None, "auto", device="cpu") == "hf"
    assert engines.eval_backend("hf", "vllm", device="cuda") == "hf"
    with pytest.raises(ResourceError, match="benchmark b: backend: vllm asked for but"):
        engines.eval_backend("vllm", "hf", device="cpu", where="benchmark b: backend")


# ----------------------------------------------------------------------------- lm-eval calls


class SimpleEvaluateRecorder:
    """Records every lm_eval.simple_evaluate call, then runs the real one."""

    def __init__(self, real):
        self.real = real
        self.calls: list[dict] = []

    def __call__(self, **kwargs):
        self.calls.append(dict(kwargs))
        return self.real(**kwargs)


@pytest.fixture
def tiny_in_memory(zoo_tiny):
    return load_model(zoo_tiny, device="cpu")


@pytest.fixture
def lm_eval_boundary(monkeypatch, tiny_in_memory):
    """lm-eval's registry returns a recording stand-in for model type ``vllm``; every
    simple_evaluate call is recorded."""
    import lm_eval
    import lm_eval.api.registry as registry
    from lm_eval.models.huggingface import HFLM

    model, tokenizer = tiny_in_memory
    built: list[tuple[dict, dict]] = []

    class RecordingVLLM:
        @classmethod
        def create_from_arg_obj(cls, arg_dict, additional_config=None):
            built.append(
                (dict(arg_dict), {k: v for k, v in (additional_config or {}).items() if v is not None})
            )
            return HFLM(pretrained=model, tokenizer=tokenizer, batch_size=8)

    real_get_model = registry.get_model
    monkeypatch.setattr(
        registry, "get_model", lambda name: RecordingVLLM if name == "vllm" else real_get_model(name)
    )
    recorder = SimpleEvaluateRecorder(lm_eval.simple_evaluate)
    monkeypatch.setattr(lm_eval, "simple_evaluate", recorder)
    monkeypatch.setattr(engines, "vllm_usable", lambda: True)
    return SimpleNamespace(built=built, calls=recorder.calls)


def test_vllm_path_builds_lm_eval_vllm_with_the_cell_settings_and_same_items(
    lm_eval_boundary, tiny_in_memory, tmp_path
):
    model, tokenizer = tiny_in_memory
    benchmarks = [
        BenchmarkRequest(
            id="arith", task="oxs_arith", limit=4, batch_size=8, gen_kwargs={"max_gen_toks": 12}
        ),
        BenchmarkRequest(id="compare", task="oxs_compare", metric="acc,none", limit=ITEMS, batch_size=8),
    ]
    args = engines.vllm_eval_model_args(
        str(tmp_path / "ckpt"), tensor_parallel_size=2, gpu_memory_utilization=0.7, seed=42
    )
    on_vllm = evaluate_model(
        model, benchmarks, tokenizer, device="cuda", backend="vllm", vllm_model_args=args
    )
    on_hf = evaluate_model(model, benchmarks, tokenizer, device="cuda", backend="hf")

    # One vLLM engine for the evaluation, built with exactly these model_args.
    assert lm_eval_boundary.built == [
        (
            {
                "pretrained": str(tmp_path / "ckpt"),
                "dtype": "float32",
                "tensor_parallel_size": 2,
                "gpu_memory_utilization": 0.7,
                "batch_size": "auto",
                "seed": 42,
            },
            {},
        )
    ]
    vllm_calls, hf_calls = lm_eval_boundary.calls[:2], lm_eval_boundary.calls[2:]
    assert len(hf_calls) == 2
    for vllm_call, hf_call in zip(vllm_calls, hf_calls, strict=True):
        assert (
            type(vllm_call.pop("model")).__name__ == "HFLM" and type(hf_call.pop("model")).__name__ == "HFLM"
        )
        assert vllm_call == hf_call  # tasks, shots, limit, gen_kwargs, chat template flags, log_samples
    assert (
        vllm_calls[0]["gen_kwargs"] == {"max_gen_toks": 12} and vllm_calls[0]["apply_chat_template"] is True
    )

    # Per-item outputs are collected identically (same underlying model here).
    assert on_vllm["items"] == on_hf["items"]
    for bench in ("arith", "compare"):
        assert on_vllm["metrics"][bench]["value"] == on_hf["metrics"][bench]["value"]
        assert on_vllm["metrics"][bench]["backend"] == "vllm" and on_hf["metrics"][bench]["backend"] == "hf"
        assert on_vllm["metrics"][bench]["backend_args"]["tensor_parallel_size"] == 2


def test_hf_path_matches_a_direct_lm_eval_hf_run(zoo_tiny):
    import lm_eval
    from lm_eval.tasks import TaskManager

    from oxstudy.tasks import materialize_tasks

    short = {"max_gen_toks": 16}
    ours = evaluate_model(
        zoo_tiny,
        [BenchmarkRequest(id="arith", task="oxs_arith", limit=ITEMS, batch_size=8, gen_kwargs=short)],
        device="cpu",
    )
    reference = lm_eval.simple_evaluate(
        model="hf",
        model_args=f"pretrained={zoo_tiny},dtype=float32",
        tasks=["oxs_arith"],
        limit=ITEMS,
        batch_size=8,
        device="cpu",
        gen_kwargs=dict(short),
        apply_chat_template=True,
        fewshot_as_multiturn=False,
        log_samples=True,
        task_manager=TaskManager(include_path=str(materialize_tasks()), include_defaults=False),
    )
    samples = sorted(
        (s for s in reference["samples"]["oxs_arith"] if s["filter"] == "strict-match"),
        key=lambda s: s["doc_id"],
    )
    assert ours["items"]["arith"]["score"] == [float(s["exact_match"]) for s in samples]
    assert ours["metrics"]["arith"]["value"] == pytest.approx(
        reference["results"]["oxs_arith"]["exact_match,strict-match"]
    )
    assert ours["metrics"]["arith"]["backend"] == "hf"


def test_worker_hands_vllm_the_merged_checkpoint_or_the_adapter(
    tiny_in_memory, zoo_tiny, tmp_path, monkeypatch
):
    from oxstudy.execute import _vllm_eval_args
    from oxstudy.plan import plan

    monkeypatch.setattr(engines, "vllm_usable", lambda: True)
    model, tokenizer = tiny_in_memory
    spec = load_spec_data(
        spec_data(
            models=[{"id": "tiny", "source": "zoo:tiny", "finetune": "lora", "lora": {"r": 8}}],
            algorithms=[{"id": "SFT", "method": "sft"}],
            evaluation={"backend": "vllm", "gpu_memory_utilization": 0.6},
            execution={"gpus_per_run": 2},
        )
    )
    [cell] = plan(spec)
    result = SimpleNamespace(model=model, tokenizer=tokenizer, adapter_dir=str(tmp_path / "adapter"))

    merged = _vllm_eval_args(cell, result, zoo_tiny, tmp_path, "cuda")
    assert merged == {
        "pretrained": str(tmp_path / "eval_checkpoint"),
        "dtype": "float32",
        "tensor_parallel_size": 2,
        "gpu_memory_utilization": 0.6,
        "batch_size": "auto",
        "seed": 1,
    }
    from transformers import AutoModelForCausalLM

    reloaded = AutoModelForCausalLM.from_pretrained(merged["pretrained"])
    assert sum(p.numel() for p in reloaded.parameters()) == sum(p.numel() for p in model.parameters())

    cell = cell.model_copy(update={"evaluation": cell.evaluation.model_copy(update={"lora": "enable_lora"})})
    adapter = _vllm_eval_args(cell, result, zoo_tiny, tmp_path, "cuda")
    assert adapter["pretrained"] == zoo_tiny and adapter["lora_local_path"] == str(tmp_path / "adapter")
    assert adapter["max_lora_rank"] == 8
    with pytest.raises(ResourceError, match="vllm asked for but"):
        _vllm_eval_args(cell, result, zoo_tiny, tmp_path, "cpu")


# ----------------------------------------------------------------------------- rollouts


def built_config(
    monkeypatch, method: str, *, device: str, gpus: int = 1, rollouts: dict | None = None, usable: bool = True
):
    from oxstudy.plan import plan
    from oxstudy.training import build_config

    monkeypatch.setattr(engines, "vllm_usable", lambda: usable)
    execution = {"gpus_per_run": gpus, "rollouts": rollouts or {}}
    hyper = {"num_generations": 2} if method in ("grpo", "rloo") else {}
    training = {
        "max_steps": 2,
        "effective_batch_size": 4,
        "per_device_batch_size": 4 // gpus,
        "precision": "fp32",
    }
    spec = load_spec_data(
        spec_data(
            algorithms=[{"id": "A", "method": method, "hyperparameters": hyper}],
            execution=execution,
            training=training,
        )
    )
    [cell] = plan(spec)
    return build_config(cell, "/tmp/oxstudy-rollout-config", device)


@pytest.mark.parametrize("method", ["grpo", "gspo", "rloo", "online-dpo"])
def test_online_rl_configs_get_colocated_vllm_on_one_gpu(monkeypatch, method):
    config = built_config(monkeypatch, method, device="cuda", rollouts={"gpu_memory_utilization": 0.25})
    assert config.use_vllm is True and config.vllm_mode == "colocate"
    assert config.vllm_gpu_memory_utilization == 0.25 and config.vllm_tensor_parallel_size == 1


def test_multi_gpu_cells_use_a_vllm_server(monkeypatch):
    config = built_config(
        monkeypatch, "grpo", device="cuda", gpus=2, rollouts={"server_url": "http://gpu-node:8000"}
    )
    assert config.use_vllm is True and config.vllm_mode == "server"
    assert config.vllm_server_base_url == "http://gpu-node:8000"
    # Without a server URL a multi-GPU cell colocates (each process its own engine).
    assert built_config(monkeypatch, "grpo", device="cuda", gpus=2).vllm_mode == "colocate"
    assert engines.vllm_serve_command("/m", gpu_memory_utilization=0.9) == [
        "trl",
        "vllm-serve",
        "--model",
        "/m",
        "--tensor_parallel_size",
        "1",
        "--gpu_memory_utilization",
        "0.9",
        "--port",
        "8000",
    ]


def test_rollouts_stay_on_transformers_where_vllm_cannot_run(monkeypatch):
    assert built_config(monkeypatch, "grpo", device="cpu").use_vllm is False  # auto on CPU
    assert built_config(monkeypatch, "grpo", device="cuda", usable=False).use_vllm is False  # auto, no vllm
    assert built_config(monkeypatch, "grpo", device="cuda", rollouts={"use_vllm": False}).use_vllm is False
    assert not hasattr(built_config(monkeypatch, "sft", device="cuda"), "use_vllm")
    with pytest.raises(ResourceError, match="execution.rollouts.use_vllm: vLLM rollouts asked for but"):
        built_config(monkeypatch, "grpo", device="cuda", gpus=1, rollouts={"use_vllm": True}, usable=False)
