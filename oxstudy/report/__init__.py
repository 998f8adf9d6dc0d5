"""The HTML report and paper-ready exports of an analysis (``oxstudy report``).

``build_report(analysis, meta)`` renders ``oxstudy.stats.analyze`` output as one
self-contained HTML page; ``export.export_tables`` writes the main tables as Markdown,
LaTeX (booktabs), CSV or JSON. Neither computes statistics of its own.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ReportMeta", "build_report", "write_report"]


def __getattr__(name: str) -> Any:
    # Lazy: importing oxstudy.report must not import matplotlib.
    if name in __all__:
        from oxstudy.report import build

        return getattr(build, name)
    raise AttributeError(name)
