"""IMDS's partial views, the lagging subnet count and the realistic preset, on emulator time.

Each view is off by default (the unit tests keep EC2 instant and IMDS consistent); here each is
turned on alone, then the preset's timeline is checked end to end. The same views are checked
through the daemon's IMDSv2 adapter in ``tests/cloud/test_imds.py``.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.emulator.conftest import EmulatorFactory, admin, client, launch, network
from vpccni.core.limits import InstanceTable
from vpccni.emulator.errors import EmulatorSetupError
from vpccni.emulator.history import History
from vpccni.emulator.realism import (
    TIMING_FIELDS,
    Knobs,
    knobs_from_json,
    knobs_to_json,
    realistic_knobs,
)
from vpccni.emulator.service import Emulator

MACS = "/meta-data/network/interfaces/macs/"


class Node:
    """One emulator in process with one m5.large node, driven at chosen emulator times."""

    def __init__(self, table: InstanceTable, knobs: Knobs) -> None:
        self.emulator = Emulator(table, knobs)
        vpc = self.call("CreateVpc", 0, CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnet = self.call("CreateSubnet", 0, VpcId=vpc, CidrBlock="10.0.0.0/24")
        self.subnet = subnet["Subnet"]["SubnetId"]
        launched = self.call(
            "RunInstances", 0, MinCount=1, MaxCount=1, InstanceType="m5.large", SubnetId=self.subnet
        )
        self.instance = launched["Instances"][0]["InstanceId"]
        self.token = self.emulator.imds_token(self.instance, "21600", 0).body

    def call(self, action: str, now: float, **params: Any) -> dict[str, Any]:
        return self.emulator.call(action, params, now)

    def imds(self, path: str, now: float) -> tuple[int, str]:
        answer = self.emulator.imds_get(self.instance, path, self.token, now)
        return answer.status, answer.body

    def eni(self, now: float, **addresses: Any) -> tuple[str, str, str]:
        """A new ENI attached at device index 1: (ENI id, MAC, attachment id)."""
        eni = self.call("CreateNetworkInterface", now, SubnetId=self.subnet, **addresses)
        eni_id = eni["NetworkInterface"]["NetworkInterfaceId"]
        attached = self.call(
            "AttachNetworkInterface",
            now,
            NetworkInterfaceId=eni_id,
            InstanceId=self.instance,
            DeviceIndex=1,
        )
        return eni_id, eni["NetworkInterface"]["MacAddress"], attached["AttachmentId"]

    def addresses(self, mac: str, now: float) -> list[str]:
        status, body = self.imds(f"{MACS}{mac}/local-ipv4s", now)
        assert status == 200
        return body.split()

    def macs(self, now: float) -> list[str]:
        return [m.strip("/") for m in self.imds(MACS, now)[1].split()]


def test_defaults_keep_every_view_instant() -> None:
    assert all(getattr(Knobs(), name) == 0 for name in TIMING_FIELDS)
    assert Knobs().history_seconds == 0


def test_the_realistic_preset_is_a_function_a_json_field_and_overridable() -> None:
    realistic = realistic_knobs()
    assert realistic.attach_delay > 0
    assert realistic.imds_lag > 0
    assert realistic.imds_addresses_delay > 0
    assert realistic.imds_stale_mac > 0
    assert realistic.imds_stale_addresses > 0
    assert realistic.subnet_count_lag > 0
    assert knobs_from_json({"preset": "realistic"}) == realistic
    assert knobs_from_json({"preset": "realistic", "imds_lag": 7}).imds_lag == 7
    assert realistic_knobs(Knobs(seed=9, rate_limits=False)).seed == 9
    assert knobs_from_json({"preset": "default"}, realistic) == Knobs()
    assert knobs_from_json(knobs_to_json(realistic)) == realistic
    with pytest.raises(EmulatorSetupError, match="preset must be one of default, realistic"):
        knobs_from_json({"preset": "slow"})


def test_history_during_gives_every_version_in_a_window() -> None:
    history: History[str] = History()
    history.record("k", 10.0, "a")
    history.record("k", 20.0, "b")
    history.record("k", 30.0, None)
    assert history.during("k", 0.0, 5.0) == [None]
    assert history.during("k", 5.0, 15.0) == [None, "a"]
    assert history.during("k", 15.0, 30.0) == ["a", "b", None]
    assert history.during("k", 21.0, 25.0) == ["b"]
    assert history.during("other", 0.0, 99.0) == []


def test_a_new_eni_shows_its_primary_first_then_its_addresses(table: InstanceTable) -> None:
    node = Node(table, Knobs(imds_addresses_delay=4.0))
    _, mac, _ = node.eni(100.0, SecondaryPrivateIpAddressCount=3)
    assert mac in node.macs(100.0)
    assert len(node.addresses(mac, 103.9)) == 1
    assert node.imds(f"{MACS}{mac}/device-number", 103.9) == (200, "1")
    assert len(node.addresses(mac, 104.0)) == 4
    # Addresses of the primary ENI, attached at launch, are never held back.
    primary = node.imds("/meta-data/mac", 0.5)[1]
    assert len(node.addresses(primary, 0.5)) == 1


def test_the_partial_views_measure_from_when_imds_shows_the_eni(table: InstanceTable) -> None:
    node = Node(table, realistic_knobs(Knobs(rate_limits=False)))
    knobs = node.emulator.knobs
    _, mac, _ = node.eni(100.0, Ipv4PrefixCount=2)
    seen = 100.0 + knobs.attach_delay + knobs.imds_lag
    full = seen + knobs.imds_addresses_delay
    assert mac not in node.macs(seen - 0.1)
    assert mac in node.macs(seen + 0.1)
    assert node.imds(f"{MACS}{mac}/ipv4-prefix", seen + 0.1)[0] == 404
    status, prefixes = node.imds(f"{MACS}{mac}/ipv4-prefix", full + 0.1)
    assert status == 200
    assert len(prefixes.split()) == 2
    assert full <= 100.0 + 10  # AWS: an ENI attaches "within 10 seconds" on a good day


def test_a_detached_mac_lingers_without_a_device_number(table: InstanceTable) -> None:
    node = Node(table, Knobs(imds_stale_mac=5.0))
    _, mac, attachment = node.eni(100.0)
    node.call("DetachNetworkInterface", 110.0, AttachmentId=attachment)
    assert mac in node.macs(112.0)
    assert node.imds(f"{MACS}{mac}/device-number", 112.0)[0] == 404
    assert node.imds(f"{MACS}{mac}/subnet-id", 112.0) == (200, node.subnet)
    assert mac not in node.macs(115.1)


def test_released_addresses_linger_then_go(table: InstanceTable) -> None:
    node = Node(table, Knobs(imds_stale_addresses=5.0))
    eni_id, mac, _ = node.eni(100.0, SecondaryPrivateIpAddressCount=4)
    before = node.addresses(mac, 101.0)
    node.call(
        "UnassignPrivateIpAddresses",
        110.0,
        NetworkInterfaceId=eni_id,
        PrivateIpAddresses=before[1:3],
    )
    assert node.addresses(mac, 114.9)[:1] == before[:1]
    assert sorted(node.addresses(mac, 114.9)) == sorted(before)
    assert node.addresses(mac, 115.1) == [before[0], *before[3:]]


def test_the_views_survive_history_pruning(table: InstanceTable) -> None:
    node = Node(table, Knobs(imds_lag=3.0, imds_stale_addresses=20.0, rate_limits=False))
    eni_id, mac, _ = node.eni(100.0, SecondaryPrivateIpAddressCount=2)
    released = node.addresses(mac, 104.0)[1]
    node.call(
        "UnassignPrivateIpAddresses",
        110.0,
        NetworkInterfaceId=eni_id,
        PrivateIpAddresses=[released],
    )
    for _ in range(300):  # enough calls for the service to prune its history
        node.call("DescribeVpcs", 120.0)
    assert released in node.addresses(mac, 120.0)
    assert released not in node.addresses(mac, 133.1)


def test_available_address_count_lags(table: InstanceTable) -> None:
    node = Node(table, Knobs(subnet_count_lag=5.0))

    def count(now: float) -> int:
        subnets = node.call("DescribeSubnets", now, SubnetIds=[node.subnet])["Subnets"]
        return int(subnets[0]["AvailableIpAddressCount"])

    start = count(50.0)
    node.eni(100.0, SecondaryPrivateIpAddressCount=9)
    assert count(104.0) == start
    filtered = node.call(
        "DescribeSubnets",
        104.9,
        Filters=[{"Name": "available-ip-address-count", "Values": [str(start)]}],
    )
    assert [s["SubnetId"] for s in filtered["Subnets"]] == [node.subnet]
    assert count(105.0) == start - 10
    assert node.emulator.model.available_addresses(node.subnet) == start - 10
    assert node.emulator.model.available_addresses(node.subnet, 99.0) == start


def test_turning_the_count_lag_on_later_starts_from_the_current_counts(
    table: InstanceTable,
) -> None:
    node = Node(table, Knobs())
    node.eni(10.0, SecondaryPrivateIpAddressCount=4)
    now_free = node.emulator.model.available_addresses(node.subnet)
    node.emulator.set_knobs(Knobs(subnet_count_lag=30.0))
    node.call("CreateNetworkInterface", 20.0, SubnetId=node.subnet)
    assert node.emulator.model.available_addresses(node.subnet, 15.0) == now_free


def test_boto3_sees_the_lagging_count_and_the_admin_api_takes_the_preset(
    start_server: EmulatorFactory,
) -> None:
    server = start_server(subnet_count_lag=30.0)
    ec2 = client(server)
    subnet = network(ec2)
    launch(ec2, subnet)
    free = ec2.describe_subnets(SubnetIds=[subnet])["Subnets"][0]["AvailableIpAddressCount"]
    ec2.create_network_interface(SubnetId=subnet, SecondaryPrivateIpAddressCount=5)
    assert ec2.describe_subnets(SubnetIds=[subnet])["Subnets"][0]["AvailableIpAddressCount"] == free
    admin(server, "clock/advance", {"seconds": 31})
    after = ec2.describe_subnets(SubnetIds=[subnet])["Subnets"][0]["AvailableIpAddressCount"]
    assert after == free - 1 - 6  # the node's primary address, then the new ENI's six
    knobs = admin(server, "knobs", {"preset": "realistic", "seed": 4})
    assert knobs == knobs_to_json(realistic_knobs(Knobs(seed=4)))
