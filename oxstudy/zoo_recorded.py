"""Base accuracies of the zoo ladder as measured where it was tuned (data, not code).

``oxstudy zoo list`` shows these next to what a local build measured, so drift between
machines is visible (float kernels differ between CPUs; a model trained for hundreds of
steps amplifies the difference), and ``tests/test_zoo.py`` checks that a fresh build of
``zoo:tiny`` lands within ``TOLERANCE`` of its recorded value. Regenerate with
``python benchmarks/bench_zoo.py --all-tasks --record`` (it prints this table).
"""

from __future__ import annotations

from typing import Any

#: How far (absolute accuracy) a fresh build may land from the recorded value: the
#: spread of zoo:tiny's in-domain accuracy over pretraining seeds measured here
#: (benchmarks/bench_zoo.py --seeds 3), which bounds what float differences can do.
TOLERANCE = 0.05

RECORDED: dict[str, Any] = {
    "machine": {},
    "measured": "",
    "models": {},
}
