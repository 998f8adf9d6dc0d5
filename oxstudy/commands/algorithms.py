"""CLI commands: ``oxstudy algorithms`` (the method registry)."""

from __future__ import annotations

import json

import typer


def algorithms(
    name: str = typer.Argument(None, help="Show one method in full (paper, loss, defaults)."),
    family: str = typer.Option(None, "--family", help="Only this family: sft, offline-preference, online-rl."),
    as_json: bool = typer.Option(False, "--json", help="Print the registry as JSON on stdout."),
) -> None:
    """List the post-training methods a spec can use, with the TRL trainer each runs through.

    Columns: name, family, data it trains on, whether it keeps a reference model, trainer, and
    the tags the leverage analysis groups by (paradigm, online, loss family). With --json (or a
    method name), each method also shows the objective actually run (TRL loss type or oxstudy
    override), its two default profiles (paper; OXRL, with the source of each value) and the
    settings it accepts and rejects (docs/algorithms.md).

    Example: oxstudy algorithms --family offline-preference; oxstudy algorithms rdpo
    """
    from oxstudy.algorithms import registry
    from oxstudy.errors import InputError

    if name is not None:
        try:
            info = registry.get(name)
        except KeyError as exc:
            raise InputError(f"algorithms: {exc.args[0]}") from None
        if as_json:
            typer.echo(json.dumps({"algorithms": [info.as_dict()]}, indent=2))
            return
        for key, value in info.as_dict().items():
            typer.echo(f"{key:>16}: {value}")
        return
    infos = [registry.get(n) for n in registry.names()]
    if family is not None:
        families = sorted({info.family for info in infos})
        if family not in families:
            raise InputError(f"--family: unknown family {family!r} (known: {', '.join(families)})")
        infos = [info for info in infos if info.family == family]
    if as_json:
        typer.echo(json.dumps({"algorithms": [info.as_dict() for info in infos]}, indent=2))
        return

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{len(infos)} algorithms", title_justify="left")
    for column in ("name", "family", "data", "reference", "trainer", "paradigm", "online", "loss family"):
        table.add_column(column, no_wrap=True)
    for info in infos:
        table.add_row(
            info.name + (f" ({', '.join(info.aliases)})" if info.aliases else ""),
            info.family, info.data, "yes" if info.needs_reference else "no", info.trainer,
            info.tags["paradigm"], "yes" if info.tags["online"] else "no", info.tags["loss_family"],
        )
    console = Console()
    if not console.is_terminal:  # piped output: don't squeeze the table into 80 columns
        console = Console(width=200)
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add this group's commands to the app."""
    app.command("algorithms")(algorithms)
