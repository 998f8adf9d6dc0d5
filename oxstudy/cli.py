"""The ``oxstudy`` command line.

Each group of commands lives in ``oxstudy/commands/<group>.py`` and exposes
``register(app)``; this module only assembles them and turns ``OxstudyError`` into a
one-line message with exit code 2 (never a traceback for bad input).
"""

from __future__ import annotations

import importlib
import sys

import typer
from rich.console import Console

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
    for message in exc.messages:
        err_console.print(f"[bold red]error:[/] {message}", markup=True, highlight=False)


def main(argv: list[str] | None = None) -> None:
    app = build_app()
    try:
        # Non-standalone mode returns typer.Exit codes instead of raising them.
        code = app(args=argv, standalone_mode=False)
    except OxstudyError as exc:
        report_error(exc)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
    except Exception as exc:  # click usage errors arrive here in non-standalone mode
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            sys.exit(2)
        raise
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
