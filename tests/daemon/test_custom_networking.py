"""Custom networking with a real ipamd against the emulator: ENIConfigs from a directory
(``--eniconfig-dir``) and the node's label from the command line (``--node-label``).

Upstream (behaviour reference section 10): with ``AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG=true`` new
ENIs go to the subnet of the node's ENIConfig with its security groups (none: the primary ENI's),
the primary ENI carries no pod address, and max pods is what the calculator says with custom
networking. A relabelled node changes only the ENIs made after it; a broken ENIConfig makes no
ENI, is named precisely, and is tried again when it changes - not on every tick.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from tests.daemon.conftest import admin_state
from tests.daemon.test_no_address import NEEDS_CHANGE, fill, refused
from vpccni.adapters.instance_data import load_instance_table
from vpccni.cli.status_cmd import render
from vpccni.core.maxpods import MaxPodsOptions, compute_max_pods

LABEL = "k8s.amazonaws.com/eniConfig"
POD_CIDR = "100.64.0.0/16"


class Network:
    """The node's VPC with a secondary CIDR, pod subnets and a pod security group."""

    def __init__(self, node: Any) -> None:
        self.node = node
        client = node.backend.client
        self.client = client
        mine = client.describe_subnets(
            SubnetIds=[node.backend.ec2.describe_instance(node.instance_id).subnet_id]
        )["Subnets"][0]
        self.node_subnet = mine["SubnetId"]
        self.vpc = mine["VpcId"]
        self.zone = mine["AvailabilityZone"]
        client.associate_vpc_cidr_block(VpcId=self.vpc, CidrBlock=POD_CIDR)
        self.pods_a = self.subnet("100.64.0.0/24")
        self.pods_a2 = self.subnet("100.64.1.0/24")
        self.other_zone = self.subnet("100.64.2.0/24", zone=self.zone[:-1] + "b")
        self.group = client.create_security_group(
            GroupName="pods", Description="pod ENIs", VpcId=self.vpc
        )["GroupId"]

    def subnet(self, cidr: str, zone: str | None = None) -> str:
        reply = self.client.create_subnet(
            VpcId=self.vpc, CidrBlock=cidr, AvailabilityZone=zone or self.zone
        )
        return str(reply["Subnet"]["SubnetId"])

    def enis(self) -> list[Any]:
        """Every ENI of the VPC (attached or not), as EC2 lists them."""
        return list(self.node.backend.ec2.describe_enis(filters={"vpc-id": [self.vpc]}))


def write_eniconfigs(directory: Path, configs: dict[str, tuple[str, list[str]]]) -> None:
    """ENIConfigs as ``kubectl get eniconfigs -o yaml`` prints them (a List)."""
    items = []
    for name, (subnet, groups) in configs.items():
        group_lines = "".join(f"\n      - {g}" for g in groups) if groups else " []"
        items.append(
            "- apiVersion: crd.k8s.amazonaws.com/v1alpha1\n"
            "  kind: ENIConfig\n"
            f"  metadata:\n    name: {name}\n"
            f"  spec:\n    subnet: {subnet}\n    securityGroups:{group_lines}\n"
        )
    text = "apiVersion: v1\nkind: List\nitems:\n" + "".join(items)
    directory.mkdir(exist_ok=True)
    path = directory / "eniconfigs.yaml"
    path.write_text(text)
    later = time.time() + 2  # a new modification time even within the file system's tick
    os.utime(path, (later, later))


def start_custom(node: Any, directory: Path, eniconfig: str) -> None:
    node.env["AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG"] = "true"
    node.start("--eniconfig-dir", str(directory), "--node-label", f"{LABEL}={eniconfig}")


def sent(node: Any, action: str) -> int:
    return int(admin_state(node.server)["stats"].get(f"requests.{action}", 0))


def test_pod_enis_only_in_the_eniconfig_subnet_and_max_pods_is_the_calculators(
    make_node: Any, tmp_path: Path
) -> None:
    node = make_node("c5.large")
    net = Network(node)
    write_eniconfigs(tmp_path / "eniconfigs", {"az-a": (net.pods_a, [net.group])})
    start_custom(node, tmp_path / "eniconfigs", "az-a")
    node.wait_for(lambda: len(node.enis()) == 2, what="a pod ENI")
    expected = compute_max_pods(
        load_instance_table().get("c5.large"), MaxPodsOptions(custom_networking=True)
    ).uncapped
    assert expected == 20
    fill(node, expected - 2)
    error = refused(node)
    assert error["code"] == NEEDS_CHANGE
    assert error["msg"] == (
        "node full: 3 of 3 ENIs, 18 of 18 addresses assigned (max pods 20 includes 2 "
        "host-network pods; custom networking: the primary ENI carries no pod address)"
    )
    primary, *pod_enis = node.enis()
    assert primary.subnet_id == net.node_subnet
    assert primary.secondary_ips == ()
    assert [(e.subnet_id, e.security_groups, len(e.secondary_ips)) for e in pod_enis] == [
        (net.pods_a, (net.group,), 9)
    ] * 2
    addresses = {p["address"] for p in node.introspect("/v1/pods")}
    assert all(a.startswith("100.64.0.") for a in addresses)
    explain = node.introspect("/v1/explain")
    assert explain["max_pods"] == expected
    assert explain["placement"]["eniconfig"] == {
        "name": "az-a",
        "named_by": f"label {LABEL}",
        "subnet": net.pods_a,
    }
    assert [e["excluded"] for e in explain["enis"]] == [True, False, False]
    assert node.introspect("/v1/eni-configs") == "az-a"
    status = render(explain, node.introspect("/v1/pods"))
    assert "new ENIs: custom networking, ENIConfig 'az-a'" in status
    assert node.stop() == 0


def test_a_relabelled_node_puts_only_new_enis_in_the_other_eniconfig(
    make_node: Any, tmp_path: Path
) -> None:
    node = make_node("m5.xlarge")  # 14 addresses per ENI, 4 ENIs
    net = Network(node)
    directory = tmp_path / "eniconfigs"
    write_eniconfigs(directory, {"a": (net.pods_a, [net.group]), "a2": (net.pods_a2, [])})
    start_custom(node, directory, "a")
    fill(node, 14)  # the first pod ENI full: a second one, both in the first ENIConfig's subnet
    node.wait_for(lambda: len(node.enis()) == 3, what="a second pod ENI")
    assert node.stop() == 0

    start_custom(node, directory, "a2")
    fill(node, 14, prefix="after")  # the second pod ENI full: a third, in the new subnet
    node.wait_for(lambda: len(node.enis()) == 4, what="a pod ENI after the relabel")
    primary, *pod_enis = node.enis()
    assert [e.subnet_id for e in pod_enis] == [net.pods_a, net.pods_a, net.pods_a2]
    # the new ENIConfig names no groups: the primary ENI's
    assert pod_enis[2].security_groups == primary.security_groups
    assert pod_enis[0].security_groups == (net.group,)
    assert node.stop() == 0


BROKEN = {
    "missing": ("ENIConfig 'missing' (label k8s.amazonaws.com/eniConfig) does not exist"),
    "unknown-subnet": "names subnet subnet-0123456789abcdef0, which EC2 does not know",
    "other-zone": "but the node is in us-west-2a: an ENI cannot attach across zones",
    "unknown-groups": "names security groups sg-0123456789abcdef0 that EC2 refuses",
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_a_broken_eniconfig_makes_no_eni_says_why_and_waits_for_a_change(
    make_node: Any, tmp_path: Path, name: str
) -> None:
    node = make_node("c5.large")
    net = Network(node)
    directory = tmp_path / "eniconfigs"
    configs = {
        "unknown-subnet": ("subnet-0123456789abcdef0", []),
        "other-zone": (net.other_zone, []),
        "unknown-groups": (net.pods_a, ["sg-0123456789abcdef0"]),
    }
    write_eniconfigs(directory, configs)
    start_custom(node, directory, name)
    node.wait_for(
        lambda: node.introspect("/v1/explain")["placement"]["problem"] is not None,
        what="the placement problem",
    )
    error = refused(node)
    assert error["code"] == NEEDS_CHANGE
    assert BROKEN[name] in error["msg"], error
    assert node.introspect("/v1/explain")["no_address"]["reason"] == "eniconfig"
    status = render(node.introspect("/v1/explain"), node.introspect("/v1/pods"))
    assert f"no new ENI: {error['msg']}" in status
    # no ENI left behind, and no EC2 call per tick while nothing changes (ticks are 0.2 s)
    creates, describes = sent(node, "CreateNetworkInterface"), sent(node, "DescribeSubnets")
    time.sleep(2.0)
    assert sent(node, "CreateNetworkInterface") == creates
    assert sent(node, "DescribeSubnets") == describes
    assert [e.eni_id for e in net.enis()] == [node.enis()[0].eni_id]
    # fixed: the ENIConfig changes, the view's generation with it, and the ENI is made
    write_eniconfigs(directory, {name: (net.pods_a, [])})
    node.wait_for(lambda: len(node.enis()) == 2, what="the ENI once the ENIConfig is fixed")
    assert node.enis()[1].subnet_id == net.pods_a
    assert node.introspect("/v1/explain")["placement"]["problem"] is None
    fill(node, 3)
    assert node.stop() == 0
