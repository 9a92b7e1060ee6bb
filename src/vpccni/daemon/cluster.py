"""The daemon's view of the Kubernetes cluster: which source runs, the start-up wait, max pods.

A :class:`~vpccni.ports.ClusterSource` gives the daemon a
:class:`~vpccni.core.cluster.ClusterView`: the Kubernetes API (``adapters.kubernetes_source``),
a directory of ENIConfig YAML with node labels from the command line
(``adapters.eniconfig_files``), or nothing (:class:`NoClusterSource`); :func:`open_source`
picks it from the settings. The daemon keeps the source on its node object (``Node.cluster``),
so the pool engine reads ``view()`` each tick.

Start-up (:func:`wait_for_api`), as upstream: with custom networking the daemon waits for the
API to answer, retrying every 2 s, since it cannot place an ENI without the node's ENIConfig;
otherwise it waits at most 30 s and starts without it (the source keeps trying in the
background).

Max pods (:func:`max_pods_choice`), as upstream: the Node's ``status.capacity.pods`` once the
API has given it (re-read whenever the Node changes), else ``--max-pods``, else the
``eni-max-pods.txt`` figure; :func:`follow_max_pods` applies a change to the running pool.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from typing import TYPE_CHECKING

from vpccni.adapters.eniconfig_files import FileSource
from vpccni.adapters.kubernetes_api import KubeApi, KubeEndpoint
from vpccni.adapters.kubernetes_source import KubernetesSource
from vpccni.core.cluster import ClusterView, NodeInfo
from vpccni.core.config import IpamConfig
from vpccni.core.maxpods import default_max_pods
from vpccni.core.pool_rules import NodeLimits
from vpccni.ports import ClusterSource
from vpccni.settings import ClusterSettings

if TYPE_CHECKING:
    from vpccni.daemon.bootstrap import Node

log = logging.getLogger("vpccni.ipamd")

NO_API = "no Kubernetes API access"
BLOCKING_RETRY_SECONDS = 2.0
"""With custom networking, start-up retries the API this often until it answers (upstream)."""
OPTIONAL_WAIT_SECONDS = 30.0
"""Without it, start-up waits this long for the API, then goes on without (upstream)."""
FROM_NODE = "the Node's status.capacity.pods"
FROM_FLAG = "--max-pods"
FROM_TABLE = "eni-max-pods.txt"


class NoClusterSource:
    """No cluster at all: an empty view that says why."""

    def __init__(self, problem: str = NO_API) -> None:
        self._view = ClusterView(problem=problem)

    def view(self) -> ClusterView:
        return self._view

    def close(self) -> None:
        """Nothing to stop."""


def open_source(cluster: ClusterSettings, ipam: IpamConfig) -> ClusterSource:
    """The source the settings ask for, started (a bad ENIConfig file raises InvalidInput)."""
    if cluster.source == "files":
        node = NodeInfo(
            name=cluster.node_name,
            labels=dict(cluster.node_labels),
            annotations=dict(cluster.node_annotations),
        )
        return FileSource(cluster.eniconfig_dir, node)
    if cluster.source == "api" and cluster.api_url is not None:
        if not cluster.node_name:
            return NoClusterSource(
                "MY_NODE_NAME is not set, so the Node (labels, max pods) is not read; set it to "
                "the node's name (the DaemonSet takes it from spec.nodeName)"
            )
        api = KubeApi(KubeEndpoint(cluster.api_url, cluster.token_file, cluster.ca_file))
        return KubernetesSource(
            api,
            cluster.node_name,
            eniconfigs=ipam.custom_networking,
            retry_cap_until_synced=BLOCKING_RETRY_SECONDS if ipam.custom_networking else None,
        )
    return NoClusterSource(f"{NO_API} ({cluster.note})" if cluster.note else NO_API)


def describe(cluster: ClusterSettings) -> str:
    """Which source runs, for the start-up log."""
    if cluster.source == "files":
        where = cluster.eniconfig_dir or "no --eniconfig-dir"
        return f"ENIConfigs from {where}, node labels from the command line"
    if cluster.source == "api":
        how = "in-cluster service account" if cluster.in_cluster else "--kube-api"
        return f"the Kubernetes API at {cluster.api_url} ({how}), Node {cluster.node_name!r}"
    return NO_API + (f" ({cluster.note})" if cluster.note else "")


def wait_for_api(
    source: ClusterSource,
    ipam: IpamConfig,
    stop: threading.Event,
    optional_wait: float = OPTIONAL_WAIT_SECONDS,
) -> bool:
    """Upstream's start-up rule; returns False only when ``stop`` was set while blocking."""
    if not isinstance(source, KubernetesSource):
        return True
    if ipam.custom_networking:
        log.info("custom networking: waiting for the Kubernetes API (the node's ENIConfig)")
        while not source.wait_synced(30.0, stop):
            if stop.is_set():
                return False
            log.warning(
                "custom networking needs the Kubernetes API and it has not answered: %s; "
                "retrying every %.0f s",
                source.view().problem,
                BLOCKING_RETRY_SECONDS,
            )
        return True
    if not source.wait_synced(optional_wait, stop) and not stop.is_set():
        log.warning(
            "the Kubernetes API did not answer in %g s (%s); starting without it and trying "
            "again in the background",
            optional_wait,
            source.view().problem,
        )
    return True


def table_max_pods(limits: NodeLimits, custom_networking: bool = False) -> int:
    """The ``eni-max-pods.txt`` figure for the instance (every ENI's secondary addresses + 2);
    with custom networking ``vpccni max-pods --custom-networking``'s (the primary ENI carries no
    pod address)."""
    return default_max_pods(limits.max_enis - int(custom_networking), limits.ipv4_per_eni)


def max_pods_choice(view: ClusterView, flag: int | None, table: int) -> tuple[int, str]:
    """The daemon's max pods and where it comes from: the Node's capacity, the flag, the table.

    The Node's figure counts once the API has given it, also while the API is briefly
    unreachable afterwards (the last Node read stands). The file source's node has none.
    """
    if view.node is not None and view.node.max_pods:
        return view.node.max_pods, FROM_NODE
    if flag is not None:
        return flag, FROM_FLAG
    return table, FROM_TABLE


def startup_max_pods_warning(
    choice: tuple[int, str], ipam: IpamConfig, limits: NodeLimits
) -> str | None:
    """Prefix mode with the secondary-IP table's figure caps the node far below what it holds."""
    value, source = choice
    if source != FROM_TABLE or not ipam.prefix_delegation:
        return None
    return (
        f"prefix delegation is on but max pods is {value}, the {FROM_TABLE} figure for "
        f"secondary IPs (the Node's status.capacity.pods is not known): the node stops "
        f"at {value} pods though its prefixes hold "
        f"{limits.max_enis * limits.slots_per_eni * 16}; set --max-pods to kubelet's max pods "
        "(e.g. --max-pods 110), or give the daemon API access so it reads the Node's capacity"
    )


def follow_max_pods(node: Node, flag: int | None) -> int | None:
    """Apply a changed max pods (the Node's capacity appeared or changed); returns it or None."""
    table = table_max_pods(node.limits, node.config.custom_networking)
    value, source = max_pods_choice(node.cluster.view(), flag, table)
    if value == node.limits.max_pods:
        return None
    log.info("max pods %d -> %d (%s)", node.limits.max_pods, value, source)
    set_max_pods(node, value)
    return value


def set_max_pods(node: Node, value: int) -> None:
    """The node, its pool manager and its engine all decide with the new figure."""
    limits = replace(node.limits, max_pods=value)
    node.limits = limits
    node.pool.limits = limits
    node.pool.engine.limits = limits
