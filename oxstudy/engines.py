"""Which engine generates: transformers or vLLM, for evaluation and for online-RL rollouts.

Both choices are engine choices, not part of a run's identity (like the device): they are
resolved in the worker from the spec (``evaluation.backend`` / ``benchmarks[].backend`` and
``execution.rollouts``) and the machine, and recorded in each run's provenance.

- evaluation ``auto`` = ``vllm`` when the ``vllm`` package imports and CUDA is available,
  else ``hf``; an explicit ``vllm`` on a machine without them is a one-line error.
- rollouts ``use_vllm: auto`` = on for online-RL methods (GRPO family, RLOO, online DPO) on a
  GPU when vllm imports. Mode ``colocate`` (vLLM inside the training process, sharing its GPU
  at ``gpu_memory_utilization``) on one GPU; ``server`` (a separate ``trl vllm-serve`` the
  trainer talks to at ``server_url``) for multi-GPU cells when a server URL is given.
"""

from __future__ import annotations

import functools
import importlib.util
from typing import Any

from oxstudy.errors import ResourceError

VLLM_INSTALL_HINT = "pip install -e '.[gpu]' on a machine with an NVIDIA GPU and the CUDA build of torch"


@functools.lru_cache(maxsize=1)
def vllm_importable() -> bool:
    """``import vllm`` works (its wheels need CUDA libraries: on a CPU machine it does not)."""
    if importlib.util.find_spec("vllm") is None:
        return False
    try:
        import vllm  # noqa: F401
    except Exception:  # noqa: BLE001 - a broken or CPU-only install is "not available"
        return False
    return True


def cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def vllm_usable() -> bool:
    """vLLM can run here: the package imports and a CUDA GPU is visible."""
    return cuda_available() and vllm_importable()


def vllm_unavailable_reason() -> str | None:
    """Why vLLM cannot run on this machine (None when it can). Cheap: no ``import vllm``
    unless a GPU is there and the package is installed."""
    has_gpu = cuda_available()
    installed = importlib.util.find_spec("vllm") is not None
    if has_gpu and installed and vllm_importable():
        return None
    missing = [what for what, ok in (("a CUDA GPU", has_gpu), ("the vllm package", installed)) if not ok]
    if not missing:
        return "vllm is installed but does not import (a CPU or mismatched build?)"
    return f"this machine has no {' and no '.join(missing).replace('no a ', 'no ')}"


# --------------------------------------------------------------------------- evaluation


def eval_backend(
    requested: str | None,
    default: str = "auto",
    *,
    device: str | None = None,
    where: str = "evaluation.backend",
) -> str:
    """The lm-eval model type a benchmark is evaluated with: ``hf`` or ``vllm``.

    ``requested`` is the benchmark's own ``backend`` (None = ``default``, the spec's
    ``evaluation.backend``). ``device`` is the cell's (``cuda`` / ``cpu``); vLLM needs cuda.
    """
    choice = requested or default
    if choice == "hf":
        return "hf"
    on_gpu = device == "cuda" if device is not None else cuda_available()
    if choice == "auto":
        return "vllm" if on_gpu and vllm_usable() else "hf"
    if choice != "vllm":
        raise ResourceError(f"{where}: unknown backend '{choice}' (hf, vllm or auto)")
    if not on_gpu or not vllm_usable():
        reason = vllm_unavailable_reason() or "the cell runs on CPU"
        raise ResourceError(f"{where}: vllm asked for but {reason}; use hf or auto, or {VLLM_INSTALL_HINT}")
    return "vllm"


def vllm_eval_model_args(
    pretrained: str,
    *,
    tensor_parallel_size: int = 1,
    gpu_memory_utilization: float = 0.8,
    dtype: str = "float32",
    lora_local_path: str | None = None,
    lora_rank: int = 16,
    seed: int = 1234,
    max_model_len: int | None = None,
) -> dict[str, Any]:
    """``model_args`` of lm-eval's ``vllm`` model type for a checkpoint.

    ``pretrained`` is a merged checkpoint directory, or the base model when ``lora_local_path``
    names an adapter (lm-eval then turns on vLLM's ``enable_lora`` and applies it per request).
    """
    args: dict[str, Any] = {
        "pretrained": str(pretrained),
        "dtype": dtype,
        "tensor_parallel_size": int(max(1, tensor_parallel_size)),
        "gpu_memory_utilization": float(gpu_memory_utilization),
        "batch_size": "auto",
        "seed": int(seed),
    }
    if lora_local_path is not None:
        args["lora_local_path"] = str(lora_local_path)
        args["max_lora_rank"] = int(lora_rank)
    if max_model_len is not None:
        args["max_model_len"] = int(max_model_len)
    return args


# --------------------------------------------------------------------------- rollouts

#: TRL configs with vLLM generation (field names checked in TRL 1.16: GRPOConfig, RLOOConfig,
#: experimental OnlineDPOConfig all have use_vllm, vllm_mode, vllm_gpu_memory_utilization,
#: vllm_tensor_parallel_size, vllm_server_base_url).
VLLM_ROLLOUT_CONFIGS = ("trl.GRPOConfig", "trl.RLOOConfig", "trl.experimental.online_dpo.OnlineDPOConfig")


def rollout_arguments(rollouts: Any, *, config_class: str, device: str, gpus: int) -> dict[str, Any]:
    """TRL config fields for vLLM rollouts of an online-RL cell (``{}`` for other methods, or
    when vLLM is off).

    Args:
        rollouts: the spec's ``execution.rollouts`` (:class:`oxstudy.spec.RolloutSpec`).
        config_class: the method's TRL config (registry ``config``).
        device: ``cuda`` or ``cpu``.
        gpus: GPUs of the cell (``execution.gpus_per_run``).
    """
    if rollouts is None or config_class not in VLLM_ROLLOUT_CONFIGS:
        return {}
    wanted = rollouts.use_vllm
    if wanted is False:
        return {}
    if wanted == "auto":
        if device != "cuda" or not vllm_usable():
            return {}
    elif device != "cuda" or not vllm_usable():
        reason = vllm_unavailable_reason() or "the cell runs on CPU"
        raise ResourceError(
            f"execution.rollouts.use_vllm: vLLM rollouts asked for but {reason}; set it to auto "
            f"or false, or {VLLM_INSTALL_HINT}"
        )
    mode = rollouts.mode
    if mode == "auto":
        mode = "server" if gpus > 1 and rollouts.server_url else "colocate"
    arguments: dict[str, Any] = {"use_vllm": True, "vllm_mode": mode}
    if mode == "colocate":
        arguments["vllm_gpu_memory_utilization"] = float(rollouts.gpu_memory_utilization)
        # Each training process holds its own engine on its own GPU.
        arguments["vllm_tensor_parallel_size"] = 1
    else:
        if not rollouts.server_url:
            raise ResourceError("execution.rollouts.server_url: server mode needs a running `trl vllm-serve`")
        arguments["vllm_server_base_url"] = rollouts.server_url
    return arguments


def vllm_serve_command(
    model_path: str, *, gpu_memory_utilization: float, tensor_parallel_size: int = 1, port: int = 8000
) -> list[str]:
    """The ``trl vllm-serve`` command that server-mode rollouts connect to (start it on GPUs the
    training processes do not use)."""
    return [
        "trl",
        "vllm-serve",
        "--model",
        str(model_path),
        "--tensor_parallel_size",
        str(tensor_parallel_size),
        "--gpu_memory_utilization",
        str(gpu_memory_utilization),
        "--port",
        str(port),
    ]
