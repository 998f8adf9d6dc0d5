"""Execution backends: run these cells, write to this store.

Every backend implements ``runners.base.Runner``; the per-cell work itself (data -> train ->
eval -> record) is ``oxstudy.execute.execute_cell``, identical on every backend, so a study
started locally can be finished on Ray or SLURM against the same store.
"""

from runners.base import CellOutcome, Runner, RunnerEvent, get_runner

__all__ = ["CellOutcome", "Runner", "RunnerEvent", "get_runner"]
