"""A tiny real study shared by the backend tests: the smallest zoo model, SFT for two steps,
one bundled benchmark with eight items."""

from __future__ import annotations

from typing import Any

from oxstudy.plan import Cell, plan
from oxstudy.spec import load_spec_data


def tiny_cells(name: str, seeds: list[int], backend: str, **execution: Any) -> list[Cell]:
    spec = load_spec_data(
        {
            "name": name,
            "models": [{"id": "tiny", "source": "zoo:tiny"}],
            "algorithms": [{"id": "SFT", "method": "sft"}],
            "seeds": seeds,
            "training": {"max_steps": 2, "learning_rate": 1e-4, "effective_batch_size": 4, "per_device_batch_size": 4},
            "data": {"source": "task:oxs_arith", "train_size": 16},
            "benchmarks": [{"id": "arith", "task": "oxs_arith", "limit": 8}],
            "execution": {"backend": backend, **execution},
        }
    )
    return plan(spec)
