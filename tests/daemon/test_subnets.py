"""Subnet discovery, exclusion and a nearly full subnet, with a real ipamd against the emulator.

Upstream (behaviour reference sections 3.5 and 8.6): with ``ENABLE_SUBNET_DISCOVERY`` (on by
default) a new ENI goes to the subnet of the node's zone with the most free addresses among the
node's own subnet and those tagged ``kubernetes.io/role/cni`` (not ``0``, and not tagged for
other clusters only); ENIs in a subnet tagged ``0`` take no new pod address and give theirs back;
a failed batch assignment is retried with one address, so a node takes a /28's last addresses
one by one before it grows into another subnet - or, with discovery off, says its subnet is
exhausted.
"""

from __future__ import annotations

import re
import signal
from typing import Any

from tests.daemon.test_no_address import TRY_AGAIN, explained, fill, refused
from vpccni.cli.status_cmd import render

ROLE = "kubernetes.io/role/cni"
CLUSTER = "cni.networking.k8s.aws/cluster/"


def node_subnet(node: Any) -> str:
    return str(node.backend.ec2.describe_instance(node.instance_id).subnet_id)


def add_subnet(node: Any, cidr: str, tags: dict[str, str] | None = None) -> str:
    """A subnet of the node's VPC and zone, with ``tags``."""
    client = node.backend.client
    mine = client.describe_subnets(SubnetIds=[node_subnet(node)])["Subnets"][0]
    params: dict[str, Any] = {
        "VpcId": mine["VpcId"],
        "CidrBlock": cidr,
        "AvailabilityZone": mine["AvailabilityZone"],
    }
    if tags:
        params["TagSpecifications"] = [
            {"ResourceType": "subnet", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}
        ]
    return str(client.create_subnet(**params)["Subnet"]["SubnetId"])


def tag_subnet(node: Any, subnet_id: str, tags: dict[str, str]) -> None:
    node.backend.client.create_tags(
        Resources=[subnet_id], Tags=[{"Key": k, "Value": v} for k, v in tags.items()]
    )


def subnets_of_enis(node: Any) -> list[str]:
    """Each attached ENI's subnet, by device index."""
    return [eni.subnet_id for eni in node.enis()]


def secondaries(node: Any) -> list[int]:
    return [len(eni.secondary_ips) for eni in node.enis()]


def test_new_enis_go_to_the_tagged_subnet_with_the_most_free_addresses(make_node: Any) -> None:
    node = make_node("c5.large", cidr="10.0.1.0/28", CLUSTER_NAME="blue")  # 10 free
    add_subnet(node, "10.0.2.0/25", {ROLE: "1"})  # 123 free
    best = add_subnet(node, "10.0.4.0/24", {ROLE: "1", CLUSTER + "blue": "shared"})  # 251
    add_subnet(node, "10.0.8.0/23", {ROLE: "0"})  # 507, never for pods
    add_subnet(node, "10.0.12.0/22", {ROLE: "1", CLUSTER + "green": "1"})  # 1019, not ours
    add_subnet(node, "10.0.16.0/21")  # 2043, not tagged
    node.start()
    fill(node, 10)  # the primary ENI's 9, then a second ENI
    node.wait_for(lambda: len(node.enis()) == 2, what="a second ENI")
    primary, second = node.enis()
    assert second.subnet_id == best
    assert second.security_groups == primary.security_groups
    fill(node, 9, prefix="more")  # the second ENI's 9 assigned: a third ENI, same subnet
    node.wait_for(lambda: len(node.enis()) == 3, what="a third ENI")
    assert subnets_of_enis(node) == [node_subnet(node), best, best]
    explain = node.introspect("/v1/explain")
    assert [e["subnet"] for e in explain["enis"]] == [node_subnet(node), best, best]
    status = render(explain, node.introspect("/v1/pods"))
    assert best in status
    assert "subnet discovery on" in status
    assert node.stop() == 0


def test_a_nearly_full_subnet_is_taken_one_by_one_then_the_tagged_subnet(make_node: Any) -> None:
    # m5.xlarge: 14 addresses per ENI; the /28 has 11 usable, the instance holds 1: 10 free.
    # A batch of 14 fails, then one address at a time until none is left, then a new ENI in
    # the tagged subnet.
    node = make_node("m5.xlarge", cidr="10.0.1.0/28")
    tagged = add_subnet(node, "10.0.4.0/24", {ROLE: "1"})
    node.start()
    node.wait_for(lambda: len(node.enis()) == 2, what="an ENI in the tagged subnet")
    node.wait_for(lambda: secondaries(node) == [10, 14], what="10 + 14 addresses")
    assert subnets_of_enis(node) == [node_subnet(node), tagged]
    fill(node, 24)
    assert node.stop() == 0


def test_without_discovery_a_nearly_full_subnet_is_taken_then_exhausted(make_node: Any) -> None:
    node = make_node("m5.xlarge", cidr="10.0.1.0/28", ENABLE_SUBNET_DISCOVERY="false")
    add_subnet(node, "10.0.4.0/24", {ROLE: "1"})  # not looked at
    node.start()
    node.wait_for(lambda: secondaries(node) == [10], what="the subnet's last 10 addresses")
    fill(node, 10)
    node.wait_for(
        lambda: node.introspect("/v1/explain")["errors"].get("increaseIPPool"),
        what="the subnet to run out",
    )
    error = refused(node)
    assert error["code"] == TRY_AGAIN
    assert re.match(
        rf"subnet exhausted: {node_subnet(node)} has 0 free addresses "
        r"\(InsufficientFreeAddressesInSubnet at ",
        error["msg"],
    ), error
    assert explained(node)["reason"] == "subnet_exhausted"
    assert len(node.enis()) == 1
    assert node.stop() == 0


def test_a_subnet_tagged_never_takes_no_new_address_and_drains(make_node: Any) -> None:
    node = make_node("c5.large", cidr="10.0.1.0/24", IP_COOLDOWN_PERIOD="0")  # 250 free
    pods = add_subnet(node, "10.0.4.0/24", {ROLE: "1"})  # 251 free: the most
    node.start()
    fill(node, 12)  # 9 on the primary ENI, 3 on a second ENI in the tagged subnet
    node.wait_for(lambda: len(node.enis()) == 2, what="a second ENI")
    assert subnets_of_enis(node) == [node_subnet(node), pods]
    second = node.enis()[1].eni_id
    on_second = [p["name"] for p in node.introspect("/v1/pods") if p["eni"] == second]
    assert len(on_second) == 3
    node.stop(signal.SIGTERM)

    tag_subnet(node, pods, {ROLE: "0"})
    node.start()
    # the excluded ENI keeps its pods' 3 addresses and gives back the 6 unused ones
    node.wait_for(lambda: secondaries(node)[:2] == [9, 3], what="the unused addresses released")
    # the pool counts the excluded ENI for nothing: a third ENI, in the node's subnet
    node.wait_for(lambda: len(node.enis()) == 3, what="a third ENI")
    assert subnets_of_enis(node)[2] == node_subnet(node)
    explain = node.introspect("/v1/explain")
    excluded = {e["id"]: e["excluded"] for e in explain["enis"]}
    assert excluded == {eni.eni_id: eni.eni_id == second for eni in node.enis()}
    (tagged,) = [s for s in explain["placement"]["subnets"] if s["id"] == pods]
    assert tagged["excluded"]
    assert tagged["role"] == "0"
    fill(node, 5, prefix="new")  # never from the excluded ENI
    placed = {p["name"]: p["eni"] for p in node.introspect("/v1/pods")}
    assert all(placed[f"new-{i}"] != second for i in range(5))
    for name in on_second:
        assert node.delete(name)["ok"]
    node.wait_for(lambda: secondaries(node)[1] == 0, what="the excluded ENI to drain")
    assert node.stop() == 0
