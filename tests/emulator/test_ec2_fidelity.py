"""EC2's own answers where the emulator used to differ: parameter combinations, tag rules, error
codes for foreign groups and malformed ids, a new ENI's first status, and the throttling buckets of
RunInstances and TerminateInstances (request and resource tokens).

Calls go through ``Emulator.call`` with the parameters boto3 would send, so each case is one EC2
request; every refusal is also checked to have changed nothing.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from vpccni.core.ec2_rate_limits import BucketSpec
from vpccni.core.limits import InstanceTable
from vpccni.emulator.errors import Ec2Error
from vpccni.emulator.realism import Knobs
from vpccni.emulator.service import Emulator

NOW = 1000.0


@pytest.fixture
def emulator(table: InstanceTable) -> Emulator:
    return Emulator(table, Knobs(rate_limits=False))


def world(emulator: Emulator) -> dict[str, str]:
    vpc = emulator.call("CreateVpc", {"CidrBlock": "10.0.0.0/16"}, NOW)["Vpc"]["VpcId"]
    subnet = emulator.call("CreateSubnet", {"VpcId": vpc, "CidrBlock": "10.0.1.0/24"}, NOW)
    other = emulator.call("CreateVpc", {"CidrBlock": "10.1.0.0/16"}, NOW)["Vpc"]["VpcId"]
    foreign = emulator.call(
        "CreateSecurityGroup", {"VpcId": other, "GroupName": "g", "Description": "d"}, NOW
    )
    return {"vpc": vpc, "subnet": subnet["Subnet"]["SubnetId"], "foreign_group": foreign["GroupId"]}


def refused(emulator: Emulator, action: str, params: dict[str, Any]) -> Ec2Error:
    before = emulator.model.store.enis.copy()
    with pytest.raises(Ec2Error) as error:
        emulator.call(action, params, NOW)
    assert emulator.model.store.enis == before
    return error.value


@pytest.mark.parametrize(
    "extra",
    [{"Ipv4PrefixCount": 1}, {"Ipv4Prefixes": [{"Ipv4Prefix": "10.0.1.16/28"}]}],
    ids=["prefix-count", "prefix-list"],
)
def test_create_eni_refuses_address_count_with_prefixes(
    emulator: Emulator, extra: dict[str, Any]
) -> None:
    subnet = world(emulator)["subnet"]
    params = {"SubnetId": subnet, "SecondaryPrivateIpAddressCount": 2, **extra}
    assert refused(emulator, "CreateNetworkInterface", params).code == (
        "InvalidParameterCombination"
    )


def tag_spec(tags: list[tuple[str, str]]) -> list[dict[str, Any]]:
    return [
        {
            "ResourceType": "network-interface",
            "Tags": [{"Key": key, "Value": value} for key, value in tags],
        }
    ]


BAD_TAGS = [
    ([(f"k{i}", "v") for i in range(51)], "TagLimitExceeded"),
    ([("aws:cloudformation:stack-name", "x")], "InvalidParameterValue"),
    ([("AWS:Owner", "x")], "InvalidParameterValue"),
    ([("k" * 129, "v")], "InvalidParameterValue"),
    ([("k", "v" * 257)], "InvalidParameterValue"),
    ([("", "v")], "InvalidParameterValue"),
]
BAD_TAG_IDS = [
    "51-tags",
    "aws-prefix",
    "aws-prefix-any-case",
    "129-char-key",
    "257-char-value",
    "empty",
]


@pytest.mark.parametrize(("tags", "code"), BAD_TAGS, ids=BAD_TAG_IDS)
def test_tag_specifications_are_validated_like_create_tags(
    emulator: Emulator, tags: list[tuple[str, str]], code: str
) -> None:
    subnet = world(emulator)["subnet"]
    params = {"SubnetId": subnet, "TagSpecifications": tag_spec(tags)}
    assert refused(emulator, "CreateNetworkInterface", params).code == code
    eni = emulator.call("CreateNetworkInterface", {"SubnetId": subnet}, NOW)["NetworkInterface"]
    tag_params = {
        "Resources": [eni["NetworkInterfaceId"]],
        "Tags": [{"Key": k, "Value": v} for k, v in tags],
    }
    assert refused(emulator, "CreateTags", tag_params).code == code
    assert emulator.model.store.eni(eni["NetworkInterfaceId"]).tags == ()


def test_the_largest_allowed_tags_are_accepted(emulator: Emulator) -> None:
    subnet = world(emulator)["subnet"]
    tags = [("k" * 128, "v" * 256)] + [(f"k{i}", "") for i in range(49)]
    params = {"SubnetId": subnet, "TagSpecifications": tag_spec(tags)}
    eni = emulator.call("CreateNetworkInterface", params, NOW)["NetworkInterface"]
    assert len(eni["TagSet"]) == 50


def test_run_instances_validates_its_tag_specifications(emulator: Emulator) -> None:
    subnet = world(emulator)["subnet"]
    spec = [{"ResourceType": "instance", "Tags": [{"Key": "aws:x", "Value": "1"}]}]
    params = {"MinCount": 1, "MaxCount": 1, "SubnetId": subnet, "TagSpecifications": spec}
    assert refused(emulator, "RunInstances", params).code == "InvalidParameterValue"
    assert emulator.model.store.instances == {}


def test_a_security_group_of_another_vpc_is_invalid_parameter(emulator: Emulator) -> None:
    ids = world(emulator)
    params = {"SubnetId": ids["subnet"], "Groups": [ids["foreign_group"]]}
    error = refused(emulator, "CreateNetworkInterface", params)
    assert error.code == "InvalidParameter"
    assert ids["foreign_group"] in error.message
    eni = emulator.call("CreateNetworkInterface", {"SubnetId": ids["subnet"]}, NOW)
    eni_id = eni["NetworkInterface"]["NetworkInterfaceId"]
    params = {"NetworkInterfaceId": eni_id, "Groups": [ids["foreign_group"]]}
    assert refused(emulator, "ModifyNetworkInterfaceAttribute", params).code == "InvalidParameter"


@pytest.mark.parametrize(
    ("action", "params", "code"),
    [
        (
            "DescribeNetworkInterfaces",
            {"NetworkInterfaceIds": ["eni-nope"]},
            "InvalidNetworkInterfaceID.Malformed",
        ),
        (
            "DeleteNetworkInterface",
            {"NetworkInterfaceId": "eni-12"},
            "InvalidNetworkInterfaceID.Malformed",
        ),
        ("DescribeSubnets", {"SubnetIds": ["subnet-xyz"]}, "InvalidSubnetID.Malformed"),
        ("DescribeVpcs", {"VpcIds": ["vpc-"]}, "InvalidVpcID.Malformed"),
        ("DescribeInstances", {"InstanceIds": ["i-ZZZZZZZZ"]}, "InvalidInstanceID.Malformed"),
        ("DescribeSecurityGroups", {"GroupIds": ["sg-1"]}, "InvalidGroupId.Malformed"),
        (
            "DetachNetworkInterface",
            {"AttachmentId": "eni-attach-x"},
            "InvalidNetworkInterfaceAttachmentId.Malformed",
        ),
        (
            "DescribeNetworkInterfaces",
            {"NetworkInterfaceIds": ["eni-0123456789abcdef0"]},
            "InvalidNetworkInterfaceID.NotFound",
        ),
        ("DescribeSubnets", {"SubnetIds": ["subnet-01234567"]}, "InvalidSubnetID.NotFound"),
        (
            "DetachNetworkInterface",
            {"AttachmentId": "eni-attach-0123456789abcdef0"},
            "InvalidAttachmentID.NotFound",
        ),
    ],
)
def test_malformed_ids_are_malformed_and_unknown_ones_not_found(
    emulator: Emulator, action: str, params: dict[str, Any], code: str
) -> None:
    world(emulator)
    error = refused(emulator, action, params)
    assert error.code == code


def test_a_new_eni_reports_pending_then_available(emulator: Emulator) -> None:
    subnet = world(emulator)["subnet"]
    created = emulator.call("CreateNetworkInterface", {"SubnetId": subnet}, NOW)
    assert created["NetworkInterface"]["Status"] == "pending"
    eni_id = created["NetworkInterface"]["NetworkInterfaceId"]
    described = emulator.call("DescribeNetworkInterfaces", {"NetworkInterfaceIds": [eni_id]}, NOW)
    assert described["NetworkInterfaces"][0]["Status"] == "available"


def throttled(
    emulator: Emulator, action: str, params: dict[str, Any], times: int, now: float
) -> int:
    """How many of ``times`` calls at ``now`` answer RequestLimitExceeded."""
    count = 0
    for _ in range(times):
        try:
            emulator.call(action, params, now)
        except Ec2Error as error:
            count += error.code == "RequestLimitExceeded"
    return count


def test_run_instances_has_a_5_token_bucket_refilled_2_per_second(table: InstanceTable) -> None:
    emulator = Emulator(table)
    subnet = world(emulator)["subnet"]
    launch = {"MinCount": 1, "MaxCount": 1, "SubnetId": subnet, "InstanceType": "c5.large"}
    assert throttled(emulator, "RunInstances", launch, 6, NOW) == 1
    assert throttled(emulator, "RunInstances", launch, 3, NOW + 1) == 1


def test_terminate_instances_has_a_100_token_bucket_refilled_5_per_second(
    table: InstanceTable,
) -> None:
    emulator = Emulator(table)
    params = {"InstanceIds": ["i-0123456789abcdef0"]}
    assert throttled(emulator, "TerminateInstances", params, 101, NOW) == 1
    assert throttled(emulator, "TerminateInstances", params, 6, NOW + 1) == 1


def test_run_instances_resource_tokens_count_instances(table: InstanceTable) -> None:
    emulator = Emulator(table, Knobs(buckets={"RunInstances": BucketSpec(10_000, 10_000)}))
    vpc = emulator.call("CreateVpc", {"CidrBlock": "10.0.0.0/16"}, NOW)["Vpc"]["VpcId"]
    subnet = emulator.call("CreateSubnet", {"VpcId": vpc, "CidrBlock": "10.0.0.0/16"}, NOW)
    launch = {"SubnetId": subnet["Subnet"]["SubnetId"], "InstanceType": "c5.large"}
    emulator.call("RunInstances", {**launch, "MinCount": 1, "MaxCount": 999}, NOW)
    error = refused(emulator, "RunInstances", {**launch, "MinCount": 2, "MaxCount": 2})
    assert error.code == "RequestLimitExceeded"
    emulator.call("RunInstances", {**launch, "MinCount": 1, "MaxCount": 1}, NOW)
    assert len(emulator.model.store.instances) == 1000
    assert (
        throttled(emulator, "RunInstances", {**launch, "MinCount": 1, "MaxCount": 1}, 3, NOW + 1)
        == 1
    )


def test_docs_state_the_unattached_eni_limit_the_code_enforces(emulator: Emulator) -> None:
    limit = emulator.model.store.max_unattached_slots()
    docs = (Path(__file__).parents[2] / "docs" / "emulator.md").read_text()
    stated = re.search(r"\*unattached\* ENI[^.]*?\((\d+) slots", docs)
    assert stated, "docs/emulator.md must state the unattached-ENI limit as '(N slots'"
    assert int(stated.group(1)) == limit
    subnet = world(emulator)["subnet"]
    params = {"SubnetId": subnet, "SecondaryPrivateIpAddressCount": limit - 1}
    emulator.call("CreateNetworkInterface", params, NOW)
    params["SecondaryPrivateIpAddressCount"] = limit
    assert refused(emulator, "CreateNetworkInterface", params).code == (
        "PrivateIpAddressLimitExceeded"
    )
