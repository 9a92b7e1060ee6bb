"""The emulator enforces an IAM policy on every EC2 request, through unmodified boto3.

A denied call answers as EC2 does (HTTP 403, ``UnauthorizedOperation``, "User: ... is not
authorized to perform: ec2:X on resource: ARN because no identity-based policy allows ..." and an
encoded message) and changes nothing. The policy comes from the constructor, ``POST
/admin/iam-policy``, a scenario's ``iam_policy`` or the state file. Resources and condition keys
per action follow docs/emulator.md "IAM" (the Service Authorization Reference for EC2).
"""

from __future__ import annotations

import base64
import json
import re
import urllib.error
import urllib.request
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.emulator.conftest import EmulatorFactory, admin, client
from vpccni.core.limits import InstanceTable
from vpccni.emulator.errors import EmulatorSetupError
from vpccni.emulator.server import EmulatorServer
from vpccni.emulator.service import Emulator
from vpccni.emulator.statefile import dump_state, load_state
from vpccni.emulator.world import apply_scenario, parse_scenario

ACCOUNT = "123456789012"
CALLER = f"arn:aws:sts::{ACCOUNT}:assumed-role/eks-node-role/vpccni-emulator"
ENIS = "arn:aws:ec2:*:*:network-interface/*"
SCENARIO: dict[str, Any] = {
    "vpcs": [
        {
            "name": "main",
            "cidr": "10.0.0.0/16",
            "subnets": [{"name": "nodes", "cidr": "10.0.0.0/24", "tags": {"cni": "1"}}],
            "security_groups": [{"name": "pods"}],
        }
    ],
    "instances": [
        {"name": "node", "type": "m5.large", "subnet": "nodes", "tags": {"cluster": "demo"}}
    ],
}
UNAUTHORIZED = re.compile(
    r"You are not authorized to perform this operation\. User: (?P<user>\S+) is not authorized "
    r"to perform: (?P<action>ec2:\w+)(?: on resource: (?P<arn>\S+))? (?P<why>because no "
    r"identity-based policy allows the (?P=action) action|with an explicit deny in an "
    r"identity-based policy)\. Encoded authorization failure message: (?P<encoded>[\w=-]+)"
)


def policy(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def allow(action: Any, resource: Any = "*", **condition: Any) -> dict[str, Any]:
    statement: dict[str, Any] = {"Effect": "Allow", "Action": action, "Resource": resource}
    if condition:
        statement["Condition"] = condition
    return statement


EVERYTHING = policy(allow("ec2:*"))


def post(server: EmulatorServer, path: str, payload: Any) -> tuple[int, Any]:
    """POST raw JSON (``None`` sends ``null``) to the admin API; (status, answer)."""
    request = urllib.request.Request(
        f"{server.endpoint}/admin/{path}", data=json.dumps(payload).encode(), method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def denied(call: Any, **params: Any) -> dict[str, str]:
    """Run a call that must be refused as EC2 refuses it; the parts of its message."""
    with pytest.raises(ClientError) as refused:
        call(**params)
    response = refused.value.response
    assert response["Error"]["Code"] == "UnauthorizedOperation"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 403
    match = UNAUTHORIZED.fullmatch(response["Error"]["Message"])
    assert match is not None, response["Error"]["Message"]
    assert match["user"] == CALLER
    parts = {k: v for k, v in match.groupdict().items() if v is not None}
    parts["decoded"] = base64.urlsafe_b64decode(parts["encoded"]).decode()
    return parts


@pytest.fixture
def world(start_server: EmulatorFactory) -> tuple[EmulatorServer, Any, dict[str, str]]:
    server = start_server(rate_limits=False)
    ids = admin(server, "scenario", SCENARIO)["ids"]
    return server, client(server), ids


def resources(server: EmulatorServer) -> dict[str, Any]:
    """Everything the model holds (to compare before and after a refused call)."""
    state = admin(server, "state")
    keys = ("counters", "vpcs", "subnets", "security_groups", "instances", "network_interfaces")
    return {key: state[key] for key in keys}


def test_no_policy_allows_everything_and_admin_reads_null(world: Any) -> None:
    server, ec2, ids = world
    assert admin(server, "iam-policy") is None
    eni = ec2.create_network_interface(SubnetId=ids["nodes"])["NetworkInterface"]
    ec2.delete_network_interface(NetworkInterfaceId=eni["NetworkInterfaceId"])


def test_the_cni_lifecycle_under_a_policy_granting_its_actions(world: Any) -> None:
    server, ec2, ids = world
    actions = [
        "ec2:CreateNetworkInterface",
        "ec2:AttachNetworkInterface",
        "ec2:DetachNetworkInterface",
        "ec2:DeleteNetworkInterface",
        "ec2:AssignPrivateIpAddresses",
        "ec2:UnassignPrivateIpAddresses",
        "ec2:ModifyNetworkInterfaceAttribute",
        "ec2:Describe*",
    ]
    status, answer = post(
        server, "iam-policy", policy(allow(actions), allow("ec2:CreateTags", ENIS))
    )
    assert (status, answer) == (200, {"enforcing": True})
    eni_id = ec2.create_network_interface(
        SubnetId=ids["nodes"],
        Groups=[ids["pods"]],
        TagSpecifications=[
            {"ResourceType": "network-interface", "Tags": [{"Key": "a", "Value": "b"}]}
        ],
    )["NetworkInterface"]["NetworkInterfaceId"]
    attachment = ec2.attach_network_interface(
        NetworkInterfaceId=eni_id, InstanceId=ids["node"], DeviceIndex=1
    )["AttachmentId"]
    ec2.modify_network_interface_attribute(
        NetworkInterfaceId=eni_id,
        Attachment={"AttachmentId": attachment, "DeleteOnTermination": True},
    )
    ec2.assign_private_ip_addresses(NetworkInterfaceId=eni_id, SecondaryPrivateIpAddressCount=2)
    ec2.create_tags(Resources=[eni_id], Tags=[{"Key": "c", "Value": "d"}])
    eni = ec2.describe_network_interfaces(NetworkInterfaceIds=[eni_id])["NetworkInterfaces"][0]
    secondary = [a["PrivateIpAddress"] for a in eni["PrivateIpAddresses"] if not a["Primary"]]
    ec2.unassign_private_ip_addresses(NetworkInterfaceId=eni_id, PrivateIpAddresses=secondary)
    ec2.describe_instances(InstanceIds=[ids["node"]])
    ec2.describe_subnets(SubnetIds=[ids["nodes"]])
    ec2.detach_network_interface(AttachmentId=attachment)
    ec2.delete_network_interface(NetworkInterfaceId=eni_id)
    assert admin(server, "state")["stats"].get("denied", 0) == 0


def test_a_denied_call_answers_like_ec2_and_changes_nothing(world: Any) -> None:
    server, ec2, ids = world
    post(server, "iam-policy", policy(allow("ec2:Describe*")))
    before = resources(server)
    parts = denied(ec2.create_network_interface, SubnetId=ids["nodes"])
    assert parts["action"] == "ec2:CreateNetworkInterface"
    assert parts["arn"] == f"arn:aws:ec2:us-west-2:{ACCOUNT}:network-interface/*"
    assert parts["why"].startswith("because no identity-based policy allows")
    decoded = json.loads(parts["decoded"])
    assert decoded["action"] == "ec2:CreateNetworkInterface"
    assert decoded["explicitDeny"] is False
    assert decoded["context"]["aws:RequestedRegion"] == ["us-west-2"]
    assert resources(server) == before
    stats = admin(server, "state")["stats"]
    assert stats["denied"] == 1
    assert stats["denied.CreateNetworkInterface"] == 1


def test_describe_is_authorized_on_star_and_deny_wins(world: Any) -> None:
    server, ec2, ids = world
    post(
        server,
        "iam-policy",
        policy(
            allow("ec2:*"), {"Effect": "Deny", "Action": "ec2:DescribeSubnets", "Resource": "*"}
        ),
    )
    parts = denied(ec2.describe_subnets, SubnetIds=[ids["nodes"]])
    assert "arn" not in parts
    assert parts["why"] == "with an explicit deny in an identity-based policy"
    # A Describe has no resource-level permission: a Resource ARN pattern never grants it.
    post(server, "iam-policy", policy(allow("ec2:DescribeInstances", "arn:aws:ec2:*:*:*")))
    denied(ec2.describe_instances)


def test_create_network_interface_needs_its_subnet_and_groups(world: Any) -> None:
    server, ec2, ids = world
    post(
        server,
        "iam-policy",
        policy(allow("ec2:CreateNetworkInterface", [ENIS, "arn:aws:ec2:*:*:subnet/*"])),
    )
    ec2.create_network_interface(SubnetId=ids["nodes"])
    parts = denied(ec2.create_network_interface, SubnetId=ids["nodes"], Groups=[ids["pods"]])
    assert parts["arn"] == f"arn:aws:ec2:us-west-2:{ACCOUNT}:security-group/{ids['pods']}"
    post(server, "iam-policy", policy(allow("ec2:CreateNetworkInterface", ENIS)))
    parts = denied(ec2.create_network_interface, SubnetId=ids["nodes"])
    assert parts["arn"] == f"arn:aws:ec2:us-west-2:{ACCOUNT}:subnet/{ids['nodes']}"
    # The subnet carries its own tags as aws:ResourceTag.
    post(
        server,
        "iam-policy",
        policy(
            allow("ec2:CreateNetworkInterface", ENIS),
            allow(
                "ec2:CreateNetworkInterface",
                "arn:aws:ec2:*:*:subnet/*",
                StringEquals={"ec2:ResourceTag/cni": "1"},
            ),
        ),
    )
    ec2.create_network_interface(SubnetId=ids["nodes"])


TAGS = [{"ResourceType": "network-interface", "Tags": [{"Key": "cluster", "Value": "demo"}]}]


def test_tags_on_create_need_create_tags_with_create_action(world: Any) -> None:
    # EC2 User Guide, "Grant permission to tag Amazon EC2 resources during creation".
    server, ec2, ids = world
    create_only = allow("ec2:CreateNetworkInterface")
    post(server, "iam-policy", policy(create_only))
    ec2.create_network_interface(SubnetId=ids["nodes"])  # no tags: no CreateTags check
    parts = denied(ec2.create_network_interface, SubnetId=ids["nodes"], TagSpecifications=TAGS)
    assert parts["action"] == "ec2:CreateTags"
    assert parts["arn"] == f"arn:aws:ec2:us-west-2:{ACCOUNT}:network-interface/*"
    assert json.loads(parts["decoded"])["context"]["ec2:CreateAction"] == ["CreateNetworkInterface"]
    on_create = allow(
        "ec2:CreateTags", ENIS, StringEquals={"ec2:CreateAction": "CreateNetworkInterface"}
    )
    post(server, "iam-policy", policy(create_only, on_create))
    eni_id = ec2.create_network_interface(SubnetId=ids["nodes"], TagSpecifications=TAGS)[
        "NetworkInterface"
    ]["NetworkInterfaceId"]
    # ... which does not let the caller tag an existing ENI.
    parts = denied(ec2.create_tags, Resources=[eni_id], Tags=[{"Key": "x", "Value": "y"}])
    assert parts["arn"] == f"arn:aws:ec2:us-west-2:{ACCOUNT}:network-interface/{eni_id}"


def test_request_tags_scope_creation(world: Any) -> None:
    server, ec2, ids = world
    post(
        server,
        "iam-policy",
        policy(
            allow(
                "ec2:CreateNetworkInterface",
                ENIS,
                StringEquals={"aws:RequestTag/cluster": "demo"},
                **{"ForAllValues:StringEquals": {"aws:TagKeys": ["cluster", "node"]}},
            ),
            allow("ec2:CreateNetworkInterface", "arn:aws:ec2:*:*:subnet/*"),
            allow(
                "ec2:CreateTags", ENIS, StringEquals={"ec2:CreateAction": "CreateNetworkInterface"}
            ),
        ),
    )
    ec2.create_network_interface(SubnetId=ids["nodes"], TagSpecifications=TAGS)
    denied(ec2.create_network_interface, SubnetId=ids["nodes"])
    other = [{"ResourceType": "network-interface", "Tags": [{"Key": "cluster", "Value": "prod"}]}]
    denied(ec2.create_network_interface, SubnetId=ids["nodes"], TagSpecifications=other)
    extra = [
        {
            "ResourceType": "network-interface",
            "Tags": [{"Key": "cluster", "Value": "demo"}, {"Key": "owner", "Value": "me"}],
        }
    ]
    denied(ec2.create_network_interface, SubnetId=ids["nodes"], TagSpecifications=extra)


def test_resource_tags_scope_mutations(world: Any) -> None:
    server, ec2, ids = world
    ours = ec2.create_network_interface(SubnetId=ids["nodes"], TagSpecifications=TAGS)[
        "NetworkInterface"
    ]["NetworkInterfaceId"]
    theirs = ec2.create_network_interface(SubnetId=ids["nodes"])["NetworkInterface"][
        "NetworkInterfaceId"
    ]
    post(
        server,
        "iam-policy",
        policy(
            allow(
                ["ec2:AssignPrivateIpAddresses", "ec2:DeleteNetworkInterface"],
                ENIS,
                StringEquals={"ec2:ResourceTag/cluster": "demo"},
            )
        ),
    )
    ec2.assign_private_ip_addresses(NetworkInterfaceId=ours, SecondaryPrivateIpAddressCount=1)
    before = resources(server)
    parts = denied(
        ec2.assign_private_ip_addresses, NetworkInterfaceId=theirs, SecondaryPrivateIpAddressCount=1
    )
    assert parts["arn"].endswith(f":network-interface/{theirs}")
    denied(ec2.delete_network_interface, NetworkInterfaceId=theirs)
    assert resources(server) == before
    ec2.delete_network_interface(NetworkInterfaceId=ours)


def test_attach_and_detach_need_the_instance_and_the_interface(world: Any) -> None:
    server, ec2, ids = world
    eni_id = ec2.create_network_interface(SubnetId=ids["nodes"])["NetworkInterface"][
        "NetworkInterfaceId"
    ]
    post(server, "iam-policy", policy(allow("ec2:AttachNetworkInterface", ENIS)))
    parts = denied(
        ec2.attach_network_interface,
        NetworkInterfaceId=eni_id,
        InstanceId=ids["node"],
        DeviceIndex=1,
    )
    assert parts["arn"] == f"arn:aws:ec2:us-west-2:{ACCOUNT}:instance/{ids['node']}"
    instances = "arn:aws:ec2:*:*:instance/*"
    post(
        server,
        "iam-policy",
        policy(
            allow(
                ["ec2:AttachNetworkInterface", "ec2:DetachNetworkInterface"],
                instances,
                StringEquals={"aws:ResourceTag/cluster": "demo"},
            ),
            allow("ec2:AttachNetworkInterface", ENIS),
        ),
    )
    attachment = ec2.attach_network_interface(
        NetworkInterfaceId=eni_id, InstanceId=ids["node"], DeviceIndex=1
    )["AttachmentId"]
    parts = denied(ec2.detach_network_interface, AttachmentId=attachment)
    assert parts["arn"] == f"arn:aws:ec2:us-west-2:{ACCOUNT}:network-interface/{eni_id}"


def test_validation_errors_come_before_authorization(world: Any) -> None:
    server, ec2, _ = world
    post(server, "iam-policy", policy(allow("ec2:DescribeSubnets")))
    for params, code in (
        ({"NetworkInterfaceId": "eni-0123456789abcdef0"}, "InvalidNetworkInterfaceID.NotFound"),
        ({"NetworkInterfaceId": "nope"}, "InvalidNetworkInterfaceID.Malformed"),
    ):
        with pytest.raises(ClientError) as refused:
            ec2.delete_network_interface(**params)
        assert refused.value.response["Error"]["Code"] == code
    with pytest.raises(ClientError) as refused:
        ec2.describe_instances(InstanceIds=["i-0123456789abcdef0"])
    assert refused.value.response["Error"]["Code"] == "InvalidInstanceID.NotFound"
    denied(ec2.describe_instances)


def test_admin_policy_calls(world: Any) -> None:
    server, ec2, ids = world
    assert post(server, "iam-policy", EVERYTHING) == (200, {"enforcing": True})
    assert admin(server, "iam-policy") == EVERYTHING
    status, answer = post(
        server, "iam-policy", {"Version": "2012-10-17", "Statement": [{"NotAction": "ec2:*"}]}
    )
    assert status == 400
    assert "NotAction" in answer["error"]
    assert admin(server, "iam-policy") == EVERYTHING  # the refused one changed nothing
    assert post(server, "iam-policy", {})[0] == 400
    assert post(server, "iam-policy", None) == (200, {"enforcing": False})
    assert admin(server, "iam-policy") is None
    ec2.create_network_interface(SubnetId=ids["nodes"])


def test_scenario_field_and_state_file(table: InstanceTable, start_server: EmulatorFactory) -> None:
    server = start_server(rate_limits=False)
    scenario = {**SCENARIO, "iam_policy": policy(allow("ec2:Describe*"))}
    ids = admin(server, "scenario", scenario)["ids"]
    assert admin(server, "iam-policy") == scenario["iam_policy"]
    denied(client(server).create_network_interface, SubnetId=ids["nodes"])
    status, answer = post(server, "scenario", {"iam_policy": {"Version": "2012-10-17"}})
    assert status == 400
    assert "scenario.iam_policy" in answer["error"]
    emulator = Emulator(table)
    apply_scenario(emulator, parse_scenario(scenario), 0.0)
    document = json.loads(json.dumps(dump_state(emulator, 0.0)))
    assert document["iam_policy"] == scenario["iam_policy"]
    loaded, _ = load_state(document, table, "state")
    assert loaded.iam_policy is not None
    assert loaded.iam_policy.document == scenario["iam_policy"]
    document["iam_policy"] = {"Version": "2012-10-17", "Statement": [{"Principal": "*"}]}
    with pytest.raises(EmulatorSetupError, match=r"state: iam_policy: .*Principal"):
        load_state(document, table, "state")


def test_constructor_parameter(table: InstanceTable) -> None:
    emulator = Emulator(table, iam_policy=policy(allow("ec2:Describe*")))
    assert emulator.iam_policy is not None
    server = EmulatorServer(Emulator(table), iam_policy=EVERYTHING)
    try:
        assert server.emulator.iam_policy is not None
        assert server.emulator.iam_policy.document == EVERYTHING
    finally:
        server.server_close()
