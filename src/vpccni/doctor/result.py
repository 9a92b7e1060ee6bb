"""One check's verdict and how verdicts add up to the command's exit status.

A check is ``pass``, ``warn`` or ``fail``; ``skip`` when it could not apply (no pod namespace to
test from, the daemon is down so its pool cannot be read, no manifest given), and then its
evidence says why. The exit status is that of the worst verdict: 0 pass (or skip), 1 warn,
2 fail.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any


class Status(Enum):
    """A verdict, ordered by severity."""

    PASS = "pass"
    SKIP = "skip"
    WARN = "warn"
    FAIL = "fail"

    @property
    def exit_status(self) -> int:
        return {"pass": 0, "skip": 0, "warn": 1, "fail": 2}[self.value]


SEVERITY = (Status.PASS, Status.SKIP, Status.WARN, Status.FAIL)


@dataclass(frozen=True)
class Result:
    """What one check found: ``check`` is its id (``group.name``), ``evidence`` what it saw,
    ``fix`` the one line that makes it pass (empty when it passes or was skipped)."""

    check: str
    title: str
    status: Status
    evidence: str
    fix: str = ""

    @property
    def group(self) -> str:
        return self.check.split(".", 1)[0]

    def to_json(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "title": self.title,
            "status": self.status.value,
            "evidence": self.evidence,
            "fix": self.fix,
        }


def passed(check: str, title: str, evidence: str) -> Result:
    return Result(check, title, Status.PASS, evidence)


def skipped(check: str, title: str, why: str) -> Result:
    return Result(check, title, Status.SKIP, why)


def warned(check: str, title: str, evidence: str, fix: str) -> Result:
    return Result(check, title, Status.WARN, evidence, fix)


def failed(check: str, title: str, evidence: str, fix: str) -> Result:
    return Result(check, title, Status.FAIL, evidence, fix)


def worst(results: list[Result]) -> Status:
    """The most severe verdict (PASS for no results)."""
    return max((r.status for r in results), key=SEVERITY.index, default=Status.PASS)


def counts(results: list[Result]) -> dict[str, int]:
    """How many checks ended in each verdict."""
    return {status.value: sum(1 for r in results if r.status is status) for status in SEVERITY}
