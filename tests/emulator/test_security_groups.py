"""Security groups through unmodified boto3: CreateSecurityGroup's rules, DescribeSecurityGroups,
the groups of each ENI (CreateNetworkInterface and ModifyNetworkInterfaceAttribute ``Groups``, with
EC2's codes for an unknown group, another VPC's group and a sixth group), an instance's groups
following its primary ENI's, and IMDS' per-MAC ``security-group-ids``.
"""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.emulator.conftest import EmulatorFactory, client, launch
from tests.emulator.test_iam_enforcement import allow, denied, policy, post, resources
from tests.emulator.test_imds import MACS, Node
from vpccni.emulator.server import EmulatorServer


@pytest.fixture
def server(start_server: EmulatorFactory) -> EmulatorServer:
    return start_server(rate_limits=False)


@pytest.fixture
def ec2(server: EmulatorServer) -> Any:
    return client(server)


class Net:
    """A VPC with a subnet, and another VPC with a group of its own."""

    def __init__(self, ec2: Any) -> None:
        self.ec2 = ec2
        self.vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        self.subnet = ec2.create_subnet(VpcId=self.vpc, CidrBlock="10.0.1.0/24")["Subnet"][
            "SubnetId"
        ]
        other = ec2.create_vpc(CidrBlock="10.1.0.0/16")["Vpc"]["VpcId"]
        self.foreign = self.group("elsewhere", other)

    def group(self, name: str, vpc: str | None = None, **extra: Any) -> str:
        answer = self.ec2.create_security_group(
            GroupName=name, Description=f"{name} group", VpcId=vpc or self.vpc, **extra
        )
        return str(answer["GroupId"])

    def default_group(self) -> str:
        groups = self.ec2.describe_security_groups(
            Filters=[
                {"Name": "vpc-id", "Values": [self.vpc]},
                {"Name": "group-name", "Values": ["default"]},
            ]
        )["SecurityGroups"]
        return str(groups[0]["GroupId"])


def refusal(server: EmulatorServer, call: Any, **params: Any) -> tuple[str, str]:
    """(code, message) of a call that must be refused; checks it changed nothing."""
    before = resources(server)
    with pytest.raises(ClientError) as refused:
        call(**params)
    assert resources(server) == before
    error = refused.value.response["Error"]
    return error["Code"], error["Message"]


def test_create_and_describe(server: EmulatorServer, ec2: Any) -> None:
    net = Net(ec2)
    tags = [{"ResourceType": "security-group", "Tags": [{"Key": "role", "Value": "pods"}]}]
    created = ec2.create_security_group(
        GroupName="pods", Description="pod ENIs", VpcId=net.vpc, TagSpecifications=tags
    )
    pods = created["GroupId"]
    assert pods.startswith("sg-")
    assert created["Tags"] == [{"Key": "role", "Value": "pods"}]
    nodes = net.group("nodes")

    [group] = ec2.describe_security_groups(GroupIds=[pods])["SecurityGroups"]
    assert (group["GroupName"], group["Description"], group["VpcId"]) == (
        "pods",
        "pod ENIs",
        net.vpc,
    )

    def names(*filters: dict[str, Any]) -> list[str]:
        found = ec2.describe_security_groups(Filters=list(filters))["SecurityGroups"]
        return sorted(g["GroupName"] for g in found)

    assert names({"Name": "vpc-id", "Values": [net.vpc]}) == ["default", "nodes", "pods"]
    assert names({"Name": "group-name", "Values": ["po*", "no?es"]}) == ["nodes", "pods"]
    assert names({"Name": "tag:role", "Values": ["pods"]}) == ["pods"]
    assert names({"Name": "group-id", "Values": [nodes, net.foreign]}) == ["elsewhere", "nodes"]
    for ids, code in (
        (["sg-0123456789abcdef0"], "InvalidGroup.NotFound"),
        (["sg-1"], "InvalidGroupId.Malformed"),
    ):
        assert refusal(server, ec2.describe_security_groups, GroupIds=ids)[0] == code


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"GroupName": "sg-pods"}, "InvalidParameterValue"),
        ({"GroupName": "g" * 256}, "InvalidParameterValue"),
        ({"GroupName": "pods<script>"}, "InvalidParameterValue"),
        ({"GroupName": "pöds"}, "InvalidParameterValue"),
        ({"Description": "d" * 256}, "InvalidParameterValue"),
        ({"GroupName": "NODES"}, "InvalidGroup.Duplicate"),  # names are case-insensitive
        ({"GroupName": "DEFAULT"}, "InvalidGroup.Duplicate"),
        ({"VpcId": None}, "VPCIdNotSpecified"),
        ({"VpcId": "vpc-0123456789abcdef0"}, "InvalidVpcID.NotFound"),
    ],
)
def test_create_security_group_refuses_what_ec2_refuses(
    server: EmulatorServer, ec2: Any, params: dict[str, Any], code: str
) -> None:
    net = Net(ec2)
    net.group("nodes")
    request = {"GroupName": "pods", "Description": "d", "VpcId": net.vpc, **params}
    request = {k: v for k, v in request.items() if v is not None}
    assert refusal(server, ec2.create_security_group, **request)[0] == code


def test_the_longest_name_and_every_allowed_character_are_accepted(ec2: Any) -> None:
    net = Net(ec2)
    ec2.create_security_group(GroupName="g" * 255, Description="d" * 255, VpcId=net.vpc)
    net.group("a-z A-Z 0-9 ._-:/()#,@[]+=&;{}!$*")
    # the same name in another VPC is another group
    ec2.create_security_group(GroupName="nodes", Description="x", VpcId=net.vpc)
    other = ec2.describe_security_groups(GroupIds=[net.foreign])["SecurityGroups"][0]["VpcId"]
    ec2.create_security_group(GroupName="nodes", Description="x", VpcId=other)


def eni_groups(ec2: Any, eni_id: str) -> list[str]:
    [eni] = ec2.describe_network_interfaces(NetworkInterfaceIds=[eni_id])["NetworkInterfaces"]
    return [g["GroupId"] for g in eni["Groups"]]


def test_groups_per_eni(server: EmulatorServer, ec2: Any) -> None:
    net = Net(ec2)
    groups = [net.group(f"g{number}") for number in range(6)]
    plain = ec2.create_network_interface(SubnetId=net.subnet)["NetworkInterface"]
    assert [g["GroupId"] for g in plain["Groups"]] == [net.default_group()]

    eni = ec2.create_network_interface(SubnetId=net.subnet, Groups=groups[:2] + groups[:1])
    eni_id = eni["NetworkInterface"]["NetworkInterfaceId"]
    assert [g["GroupName"] for g in eni["NetworkInterface"]["Groups"]] == ["g0", "g1"]
    found = ec2.describe_network_interfaces(Filters=[{"Name": "group-id", "Values": [groups[1]]}])
    assert [e["NetworkInterfaceId"] for e in found["NetworkInterfaces"]] == [eni_id]

    code, message = refusal(
        server, ec2.create_network_interface, SubnetId=net.subnet, Groups=["sg-0123456789abcdef0"]
    )
    assert (code, message) == (
        "InvalidSecurityGroupID.NotFound",
        "The securityGroup ID 'sg-0123456789abcdef0' does not exist",
    )
    code, _ = refusal(server, ec2.create_network_interface, SubnetId=net.subnet, Groups=["sg-x"])
    assert code == "InvalidGroupId.Malformed"
    code, message = refusal(
        server, ec2.create_network_interface, SubnetId=net.subnet, Groups=[net.foreign]
    )
    assert code == "InvalidParameter"
    assert net.foreign in message
    code, _ = refusal(server, ec2.create_network_interface, SubnetId=net.subnet, Groups=groups)
    assert code == "SecurityGroupsPerInterfaceLimitExceeded"
    ec2.create_network_interface(SubnetId=net.subnet, Groups=groups[:5])

    ec2.modify_network_interface_attribute(NetworkInterfaceId=eni_id, Groups=groups[3:5])
    assert eni_groups(ec2, eni_id) == groups[3:5]
    attribute = ec2.describe_network_interface_attribute(
        NetworkInterfaceId=eni_id, Attribute="groupSet"
    )
    assert [g["GroupId"] for g in attribute["Groups"]] == groups[3:5]
    for bad, code in (
        (["sg-0123456789abcdef0"], "InvalidSecurityGroupID.NotFound"),
        ([net.foreign], "InvalidParameter"),
        (groups, "SecurityGroupsPerInterfaceLimitExceeded"),
    ):
        answer = refusal(
            server, ec2.modify_network_interface_attribute, NetworkInterfaceId=eni_id, Groups=bad
        )
        assert answer[0] == code
    assert eni_groups(ec2, eni_id) == groups[3:5]


def test_an_instance_has_its_primary_enis_groups_in_ec2_and_imds(
    server: EmulatorServer, ec2: Any
) -> None:
    net = Net(ec2)
    nodes, pods, extra = net.group("nodes"), net.group("pods"), net.group("extra")
    instance = ec2.run_instances(
        ImageId="ami-12345678",
        InstanceType="m5.large",
        MinCount=1,
        MaxCount=1,
        SubnetId=net.subnet,
        SecurityGroupIds=[nodes],
    )["Instances"][0]
    instance_id, primary = instance["InstanceId"], instance["NetworkInterfaces"][0]
    assert [g["GroupName"] for g in instance["SecurityGroups"]] == ["nodes"]
    eni = ec2.create_network_interface(SubnetId=net.subnet, Groups=[pods])["NetworkInterface"]
    ec2.attach_network_interface(
        NetworkInterfaceId=eni["NetworkInterfaceId"], InstanceId=instance_id, DeviceIndex=1
    )

    node = Node(server, instance_id)

    def groups_by_eni() -> dict[str, tuple[str, str]]:
        found = {}
        for mac in node.text(MACS).split():
            found[node.text(f"{MACS}{mac}interface-id")] = (
                node.text(f"{MACS}{mac}security-group-ids"),
                node.text(f"{MACS}{mac}security-groups"),
            )
        return found

    assert groups_by_eni() == {
        primary["NetworkInterfaceId"]: (nodes, "nodes"),
        eni["NetworkInterfaceId"]: (pods, "pods"),
    }
    assert node.text("latest/meta-data/security-groups") == "nodes"

    ec2.modify_network_interface_attribute(
        NetworkInterfaceId=eni["NetworkInterfaceId"], Groups=[pods, extra]
    )
    ec2.modify_network_interface_attribute(
        NetworkInterfaceId=primary["NetworkInterfaceId"], Groups=[extra, nodes]
    )
    assert groups_by_eni() == {
        primary["NetworkInterfaceId"]: (f"{extra}\n{nodes}", "extra\nnodes"),
        eni["NetworkInterfaceId"]: (f"{pods}\n{extra}", "pods\nextra"),
    }
    assert node.text("latest/meta-data/security-groups") == "extra\nnodes"
    described = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]
    assert [g["GroupId"] for g in described["Instances"][0]["SecurityGroups"]] == [extra, nodes]
    by_group = ec2.describe_instances(Filters=[{"Name": "instance.group-id", "Values": [extra]}])
    assert [i["InstanceId"] for r in by_group["Reservations"] for i in r["Instances"]] == [
        instance_id
    ]


def test_run_instances_takes_up_to_five_known_groups_of_its_vpc(
    server: EmulatorServer, ec2: Any
) -> None:
    net = Net(ec2)
    groups = [net.group(f"g{number}") for number in range(6)]
    launch_params = {
        "ImageId": "ami-12345678",
        "InstanceType": "m5.large",
        "MinCount": 1,
        "MaxCount": 1,
        "SubnetId": net.subnet,
    }
    for ids, code in (
        (groups, "SecurityGroupsPerInstanceLimitExceeded"),
        (["sg-0123456789abcdef0"], "InvalidGroup.NotFound"),
        ([net.foreign], "InvalidParameter"),
    ):
        answer = refusal(server, ec2.run_instances, SecurityGroupIds=ids, **launch_params)
        assert answer[0] == code
    instance = launch(ec2, net.subnet)
    assert [g["GroupId"] for g in instance["SecurityGroups"]] == [net.default_group()]


def test_iam_and_dry_run_of_create_security_group(server: EmulatorServer, ec2: Any) -> None:
    net = Net(ec2)
    vpc_arn = f"arn:aws:ec2:us-west-2:123456789012:vpc/{net.vpc}"
    post(server, "iam-policy", policy(allow("ec2:CreateSecurityGroup", vpc_arn)))
    parts = denied(ec2.create_security_group, GroupName="pods", Description="d", VpcId=net.vpc)
    assert parts["arn"] == "arn:aws:ec2:us-west-2:123456789012:security-group/*"
    post(
        server,
        "iam-policy",
        policy(
            allow("ec2:CreateSecurityGroup", [vpc_arn, "arn:aws:ec2:*:*:security-group/*"]),
            allow("ec2:DescribeSecurityGroups"),
        ),
    )
    with pytest.raises(ClientError) as dry:
        ec2.create_security_group(GroupName="pods", Description="d", VpcId=net.vpc, DryRun=True)
    assert dry.value.response["Error"]["Code"] == "DryRunOperation"
    group = net.group("pods")
    assert ec2.describe_security_groups(GroupIds=[group])["SecurityGroups"][0]["GroupName"] == (
        "pods"
    )
    parts = denied(ec2.create_network_interface, SubnetId=net.subnet, Groups=[group])
    assert parts["action"] == "ec2:CreateNetworkInterface"
