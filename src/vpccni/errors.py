"""The one error family people see from vpccni.

Every error a user can meet derives from :class:`VpccniError` and carries a message that says
what happened, why, and what to do next. Library errors are translated into these at the edges;
the CLI prints ``str(error)`` on one line and exits non-zero, never a traceback.
"""

from __future__ import annotations


class VpccniError(Exception):
    """Root of every error vpccni reports to a person."""

    exit_code = 1


class InvalidInput(VpccniError):
    """A value given by the user (flag, argument, environment variable) is not acceptable."""

    exit_code = 2


class UnknownInstanceType(InvalidInput):
    """The instance type is not in vpccni's shipped instance table."""

    def __init__(self, name: str, known_count: int, suggestions: tuple[str, ...]) -> None:
        hint = f" (did you mean {' or '.join(suggestions)}?)" if suggestions else ""
        super().__init__(
            f"unknown instance type {name!r}: not among the {known_count} types vpccni knows"
            f"{hint}; run 'vpccni limits --list' to see them"
        )
        self.name = name
        self.suggestions = suggestions


class MissingFact(VpccniError):
    """A computation needs a fact about an instance type that the shipped data lacks."""
