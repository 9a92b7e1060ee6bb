"""The report shape shared by ``vpccni plan`` and ``vpccni simulate``: nodes, subnets, totals.

Owns :class:`NodeReport` (one node's ENIs, secondary addresses, prefixes, addresses taken from its
subnets, assigned, warm, max pods, and per ENI the subnet it is in) and the JSON document both
commands print: ``{"nodes": [...], "subnets": [...], "totals": {...}, "warnings": [...]}`` plus
command-specific fields. ``subnet_addresses`` counts every address a node takes: one primary per
ENI, each secondary address, and 16 per /28 prefix; each ENI takes them from its own subnet (the
primary ENI from the node's subnet, the others from the pod subnet with custom networking or
subnet discovery). ``totals.subnet_addresses_used`` is always the sum over nodes;
``subnet_addresses_free`` is null when the scenario names no subnet. AWS reserves five addresses
of every subnet (the first four and the last). ``warnings`` names every availability zone whose
pod subnets cannot hold its nodes' pools, by how many addresses, and what to do.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from ipaddress import IPv4Network
from typing import Any

from vpccni.capacity.fields import MIN_PREFIX
from vpccni.capacity.network import SUBNET_RESERVED, Network, room_for, spare_block
from vpccni.capacity.placement import NodeSpot, pod_subnet_choices
from vpccni.capacity.scenario import Scenario
from vpccni.core.model import ADDRESSES_PER_PREFIX
from vpccni.core.subnets import ROLE_TAG


@dataclass(frozen=True)
class EniUse:
    """One ENI of a node: its subnet and the addresses it holds there."""

    device_index: int
    primary: bool
    subnet: str | None
    secondary_ips: int
    prefixes: int

    @property
    def addresses(self) -> int:
        """Addresses the ENI takes from its subnet: its primary, secondaries, /28s."""
        return 1 + self.secondary_ips + ADDRESSES_PER_PREFIX * self.prefixes

    def to_json(self) -> dict[str, Any]:
        return {"subnet": self.subnet, "addresses": self.addresses}


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
    availability_zone: str | None = None
    eniconfig: str | None = None
    eni_list: tuple[EniUse, ...] = ()

    @property
    def subnet_addresses(self) -> int:
        return self.enis + self.secondary_ips + ADDRESSES_PER_PREFIX * self.prefixes

    @property
    def waste(self) -> int:
        """Addresses taken from the subnet that no pod uses (warm ones and ENI primaries)."""
        return self.subnet_addresses - self.assigned

    @property
    def by_subnet(self) -> dict[str, int]:
        """Addresses the node takes from each subnet (none without subnets)."""
        found: dict[str, int] = {}
        for eni in self.eni_list:
            if eni.subnet is not None:
                found[eni.subnet] = found.get(eni.subnet, 0) + eni.addresses
        return found

    def to_json(self) -> dict[str, Any]:
        body = asdict(self)
        del body["eni_list"]
        body["subnet_addresses"] = self.subnet_addresses
        body["waste"] = self.waste
        primary = [e for e in self.eni_list if e.primary]
        body["primary_eni"] = (
            {**primary[0].to_json(), "pod_addresses": primary[0].addresses - 1} if primary else None
        )
        body["pod_enis"] = [e.to_json() for e in self.eni_list if not e.primary]
        return body


def usable_addresses(subnet: IPv4Network) -> int:
    return max(subnet.num_addresses - SUBNET_RESERVED, 0)


def used_by_subnet(nodes: Sequence[NodeReport]) -> dict[str, int]:
    used: dict[str, int] = {}
    for node in nodes:
        for cidr, count in node.by_subnet.items():
            used[cidr] = used.get(cidr, 0) + count
    return used


def subnet_usage(nodes: Sequence[NodeReport], network: Network) -> list[dict[str, Any]]:
    """Used / free addresses per subnet, the ENIs in it and whether the nodes fit."""
    used = used_by_subnet(nodes)
    enis: dict[str, int] = {}
    for node in nodes:
        for eni in node.eni_list:
            if eni.subnet is not None:
                enis[eni.subnet] = enis.get(eni.subnet, 0) + 1
    rows = []
    for spec in network.subnets:
        cidr = str(spec.cidr)
        usable = usable_addresses(spec.cidr)
        rows.append(
            {
                "cidr": cidr,
                "availability_zone": spec.availability_zone,
                "role": spec.role,
                "tags": spec.tag_map,
                "usable": usable,
                "used": used.get(cidr, 0),
                "free": usable - used.get(cidr, 0),
                "enis": enis.get(cidr, 0),
                "fits": used.get(cidr, 0) <= usable,
            }
        )
    return rows


def totals(nodes: Sequence[NodeReport], network: Network) -> dict[str, Any]:
    """Cluster totals; the subnet fields are null without a subnet."""
    subnets = [s.cidr for s in network.subnets]
    used = sum(n.subnet_addresses for n in nodes)
    available = sum(usable_addresses(s) for s in subnets) if subnets else None
    usage = subnet_usage(nodes, network)
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


def report_json(nodes: Sequence[NodeReport], scenario: Scenario, **extra: Any) -> dict[str, Any]:
    """The shared document: nodes, subnets, totals, warnings, then the command's own fields."""
    network = scenario.network
    return {
        "nodes": [n.to_json() for n in nodes],
        "subnets": subnet_usage(nodes, network),
        "totals": totals(nodes, network),
        "warnings": pod_subnet_warnings(nodes, network),
        "custom_networking": network.custom_networking,
        "subnet_discovery": network.subnet_discovery,
        **extra,
    }


def pod_subnet_warnings(nodes: Sequence[NodeReport], network: Network) -> list[dict[str, Any]]:
    """Every availability zone whose pod subnets cannot hold its nodes' pools.

    The subnets a zone's nodes may put pod ENIs in are joined into groups that share nodes
    (one ENIConfig's subnet; the discovery candidates of the zone; a node subnet); a group whose
    addresses in use exceed its usable addresses is short by the difference.
    """
    index = {str(s.cidr): i for i, s in enumerate(network.subnets)}
    groups: list[set[int]] = []
    members: list[list[NodeReport]] = []
    for node in nodes:
        if node.subnet is None or node.subnet not in index:
            continue
        spot = NodeSpot(index[node.subnet], node.eniconfig, ())
        choices = set(pod_subnet_choices(network, spot))
        joined = [g for g, found in enumerate(groups) if found & choices]
        for g in reversed(joined):
            choices |= groups.pop(g)
        merged = [m for g, m in enumerate(members) if g in joined]
        members = [m for g, m in enumerate(members) if g not in joined]
        groups.append(choices)
        members.append([node, *[n for m in merged for n in m]])
    used = used_by_subnet(nodes)
    found = []
    for subnets, group_nodes in zip(groups, members, strict=True):
        specs = [network.subnets[i] for i in sorted(subnets)]
        need = sum(used.get(str(s.cidr), 0) for s in specs)
        usable = sum(s.usable for s in specs)
        if need <= usable:
            continue
        found.append(_warning(network, specs, need, usable, len(group_nodes)))
    return found


def _warning(
    network: Network, specs: Sequence[Any], need: int, usable: int, nodes: int
) -> dict[str, Any]:
    zone = specs[0].availability_zone
    short = need - usable
    cidrs = ", ".join(str(s.cidr) for s in specs)
    kind = "pod subnet" if len(specs) == 1 else "pod subnets"
    if network.custom_networking:
        names = sorted(
            name for name, c in network.eniconfigs.items() if network.subnets[c.subnet] in specs
        )
        size = smallest_subnet(need)
        if size is None:
            advice = (
                "split these nodes over several ENIConfigs (node_groups[].eniconfig), each with "
                f"its own subnet in {zone}: more than a /16 holds"
            )
        else:
            advice = (
                f"give ENIConfig {', '.join(names)} a /{size} or larger subnet in {zone} "
                f"({_usable(size)} usable addresses){_where(network, size, True)}; custom "
                "networking does not use subnet discovery"
            )
    else:
        size = smallest_subnet(short)
        tag = f"tag a subnet in {zone} {ROLE_TAG}=1 with at least {short} free addresses" + (
            "" if size is None else f" (a /{size}{_where(network, size, False)})"
        )
        if network.subnet_discovery:
            advice = f"use a larger subnet, or {tag}: subnet discovery puts new ENIs there"
        else:
            advice = (
                "use a larger subnet, or turn on subnet discovery (ENABLE_SUBNET_DISCOVERY=true) "
                f"and {tag}"
            )
    message = (
        f"{zone}: {kind} {cidrs} cannot hold the pools of its {nodes} node(s): they take {need} "
        f"addresses, {usable} are usable: {short} short; {advice}"
    )
    return {
        "availability_zone": zone,
        "subnets": [str(s.cidr) for s in specs],
        "nodes": nodes,
        "needed": need,
        "usable": usable,
        "short": short,
        "advice": advice,
        "message": message,
    }


def _usable(prefixlen: int) -> int:
    return int(2 ** (32 - prefixlen)) - SUBNET_RESERVED


def _where(network: Network, prefixlen: int, secondary_only: bool) -> str:
    """Where such a subnet could go: free room in the VPC, else another secondary block."""
    spot = room_for(network, prefixlen, secondary_only)
    if spot is not None:
        block = "secondary CIDR" if secondary_only else "CIDR blocks"
        return f": {spot} is free in the VPC's {block}"
    spare = spare_block(network)
    if spare is not None:
        return f": associate another secondary CIDR with the VPC (e.g. {spare}) and create it there"
    return ""


def smallest_subnet(addresses: int) -> int | None:
    """The longest prefix (smallest subnet) whose usable addresses reach ``addresses``."""
    for length in range(28, MIN_PREFIX - 1, -1):
        if 2 ** (32 - length) - SUBNET_RESERVED >= addresses:
            return length
    return None
