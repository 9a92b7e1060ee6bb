"""``DryRun=True`` on every EC2 action the daemon calls, through real boto3 clients.

EC2 checks the request's parameters, then its permissions, and answers ``DryRunOperation``
("Request would have succeeded, but DryRun flag is set.", HTTP 412) or ``UnauthorizedOperation``
(403), acting on nothing. The emulator does the same with or without a policy; a dry run takes a
token from the API's rate-limit bucket (EC2 throttles requests, dry or not) but none of
RunInstances' per-instance resource tokens (nothing is launched).

Two of them, AssignPrivateIpAddresses and UnassignPrivateIpAddresses, have no DryRun parameter
in EC2's API (botocore's service model; boto3 refuses it before sending): the emulator refuses it
too (``UnknownParameter``) instead of acting.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import botocore.session
import pytest
from botocore.exceptions import ClientError, ParamValidationError

from tests.emulator.conftest import EmulatorFactory, admin, client, http
from tests.emulator.test_iam_enforcement import SCENARIO, allow, policy, post, resources
from vpccni.core.limits import InstanceTable
from vpccni.emulator import authorization
from vpccni.emulator.errors import Ec2Error
from vpccni.emulator.server import EmulatorServer
from vpccni.emulator.service import HANDLERS, Emulator

ADAPTER = Path(__file__).parents[2] / "src" / "vpccni" / "adapters" / "ec2_boto3.py"
CALLED = re.compile(r'_call\(\s*"(\w+)"')


def snake(action: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", action).lower()


class World:
    """A node with one extra ENI attached and a secondary address on it."""

    def __init__(self, server: EmulatorServer) -> None:
        self.server = server
        self.ec2 = client(server)
        ids = admin(server, "scenario", SCENARIO)["ids"]
        self.subnet, self.node, self.group = ids["nodes"], ids["node"], ids["pods"]
        self.eni = self.ec2.create_network_interface(SubnetId=self.subnet)["NetworkInterface"][
            "NetworkInterfaceId"
        ]
        self.attachment = self.ec2.attach_network_interface(
            NetworkInterfaceId=self.eni, InstanceId=self.node, DeviceIndex=1
        )["AttachmentId"]
        assigned = self.ec2.assign_private_ip_addresses(
            NetworkInterfaceId=self.eni, SecondaryPrivateIpAddressCount=1
        )
        self.address = assigned["AssignedPrivateIpAddresses"][0]["PrivateIpAddress"]
        self.spare = self.ec2.create_network_interface(SubnetId=self.subnet)["NetworkInterface"][
            "NetworkInterfaceId"
        ]

    def params(self, action: str) -> dict[str, Any]:
        """What the daemon sends for ``action`` (ec2_boto3's parameters)."""
        return {
            "DescribeInstances": {"InstanceIds": [self.node]},
            "DescribeNetworkInterfaces": {
                "Filters": [{"Name": "attachment.instance-id", "Values": [self.node]}]
            },
            "DescribeSubnets": {"SubnetIds": [self.subnet]},
            "CreateNetworkInterface": {
                "SubnetId": self.subnet,
                "Description": "aws-K8S-i-1",
                "Groups": [self.group],
                "TagSpecifications": [
                    {
                        "ResourceType": "network-interface",
                        "Tags": [{"Key": "node.k8s.amazonaws.com/instance_id", "Value": self.node}],
                    }
                ],
                "SecondaryPrivateIpAddressCount": 2,
            },
            "AttachNetworkInterface": {
                "NetworkInterfaceId": self.spare,
                "InstanceId": self.node,
                "DeviceIndex": 2,
            },
            "ModifyNetworkInterfaceAttribute": {
                "NetworkInterfaceId": self.eni,
                "Attachment": {"AttachmentId": self.attachment, "DeleteOnTermination": True},
            },
            "DetachNetworkInterface": {"AttachmentId": self.attachment, "Force": True},
            "DeleteNetworkInterface": {"NetworkInterfaceId": self.spare},
            "AssignPrivateIpAddresses": {
                "NetworkInterfaceId": self.eni,
                "SecondaryPrivateIpAddressCount": 1,
            },
            "UnassignPrivateIpAddresses": {
                "NetworkInterfaceId": self.eni,
                "PrivateIpAddresses": [self.address],
            },
            "CreateTags": {
                "Resources": [self.eni],
                "Tags": [{"Key": "node.k8s.amazonaws.com/createdAt", "Value": "now"}],
            },
        }[action]

    def dry_run(self, action: str, **overrides: Any) -> ClientError:
        params = {**self.params(action), **overrides, "DryRun": True}
        with pytest.raises(ClientError) as answered:
            getattr(self.ec2, snake(action))(**params)
        return answered.value


NO_DRY_RUN = ("AssignPrivateIpAddresses", "UnassignPrivateIpAddresses")
DAEMON_ACTIONS = sorted(
    {
        "DescribeInstances",
        "DescribeNetworkInterfaces",
        "DescribeSubnets",
        "CreateNetworkInterface",
        "AttachNetworkInterface",
        "ModifyNetworkInterfaceAttribute",
        "DetachNetworkInterface",
        "DeleteNetworkInterface",
        "AssignPrivateIpAddresses",
        "UnassignPrivateIpAddresses",
        "CreateTags",
    }
)


DRY_RUN_ACTIONS = [name for name in DAEMON_ACTIONS if name not in NO_DRY_RUN]


def test_the_list_is_every_action_the_daemon_calls() -> None:
    assert set(CALLED.findall(ADAPTER.read_text(encoding="utf-8"))) == set(DAEMON_ACTIONS)


def test_which_actions_have_dry_run_follows_botocores_model() -> None:
    model = botocore.session.get_session().get_service_model("ec2")
    without = {
        name for name in HANDLERS if "DryRun" not in model.operation_model(name).input_shape.members
    }
    assert without == set(authorization.NO_DRY_RUN)
    assert set(NO_DRY_RUN) == without & set(DAEMON_ACTIONS)


@pytest.fixture
def world(start_server: EmulatorFactory) -> World:
    return World(start_server(rate_limits=False))


@pytest.mark.parametrize("action", DRY_RUN_ACTIONS)
def test_dry_run_answers_412_and_changes_nothing(world: World, action: str) -> None:
    for enforcing in (None, policy(allow("ec2:*"))):
        post(world.server, "iam-policy", enforcing)
        before = resources(world.server)
        error = world.dry_run(action)
        assert error.response["Error"]["Code"] == "DryRunOperation"
        assert error.response["Error"]["Message"] == (
            "Request would have succeeded, but DryRun flag is set."
        )
        assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 412
        assert resources(world.server) == before
    assert admin(world.server, "state")["stats"]["dry_runs"] == 2


@pytest.mark.parametrize("action", DRY_RUN_ACTIONS)
def test_dry_run_under_a_policy_without_the_action_is_unauthorized(
    world: World, action: str
) -> None:
    others = [f"ec2:{name}" for name in DAEMON_ACTIONS if name != action]
    post(world.server, "iam-policy", policy(allow(others)))
    before = resources(world.server)
    error = world.dry_run(action)
    assert error.response["Error"]["Code"] == "UnauthorizedOperation"
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert f"is not authorized to perform: ec2:{action}" in error.response["Error"]["Message"]
    assert resources(world.server) == before


def test_dry_run_of_create_with_tags_checks_create_tags_too(world: World) -> None:
    post(world.server, "iam-policy", policy(allow("ec2:CreateNetworkInterface")))
    error = world.dry_run("CreateNetworkInterface")
    assert "perform: ec2:CreateTags on resource" in error.response["Error"]["Message"]
    assert world.dry_run("CreateNetworkInterface", TagSpecifications=[]).response["Error"][
        "Code"
    ] == ("DryRunOperation")


@pytest.mark.parametrize(
    ("action", "overrides", "code"),
    [
        (
            "ModifyNetworkInterfaceAttribute",
            {"NetworkInterfaceId": "eni-0123456789abcdef0"},
            "InvalidNetworkInterfaceID.NotFound",
        ),
        (
            "DeleteNetworkInterface",
            {"NetworkInterfaceId": "eni-!"},
            "InvalidNetworkInterfaceID.Malformed",
        ),
        (
            "AttachNetworkInterface",
            {"InstanceId": "i-0123456789abcdef0"},
            "InvalidInstanceID.NotFound",
        ),
        (
            "DetachNetworkInterface",
            {"AttachmentId": "eni-attach-0123456789abcdef0"},
            "InvalidAttachmentID.NotFound",
        ),
        (
            "CreateNetworkInterface",
            {"SubnetId": "subnet-0123456789abcdef0"},
            "InvalidSubnetID.NotFound",
        ),
        (
            "CreateNetworkInterface",
            {"Groups": ["sg-0123456789abcdef0"]},
            "InvalidSecurityGroupID.NotFound",
        ),
        (
            "CreateTags",
            {"Tags": [{"Key": "aws:reserved", "Value": "x"}]},
            "InvalidParameterValue",
        ),
        (
            "DescribeInstances",
            {"InstanceIds": ["i-0123456789abcdef0"]},
            "InvalidInstanceID.NotFound",
        ),
        (
            "DescribeNetworkInterfaces",
            {"Filters": [{"Name": "no-such-filter", "Values": ["x"]}]},
            "InvalidParameterValue",
        ),
    ],
)
def test_malformed_requests_get_their_error_before_authorization(
    world: World, action: str, overrides: dict[str, Any], code: str
) -> None:
    post(world.server, "iam-policy", policy(allow("iam:*")))  # allows no EC2 action at all
    assert world.dry_run(action, **overrides).response["Error"]["Code"] == code


def test_a_dry_run_takes_an_api_token_but_no_resource_tokens(start_server: EmulatorFactory) -> None:
    server = start_server()
    world = World(server)
    levels = admin(server, "state")["levels"]
    world.dry_run("DeleteNetworkInterface")
    assert admin(server, "state")["levels"]["DeleteNetworkInterface"] < levels.get(
        "DeleteNetworkInterface", 100
    )
    with pytest.raises(ClientError) as answered:
        world.ec2.run_instances(
            ImageId="ami-12345678",
            InstanceType="m5.large",
            MinCount=1,
            MaxCount=5,
            SubnetId=world.subnet,
            DryRun=True,
        )
    assert answered.value.response["Error"]["Code"] == "DryRunOperation"
    assert "RunInstances/resources" not in admin(server, "state")["levels"]


@pytest.mark.parametrize("action", NO_DRY_RUN)
def test_dry_run_is_refused_where_ec2_has_none(
    world: World, table: InstanceTable, action: str
) -> None:
    params = world.params(action)
    with pytest.raises(ParamValidationError):
        getattr(world.ec2, snake(action))(**params, DryRun=True)
    before = resources(world.server)
    query = urlencode(
        {
            "Action": action,
            "Version": "2016-11-15",
            "NetworkInterfaceId": params["NetworkInterfaceId"],
            "SecondaryPrivateIpAddressCount": "1",
            "PrivateIpAddress.1": world.address,
            "DryRun": "true",
        }
    )
    status, body = http(f"{world.server.endpoint}/?{query}")
    assert status == 400
    assert "<Code>UnknownParameter</Code>" in body
    assert resources(world.server) == before
    emulator = Emulator(table)
    with pytest.raises(Ec2Error) as refused:
        emulator.call(action, {"NetworkInterfaceId": "eni-1", "DryRun": True}, 0.0)
    assert refused.value.code == "UnknownParameter"
