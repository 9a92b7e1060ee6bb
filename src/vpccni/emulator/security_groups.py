"""Security groups with EC2's rules: creating them, and the groups an ENI or instance may have.

Owns :func:`create_security_group` and the checks of the groups a request names:

* a name and a description are up to 255 characters of ``a-z A-Z 0-9``, spaces and
  ``._-:/()#,@[]+=&;{}!$*``; a name cannot start with ``sg-``; names are case-insensitive and
  unique within the VPC (``InvalidGroup.Duplicate``) - the CreateSecurityGroup API reference;
* an ENI (CreateNetworkInterface ``Groups``, ModifyNetworkInterfaceAttribute ``Groups``) has at
  most :data:`MAX_PER_INTERFACE` groups (the default quota "Security groups per network
  interface"; ``SecurityGroupsPerInterfaceLimitExceeded``) and an unknown group answers
  ``InvalidSecurityGroupID.NotFound`` ("The securityGroup ID 'sg-...' does not exist", the error
  the EKS User Guide shows for CreateNetworkInterface); an instance (RunInstances
  ``SecurityGroupIds``) likewise with ``SecurityGroupsPerInstanceLimitExceeded`` and
  ``InvalidGroup.NotFound``;
* a group of another VPC answers ``InvalidParameter`` (EC2's error-code list: "you can't specify a
  security group and subnet that are in different VPCs").

EC2 does not document which code ModifyNetworkInterfaceAttribute gives an unknown group; the
CreateNetworkInterface one is used. Functions over a :class:`~vpccni.emulator.store.Store`; each
raises before changing anything.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from vpccni.emulator.errors import Ec2Error, invalid_parameter, invalid_parameter_for, well_formed
from vpccni.emulator.records import SecurityGroup, Tags
from vpccni.emulator.store import Store

MAX_PER_INTERFACE = 5
"""Default quota of security groups per network interface (and so per instance)."""
MAX_TEXT = 255
ALLOWED = re.compile(r"[a-zA-Z0-9 ._\-:/()#,@\[\]+=&;{}!$*]*")


def check_text(parameter: str, value: str) -> None:
    """A GroupName or GroupDescription as EC2 accepts it for a VPC security group."""
    shown = value if len(value) <= 40 else value[:40] + "..."
    if len(value) > MAX_TEXT:
        raise invalid_parameter(
            f"Value ({shown}) for parameter {parameter} is invalid: it is {len(value)} characters "
            f"long; the limit is {MAX_TEXT}."
        )
    if not ALLOWED.fullmatch(value):
        raise invalid_parameter(
            f"Value ({shown}) for parameter {parameter} is invalid. Valid characters: a-z, A-Z, "
            "0-9, spaces, and ._-:/()#,@[]+=&;{}!$*"
        )


def create_security_group(
    store: Store, vpc_id: str, name: str, description: str, tags: Tags = ()
) -> SecurityGroup:
    """A new group in ``vpc_id`` (with no rules: the emulator does not model rules)."""
    store.vpc(vpc_id)
    check_text("GroupName", name)
    check_text("GroupDescription", description)
    if name.lower().startswith("sg-"):
        raise invalid_parameter(
            f"Value ({name}) for parameter GroupName is invalid. Group names may not be in the "
            "format sg-*."
        )
    if any(g.vpc_id == vpc_id and g.name.lower() == name.lower() for g in store.groups.values()):
        raise Ec2Error(
            "InvalidGroup.Duplicate",
            f"The security group '{name}' already exists for VPC '{vpc_id}'",
        )
    group = SecurityGroup(store.mint("group"), name, vpc_id, description, tags)
    store.groups[group.group_id] = group
    return group


def interface_group(store: Store, group_id: str) -> SecurityGroup:
    """A group named for an ENI: ``InvalidGroupId.Malformed`` for a malformed id,
    ``InvalidSecurityGroupID.NotFound`` for an unknown one."""
    found = store.groups.get(group_id)
    if found is not None:
        return found
    if not well_formed("group", group_id):
        store.group(group_id)  # raises InvalidGroupId.Malformed
    raise Ec2Error(
        "InvalidSecurityGroupID.NotFound", f"The securityGroup ID '{group_id}' does not exist"
    )


def check_interface_groups(
    store: Store, group_ids: Sequence[str], vpc_id: str, owner: str
) -> tuple[str, ...]:
    """The groups of an ENI in ``vpc_id`` (``owner`` names the subnet or ENI for messages),
    each once, in the order given."""
    unique = tuple(dict.fromkeys(group_ids))
    if len(unique) > MAX_PER_INTERFACE:
        raise Ec2Error(
            "SecurityGroupsPerInterfaceLimitExceeded",
            f"You have exceeded the limit of {MAX_PER_INTERFACE} security groups per network "
            f"interface ({len(unique)} given).",
        )
    for group_id in unique:
        _same_vpc(interface_group(store, group_id), vpc_id, owner)
    return unique


def check_instance_groups(
    store: Store, group_ids: Sequence[str], vpc_id: str, owner: str
) -> tuple[str, ...]:
    """The groups of a new instance in ``vpc_id``, as ``check_interface_groups`` with
    RunInstances' codes."""
    unique = tuple(dict.fromkeys(group_ids))
    if len(unique) > MAX_PER_INTERFACE:
        raise Ec2Error(
            "SecurityGroupsPerInstanceLimitExceeded",
            f"You have exceeded the limit of {MAX_PER_INTERFACE} security groups per instance "
            f"({len(unique)} given).",
        )
    for group_id in unique:
        _same_vpc(store.group(group_id), vpc_id, owner)
    return unique


def _same_vpc(group: SecurityGroup, vpc_id: str, owner: str) -> None:
    if group.vpc_id != vpc_id:
        raise invalid_parameter_for(
            f"Security group {group.group_id} and {owner} belong to different networks: use a "
            f"security group of {vpc_id}."
        )
