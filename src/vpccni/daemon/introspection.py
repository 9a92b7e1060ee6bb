"""Introspection over HTTP: upstream's ``/v1/*`` paths and shapes, plus ``/v1/pods`` and
``/v1/explain``.

Served on ``INTROSPECTION_BIND_ADDRESS`` (default ``127.0.0.1:61679``; ``unix:PATH`` for a Unix
socket, mode 0600, removed at shutdown) by a bounded listener (``daemon.listeners``: 32
connections, a 5 s whole-request deadline, 2 workers). Like upstream (v1.23+), ``/v1/enis``
blanks container ids and interface names so the output cannot be used to forge a DEL;
``/v1/pods`` does the same on TCP and shows them only on the root-only Unix socket.
``/v1/enis`` has upstream's keys and value types (``tests/daemon/test_introspection_shapes.py``
compares them): times as Go's RFC 3339 (``0001-01-01T00:00:00Z`` when unset), every address ever
handed out and not yet reused listed with its ``UnassignedTime`` (cooling ones included), the
primary ENI's ``RouteTableID`` 254 (``main``), as the datapath uses. ``/v1/ipamd-env-settings``
holds upstream's five keys, then ours (the other pool targets and the provisioning variables).
``/v1/explain`` is the pool manager's current decision in the same JSON as ``vpccni explain``,
plus ``cluster``: the cluster source's view (reachable, problem, the Node's max pods),
``no_address``: why the next pod would get no address (``core.no_address``), the same
cause the plugin API's ADD error names, ``placement``: where new ENIs go (custom networking's
ENIConfig, subnet discovery, the subnets known with their free addresses, a placement problem),
each ENI's subnet, and ``missing_permissions``: every EC2 action EC2 denied
(UnauthorizedOperation) and not yet allowed again, with what it was denied on, AWS's message and
when the daemon tries it again (``cloud.permissions``).

``/healthz`` and ``/readyz`` are the kubelet's probes (:class:`Health`): alive when the pool
manager's loop has ticked recently and the plugin API is serving; ready when the daemon would
answer the plugin's ``status`` request as ready. 200 with a small JSON body, else 503 with the
reason. They read a few numbers and flags set by the daemon's threads (no lock, no EC2 call), and
are served on the introspection address even when ``DISABLE_INTROSPECTION`` turns the rest off
(upstream's probes go over gRPC instead).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from ipaddress import IPv4Address, IPv4Network
from typing import Any

from vpccni.cloud.guarded_ec2 import GuardedEc2
from vpccni.cloud.permissions import EC2_ACTIONS
from vpccni.core.explain import decision_json
from vpccni.core.model import PREFIX_LENGTH, Assignment
from vpccni.core.naming import route_table
from vpccni.core.no_address import NoAddress, why_no_address
from vpccni.core.subnets import eniconfig_name
from vpccni.daemon.bootstrap import Node
from vpccni.daemon.cluster import NoClusterSource
from vpccni.daemon.listeners import JSON, Listener, http_listener
from vpccni.settings_eni import ProvisioningSettings

UPSTREAM_PATHS = (
    "/v1/enis",
    "/v1/eni-configs",
    "/v1/networkutils-env-settings",
    "/v1/ipamd-env-settings",
)
OUR_PATHS = ("/v1/pods", "/v1/explain")
HEALTH_PATHS = ("/healthz", "/readyz")
IDLE_SLACK_SECONDS = 10.0
"""Between ticks the loop wakes every tick period; 3 periods plus this without a finished tick
means its thread is dead or stuck outside a tick."""
TICK_BUDGET_SECONDS = 300.0
"""A tick in progress may legitimately last minutes (EC2 calls with their timeouts and retries,
waiting for IMDS to list a new ENI: up to ~4 min); only past 3 periods plus this is it stuck."""
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
GO_ZERO_TIME = "0001-01-01T00:00:00Z"
"""Go's ``time.Time{}`` as ``encoding/json`` writes it: upstream's value for a time never set."""
ADDRESS_FAMILY_V4 = "4"
ENICONFIG_DEFAULT = "default"
"""Upstream's ENIConfig name for a Node that names none (``eniconfig.EniConfigDefault``)."""


def go_time(at: float | None) -> str:
    """``at`` (Unix seconds) as Go's ``time.Time`` marshals to JSON: RFC 3339 in UTC with the
    fraction's trailing zeros dropped (RFC3339Nano); None is Go's zero time."""
    if at is None:
        return GO_ZERO_TIME
    moment = datetime.fromtimestamp(at, tz=UTC)
    fraction = f"{moment.microsecond:06d}".rstrip("0")
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + (f".{fraction}" if fraction else "") + "Z"


def enis_document(node: Node) -> dict[str, Any]:
    """Upstream's ``/v1/enis``: network card "0" -> totals and ENIs with their CIDRs.

    Each CIDR lists the addresses handed out in it, as upstream's sparse map does: the assigned
    ones and the released ones not yet reused (with their ``UnassignedTime``; cooling ones among
    them). ``TotalIPs`` counts every CIDR of both kinds, as upstream's raw counter does.
    """
    service = node.service
    subnets = node.pool.engine.eni_subnets
    with service.lock:
        store = service.datastore
        assigned = {a.address: a for a in store.assignments()}
        released = store.checkpoint_state().cooldowns
        enis: dict[str, Any] = {}
        total = 0
        for view in store.views(service.clock.now()):
            networks = {IPv4Network(cidr.cidr): cidr.prefix for cidr in view.cidrs}
            listed = _addresses_by_cidr(networks, assigned, released)
            cidrs: dict[str, Any] = {}
            for network, prefix in networks.items():
                total += network.num_addresses
                cidrs[str(network)] = {
                    "Cidr": {
                        "IP": str(network.network_address),
                        "Mask": base64.b64encode(network.netmask.packed).decode(),
                    },
                    "IPAddresses": listed.get(network, {}),
                    "IsPrefix": prefix,
                    "AddressFamily": ADDRESS_FAMILY_V4,
                }
            info = view.info
            enis[view.eni_id] = {
                "ID": view.eni_id,
                "IsPrimary": info.primary,
                "IsTrunk": info.trunk,
                "IsEFA": info.efa,
                "DeviceNumber": info.device_index,
                "AvailableIPv4Cidrs": cidrs,
                "IPv6Cidrs": {},
                "IsExcludedForPodIPs": info.excluded,
                "RouteTableID": route_table(info.device_index),
                "SubnetID": subnets.get(view.eni_id, ""),
            }
        return {"0": {"TotalIPs": total, "AssignedIPs": len(assigned), "ENIs": enis}}


def _addresses_by_cidr(
    networks: Mapping[IPv4Network, bool],
    assigned: Mapping[IPv4Address, Assignment],
    released: Mapping[IPv4Address, float],
) -> dict[IPv4Network, dict[str, Any]]:
    """The addresses of ``networks`` as upstream's ``IPAddresses`` maps, by CIDR."""
    found: dict[IPv4Network, dict[str, Any]] = {}
    for address in sorted({*assigned, *released}):
        for length in (32, PREFIX_LENGTH):
            network = IPv4Network((int(address) & (0xFFFFFFFF << (32 - length)), length))
            if network in networks:
                held = assigned.get(address)
                entry = (
                    _assigned_address(held)
                    if held is not None
                    else _released_address(address, released[address])
                )
                found.setdefault(network, {})[str(address)] = entry
                break
    return found


def _assigned_address(assignment: Assignment) -> dict[str, Any]:
    """An assigned address; the container id and interface name are blanked as upstream
    (v1.23+) does, so the output cannot forge a DEL. Metadata fields are left out when empty
    (upstream's ``omitempty``)."""
    meta: dict[str, Any] = {}
    if assignment.meta.namespace:
        meta["k8sPodNamespace"] = assignment.meta.namespace
    if assignment.meta.name:
        meta["k8sPodName"] = assignment.meta.name
    meta["interfacesCount"] = 1
    return {
        "Address": str(assignment.address),
        "IPAMKey": {"networkName": assignment.key.network, "containerID": "", "ifName": ""},
        "IPAMMetadata": meta,
        "AssignedTime": go_time(assignment.assigned_at),
        "UnassignedTime": GO_ZERO_TIME,
    }


def _released_address(address: IPv4Address, released_at: float) -> dict[str, Any]:
    """A released address not yet reused: empty key and metadata, as upstream after a DEL.
    Its ``AssignedTime`` is Go's zero time: vpccni keeps no assignment time once released."""
    return {
        "Address": str(address),
        "IPAMKey": {"networkName": "", "containerID": "", "ifName": ""},
        "IPAMMetadata": {},
        "AssignedTime": GO_ZERO_TIME,
        "UnassignedTime": go_time(released_at),
    }


def ipamd_env_document(node: Node, provisioning: ProvisioningSettings) -> dict[str, Any]:
    """Upstream's ``/v1/ipamd-env-settings`` (its five keys, in its order), then ours: the other
    pool targets and the provisioning variables (``Settings.provisioning``)."""
    config = node.config
    return {
        "WARM_IP_TARGET": config.warm_ip_target,
        "WARM_ENI_TARGET": config.warm_eni_target,
        "AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG": config.custom_networking,
        "AWS_MANAGE_ENIS_NON_SCHEDULABLE": config.manage_enis_non_schedulable,
        "ENABLE_SUBNET_DISCOVERY": config.subnet_discovery,
        "MINIMUM_IP_TARGET": config.minimum_ip_target,
        "WARM_PREFIX_TARGET": config.warm_prefix_target,
        "ENABLE_PREFIX_DELEGATION": config.prefix_delegation,
        **provisioning.document(),
    }


def pods_document(node: Node) -> list[dict[str, Any]]:
    """Ours: every pod interface and its address, ENI and device."""
    service = node.service
    with service.lock:
        return [
            {
                "network": a.key.network,
                "container_id": a.key.container_id,
                "ifname": a.key.ifname,
                "namespace": a.meta.namespace,
                "name": a.meta.name,
                "address": str(a.address),
                "eni": service.datastore.eni_of(a.address).eni_id,
                "assigned_at": a.assigned_at,
            }
            for a in service.datastore.assignments()
        ]


def no_address_cause(node: Node) -> NoAddress | None:
    """Why an ADD would get no address right now (None when an address is ready)."""
    service, pool = node.service, node.pool
    with service.lock:
        now = service.clock.now()
        views = service.datastore.views(now)
        released = tuple(service.datastore.checkpoint_state().cooldowns.values())
    facts = pool.state.facts(pool.lifecycle.node.subnet_id, released, pool.engine.policy)
    return why_no_address(views, node.config, node.limits, facts, now)


def no_address_json(cause: NoAddress | None) -> dict[str, Any]:
    """The cause as ``/v1/explain`` shows it under ``no_address``."""
    if cause is None:
        return {"reason": None, "message": "an address is ready for the next pod"}
    return {
        "reason": cause.reason,
        "message": cause.message,
        "action": cause.action,
        "retryable": cause.retryable,
    }


def missing_permissions_json(node: Node) -> list[dict[str, Any]]:
    """The EC2 actions EC2 denied and that have not succeeded since, as ``/v1/explain`` shows
    them (empty when the EC2 port keeps no permission gate)."""
    ec2 = node.pool.lifecycle.ec2
    if not isinstance(ec2, GuardedEc2):
        return []
    now = node.service.clock.now()
    return [
        {
            "action": denial.permission,
            "call": denial.action,
            "resource": denial.resource,
            "message": denial.message,
            "needed_for": EC2_ACTIONS.get(denial.permission.removeprefix("ec2:"))
            or EC2_ACTIONS.get(denial.action, ""),
            "denied_calls": denial.denied,
            "withheld_calls": denial.withheld,
            "first_denied_at": denial.first_at,
            "last_denied_at": denial.last_at,
            "retry_at": denial.retry_at,
            "retry_in_seconds": round(max(denial.retry_at - now, 0.0), 1),
        }
        for denial in ec2.permissions.denials()
    ]


def explain_document(node: Node) -> dict[str, Any]:
    """Ours: the pool manager's decision right now, why a pod would get no address, the IAM
    permissions EC2 denied, and what it last saw go wrong."""
    decision = node.pool.decide()
    # The limits the pool works to: less the ENI slots unmanaged ENIs take, as upstream counts.
    document = decision_json(decision, node.config, node.pool.engine.pool_limits)
    document["no_address"] = no_address_json(no_address_cause(node))
    document["missing_permissions"] = missing_permissions_json(node)
    document["last_error"] = node.pool.state.last_error
    document["errors"] = dict(node.pool.state.errors)
    document["takeover"] = node.takeover.as_json() if node.takeover is not None else None
    document["cluster"] = cluster_json(node)
    engine = node.pool.engine
    subnets = engine.pool_subnets()
    placement = document["placement"] = engine.placement.status(subnets)
    free = {s["id"]: s["free"] for s in placement["subnets"]}
    document["enis"] = [
        {
            "id": view.eni_id,
            "device_index": view.info.device_index,
            "primary": view.info.primary,
            "excluded": view.info.excluded,
            "subnet": subnets.get(view.eni_id),
            "subnet_free": free.get(subnets.get(view.eni_id, "")),
            "cidrs": len(view.cidrs),
            "total": sum(c.size for c in view.cidrs),
            "assigned": view.assigned,
            "cooling": view.cooling,
        }
        for view in node.service.views()
    ]
    return document


def cluster_json(node: Node) -> dict[str, Any]:
    """The cluster source's view (docs/kubernetes.md): whether the API answers and why not, the
    Node's name and max pods, the ENIConfig names."""
    view = node.cluster.view()
    return {
        "reachable": view.reachable,
        "problem": view.problem,
        "generation": view.generation,
        "node": None
        if view.node is None
        else {
            "name": view.node.name,
            "max_pods": view.node.max_pods,
            "unschedulable": view.node.unschedulable,
        },
        "eniconfigs": sorted(view.eniconfigs),
    }


@dataclass(frozen=True)
class Answer:
    """A route's answer with a status other than 200."""

    status: int
    body: Any


def eni_configs_document(node: Node) -> Any:
    """Upstream's ``/v1/eni-configs``: the node's ENIConfig name as a JSON string (``"default"``
    when the Node names none); 404 while a cluster source cannot read the Node, as upstream
    answers when its API call fails. A daemon with no cluster source and custom networking off
    answers ``"default"``: the name selects nothing then, and upstream, which always reads the
    Node, answers the same for an unlabelled one."""
    view = node.cluster.view()
    config = node.config
    if view.node is None:
        if not config.custom_networking and isinstance(node.cluster, NoClusterSource):
            return ENICONFIG_DEFAULT
        reason = view.problem or "the Node has not been read yet"
        return Answer(404, {"error": f"cannot read this node's Node object: {reason}"})
    return eniconfig_name(view.node, config.eniconfig_label, config.eniconfig_annotation)


def routes(
    node: Node, networkutils: Callable[[], dict[str, Any]], provisioning: ProvisioningSettings
) -> dict[str, Callable[[], Any]]:
    return {
        "/v1/enis": lambda: enis_document(node),
        "/v1/eni-configs": lambda: eni_configs_document(node),
        "/v1/networkutils-env-settings": networkutils,
        "/v1/ipamd-env-settings": lambda: ipamd_env_document(node, provisioning),
        "/v1/pods": lambda: pods_document(node),
        "/v1/explain": lambda: explain_document(node),
    }


@dataclass
class Health:
    """What the probes read: the pool loop's heartbeat, the plugin API listener, readiness.

    The pool loop calls :meth:`tick_started` and :meth:`tick_finished` around every tick; the
    times are the process's monotonic clock (never the emulator's, which tests move by hours).
    Plain attribute writes from one thread and reads from another: no lock needed.
    """

    tick_seconds: float
    rpc_serving: Callable[[], bool] = lambda: True
    ready: Callable[[], bool] = lambda: True
    monotonic: Callable[[], float] = time.monotonic
    ticking_since: float | None = None
    last_tick: float = field(default=0.0)

    def __post_init__(self) -> None:
        self.last_tick = self.monotonic()

    @property
    def idle_limit(self) -> float:
        return 3 * self.tick_seconds + IDLE_SLACK_SECONDS

    @property
    def tick_limit(self) -> float:
        return 3 * self.tick_seconds + TICK_BUDGET_SECONDS

    def tick_started(self) -> None:
        self.ticking_since = self.monotonic()

    def tick_finished(self) -> None:
        self.last_tick = self.monotonic()
        self.ticking_since = None

    def liveness(self) -> tuple[int, dict[str, Any]]:
        """200 when the loop ticked recently (or is inside a tick not yet overdue) and the plugin
        API is serving; else 503 with the reason."""
        now = self.monotonic()
        since = self.ticking_since
        loop: dict[str, Any] = {
            "last_tick_seconds_ago": round(now - self.last_tick, 3),
            "in_tick_seconds": None if since is None else round(now - since, 3),
            "tick_seconds": self.tick_seconds,
        }
        reason = None
        if since is not None and now - since > self.tick_limit:
            reason = (
                f"the pool manager has been inside one tick for {now - since:.1f} s (limit "
                f"{self.tick_limit:g} s: 3 ticks of {self.tick_seconds:g} s + "
                f"{TICK_BUDGET_SECONDS:g} s for EC2 and IMDS waits)"
            )
        elif since is None and now - self.last_tick > self.idle_limit:
            reason = (
                f"the pool manager loop has not ticked for {now - self.last_tick:.1f} s (limit "
                f"{self.idle_limit:g} s: 3 ticks of {self.tick_seconds:g} s + "
                f"{IDLE_SLACK_SECONDS:g} s)"
            )
        elif not self.rpc_serving():
            reason = "the plugin API listener is not serving"
        if reason is not None:
            return 503, {"status": "unhealthy", "reason": reason, "pool_loop": loop}
        return 200, {"status": "ok", "pool_loop": loop, "plugin_api": "serving"}

    def readiness(self) -> tuple[int, dict[str, Any]]:
        """200 when the plugin's ``status`` request would be answered ready; else 503."""
        if not self.rpc_serving():
            return 503, {"ready": False, "reason": "the plugin API listener is not serving"}
        if not self.ready():
            return 503, {"ready": False, "reason": "ipamd is stopping (terminating)"}
        return 200, {"ready": True}


def _answer(
    table: dict[str, Callable[[], Any]], health: Health | None, path: str
) -> tuple[int, str, bytes]:
    path = path.rstrip("/") or "/"
    body: Any
    if health is not None and path in HEALTH_PATHS:
        status, body = health.liveness() if path == "/healthz" else health.readiness()
        return status, JSON, json.dumps(body).encode()
    if not table:
        status, body = (
            404,
            {
                "error": "introspection is disabled (DISABLE_INTROSPECTION); only /healthz and "
                "/readyz are served"
            },
        )
    elif path in table:
        status, body = 200, table[path]()
        if isinstance(body, Answer):
            status, body = body.status, body.body
    else:
        status, body = 200, {"AvailableCommands": [*UPSTREAM_PATHS, *OUR_PATHS, *HEALTH_PATHS]}
    return status, JSON, json.dumps(body, indent=1).encode()


def serve_introspection(
    bind: str, table: dict[str, Callable[[], Any]], health: Health | None = None
) -> Listener:
    """A bounded listener for ``bind`` (``host:port`` or ``unix:PATH``); run serve_forever.

    On TCP, which any local user can reach, ``/v1/pods`` blanks container ids and interface
    names as ``/v1/enis`` does; the ``0600`` Unix socket (root only) shows them. With
    ``health``, ``/healthz`` and ``/readyz`` are served too; an empty ``table``
    (``DISABLE_INTROSPECTION``) serves only those two.
    """
    if not bind.startswith("unix:"):
        pods = table.get("/v1/pods")
        if pods is not None:
            table = {**table, "/v1/pods": lambda: blank_keys(pods())}
    return http_listener(
        bind,
        lambda path: _answer(table, health, path),
        "introspection",
        "INTROSPECTION_BIND_ADDRESS",
    )


def blank_keys(pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``/v1/pods`` without what could forge a DEL (container id, interface name)."""
    return [{**pod, "container_id": "", "ifname": ""} for pod in pods]


def serve_metrics(bind: tuple[str, int], exposition: Callable[[], bytes]) -> Listener:
    """``/metrics`` (``exposition()``, Prometheus text) on ``bind`` by a bounded listener."""

    def answer(path: str) -> tuple[int, str, bytes]:
        if path == "/metrics":
            return 200, METRICS_CONTENT_TYPE, exposition()
        return 404, JSON, b'{"error": "not found; Prometheus metrics are at /metrics"}'

    host, port = bind
    return http_listener(f"{host}:{port}", answer, "metrics", "--metrics-bind")
