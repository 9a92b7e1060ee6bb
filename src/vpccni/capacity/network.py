"""The network part of a planning scenario: the VPC's CIDR blocks, subnets, AZs, ENIConfigs.

A scenario names its node subnets (``subnet_cidr``, where nodes are launched) and, apart from
them, the subnets pods may get addresses from: ``pod_subnets`` (plain subnets, e.g. the ones
ENIConfigs name for custom networking) and ``cni_subnets`` (subnets tagged
``kubernetes.io/role/cni=1``, which subnet discovery grows into). Every subnet sits in an
availability zone and in one of the VPC's CIDR blocks (``vpc: {cidr, secondary_cidrs}``; without
``vpc`` the /16 around each subnet stands in). With custom networking every node has an
ENIConfig: its group's ``eniconfig``, else the one named after its AZ (as with
``ENI_CONFIG_LABEL_DEF=topology.kubernetes.io/zone``), else ``default``; the ENIConfig's subnet
must be in the node's AZ, as upstream requires.

``parse_network`` validates all of it and raises ``ScenarioError`` naming the field; this module
is pure (no I/O), shared by ``vpccni plan`` and ``vpccni simulate``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Network
from typing import Any

from vpccni.capacity.fields import MIN_PREFIX, ScenarioError, as_object, cidr, kind, known
from vpccni.core.cluster import DEFAULT_ENICONFIG_NAME
from vpccni.core.subnets import ROLE_TAG
from vpccni.emulator.errors import Ec2Error
from vpccni.emulator.vpc_cidrs import MAX_BLOCKS, check_association, parse_vpc_cidr

DEFAULT_ZONE = "us-west-2a"
SUBNET_FIELDS = ("cidr", "availability_zone", "tags")
VPC_FIELDS = ("cidr", "secondary_cidrs")
ENICONFIG_FIELDS = ("subnet", "security_groups")
SUBNET_RESERVED = 5
SHARED_RANGE = IPv4Network("100.64.0.0/10")
"""RFC 6598's range, which the EKS guide suggests for secondary CIDRs of pod subnets."""
_ZONE = re.compile(r"([a-z]{2}(?:-[a-z]+)+-\d+)(?:-[a-z]+-\d+)?[a-z]")


@dataclass(frozen=True)
class SubnetSpec:
    """One subnet of the scenario's VPC."""

    cidr: IPv4Network
    availability_zone: str
    tags: tuple[tuple[str, str], ...] = ()
    for_nodes: bool = True  # listed in subnet_cidr: nodes are launched in it
    where: str = "subnet_cidr"

    @property
    def usable(self) -> int:
        """Addresses EC2 hands out: AWS reserves five of every subnet."""
        return max(self.cidr.num_addresses - SUBNET_RESERVED, 0)

    @property
    def tag_map(self) -> dict[str, str]:
        return dict(self.tags)

    @property
    def role(self) -> str:
        """``node`` (nodes launch in it), ``cni`` (tagged for discovery) or ``pod``."""
        if self.for_nodes:
            return "node"
        return "cni" if ROLE_TAG in self.tag_map else "pod"


@dataclass(frozen=True)
class VpcSpec:
    """The VPC's primary and secondary IPv4 CIDR blocks; ``given`` False when derived."""

    cidr: IPv4Network
    secondary_cidrs: tuple[IPv4Network, ...] = ()
    given: bool = True

    @property
    def blocks(self) -> tuple[IPv4Network, ...]:
        return (self.cidr, *self.secondary_cidrs)


@dataclass(frozen=True)
class EniConfigSpec:
    """An ENIConfig: new pod ENIs go to ``subnet`` (an index into the scenario's subnets)."""

    name: str
    subnet: int
    security_groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class Network:
    """The validated network of a scenario."""

    subnets: tuple[SubnetSpec, ...] = ()
    vpc: VpcSpec | None = None
    custom_networking: bool = False
    eniconfigs: Mapping[str, EniConfigSpec] = field(default_factory=dict)
    subnet_discovery: bool = True
    cluster_name: str = ""

    @property
    def node_subnets(self) -> tuple[int, ...]:
        """Indexes of the subnets nodes are launched in (round-robin order)."""
        return tuple(i for i, s in enumerate(self.subnets) if s.for_nodes)

    @property
    def region(self) -> str:
        zones = [s.availability_zone for s in self.subnets]
        return region_of(zones[0]) if zones else region_of(DEFAULT_ZONE)

    @property
    def separate_pod_subnets(self) -> bool:
        """Pods may get addresses outside their node's subnet."""
        return self.custom_networking or any(not s.for_nodes for s in self.subnets)

    def index_of(self, cidr: str) -> int | None:
        for index, subnet in enumerate(self.subnets):
            if str(subnet.cidr) == cidr:
                return index
        return None

    def eniconfig_for(self, explicit: str | None, node_subnet: int) -> str:
        """The ENIConfig name a node uses: its group's, its AZ's, else ``default``."""
        if explicit is not None:
            return explicit
        zone = self.subnets[node_subnet].availability_zone
        return zone if zone in self.eniconfigs else DEFAULT_ENICONFIG_NAME


def room_for(network: Network, prefixlen: int, secondary_only: bool) -> IPv4Network | None:
    """The first /``prefixlen`` in the VPC's blocks that no subnet of the scenario overlaps
    (the secondary blocks first; only them when ``secondary_only``)."""
    vpc = network.vpc
    if vpc is None:
        return None
    blocks: list[IPv4Network] = list(vpc.secondary_cidrs)
    if not secondary_only:
        blocks.append(vpc.cidr)
    taken = [s.cidr for s in network.subnets]
    for block in blocks:
        if block.prefixlen > prefixlen:
            continue
        for candidate in block.subnets(new_prefix=prefixlen):
            if not any(candidate.overlaps(t) for t in taken):
                return candidate
    return None


def spare_block(network: Network) -> IPv4Network | None:
    """A /16 of 100.64.0.0/10 the VPC could take as another secondary block (None when the VPC
    is at EC2's default quota of blocks or has all of that range)."""
    vpc = network.vpc
    if vpc is None or len(vpc.blocks) >= MAX_BLOCKS:
        return None
    for candidate in SHARED_RANGE.subnets(new_prefix=MIN_PREFIX):
        if not any(candidate.overlaps(b) for b in vpc.blocks):
            return candidate
    return None


def region_of(zone: str) -> str:
    """``us-west-2a`` -> ``us-west-2`` (local zones: ``us-west-2-lax-1a`` -> ``us-west-2``)."""
    match = _ZONE.fullmatch(zone)
    return match.group(1) if match else zone


def parse_network(
    doc: Mapping[str, Any],
    *,
    custom_networking: bool,
    subnet_discovery: bool,
    cluster_name: str,
) -> Network:
    """``subnet_cidr``, ``pod_subnets``, ``cni_subnets``, ``vpc`` and ``eniconfigs``."""
    subnets: list[SubnetSpec] = []
    for name, for_nodes, tags in (
        ("subnet_cidr", True, ()),
        ("pod_subnets", False, ()),
        ("cni_subnets", False, ((ROLE_TAG, "1"),)),
    ):
        raw = doc.get(name)
        if raw is None:
            continue
        if name != "subnet_cidr" and not isinstance(raw, list):
            raise ScenarioError(f"{name}: expected a list of subnets, got {kind(raw)}")
        items = raw if isinstance(raw, list) else [raw]
        for position, item in enumerate(items):
            where = f"{name}[{position}]" if isinstance(raw, list) else name
            subnets.append(_subnet(item, where, for_nodes, tags, subnets))
    zones = {s.availability_zone for s in subnets}
    regions = sorted({region_of(z) for z in zones})
    if len(regions) > 1:
        raise ScenarioError(
            f"availability_zone: the subnets' zones are in {len(regions)} regions "
            f"({', '.join(regions)}); a VPC lives in one region"
        )
    vpc = _vpc(doc.get("vpc"), subnets)
    eniconfigs = _eniconfigs(doc.get("eniconfigs"), subnets, custom_networking)
    if (doc.get("pod_subnets") or custom_networking) and not any(s.for_nodes for s in subnets):
        reason = "custom networking" if custom_networking else "pod_subnets"
        raise ScenarioError(
            f"subnet_cidr: {reason} needs the node subnets too (where nodes are launched and "
            "their primary ENIs live); list them in subnet_cidr"
        )
    return Network(
        tuple(subnets), vpc, custom_networking, eniconfigs, subnet_discovery, cluster_name
    )


def check_node_eniconfig(network: Network, explicit: str | None, subnet: int, where: str) -> None:
    """Refuse a node whose ENIConfig is missing or in another AZ (the daemon makes no ENI)."""
    if not network.custom_networking:
        return
    name = network.eniconfig_for(explicit, subnet)
    zone = network.subnets[subnet].availability_zone
    config = network.eniconfigs.get(name)
    if config is None:
        tried = (
            f"'{name}'"
            if explicit is not None
            else f"'{zone}' (its availability zone) or '{DEFAULT_ENICONFIG_NAME}'"
        )
        raise ScenarioError(
            f"{where}: custom networking, and no ENIConfig for nodes in "
            f"{network.subnets[subnet].cidr} ({zone}): none named {tried}; add "
            f"eniconfigs.{name if explicit else zone}, as the daemon would create no ENI"
        )
    pod = network.subnets[config.subnet]
    if pod.availability_zone != zone:
        raise ScenarioError(
            f"{where}: ENIConfig '{name}' names subnet {pod.cidr} in {pod.availability_zone}, "
            f"but these nodes are in {zone}; an ENI must be in its instance's AZ (the daemon "
            f"would create no ENI): give eniconfigs.{name}.subnet a subnet in {zone}"
        )


# -- parts ----------------------------------------------------------------------------------------


def _subnet(
    raw: Any,
    where: str,
    for_nodes: bool,
    default_tags: tuple[tuple[str, str], ...],
    seen: Sequence[SubnetSpec],
) -> SubnetSpec:
    zone = DEFAULT_ZONE
    tags = dict(default_tags)
    if isinstance(raw, Mapping):
        known(raw, SUBNET_FIELDS, where)
        if "cidr" not in raw:
            raise ScenarioError(
                f'{where}.cidr: missing; give the subnet\'s CIDR, e.g. "10.0.0.0/20"'
            )
        text = raw["cidr"]
        cidr_where = f"{where}.cidr"
        zone = _zone(raw.get("availability_zone", DEFAULT_ZONE), f"{where}.availability_zone")
        tags.update(_tags(raw.get("tags", {}), f"{where}.tags"))
    else:
        text, cidr_where = raw, where
    network = cidr(text, cidr_where, "AWS subnets")
    for other in seen:
        if network.overlaps(other.cidr):
            raise ScenarioError(f"{cidr_where}: {network} overlaps {other.cidr} ({other.where})")
    return SubnetSpec(network, zone, tuple(sorted(tags.items())), for_nodes, where)


def _zone(raw: Any, where: str) -> str:
    if not isinstance(raw, str) or _ZONE.fullmatch(raw) is None:
        raise ScenarioError(f"{where}: {raw!r} is not an availability zone name such as us-west-2a")
    return raw


def _tags(raw: Any, where: str) -> dict[str, str]:
    if not isinstance(raw, Mapping):
        raise ScenarioError(f"{where}: expected a mapping of tag keys to values, got {kind(raw)}")
    found: dict[str, str] = {}
    for key, value in raw.items():
        if not isinstance(key, str) or not key:
            raise ScenarioError(f"{where}: tag key {key!r} is not a non-empty string")
        if not isinstance(value, str):
            raise ScenarioError(
                f'{where}.{key}: {value!r} is not a string; EC2 tag values are text, e.g. "1"'
            )
        found[key] = value
    return found


def _vpc(raw: Any, subnets: Sequence[SubnetSpec]) -> VpcSpec | None:
    if raw is None:
        return _derived_vpc(subnets)
    doc = as_object(raw, "vpc")
    known(doc, VPC_FIELDS, "vpc")
    if "cidr" not in doc:
        raise ScenarioError('vpc.cidr: missing; give the VPC\'s primary CIDR, e.g. "10.0.0.0/16"')
    primary = cidr(doc["cidr"], "vpc.cidr", "VPC CIDR blocks")
    raw_secondary = doc.get("secondary_cidrs", [])
    if not isinstance(raw_secondary, list):
        raise ScenarioError(
            f"vpc.secondary_cidrs: expected a list of CIDRs, got {kind(raw_secondary)}"
        )
    _refused_primary(primary, "vpc.cidr")
    blocks = [primary]
    for position, text in enumerate(raw_secondary):
        where = f"vpc.secondary_cidrs[{position}]"
        block = cidr(text, where, "VPC CIDR blocks")
        try:
            check_association("the VPC", [str(b) for b in blocks], str(block))
        except Ec2Error as error:
            raise ScenarioError(f"{where}: EC2 would refuse {block}: {error.message}") from None
        blocks.append(block)
    for subnet in subnets:
        if not any(subnet.cidr.subnet_of(block) for block in blocks):
            raise ScenarioError(
                f"{subnet.where}: {subnet.cidr} is in none of the VPC's CIDR blocks "
                f"({', '.join(str(b) for b in blocks)}); add a vpc.secondary_cidrs block that "
                "holds it"
            )
    return VpcSpec(primary, tuple(blocks[1:]))


def _derived_vpc(subnets: Sequence[SubnetSpec]) -> VpcSpec | None:
    """No ``vpc``: the /16 around each subnet, in order of appearance."""
    blocks: list[IPv4Network] = []
    for subnet in subnets:
        block = subnet.cidr.supernet(new_prefix=MIN_PREFIX)
        if block in blocks:
            continue
        if not blocks:
            _refused_primary(block, subnet.where)
        else:
            try:
                check_association("the VPC", [str(b) for b in blocks], str(block))
            except Ec2Error as error:
                raise ScenarioError(
                    f"{subnet.where}: {subnet.cidr} needs the VPC block {block} beside "
                    f"{', '.join(str(b) for b in blocks)}, which EC2 refuses ({error.message}); "
                    "give vpc: {cidr, secondary_cidrs} with blocks EC2 allows together"
                ) from None
        blocks.append(block)
    if not blocks:
        return None
    return VpcSpec(blocks[0], tuple(blocks[1:]), given=False)


def _refused_primary(block: IPv4Network, where: str) -> None:
    try:
        parse_vpc_cidr(str(block))
    except Ec2Error as error:
        raise ScenarioError(
            f"{where}: EC2 would refuse {block} as a VPC block: {error.message}"
        ) from None


def _eniconfigs(
    raw: Any, subnets: Sequence[SubnetSpec], custom_networking: bool
) -> dict[str, EniConfigSpec]:
    if raw is None:
        if custom_networking:
            raise ScenarioError(
                "eniconfigs: custom networking is on and no ENIConfig is given; give one per "
                'availability zone, e.g. {"us-west-2a": {"subnet": "100.64.0.0/18"}}'
            )
        return {}
    doc = as_object(raw, "eniconfigs")
    if not custom_networking:
        raise ScenarioError(
            "eniconfigs: given, but custom networking is off; set custom_networking: true "
            "(or env.AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG) or drop them"
        )
    if not doc:
        raise ScenarioError("eniconfigs: empty; give one ENIConfig per availability zone")
    by_cidr = {str(s.cidr): i for i, s in enumerate(subnets)}
    found: dict[str, EniConfigSpec] = {}
    for name, body in doc.items():
        where = f"eniconfigs.{name}"
        if not isinstance(name, str) or not name.strip():
            raise ScenarioError(f"eniconfigs: {name!r} is not a name")
        spec = as_object(body, where)
        known(spec, ENICONFIG_FIELDS, where)
        subnet = spec.get("subnet")
        if subnet not in by_cidr:
            listed = ", ".join(by_cidr) or "none"
            raise ScenarioError(
                f"{where}.subnet: {subnet!r} is not a subnet of the scenario ({listed}); list "
                "it in pod_subnets with its availability_zone"
            )
        groups = spec.get("security_groups", [])
        if not isinstance(groups, list) or not all(
            isinstance(g, str) and g.strip() for g in groups
        ):
            raise ScenarioError(
                f"{where}.security_groups: expected a list of security group names, e.g. "
                '["pods"]; empty means the primary ENI\'s groups'
            )
        found[name] = EniConfigSpec(name, by_cidr[subnet], tuple(groups))
    return found
