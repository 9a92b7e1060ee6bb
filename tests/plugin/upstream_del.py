"""How upstream's ``aws-cni`` DEL reads a prevResult, written down as test data (we cannot run
upstream's binary): which addresses and route tables it would tear down from it.

Upstream's DEL (cmd/routed-eni-cni-plugin/cni.go) first asks its ipamd; only when ipamd is
unreachable, or answers with an error other than "datastore: unknown pod", does it tear the pod
down from prevResult (``teardownPodNetworkWithPrevResult``), and that is what a node rolled back
from vpccni to ``aws-node`` relies on for pods vpccni added. Three revisions of that reading exist:

``current`` (the reference's §6.5; the shipped revision)
    prevResult of any version converted to a 1.0.0 result (``NewResultFromResult``); the entry
    named ``dummy`` + sha1("<K8S_POD_NAMESPACE>.<K8S_POD_NAME>")[:11] (the first one of that
    name) with ``mac`` a decimal 0 (a non-zero VLAN id is the branch-ENI path) and ``sandbox`` the
    decimal device number; table = device + 1; pod interfaces = (len(interfaces) - 1) // 2; for
    each, the entry named CNI_IFNAME (then ``mNicIf1``, ...; a missing one is skipped) must have
    exactly one IP whose ``interface`` is its index, and a non-empty ``mac`` there is read as
    that interface's route table (a non-decimal one fails the whole teardown).
``pci``
    the same, but only for a 1.0.0+ prevResult (a type assertion), the count in the dummy's
    ``socketPath`` and each table in the container entry's ``pciID`` when ``socketPath`` is set
    (else one interface, table device + 1); a missing container entry fails the teardown.
``legacy`` (v1.12.1 to before multi-NIC)
    one interface, CNI_IFNAME, table device + 1.

A teardown then deletes, per (address, table): rule ``to <ip> lookup main`` priority 512; when
the table is above 1, every rule ``from <ip> lookup <table>`` priority 1536; the host route
``<ip>`` in main (``TeardownPodNetwork``; table 1 or less means main).
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

MAIN = 254
READINGS = ("current", "pci", "legacy")
_ATOI = re.compile(r"[+-]?[0-9]+")


def atoi(text: Any) -> int | None:
    """Go's strconv.Atoi on a JSON string field (absent: "")."""
    if not isinstance(text, str) or not _ATOI.fullmatch(text):
        return None
    return int(text)


def k8s_args(cni_args: str) -> tuple[str, str]:
    """(namespace, name) as upstream's LoadArgs reads CNI_ARGS (IgnoreUnknown=1 assumed)."""
    values = dict(pair.split("=", 1) for pair in cni_args.split(";") if pair)
    return values.get("K8S_POD_NAMESPACE", ""), values.get("K8S_POD_NAME", "")


def dummy_name(namespace: str, name: str) -> str:
    return "dummy" + hashlib.sha1(f"{namespace}.{name}".encode()).hexdigest()[:11]


def _find(interfaces: list[dict[str, Any]], name: str) -> tuple[int, dict[str, Any]] | None:
    for index, entry in enumerate(interfaces):
        if entry.get("name") == name:
            return index, entry
    return None


def _container_ip(result: dict[str, Any], index: int) -> str | None:
    found = [ip for ip in result.get("ips", []) if ip.get("interface") == index]
    return str(found[0]["address"]).split("/")[0] if len(found) == 1 else None


class _NotRead(Exception):
    """Upstream's DEL does not tear down from this prevResult (it logs why and goes on)."""


def _number(text: Any) -> int:
    number = atoi(text)
    if number is None:
        raise _NotRead
    return number


def teardown_from_prev_result(
    prev_result: dict[str, Any] | None,
    cni_args: str,
    ifname: str,
    reading: str = "current",
) -> list[tuple[str, int]] | None:
    """The (pod address, route table) pairs upstream's DEL tears down from ``prev_result``, or
    None when it does not tear down from it (the prevResult does not carry what it needs)."""
    try:
        return _teardown(prev_result, cni_args, ifname, reading)
    except _NotRead:
        return None


def _teardown(
    prev_result: dict[str, Any] | None, cni_args: str, ifname: str, reading: str
) -> list[tuple[str, int]]:
    if not isinstance(prev_result, dict):
        raise _NotRead
    if reading == "pci" and not str(prev_result.get("cniVersion", "")).startswith("1."):
        raise _NotRead  # the type assertion to a 1.0.0 result fails
    interfaces = [entry for entry in prev_result.get("interfaces", []) if isinstance(entry, dict)]
    found = _find(interfaces, dummy_name(*k8s_args(cni_args)))
    if found is None or _number(found[1].get("mac", "")) != 0:
        raise _NotRead  # no dummy, or a VLAN id: the branch-ENI path, not this one
    dummy = found[1]
    table = _number(dummy.get("sandbox", "")) + 1
    count, per_interface = 1, ""
    if reading == "current":
        count, per_interface = (len(interfaces) - 1) // 2, "mac"
    elif reading == "pci" and dummy.get("socketPath", ""):
        count, per_interface = _number(dummy["socketPath"]), "pciID"
    torn: list[tuple[str, int]] = []
    for number in range(count):
        entry = _find(interfaces, ifname if number == 0 else f"mNicIf{number}")
        address = _container_ip(prev_result, entry[0]) if entry else None
        if entry is None or address is None:
            if reading == "current":
                continue  # logged and skipped
            raise _NotRead
        value = entry[1].get(per_interface, "") if per_interface else ""
        if per_interface == "pciID" or value:
            table = _number(value)
        torn.append((address, table if table > 1 else MAIN))
    return torn
