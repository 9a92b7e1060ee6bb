"""The Kubernetes API calls vpccni's node pods make, and the ClusterRole rules that allow them.

One declared tuple, :data:`KUBERNETES_API_CALLS`, is the whole truth: the ClusterRole's rules are
generated from it and nothing else, and the pod mounts a service-account token only when it is
not empty. The daemon reads two things from the cluster (``vpccni.adapters.kubernetes_source``):
its own Node (labels and annotations naming its ENIConfig, ``status.capacity.pods``), listed
with a ``metadata.name`` field selector and watched, and the ENIConfigs, listed and watched.
Nothing is written and nothing is fetched by name (``get``): a list's resourceVersion is the
cluster's current one, which a watch can resume from. Tests tie this tuple to the adapter's
``API_CALLS`` and run the adapter against a test API server that enforces exactly these rules.
Upstream's ``aws-node`` role also reads pods and namespaces and writes nodes and events because
its ipamd does; vpccni's role grows call by call as its daemon does.
"""

from __future__ import annotations

from dataclasses import dataclass

from vpccni.core.cluster import ENICONFIG_GROUP, ENICONFIG_PLURAL


@dataclass(frozen=True)
class ApiCall:
    """One kind of request: ``verb`` on ``resource`` of API ``group`` ("" is the core group)."""

    group: str
    resource: str
    verb: str
    why: str


_NODE = "this node's labels, annotations (its ENIConfig name) and status.capacity.pods (max pods)"
_ENICONFIGS = "custom networking: the subnet and security groups of the node's ENIConfig"
KUBERNETES_API_CALLS: tuple[ApiCall, ...] = (
    ApiCall("", "nodes", "list", _NODE + ", with fieldSelector metadata.name=MY_NODE_NAME"),
    ApiCall("", "nodes", "watch", _NODE + ": changes, from the list's resourceVersion"),
    ApiCall(ENICONFIG_GROUP, ENICONFIG_PLURAL, "list", _ENICONFIGS),
    ApiCall(ENICONFIG_GROUP, ENICONFIG_PLURAL, "watch", _ENICONFIGS + ": changes"),
)
"""Every Kubernetes API request vpccni's node pods make."""


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
