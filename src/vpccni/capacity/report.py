"""The report shape shared by ``vpccni plan`` and ``vpccni simulate``: nodes, subnets, totals.

Owns :class:`NodeReport` (one node's ENIs, secondary addresses, prefixes, addresses taken from its
subnet, assigned, warm, max pods) and the JSON document both commands print:
``{"nodes": [...], "subnets": [...], "totals": {...}}`` plus command-specific fields.
``subnet_addresses`` counts every address a node takes from its subnet: one primary per ENI, each
secondary address, and 16 per /28 prefix. ``totals.subnet_addresses_used`` is always the sum over
nodes; ``subnet_addresses_free`` is null when the scenario names no subnet. AWS reserves five
addresses of every subnet (the first four and the last).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from ipaddress import IPv4Network
from typing import Any

from vpccni.capacity.scenario import SUBNET_RESERVED, Scenario
from vpccni.core.model import ADDRESSES_PER_PREFIX


@dataclass(frozen=True)
class NodeReport:
    """One node's pool as the daemon holds it."""

    group: int
    name: str
    instance_type: str
    subnet: str | None
    enis: int
    secondary_ips: int
    prefixes: int
    assigned: int
    warm: int
    max_pods: int
    pods: int
    pods_without_ip: int
    pods_over_max_pods: int

    @property
    def subnet_addresses(self) -> int:
        return self.enis + self.secondary_ips + ADDRESSES_PER_PREFIX * self.prefixes

    @property
    def waste(self) -> int:
        """Addresses taken from the subnet that no pod uses (warm ones and ENI primaries)."""
        return self.subnet_addresses - self.assigned

    def to_json(self) -> dict[str, Any]:
        body = asdict(self)
        body["subnet_addresses"] = self.subnet_addresses
        body["waste"] = self.waste
        return body


def node_subnet(scenario: Scenario, group: int, ordinal: int) -> int | None:
    """The subnet (index) of a node: its group's, else round-robin over the cluster's nodes."""
    if not scenario.subnets:
        return None
    chosen = scenario.groups[group].subnet
    return chosen if chosen is not None else ordinal % len(scenario.subnets)


def usable_addresses(subnet: IPv4Network) -> int:
    return max(subnet.num_addresses - SUBNET_RESERVED, 0)


def subnet_usage(
    nodes: Sequence[NodeReport], subnets: Sequence[IPv4Network]
) -> list[dict[str, Any]]:
    """Used / free addresses per subnet and whether the nodes fit."""
    rows = []
    for subnet in subnets:
        used = sum(n.subnet_addresses for n in nodes if n.subnet == str(subnet))
        usable = usable_addresses(subnet)
        rows.append(
            {
                "cidr": str(subnet),
                "usable": usable,
                "used": used,
                "free": usable - used,
                "fits": used <= usable,
            }
        )
    return rows


def totals(nodes: Sequence[NodeReport], subnets: Sequence[IPv4Network]) -> dict[str, Any]:
    """Cluster totals; the subnet fields are null without a subnet."""
    used = sum(n.subnet_addresses for n in nodes)
    available = sum(usable_addresses(s) for s in subnets) if subnets else None
    usage = subnet_usage(nodes, subnets)
    return {
        "nodes": len(nodes),
        "enis": sum(n.enis for n in nodes),
        "secondary_ips": sum(n.secondary_ips for n in nodes),
        "prefixes": sum(n.prefixes for n in nodes),
        "subnet_addresses_used": used,
        "subnet_addresses_available": available,
        "subnet_addresses_free": None if available is None else available - used,
        "fits": None if not subnets else all(row["fits"] for row in usage),
        "assigned": sum(n.assigned for n in nodes),
        "warm": sum(n.warm for n in nodes),
        "waste": sum(n.waste for n in nodes),
        "pods": sum(n.pods for n in nodes),
        "pods_without_ip": sum(n.pods_without_ip for n in nodes),
        "pods_over_max_pods": sum(n.pods_over_max_pods for n in nodes),
    }


def report_json(
    nodes: Sequence[NodeReport], subnets: Sequence[IPv4Network], **extra: Any
) -> dict[str, Any]:
    """The shared document: nodes, subnets, totals, then the command's own fields."""
    return {
        "nodes": [n.to_json() for n in nodes],
        "subnets": subnet_usage(nodes, subnets),
        "totals": totals(nodes, subnets),
        **extra,
    }
