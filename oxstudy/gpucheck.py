"""The prepared GPU check (``bash scripts/gpu_check.sh``): the GPU paths that CPU tests cannot run.

A maintainer with an NVIDIA GPU runs it once after installing (``pip install -e '.[gpu]'``) and
gets a pass/fail table in a few minutes (budget: under 8 minutes on one H200):

========================  ==============================================================
check                     what runs
========================  ==============================================================
train/<method>/<ft>       bf16 training of ``zoo:small`` on the GPU, full and LoRA, for one
                          method per trainer family (SFT, DPO, KTO, ORPO, SimPO/CPO, GRPO)
accelerate/2-proc         ``accelerate launch`` (DeepSpeed ZeRO-3) of a 2-GPU cell, 2 processes
                          (2+ GPUs and deepspeed installed)
lm-eval/hf-vs-vllm        the same checkpoint through lm-eval's hf and vllm model types, greedy:
                          equal scores (vllm installed)
study/6-cells             ``oxstudy run`` on a 6-cell zoo study pinned to the GPUs, end to end
study/vllm-cell           ``oxstudy run`` on a GRPO cell with vLLM rollouts (colocated) and vLLM
                          evaluation of the trained checkpoint (vllm installed)
========================  ==============================================================

Everything up to the launch (the plan of checks, the cells and their TRL settings, the
accelerate command, config file and environment) is built by pure functions that CPU tests
check; ``--dry-run`` prints the plan without running anything. Results also go to
``<out>/gpu_check.json``.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: One method per TRL trainer family.
TRAIN_METHODS = ("sft", "dpo", "kto", "orpo", "simpo", "grpo")
FINETUNES = ("full", "lora")
#: The smallest zoo model: built on the CPU in well under a minute, so the check fits its budget.
CHECK_MODEL = "zoo:tiny"
EVAL_ITEMS = 200
ENV = {"TOKENIZERS_PARALLELISM": "false", "TRL_EXPERIMENTAL_SILENCE": "1"}
SUBPROCESS_GPUS: dict[str, str | None] = {}


def subprocess_env(extra: dict[str, str]) -> dict[str, str]:
    """The environment of a launched check: this process's, with the machine's own
    CUDA_VISIBLE_DEVICES (not the in-process GPU 0 pin), plus ``extra``."""
    env = dict(os.environ)
    if "CUDA_VISIBLE_DEVICES" in SUBPROCESS_GPUS:
        original = SUBPROCESS_GPUS["CUDA_VISIBLE_DEVICES"]
        if original is None:
            env.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            env["CUDA_VISIBLE_DEVICES"] = original
    return {**env, **extra}


@dataclass
class Check:
    """One line of the table: a name, what it runs, and why it is skipped (if it is)."""

    name: str
    what: str
    skip: str | None = None
    command: list[str] | None = None  # subprocess checks: the exact command line
    env: dict[str, str] = field(default_factory=dict)  # and the variables it adds


@dataclass
class Outcome:
    name: str
    status: str  # pass | fail | skip
    detail: str
    seconds: float


# ----------------------------------------------------------------------------- machine


def machine() -> dict[str, Any]:
    """GPUs (from ``nvidia-smi``, without initialising CUDA here), vllm and deepspeed presence."""
    import importlib.util

    from runners.local import detect_gpus

    return {
        "gpus": len(detect_gpus()),
        "vllm": importlib.util.find_spec("vllm") is not None,
        "deepspeed": importlib.util.find_spec("deepspeed") is not None,
        "accelerate_cli": shutil.which("accelerate") is not None,
    }


# ----------------------------------------------------------------------------- specs and cells


def _base_spec(name: str, **overrides: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": name,
        "models": [{"id": "tiny", "source": CHECK_MODEL}],
        "algorithms": [{"id": "SFT", "method": "sft"}],
        "seeds": [1],
        "training": {"max_steps": 4, "learning_rate": 1e-4, "effective_batch_size": 8, "per_device_batch_size": 4,
                     "precision": "bf16", "max_completion_length": 32},
        "data": {"source": "task:oxs_arith", "train_size": 64,
                 "preference": {"samples_per_prompt": 4, "max_new_tokens": 32}},
        "benchmarks": [{"id": "arith", "task": "oxs_arith", "limit": 50, "gen_kwargs": {"max_gen_toks": 64}}],
        "evaluation": {"backend": "hf"},
        "execution": {"gpus_per_run": 1, "rollouts": {"use_vllm": False}},
    }  # fmt: skip
    spec.update(overrides)
    return spec


def training_cell(method: str, finetune: str):
    """The cell of check ``train/<method>/<finetune>``: bf16 on one GPU, transformers rollouts."""
    from oxstudy.plan import plan
    from oxstudy.spec import load_spec_data

    model: dict[str, Any] = {"id": "tiny", "source": CHECK_MODEL, "finetune": finetune}
    if finetune == "lora":
        model["lora"] = {"r": 8, "alpha": 16}
    hyper = {"num_generations": 4} if method == "grpo" else {}
    spec = load_spec_data(
        _base_spec(
            f"gpucheck-{method}-{finetune}",
            models=[model],
            algorithms=[{"id": method, "method": method, "hyperparameters": hyper}],
        )
    )
    [cell] = plan(spec)
    return cell


def multi_gpu_cell():
    """A 2-GPU SFT cell (2 processes, per-device batch 4, effective 8: no accumulation)."""
    from oxstudy.plan import plan
    from oxstudy.spec import load_spec_data

    spec = load_spec_data(
        _base_spec("gpucheck-2gpu", execution={"gpus_per_run": 2, "rollouts": {"use_vllm": False}})
    )
    [cell] = plan(spec)
    return cell


def study_spec(name: str, out: Path, gpus: int) -> dict[str, Any]:
    """The end-to-end studies. ``6-cells``: zoo:tiny x {SFT, DPO, GRPO} x 2 seeds, one GPU each,
    transformers everywhere. ``vllm-cell``: one GRPO cell with vLLM rollouts (colocated) and
    vLLM evaluation of the trained checkpoint."""
    grpo = {"id": "GRPO", "method": "grpo", "hyperparameters": {"num_generations": 4}}
    execution = {"gpus_per_run": 1, "max_parallel": max(1, min(gpus, 6)), "retries": 0, "timeout_s": 300}
    if name == "vllm-cell":
        return _base_spec(
            "gpucheck-vllm-cell",
            output_dir=str(out / name),
            algorithms=[grpo],
            evaluation={"backend": "vllm", "gpu_memory_utilization": 0.3},
            execution={**execution, "rollouts": {"use_vllm": True, "gpu_memory_utilization": 0.25}},
        )
    return _base_spec(
        "gpucheck-study",
        output_dir=str(out / name),
        seeds=[1, 2],
        algorithms=[{"id": "SFT", "method": "sft"}, {"id": "DPO", "method": "dpo"}, grpo],
        execution={**execution, "rollouts": {"use_vllm": False}},
    )


# ----------------------------------------------------------------------------- commands


def accelerate_plan(out: Path) -> tuple[list[str], dict[str, str], Path]:
    """The 2-process launch: ``(command, extra environment, accelerate config path)``. Writes
    the accelerate config (DeepSpeed ZeRO-3) and the cell JSON under ``out``."""
    from oxstudy.training import accelerate_launch_command, write_accelerate_config

    cell = multi_gpu_cell()
    out.mkdir(parents=True, exist_ok=True)
    cell_file = out / "cell.json"
    cell_file.write_text(json.dumps(cell.model_dump(mode="json")))
    config = write_accelerate_config(cell, out / "accelerate.yaml")
    command = accelerate_launch_command(
        cell,
        config,
        ["-m", "oxstudy.gpucheck", "worker", "--cell", str(cell_file), "--out", str(out / "result.json")],
    )
    env = {**ENV, "CUDA_VISIBLE_DEVICES": "0,1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    return command, env, config


def study_command(spec_path: Path) -> list[str]:
    return [sys.executable, "-m", "oxstudy.cli", "run", str(spec_path), "--json"]


def plan_checks(info: dict[str, Any], out: Path) -> list[Check]:
    """Every check, in order, with why it is skipped on this machine."""
    checks = [
        Check(f"train/{m}/{ft}", f"bf16 {ft} training of {CHECK_MODEL} with {m}, 4 steps on GPU 0")
        for m in TRAIN_METHODS
        for ft in FINETUNES
    ]
    launch, env, _ = accelerate_plan(out / "accelerate")
    checks.append(
        Check(
            "accelerate/2-proc",
            "accelerate launch (DeepSpeed ZeRO-3) of a 2-GPU SFT cell, 2 processes",
            skip=(
                "needs 2+ GPUs"
                if info["gpus"] < 2
                else "deepspeed not installed"
                if not info["deepspeed"]
                else "accelerate CLI not on PATH"
                if not info["accelerate_cli"]
                else None
            ),
            command=launch,
            env=env,
        )
    )
    no_vllm = None if info["vllm"] else "vllm not installed"
    checks.append(
        Check(
            "lm-eval/hf-vs-vllm",
            f"{CHECK_MODEL} on oxs_arith ({EVAL_ITEMS} items, greedy) through "
            "lm-eval hf and vllm: equal scores",
            skip=no_vllm,
        )
    )
    checks.append(
        Check(
            "study/6-cells",
            "oxstudy run: zoo:tiny x SFT/DPO/GRPO x 2 seeds, 1 GPU per cell",
            command=study_command(out / "6-cells.yaml"),
            env=dict(ENV),
        )
    )
    checks.append(
        Check(
            "study/vllm-cell",
            "oxstudy run: a GRPO cell, vLLM rollouts (colocate) + vLLM evaluation",
            skip=no_vllm,
            command=study_command(out / "vllm-cell.yaml"),
            env=dict(ENV),
        )
    )
    return checks


# ----------------------------------------------------------------------------- the checks


def _finite(value: float) -> bool:
    return value is not None and math.isfinite(value)


def run_training(method: str, finetune: str, out: Path, device: str = "cuda") -> str:
    """Train one check cell; return a one-line summary, raise on failure."""
    import torch

    from oxstudy.selfplay import prepare_data
    from oxstudy.training import train_cell
    from oxstudy.zoo import resolve_model_source

    cell = training_cell(method, finetune)
    if device == "cpu":  # the CPU test of this path: same code, fp32
        cell = cell.model_copy(update={"training": cell.training.model_copy(update={"precision": "fp32"})})
    model_path = resolve_model_source(cell.model.source)
    data = prepare_data(cell, model_path, cache_dir=out / "selfplay", device=device)
    result = train_cell(
        cell, model_path=model_path, output_dir=out / f"{method}-{finetune}", data=data, device=device
    )
    if not _finite(result.final_loss):
        raise RuntimeError(f"final loss {result.final_loss}")
    expected_bf16 = device == "cuda"
    if bool(result.config.get("bf16")) != expected_bf16:
        raise RuntimeError(f"bf16={result.config.get('bf16')} in the TRL config")
    where = next(result.model.parameters()).device.type
    if where != device:
        raise RuntimeError(f"trained model is on {where}, not {device}")
    peak = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else 0.0
    del result
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    return f"loss finite, bf16={expected_bf16}, on {device}, peak {peak:.2f} GiB"


def worker(cell_file: Path, out_file: Path, device: str | None = None) -> dict[str, Any]:
    """One process of the accelerate launch: train the cell; rank 0 writes the result."""
    from oxstudy.plan import Cell
    from oxstudy.selfplay import prepare_data
    from oxstudy.training import build_trainer, device_kind
    from oxstudy.zoo import resolve_model_source

    cell = Cell.model_validate_json(Path(cell_file).read_text())
    device = device or device_kind()
    if device == "cpu":
        cell = cell.model_copy(
            update={
                "training": cell.training.model_copy(update={"precision": "fp32"}),
                "execution": cell.execution.model_copy(update={"gpus_per_run": 1}),
            }
        )
    model_path = resolve_model_source(cell.model.source)
    data = prepare_data(cell, model_path, device=device)
    run = build_trainer(
        cell, model_path=model_path, output_dir=Path(out_file).parent / "train", data=data, device=device
    )
    output = run.trainer.train()
    state = run.trainer.state
    result = {
        "world_size": int(run.trainer.args.world_size),
        "steps": int(state.global_step),
        "loss": float(output.training_loss),
        "distributed_type": str(run.trainer.accelerator.distributed_type),
        "bf16": bool(run.config.bf16),
    }
    if run.trainer.accelerator.is_main_process:
        Path(out_file).write_text(json.dumps(result))
    return result


def run_accelerate(check: Check, out: Path) -> str:
    started = time.perf_counter()
    proc = subprocess.run(
        check.command, env=subprocess_env(check.env), capture_output=True, text=True, timeout=300, check=False
    )
    (out / "accelerate" / "log.txt").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise RuntimeError(f"exit {proc.returncode}: {(proc.stderr.strip().splitlines() or [''])[-1][:200]}")
    result = json.loads((out / "accelerate" / "result.json").read_text())
    if (
        result["world_size"] != 2
        or not _finite(result["loss"])
        or "DEEPSPEED" not in result["distributed_type"]
    ):
        raise RuntimeError(f"unexpected result {result}")
    return (
        f"world_size 2, {result['distributed_type']}, loss {result['loss']:.4f}, "
        f"{time.perf_counter() - started:.0f} s"
    )


def run_hf_vs_vllm(out: Path) -> str:
    """The same checkpoint, greedy, through both lm-eval model types (fp32 both)."""
    from oxstudy.engines import vllm_eval_model_args
    from oxstudy.evaluation import BenchmarkRequest, evaluate_model
    from oxstudy.zoo import resolve_model_source

    path = resolve_model_source(CHECK_MODEL)
    bench = [
        BenchmarkRequest(
            id="arith",
            task="oxs_arith",
            limit=EVAL_ITEMS,
            batch_size=64,
            gen_kwargs={"max_gen_toks": 64, "do_sample": False, "temperature": 0.0},
        )
    ]
    hf = evaluate_model(path, bench, device="cuda", backend="hf")
    vllm = evaluate_model(
        path,
        bench,
        device="cuda",
        backend="vllm",
        vllm_model_args=vllm_eval_model_args(path, gpu_memory_utilization=0.3, dtype="float32"),
    )
    a, b = hf["items"]["arith"]["score"], vllm["items"]["arith"]["score"]
    agree = sum(x == y for x, y in zip(a, b, strict=True))
    hf_value, vllm_value = hf["metrics"]["arith"]["value"], vllm["metrics"]["arith"]["value"]
    detail = f"hf {hf_value:.4f} vs vllm {vllm_value:.4f}, {agree}/{len(a)} items agree"
    if hf_value != vllm_value:
        raise RuntimeError(detail)
    return detail


def run_study(check: Check, out: Path, gpus: int) -> str:
    """``oxstudy run`` as a user runs it; every cell done, on one pinned GPU, with the engines asked for."""
    import yaml

    name = check.name.split("/", 1)[1]
    spec = study_spec(name, out, gpus)
    (out / f"{name}.yaml").write_text(yaml.safe_dump(spec))
    shutil.rmtree(out / name, ignore_errors=True)
    proc = subprocess.run(
        check.command, env=subprocess_env(check.env), capture_output=True, text=True, timeout=420, check=False
    )
    (out / f"{name}.log").write_text(proc.stdout + proc.stderr)
    records = [json.loads(p.read_text()) for p in (out / name / "runs").glob("*.json")]
    expected = len(spec["algorithms"]) * len(spec["seeds"])
    done = [r for r in records if r["status"] == "done"]
    if proc.returncode != 0 or len(done) != expected:
        reasons = sorted({(r.get("error") or {}).get("reason", "") for r in records if r["status"] != "done"})
        tail = (proc.stderr.strip().splitlines() or [""])[-1][:160]
        raise RuntimeError(f"exit {proc.returncode}, {len(done)}/{expected} done {reasons[:2]} {tail}")
    devices = {str(r["provenance"]["device"]) for r in done}
    if not all(d.startswith("cuda:") and d.endswith(" x1") for d in devices):
        raise RuntimeError(f"cells not pinned to one GPU each: {sorted(devices)}")
    engines = {m.get("backend") for r in done for m in r["metrics"].values()}
    rollouts = {json.dumps(r["provenance"]["inputs"].get("rollouts")) for r in done}
    if name == "vllm-cell" and (engines != {"vllm"} or '"use_vllm": true' not in "".join(rollouts)):
        raise RuntimeError(f"engines {engines}, rollouts {rollouts}")
    return f"{len(done)}/{expected} done, 1 GPU each ({sorted(devices)[0]}), eval {'/'.join(sorted(engines))}"


# ----------------------------------------------------------------------------- driver


def run_checks(
    checks: list[Check], out: Path, info: dict[str, Any], on_result: Callable[[Outcome], None] | None = None
) -> list[Outcome]:
    outcomes = []
    for check in checks:
        started = time.perf_counter()
        if check.skip:
            outcome = Outcome(check.name, "skip", check.skip, 0.0)
        else:
            try:
                if check.name.startswith("train/"):
                    _, method, finetune = check.name.split("/")
                    detail = run_training(method, finetune, out / "train")
                elif check.name == "accelerate/2-proc":
                    detail = run_accelerate(check, out)
                elif check.name == "lm-eval/hf-vs-vllm":
                    detail = run_hf_vs_vllm(out)
                else:
                    detail = run_study(check, out, info["gpus"])
                outcome = Outcome(check.name, "pass", detail, time.perf_counter() - started)
            except Exception as exc:  # noqa: BLE001 - a failing check is a row of the table
                (out / "errors.log").open("a").write(f"== {check.name}\n{traceback.format_exc()}\n")
                first = (str(exc).splitlines() or [""])[0][:240]
                outcome = Outcome(
                    check.name, "fail", f"{type(exc).__name__}: {first}", time.perf_counter() - started
                )
        outcomes.append(outcome)
        if on_result is not None:
            on_result(outcome)
    return outcomes


def table(rows: list[tuple[str, str, str, str]], title: str):
    from rich.table import Table

    out = Table(title=title)
    for column in ("check", "result", "seconds", "detail"):
        out.add_column(column)
    colours = {"pass": "green", "fail": "red", "skip": "yellow", "planned": "cyan"}
    for name, status, seconds, detail in rows:
        out.add_row(name, f"[{colours.get(status, 'white')}]{status}[/]", seconds, detail)
    return out


def main(argv: list[str] | None = None) -> int:
    import argparse

    from rich.console import Console

    parser = argparse.ArgumentParser(prog="gpu_check", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command")
    work = sub.add_parser("worker", help="one process of the accelerate launch (internal)")
    work.add_argument("--cell", type=Path, required=True)
    work.add_argument("--out", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path("gpu_check_out"), help="work directory and results")
    parser.add_argument("--dry-run", action="store_true", help="print the plan (commands, env); run nothing")
    parser.add_argument("--only", default=None, help="run only checks whose name starts with this")
    args = parser.parse_args(argv)
    if args.command == "worker":
        worker(args.cell, args.out)
        return 0

    console = Console(highlight=False)
    info = machine()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    checks = [c for c in plan_checks(info, out) if not args.only or c.name.startswith(args.only)]
    header = (
        f"GPUs: {info['gpus']}, vllm: {'yes' if info['vllm'] else 'no'}, "
        f"deepspeed: {'yes' if info['deepspeed'] else 'no'}"
    )
    if args.dry_run:
        rows = [(c.name, "skip" if c.skip else "planned", "-", c.skip or c.what) for c in checks]
        console.print(table(rows, f"gpu check plan ({header})"))
        for c in checks:
            if c.command:
                env = " ".join(f"{k}={v}" for k, v in sorted(c.env.items()))
                console.print(f"{c.name}: {env} {' '.join(c.command)}")
        return 0
    if info["gpus"] == 0:
        console.print(
            "no GPU: nvidia-smi reports no NVIDIA GPU on this machine, so there is nothing to check "
            "(the CPU paths are covered by bash scripts/test.sh); see the plan with --dry-run"
        )
        return 2
    os.environ.update(ENV)
    # In-process checks use GPU 0 only (with several visible GPUs the HF Trainer would wrap the
    # model in DataParallel); the study and the launch get the machine's own setting back.
    SUBPROCESS_GPUS["CUDA_VISIBLE_DEVICES"] = os.environ.get("CUDA_VISIBLE_DEVICES")
    os.environ["CUDA_VISIBLE_DEVICES"] = (SUBPROCESS_GPUS["CUDA_VISIBLE_DEVICES"] or "0").split(",")[0]
    started = time.perf_counter()
    outcomes = run_checks(
        checks, out, info, on_result=lambda o: console.print(f"{o.status:4} {o.name}: {o.detail}")
    )
    total = time.perf_counter() - started
    rows = [(o.name, o.status, f"{o.seconds:.0f}", o.detail) for o in outcomes]
    console.print(table(rows, f"gpu check: {header}, {total:.0f} s"))
    (out / "gpu_check.json").write_text(
        json.dumps(
            {"machine": info, "seconds": round(total, 1), "checks": [o.__dict__ for o in outcomes]}, indent=2
        )
    )
    return 1 if any(o.status == "fail" for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
