"""Smoke mode and pre-flight: a GPU spec runs on the zoo, and fails clearly where it needs the hub."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from oxstudy.smoke import smoke_spec
from oxstudy.spec import load_spec
from oxstudy.store import load_study

REPO = Path(__file__).resolve().parents[1]


def cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "oxstudy.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=900, env=env)


def test_smoke_spec_keeps_the_design_and_swaps_what_needs_a_gpu() -> None:
    spec = load_spec(REPO / "specs" / "scaling.yaml")
    smoke = smoke_spec(spec)
    assert [m.id for m in smoke.models] == [m.id for m in spec.models]
    assert [m.source for m in smoke.models] == ["zoo:tiny", "zoo:small", "zoo:medium", "zoo:medium"]
    assert [m.finetune for m in smoke.models] == [m.finetune for m in spec.models]  # LoRA path still exercised
    assert [(a.id, a.method) for a in smoke.algorithms] == [(a.id, a.method) for a in spec.algorithms]
    assert [b.id for b in smoke.benchmarks] == [b.id for b in spec.benchmarks]
    assert {b.task for b in smoke.benchmarks if b.in_domain} == {"oxs_arith"}
    assert smoke.training.max_steps == 2 and smoke.seeds == spec.seeds[:1]
    assert smoke.store_dir.name == "scaling-smoke" and smoke.analysis == spec.analysis
    factorial = smoke_spec(load_spec(REPO / "specs" / "lora_factorial.yaml"))
    assert [m.source for m in factorial.models] == ["zoo:tiny", "zoo:tiny", "zoo:small", "zoo:small"]
    assert smoke_spec(load_spec(REPO / "specs" / "dpo_taxonomy.yaml")).models[0].source == "zoo:tiny"


def test_hub_model_fails_before_any_work_with_one_line(tmp_path: Path) -> None:
    result = cli("run", str(REPO / "specs" / "dpo_taxonomy.yaml"), "--only", "*/DPO/seed42", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Qwen/Qwen2.5-1.5B-Instruct" in lines[0] and "--smoke" in lines[0]


@pytest.mark.slow
def test_dpo_taxonomy_smoke_runs_real_cells(tmp_path: Path) -> None:
    dry = cli("run", str(REPO / "specs" / "dpo_taxonomy.yaml"), "--smoke", "--dry-run", "--json", cwd=tmp_path)
    assert len(json.loads(dry.stdout)["would_run"]) == 20
    result = cli("run", str(REPO / "specs" / "dpo_taxonomy.yaml"), "--smoke", "--only", "*/[DS]*PO/*", "--json",
                 cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout)["done"] == 3  # DPO, SimPO, SPPO
    tables = load_study(tmp_path / "studies" / "dpo-taxonomy-smoke")
    assert set(tables.runs["algorithm"]) == {"DPO", "SimPO", "SPPO"} and set(tables.runs["benchmark"]) == {"gsm8k"}
    assert len(tables.items) == 3 * 16
