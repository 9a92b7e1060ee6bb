"""The daemon: its plugin socket answers ``status`` as the plugin asks it, its probes answer,
and its checkpoint loads (from a copy) and holds exactly the addresses the daemon serves.
"""

from __future__ import annotations

import json
from typing import Any

from vpccni.doctor.evidence import CheckpointCopy, HttpAnswer, Missing
from vpccni.doctor.result import Result, failed, passed, skipped, warned

SOCKET = ("daemon.socket", "the daemon answers on its plugin socket")
HEALTH = ("daemon.health", "the daemon's liveness and readiness probes pass")
CHECKPOINT = ("daemon.checkpoint", "the checkpoint loads and matches the daemon's pods")
START = (
    "start the daemon: on a cluster `kubectl -n kube-system rollout restart daemonset/vpccni` "
    "and read its logs (`vpccni support-bundle` collects them); on a host `vpccni ipamd`"
)
DOWN = "the daemon is down (see daemon.socket)"


def socket_answer(reply: dict[str, Any] | Missing, socket: str) -> Result:
    """The plugin's ``status`` request gets ``ready``."""
    if isinstance(reply, Missing):
        return failed(*SOCKET, f"{socket}: {reply.why}", START)
    if reply.get("ready") is not True:
        return warned(
            *SOCKET,
            f"{socket} answers but not ready: {reply}",
            "wait for start-up to finish; if it stays so, read the daemon's log",
        )
    return passed(
        *SOCKET, f"{socket} answers ready; {reply.get('available', '?')} addresses ready for pods"
    )


def health(healthz: HttpAnswer | Missing, readyz: HttpAnswer | Missing, up: bool) -> Result:
    """``/healthz`` and ``/readyz`` answer 200 (kubelet restarts or unreadies the pod else)."""
    if not up:
        return skipped(*HEALTH, DOWN)
    problems = []
    for path, answer in (("/healthz", healthz), ("/readyz", readyz)):
        if isinstance(answer, Missing):
            problems.append(f"{path}: {answer.why}")
        elif answer.status != 200:
            problems.append(f"{path} {answer.status}: {_reason(answer.body)}")
    if problems:
        return failed(
            *HEALTH,
            "; ".join(problems),
            "read the reason above and the daemon's log; kubelet restarts a daemon whose "
            "/healthz keeps failing",
        )
    return passed(*HEALTH, "/healthz 200, /readyz 200")


def _reason(body: bytes) -> str:
    try:
        document = json.loads(body)
    except ValueError:
        return body[:200].decode(errors="replace")
    return str(document.get("reason", document)) if isinstance(document, dict) else str(document)


def checkpoint(copy: CheckpointCopy | Missing, served: frozenset[str] | Missing) -> Result:
    """The copy loads, and its assignments are the daemon's (``/v1/pods``) when it runs."""
    if isinstance(copy, Missing):
        return warned(*CHECKPOINT, copy.why, "run the doctor as root on the node")
    if copy.corrupt:
        return failed(
            *CHECKPOINT,
            f"{copy.directory} cannot be loaded: {copy.corrupt}",
            "stop the daemon and restart it with --recover (it moves the files aside and "
            "rebuilds from EC2 and the pod routes; docs/checkpoint.md)",
        )
    loaded = (
        f"{copy.directory}: no checkpoint yet (no pod has had an address)"
        if copy.absent
        else f"{copy.directory} loads: {len(copy.addresses)} assigned, {copy.cooling} cooling"
    )
    if isinstance(served, Missing):
        return passed(*CHECKPOINT, f"{loaded} (not compared: {served.why})")
    if served == copy.addresses:
        return passed(*CHECKPOINT, f"{loaded}, the same addresses the daemon serves")
    only_file = sorted(copy.addresses - served)
    only_daemon = sorted(served - copy.addresses)
    return failed(
        *CHECKPOINT,
        f"{loaded}, but it differs from the daemon's pods: only in the checkpoint "
        f"{only_file or 'none'}, only in the daemon {only_daemon or 'none'}",
        "collect `vpccni support-bundle` and report it; restarting the daemon reloads the "
        "checkpoint",
    )
