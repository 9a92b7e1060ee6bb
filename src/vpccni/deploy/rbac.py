"""The Kubernetes API calls vpccni's node pods make, and the ClusterRole rules that allow them.

One declared tuple, :data:`KUBERNETES_API_CALLS`, is the whole truth: the ClusterRole's rules are
generated from it and nothing else, and the pod mounts a service-account token only when it is
not empty. Today the daemon calls no Kubernetes API (it learns everything from IMDS, EC2 and the
CNI plugin), so the tuple is empty, the rules are empty and no token is mounted; a test checks
that no module of vpccni imports a Kubernetes client or reads the in-cluster credentials.
Upstream's ``aws-node`` role reads pods, namespaces, nodes and ENIConfigs and writes nodes and
events because its ipamd does; vpccni's role grows call by call as its daemon does.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ApiCall:
    """One kind of request: ``verb`` on ``resource`` of API ``group`` ("" is the core group)."""

    group: str
    resource: str
    verb: str
    why: str


KUBERNETES_API_CALLS: tuple[ApiCall, ...] = ()
"""Every Kubernetes API request vpccni's node pods make (none today)."""


def cluster_role_rules(
    calls: tuple[ApiCall, ...] = KUBERNETES_API_CALLS,
) -> list[dict[str, object]]:
    """One rule per (group, resource), its verbs sorted; rules in a stable order."""
    verbs: dict[tuple[str, str], set[str]] = {}
    for call in calls:
        verbs.setdefault((call.group, call.resource), set()).add(call.verb)
    return [
        {"apiGroups": [group], "resources": [resource], "verbs": sorted(found)}
        for (group, resource), found in sorted(verbs.items())
    ]


def needs_token(calls: tuple[ApiCall, ...] = KUBERNETES_API_CALLS) -> bool:
    """Whether the pods need a service-account token (only to call the API)."""
    return bool(calls)
