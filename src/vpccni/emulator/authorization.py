"""What each EC2 action is authorized against: resource ARNs and the condition keys they carry.

Owns :data:`TABLE` (action -> a function listing the :class:`Check` s the request needs: the IAM
action, the resource ARN, the request context) and :func:`checks_for`, which also validates the
request the way the call would before authorizing it (missing parameters, malformed or unknown
ids, tag rules), and :func:`unauthorized` (EC2's ``UnauthorizedOperation`` for a denied check).
Pure: it reads the model, never changes it.

The table follows the Service Authorization Reference ("Actions, resources, and condition keys
for Amazon EC2"): each action is checked on the resource types it lists (required ones always,
optional ones when the request names them); a resource that exists carries its tags as
``aws:ResourceTag/<key>``; a resource being created (``<type>/*``) carries the request's tags for
it as ``aws:RequestTag/<key>`` and ``aws:TagKeys``; every check carries ``aws:RequestedRegion``.
Describe* actions support no resource-level permissions and are checked on ``*``. A create call
that carries TagSpecifications is also checked for ``ec2:CreateTags`` on each resource it tags,
with ``ec2:CreateAction`` set to the create action (EC2 User Guide, "Grant permission to tag
Amazon EC2 resources during creation").
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from vpccni.emulator.actions import Params, ipv4_block, required, tags_for, vpc_for_group
from vpccni.emulator.errors import Ec2Error
from vpccni.emulator.iam import Decision, Outcome
from vpccni.emulator.imds import NODE_ROLE
from vpccni.emulator.model import Ec2Model
from vpccni.emulator.network import association_owner, tag_target
from vpccni.emulator.records import ACCOUNT_ID, SecurityGroup, Tags, check_tags
from vpccni.emulator.security_groups import interface_group

Context = dict[str, list[str]]
SESSION_NAME = "vpccni-emulator"
CALLER = f"arn:aws:sts::{ACCOUNT_ID}:assumed-role/{NODE_ROLE}/{SESSION_NAME}"
"""The identity every request is made as: the node's role, one session."""
ARN_TYPE = {
    "eni": "network-interface",
    "instance": "instance",
    "subnet": "subnet",
    "vpc": "vpc",
    "group": "security-group",
}
DEFAULT_IMAGE = "ami-00000000000000000"
NO_DRY_RUN = frozenset(
    {
        "AssignPrivateIpAddresses",
        "UnassignPrivateIpAddresses",
        "AssociateVpcCidrBlock",
        "DisassociateVpcCidrBlock",
    }
)
"""Served actions whose EC2 API has no DryRun parameter (botocore's EC2 model; boto3 refuses it)."""


@dataclass(frozen=True)
class Check:
    """One authorization: ``action`` (``ec2:Name``) on ``arn`` (or ``*``) in ``context``."""

    action: str
    arn: str
    context: Context = field(default_factory=dict)


class Request:
    """Builds the checks of one request: ARNs in the emulator's region and account."""

    def __init__(self, model: Ec2Model, action: str, params: Params, region: str) -> None:
        self.model = model
        self.store = model.store
        self.action = action
        self.params = params
        self.region = region
        self.checks: list[Check] = []

    def arn(self, kind: str, resource_id: str = "*") -> str:
        account = "" if kind == "image" else ACCOUNT_ID
        return f"arn:aws:ec2:{self.region}:{account}:{kind}/{resource_id}"

    def base(self) -> Context:
        return {"aws:RequestedRegion": [self.region]}

    def anything(self) -> None:
        """An action with no resource-level permissions: authorized on ``*``."""
        self.checks.append(Check(f"ec2:{self.action}", "*", self.base()))

    def existing(
        self, kind: str, resource_id: str, tags: Tags, extra: Context | None = None
    ) -> None:
        context = self.base() | {f"aws:ResourceTag/{k}": [v] for k, v in tags} | (extra or {})
        self.checks.append(Check(f"ec2:{self.action}", self.arn(kind, resource_id), context))

    def created(self, kind: str, tags: Tags) -> None:
        """A resource the call creates: ``kind/*`` with the request's tags for it; and, when it
        is tagged, ``ec2:CreateTags`` on it as part of this create action."""
        request = request_tags(tags)
        self.checks.append(Check(f"ec2:{self.action}", self.arn(kind), self.base() | request))
        if tags:
            context = self.base() | request | {"ec2:CreateAction": [self.action]}
            self.checks.append(Check("ec2:CreateTags", self.arn(kind), context))

    def eni(self, eni_id: str) -> None:
        self.existing("network-interface", eni_id, self.store.eni(eni_id).tags)

    def instance(self, instance_id: str) -> None:
        self.existing("instance", instance_id, self.store.instance(instance_id).tags)

    def groups(self, group_ids: Sequence[str], lookup: Callable[[str], SecurityGroup]) -> None:
        for group_id in group_ids:
            self.existing("security-group", group_id, lookup(group_id).tags)

    def interface_groups(self, group_ids: Sequence[str]) -> None:
        """Groups named for an ENI (unknown ones: ``InvalidSecurityGroupID.NotFound``)."""
        self.groups(group_ids, lambda group_id: interface_group(self.store, group_id))


def request_tags(tags: Tags) -> Context:
    """``aws:RequestTag/<key>`` for each tag and ``aws:TagKeys`` (absent when there are none)."""
    context: Context = {f"aws:RequestTag/{key}": [value] for key, value in tags}
    if tags:
        context["aws:TagKeys"] = [key for key, _ in tags]
    return context


Resolver = Callable[[Request], None]
TABLE: dict[str, Resolver] = {}


def resolver(*actions: str) -> Callable[[Resolver], Resolver]:
    def register(function: Resolver) -> Resolver:
        for name in actions:
            TABLE[name] = function
        return function

    return register


def checks_for(model: Ec2Model, action: str, params: Params, region: str) -> list[Check]:
    """The checks ``action`` needs, after validating the request as the call would."""
    request = Request(model, action, params, region)
    TABLE[action](request)
    return request.checks


# -- the table -----------------------------------------------------------------------------------


@resolver(
    "DescribeVpcs",
    "DescribeSubnets",
    "DescribeSecurityGroups",
    "DescribeInstances",
    "DescribeInstanceTypes",
    "DescribeNetworkInterfaces",
    "DescribeNetworkInterfaceAttribute",
)
def _describe(r: Request) -> None:
    r.anything()


@resolver("CreateVpc")
def _create_vpc(r: Request) -> None:
    required(r.params, "CidrBlock")
    r.created("vpc", tags_for(r.params, "vpc"))


@resolver("CreateSubnet")
def _create_subnet(r: Request) -> None:
    vpc = r.store.vpc(required(r.params, "VpcId"))
    required(r.params, "CidrBlock")
    r.created("subnet", tags_for(r.params, "subnet"))
    r.existing("vpc", vpc.vpc_id, vpc.tags)


@resolver("AssociateVpcCidrBlock")
def _associate_vpc_cidr_block(r: Request) -> None:
    vpc = r.store.vpc(required(r.params, "VpcId"))
    ipv4_block(r.params)
    r.existing("vpc", vpc.vpc_id, vpc.tags)


@resolver("DisassociateVpcCidrBlock")
def _disassociate_vpc_cidr_block(r: Request) -> None:
    vpc = association_owner(r.store, required(r.params, "AssociationId"))
    r.existing("vpc", vpc.vpc_id, vpc.tags)


@resolver("CreateSecurityGroup")
def _create_security_group(r: Request) -> None:
    vpc = r.store.vpc(vpc_for_group(r.params))
    required(r.params, "GroupName")
    required(r.params, "Description")
    r.created("security-group", tags_for(r.params, "security-group"))
    r.existing("vpc", vpc.vpc_id, vpc.tags)


@resolver("RunInstances")
def _run_instances(r: Request) -> None:
    required(r.params, "MinCount")
    required(r.params, "MaxCount")
    subnet_id = r.params.get("SubnetId")
    if not subnet_id:
        raise Ec2Error(
            "VPCIdNotSpecified",
            "No default VPC for this user; give a SubnetId (the emulator has no default VPC).",
        )
    subnet = r.store.subnet(subnet_id)
    r.store.instance_limits(r.params.get("InstanceType") or "m1.small")
    image = r.params.get("ImageId") or DEFAULT_IMAGE
    r.checks.append(Check("ec2:RunInstances", r.arn("image", image), r.base()))
    r.created("instance", tags_for(r.params, "instance"))
    r.created("network-interface", tags_for(r.params, "network-interface"))
    default_group = r.store.vpc(subnet.vpc_id).default_group_id
    r.groups(r.params.get("SecurityGroupIds") or [default_group], r.store.group)
    r.existing("subnet", subnet.subnet_id, subnet.tags)
    r.created("volume", ())


@resolver("TerminateInstances")
def _terminate_instances(r: Request) -> None:
    for instance_id in required(r.params, "InstanceIds"):
        r.instance(instance_id)


@resolver("CreateTags")
def _create_tags(r: Request) -> None:
    resources = required(r.params, "Resources")
    pairs = tuple((t.get("Key", ""), t.get("Value", "")) for t in required(r.params, "Tags"))
    check_tags(pairs)
    for resource_id in resources:
        kind, tags = tag_target(r.store, resource_id)
        r.existing(ARN_TYPE[kind], resource_id, tags, request_tags(pairs))


@resolver("DeleteTags")
def _delete_tags(r: Request) -> None:
    keys = [t.get("Key", "") for t in r.params.get("Tags") or []]
    for resource_id in required(r.params, "Resources"):
        kind, tags = tag_target(r.store, resource_id)
        r.existing(ARN_TYPE[kind], resource_id, tags, {"aws:TagKeys": keys} if keys else {})


@resolver("CreateNetworkInterface")
def _create_network_interface(r: Request) -> None:
    subnet = r.store.subnet(required(r.params, "SubnetId"))
    tags = tags_for(r.params, "network-interface")
    r.created("network-interface", tags)
    r.existing("subnet", subnet.subnet_id, subnet.tags)
    r.interface_groups(r.params.get("Groups") or ())


@resolver("AttachNetworkInterface")
def _attach_network_interface(r: Request) -> None:
    eni_id = required(r.params, "NetworkInterfaceId")
    instance_id = required(r.params, "InstanceId")
    required(r.params, "DeviceIndex")
    r.instance(instance_id)
    r.eni(eni_id)


@resolver("DetachNetworkInterface")
def _detach_network_interface(r: Request) -> None:
    eni = r.store.eni_by_attachment(required(r.params, "AttachmentId"))
    if eni.attachment is not None:
        r.instance(eni.attachment.instance_id)
    r.eni(eni.eni_id)


@resolver(
    "DeleteNetworkInterface",
    "AssignPrivateIpAddresses",
    "UnassignPrivateIpAddresses",
)
def _one_eni(r: Request) -> None:
    r.eni(required(r.params, "NetworkInterfaceId"))


@resolver("ModifyNetworkInterfaceAttribute")
def _modify_network_interface_attribute(r: Request) -> None:
    r.eni(required(r.params, "NetworkInterfaceId"))
    r.interface_groups(r.params.get("Groups") or ())


# -- the answer ----------------------------------------------------------------------------------


def unauthorized(check: Check, decision: Decision) -> Ec2Error:
    """EC2's ``UnauthorizedOperation`` (HTTP 403) for a denied check, in EC2's words.

    The encoded authorization failure message is base64url JSON of the decision (EC2's is
    encrypted for ``sts:DecodeAuthorizationMessage``; this one decodes with any base64 tool).
    """
    on = "" if check.arn == "*" else f" on resource: {check.arn}"
    if decision.outcome is Outcome.EXPLICIT_DENY:
        why = "with an explicit deny in an identity-based policy"
    else:
        why = f"because no identity-based policy allows the {check.action} action"
    details = {
        "allowed": False,
        "explicitDeny": decision.outcome is Outcome.EXPLICIT_DENY,
        "matchedStatement": decision.statement,
        "action": check.action,
        "resource": check.arn,
        "context": check.context,
    }
    encoded = base64.urlsafe_b64encode(json.dumps(details, sort_keys=True).encode()).decode()
    return Ec2Error(
        "UnauthorizedOperation",
        f"You are not authorized to perform this operation. User: {CALLER} is not authorized to "
        f"perform: {check.action}{on} {why}. Encoded authorization failure message: {encoded}",
    )


def no_dry_run(action: str) -> Ec2Error:
    """EC2's ``UnknownParameter`` for ``DryRun`` on an action whose API has none."""
    return Ec2Error(
        "UnknownParameter",
        f"The parameter DryRun is not recognized: {action} has no DryRun in EC2's API; check "
        "this permission another way (e.g. IAM's policy simulator).",
    )


def dry_run_succeeded() -> Ec2Error:
    """EC2's answer to an allowed request with ``DryRun`` set (HTTP 412)."""
    return Ec2Error("DryRunOperation", "Request would have succeeded, but DryRun flag is set.")
