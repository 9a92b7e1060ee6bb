"""IMDSv2 per node over HTTP: tokens, the ENI listing and addresses, the lag behind EC2."""

from __future__ import annotations

from typing import Any

from botocore.utils import InstanceMetadataRegionFetcher

from tests.emulator.conftest import EmulatorFactory, admin, client, http, launch, network
from vpccni.emulator.server import EmulatorServer

MACS = "latest/meta-data/network/interfaces/macs/"


class Node:
    """One node's IMDS, as the daemon's IMDS adapter would use it."""

    def __init__(self, server: EmulatorServer, instance_id: str) -> None:
        self.base = server.imds_endpoint(instance_id)
        status, self.token = http(
            self.base + "latest/api/token",
            "PUT",
            {"X-aws-ec2-metadata-token-ttl-seconds": "21600"},
        )
        assert status == 200

    def get(self, path: str) -> tuple[int, str]:
        return http(self.base + path, headers={"X-aws-ec2-metadata-token": self.token})

    def text(self, path: str) -> str:
        status, body = self.get(path)
        assert status == 200, (path, status, body)
        return body

    def interfaces(self) -> dict[str, list[str]]:
        """{eni id: local-ipv4s} for every MAC the node lists."""
        found = {}
        for mac in self.text(MACS).split():
            eni = self.text(f"{MACS}{mac}interface-id")
            found[eni] = self.text(f"{MACS}{mac}local-ipv4s").split()
        return found


def setup(server: EmulatorServer) -> tuple[Any, str, dict[str, Any]]:
    ec2 = client(server)
    subnet = network(ec2)
    return ec2, subnet, launch(ec2, subnet, "m5.large")


def test_imdsv2_serves_the_node_and_its_enis(server: EmulatorServer) -> None:
    ec2, subnet, instance = setup(server)
    node = Node(server, instance["InstanceId"])
    eni = ec2.create_network_interface(SubnetId=subnet, SecondaryPrivateIpAddressCount=3)
    eni_id = eni["NetworkInterface"]["NetworkInterfaceId"]
    ec2.attach_network_interface(
        NetworkInterfaceId=eni_id, InstanceId=instance["InstanceId"], DeviceIndex=1
    )
    ec2.assign_private_ip_addresses(NetworkInterfaceId=eni_id, Ipv4PrefixCount=1)

    assert (
        http(server.imds_endpoint(instance["InstanceId"]) + "latest/meta-data/instance-id")[0]
        == 401
    )
    assert node.text("latest/meta-data/instance-id") == instance["InstanceId"]
    assert node.text("latest/meta-data/instance-type") == "m5.large"
    assert node.text("latest/meta-data/local-ipv4") == instance["PrivateIpAddress"]
    assert node.text("latest/meta-data/placement/availability-zone") == "us-west-2a"
    listing = node.text(MACS)
    assert all(line.endswith("/") for line in listing.split())
    described = ec2.describe_network_interfaces(NetworkInterfaceIds=[eni_id])["NetworkInterfaces"][
        0
    ]
    expected = [ip["PrivateIpAddress"] for ip in described["PrivateIpAddresses"]]
    interfaces = node.interfaces()
    assert interfaces[eni_id] == expected
    assert interfaces[instance["NetworkInterfaces"][0]["NetworkInterfaceId"]] == [
        instance["PrivateIpAddress"]
    ]
    mac = described["MacAddress"]
    assert node.text(f"{MACS}{mac}/device-number") == "1"
    assert node.text(f"{MACS}{mac}/subnet-id") == subnet
    assert node.text(f"{MACS}{mac}/subnet-ipv4-cidr-block") == "10.0.1.0/24"
    assert node.text(f"{MACS}{mac}/vpc-ipv4-cidr-blocks") == "10.0.0.0/16"
    assert node.text(f"{MACS}{mac}/ipv4-prefix") == described["Ipv4Prefixes"][0]["Ipv4Prefix"]
    primary_mac = node.text("latest/meta-data/mac")
    assert node.get(f"{MACS}{primary_mac}/ipv4-prefix")[0] == 404
    assert node.text(f"{MACS}{primary_mac}/security-group-ids").startswith("sg-")
    assert '"instanceId"' in node.text("latest/dynamic/instance-identity/document")


def test_imds_lags_ec2_by_the_configured_delay(start_server: EmulatorFactory) -> None:
    server = start_server(imds_lag=20)
    ec2, subnet, instance = setup(server)
    node = Node(server, instance["InstanceId"])
    primary = instance["NetworkInterfaces"][0]["NetworkInterfaceId"]
    assert set(node.interfaces()) == {primary}  # launch-time state is there at once
    eni = ec2.create_network_interface(SubnetId=subnet)["NetworkInterface"]["NetworkInterfaceId"]
    ec2.attach_network_interface(
        NetworkInterfaceId=eni, InstanceId=instance["InstanceId"], DeviceIndex=1
    )
    assert set(node.interfaces()) == {primary}
    admin(server, "clock/advance", {"seconds": 10})
    ec2.assign_private_ip_addresses(NetworkInterfaceId=eni, SecondaryPrivateIpAddressCount=2)
    assert set(node.interfaces()) == {primary}
    admin(server, "clock/advance", {"seconds": 10.5})
    assert len(node.interfaces()[eni]) == 1  # attached 20 s ago; addresses only 10.5 s ago
    admin(server, "clock/advance", {"seconds": 10})
    assert len(node.interfaces()[eni]) == 3


def test_botocore_imds_client_works_with_the_node_endpoint(server: EmulatorServer) -> None:
    _, _, instance = setup(server)
    fetcher = InstanceMetadataRegionFetcher(
        config={"ec2_metadata_service_endpoint": server.imds_endpoint(instance["InstanceId"])}
    )
    assert fetcher.retrieve_region() == "us-west-2"


def test_unknown_or_terminated_node_is_not_found(server: EmulatorServer) -> None:
    ec2, _, instance = setup(server)
    node = Node(server, instance["InstanceId"])
    ec2.terminate_instances(InstanceIds=[instance["InstanceId"]])
    assert node.get("latest/meta-data/instance-id")[0] == 404
    assert Node(server, "i-0000000000000dead").get("latest/meta-data/")[0] == 404
    endpoints = admin(server, "endpoints")
    assert endpoints["ec2"] == server.endpoint
    assert endpoints["imds"] == {}
