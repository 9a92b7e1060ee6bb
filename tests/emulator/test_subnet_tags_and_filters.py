"""Subnet tags and DescribeSubnets filters through unmodified boto3, as subnet discovery uses them.

Upstream's discovery (behaviour reference §8.6) lists ``DescribeSubnets(vpc-id, availability-zone)``
and reads each subnet's ``kubernetes.io/role/cni`` and ``cni.networking.k8s.aws/cluster/<name>``
tags. EC2's filter semantics: a subnet passes a filter when one of its values for that name
matches one of the filter's values (OR within a filter), and must pass every filter (AND across
filters); values take ``*`` (any run of characters) and ``?`` (one character) wildcards, ``\\``
escapes them; ``tag:<key>`` matches the value of that key, ``tag-key`` any key, ``tag-value`` any
value.
"""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.emulator.conftest import EmulatorFactory, client
from tests.emulator.test_iam_enforcement import allow, denied, policy, post, resources
from vpccni.emulator.server import EmulatorServer

ROLE = "kubernetes.io/role/cni"
CLUSTER = "cni.networking.k8s.aws/cluster/"


def tags(**pairs: str) -> list[dict[str, Any]]:
    return [{"ResourceType": "subnet", "Tags": [{"Key": k, "Value": v} for k, v in pairs.items()]}]


class Layout:
    """One VPC with a secondary block: node subnets in the primary block, pod subnets in the
    secondary one, across three zones; a second VPC with a tagged subnet of its own."""

    def __init__(self, ec2: Any) -> None:
        self.ec2 = ec2
        self.vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        ec2.associate_vpc_cidr_block(VpcId=self.vpc, CidrBlock="100.64.0.0/16")
        self.ids: dict[str, str] = {}
        for index, zone in enumerate("abc"):
            self.add(f"nodes-{zone}", f"10.0.{index}.0/24", zone)
            self.add(f"pods-{zone}", f"100.64.{64 * index}.0/18", zone, **{ROLE: "1"})
        self.add("off-a", "10.0.10.0/24", "a", **{ROLE: "0"})
        self.add("other-cluster-a", "10.0.11.0/24", "a", **{ROLE: "1", CLUSTER + "blue": "1"})
        self.add("shared-a", "10.0.12.0/24", "a", **{ROLE: "yes", CLUSTER + "green": "shared"})
        other = ec2.create_vpc(CidrBlock="10.1.0.0/16")["Vpc"]["VpcId"]
        self.add("elsewhere-a", "10.1.0.0/24", "a", vpc=other, **{ROLE: "1"})

    def add(self, name: str, cidr: str, zone: str, vpc: str | None = None, **tagged: str) -> None:
        subnet = self.ec2.create_subnet(
            VpcId=vpc or self.vpc,
            CidrBlock=cidr,
            AvailabilityZone=f"us-west-2{zone}",
            TagSpecifications=tags(Name=name, **tagged),
        )["Subnet"]
        assert subnet["Tags"][0] == {"Key": "Name", "Value": name}
        self.ids[name] = subnet["SubnetId"]

    def names(self, *filters: tuple[str, list[str]], **params: Any) -> list[str]:
        found = self.ec2.describe_subnets(
            Filters=[{"Name": n, "Values": v} for n, v in filters], **params
        )["Subnets"]
        by_id = {subnet_id: name for name, subnet_id in self.ids.items()}
        return sorted(by_id[s["SubnetId"]] for s in found)


@pytest.fixture
def server(start_server: EmulatorFactory) -> EmulatorServer:
    return start_server(rate_limits=False)


@pytest.fixture
def layout(server: EmulatorServer) -> Layout:
    return Layout(client(server))


def test_discovery_lists_the_vpc_and_zone_with_their_tags(layout: Layout) -> None:
    found = layout.ec2.describe_subnets(
        Filters=[
            {"Name": "vpc-id", "Values": [layout.vpc]},
            {"Name": "availability-zone", "Values": ["us-west-2a"]},
        ]
    )["Subnets"]
    by_name = {
        next(t["Value"] for t in s["Tags"] if t["Key"] == "Name"): {
            t["Key"]: t["Value"] for t in s["Tags"]
        }
        for s in found
    }
    assert sorted(by_name) == ["nodes-a", "off-a", "other-cluster-a", "pods-a", "shared-a"]
    assert by_name["pods-a"][ROLE] == "1"
    assert by_name["off-a"][ROLE] == "0"
    assert ROLE not in by_name["nodes-a"]
    assert by_name["other-cluster-a"][CLUSTER + "blue"] == "1"
    pods = next(s for s in found if s["SubnetId"] == layout.ids["pods-a"])
    assert pods["CidrBlock"] == "100.64.0.0/18"
    assert pods["AvailableIpAddressCount"] == 16384 - 5


def test_or_within_a_filter_and_across_filters(layout: Layout) -> None:
    vpc = ("vpc-id", [layout.vpc])
    assert layout.names(vpc, ("availability-zone", ["us-west-2b", "us-west-2c"])) == [
        "nodes-b",
        "nodes-c",
        "pods-b",
        "pods-c",
    ]
    assert layout.names(vpc, (f"tag:{ROLE}", ["1"]), ("availability-zone", ["us-west-2a"])) == [
        "other-cluster-a",
        "pods-a",
    ]
    assert layout.names((f"tag:{ROLE}", ["1"]), ("availability-zone", ["us-west-2a"])) == [
        "elsewhere-a",
        "other-cluster-a",
        "pods-a",
    ]
    assert layout.names(vpc, (f"tag:{ROLE}", ["0", "yes"])) == ["off-a", "shared-a"]
    # the same filter name twice: both must hold
    assert layout.names(vpc, ("tag-key", [ROLE]), ("tag-key", [CLUSTER + "*"])) == [
        "other-cluster-a",
        "shared-a",
    ]


def test_wildcards_and_escapes(layout: Layout) -> None:
    vpc = ("vpc-id", [layout.vpc])
    assert layout.names(vpc, ("tag-key", ["cni.networking.k8s.aws/cluster/*"])) == [
        "other-cluster-a",
        "shared-a",
    ]
    assert layout.names(vpc, ("tag:Name", ["pods-?"])) == ["pods-a", "pods-b", "pods-c"]
    assert layout.names(vpc, ("cidr-block", ["100.64.*"])) == ["pods-a", "pods-b", "pods-c"]
    assert layout.names(vpc, ("cidr-block", ["10.0.1?.0/24"])) == [
        "off-a",
        "other-cluster-a",
        "shared-a",
    ]
    assert layout.names(vpc, ("tag-value", ["shar*"])) == ["shared-a"]
    # wildcards are case-sensitive; an escaped * is a literal star
    assert layout.names(vpc, ("tag:Name", ["PODS-*"])) == []
    assert layout.names(vpc, ("tag:Name", ["pods-\\*"])) == []
    # a tag filter on a key no subnet has matches nothing, whatever the value
    assert layout.names(vpc, ("tag:absent", ["*"])) == []


def test_id_cidr_and_state_filters(layout: Layout) -> None:
    ids = layout.ids
    assert layout.names(("subnet-id", [ids["pods-a"], ids["nodes-c"]])) == ["nodes-c", "pods-a"]
    assert layout.names(("cidr-block", ["100.64.64.0/18"])) == ["pods-b"]
    assert len(layout.names(("state", ["available"]))) == len(ids)
    assert layout.names(("state", ["pending"])) == []
    assert layout.names(
        ("vpc-id", [layout.vpc]), SubnetIds=[ids["pods-a"], ids["elsewhere-a"]]
    ) == ["pods-a"]
    pages = layout.ec2.get_paginator("describe_subnets").paginate(
        Filters=[{"Name": f"tag:{ROLE}", "Values": ["*"]}], PaginationConfig={"PageSize": 5}
    )
    listed = [s["SubnetId"] for page in pages for s in page["Subnets"]]
    assert len(listed) == len(set(listed)) == 7


def test_unknown_filters_and_zones_are_refused(server: EmulatorServer, layout: Layout) -> None:
    with pytest.raises(ClientError) as refused:
        layout.names(("role", ["1"]))
    assert refused.value.response["Error"]["Code"] == "InvalidParameterValue"
    before = resources(server)
    for zone in ("us-east-1a", "us-west-2-a", "us-west-2"):
        with pytest.raises(ClientError) as refused:
            layout.ec2.create_subnet(
                VpcId=layout.vpc, CidrBlock="10.0.200.0/24", AvailabilityZone=zone
            )
        assert refused.value.response["Error"]["Code"] == "InvalidParameterValue", zone
    assert resources(server) == before


def test_create_and_delete_tags_on_a_subnet(server: EmulatorServer, layout: Layout) -> None:
    ec2, nodes = layout.ec2, layout.ids["nodes-b"]
    vpc = ("vpc-id", [layout.vpc])
    ec2.create_tags(Resources=[nodes], Tags=[{"Key": ROLE, "Value": "1"}])
    assert layout.names(vpc, (f"tag:{ROLE}", ["1"]), ("availability-zone", ["us-west-2b"])) == [
        "nodes-b",
        "pods-b",
    ]
    ec2.create_tags(Resources=[nodes], Tags=[{"Key": ROLE, "Value": "0"}])  # replaces the value
    assert layout.names(vpc, (f"tag:{ROLE}", ["0"])) == ["nodes-b", "off-a"]
    ec2.delete_tags(Resources=[nodes], Tags=[{"Key": ROLE, "Value": "1"}])  # value differs: kept
    assert layout.names(vpc, (f"tag:{ROLE}", ["0"])) == ["nodes-b", "off-a"]
    ec2.delete_tags(Resources=[nodes], Tags=[{"Key": ROLE}])
    [subnet] = ec2.describe_subnets(SubnetIds=[nodes])["Subnets"]
    assert subnet["Tags"] == [{"Key": "Name", "Value": "nodes-b"}]

    # IAM: CreateTags on a subnet is authorized on its ARN with its tags and the request's
    post(
        server,
        "iam-policy",
        policy(
            allow(
                "ec2:CreateTags",
                "arn:aws:ec2:*:*:subnet/*",
                StringEquals={f"aws:ResourceTag/{ROLE}": "1"},
            )
        ),
    )
    ec2.create_tags(Resources=[layout.ids["pods-c"]], Tags=[{"Key": "team", "Value": "pods"}])
    parts = denied(ec2.create_tags, Resources=[nodes], Tags=[{"Key": ROLE, "Value": "1"}])
    assert parts["arn"] == f"arn:aws:ec2:us-west-2:123456789012:subnet/{nodes}"
    assert f'"aws:RequestTag/{ROLE}": ["1"]' in parts["decoded"]
