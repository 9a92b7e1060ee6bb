"""The scenario file shared by ``vpccni plan`` and ``vpccni simulate``, validated in one place.

``parse_scenario`` turns a decoded JSON/YAML document into a :class:`Scenario` or raises
:class:`ScenarioError` (an ``InvalidInput``, exit 2) naming the field, what was found and what is
accepted. The IPAM variables go through ``vpccni.core.config.parse_ipam_config``, so a bad value
is refused with the daemon's own message; settings the daemon refuses at start (IPv6, security
groups for pods, prefix delegation off Nitro) are refused here too. The network - the VPC's CIDR
blocks, node subnets, pod subnets (custom networking's ENIConfigs, subnets tagged for discovery)
- is validated by ``capacity.network``. Instance types are resolved through a function the caller
passes (the CLI gives the shipped table), so this module stays pure. The format is documented in
``docs/planning.md``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Network
from typing import Any

from vpccni.capacity.fields import (
    ScenarioError,
    as_object,
    known,
    list_of_objects,
    number,
    whole,
)
from vpccni.capacity.network import (
    SUBNET_RESERVED,
    Network,
    check_node_eniconfig,
    parse_network,
)
from vpccni.core.config import ConfigError, IpamConfig, parse_ipam_config
from vpccni.core.config import refusals as startup_refusals
from vpccni.core.limits import InstanceLimits, NetworkCard
from vpccni.core.maxpods import HOST_NETWORK_PODS, MaxPodsOptions, compute_max_pods
from vpccni.core.model import Mode
from vpccni.core.pool_rules import NodeLimits
from vpccni.emulator.realism import Knobs, knobs_from_json, realistic_knobs
from vpccni.errors import VpccniError

ResolveInstance = Callable[[str], InstanceLimits]
MODES = ("secondary-ip", "prefix")
TOP_FIELDS = (
    "mode",
    "env",
    "vpc",
    "subnet_cidr",
    "pod_subnets",
    "cni_subnets",
    "custom_networking",
    "eniconfigs",
    "host_networking_ips",
    "node_groups",
    "ec2",
)
GROUP_FIELDS = (
    "name",
    "instance_type",
    "limits",
    "max_pods",
    "nodes",
    "pods",
    "subnet",
    "eniconfig",
    "workload",
)
WORKLOAD_FIELDS = (
    "arrivals_per_minute",
    "lifetime_minutes",
    "lifetime",
    "start_minutes",
    "stop_minutes",
    "bursts",
    "scale_out",
)
LIFETIMES = ("exponential", "fixed")
SIMULATION_KNOBS = realistic_knobs(Knobs(latency={"*": 0.1}))
"""EC2 as the simulator assumes it unless the scenario's ``ec2`` says otherwise: AWS's rate
limits, 0.1 s per call and the emulator's realistic preset (attach 3 s, detach 2 s; its IMDS
lag and partial views belong to the emulator's HTTP IMDS, the simulator's IMDS is the model's
present). ``{"preset": "default"}`` in ``ec2`` turns the timing off."""
CUSTOM_NETWORK_VARIABLE = "AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG"
NO_NETWORK = Network()
__all__ = ["SUBNET_RESERVED", "ScenarioError"]


@dataclass(frozen=True)
class Burst:
    """``pods`` extra pods arrive on every node of the group at ``at_minutes``."""

    at_minutes: float
    pods: int
    lifetime_minutes: float | None = None


@dataclass(frozen=True)
class ScaleOut:
    """``nodes`` new nodes join the group at ``at_minutes``, each with ``pods`` steady pods."""

    at_minutes: float
    nodes: int
    pods: int


@dataclass(frozen=True)
class Workload:
    """Pod churn per node: Poisson arrivals, lifetimes, bursts and node scale-out."""

    arrivals_per_minute: float = 0.0
    lifetime_minutes: float = 30.0
    lifetime: str = "exponential"
    start_minutes: float = 0.0
    stop_minutes: float | None = None
    bursts: tuple[Burst, ...] = ()
    scale_out: tuple[ScaleOut, ...] = ()


@dataclass(frozen=True)
class NodeGroup:
    """Nodes of one instance type (or explicit limits) and the steady pods of each."""

    index: int
    name: str
    limits: InstanceLimits
    node_limits: NodeLimits
    pods: tuple[int, ...]
    subnet: int | None = None
    workload: Workload | None = None
    eniconfig: str | None = None

    @property
    def nodes(self) -> int:
        return len(self.pods)

    @property
    def instance_type(self) -> str:
        return self.limits.instance_type


@dataclass(frozen=True)
class Scenario:
    """A validated scenario."""

    config: IpamConfig
    env: Mapping[str, str]
    subnets: tuple[IPv4Network, ...]
    host_networking_ips: int
    groups: tuple[NodeGroup, ...]
    ec2: Knobs = SIMULATION_KNOBS
    ec2_seed_given: bool = False
    network: Network = NO_NETWORK

    @property
    def mode(self) -> Mode:
        return self.config.mode

    @property
    def has_workload(self) -> bool:
        return any(group.workload is not None for group in self.groups)


def decode_scenario(text: str, name: str) -> Any:
    """JSON, or YAML for ``*.yaml``/``*.yml`` (and for text that is not JSON)."""
    try:
        return json.loads(text)
    except ValueError as error:
        json_error = error
    try:
        import yaml  # type: ignore[import-untyped]

        return yaml.safe_load(text)
    except Exception as error:
        raise ScenarioError(
            f"scenario {name}: neither JSON ({json_error}) nor YAML ({error}); fix the syntax"
        ) from None


def parse_scenario(document: Any, resolve: ResolveInstance) -> Scenario:
    """Validate a decoded scenario document."""
    doc = as_object(document, "scenario")
    known(doc, TOP_FIELDS, "scenario")
    config, env = _config(doc)
    network = parse_network(
        doc,
        custom_networking=config.custom_networking,
        subnet_discovery=config.subnet_discovery,
        cluster_name=env.get("CLUSTER_NAME", ""),
    )
    host_ips = whole(doc.get("host_networking_ips", HOST_NETWORK_PODS), "host_networking_ips", 0)
    raw_groups = doc.get("node_groups")
    if not isinstance(raw_groups, list) or not raw_groups:
        raise ScenarioError("node_groups: give a non-empty list of node groups")
    groups = tuple(
        _group(index, raw, config, network, resolve) for index, raw in enumerate(raw_groups)
    )
    _check_eniconfigs(network, groups)
    raw_ec2 = as_object(doc.get("ec2", {}), "ec2")
    try:
        ec2 = knobs_from_json(raw_ec2, SIMULATION_KNOBS, "ec2")
    except VpccniError as error:
        raise ScenarioError(str(error)) from None
    subnets = tuple(s.cidr for s in network.subnets)
    return Scenario(config, env, subnets, host_ips, groups, ec2, "seed" in raw_ec2, network)


def node_subnet_index(scenario: Scenario, group: int, ordinal: int) -> int | None:
    """The subnet (index) of a node: its group's, else round-robin over the node subnets."""
    return _node_subnet(scenario.network, scenario.groups[group].subnet, ordinal)


def _node_subnet(network: Network, chosen: int | None, ordinal: int) -> int | None:
    if chosen is not None:
        return chosen
    candidates = network.node_subnets
    return candidates[ordinal % len(candidates)] if candidates else None


def _check_eniconfigs(network: Network, groups: Sequence[NodeGroup]) -> None:
    """Every node must find its ENIConfig in its own AZ (custom networking)."""
    ordinal = 0
    for group in groups:
        seen: set[int] = set()
        for _ in group.pods:
            subnet = _node_subnet(network, group.subnet, ordinal)
            ordinal += 1
            if subnet is None or subnet in seen:
                continue
            seen.add(subnet)
            check_node_eniconfig(network, group.eniconfig, subnet, f"node_groups[{group.index}]")


def _config(doc: Mapping[str, Any]) -> tuple[IpamConfig, dict[str, str]]:
    raw_env = as_object(doc.get("env", {}), "env")
    env: dict[str, str] = {}
    for key, value in raw_env.items():
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise ScenarioError(
                f"env.{key}: {value!r} is not a string; give the variable's value as text, "
                'e.g. "5" or "true"'
            )
        env[str(key)] = str(value)
    custom = doc.get("custom_networking")
    if custom is not None:
        if not isinstance(custom, bool):
            raise ScenarioError(f"custom_networking: {custom!r} is not true or false")
        given = env.get(CUSTOM_NETWORK_VARIABLE)
        if given is not None and given.lower() != str(custom).lower():
            raise ScenarioError(
                f"custom_networking {str(custom).lower()} contradicts "
                f"env.{CUSTOM_NETWORK_VARIABLE}={given!r}; give one of them"
            )
        env[CUSTOM_NETWORK_VARIABLE] = "true" if custom else "false"
    mode = doc.get("mode")
    if mode is not None and mode not in MODES:
        raise ScenarioError(f"mode: {mode!r} is not one of {', '.join(MODES)}")
    try:
        config = parse_ipam_config(env)
        if mode is not None:
            wanted = mode == "prefix"
            if "ENABLE_PREFIX_DELEGATION" in env and config.prefix_delegation != wanted:
                raise ScenarioError(
                    f"mode {mode!r} contradicts env.ENABLE_PREFIX_DELEGATION="
                    f"{env['ENABLE_PREFIX_DELEGATION']!r}; give one of them"
                )
            env["ENABLE_PREFIX_DELEGATION"] = "true" if wanted else "false"
            config = parse_ipam_config(env)
    except ConfigError as error:
        raise ScenarioError(f"env: {error}") from None
    refusals = startup_refusals(config)
    if refusals:
        raise ScenarioError("env: the daemon would refuse to start: " + "; ".join(refusals))
    return config, env


def _group(
    index: int,
    raw: Any,
    config: IpamConfig,
    network: Network,
    resolve: ResolveInstance,
) -> NodeGroup:
    where = f"node_groups[{index}]"
    doc = as_object(raw, where)
    known(doc, GROUP_FIELDS, where)
    limits = _limits(doc, where, index, resolve)
    if config.prefix_delegation and not limits.prefixes_allowed:
        raise ScenarioError(
            f"{where}.instance_type: prefix mode on {limits.instance_type}, which is "
            f"{limits.hypervisor_label}: prefixes need Nitro; the daemon refuses to start"
        )
    pods = _pods(doc, where)
    # the secondary-IP figure nodes get by default (eni-max-pods.txt), minus the primary ENI
    # with custom networking: what ``vpccni max-pods [--custom-networking]`` says
    options = MaxPodsOptions(custom_networking=config.custom_networking)
    max_pods_default = compute_max_pods(limits, options).uncapped
    max_pods = whole(doc.get("max_pods", max_pods_default), f"{where}.max_pods", 1)
    node_limits = NodeLimits(limits.enis, limits.ipv4_per_eni, max_pods, limits.trunking)
    name = doc.get("name", f"group{index}")
    if not isinstance(name, str) or not name.strip():
        raise ScenarioError(f"{where}.name: give a non-empty string")
    subnet = _group_subnet(doc.get("subnet"), network, where)
    workload = None if doc.get("workload") is None else _workload(doc["workload"], where)
    eniconfig = _group_eniconfig(doc.get("eniconfig"), network, where)
    return NodeGroup(index, name.strip(), limits, node_limits, pods, subnet, workload, eniconfig)


def _limits(doc: Mapping[str, Any], where: str, index: int, resolve: ResolveInstance) -> Any:
    has_type, has_limits = "instance_type" in doc, "limits" in doc
    if has_type == has_limits:
        raise ScenarioError(
            f'{where}: give exactly one of instance_type (e.g. "c5.large") or limits '
            '({"max_enis": 3, "ipv4_per_eni": 10})'
        )
    if has_type:
        name = doc["instance_type"]
        if not isinstance(name, str):
            raise ScenarioError(f"{where}.instance_type: {name!r} is not a string")
        try:
            return resolve(name)
        except VpccniError as error:
            raise ScenarioError(f"{where}.instance_type: {error}") from None
    body = as_object(doc["limits"], f"{where}.limits")
    known(body, ("max_enis", "ipv4_per_eni"), f"{where}.limits")
    for key in ("max_enis", "ipv4_per_eni"):
        if key not in body:
            raise ScenarioError(f"{where}.limits.{key}: missing")
    enis = whole(body["max_enis"], f"{where}.limits.max_enis", 1)
    per_eni = whole(body["ipv4_per_eni"], f"{where}.limits.ipv4_per_eni", 2)
    return InstanceLimits(
        instance_type=f"custom{index}.limits",
        enis=enis,
        enis_all_cards=enis,
        ipv4_per_eni=per_eni,
        default_network_card_index=0,
        network_cards=(NetworkCard(0, enis),),
        hypervisor="nitro",
        bare_metal=False,
        trunking=False,
        branch_interfaces=0,
        vcpus=None,
    )


def _pods(doc: Mapping[str, Any], where: str) -> tuple[int, ...]:
    raw = doc.get("pods", 0)
    nodes = doc.get("nodes")
    if isinstance(raw, list):
        pods = tuple(whole(v, f"{where}.pods[{i}]", 0) for i, v in enumerate(raw))
        if not pods:
            raise ScenarioError(f"{where}.pods: the list is empty; give one count per node")
        if nodes is not None and whole(nodes, f"{where}.nodes", 1) != len(pods):
            raise ScenarioError(
                f"{where}.pods: {len(pods)} counts for nodes={nodes}; give one count per node"
            )
        return pods
    count = whole(raw, f"{where}.pods", 0)
    if nodes is None:
        raise ScenarioError(f"{where}.nodes: missing; give the number of nodes (1 or more)")
    return (count,) * whole(nodes, f"{where}.nodes", 1)


def _group_subnet(raw: Any, network: Network, where: str) -> int | None:
    if raw is None:
        return None
    names = [str(network.subnets[i].cidr) for i in network.node_subnets]
    index = network.index_of(raw) if isinstance(raw, str) else None
    if index is None or index not in network.node_subnets:
        raise ScenarioError(
            f"{where}.subnet: {raw!r} is not one of subnet_cidr ({', '.join(names) or 'none'}); "
            "nodes are launched in node subnets"
        )
    return index


def _group_eniconfig(raw: Any, network: Network, where: str) -> str | None:
    if raw is None:
        return None
    if not network.custom_networking:
        raise ScenarioError(
            f"{where}.eniconfig: given, but custom networking is off; set custom_networking: "
            "true or drop it"
        )
    if raw not in network.eniconfigs:
        raise ScenarioError(
            f"{where}.eniconfig: {raw!r} is not one of eniconfigs "
            f"({', '.join(sorted(network.eniconfigs))})"
        )
    return str(raw)


def _workload(raw: Any, where: str) -> Workload:
    where = f"{where}.workload"
    doc = as_object(raw, where)
    known(doc, WORKLOAD_FIELDS, where)
    lifetime = doc.get("lifetime", "exponential")
    if lifetime not in LIFETIMES:
        raise ScenarioError(f"{where}.lifetime: {lifetime!r} is not one of {', '.join(LIFETIMES)}")
    stop = doc.get("stop_minutes")
    bursts: list[Burst] = []
    for i, item in enumerate(list_of_objects(doc.get("bursts", []), f"{where}.bursts")):
        at = f"{where}.bursts[{i}]"
        known(item, ("at_minutes", "pods", "lifetime_minutes"), at)
        life = item.get("lifetime_minutes")
        bursts.append(
            Burst(
                number(item.get("at_minutes", 0.0), f"{at}.at_minutes", 0.0),
                whole(item.get("pods"), f"{at}.pods", 1),
                None if life is None else number(life, f"{at}.lifetime_minutes", 0.0),
            )
        )
    scale_out: list[ScaleOut] = []
    for i, item in enumerate(list_of_objects(doc.get("scale_out", []), f"{where}.scale_out")):
        at = f"{where}.scale_out[{i}]"
        known(item, ("at_minutes", "nodes", "pods"), at)
        scale_out.append(
            ScaleOut(
                number(item.get("at_minutes", 0.0), f"{at}.at_minutes", 0.0),
                whole(item.get("nodes"), f"{at}.nodes", 1),
                whole(item.get("pods", 0), f"{at}.pods", 0),
            )
        )
    lifetime_minutes = number(doc.get("lifetime_minutes", 30.0), f"{where}.lifetime_minutes", 0.0)
    if lifetime_minutes <= 0:
        raise ScenarioError(f"{where}.lifetime_minutes: must be more than 0 minutes")
    return Workload(
        arrivals_per_minute=number(
            doc.get("arrivals_per_minute", 0.0), f"{where}.arrivals_per_minute", 0.0
        ),
        lifetime_minutes=lifetime_minutes,
        lifetime=lifetime,
        start_minutes=number(doc.get("start_minutes", 0.0), f"{where}.start_minutes", 0.0),
        stop_minutes=None if stop is None else number(stop, f"{where}.stop_minutes", 0.0),
        bursts=tuple(bursts),
        scale_out=tuple(scale_out),
    )
