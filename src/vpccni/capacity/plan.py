"""``vpccni plan``: the steady state of every node of a scenario, and the cluster totals.

Each node's pool is converged with the daemon's own decisions (``converge.converge_node``);
nodes of a group with the same pod count share one run. Then every ENI is placed in the subnet
the daemon would create it in (``placement.place``: the primary ENI in the node's subnet, the
others in the node's ENIConfig subnet with custom networking, in the subnet discovery picks, or
in the node's subnet). The result is the shared report shape (``report.report_json``) plus, per
node, whether it settled and after how long.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vpccni.capacity.converge import SteadyNode, converge_node
from vpccni.capacity.placement import NodeSpot, place, pod_subnet_choices
from vpccni.capacity.report import EniUse, NodeReport, report_json
from vpccni.capacity.scenario import Scenario, node_subnet_index
from vpccni.core.model import ADDRESSES_PER_PREFIX


@dataclass(frozen=True)
class Plan:
    """The planned nodes, with the steady state each came from."""

    scenario: Scenario
    nodes: tuple[NodeReport, ...]
    steady: tuple[SteadyNode, ...]

    def to_json(self) -> dict[str, Any]:
        unsettled = [n.name for n, s in zip(self.nodes, self.steady, strict=True) if not s.settled]
        return report_json(
            self.nodes,
            self.scenario,
            command="plan",
            mode=self.scenario.mode.value,
            settle_seconds_max=max((s.settled_after for s in self.steady), default=0.0),
            unsettled_nodes=unsettled,
        )


@dataclass(frozen=True)
class _Planned:
    group: int
    position: int
    pods: int
    subnet: int | None
    state: SteadyNode


def plan(scenario: Scenario) -> Plan:
    """Converge every node of ``scenario`` and place its ENIs in subnets."""
    cache: dict[tuple[object, ...], SteadyNode] = {}
    planned: list[_Planned] = []
    ordinal = 0
    network = scenario.network
    for group in scenario.groups:
        for position, pods in enumerate(group.pods):
            subnet = node_subnet_index(scenario, group.index, ordinal)
            ordinal += 1
            tags, elsewhere = _node_subnet_facts(scenario, group.index, subnet)
            key = (group.index, pods, tags, elsewhere)
            if key not in cache:
                cache[key] = converge_node(
                    scenario.config,
                    group.node_limits,
                    pods,
                    subnet_tags=dict(tags),
                    pod_subnet=elsewhere,
                    cluster_name=network.cluster_name,
                )
            planned.append(_Planned(group.index, position, pods, subnet, cache[key]))
    placed = _placements(scenario, planned)
    nodes = [
        node_report(
            scenario,
            p.group,
            position=p.position,
            pods=p.pods,
            state=p.state,
            subnet=p.subnet,
            eni_subnets=eni_subnets,
        )
        for p, eni_subnets in zip(planned, placed, strict=True)
    ]
    return Plan(scenario, tuple(nodes), tuple(p.state for p in planned))


def _node_subnet_facts(
    scenario: Scenario, group: int, subnet: int | None
) -> tuple[tuple[tuple[str, str], ...], bool]:
    """The node subnet's tags and whether discovery has another subnet for the node's ENIs."""
    network = scenario.network
    if subnet is None:
        return (), False
    spot = NodeSpot(subnet, scenario.groups[group].eniconfig, ())
    elsewhere = (
        network.subnet_discovery
        and not network.custom_networking
        and any(choice != subnet for choice in pod_subnet_choices(network, spot))
    )
    return network.subnets[subnet].tags, elsewhere


def _placements(scenario: Scenario, planned: list[_Planned]) -> list[list[int | None]]:
    """Each ENI's subnet (None when the scenario names no subnet)."""
    if any(p.subnet is None for p in planned):
        return [[None] * len(p.state.eni_list) for p in planned]
    spots = [
        NodeSpot(
            p.subnet,
            scenario.groups[p.group].eniconfig,
            tuple(
                1 + e.secondary_ips + ADDRESSES_PER_PREFIX * e.prefixes for e in p.state.eni_list
            ),
        )
        for p in planned
        if p.subnet is not None
    ]
    return [list(found) for found in place(scenario.network, spots)]


def node_name(scenario: Scenario, group: int, position: int) -> str:
    return f"{scenario.groups[group].name}-{position + 1}"


def node_eniconfig(scenario: Scenario, group: int, subnet: int | None) -> str | None:
    """The ENIConfig a node uses with custom networking (None without)."""
    network = scenario.network
    if not network.custom_networking or subnet is None:
        return None
    return network.eniconfig_for(scenario.groups[group].eniconfig, subnet)


def node_report(
    scenario: Scenario,
    group: int,
    *,
    position: int,
    pods: int,
    state: SteadyNode,
    subnet: int | None,
    eni_subnets: list[int | None],
) -> NodeReport:
    spec = scenario.groups[group]
    network = scenario.network
    cidrs = [None if s is None else str(network.subnets[s].cidr) for s in eni_subnets]
    return NodeReport(
        group=group,
        name=node_name(scenario, group, position),
        instance_type=spec.instance_type,
        subnet=None if subnet is None else str(scenario.subnets[subnet]),
        enis=state.enis,
        secondary_ips=state.secondary_ips,
        prefixes=state.prefixes,
        assigned=state.assigned,
        warm=state.warm,
        max_pods=spec.node_limits.max_pods,
        pods=pods,
        pods_without_ip=state.admitted - state.assigned,
        pods_over_max_pods=pods - state.admitted,
        availability_zone=None if subnet is None else network.subnets[subnet].availability_zone,
        eniconfig=node_eniconfig(scenario, group, subnet),
        eni_list=tuple(
            EniUse(e.device_index, e.primary, cidr, e.secondary_ips, e.prefixes)
            for e, cidr in zip(state.eni_list, cidrs, strict=True)
        ),
    )
