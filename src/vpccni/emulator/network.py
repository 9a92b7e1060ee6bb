"""VPCs, subnets, security groups, instances and tags, with EC2's validation.

Functions over a :class:`~vpccni.emulator.store.Store`. A VPC gets a ``default`` security group and
may gain secondary IPv4 blocks (``associate_vpc_cidr_block``, rules in ``vpc_cidrs``); a subnet
must lie inside one of its VPC's blocks, be /16../28 and not overlap a sibling; an instance is
launched with a primary ENI (device index 0, DeleteOnTermination true) in its subnet and any
ImageId is accepted. Terminating an instance deletes its ENIs marked DeleteOnTermination and
detaches the others; the instance stays visible as ``terminated``, as in EC2.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from ipaddress import IPv4Network

from vpccni.emulator.addressing import SubnetPool, insufficient_addresses
from vpccni.emulator.errors import Ec2Error, invalid_parameter, not_found
from vpccni.emulator.interfaces import AddressRequest, create_eni
from vpccni.emulator.records import (
    Attachment,
    CidrAssociation,
    Instance,
    SecurityGroup,
    Subnet,
    Tags,
    Vpc,
    check_tag_keys,
    check_tags,
    merge_tags,
    remove_tags,
)
from vpccni.emulator.security_groups import check_instance_groups
from vpccni.emulator.store import Store
from vpccni.emulator.vpc_cidrs import (
    MAX_PREFIX_LENGTH,
    MIN_PREFIX_LENGTH,
    check_association,
    parse_vpc_cidr,
)


@dataclass(frozen=True)
class LaunchRequest:
    """What RunInstances needs: type, subnet, count, and optional groups, tags, address."""

    instance_type: str
    subnet_id: str
    count: int = 1
    min_count: int | None = None
    image_id: str = "ami-00000000000000000"
    group_ids: tuple[str, ...] = ()
    tags: Tags = ()
    eni_tags: Tags = ()
    private_ip: str | None = None


def _subnet_cidr(text: str) -> IPv4Network:
    try:
        network = IPv4Network(text)
    except ValueError as error:
        raise invalid_parameter(f"Value ({text}) for parameter cidrBlock is invalid.") from error
    if not MIN_PREFIX_LENGTH <= network.prefixlen <= MAX_PREFIX_LENGTH:
        raise Ec2Error(
            "InvalidSubnet.Range",
            f"The CIDR '{text}' is invalid: the block size must be between /16 and /28.",
        )
    return network


def create_vpc(store: Store, now: float, cidr: str, tags: Tags = ()) -> Vpc:
    network = parse_vpc_cidr(cidr)
    vpc_id = store.mint("vpc")
    group = SecurityGroup(store.mint("group"), "default", vpc_id, "default VPC security group")
    store.groups[group.group_id] = group
    primary = CidrAssociation(store.mint("cidr-assoc"), str(network))
    vpc = Vpc(vpc_id, str(network), group.group_id, tags, (primary,))
    store.vpcs[vpc_id] = vpc
    return vpc


def associate_vpc_cidr_block(store: Store, vpc_id: str, cidr: str) -> CidrAssociation:
    """Associate a secondary IPv4 block with ``vpc_id`` (EC2's rules: ``vpc_cidrs``)."""
    vpc = store.vpc(vpc_id)
    network = check_association(vpc_id, vpc.cidr_blocks, cidr)
    association = CidrAssociation(store.mint("cidr-assoc"), str(network))
    store.vpcs[vpc_id] = replace(vpc, associations=(*vpc.associations, association))
    return association


def association_owner(store: Store, association_id: str) -> Vpc:
    """The VPC that holds the CIDR block association ``association_id`` (or EC2's NotFound)."""
    for vpc in store.vpcs.values():
        if any(a.association_id == association_id for a in vpc.associations):
            return vpc
    raise not_found("cidr-assoc", association_id)


def disassociate_vpc_cidr_block(store: Store, association_id: str) -> tuple[Vpc, CidrAssociation]:
    """Remove a secondary block; returns the VPC (before) and the association removed.

    The primary block cannot go (``OperationNotPermitted``), nor a block a subnet lies in
    (``InvalidCidrBlock.InUse``), as in EC2.
    """
    vpc = association_owner(store, association_id)
    association = next(a for a in vpc.associations if a.association_id == association_id)
    if association is vpc.associations[0]:
        raise Ec2Error(
            "OperationNotPermitted",
            f"The vpc CIDR block with association ID {association_id} may not be "
            "disassociated. It is the primary IPv4 CIDR block of the VPC",
        )
    block = IPv4Network(association.cidr)
    if any(
        s.vpc_id == vpc.vpc_id and IPv4Network(s.cidr).subnet_of(block)
        for s in store.subnets.values()
    ):
        raise Ec2Error(
            "InvalidCidrBlock.InUse",
            f"The vpc {vpc.vpc_id} currently has a subnet within CIDR block {association.cidr}",
        )
    kept = tuple(a for a in vpc.associations if a.association_id != association_id)
    store.vpcs[vpc.vpc_id] = replace(vpc, associations=kept)
    return vpc, association


def create_subnet(
    store: Store,
    now: float,
    vpc_id: str,
    cidr: str,
    *,
    availability_zone: str | None = None,
    tags: Tags = (),
) -> Subnet:
    vpc = store.vpc(vpc_id)
    network = _subnet_cidr(cidr)
    if not any(network.subnet_of(IPv4Network(block)) for block in vpc.cidr_blocks):
        raise Ec2Error(
            "InvalidSubnet.Range",
            f"The CIDR '{cidr}' is invalid: it lies in none of {vpc_id}'s IPv4 CIDR blocks "
            f"({', '.join(vpc.cidr_blocks)}).",
        )
    for sibling in store.subnets.values():
        if sibling.vpc_id == vpc_id and network.overlaps(IPv4Network(sibling.cidr)):
            raise Ec2Error(
                "InvalidSubnet.Conflict", f"The CIDR '{cidr}' conflicts with another subnet"
            )
    zone = availability_zone or f"{store.region}a"
    if not re.fullmatch(re.escape(store.region) + "[a-z]", zone):
        raise invalid_parameter(
            f"Value ({zone}) for parameter availabilityZone is invalid: a zone of "
            f"{store.region} is its name and one letter ({store.region}a, {store.region}b, ...)."
        )
    subnet = Subnet(store.mint("subnet"), vpc_id, str(network), zone, tags)
    store.subnets[subnet.subnet_id] = subnet
    store.pools[subnet.subnet_id] = SubnetPool(network)
    store.note_available(subnet.subnet_id, now)
    return subnet


def run_instances(store: Store, now: float, request: LaunchRequest) -> tuple[str, list[Instance]]:
    """Launch up to ``count`` (at least ``min_count``) instances; returns (reservation, them)."""
    limits = store.instance_limits(request.instance_type)
    subnet = store.subnet(request.subnet_id)
    minimum = request.count if request.min_count is None else request.min_count
    if not 1 <= minimum <= request.count:
        raise invalid_parameter("MinCount must be at least 1 and at most MaxCount.")
    if request.private_ip and request.count > 1:
        raise invalid_parameter("A private IP address can only be given for a single instance.")
    groups = check_instance_groups(
        store, request.group_ids, subnet.vpc_id, f"subnet {subnet.subnet_id}"
    )
    available = store.pool(subnet.subnet_id).available
    if available < minimum:
        raise insufficient_addresses()
    reservation = store.mint("reservation")
    launched = []
    for _ in range(min(request.count, available)):
        eni = create_eni(
            store,
            now,
            subnet.subnet_id,
            AddressRequest(),
            primary_ip=request.private_ip,
            group_ids=groups,
            tags=request.eni_tags,
        )
        instance = Instance(
            instance_id=store.mint("instance"),
            instance_type=limits.instance_type,
            image_id=request.image_id,
            subnet_id=subnet.subnet_id,
            vpc_id=subnet.vpc_id,
            availability_zone=subnet.availability_zone,
            reservation_id=reservation,
            primary_eni_id=eni.eni_id,
            group_ids=eni.group_ids,
            launch_time=now,
            tags=request.tags,
        )
        attachment = Attachment(
            attachment_id=store.mint("attachment"),
            instance_id=instance.instance_id,
            device_index=0,
            network_card_index=limits.default_network_card_index,
            delete_on_termination=True,
            attach_time=now,
            status="attached",
        )
        store.put_instance(instance, now)
        store.put_eni(replace(eni, attachment=attachment), now)
        launched.append(instance)
    return reservation, launched


def terminate_instances(
    store: Store, now: float, instance_ids: Sequence[str]
) -> list[tuple[Instance, str]]:
    """Terminate; returns each instance with its previous state name."""
    instances = [store.instance(instance_id) for instance_id in instance_ids]
    changes = []
    for instance in instances:
        for eni in store.enis_of(instance.instance_id):
            assert eni.attachment is not None
            if eni.attachment.delete_on_termination:
                store.put_eni(replace(eni, attachment=None), now)
                store.drop_eni(eni.eni_id, now)
            else:
                store.put_eni(replace(eni, attachment=None), now)
        store.put_instance(replace(instance, state="terminated"), now)
        changes.append((store.instances[instance.instance_id], instance.state))
    return changes


# -- tags -------------------------------------------------------------------------------------


def tag_target(store: Store, resource_id: str) -> tuple[str, Tags]:
    """The kind (``eni``, ``instance``, ``subnet``, ``vpc``, ``group``) and tags of a taggable
    resource; EC2's NotFound / Malformed error or ``InvalidID`` when there is none."""
    kinds = (
        ("eni-", "eni", store.enis),
        ("i-", "instance", store.instances),
        ("subnet-", "subnet", store.subnets),
        ("vpc-", "vpc", store.vpcs),
        ("sg-", "group", store.groups),
    )
    for prefix, kind, table in kinds:
        if resource_id.startswith(prefix):
            found = table.get(resource_id)
            if found is None:
                raise not_found(kind, resource_id)
            return kind, found.tags
    raise Ec2Error("InvalidID", f"The ID '{resource_id}' is not valid")


def _set_tags(store: Store, now: float, resource_id: str, tags: Tags) -> None:
    if resource_id in store.enis:
        store.put_eni(replace(store.enis[resource_id], tags=tags), now)
    elif resource_id in store.instances:
        store.put_instance(replace(store.instances[resource_id], tags=tags), now)
    elif resource_id in store.subnets:
        store.subnets[resource_id] = replace(store.subnets[resource_id], tags=tags)
    elif resource_id in store.vpcs:
        store.vpcs[resource_id] = replace(store.vpcs[resource_id], tags=tags)
    else:
        store.groups[resource_id] = replace(store.groups[resource_id], tags=tags)


def create_tags(
    store: Store, now: float, resource_ids: Sequence[str], tags: Iterable[tuple[str, str]]
) -> None:
    new = tuple(tags)
    merged = {rid: merge_tags(tag_target(store, rid)[1], new) for rid in resource_ids}
    for result in merged.values():
        check_tags(new, len(result))
    for resource_id, result in merged.items():
        _set_tags(store, now, resource_id, result)


def delete_tags(
    store: Store,
    now: float,
    resource_ids: Sequence[str],
    doomed: Iterable[tuple[str, str | None]],
) -> None:
    doomed_list = list(doomed)
    check_tag_keys(key for key, _ in doomed_list)
    targets = {rid: tag_target(store, rid)[1] for rid in resource_ids}
    for resource_id, tags in targets.items():
        _set_tags(store, now, resource_id, remove_tags(tags, doomed_list) if doomed_list else ())
