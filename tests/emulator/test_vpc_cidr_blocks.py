"""Secondary VPC CIDR blocks through unmodified boto3: AssociateVpcCidrBlock with EC2's rules,
DisassociateVpcCidrBlock, DescribeVpcs' association set and filters, subnets in any block, IMDS'
``vpc-ipv4-cidr-blocks``, and the IAM checks of both actions.

The restrictions are the Amazon VPC User Guide's ("VPC CIDR blocks": sizes /16../28, no overlap,
five blocks per VPC, and the table "IPv4 CIDR block association restrictions"), one case per rule.
"""

from __future__ import annotations

import json
from ipaddress import IPv4Network
from typing import Any
from urllib.parse import urlencode

import pytest
from botocore.exceptions import ClientError

from tests.emulator.conftest import EmulatorFactory, admin, client, http, launch
from tests.emulator.test_iam_enforcement import allow, denied, policy, post, resources
from tests.emulator.test_imds import MACS, Node
from vpccni.adapters.imds_http import ImdsV2
from vpccni.core.limits import InstanceTable
from vpccni.emulator.server import EmulatorServer
from vpccni.emulator.service import Emulator
from vpccni.emulator.statefile import dump_state, load_state

VPC_ARN = "arn:aws:ec2:us-west-2:123456789012:vpc/{}"


@pytest.fixture
def server(start_server: EmulatorFactory) -> EmulatorServer:
    return start_server(rate_limits=False)


@pytest.fixture
def ec2(server: EmulatorServer) -> Any:
    return client(server)


def new_vpc(ec2: Any, cidr: str = "10.0.0.0/16") -> str:
    return str(ec2.create_vpc(CidrBlock=cidr)["Vpc"]["VpcId"])


def refusal(server: EmulatorServer, call: Any, **params: Any) -> tuple[str, str]:
    """(code, message) of a call that must be refused; checks it changed nothing."""
    before = resources(server)
    with pytest.raises(ClientError) as refused:
        call(**params)
    assert resources(server) == before
    error = refused.value.response["Error"]
    return error["Code"], error["Message"]


def blocks(ec2: Any, vpc_id: str) -> list[tuple[str, str]]:
    vpc = ec2.describe_vpcs(VpcIds=[vpc_id])["Vpcs"][0]
    return [(a["CidrBlock"], a["CidrBlockState"]["State"]) for a in vpc["CidrBlockAssociationSet"]]


def test_a_secondary_block_is_associated_described_and_filtered(ec2: Any) -> None:
    vpc_id = new_vpc(ec2)
    answer = ec2.associate_vpc_cidr_block(VpcId=vpc_id, CidrBlock="100.64.0.0/16")
    association = answer["CidrBlockAssociation"]
    assert answer["VpcId"] == vpc_id
    assert association["CidrBlock"] == "100.64.0.0/16"
    assert association["CidrBlockState"]["State"] == "associating"
    assert association["AssociationId"].startswith("vpc-cidr-assoc-")

    vpc = ec2.describe_vpcs(VpcIds=[vpc_id])["Vpcs"][0]
    assert vpc["CidrBlock"] == "10.0.0.0/16"
    assert blocks(ec2, vpc_id) == [("10.0.0.0/16", "associated"), ("100.64.0.0/16", "associated")]
    ids = [a["AssociationId"] for a in vpc["CidrBlockAssociationSet"]]
    assert len(set(ids)) == 2
    assert association["AssociationId"] in ids

    other = new_vpc(ec2, "10.1.0.0/16")

    def found(name: str, *values: str) -> list[str]:
        vpcs = ec2.describe_vpcs(Filters=[{"Name": name, "Values": list(values)}])["Vpcs"]
        return sorted(v["VpcId"] for v in vpcs)

    assert found("cidr-block-association.cidr-block", "100.64.*") == [vpc_id]
    assert found("cidr-block-association.cidr-block", "10.?.0.0/16") == sorted([vpc_id, other])
    assert found("cidr", "100.64.0.0/16") == []  # the primary block only
    assert found("cidr-block-association.association-id", association["AssociationId"]) == [vpc_id]
    assert found("cidr-block-association.state", "associated") == sorted([vpc_id, other])


def test_host_bits_are_dropped_as_ec2_canonicalizes(ec2: Any) -> None:
    vpc = ec2.create_vpc(CidrBlock="10.0.0.18/16")["Vpc"]
    assert vpc["CidrBlock"] == "10.0.0.0/16"
    answer = ec2.associate_vpc_cidr_block(VpcId=vpc["VpcId"], CidrBlock="100.68.0.18/18")
    assert answer["CidrBlockAssociation"]["CidrBlock"] == "100.68.0.0/18"


def test_subnets_may_lie_in_any_associated_block(server: EmulatorServer, ec2: Any) -> None:
    vpc_id = new_vpc(ec2)
    ec2.associate_vpc_cidr_block(VpcId=vpc_id, CidrBlock="100.64.0.0/16")
    pods = ec2.create_subnet(VpcId=vpc_id, CidrBlock="100.64.0.0/18")["Subnet"]
    assert pods["AvailableIpAddressCount"] == 2**14 - 5
    ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.0.1.0/24")
    for outside in ("100.65.0.0/24", "10.1.0.0/24"):
        code, message = refusal(server, ec2.create_subnet, VpcId=vpc_id, CidrBlock=outside)
        assert code == "InvalidSubnet.Range"
        assert "10.0.0.0/16, 100.64.0.0/16" in message
    # adjacent blocks do not make one range: a subnet must lie inside one block
    ec2.associate_vpc_cidr_block(VpcId=vpc_id, CidrBlock="10.1.0.0/16")
    code, _ = refusal(server, ec2.create_subnet, VpcId=vpc_id, CidrBlock="10.0.0.0/15")
    assert code == "InvalidSubnet.Range"
    code, _ = refusal(server, ec2.create_subnet, VpcId=vpc_id, CidrBlock="100.64.32.0/20")
    assert code == "InvalidSubnet.Conflict"


# (primary block, block to add, EC2's answer): a row per rule of the restriction table.
RESTRICTIONS = [
    ("10.0.0.0/16", "100.64.0.0/16", None),  # 100.64.0.0/10 beside any primary
    ("10.0.0.0/16", "10.2.0.0/16", None),  # the same RFC 1918 range
    ("10.0.0.0/16", "54.1.0.0/16", None),  # publicly routable
    ("10.0.0.0/16", "172.16.0.0/16", "restricted"),  # another RFC 1918 range
    ("10.0.0.0/16", "192.168.0.0/20", "restricted"),
    ("10.0.0.0/16", "198.19.0.0/16", "restricted"),
    ("10.1.0.0/16", "10.0.5.0/24", "restricted"),  # a block in 10.0.0.0/15 keeps 10.0.0.0/16 out
    ("10.2.0.0/16", "10.0.5.0/24", None),  # ... and only then
    ("172.20.0.0/16", "172.21.0.0/16", None),
    ("172.20.0.0/16", "172.31.0.0/16", "restricted"),  # the default VPC's range
    ("172.20.0.0/16", "10.0.0.0/16", "restricted"),
    ("172.20.0.0/16", "198.19.0.0/16", "restricted"),
    ("192.168.0.0/20", "192.168.16.0/20", None),
    ("192.168.0.0/20", "172.16.0.0/16", "restricted"),
    ("192.168.0.0/20", "198.19.0.0/16", "restricted"),
    ("198.19.0.0/16", "100.64.0.0/16", None),
    ("198.19.0.0/16", "54.1.0.0/16", None),
    ("198.19.0.0/16", "10.0.0.0/16", "restricted"),
    ("100.64.0.0/16", "100.65.0.0/16", None),  # public or 100.64.0.0/10 primary
    ("100.64.0.0/16", "54.1.0.0/16", None),
    ("54.1.0.0/16", "100.64.0.0/16", None),
    ("100.64.0.0/16", "192.168.0.0/16", "restricted"),
    ("54.1.0.0/16", "198.19.0.0/16", "restricted"),
    ("10.0.0.0/16", "169.254.0.0/16", "link-local"),
    ("10.0.0.0/16", "10.0.128.0/17", "overlap"),
    ("10.2.0.0/16", "10.2.0.0/16", "overlap"),
    ("10.0.0.0/16", "100.64.0.0/15", "size"),
    ("10.0.0.0/16", "100.64.0.0/29", "size"),
]


@pytest.mark.parametrize(("primary", "block", "refused"), RESTRICTIONS)
def test_the_association_restrictions(
    server: EmulatorServer, ec2: Any, primary: str, block: str, refused: str | None
) -> None:
    vpc_id = new_vpc(ec2, primary)
    if refused is None:
        ec2.associate_vpc_cidr_block(VpcId=vpc_id, CidrBlock=block)
        assert blocks(ec2, vpc_id)[-1] == (block, "associated")
        return
    code, message = refusal(server, ec2.associate_vpc_cidr_block, VpcId=vpc_id, CidrBlock=block)
    assert code == "InvalidVpc.Range"
    expected = {
        "restricted": f"The CIDR '{block}' is restricted. Use a CIDR from the same private address "
        "range as the current VPC CIDR, or use a publicly-routable CIDR.",
        "link-local": "link-local addresses (169.254.0.0/16) cannot be assigned to a VPC",
        "overlap": f"conflicts with the CIDR block {primary} already associated with {vpc_id}",
        "size": "the block size must be between /16 and /28",
    }[refused]
    assert expected in message


def test_the_10_slash_15_rule_looks_at_every_block_not_only_the_primary(
    server: EmulatorServer, ec2: Any
) -> None:
    vpc_id = new_vpc(ec2, "10.4.0.0/16")
    ec2.associate_vpc_cidr_block(VpcId=vpc_id, CidrBlock="10.1.0.0/16")
    code, _ = refusal(server, ec2.associate_vpc_cidr_block, VpcId=vpc_id, CidrBlock="10.0.0.0/16")
    assert code == "InvalidVpc.Range"


def test_five_blocks_per_vpc_the_primary_included(server: EmulatorServer, ec2: Any) -> None:
    vpc_id = new_vpc(ec2)
    for number in range(4):
        ec2.associate_vpc_cidr_block(VpcId=vpc_id, CidrBlock=f"100.{64 + number}.0.0/16")
    code, message = refusal(
        server, ec2.associate_vpc_cidr_block, VpcId=vpc_id, CidrBlock="100.70.0.0/16"
    )
    assert code == "CidrLimitExceeded"
    assert message == f"This network '{vpc_id}' has met its maximum number of allowed CIDRs: 5"


def test_bad_requests_are_refused_with_ec2s_codes(server: EmulatorServer, ec2: Any) -> None:
    vpc_id = new_vpc(ec2)
    cases = [
        ({"VpcId": vpc_id, "CidrBlock": "100.64.0.0"}, "InvalidVpc.Range"),
        ({"VpcId": vpc_id, "CidrBlock": "not-a-cidr"}, "InvalidParameterValue"),
        ({"VpcId": vpc_id}, "MissingParameter"),
        ({"VpcId": vpc_id, "AmazonProvidedIpv6CidrBlock": True}, "InvalidParameterValue"),
        ({"VpcId": "vpc-0123456789abcdef0", "CidrBlock": "100.64.0.0/16"}, "InvalidVpcID.NotFound"),
        ({"VpcId": "vpc-x", "CidrBlock": "100.64.0.0/16"}, "InvalidVpcID.Malformed"),
    ]
    for params, code in cases:
        assert refusal(server, ec2.associate_vpc_cidr_block, **params)[0] == code, params


def test_disassociation(server: EmulatorServer, ec2: Any) -> None:
    vpc_id = new_vpc(ec2)
    primary = ec2.describe_vpcs(VpcIds=[vpc_id])["Vpcs"][0]["CidrBlockAssociationSet"][0]
    pods = ec2.associate_vpc_cidr_block(VpcId=vpc_id, CidrBlock="100.64.0.0/16")
    pods_id = pods["CidrBlockAssociation"]["AssociationId"]
    spare = ec2.associate_vpc_cidr_block(VpcId=vpc_id, CidrBlock="100.65.0.0/16")
    spare_id = spare["CidrBlockAssociation"]["AssociationId"]
    subnet = ec2.create_subnet(VpcId=vpc_id, CidrBlock="100.64.0.0/18")["Subnet"]["SubnetId"]

    code, message = refusal(
        server, ec2.disassociate_vpc_cidr_block, AssociationId=primary["AssociationId"]
    )
    assert code == "OperationNotPermitted"
    assert message.endswith("It is the primary IPv4 CIDR block of the VPC")
    code, message = refusal(server, ec2.disassociate_vpc_cidr_block, AssociationId=pods_id)
    assert code == "InvalidCidrBlock.InUse"
    assert message == f"The vpc {vpc_id} currently has a subnet within CIDR block 100.64.0.0/16"
    code, _ = refusal(
        server, ec2.disassociate_vpc_cidr_block, AssociationId="vpc-cidr-assoc-0123456789abcdef0"
    )
    assert code == "InvalidVpcCidrBlockAssociationID.NotFound"

    answer = ec2.disassociate_vpc_cidr_block(AssociationId=spare_id)
    assert answer["VpcId"] == vpc_id
    assert answer["CidrBlockAssociation"]["CidrBlock"] == "100.65.0.0/16"
    assert answer["CidrBlockAssociation"]["CidrBlockState"]["State"] == "disassociating"
    assert [b for b, _ in blocks(ec2, vpc_id)] == ["10.0.0.0/16", "100.64.0.0/16"]
    assert ec2.describe_subnets(SubnetIds=[subnet])["Subnets"][0]["CidrBlock"] == "100.64.0.0/18"
    # the freed range may be associated again, with a new association id
    again = ec2.associate_vpc_cidr_block(VpcId=vpc_id, CidrBlock="100.65.0.0/16")
    assert again["CidrBlockAssociation"]["AssociationId"] != spare_id


def test_imds_lists_every_block_per_mac_and_the_primary_alone(
    server: EmulatorServer, ec2: Any
) -> None:
    vpc_id = new_vpc(ec2)
    ec2.associate_vpc_cidr_block(VpcId=vpc_id, CidrBlock="100.64.0.0/16")
    nodes = ec2.create_subnet(VpcId=vpc_id, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
    pods = ec2.create_subnet(VpcId=vpc_id, CidrBlock="100.64.0.0/18")["Subnet"]["SubnetId"]
    instance = launch(ec2, nodes, "m5.large")
    eni = ec2.create_network_interface(SubnetId=pods, SecondaryPrivateIpAddressCount=2)
    eni_id = eni["NetworkInterface"]["NetworkInterfaceId"]
    ec2.attach_network_interface(
        NetworkInterfaceId=eni_id, InstanceId=instance["InstanceId"], DeviceIndex=1
    )

    node = Node(server, instance["InstanceId"])
    macs = node.text(MACS).split()
    assert len(macs) == 2
    for mac in macs:
        assert node.text(f"{MACS}{mac}vpc-ipv4-cidr-block") == "10.0.0.0/16"
        assert node.text(f"{MACS}{mac}vpc-ipv4-cidr-blocks") == "10.0.0.0/16\n100.64.0.0/16"
    by_eni = {node.text(f"{MACS}{mac}interface-id"): mac for mac in macs}
    assert node.text(f"{MACS}{by_eni[eni_id]}subnet-ipv4-cidr-block") == "100.64.0.0/18"
    assert all(
        IPv4Network(a).subnet_of(IPv4Network("100.64.0.0/18"))
        for a in node.text(f"{MACS}{by_eni[eni_id]}local-ipv4s").split()
    )

    # vpccni's IMDS adapter reads both blocks (they become the SNAT exclusions)
    listed = {
        i.eni_id: i for i in ImdsV2(server.imds_endpoint(instance["InstanceId"])).interfaces()
    }
    expected = (IPv4Network("10.0.0.0/16"), IPv4Network("100.64.0.0/16"))
    assert listed[eni_id].vpc_cidrs == expected
    assert listed[instance["NetworkInterfaces"][0]["NetworkInterfaceId"]].vpc_cidrs == expected
    assert listed[eni_id].subnet_cidr == IPv4Network("100.64.0.0/18")


def test_iam_authorizes_both_actions_on_the_vpc(server: EmulatorServer, ec2: Any) -> None:
    mine = ec2.create_vpc(
        CidrBlock="10.0.0.0/16",
        TagSpecifications=[{"ResourceType": "vpc", "Tags": [{"Key": "team", "Value": "pods"}]}],
    )["Vpc"]["VpcId"]
    theirs = new_vpc(ec2, "10.1.0.0/16")
    post(
        server,
        "iam-policy",
        policy(
            allow(
                ["ec2:AssociateVpcCidrBlock", "ec2:DisassociateVpcCidrBlock"],
                "arn:aws:ec2:*:*:vpc/*",
                StringEquals={"aws:ResourceTag/team": "pods"},
            ),
            allow("ec2:DescribeVpcs"),
        ),
    )
    added = ec2.associate_vpc_cidr_block(VpcId=mine, CidrBlock="100.64.0.0/16")
    parts = denied(ec2.associate_vpc_cidr_block, VpcId=theirs, CidrBlock="100.64.0.0/16")
    assert parts["action"] == "ec2:AssociateVpcCidrBlock"
    assert parts["arn"] == VPC_ARN.format(theirs)
    # ids are validated before authorization, as in EC2
    with pytest.raises(ClientError) as invalid:
        ec2.associate_vpc_cidr_block(VpcId="vpc-0123456789abcdef0", CidrBlock="100.64.0.0/16")
    assert invalid.value.response["Error"]["Code"] == "InvalidVpcID.NotFound"
    with pytest.raises(ClientError) as invalid:
        ec2.disassociate_vpc_cidr_block(AssociationId="vpc-cidr-assoc-0123456789abcdef0")
    assert invalid.value.response["Error"]["Code"] == "InvalidVpcCidrBlockAssociationID.NotFound"

    post(server, "iam-policy", policy(allow("ec2:AssociateVpcCidrBlock")))
    association_id = added["CidrBlockAssociation"]["AssociationId"]
    parts = denied(ec2.disassociate_vpc_cidr_block, AssociationId=association_id)
    assert parts["arn"] == VPC_ARN.format(mine)
    assert len(blocks_in_state(server, mine)) == 2
    assert json.loads(parts["decoded"])["context"]["aws:ResourceTag/team"] == ["pods"]


def blocks_in_state(server: EmulatorServer, vpc_id: str) -> list[Any]:
    vpc = next(v for v in admin(server, "state")["vpcs"] if v["vpc_id"] == vpc_id)
    return list(vpc["associations"])


@pytest.mark.parametrize("action", ["AssociateVpcCidrBlock", "DisassociateVpcCidrBlock"])
def test_dry_run_is_refused_as_ec2s_api_has_none(
    server: EmulatorServer, ec2: Any, action: str
) -> None:
    vpc_id = new_vpc(ec2)
    added = ec2.associate_vpc_cidr_block(VpcId=vpc_id, CidrBlock="100.64.0.0/16")
    params = {
        "AssociateVpcCidrBlock": {"VpcId": vpc_id, "CidrBlock": "100.65.0.0/16"},
        "DisassociateVpcCidrBlock": {
            "AssociationId": added["CidrBlockAssociation"]["AssociationId"]
        },
    }[action]
    before = resources(server)
    query = urlencode({"Action": action, "Version": "2016-11-15", **params, "DryRun": "true"})
    status, body = http(f"{server.endpoint}/?{query}")
    assert status == 400
    assert "<Code>UnknownParameter</Code>" in body
    assert resources(server) == before


def test_the_state_file_keeps_the_blocks_and_reads_older_files(table: InstanceTable) -> None:
    emulator = Emulator(table)
    vpc = emulator.call("CreateVpc", {"CidrBlock": "10.0.0.0/16"}, 1.0)["Vpc"]
    emulator.call(
        "AssociateVpcCidrBlock", {"VpcId": vpc["VpcId"], "CidrBlock": "100.64.0.0/16"}, 1.0
    )
    document = json.loads(json.dumps(dump_state(emulator, 0.0)))
    loaded, _ = load_state(document, table, "state")
    described = loaded.call("DescribeVpcs", {}, 2.0)["Vpcs"][0]["CidrBlockAssociationSet"]
    assert described == emulator.call("DescribeVpcs", {}, 2.0)["Vpcs"][0]["CidrBlockAssociationSet"]

    # a file written before VPCs had secondary blocks: the primary keeps the id it showed then
    for raw in document["vpcs"]:
        del raw["associations"]
    del document["counters"]["cidr-assoc"]
    old, _ = load_state(document, table, "state")
    [primary] = old.call("DescribeVpcs", {}, 2.0)["Vpcs"][0]["CidrBlockAssociationSet"]
    assert primary["AssociationId"] == "vpc-cidr-assoc-00000000000000001"
    added = old.call(
        "AssociateVpcCidrBlock", {"VpcId": vpc["VpcId"], "CidrBlock": "100.64.0.0/16"}, 3.0
    )
    assert added["CidrBlockAssociation"]["AssociationId"] != primary["AssociationId"]
