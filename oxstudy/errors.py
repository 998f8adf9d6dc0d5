"""User-facing errors.

Anything raised as an ``OxstudyError`` is bad input or an unreachable resource, not a
bug: the CLI prints it as one line per message and exits with code 2, no traceback.
"""

from __future__ import annotations


class OxstudyError(Exception):
    """An error caused by the user's input; printed without a traceback, exit code 2."""

    def __init__(self, *messages: str) -> None:
        self.messages = [m for m in messages if m] or ["error"]
        super().__init__("\n".join(self.messages))


class SpecError(OxstudyError):
    """A study spec (or claims file) failed to load or validate. One message per problem,
    each formatted ``FILE:LINE: path.to.field: message``."""


class InputError(OxstudyError):
    """A results table, lm-eval directory or other input file is malformed."""


class ResourceError(OxstudyError):
    """A model, dataset or task could not be reached (e.g. a hub id while offline)."""
