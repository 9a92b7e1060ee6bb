"""``vpccni status``: the node's pool as a table (each ENI with its subnet and that subnet's free
addresses), read from ipamd's introspection endpoint, where new ENIs go (custom networking's
ENIConfig or subnet discovery, the subnets known, a placement problem), why the next pod would get
no address (the same cause as the ADD error), and every IAM permission EC2 denied the daemon.

The endpoint is ``host:port`` (default ``127.0.0.1:61679``) or ``unix:PATH``; ``--netns NAME``
enters that network namespace first (root only), for a daemon running inside one.
"""

from __future__ import annotations

import argparse
import ctypes
import http.client
import json
import os
import socket
from datetime import UTC, datetime
from typing import Any

from vpccni.cli.output import FORMATS, columns, to_json
from vpccni.errors import InvalidInput, VpccniError
from vpccni.settings import BIND_ACCEPTED, parse_introspection_bind

CLONE_NEWNET = 0x40000000


def register(subparsers: Any) -> None:
    """Add the ``status`` subcommand."""
    parser = subparsers.add_parser(
        "status",
        help="show the node's warm pool (from ipamd's introspection endpoint)",
        description="Show ENIs, addresses assigned / free / cooling, pods, and why the pool is "
        "or is not growing.",
    )
    parser.add_argument(
        "--introspection", default="127.0.0.1:61679", metavar="ADDR", help="host:port or unix:PATH"
    )
    parser.add_argument("--netns", help="network namespace to enter first (root)")
    parser.add_argument(
        "--format", choices=FORMATS, default="table", help="table for people, json for tools"
    )
    parser.set_defaults(run=run)


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def fetch(address: str, path: str, timeout: float = 5.0) -> Any:
    """GET ``path`` from the introspection endpoint and decode the JSON."""
    connection: http.client.HTTPConnection
    if address.startswith("unix:"):
        connection = _UnixConnection(address[len("unix:") :], timeout)
    else:
        host, _, port = address.rpartition(":")
        connection = http.client.HTTPConnection(host or "127.0.0.1", int(port), timeout=timeout)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
    except (OSError, http.client.HTTPException) as error:
        raise VpccniError(
            f"cannot reach ipamd's introspection endpoint at {address}: {error}; is "
            "`vpccni ipamd` running (and in this network namespace)?"
        ) from None
    finally:
        connection.close()
    return json.loads(body)


def enter_netns(name: str) -> None:
    """Move this process into network namespace ``name`` (by name or path)."""
    path = name if "/" in name else f"/var/run/netns/{name}"
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as error:
        raise InvalidInput(f"cannot open network namespace {path}: {error}") from None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise InvalidInput(
                f"cannot enter network namespace {path}: {os.strerror(ctypes.get_errno())} "
                "(needs root)"
            )
    finally:
        os.close(fd)


def run(args: argparse.Namespace) -> str:
    try:
        parse_introspection_bind(args.introspection)
    except ValueError as error:
        raise InvalidInput(
            f"--introspection={args.introspection!r} {error}; accepted: {BIND_ACCEPTED}, or "
            "unix:PATH (ipamd's INTROSPECTION_BIND_ADDRESS)"
        ) from None
    if args.netns:
        enter_netns(args.netns)
    explain = fetch(args.introspection, "/v1/explain")
    pods = fetch(args.introspection, "/v1/pods")
    if args.format == "json":
        return to_json({"pool": explain, "pods": pods})
    return render(explain, pods)


def render(explain: dict[str, Any], pods: list[dict[str, Any]]) -> str:
    """The pool as a person reads it."""
    rows = [
        [
            e["id"],
            e["device_index"],
            "yes" if e["primary"] else "no",
            e.get("subnet") or "-",
            "-" if e.get("subnet_free") is None else e["subnet_free"],
            "excluded" if e.get("excluded") else "yes",
            e["cidrs"],
            e["total"],
            e["assigned"],
            e["total"] - e["assigned"] - e["cooling"],
            e["cooling"],
            sum(1 for p in pods if p["eni"] == e["id"]),
        ]
        for e in explain["enis"]
    ]
    table = columns(
        [
            "ENI",
            "device",
            "primary",
            "subnet",
            "subnet free",
            "for pods",
            "CIDRs",
            "addresses",
            "assigned",
            "free",
            "cooling",
            "pods",
        ],
        rows,
    )
    growing = "growing" if explain["pool_too_low"] else "not growing"
    lines = [
        f"mode {explain['mode']}: {explain['total']} addresses, {explain['assigned']} assigned, "
        f"{explain['available']} available ({explain['cooldown']} cooling); max pods "
        f"{explain['max_pods']}, max ENIs {explain['max_enis']}",
        "",
        table,
        "",
        f"pool {growing}: " + "; ".join(_why(explain["reasons"])),
    ]
    if explain["actions"]:
        lines.append("next: " + "; ".join(a["reason"] for a in explain["actions"]))
    lines.extend(_cluster(explain.get("cluster")))
    lines.extend(_placement(explain.get("placement")))
    lines.extend(_no_address(explain.get("no_address")))
    lines.extend(_missing_permissions(explain.get("missing_permissions") or []))
    if explain.get("last_error"):
        lines.append(f"last error: {explain['last_error']}")
    lines.extend(_takeover(explain.get("takeover")))
    return "\n".join(lines)


def _takeover(report: dict[str, Any] | None, sample: int = 10) -> list[str]:
    """What vpccni imported when it took this node over from upstream's aws-node, if it did."""
    if not report:
        return []
    imported, dropped = report["imported"], report["dropped"]
    checked = "" if report["veths_checked"] else " (no datapath: veths not checked)"
    lines = [
        f"taken over from upstream's aws-node on "
        f"{datetime.fromtimestamp(report['at'], tz=UTC):%Y-%m-%d %H:%M:%S} UTC "
        f"({report['source']}): "
        f"{len(imported)} pods imported, {len(dropped)} dropped (pod gone, or address on no "
        f"ENI){checked}"
    ]
    for kind, items in (("imported", imported), ("dropped", dropped)):
        lines += [f"  {kind} {item}" for item in items[:sample]]
        if len(items) > sample:
            lines.append(f"  ... {len(items) - sample} more {kind}")
    lines += [f"  {warning}" for warning in report["warnings"]]
    return lines


def _cluster(cluster: dict[str, Any] | None) -> list[str]:
    """The cluster source (``/v1/explain``'s ``cluster``): the Node and ENIConfigs read, or why
    not (docs/kubernetes.md)."""
    if not cluster:
        return []
    node = cluster.get("node")
    if node is not None:
        pods = f", max pods {node['max_pods']}" if node.get("max_pods") is not None else ""
        names = ", ".join(cluster.get("eniconfigs") or []) or "none"
        line = f"cluster: Node {node['name']}{pods}; ENIConfigs: {names}"
    else:
        line = "cluster: the Node is not read"
    if cluster.get("problem"):
        line += f" ({cluster['problem']})"
    return [line]


def _placement(placement: dict[str, Any] | None) -> list[str]:
    """Where new ENIs go (``/v1/explain``'s ``placement``): custom networking's ENIConfig or
    subnet discovery, the subnets known with their free addresses, and a placement problem."""
    if not placement:
        return []  # a daemon from before placement was reported
    lines = []
    eniconfig = placement.get("eniconfig")
    if placement["custom_networking"] and eniconfig is not None:
        subnet = f", subnet {eniconfig['subnet']}" if eniconfig.get("subnet") else ""
        lines.append(
            f"new ENIs: custom networking, ENIConfig {eniconfig['name']!r} "
            f"({eniconfig['named_by']}){subnet}; the primary ENI carries no pod address"
        )
    elif placement["subnet_discovery"]:
        lines.append(
            "new ENIs: subnet discovery on (subnets of the node's zone tagged "
            "kubernetes.io/role/cni, most free addresses first)"
        )
    else:
        lines.append("new ENIs: the node's subnet (subnet discovery off)")
    for subnet in placement.get("subnets") or []:
        free = "?" if subnet["free"] is None else subnet["free"]
        notes = []
        if subnet.get("node_subnet"):
            notes.append("node subnet")
        if subnet.get("role") is not None:
            notes.append(f"kubernetes.io/role/cni={subnet['role']}")
        if subnet.get("excluded"):
            notes.append("excluded from pod addresses")
        elif subnet.get("for_new_enis") is False:
            notes.append(f"not for new ENIs: {subnet['discovery']}")
        if subnet.get("enis"):
            notes.append(f"{len(subnet['enis'])} ENIs")
        where = f" {subnet['cidr']} {subnet['zone']}" if subnet.get("cidr") else ""
        extra = f" ({', '.join(notes)})" if notes else ""
        lines.append(f"  subnet {subnet['id']}{where}: {free} free{extra}")
    problem = placement.get("problem")
    if problem:
        lines += [f"no new ENI: {problem['message']}", f"  what to do: {problem['action']}"]
    return lines


def _no_address(cause: dict[str, Any] | None) -> list[str]:
    """Why the next pod would get no address (``/v1/explain``'s ``no_address``), if it would."""
    if not cause:
        return []  # a daemon from before the cause was reported
    if cause.get("reason") is None:
        return ["next pod: an address is ready"]
    kind = "retry can succeed" if cause.get("retryable") else "needs a change"
    return [
        f"next pod gets no address ({kind}): {cause['message']}",
        f"  what to do: {cause['action']}",
    ]


def _missing_permissions(denials: list[dict[str, Any]]) -> list[str]:
    """Each EC2 action EC2 denied (``/v1/explain``'s ``missing_permissions``)."""
    lines = []
    for denial in denials:
        on = f" on {denial['resource']}" if denial.get("resource") else ""
        times = "time" if denial["denied_calls"] == 1 else "times"
        lines += [
            f"missing IAM permission: {denial['action']}{on}: denied {denial['denied_calls']} "
            f"{times}, last at {_utc(denial['last_denied_at'])}; tried again in "
            f"{denial['retry_in_seconds']:.0f} s",
            f"  needed for: {denial['needed_for']}",
            f"  EC2 said: {denial['message']}",
            f"  what to do: grant {denial['action']} to the IAM role vpccni runs with "
            "(deploy/iam/, `vpccni manifests --iam-policy`)",
        ]
    return lines


def _utc(at: float) -> str:
    return datetime.fromtimestamp(at, tz=UTC).strftime("%H:%M:%S UTC")


def _why(reasons: list[str]) -> list[str]:
    """The decision's reasons without the totals line and the 'pool (not) low:' prefix."""
    found = reasons[1:] or reasons
    if found and found[0].startswith(("pool too low: ", "pool not low: ")):
        found = [found[0].split(": ", 1)[1], *found[1:]]
    return found
