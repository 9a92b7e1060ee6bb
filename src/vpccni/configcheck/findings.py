"""One finding of ``vpccni config check``, its severity, and the report as text or JSON.

Severities: ``info`` (a fact worth knowing: a value that differs from the default, a variable
vpccni does not need), ``warn`` (something will not behave as the file says: upstream replaces
the value, the variable is unknown or inert, the managed add-on will overwrite the field),
``error`` (vpccni refuses to start with it, or the combination cannot work). The exit status is
that of the worst finding: 0 (nothing, or only info), 1 (warn), 2 (error).
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any


class Severity(IntEnum):
    """How bad a finding is; its value is the exit status it calls for."""

    INFO = 0
    WARN = 1
    ERROR = 2

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Finding:
    """One thing the check found about one variable or field."""

    severity: Severity
    kind: str
    """``refused``, ``replaced``, ``unknown``, ``not-read``, ``changed``, ``inert``,
    ``combination``, ``instance-type``, ``managed-field``, ``unresolved``, ``containers``."""
    subject: str
    """The variable (``WARM_IP_TARGET``) or field (``spec.template.spec.serviceAccountName``)."""
    message: str
    upstream: str = ""
    """What upstream's aws-node does with it, when that differs from what the file says."""
    fix: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "severity": self.severity.label,
            "kind": self.kind,
            "subject": self.subject,
            "message": self.message,
            "upstream": self.upstream or None,
            "fix": self.fix or None,
        }


def worst(findings: Sequence[Finding]) -> Severity:
    """The highest severity among ``findings`` (INFO when there are none)."""
    return max((f.severity for f in findings), default=Severity.INFO)


def ordered(findings: Sequence[Finding]) -> list[Finding]:
    """Worst first, then by subject, keeping the order found within one subject."""
    return sorted(findings, key=lambda f: (-f.severity, f.subject))


def counts(findings: Sequence[Finding]) -> str:
    """ "1 error, 2 warnings, 3 notes" (only the non-zero ones; "no findings" when none)."""
    words = {Severity.ERROR: "error", Severity.WARN: "warning", Severity.INFO: "note"}
    parts = []
    for severity in (Severity.ERROR, Severity.WARN, Severity.INFO):
        number = sum(1 for f in findings if f.severity == severity)
        if number:
            parts.append(f"{number} {words[severity]}{'s' if number != 1 else ''}")
    return ", ".join(parts) or "no findings"


def render(title: str, findings: Sequence[Finding], width: int = 100) -> str:
    """The report as a person reads it: one block per finding, worst first."""
    lines = [title, ""]
    for finding in ordered(findings):
        head = f"{finding.severity.label.upper():<5}  {finding.subject}: "
        lines += _wrapped(head, finding.message, width)
        if finding.upstream:
            lines += _wrapped("       upstream: ", finding.upstream, width)
        if finding.fix:
            lines += _wrapped("       fix: ", finding.fix, width)
    if not findings:
        lines.append("nothing to report: every setting is valid and as shipped")
    status = worst(findings)
    verdict = {
        Severity.INFO: "passes",
        Severity.WARN: "passes with warnings",
        Severity.ERROR: "fails",
    }[status]
    lines += ["", f"result: {verdict} ({counts(findings)}); exit status {int(status)}"]
    return "\n".join(lines)


def _wrapped(head: str, text: str, width: int) -> list[str]:
    indent = " " * 7
    return textwrap.wrap(
        text,
        width=width,
        initial_indent=head,
        subsequent_indent=indent,
        break_long_words=False,
        break_on_hyphens=False,
    ) or [head.rstrip()]
