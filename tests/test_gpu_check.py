"""The prepared GPU check, up to the launch: its plan, cells, TRL settings, the accelerate command,
config file and environment, the 'no GPU' exit, and its worker / training code run on CPU."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from oxstudy import gpucheck
from oxstudy.errors import ResourceError

REPO = Path(__file__).resolve().parents[1]
CPU = {"gpus": 0, "vllm": False, "deepspeed": False, "accelerate_cli": True}
BIG = {"gpus": 2, "vllm": True, "deepspeed": True, "accelerate_cli": True}


def test_plan_covers_every_family_and_skips_what_the_machine_lacks(tmp_path):
    trains = [
        f"train/{m}/{ft}" for m in ("sft", "dpo", "kto", "orpo", "simpo", "grpo") for ft in ("full", "lora")
    ]
    on_cpu = {c.name: c.skip for c in gpucheck.plan_checks(CPU, tmp_path)}
    assert list(on_cpu) == [
        *trains,
        "accelerate/2-proc",
        "lm-eval/hf-vs-vllm",
        "study/6-cells",
        "study/vllm-cell",
    ]
    assert (
        on_cpu["accelerate/2-proc"] == "needs 2+ GPUs"
        and on_cpu["lm-eval/hf-vs-vllm"] == "vllm not installed"
    )
    assert on_cpu["study/vllm-cell"] == "vllm not installed" and on_cpu["study/6-cells"] is None
    assert all(on_cpu[name] is None for name in trains)
    one_gpu_no_deepspeed = {**BIG, "deepspeed": False}
    assert {c.name: c.skip for c in gpucheck.plan_checks(one_gpu_no_deepspeed, tmp_path)}[
        "accelerate/2-proc"
    ] == ("deepspeed not installed")
    assert all(c.skip is None for c in gpucheck.plan_checks(BIG, tmp_path))


@pytest.mark.parametrize("finetune", ["full", "lora"])
@pytest.mark.parametrize("method", ["sft", "dpo", "kto", "orpo", "simpo", "grpo"])
def test_training_cells_train_in_bf16_on_the_gpu(method, finetune, tmp_path):
    from oxstudy.algorithms import registry
    from oxstudy.training import precision_flags, shared_arguments

    cell = gpucheck.training_cell(method, finetune)
    assert registry.canonical(cell.algorithm.method) == method and cell.model.finetune == finetune
    assert cell.model.source == "zoo:tiny" and cell.execution.gpus_per_run == 1
    assert cell.execution.rollouts.use_vllm is False and cell.evaluation.backend == "hf"
    arguments = shared_arguments(cell.training, seed=cell.seed, output_dir=tmp_path, device="cuda")
    assert arguments["bf16"] is True and arguments["fp16"] is False and "use_cpu" not in arguments
    if finetune == "lora":
        assert cell.model.lora.r == 8
    with pytest.raises(ResourceError, match="bf16 needs a GPU"):  # never silently fp32
        precision_flags(cell.training.precision, "cpu")


def test_accelerate_launch_command_config_and_environment(tmp_path):
    from oxstudy.plan import Cell
    from oxstudy.training import gradient_accumulation

    command, env, config_path = gpucheck.accelerate_plan(tmp_path)
    cell_file, result_file = tmp_path / "cell.json", tmp_path / "result.json"
    assert command == [
        "accelerate",
        "launch",
        "--config_file",
        str(config_path),
        "--num_processes",
        "2",
        "-m",
        "oxstudy.gpucheck",
        "worker",
        "--cell",
        str(cell_file),
        "--out",
        str(result_file),
    ]
    assert env["CUDA_VISIBLE_DEVICES"] == "0,1" and env["PYTHONPATH"] == str(REPO)
    assert env["TOKENIZERS_PARALLELISM"] == "false"
    config = yaml.safe_load(config_path.read_text())
    assert config["distributed_type"] == "DEEPSPEED" and config["num_processes"] == 2
    assert config["deepspeed_config"]["zero_stage"] == 3 and config["mixed_precision"] == "bf16"
    cell = Cell.model_validate_json(cell_file.read_text())
    assert cell.execution.gpus_per_run == 2 and cell.training.precision == "bf16"
    assert gradient_accumulation(cell.training, 2) == 1  # 8 examples = 2 processes x 4


def test_study_specs_validate_and_plan(tmp_path):
    from oxstudy.plan import plan
    from oxstudy.spec import load_spec_data

    cells = plan(load_spec_data(gpucheck.study_spec("6-cells", tmp_path, gpus=4)))
    assert len(cells) == 6 and {c.algorithm.id for c in cells} == {"SFT", "DPO", "GRPO"}
    assert {(c.execution.gpus_per_run, c.execution.max_parallel) for c in cells} == {(1, 4)}
    vllm_spec = gpucheck.study_spec("vllm-cell", tmp_path, gpus=1)
    [cell] = plan(load_spec_data(vllm_spec))
    assert cell.evaluation.backend == "vllm" and cell.execution.rollouts.use_vllm is True
    assert cell.algorithm.method == "grpo" and vllm_spec["output_dir"] == str(tmp_path / "vllm-cell")


def test_launched_checks_get_the_machines_gpus_back(monkeypatch):
    monkeypatch.setitem(gpucheck.SUBPROCESS_GPUS, "CUDA_VISIBLE_DEVICES", "2,3")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2")  # the in-process pin
    assert gpucheck.subprocess_env({"X": "1"})["CUDA_VISIBLE_DEVICES"] == "2,3"
    assert gpucheck.subprocess_env({"CUDA_VISIBLE_DEVICES": "0,1"})["CUDA_VISIBLE_DEVICES"] == "0,1"
    monkeypatch.setitem(gpucheck.SUBPROCESS_GPUS, "CUDA_VISIBLE_DEVICES", None)
    assert "CUDA_VISIBLE_DEVICES" not in gpucheck.subprocess_env({})


def test_script_says_no_gpu_and_dry_run_prints_the_plan(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "CUDA_VISIBLE_DEVICES": "", "COLUMNS": "200"}
    result = subprocess.run(
        ["bash", str(REPO / "scripts" / "gpu_check.sh"), "--out", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stdout.startswith("no GPU:") and "--dry-run" in result.stdout
    dry = subprocess.run(
        ["bash", str(REPO / "scripts" / "gpu_check.sh"), "--dry-run", "--out", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert dry.returncode == 0, dry.stderr
    assert "train/grpo/lora" in dry.stdout and "needs 2+ GPUs" in dry.stdout
    assert "accelerate launch --config_file" in dry.stdout and "oxstudy.cli run" in dry.stdout


@pytest.mark.slow
def test_worker_and_training_check_run_on_cpu(tmp_path, zoo_tiny):
    """The code the GPU check launches, run here on CPU (fp32, one process)."""
    gpucheck.accelerate_plan(tmp_path)
    result = gpucheck.worker(tmp_path / "cell.json", tmp_path / "result.json", device="cpu")
    assert json.loads((tmp_path / "result.json").read_text()) == result
    assert result["world_size"] == 1 and result["steps"] == 4 and math.isfinite(result["loss"])
    assert result["bf16"] is False
    summary = gpucheck.run_training("sft", "lora", tmp_path / "train", device="cpu")
    assert summary.startswith("loss finite, bf16=False, on cpu")
