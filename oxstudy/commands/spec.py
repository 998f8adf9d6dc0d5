"""CLI commands: spec (filled by its issue; registers nothing until then)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this group's commands to the app."""
