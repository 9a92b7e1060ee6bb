"""The EC2 actions on VPCs, subnets, groups, instances and tags; the helpers all actions share.

Owns :data:`HANDLERS` for those actions (``interface_actions`` has the ENI ones; ``service``
joins both) and the shared helpers (``required``, ``tags_for``, ``registrar``). Parameters
arrive as the dict boto3 would be called with (member names such as ``Filters`` or
``TagSpecifications``) and the result is the dict boto3 would return, so the same handlers serve
the HTTP front (through ``wire``) and in-process callers. The rules live in the model; these
functions only map names, apply Describe* filters and pages, and render views.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from vpccni.emulator.errors import Ec2Error, missing_parameter
from vpccni.emulator.filters import paginate, select
from vpccni.emulator.interfaces import combination
from vpccni.emulator.model import Ec2Model
from vpccni.emulator.network import LaunchRequest
from vpccni.emulator.records import ACCOUNT_ID, Tags, check_tags, merge_tags
from vpccni.emulator.views import (
    cidr_association_view,
    group_fields,
    group_list,
    group_view,
    instance_fields,
    instance_type_fields,
    instance_type_view,
    instance_view,
    subnet_fields,
    subnet_view,
    vpc_fields,
    vpc_view,
)

Params = Mapping[str, Any]
Result = dict[str, Any]
Handler = Callable[[Ec2Model, Params, float], Result]
HANDLERS: dict[str, Handler] = {}

VPC_FILTERS = (
    "vpc-id",
    "cidr",
    "cidr-block-association.cidr-block",
    "cidr-block-association.association-id",
    "cidr-block-association.state",
    "state",
    "is-default",
    "owner-id",
)
INSTANCE_FILTERS = (
    "instance-id",
    "instance-type",
    "instance-state-name",
    "instance-state-code",
    "image-id",
    "reservation-id",
    "subnet-id",
    "vpc-id",
    "availability-zone",
    "private-ip-address",
    "network-interface.network-interface-id",
    "network-interface.addresses.private-ip-address",
    "instance.group-id",
)


def registrar(table: dict[str, Handler]) -> Callable[[str], Callable[[Handler], Handler]]:
    """A decorator factory that files handlers in ``table`` under their EC2 action name."""

    def action(name: str) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            table[name] = handler
            return handler

        return register

    return action


action = registrar(HANDLERS)


def required(params: Params, name: str) -> Any:
    value = params.get(name)
    if value is None or value == "":
        raise missing_parameter(name)
    return value


def tags_for(params: Params, resource_type: str) -> Tags:
    """The TagSpecifications tags for ``resource_type``, held to CreateTags' rules."""
    tags: list[tuple[str, str]] = []
    for spec in params.get("TagSpecifications", []):
        if spec.get("ResourceType") == resource_type:
            tags += [(tag.get("Key", ""), tag.get("Value", "")) for tag in spec.get("Tags", [])]
    check_tags(tags)
    return merge_tags((), tags)


def check_ids_with_pages(params: Params, ids_name: str) -> None:
    if params.get(ids_name) and params.get("MaxResults") is not None:
        raise combination(f"The parameter {ids_name} cannot be used with the parameter maxResults")


# -- VPCs, subnets, security groups ------------------------------------------------------------


@action("CreateVpc")
def create_vpc(model: Ec2Model, p: Params, now: float) -> Result:
    vpc = model.create_vpc(now, required(p, "CidrBlock"), tags_for(p, "vpc"))
    return {"Vpc": vpc_view(vpc)}


@action("DescribeVpcs")
def describe_vpcs(model: Ec2Model, p: Params, now: float) -> Result:
    store = model.store
    ids = p.get("VpcIds") or []
    vpcs = [store.vpc(vpc_id) for vpc_id in ids] if ids else list(store.vpcs.values())
    chosen = select(vpcs, p.get("Filters", []), vpc_fields, lambda v: v.tags, VPC_FILTERS)
    page, token = paginate(chosen, lambda v: v.vpc_id, p.get("MaxResults"), p.get("NextToken"))
    return {"Vpcs": [vpc_view(v) for v in page], "NextToken": token}


IPV6_OR_IPAM = (
    "AmazonProvidedIpv6CidrBlock",
    "Ipv6Pool",
    "Ipv6CidrBlock",
    "Ipv6CidrBlockNetworkBorderGroup",
    "Ipv6IpamPoolId",
    "Ipv6NetmaskLength",
    "Ipv4IpamPoolId",
    "Ipv4NetmaskLength",
)


def ipv4_block(p: Params) -> str:
    """AssociateVpcCidrBlock's ``CidrBlock``: the one way to name a block the emulator models."""
    others = [name for name in IPV6_OR_IPAM if p.get(name)]
    if others:
        raise Ec2Error(
            "InvalidParameterValue",
            f"The emulator associates IPv4 blocks given by CidrBlock only; {', '.join(others)} "
            "(IPv6 and IPAM pools) are not modelled.",
        )
    block = p.get("CidrBlock")
    if not block:
        raise Ec2Error(
            "MissingParameter",
            "The request must contain one of CidrBlock, AmazonProvidedIpv6CidrBlock, Ipv6Pool "
            "or Ipv4IpamPoolId (the emulator models CidrBlock).",
        )
    return str(block)


@action("AssociateVpcCidrBlock")
def associate_vpc_cidr_block(model: Ec2Model, p: Params, now: float) -> Result:
    vpc_id = required(p, "VpcId")
    association = model.associate_vpc_cidr_block(now, vpc_id, ipv4_block(p))
    # EC2 answers with the new block still "associating" (the CLI reference's example); how long
    # until DescribeVpcs shows it "associated" is undocumented: at once here.
    return {
        "CidrBlockAssociation": cidr_association_view(association, "associating"),
        "VpcId": vpc_id,
    }


@action("DisassociateVpcCidrBlock")
def disassociate_vpc_cidr_block(model: Ec2Model, p: Params, now: float) -> Result:
    vpc, association = model.disassociate_vpc_cidr_block(now, required(p, "AssociationId"))
    return {
        "CidrBlockAssociation": cidr_association_view(association, "disassociating"),
        "VpcId": vpc.vpc_id,
    }


@action("CreateSubnet")
def create_subnet(model: Ec2Model, p: Params, now: float) -> Result:
    subnet = model.create_subnet(
        now,
        required(p, "VpcId"),
        required(p, "CidrBlock"),
        availability_zone=p.get("AvailabilityZone"),
        tags=tags_for(p, "subnet"),
    )
    return {"Subnet": subnet_view(model.store, subnet)}


@action("DescribeSubnets")
def describe_subnets(model: Ec2Model, p: Params, now: float) -> Result:
    store = model.store
    at = now - model.delays.subnet_count_lag
    ids = p.get("SubnetIds") or []
    subnets = [store.subnet(sid) for sid in ids] if ids else list(store.subnets.values())
    chosen = select(
        subnets,
        p.get("Filters", []),
        lambda s: subnet_fields(store, s, at),
        lambda s: s.tags,
        (
            "subnet-id",
            "vpc-id",
            "cidr-block",
            "cidr",
            "cidrBlock",
            "availability-zone",
            "availabilityZone",
            "available-ip-address-count",
            "state",
            "default-for-az",
            "owner-id",
        ),
    )
    page, token = paginate(chosen, lambda s: s.subnet_id, p.get("MaxResults"), p.get("NextToken"))
    return {"Subnets": [subnet_view(store, s, at) for s in page], "NextToken": token}


def vpc_for_group(p: Params) -> str:
    """CreateSecurityGroup's ``VpcId``: optional in EC2's API for the default VPC, which the
    emulator does not have (EC2 answers ``VPCIdNotSpecified`` in an account without one)."""
    vpc_id = p.get("VpcId")
    if not vpc_id:
        raise Ec2Error(
            "VPCIdNotSpecified",
            "No default VPC for this user; give a VpcId (the emulator has no default VPC).",
        )
    return str(vpc_id)


@action("CreateSecurityGroup")
def create_security_group(model: Ec2Model, p: Params, now: float) -> Result:
    group = model.create_security_group(
        now,
        vpc_for_group(p),
        required(p, "GroupName"),
        required(p, "Description"),
        tags_for(p, "security-group"),
    )
    return {"GroupId": group.group_id, "Tags": group_view(group)["Tags"]}


@action("DescribeSecurityGroups")
def describe_security_groups(model: Ec2Model, p: Params, now: float) -> Result:
    store = model.store
    ids = p.get("GroupIds") or []
    groups = [store.group(gid) for gid in ids] if ids else list(store.groups.values())
    names = p.get("GroupNames") or []
    if names:
        groups = [g for g in groups if g.name in names]
    chosen = select(
        groups,
        p.get("Filters", []),
        group_fields,
        lambda g: g.tags,
        ("group-id", "group-name", "vpc-id", "description", "owner-id"),
    )
    page, token = paginate(chosen, lambda g: g.group_id, p.get("MaxResults"), p.get("NextToken"))
    return {"SecurityGroups": [group_view(g) for g in page], "NextToken": token}


# -- instances ---------------------------------------------------------------------------------


@action("RunInstances")
def run_instances(model: Ec2Model, p: Params, now: float) -> Result:
    max_count = int(required(p, "MaxCount"))
    min_count = int(required(p, "MinCount"))
    subnet_id = p.get("SubnetId")
    if not subnet_id:
        raise Ec2Error(
            "VPCIdNotSpecified",
            "No default VPC for this user; give a SubnetId (the emulator has no default VPC).",
        )
    request = LaunchRequest(
        instance_type=p.get("InstanceType") or "m1.small",
        subnet_id=subnet_id,
        count=max_count,
        min_count=min_count,
        image_id=p.get("ImageId") or "ami-00000000000000000",
        group_ids=tuple(p.get("SecurityGroupIds") or ()),
        tags=tags_for(p, "instance"),
        eni_tags=tags_for(p, "network-interface"),
        private_ip=p.get("PrivateIpAddress"),
    )
    reservation, instances = model.run_instances(now, request)
    store = model.store
    views = [instance_view(store, i, store.instance_limits(i.instance_type)) for i in instances]
    return {
        "ReservationId": reservation,
        "OwnerId": ACCOUNT_ID,
        "Groups": group_list(store, instances[0].group_ids),
        "Instances": views,
    }


@action("TerminateInstances")
def terminate_instances(model: Ec2Model, p: Params, now: float) -> Result:
    changes = model.terminate_instances(now, required(p, "InstanceIds"))
    codes = {"running": 16, "terminated": 48}
    return {
        "TerminatingInstances": [
            {
                "InstanceId": instance.instance_id,
                "CurrentState": {"Code": 48, "Name": "terminated"},
                "PreviousState": {"Code": codes.get(previous, 16), "Name": previous},
            }
            for instance, previous in changes
        ]
    }


@action("DescribeInstances")
def describe_instances(model: Ec2Model, p: Params, now: float) -> Result:
    store = model.store
    check_ids_with_pages(p, "InstanceIds")
    ids = p.get("InstanceIds") or []
    instances = [store.instance(iid) for iid in ids] if ids else list(store.instances.values())
    chosen = select(
        instances,
        p.get("Filters", []),
        lambda i: instance_fields(store, i),
        lambda i: i.tags,
        INSTANCE_FILTERS,
    )
    page, token = paginate(chosen, lambda i: i.instance_id, p.get("MaxResults"), p.get("NextToken"))
    reservations: dict[str, Result] = {}
    for instance in page:
        reservation = reservations.setdefault(
            instance.reservation_id,
            {
                "ReservationId": instance.reservation_id,
                "OwnerId": ACCOUNT_ID,
                "Groups": [],
                "Instances": [],
            },
        )
        limits = store.instance_limits(instance.instance_type)
        reservation["Instances"].append(instance_view(store, instance, limits))
    return {"Reservations": list(reservations.values()), "NextToken": token}


@action("DescribeInstanceTypes")
def describe_instance_types(model: Ec2Model, p: Params, now: float) -> Result:
    table = model.store.limits
    names = p.get("InstanceTypes") or []
    if names:
        missing = [name for name in names if name not in {t.instance_type for t in table}]
        if missing:
            raise Ec2Error(
                "InvalidInstanceType",
                f"The following supplied instance types do not exist: [{', '.join(missing)}]",
            )
        types = [model.store.instance_limits(name) for name in names]
    else:
        types = list(table)
    chosen = select(
        types,
        p.get("Filters", []),
        instance_type_fields,
        lambda t: (),
        (
            "instance-type",
            "hypervisor",
            "bare-metal",
            "network-info.maximum-network-interfaces",
            "network-info.ipv4-addresses-per-interface",
            "vcpu-info.default-vcpus",
        ),
    )
    max_results = p.get("MaxResults")
    if max_results is None and not names:
        max_results = 100
    page, token = paginate(
        chosen, lambda t: t.instance_type, max_results, p.get("NextToken"), (5, 100)
    )
    return {"InstanceTypes": [instance_type_view(t) for t in page], "NextToken": token}


# -- tags --------------------------------------------------------------------------------------


@action("CreateTags")
def create_tags(model: Ec2Model, p: Params, now: float) -> Result:
    tags: Sequence[Mapping[str, str]] = required(p, "Tags")
    pairs = [(t.get("Key", ""), t.get("Value", "")) for t in tags]
    model.create_tags(now, required(p, "Resources"), pairs)
    return {}


@action("DeleteTags")
def delete_tags(model: Ec2Model, p: Params, now: float) -> Result:
    tags = p.get("Tags") or []
    model.delete_tags(
        now, required(p, "Resources"), [(t.get("Key", ""), t.get("Value")) for t in tags]
    )
    return {}
