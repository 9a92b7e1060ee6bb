"""The EC2 permissions vpccni needs, and what it does when EC2 denies one.

:data:`EC2_ACTIONS` (declared in ``vpccni.core.ec2_actions``, where the manifests read it too) is
the one declared list of EC2 actions the daemon can call in its whole
lifecycle, each with why; the shipped IAM policies (``deploy/iam/``) grant exactly these, and a
test runs a whole daemon lifecycle against the emulator and checks the actions it sent are this
set. :class:`PermissionGate` remembers every ``UnauthorizedOperation`` EC2 answered: the call is
not sent again before its backoff is over (60 s, doubling up to 10 min, per action - per action
and resource for ``CreateTags``, which a tag-scoped policy allows on some ENIs and not on
others), so a missing permission never turns into a loop of denied calls. Each denial is logged
once per backoff window as a ``MissingIAMPermissions`` warning (upstream raises a Kubernetes
event of that name) and shown in ``/v1/explain`` and ``vpccni status``.
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass
from datetime import UTC, datetime

from vpccni.core.aws_types import CloudError, Unauthorized, ec2_error
from vpccni.core.ec2_actions import EC2_ACTIONS, iam_name

log = logging.getLogger("vpccni.ipamd")
__all__ = ["EC2_ACTIONS", "Denial", "Denied", "PermissionGate", "iam_name", "wait_after"]

PER_RESOURCE = frozenset({"CreateTags"})
"""Actions whose denial is remembered per resource: a tag-scoped policy lets the daemon tag its
own ENIs and not another cluster's, and one refusal must not stop the other."""

FIRST_WAIT_SECONDS = 60.0
MAX_WAIT_SECONDS = 600.0
_RESOURCE = re.compile(r"\bon resource: (\S+?)(?: because|\.?\s|\.?$)")
_PERMISSION = re.compile(r"\bnot authorized to perform: ([A-Za-z0-9-]+:[A-Za-z0-9]+)")


def wait_after(denials: int) -> float:
    """The backoff after the ``denials``-th consecutive denial (1-based): 60 s doubling, 10 min
    at most."""
    return min(MAX_WAIT_SECONDS, FIRST_WAIT_SECONDS * 2.0 ** max(denials - 1, 0))


@dataclass
class Denial:
    """One action (and resource, for per-resource actions) EC2 denied, and its backoff."""

    action: str
    """The EC2 API the daemon called."""
    scope: str
    permission: str
    """The IAM action missing: the one AWS named in its message (``ec2:CreateTags`` when a
    tagged CreateNetworkInterface is refused for want of it), else ``ec2:<action>``."""
    resource: str
    """What was denied: the resource AWS named in its message, else what the call was on."""
    message: str
    """EC2's message (with AWS's encoded authorization message, when it gives one)."""
    first_at: float
    last_at: float
    retry_at: float
    denied: int = 1
    """Calls EC2 denied in a row."""
    withheld: int = 0
    """Calls not sent because the backoff was not over."""


class Denied(Unauthorized):
    """EC2 denied the call (or denied it before and its backoff is not over: ``withheld``)."""

    def __init__(self, message: str, *, operation: str, retry_at: float, withheld: bool) -> None:
        super().__init__(message, code="UnauthorizedOperation", operation=operation)
        self.retry_at = retry_at
        self.withheld = withheld


class PermissionGate:
    """Denied actions and their backoff; safe to use from several threads."""

    def __init__(self) -> None:
        self._denials: dict[tuple[str, str], Denial] = {}
        self._logged_until: dict[str, float] = {}
        self._lock = threading.Lock()

    @staticmethod
    def scope(action: str, resource: str) -> str:
        """The key a denial of ``action`` on ``resource`` is remembered under."""
        return resource if action in PER_RESOURCE else ""

    def check(self, action: str, resource: str, now: float) -> None:
        """Raise :class:`Denied` (withheld) when ``action`` was denied and may not be retried
        yet; otherwise return and let the call go."""
        with self._lock:
            denial = self._denials.get((action, self.scope(action, resource)))
            if denial is None or now >= denial.retry_at:
                return
            denial.withheld += 1
            retry_at = denial.retry_at
            text = (
                f"EC2 {action} not sent: {denial.permission} was denied {denial.denied} time(s), "
                f"last at {clock_text(denial.last_at)}; retried after {clock_text(retry_at)} "
                f"({retry_at - now:.0f} s more). EC2 said: {denial.message}"
            )
        raise Denied(text, operation=action, retry_at=retry_at, withheld=True)

    def denied(self, action: str, resource: str, error: CloudError, now: float) -> Denied:
        """Remember that EC2 denied ``action`` on ``resource``; returns the error to raise."""
        message = aws_message(action, error)
        scope = self.scope(action, resource)
        named = _RESOURCE.search(message)
        permission = _PERMISSION.search(message)
        with self._lock:
            denial = self._denials.get((action, scope))
            if denial is None:
                denial = Denial(action, scope, "", "", message, now, now, now, denied=0)
                self._denials[(action, scope)] = denial
            denial.denied += 1
            denial.last_at = now
            denial.message = message
            denial.permission = permission.group(1) if permission else iam_name(action)
            denial.resource = named.group(1) if named else resource
            wait = wait_after(denial.denied)
            denial.retry_at = now + wait
            first_in_window = now >= self._logged_until.get(action, float("-inf"))
            if first_in_window:
                self._logged_until[action] = denial.retry_at
        if first_in_window:
            on = f" on {denial.resource}" if denial.resource else ""
            call = "" if denial.permission == iam_name(action) else f" (calling {action})"
            log.warning(
                "MissingIAMPermissions: EC2 denied %s%s%s (UnauthorizedOperation, %d in a row): "
                "%s; vpccni needs it for %s; grant it to the IAM role vpccni runs with "
                "(deploy/iam/); not retried for %.0f s",
                denial.permission,
                on,
                call,
                denial.denied,
                message,
                EC2_ACTIONS.get(denial.permission.removeprefix("ec2:"), "its work"),
                wait,
            )
        return Denied(str(error), operation=action, retry_at=denial.retry_at, withheld=False)

    def allowed(self, action: str, resource: str) -> None:
        """The call succeeded: forget its denial (the permission was granted)."""
        key = (action, self.scope(action, resource))
        if key not in self._denials:
            return
        with self._lock:
            denial = self._denials.pop(key, None)
            if not any(a == action for a, _ in self._denials):
                self._logged_until.pop(action, None)
        if denial is not None:
            log.info("%s is allowed again (EC2 accepted the call)", iam_name(action))

    def denials(self) -> list[Denial]:
        """Every denial not yet lifted by a success, by action and resource."""
        with self._lock:
            return [Denial(**vars(d)) for _, d in sorted(self._denials.items(), key=lambda i: i[0])]


def aws_message(action: str, error: CloudError) -> str:
    """EC2's own message inside a cloud error (the adapters wrap it with the operation and
    a hint); the whole text when it is not in that shape."""
    text = str(error)
    template = str(ec2_error(action, error.code or "UnauthorizedOperation", "\0"))
    prefix, _, suffix = template.partition("\0")
    if text.startswith(prefix) and text.endswith(suffix) and len(text) >= len(prefix + suffix):
        return text[len(prefix) : len(text) - len(suffix)] if suffix else text[len(prefix) :]
    return text


def clock_text(at: float) -> str:
    """A time on the daemon's clock as UTC, to the second."""
    return datetime.fromtimestamp(at, tz=UTC).strftime("%H:%M:%S UTC")
