"""PNG charts: the warm-setting trade-off (``plan --plot``) and run timelines (``simulate --plot``).

``tradeoff`` converges one node of the first group for every pod count from 0 to its capacity
under the scenario's settings and under the usual alternatives (WARM_ENI_TARGET=1,
WARM_IP_TARGET, MINIMUM_IP_TARGET with WARM_IP_TARGET, prefix delegation) and plots addresses
taken from the subnet against pods, with the pods themselves as the floor. ``write_timelines``
draws a simulation's addresses held, pods waiting and EC2 calls per minute (throttled ones
marked). matplotlib with the Agg backend: no display needed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from vpccni.capacity.converge import admitted_pods, converge_node
from vpccni.capacity.scenario import NodeGroup, Scenario
from vpccni.core.config import IpamConfig
from vpccni.errors import VpccniError

MAX_POINTS = 60


def alternatives(scenario: Scenario, group: NodeGroup) -> list[tuple[str, IpamConfig]]:
    """The chosen settings first, then the usual alternatives (without duplicates)."""
    chosen = scenario.config
    typical = sorted(group.pods)[len(group.pods) // 2]
    base = IpamConfig(ip_cooldown_seconds=chosen.ip_cooldown_seconds, max_eni=chosen.max_eni)
    options = [
        (f"chosen ({_describe(chosen)})", chosen),
        ("WARM_ENI_TARGET=1 (default)", base),
        ("WARM_IP_TARGET=2", replace(base, warm_eni_target=0, warm_ip_target=2)),
        (
            f"MINIMUM_IP_TARGET={typical + 2}, WARM_IP_TARGET=2",
            replace(base, warm_eni_target=0, warm_ip_target=2, minimum_ip_target=typical + 2),
        ),
    ]
    if group.limits.prefixes_allowed:
        options.append(("prefix, WARM_PREFIX_TARGET=1", replace(base, prefix_delegation=True)))
    seen: list[IpamConfig] = []
    unique = []
    for label, config in options:
        if config not in seen:
            seen.append(config)
            unique.append((label, config))
    return unique


def tradeoff_series(scenario: Scenario) -> dict[str, Any]:
    """Pods -> subnet addresses per setting, for one node of the first group."""
    group = scenario.groups[0]
    limits = group.node_limits
    top = admitted_pods(10**9, limits)
    step = max(1, -(-top // MAX_POINTS))
    pods = list(range(0, top + 1, step))
    if pods[-1] != top:
        pods.append(top)
    series = {}
    for label, config in alternatives(scenario, group):
        figures = []
        for count in pods:
            node = converge_node(config, limits, count)
            figures.append(node.enis + node.secondary_ips + 16 * node.prefixes)
        series[label] = figures
    return {
        "group": group.name,
        "instance_type": group.instance_type,
        "pods": pods,
        "series": series,
    }


def write_tradeoff(path: Path, scenario: Scenario) -> None:
    data = tradeoff_series(scenario)
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(9, 5.5), dpi=110)
    styles = ("-", "--", "-.", (0, (6, 2)), (0, (2, 1)))
    for index, (label, values) in enumerate(data["series"].items()):
        axis.step(
            data["pods"],
            values,
            where="post",
            label=label,
            linewidth=3.0 if index == 0 else 1.6,
            linestyle=styles[index % len(styles)],
            zorder=3 if index == 0 else 2,
        )
    axis.plot(data["pods"], data["pods"], "k:", linewidth=1, label="pods (no waste)")
    for count in sorted(set(scenario.groups[0].pods)):
        axis.axvline(count, color="grey", alpha=0.25, linewidth=1)
    axis.set_xlabel("pods with a VPC address on the node")
    axis.set_ylabel("addresses taken from the subnet")
    axis.set_title(
        f"{data['instance_type']} ({data['group']}): addresses held per node by warm setting\n"
        "steady state of ipamd's own logic; grey lines: the scenario's pod counts"
    )
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8, loc="lower right", framealpha=0.9)
    _save(figure, path, plt)


def write_timelines(path: Path, document: Mapping[str, Any]) -> None:
    timeline = document["timeline"]
    minutes = [s / 60.0 for s in timeline["seconds"]]
    ec2 = document["ec2"]
    plt = _pyplot()
    figure, axes = plt.subplots(3, 1, figsize=(10, 9), dpi=100, sharex=True)
    top, middle, bottom = axes
    top.plot(minutes, timeline["subnet_addresses"], label="taken from the subnet", linewidth=2)
    top.plot(minutes, timeline["assigned"], label="assigned to pods")
    top.plot(minutes, timeline["warm"], label="warm (free in pools)")
    top.set_ylabel("addresses")
    top.set_title(
        f"vpccni simulate: {document['totals']['nodes']} nodes, mode {document['mode']}, "
        f"seed {document['seed']}"
    )
    top.legend(fontsize=8)
    middle.plot(minutes, timeline["waiting_pods"], color="tab:red")
    middle.set_ylabel("pods waiting for an address")
    per_minute = ec2["per_minute"]
    axis_minutes = list(range(len(ec2["throttled_per_minute"])))
    for api, counts in sorted(per_minute.items(), key=lambda kv: -sum(kv[1]))[:6]:
        bottom.plot(axis_minutes, counts, label=api, linewidth=1)
    bottom.plot(
        axis_minutes, ec2["throttled_per_minute"], "k--", label="throttled (all APIs)", linewidth=1
    )
    bottom.set_ylabel("EC2 calls per minute")
    bottom.set_xlabel("virtual minutes")
    bottom.legend(fontsize=7, ncol=2)
    for axis in axes:
        axis.grid(alpha=0.3)
    _save(figure, path, plt)


def _describe(config: IpamConfig) -> str:
    if config.warm_ip_targets_defined:
        text = (
            f"WARM_IP_TARGET={config.warm_ip_target}, MINIMUM_IP_TARGET={config.minimum_ip_target}"
        )
    elif config.prefix_delegation:
        text = f"WARM_PREFIX_TARGET={config.warm_prefix_target}"
    else:
        text = f"WARM_ENI_TARGET={config.warm_eni_target}"
    return (
        "prefix, " if config.prefix_delegation and config.warm_ip_targets_defined else ""
    ) + text


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise VpccniError(
            "--plot needs matplotlib, which is not installed here (the node image leaves it "
            "out); install the planning extra: pip install 'vpccni[planning]'"
        ) from None

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(figure: Any, path: Path, plt: Any) -> None:
    figure.tight_layout()
    try:
        figure.savefig(path)
    except OSError as error:
        raise VpccniError(
            f"cannot write the chart {path}: {error.strerror or error}; choose a writable path"
        ) from None
    finally:
        plt.close(figure)
