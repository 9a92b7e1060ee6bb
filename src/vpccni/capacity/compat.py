"""``vpccni plan --compat subnet-calc``: the EKS subnet-calculator workbook's own figures.

The EKS Best Practices guide ships ``subnet-calc.xlsx`` (shared reference ``subnet-calc.md``).
Per node it counts, with ``P`` pods, ``E`` IPv4 addresses per ENI and ``H`` host-networking IPs:

* WarmENI tab (used unless WARM_IP_TARGET is set): ``(ceil(P/E) + WARM_ENI_TARGET) * E + H``;
* WarmIP tab (WARM_IP_TARGET set): ``ceil(P/E) * E + H`` (its warm columns do not feed the total);

and the subnet holds ``2^(32-n) - 2`` addresses. ``workbook`` reproduces these numbers (the
workbook's cached values are the test); ``compare`` puts them beside the real steady state and
says where and why they differ: the workbook counts each ENI's primary address as a pod slot,
charges host-network pods an address, allocates whole ENIs in WarmIP mode, forgets AWS's five
reserved addresses, enforces no limit, and models neither MINIMUM_IP_TARGET nor prefixes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from vpccni.capacity.plan import Plan, node_name
from vpccni.capacity.report import report_json
from vpccni.capacity.scenario import Scenario

COMPAT_NAMES = ("subnet-calc",)


@dataclass(frozen=True)
class WorkbookNode:
    """One node as the workbook counts it."""

    group: int
    name: str
    instance_type: str
    pods: int
    enis: int
    addresses: int
    ips_per_eni: int
    max_pods: int
    host_ips: int

    def to_json(self) -> dict[str, Any]:
        pod_slots = self.enis * self.ips_per_eni
        return {
            "group": self.group,
            "name": self.name,
            "instance_type": self.instance_type,
            "enis": self.enis,
            "secondary_ips": None,
            "prefixes": 0,
            "subnet_addresses": self.addresses,
            "assigned": self.pods,
            "warm": pod_slots - self.pods,
            "host_networking_ips": self.host_ips,
            "max_pods": self.max_pods,
            "pods": self.pods,
        }


def workbook_tab(scenario: Scenario) -> str:
    return "WarmIP" if scenario.config.warm_ip_target > 0 else "WarmENI"


def workbook_nodes(scenario: Scenario) -> list[WorkbookNode]:
    """Every node as the workbook's formulas count it."""
    tab = workbook_tab(scenario)
    host = scenario.host_networking_ips
    warm_enis = scenario.config.warm_eni_target
    nodes = []
    for group in scenario.groups:
        per_eni = group.limits.ipv4_per_eni
        for position, pods in enumerate(group.pods):
            in_use = math.ceil(pods / per_eni)
            enis = in_use + warm_enis if tab == "WarmENI" else in_use
            nodes.append(
                WorkbookNode(
                    group=group.index,
                    name=node_name(scenario, group.index, position),
                    instance_type=group.instance_type,
                    pods=pods,
                    enis=enis,
                    addresses=enis * per_eni + host,
                    ips_per_eni=per_eni,
                    max_pods=group.node_limits.max_pods,
                    host_ips=host,
                )
            )
    return nodes


def workbook_totals(scenario: Scenario, nodes: list[WorkbookNode]) -> dict[str, Any]:
    used = sum(n.addresses for n in nodes)
    available = (
        sum(2 ** (32 - s.prefixlen) - 2 for s in scenario.subnets) if scenario.subnets else None
    )
    return {
        "nodes": len(nodes),
        "enis": sum(n.enis for n in nodes),
        "subnet_addresses_used": used,
        "subnet_addresses_available": available,
        "subnet_addresses_free": None if available is None else available - used,
        "fits": None if available is None else used <= available,
        "pods": sum(n.pods for n in nodes),
    }


def compare(plan: Plan) -> dict[str, Any]:
    """The workbook's figures in ``nodes``/``totals``, the real ones under ``real``."""
    scenario = plan.scenario
    nodes = workbook_nodes(scenario)
    totals = workbook_totals(scenario, nodes)
    real = report_json(plan.nodes, scenario)
    return {
        "compat": "subnet-calc",
        "tab": workbook_tab(scenario),
        "mode": scenario.mode.value,
        "nodes": [n.to_json() for n in nodes],
        "totals": totals,
        "real": real,
        "differences": differences(scenario, totals, real["totals"], nodes),
    }


def differences(
    scenario: Scenario,
    totals: dict[str, Any],
    real: dict[str, Any],
    nodes: list[WorkbookNode],
) -> list[dict[str, Any]]:
    """Where the workbook and the daemon differ, each with the reason, largest causes first."""
    found: list[dict[str, Any]] = []
    config = scenario.config

    def add(what: str, workbook: Any, actual: Any, why: str) -> None:
        found.append({"what": what, "workbook": workbook, "real": actual, "why": why})

    add(
        "subnet addresses used",
        totals["subnet_addresses_used"],
        real["subnet_addresses_used"],
        "the sum of the per-node differences below",
    )
    per_eni = sorted({(n.instance_type, n.ips_per_eni) for n in nodes})
    slots = ", ".join(f"{t}: {e} per ENI, {e - 1} for pods" for t, e in per_eni)
    add(
        "ENI primary addresses",
        0,
        real["enis"],
        "the workbook counts every IPv4 address of an ENI as a pod slot; each ENI keeps its "
        f"primary address, so pods get one less per ENI ({slots}) and every ENI takes its "
        "primary from the subnet",
    )
    add(
        "host-network addresses",
        scenario.host_networking_ips * len(nodes),
        0,
        f"the workbook adds Host Networking IPs ({scenario.host_networking_ips}) per node; "
        "host-network pods (aws-node, kube-proxy) use the node's primary address and take none "
        "(they belong in max pods' +2, not in address use)",
    )
    if scenario.subnets:
        add(
            "subnet size",
            totals["subnet_addresses_available"],
            real["subnet_addresses_available"],
            "the workbook takes 2^(32-n) - 2 addresses; AWS reserves 5 in every subnet "
            "(the first four and the last)",
        )
    if workbook_tab(scenario) == "WarmIP":
        add(
            "WARM_IP_TARGET",
            "whole ENIs",
            "single addresses",
            "the WarmIP tab rounds pods up to whole ENIs and its total ignores its own warm-ENI "
            f"columns; ipamd keeps pods + WARM_IP_TARGET ({config.warm_ip_target}) addresses and "
            "attaches an ENI only when the others are full",
        )
    else:
        add(
            "WARM_ENI_TARGET",
            f"{config.warm_eni_target} whole ENI(s) of E addresses per node",
            f"{config.warm_eni_target} x (E - 1) free addresses per node",
            "ipamd keeps WARM_ENI_TARGET x (E - 1) free addresses, which may sit on ENIs already "
            "in use, so a node often holds fewer ENIs than in-use + warm",
        )
    over = sum(1 for n in nodes if n.pods + 2 > n.max_pods)
    add(
        "max pods",
        "not checked",
        f"{over} node(s) over max pods" if over else "every node within max pods",
        "the workbook shows max pods and max IPv4 but flags nothing; the plan admits at most "
        "max pods - 2 pods per node (two host-network pods count) and reports the rest",
    )
    unsupported = []
    if config.minimum_ip_target > 0:
        unsupported.append(f"MINIMUM_IP_TARGET={config.minimum_ip_target}")
    if config.prefix_delegation:
        unsupported.append("prefix delegation")
    if config.custom_networking:
        unsupported.append("custom networking (pods in the ENIConfigs' subnets, not the node's)")
    if any(not s.for_nodes for s in scenario.network.subnets) and not config.custom_networking:
        unsupported.append("pod subnets apart from the node subnets (subnet discovery)")
    if workbook_tab(scenario) == "WarmIP" and config.warm_eni_target != 1:
        unsupported.append(f"WARM_ENI_TARGET={config.warm_eni_target} (WarmIP tab ignores it)")
    if unsupported:
        add(
            "settings the workbook ignores",
            "ignored",
            ", ".join(unsupported),
            "the workbook's sheets list them as unsupported; the real figures include them",
        )
    return found
