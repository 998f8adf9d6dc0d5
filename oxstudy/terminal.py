"""oxstudy's own progress on the terminal while third-party output goes to a log.

Cells and zoo builds send their process's stdout/stderr file descriptors to a log
(:func:`oxstudy.execute.redirect_output`): lm-eval's "pretrained model kwarg is not of type
str", datasets' "Generating train split" bars, transformers' FutureWarnings, C++ messages.
A console that must stay visible meanwhile writes to a duplicate of the terminal's stderr
taken before any redirect, which a later ``dup2`` on fd 2 does not move.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from typing import Any, TextIO


def terminal_stderr() -> TextIO:
    """A text stream on (a duplicate of) the current stderr; ``sys.stderr`` itself when it has
    no file descriptor (a test runner's capture)."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, io.UnsupportedOperation):
        return sys.stderr
    with contextlib.suppress(OSError):
        return os.fdopen(os.dup(fd), "w", buffering=1, encoding=getattr(sys.stderr, "encoding", None) or "utf-8")
    return sys.stderr


def progress_console(**options: Any):
    """A rich console for progress bars that stays on the terminal through output redirects."""
    from rich.console import Console

    return Console(file=terminal_stderr(), **options)


def progress_bar(*, info: bool = False, disable: bool = False):
    """oxstudy's progress bar (description, bar, done/total, elapsed, ETA) on
    :func:`progress_console`; ``info`` adds a column for a task's ``info`` field (the
    cell's current phase in ``oxstudy run``)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn()]
    if info:
        columns.append(TextColumn("{task.fields[info]}"))
    columns += [TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn()]
    return Progress(*columns, console=progress_console(highlight=False), disable=disable, transient=False)
