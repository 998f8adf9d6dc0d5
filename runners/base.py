"""The one small interface every backend implements."""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from oxstudy.plan import Cell
    from oxstudy.store import Store


@dataclass
class CellOutcome:
    """What happened to one cell (the record in the store is the source of truth)."""

    run_id: str
    status: Literal["done", "failed"]
    attempts: int = 1
    reason: str | None = None
    wall_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RunnerEvent:
    """Progress reported to the driver. ``kind``: start | phase | done | failed | retry."""

    kind: str
    run_id: str
    detail: dict[str, Any] = field(default_factory=dict)


EventSink = Callable[[RunnerEvent], None]


class Runner(abc.ABC):
    """Run cells and write one record per cell into ``store``; never raise for a failing cell."""

    name: str = "base"

    @abc.abstractmethod
    def run(self, cells: list[Cell], store: Store, *, on_event: EventSink | None = None) -> list[CellOutcome]:
        """Run every cell (each in its own process), retrying failures up to the spec's limit."""


#: the names ``execution.backend`` and ``oxstudy run --backend`` accept
BACKENDS = ("local", "ray", "slurm")


def get_runner(backend: str, **options: Any) -> Runner:
    """The runner for ``execution.backend`` (imports its engine lazily)."""
    if backend not in BACKENDS:  # a user's typo: one line, exit 2
        from oxstudy.errors import OxstudyError

        raise OxstudyError(f"unknown backend {backend!r} ({', '.join(BACKENDS)})")
    if backend == "local":
        from runners.local import LocalRunner

        return LocalRunner(**options)
    if backend == "ray":
        from runners.ray_runner import RayRunner

        return RayRunner(**options)
    if backend == "slurm":
        from runners.slurm import SlurmRunner

        return SlurmRunner(**options)
    raise AssertionError(backend)  # pragma: no cover - BACKENDS lists every branch above
