"""Which subnet each ENI of a planned node takes its addresses from.

A node's primary ENI is in the node's subnet. Its other ENIs go where the daemon would create
them (``vpccni.core.subnets`` holds the rules; this module only feeds them the scenario's
subnets): with custom networking the subnet of the node's ENIConfig; with subnet discovery the
first of ``discovery_candidates`` (the subnets of the node's AZ that may hold pod ENIs, most
free addresses first) given what the nodes placed so far left free; otherwise the node's subnet.

``place`` walks the cluster as it grows: every node's primary ENI first (nodes launch with it),
then the nodes' second ENIs, then their third ones, and so on, each ENI taking its settled
addresses from its subnet at once. With discovery the split between subnets of similar free
counts depends on that order, which the simulator's concurrent launches only approximate (see
docs/planning.md: every node's figures and each zone's total agree exactly; each of a zone's
candidate subnets within one pod ENI's addresses). Pure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from vpccni.capacity.network import Network
from vpccni.core.subnets import Subnet, discovery_candidates

SUBNET_ID_PREFIX = "subnet-scenario-"


@dataclass(frozen=True)
class NodeSpot:
    """Where a node is: its subnet (index) and, with custom networking, its ENIConfig name."""

    subnet: int
    eniconfig: str | None
    eni_addresses: tuple[int, ...]  # per ENI in device order, the primary ENI first


def subnet_id(index: int) -> str:
    """The identity the planner gives scenario subnet ``index`` in the core's rules."""
    return f"{SUBNET_ID_PREFIX}{index}"


def described(network: Network, free: Sequence[int]) -> list[Subnet]:
    """The scenario's subnets as ``DescribeSubnets`` would list them, with ``free`` addresses."""
    return [
        Subnet(
            subnet_id(index),
            "vpc-scenario",
            spec.availability_zone,
            str(spec.cidr),
            free[index],
            spec.tag_map,
        )
        for index, spec in enumerate(network.subnets)
    ]


def pod_subnet_choices(network: Network, spot: NodeSpot) -> tuple[int, ...]:
    """Every subnet the node's new ENIs may go to, whatever is free (for the AZ check)."""
    if network.custom_networking:
        return (_eniconfig_subnet(network, spot),)
    if not network.subnet_discovery:
        return (spot.subnet,)
    zone = network.subnets[spot.subnet].availability_zone
    found = discovery_candidates(
        [s for s in described(network, [0] * len(network.subnets)) if s.availability_zone == zone],
        subnet_id(spot.subnet),
        network.cluster_name,
    )
    return tuple(sorted(_index(s) for s in found)) or (spot.subnet,)


def choose(network: Network, spot: NodeSpot, free: Sequence[int]) -> int:
    """The subnet the daemon creates the node's next ENI in, with ``free`` addresses left."""
    if network.custom_networking:
        return _eniconfig_subnet(network, spot)
    if not network.subnet_discovery:
        return spot.subnet
    zone = network.subnets[spot.subnet].availability_zone
    found = discovery_candidates(
        [s for s in described(network, free) if s.availability_zone == zone],
        subnet_id(spot.subnet),
        network.cluster_name,
    )
    return _index(found[0]) if found else spot.subnet


def place(network: Network, spots: Sequence[NodeSpot]) -> list[list[int]]:
    """The subnet (index) of every ENI of every node, in the nodes' order."""
    free = [s.usable for s in network.subnets]
    placed: list[list[int]] = [[] for _ in spots]
    for node, spot in enumerate(spots):
        if spot.eni_addresses:
            placed[node].append(spot.subnet)
            free[spot.subnet] -= spot.eni_addresses[0]
    rounds = max((len(s.eni_addresses) for s in spots), default=0)
    for position in range(1, rounds):
        for node, spot in enumerate(spots):
            if position < len(spot.eni_addresses):
                chosen = choose(network, spot, free)
                placed[node].append(chosen)
                free[chosen] -= spot.eni_addresses[position]
    return placed


def _eniconfig_subnet(network: Network, spot: NodeSpot) -> int:
    name = network.eniconfig_for(spot.eniconfig, spot.subnet)
    return network.eniconfigs[name].subnet


def _index(subnet: Subnet) -> int:
    return int(subnet.subnet_id[len(SUBNET_ID_PREFIX) :])
