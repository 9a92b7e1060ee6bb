"""``vpccni plan``: the steady state of every node of a scenario, and the cluster totals.

Each node's pool is converged with the daemon's own decisions (``converge.converge_node``);
nodes of a group with the same pod count share one run. The result is the shared report shape
(``report.report_json``) plus, per node, whether it settled and after how long.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vpccni.capacity.converge import SteadyNode, converge_node
from vpccni.capacity.report import NodeReport, node_subnet, report_json
from vpccni.capacity.scenario import Scenario


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
            self.scenario.subnets,
            command="plan",
            mode=self.scenario.mode.value,
            settle_seconds_max=max((s.settled_after for s in self.steady), default=0.0),
            unsettled_nodes=unsettled,
        )


def plan(scenario: Scenario) -> Plan:
    """Converge every node of ``scenario``."""
    cache: dict[tuple[int, int], SteadyNode] = {}
    nodes: list[NodeReport] = []
    steady: list[SteadyNode] = []
    ordinal = 0
    for group in scenario.groups:
        for position, pods in enumerate(group.pods):
            key = (group.index, pods)
            if key not in cache:
                cache[key] = converge_node(scenario.config, group.node_limits, pods)
            state = cache[key]
            subnet = node_subnet(scenario, group.index, ordinal)
            ordinal += 1
            nodes.append(
                node_report(
                    scenario,
                    group.index,
                    position=position,
                    pods=pods,
                    state=state,
                    subnet=subnet,
                )
            )
            steady.append(state)
    return Plan(scenario, tuple(nodes), tuple(steady))


def node_name(scenario: Scenario, group: int, position: int) -> str:
    return f"{scenario.groups[group].name}-{position + 1}"


def node_report(
    scenario: Scenario,
    group: int,
    *,
    position: int,
    pods: int,
    state: SteadyNode,
    subnet: int | None,
) -> NodeReport:
    spec = scenario.groups[group]
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
    )
