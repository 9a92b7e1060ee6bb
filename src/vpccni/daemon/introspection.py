"""Introspection over HTTP: upstream's ``/v1/*`` paths and shapes, plus ``/v1/pods`` and
``/v1/explain``.

Served on ``INTROSPECTION_BIND_ADDRESS`` (default ``127.0.0.1:61679``; ``unix:PATH`` for a Unix
socket). Like upstream (v1.23+), ``/v1/enis`` blanks container ids and interface names so the
output cannot be used to forge a DEL. ``/v1/explain`` is the pool manager's current decision in
the same JSON as ``vpccni explain``, plus ``no_address``: why the next pod would get no address
(``core.no_address``), the same cause the plugin API's ADD error names.
"""

from __future__ import annotations

import base64
import json
import os
import socketserver
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any

from vpccni.core.explain import decision_json
from vpccni.core.no_address import NoAddress, why_no_address
from vpccni.daemon.bootstrap import Node

UPSTREAM_PATHS = (
    "/v1/enis",
    "/v1/eni-configs",
    "/v1/networkutils-env-settings",
    "/v1/ipamd-env-settings",
)
OUR_PATHS = ("/v1/pods", "/v1/explain")


def enis_document(node: Node) -> dict[str, Any]:
    """Upstream's ``/v1/enis``: network card "0" -> totals and ENIs with their CIDRs."""
    service = node.service
    with service.lock:
        store = service.datastore
        assigned = {a.address: a for a in store.assignments()}
        enis: dict[str, Any] = {}
        total = 0
        for view in store.views(service.clock.now()):
            cidrs: dict[str, Any] = {}
            for cidr in view.cidrs:
                network = IPv4Network(cidr.cidr)
                total += cidr.size
                addresses = {str(a): _address(assigned[a]) for a in network if a in assigned}
                cidrs[cidr.cidr] = {
                    "Cidr": {
                        "IP": str(network.network_address),
                        "Mask": base64.b64encode(network.netmask.packed).decode(),
                    },
                    "IPAddresses": addresses,
                    "IsPrefix": cidr.prefix,
                    "AddressFamily": "",
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
                "RouteTableID": info.device_index + 1,
                "SubnetID": "",
            }
        return {"0": {"TotalIPs": total, "AssignedIPs": len(assigned), "ENIs": enis}}


def _address(assignment: Any) -> dict[str, Any]:
    return {
        "Address": str(assignment.address),
        "IPAMKey": {"networkName": assignment.key.network, "containerID": "", "ifName": ""},
        "IPAMMetadata": {
            "k8sPodNamespace": assignment.meta.namespace,
            "k8sPodName": assignment.meta.name,
            "interfacesCount": 1,
        },
        "AssignedTime": assignment.assigned_at,
        "UnassignedTime": None,
    }


def ipamd_env_document(node: Node) -> dict[str, Any]:
    config = node.config
    return {
        "WARM_IP_TARGET": config.warm_ip_target,
        "WARM_ENI_TARGET": config.warm_eni_target,
        "MINIMUM_IP_TARGET": config.minimum_ip_target,
        "WARM_PREFIX_TARGET": config.warm_prefix_target,
        "ENABLE_PREFIX_DELEGATION": config.prefix_delegation,
        "AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG": config.custom_networking,
        "AWS_MANAGE_ENIS_NON_SCHEDULABLE": config.manage_enis_non_schedulable,
        "ENABLE_SUBNET_DISCOVERY": False,
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
    facts = pool.state.facts(pool.lifecycle.node.subnet_id, released)
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


def explain_document(node: Node) -> dict[str, Any]:
    """Ours: the pool manager's decision right now, why a pod would get no address, and what
    it last saw go wrong."""
    decision = node.pool.decide()
    document = decision_json(decision, node.config, node.limits)
    document["no_address"] = no_address_json(no_address_cause(node))
    document["last_error"] = node.pool.state.last_error
    document["errors"] = dict(node.pool.state.errors)
    document["enis"] = [
        {
            "id": view.eni_id,
            "device_index": view.info.device_index,
            "primary": view.info.primary,
            "cidrs": len(view.cidrs),
            "total": sum(c.size for c in view.cidrs),
            "assigned": view.assigned,
            "cooling": view.cooling,
        }
        for view in node.service.views()
    ]
    return document


def routes(node: Node, networkutils: Callable[[], dict[str, Any]]) -> dict[str, Callable[[], Any]]:
    return {
        "/v1/enis": lambda: enis_document(node),
        "/v1/networkutils-env-settings": networkutils,
        "/v1/ipamd-env-settings": lambda: ipamd_env_document(node),
        "/v1/pods": lambda: pods_document(node),
        "/v1/explain": lambda: explain_document(node),
    }


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        path = self.path.split("?")[0].rstrip("/") or "/"
        if path == "/v1/eni-configs":
            self._send(404, {"error": "custom networking (ENIConfig) is not supported yet"})
            return
        table: dict[str, Callable[[], Any]] = getattr(self.server, "routes", {})
        route = table.get(path)
        if route is None:
            self._send(200, {"AvailableCommands": [*UPSTREAM_PATHS, *OUR_PATHS]})
            return
        try:
            self._send(200, route())
        except Exception as error:
            self._send(500, {"error": f"{type(error).__name__}: {error}"})

    def _send(self, status: int, body: Any) -> None:
        data = json.dumps(body, indent=1).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def address_string(self) -> str:
        return "local"


class _Serving:
    routes: dict[str, Callable[[], Any]]


class TcpIntrospection(ThreadingHTTPServer, _Serving):
    daemon_threads = True

    def __init__(self, host: str, port: int, table: dict[str, Callable[[], Any]]) -> None:
        self.routes = table
        super().__init__((host, port), _Handler)


class UnixIntrospection(socketserver.ThreadingMixIn, socketserver.UnixStreamServer, _Serving):
    daemon_threads = True

    def __init__(self, path: Path, table: dict[str, Callable[[], Any]]) -> None:
        self.routes = table
        self.path = path
        if path.is_socket():
            path.unlink()
        path.parent.mkdir(parents=True, exist_ok=True)
        super().__init__(str(path), _Handler)
        os.chmod(path, 0o600)


def serve_introspection(
    bind: str, table: dict[str, Callable[[], Any]]
) -> TcpIntrospection | UnixIntrospection:
    """A server for ``bind`` (``host:port`` or ``unix:PATH``); the caller runs serve_forever."""
    if bind.startswith("unix:"):
        return UnixIntrospection(Path(bind[len("unix:") :]), table)
    host, _, port = bind.rpartition(":")
    return TcpIntrospection(host or "127.0.0.1", int(port), table)
