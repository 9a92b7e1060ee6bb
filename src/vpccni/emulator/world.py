"""Scenario files: the VPCs, subnets, security groups, instances, knobs and IAM policy to start
with.

Owns :class:`Scenario`, :func:`parse_scenario` (a decoded JSON document -> a validated scenario,
or one clear error naming the bad field) and :func:`apply_scenario` (create it all in an
emulator; EC2 refusals such as an overlapping subnet come back naming the scenario entry). The
format, documented in docs/emulator.md::

    {"region": "us-west-2", "knobs": {...}, "iam_policy": {"Version": "2012-10-17", ...},
     "vpcs": [{"name": "main", "cidr": "10.0.0.0/16", "secondary_cidrs": ["100.64.0.0/16"],
               "tags": {"k": "v"},
               "subnets": [{"name": "a", "cidr": "10.0.0.0/24", "availability_zone":
                            "us-west-2a", "tags": {}}],
               "security_groups": [{"name": "nodes", "description": "...", "tags": {}}]}],
     "instances": [{"name": "node", "type": "m5.large", "subnet": "a", "count": 1,
                    "security_groups": ["nodes"], "tags": {}}]}

Subnets may lie in the primary block or any of ``secondary_cidrs`` (associated in order, with
EC2's rules). Instances get a ``Name`` tag (``name``, or ``name-1``, ``name-2``... when ``count``
> 1); their ``security_groups`` (names in the instance's VPC, or ids) are their primary ENI's.
Names of VPCs, subnets and instances are unique in a scenario, and no security group shares one.
``iam_policy`` (an inline policy document, checked at parse time) is enforced once the
scenario's resources exist (they are created as the account owner, not through the policy).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from vpccni.emulator.errors import Ec2Error, EmulatorSetupError
from vpccni.emulator.iam import Policy, PolicyError, load_policy
from vpccni.emulator.network import LaunchRequest
from vpccni.emulator.realism import Knobs, knobs_from_json
from vpccni.emulator.records import Tags
from vpccni.emulator.service import Emulator

VPC_FIELDS = ("name", "cidr", "secondary_cidrs", "tags", "subnets", "security_groups")
SUBNET_FIELDS = ("name", "cidr", "availability_zone", "tags")


@dataclass(frozen=True)
class SubnetSpec:
    name: str
    cidr: str
    availability_zone: str | None
    tags: Tags


@dataclass(frozen=True)
class GroupSpec:
    name: str
    description: str
    tags: Tags = ()


@dataclass(frozen=True)
class VpcSpec:
    name: str
    cidr: str
    tags: Tags
    subnets: tuple[SubnetSpec, ...]
    groups: tuple[GroupSpec, ...]
    secondary_cidrs: tuple[str, ...] = ()


@dataclass(frozen=True)
class InstanceSpec:
    name: str
    instance_type: str
    subnet: str
    count: int
    groups: tuple[str, ...]
    tags: Tags


@dataclass(frozen=True)
class Scenario:
    region: str | None
    knobs: Mapping[str, Any]
    vpcs: tuple[VpcSpec, ...]
    instances: tuple[InstanceSpec, ...]
    iam_policy: Policy | None = None

    def knobs_over(self, base: Knobs) -> Knobs:
        return knobs_from_json(self.knobs, base, "scenario knobs")


class _Reader:
    """Typed access to one JSON object, with errors that name the field."""

    def __init__(self, value: Any, where: str, fields: tuple[str, ...]) -> None:
        if not isinstance(value, Mapping):
            raise EmulatorSetupError(f"{where} must be a JSON object")
        unknown = sorted(set(value) - set(fields))
        if unknown:
            raise EmulatorSetupError(
                f"{where}: unknown field(s) {', '.join(unknown)}; known: {', '.join(fields)}"
            )
        self.value = value
        self.where = where

    def text(self, name: str, default: str | None = None) -> str:
        value = self.value.get(name, default)
        if not isinstance(value, str) or not value:
            raise EmulatorSetupError(f"{self.where}.{name} must be a non-empty string")
        return value

    def optional_text(self, name: str) -> str | None:
        return self.text(name) if name in self.value else None

    def texts(self, name: str) -> tuple[str, ...]:
        value = self.value.get(name, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise EmulatorSetupError(f"{self.where}.{name} must be a list of non-empty strings")
        return tuple(value)

    def items(self, name: str) -> list[tuple[str, Any]]:
        value = self.value.get(name, [])
        if not isinstance(value, list):
            raise EmulatorSetupError(f"{self.where}.{name} must be a JSON list")
        return [(f"{self.where}.{name}[{index}]", item) for index, item in enumerate(value)]

    def tags(self) -> Tags:
        value = self.value.get("tags", {})
        if not isinstance(value, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise EmulatorSetupError(f"{self.where}.tags must map strings to strings")
        return tuple(value.items())


def parse_scenario(document: Any, where: str = "scenario") -> Scenario:
    """A validated scenario, or EmulatorSetupError naming the first bad field."""
    top = _Reader(document, where, ("region", "knobs", "vpcs", "instances", "iam_policy"))
    knobs = top.value.get("knobs", {})
    knobs_from_json(knobs, Knobs(), f"{where}.knobs")
    policy = None
    if top.value.get("iam_policy") is not None:
        try:
            policy = load_policy(top.value["iam_policy"])
        except PolicyError as error:
            raise PolicyError(f"{where}.iam_policy: {error}") from error
    vpcs = []
    names = _Names()
    for vpc_where, raw in top.items("vpcs"):
        vpc = _Reader(raw, vpc_where, VPC_FIELDS)
        names.add(vpc.text("name"), f"{vpc_where}.name")
        subnets = []
        for subnet_where, subnet_raw in vpc.items("subnets"):
            subnet = _subnet(_Reader(subnet_raw, subnet_where, SUBNET_FIELDS))
            names.add(subnet.name, f"{subnet_where}.name")
            subnets.append(subnet)
        group_specs = []
        for group_where, group_raw in vpc.items("security_groups"):
            group = _Reader(group_raw, group_where, ("name", "description", "tags"))
            names.add_group(vpc.text("name"), group.text("name"), f"{group_where}.name")
            description = group.text("description", "created by a vpccni scenario")
            group_specs.append(GroupSpec(group.text("name"), description, group.tags()))
        vpcs.append(
            VpcSpec(
                vpc.text("name"),
                vpc.text("cidr"),
                vpc.tags(),
                tuple(subnets),
                tuple(group_specs),
                vpc.texts("secondary_cidrs"),
            )
        )
    instances = []
    for inst_where, raw in top.items("instances"):
        inst = _Reader(
            raw, inst_where, ("name", "type", "subnet", "count", "security_groups", "tags")
        )
        count = inst.value.get("count", 1)
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise EmulatorSetupError(f"{inst_where}.count must be a whole number >= 1")
        groups = inst.value.get("security_groups", [])
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            raise EmulatorSetupError(f"{inst_where}.security_groups must be a list of names")
        name = inst.text("name")
        for number in range(1, count + 1):
            names.add(name if count == 1 else f"{name}-{number}", f"{inst_where}.name")
        instances.append(
            InstanceSpec(
                inst.text("name"),
                inst.text("type"),
                inst.text("subnet"),
                count,
                tuple(groups),
                inst.tags(),
            )
        )
    return Scenario(top.optional_text("region"), knobs, tuple(vpcs), tuple(instances), policy)


class _Names:
    """Every name a scenario gives, so that each names one thing (ids are looked up by name)."""

    def __init__(self) -> None:
        self.seen: dict[str, str] = {}
        self.groups: dict[str, str] = {}

    def add(self, name: str, where: str) -> None:
        earlier = self.seen.get(name) or self.groups.get(name)
        if earlier is not None:
            raise EmulatorSetupError(
                f"{where}: the name {name!r} is already used by {earlier}; give each VPC, "
                "subnet, instance and security group its own name"
            )
        self.seen[name] = where

    def add_group(self, vpc: str, name: str, where: str) -> None:
        """Group names are per VPC (two VPCs may each have a group ``nodes``)."""
        earlier = self.seen.get(name) or self.groups.get(f"{vpc}/{name.lower()}")
        if earlier is not None:
            raise EmulatorSetupError(
                f"{where}: the name {name!r} is already used by {earlier}; give each VPC, "
                "subnet, instance and security group its own name"
            )
        self.groups[name] = self.groups[f"{vpc}/{name.lower()}"] = where


def _subnet(reader: _Reader) -> SubnetSpec:
    return SubnetSpec(
        reader.text("name"),
        reader.text("cidr"),
        reader.optional_text("availability_zone"),
        reader.tags(),
    )


def apply_scenario(emulator: Emulator, scenario: Scenario, now: float) -> dict[str, str]:
    """Create the scenario's resources; returns {name: id} for VPCs, subnets, groups, nodes."""
    model = emulator.model
    ids: dict[str, str] = {}
    groups: dict[str, str] = {}
    for index, vpc_spec in enumerate(scenario.vpcs):
        where = f"scenario.vpcs[{index}]"
        with _naming(f"{where}.cidr ({vpc_spec.name})"):
            vpc = model.create_vpc(now, vpc_spec.cidr, vpc_spec.tags)
        ids[vpc_spec.name] = vpc.vpc_id
        groups[f"{vpc.vpc_id}/default"] = vpc.default_group_id
        for position, block in enumerate(vpc_spec.secondary_cidrs):
            with _naming(f"{where}.secondary_cidrs[{position}] ({vpc_spec.name})"):
                model.associate_vpc_cidr_block(now, vpc.vpc_id, block)
        for position, subnet_spec in enumerate(vpc_spec.subnets):
            with _naming(f"{where}.subnets[{position}] ({subnet_spec.name})"):
                subnet = model.create_subnet(
                    now,
                    vpc.vpc_id,
                    subnet_spec.cidr,
                    availability_zone=subnet_spec.availability_zone,
                    tags=subnet_spec.tags,
                )
            ids[subnet_spec.name] = subnet.subnet_id
        for position, group_spec in enumerate(vpc_spec.groups):
            with _naming(f"{where}.security_groups[{position}] ({group_spec.name})"):
                group = model.create_security_group(
                    now, vpc.vpc_id, group_spec.name, group_spec.description, group_spec.tags
                )
            groups[f"{vpc.vpc_id}/{group_spec.name}"] = group.group_id
            ids[group_spec.name] = group.group_id
    for index, spec in enumerate(scenario.instances):
        where = f"scenario.instances[{index}] ({spec.name})"
        subnet_id = ids.get(spec.subnet, spec.subnet)
        home = model.store.subnets.get(subnet_id)
        if home is None:
            raise EmulatorSetupError(f"{where}.subnet: no subnet named or with id {spec.subnet!r}")
        group_ids = []
        for name in spec.groups:
            group_id = groups.get(f"{home.vpc_id}/{name}", name)
            if group_id not in model.store.groups:
                raise EmulatorSetupError(
                    f"{where}.security_groups: no security group {name!r} in the VPC of "
                    f"subnet {spec.subnet!r}"
                )
            group_ids.append(group_id)
        for number in range(1, spec.count + 1):
            name = spec.name if spec.count == 1 else f"{spec.name}-{number}"
            request = LaunchRequest(
                instance_type=spec.instance_type,
                subnet_id=subnet_id,
                group_ids=tuple(group_ids),
                tags=(("Name", name), *spec.tags),
            )
            with _naming(where):
                _, launched = model.run_instances(now, request)
            ids[name] = launched[0].instance_id
    if scenario.iam_policy is not None:
        emulator.set_iam_policy(scenario.iam_policy)
    return ids


@contextmanager
def _naming(where: str) -> Iterator[None]:
    """Turn an EC2 refusal while applying a scenario into a setup error naming the entry."""
    try:
        yield
    except Ec2Error as error:
        raise EmulatorSetupError(f"{where}: {error}") from error
