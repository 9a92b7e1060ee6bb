"""Scenario fields for networks beyond the node subnet: a VPC's ``secondary_cidrs``, subnets with
tags in any block and zone, security groups by name (with tags), instances' primary-ENI groups;
errors naming the field; and the documented example (docs/examples/emulator-secondary-cidr.json,
shown whole in docs/emulator.md) served by ``vpccni emulator`` and kept through ``--state``.
"""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.emulator.conftest import http
from tests.emulator.test_cli import ec2_client, run_cli, start_process
from vpccni.core.limits import InstanceTable
from vpccni.emulator.errors import EmulatorSetupError
from vpccni.emulator.service import Emulator
from vpccni.emulator.world import apply_scenario, parse_scenario

ROOT = Path(__file__).parents[2]
EXAMPLE = ROOT / "docs" / "examples" / "emulator-secondary-cidr.json"
DOC = ROOT / "docs" / "emulator.md"
ROLE = "kubernetes.io/role/cni"


def doc_scenarios() -> list[dict[str, Any]]:
    blocks = re.findall(r"```json\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)
    return [doc for doc in map(json.loads, blocks) if "vpcs" in doc]


def test_the_doc_shows_the_example_file_whole() -> None:
    example = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    assert example in doc_scenarios()


def test_every_scenario_in_the_doc_applies(table: InstanceTable) -> None:
    scenarios = doc_scenarios()
    assert len(scenarios) >= 2
    for document in scenarios:
        emulator = Emulator(table)
        ids = apply_scenario(emulator, parse_scenario(document), 1.0)
        assert emulator.model.invariant_violations() == []
        assert all(ids.values())


def snapshot(ec2: Any) -> dict[str, Any]:
    """What boto3 sees of the network (to compare before and after a restart)."""
    vpcs = ec2.describe_vpcs()["Vpcs"]
    subnets = ec2.describe_subnets()["Subnets"]
    groups = ec2.describe_security_groups()["SecurityGroups"]
    instances = [i for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]]
    return {
        "vpcs": [(v["VpcId"], v["CidrBlock"], v["CidrBlockAssociationSet"]) for v in vpcs],
        "subnets": [
            (s["SubnetId"], s["CidrBlock"], s["AvailabilityZone"], s["Tags"], s["VpcId"])
            for s in subnets
        ],
        "groups": [(g["GroupId"], g["GroupName"], g["VpcId"], g["Tags"]) for g in groups],
        "instances": [
            (i["InstanceId"], i["SubnetId"], i["Placement"], i["SecurityGroups"], i["Tags"])
            for i in instances
        ],
    }


def name_of(resource: dict[str, Any]) -> str:
    return next(t["Value"] for t in resource["Tags"] if t["Key"] == "Name")


def imds_text(endpoint: str, instance_id: str, path: str) -> str:
    base = f"{endpoint}/imds/{instance_id}/latest/"
    _, token = http(base + "api/token", "PUT", {"X-aws-ec2-metadata-token-ttl-seconds": "60"})
    status, body = http(base + path, headers={"X-aws-ec2-metadata-token": token})
    assert status == 200, (path, body)
    return body


def check_example(ec2: Any, endpoint: str, taken: int = 0) -> None:
    """The example as boto3 and IMDS see it; ``taken``: addresses used in pods-a since."""
    [vpc] = ec2.describe_vpcs()["Vpcs"]
    blocks = [a["CidrBlock"] for a in vpc["CidrBlockAssociationSet"]]
    assert blocks == ["10.0.0.0/16", "100.64.0.0/16"]
    subnets = {s["CidrBlock"]: s for s in ec2.describe_subnets()["Subnets"]}
    assert len(subnets) == 6
    pod_subnets: dict[str, str] = {}
    for zone, index in zip("abc", range(3), strict=True):
        pods = subnets[f"100.64.{64 * index}.0/18"]
        assert pods["AvailabilityZone"] == f"us-west-2{zone}"
        assert pods["Tags"] == [{"Key": ROLE, "Value": "1"}]
        assert pods["AvailableIpAddressCount"] == 16384 - 5 - (taken if zone == "a" else 0)
        pod_subnets[pods["AvailabilityZone"]] = pods["SubnetId"]
        nodes = subnets[f"10.0.{index}.0/24"]
        assert nodes["AvailabilityZone"] == f"us-west-2{zone}"
        assert nodes["Tags"] == []
    groups = {
        g["GroupName"]: g["GroupId"] for g in ec2.describe_security_groups()["SecurityGroups"]
    }
    assert sorted(groups) == ["default", "nodes", "pods"]
    instances = [i for r in ec2.describe_instances()["Reservations"] for i in r["Instances"]]
    assert sorted(name_of(i) for i in instances) == ["node-a", "node-b", "node-c"]
    for instance in instances:
        zone = instance["Placement"]["AvailabilityZone"]
        node_subnet = next(s for s in subnets.values() if s["SubnetId"] == instance["SubnetId"])
        assert (node_subnet["AvailabilityZone"], node_subnet["CidrBlock"][:5]) == (zone, "10.0.")
        assert [g["GroupId"] for g in instance["SecurityGroups"]] == [groups["nodes"]]
        # what subnet discovery asks for this node: its VPC and zone, then the tags
        candidates = ec2.describe_subnets(
            Filters=[
                {"Name": "vpc-id", "Values": [vpc["VpcId"]]},
                {"Name": "availability-zone", "Values": [zone]},
                {"Name": f"tag:{ROLE}", "Values": ["1"]},
            ]
        )["Subnets"]
        assert [s["SubnetId"] for s in candidates] == [pod_subnets[zone]]
        mac = imds_text(endpoint, instance["InstanceId"], "meta-data/mac")
        listed = imds_text(
            endpoint,
            instance["InstanceId"],
            f"meta-data/network/interfaces/macs/{mac}/vpc-ipv4-cidr-blocks",
        )
        assert listed.split() == blocks


def test_the_example_is_served_and_kept_through_the_state_file(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    process, endpoint, _ = start_process("--scenario", str(EXAMPLE), "--state", str(state))
    try:
        ec2 = ec2_client(endpoint)
        check_example(ec2, endpoint)
        # a pod ENI in the secondary block, with the pods group
        pods = ec2.describe_subnets(Filters=[{"Name": "cidr-block", "Values": ["100.64.0.0/18"]}])
        group = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": ["pods"]}])[
            "SecurityGroups"
        ][0]["GroupId"]
        eni = ec2.create_network_interface(SubnetId=pods["Subnets"][0]["SubnetId"], Groups=[group])[
            "NetworkInterface"
        ]
        before = snapshot(ec2)
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err

    process, endpoint, lines = start_process("--state", str(state))
    try:
        assert any(line.startswith("vpccni emulator: state loaded from") for line in lines)
        ec2 = ec2_client(endpoint)
        assert snapshot(ec2) == before
        check_example(ec2, endpoint, taken=1)
        [kept] = ec2.describe_network_interfaces(NetworkInterfaceIds=[eni["NetworkInterfaceId"]])[
            "NetworkInterfaces"
        ]
        assert [g["GroupId"] for g in kept["Groups"]] == [group]
        assert kept["PrivateIpAddress"].startswith("100.64.")
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)


def scenario(**vpc: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"name": "main", "cidr": "10.0.0.0/16"}
    return {"vpcs": [{**base, **vpc}]}


def test_scenario_fields_apply_in_process(table: InstanceTable) -> None:
    document = {
        "vpcs": [
            {
                "name": "main",
                "cidr": "10.0.0.0/16",
                "secondary_cidrs": ["100.64.0.0/17", "100.64.128.0/17"],
                "subnets": [
                    {"name": "node-net", "cidr": "10.0.0.0/24", "availability_zone": "us-west-2b"},
                    {"name": "pod-net", "cidr": "100.64.128.0/18", "tags": {ROLE: "1"}},
                ],
                "security_groups": [
                    {"name": "nodes", "tags": {"tier": "node"}},
                    {"name": "pods", "description": "pod ENIs"},
                ],
            },
            {"name": "other", "cidr": "10.1.0.0/16", "security_groups": [{"name": "nodes"}]},
        ],
        "instances": [
            {"name": "n", "type": "m5.large", "subnet": "pod-net", "security_groups": ["pods"]}
        ],
    }
    parsed = parse_scenario(document)
    assert parsed.vpcs[0].secondary_cidrs == ("100.64.0.0/17", "100.64.128.0/17")
    emulator = Emulator(table)
    ids = apply_scenario(emulator, parsed, 1.0)
    store = emulator.model.store
    assert store.vpc(ids["main"]).cidr_blocks == ("10.0.0.0/16", "100.64.0.0/17", "100.64.128.0/17")
    assert store.subnet(ids["node-net"]).availability_zone == "us-west-2b"
    assert store.subnet(ids["pod-net"]).availability_zone == "us-west-2a"
    assert store.subnet(ids["pod-net"]).tags == ((ROLE, "1"),)
    nodes_groups = [g for g in store.groups.values() if g.name == "nodes"]
    assert sorted(g.tags for g in nodes_groups) == [(), (("tier", "node"),)]
    instance = store.instance(ids["n"])
    assert instance.group_ids == store.enis[instance.primary_eni_id].group_ids == (ids["pods"],)
    assert store.enis[instance.primary_eni_id].primary_ip.startswith("100.64.")


@pytest.mark.parametrize(
    ("document", "words"),
    [
        (
            scenario(secondary_cidrs="100.64.0.0/16"),
            "scenario.vpcs[0].secondary_cidrs must be a list",
        ),
        (
            scenario(secondary_cidrs=["100.64.0.0/16", 7]),
            "scenario.vpcs[0].secondary_cidrs must be a list",
        ),
        (
            scenario(secondary_cidrs=["192.168.0.0/16"]),
            "scenario.vpcs[0].secondary_cidrs[0] (main): InvalidVpc.Range: The CIDR "
            "'192.168.0.0/16' is restricted",
        ),
        (
            scenario(secondary_cidrs=["10.0.128.0/17"]),
            "scenario.vpcs[0].secondary_cidrs[0] (main): InvalidVpc.Range",
        ),
        (
            scenario(secondary_cidrs=[f"100.{64 + n}.0.0/16" for n in range(5)]),
            "scenario.vpcs[0].secondary_cidrs[4] (main): CidrLimitExceeded",
        ),
        (
            scenario(subnets=[{"name": "s", "cidr": "100.64.0.0/24"}]),
            "scenario.vpcs[0].subnets[0] (s): InvalidSubnet.Range",
        ),
        (
            scenario(subnets=[{"name": "s", "cidr": "10.0.0.0/24", "availability_zone": "eu-1a"}]),
            "scenario.vpcs[0].subnets[0] (s): InvalidParameterValue",
        ),
        (
            scenario(subnets=[{"name": "s", "cidr": "10.0.0.0/24", "tags": {"k": 1}}]),
            "scenario.vpcs[0].subnets[0].tags must map strings to strings",
        ),
        (
            scenario(security_groups=[{"name": "g", "tags": []}]),
            "scenario.vpcs[0].security_groups[0].tags must map strings to strings",
        ),
        (
            scenario(security_groups=[{"name": "sg-1"}]),
            "scenario.vpcs[0].security_groups[0] (sg-1): InvalidParameterValue",
        ),
        (
            scenario(
                subnets=[{"name": "x", "cidr": "10.0.0.0/24"}],
                security_groups=[{"name": "x"}],
            ),
            "scenario.vpcs[0].security_groups[0].name: the name 'x' is already used by "
            "scenario.vpcs[0].subnets[0].name",
        ),
        (
            scenario(security_groups=[{"name": "g"}, {"name": "G"}]),
            "scenario.vpcs[0].security_groups[1].name: the name 'G' is already used",
        ),
        (
            {
                **scenario(subnets=[{"name": "s", "cidr": "10.0.0.0/24"}]),
                "instances": [{"name": "main", "type": "m5.large", "subnet": "s"}],
            },
            "scenario.instances[0].name: the name 'main' is already used by scenario.vpcs[0].name",
        ),
        (
            {
                **scenario(subnets=[{"name": "s", "cidr": "10.0.0.0/24"}]),
                "instances": [
                    {"name": "n", "type": "m5.large", "subnet": "s", "security_groups": ["x"]}
                ],
            },
            "scenario.instances[0] (n).security_groups: no security group 'x' in the VPC of "
            "subnet 's'",
        ),
    ],
)
def test_bad_fields_are_named(table: InstanceTable, document: dict[str, Any], words: str) -> None:
    with pytest.raises(EmulatorSetupError) as refused:
        apply_scenario(Emulator(table), parse_scenario(document), 1.0)
    assert words in str(refused.value)
    assert "\n" not in str(refused.value)


def test_the_command_names_the_field_in_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "scenario.json"
    path.write_text(json.dumps(scenario(secondary_cidrs=["172.16.0.0/16"])))
    code, out, err = run_cli(capsys, "--scenario", str(path), "--print-endpoints")
    assert (code, out) == (2, "")
    assert "scenario.vpcs[0].secondary_cidrs[0] (main): InvalidVpc.Range" in err
    assert err.count("\n") == 1
