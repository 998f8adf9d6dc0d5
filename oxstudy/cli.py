"""The ``oxstudy`` command line.

Each group of commands lives in ``oxstudy/commands/<group>.py`` and exposes
``register(app)``; this module only assembles them and turns ``OxstudyError`` into a
one-line message with exit code 2 (never a traceback for bad input).
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import os
import sys

import typer
from rich.console import Console
from rich.markup import escape

from oxstudy.errors import OxstudyError

#: Command modules, in the order their commands appear in ``oxstudy --help``.
COMMAND_MODULES = [
    "oxstudy.commands.spec",
    "oxstudy.commands.world",
    "oxstudy.commands.algorithms",
    "oxstudy.commands.run",
    "oxstudy.commands.analysis",
    "oxstudy.commands.report",
]

err_console = Console(stderr=True, highlight=False, soft_wrap=True)


def build_app() -> typer.Typer:
    app = typer.Typer(
        name="oxstudy",
        help="Controlled comparisons of LLM post-training algorithms.\n\n"
        "Example: oxstudy validate specs/*.yaml && oxstudy plan specs/dpo_taxonomy.yaml",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode="rich",
    )
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(app)
    return app


def report_error(exc: OxstudyError) -> None:
    # escape: a message quotes user text (a file named "[/x].yaml" is not markup)
    for message in exc.messages:
        err_console.print(f"[bold red]error:[/] {escape(message)}", markup=True, highlight=False)


def _error_line(message: str) -> None:
    """One ``error: ...`` line on stderr (newlines folded: a usage error is one line)."""
    err_console.print(
        f"[bold red]error:[/] {escape(' '.join(str(message).split()))}", markup=True, highlight=False
    )


def _exception_classes(name: str) -> tuple[type[BaseException], ...]:
    """``name`` from every click the CLI may meet: typer's vendored copy (typer >= 0.29),
    the standalone ``click`` package (older typer, and anything raising click errors), and
    typer's own top-level class. Both are checked so a typer upgrade cannot silently turn
    usage errors back into tracebacks (tests/test_cli_fuzz.py pins the behaviour)."""
    found: list[type[BaseException]] = []
    for module_name in ("typer._click.exceptions", "click.exceptions", "typer.exceptions", "typer"):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        cls = getattr(module, name, None)
        if isinstance(cls, type) and issubclass(cls, BaseException) and cls not in found:
            found.append(cls)
    return tuple(found)


def _usage_error(exc: BaseException) -> int:
    """Print a click/typer usage error as one line; return its exit code (2 for usage)."""
    ctx = getattr(exc, "ctx", None)
    if type(exc).__name__ == "NoArgsIsHelpError" and ctx is not None:
        # `oxstudy` or `oxstudy zoo` alone: the help is what was asked for (typer's rich
        # formatter prints it itself and returns "").
        text = ctx.get_help()
        if text:
            print(text, file=sys.stderr)
        return 2
    formatted = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    command = getattr(ctx, "command_path", None) or "oxstudy"
    _error_line(f"{command}: {formatted} (see '{command} --help')")
    code = getattr(exc, "exit_code", 2)
    return code if isinstance(code, int) and code != 1 else 2


def _os_error_message(exc: OSError) -> str:
    """``PATH: reason`` for a file-system error met at the CLI boundary."""
    reason = exc.strerror or exc.__class__.__name__
    hints = {errno.ENOSPC: "disk full", errno.EDQUOT: "disk quota exceeded", errno.EROFS: "read-only file system",
             errno.EISDIR: "a directory where a file is expected", errno.EACCES: "permission denied",
             errno.EPERM: "permission denied"}  # fmt: skip
    hint = hints.get(exc.errno) if exc.errno is not None else None
    if hint and hint.lower() not in reason.lower():
        reason = f"{reason} ({hint})"
    paths = [str(p) for p in (exc.filename, exc.filename2) if p is not None]
    return f"{' -> '.join(paths)}: {reason}" if paths else reason


#: What Ctrl-C prints: finished cells are records in the store, so nothing done is lost.
INTERRUPTED = "interrupted: work already finished is kept (run records are written whole); run the command again to resume"


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; every user error ends as one line on stderr and exit code 2."""
    usage_errors = _exception_classes("ClickException")
    exits = _exception_classes("Exit")
    aborts = _exception_classes("Abort")
    try:
        app = build_app()
        # Non-standalone mode returns typer.Exit codes and raises click errors to us, so
        # every error is printed here, the same way.
        code = app(args=argv, prog_name="oxstudy", standalone_mode=False)
        if code == 130:  # Ctrl-C: typer turns it into Exit(130), which click returns here
            err_console.print(INTERRUPTED)
    except OxstudyError as exc:
        report_error(exc)
        sys.exit(2)
    except exits as exc:
        code = getattr(exc, "exit_code", 1)
        sys.exit(code if isinstance(code, int) else 1)
    except aborts:
        err_console.print("aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        err_console.print(INTERRUPTED)
        sys.exit(130)
    except usage_errors as exc:
        sys.exit(_usage_error(exc))
    except OSError as exc:
        if exc.errno == errno.EPIPE:  # `oxstudy plan --json | head`: the reader left
            with contextlib.suppress(OSError):
                sys.stderr.close()
            os._exit(1)
        # A missing file, a directory given for a file, permission denied, disk full: the
        # commands name what they read; what reaches here is still the user's environment.
        _error_line(_os_error_message(exc))
        sys.exit(2)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
