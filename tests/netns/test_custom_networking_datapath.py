"""Custom networking in real namespaces: a pod on an ENI in a pod subnet of the VPC's secondary
CIDR block, added through cnitool and the installed plugin.

Upstream (behaviour reference sections 7.3-7.5 and 10): the pod ENI is configured from its own
subnet - its primary address with that subnet's prefix length, table ``device + 1`` with a
default route via that subnet's ``.1`` - the pod's ``from <pod> lookup <table>`` rule (1536)
sends its VPC traffic out of that ENI, unSNATed to every VPC CIDR block (the secondary too), and
its traffic leaving the VPC goes out of the primary ENI SNATed to the node's primary address.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

import pytest

from tests.daemon.test_custom_networking import LABEL, write_eniconfigs
from tests.netns.conftest import PORT, PROBE, Lab, Node, install_plugin, ip, running_lab
from tests.netns.test_interop_cnitool import CNITOOL, DEBIAN_PLUGINS, cnitool, require

SECONDARY_BLOCK = "100.64.0.0/16"
POD_SUBNET = IPv4Network("100.64.0.0/18")
BLOCK_HOST = IPv4Address("100.64.128.5")
"""A VPC host in the secondary block outside the pod subnet (say a pod of another zone)."""


class PodNetwork:
    """The secondary CIDR block, the pod subnet in the node's zone, its security group and the
    ENIConfig naming them (made before the daemon starts: it reads the VPC's blocks then)."""

    def __init__(self, node: Node, directory: Path) -> None:
        client = node.backend.client
        mine = client.describe_subnets(
            SubnetIds=[node.backend.ec2.describe_instance(node.instance_id).subnet_id]
        )["Subnets"][0]
        self.node_subnet = str(mine["SubnetId"])
        vpc, self.zone = mine["VpcId"], mine["AvailabilityZone"]
        client.associate_vpc_cidr_block(VpcId=vpc, CidrBlock=SECONDARY_BLOCK)
        self.subnet = str(
            client.create_subnet(VpcId=vpc, CidrBlock=str(POD_SUBNET), AvailabilityZone=self.zone)[
                "Subnet"
            ]["SubnetId"]
        )
        self.group = str(
            client.create_security_group(GroupName="pods", Description="pod ENIs", VpcId=vpc)[
                "GroupId"
            ]
        )
        self.eniconfigs = directory / "eniconfigs"
        write_eniconfigs(self.eniconfigs, {self.zone: (self.subnet, [self.group])})


@pytest.fixture
def custom_lab(
    make_node: Any,
    netns_factory: Callable[[], str],
    tmp_path: Path,
) -> Iterator[tuple[Node, Lab, PodNetwork]]:
    """The lab with a daemon under custom networking (``--netns NODE``), its ENIConfig named by
    the node's label."""
    netns_factory()  # requires root (fails loudly in CI without it)
    made: list[PodNetwork] = []

    def start(node: Node, lab: Lab) -> None:
        network = PodNetwork(node, tmp_path)
        made.append(network)
        node.env["AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG"] = "true"
        node.start(
            "--netns",
            lab.node,
            "--eniconfig-dir",
            str(network.eniconfigs),
            "--node-label",
            f"{LABEL}={network.zone}",
        )

    with running_lab(make_node, start) as (node, lab):
        yield node, lab, made[0]


@contextmanager
def block_host(lab: Lab) -> Iterator[None]:
    """``BLOCK_HOST`` in the lab's vpc namespace, answering the probe."""
    ip("-n", lab.vpc, "addr", "add", f"{BLOCK_HOST}/32", "dev", "lo")
    command = ["ip", "netns", "exec", lab.vpc, sys.executable, *PROBE, "serve", str(PORT)]
    server = subprocess.Popen([*command, str(BLOCK_HOST)], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        assert server.stdout.readline().strip() == "ready"
        yield
    finally:
        server.kill()
        server.wait()


def probe(pod: str, host: IPv4Address) -> list[str]:
    """The probe's answer from ``host``: the source address it saw and its ingress link."""
    done = subprocess.run(
        ["ip", "netns", "exec", pod, sys.executable, *PROBE, "send", str(host), str(PORT)],
        capture_output=True,
        text=True,
        check=False,
        timeout=20,
    )
    assert done.returncode == 0, f"no answer from {host} for {pod}: {done.stderr}"
    return done.stdout.split()


def test_a_pod_in_the_secondary_block_routes_through_its_eni_and_snats_as_upstream(
    custom_lab: tuple[Node, Lab, PodNetwork], tmp_path: Path
) -> None:
    require(CNITOOL, "built by scripts/build-cnitool.sh")
    require(DEBIAN_PLUGINS / "portmap", "Debian's containernetworking-plugins")
    node, lab, network = custom_lab
    bin_dir, conf = install_plugin(node, tmp_path)
    pod = f"{lab.prefix}-cn"
    netns = f"/var/run/netns/{pod}"
    ip("netns", "add", pod)
    try:
        node.wait_for(
            lambda: node.rpc({"op": "status"})["result"]["available"] > 0, what="pod addresses"
        )
        added = cnitool(lab, node, conf, bin_dir, "add", "aws-cni", netns)
        assert added.returncode == 0, added.stdout + added.stderr
        address = IPv4Address(json.loads(added.stdout)["ips"][0]["address"].split("/")[0])
        assert address in POD_SUBNET

        primary, *pod_enis = node.enis()
        assert primary.subnet_id == network.node_subnet
        assert primary.secondary_ips == ()  # the primary ENI never carries a pod address
        eni = next(e for e in pod_enis if address in e.secondary_ips)
        assert (eni.subnet_id, eni.security_groups) == (network.subnet, (network.group,))
        device = eni.attachment.device_index
        table = device + 1
        assert device > 0

        # the ENI is configured from its own subnet, and the pod's rule uses its table
        assert f"inet {eni.primary_ip}/{POD_SUBNET.prefixlen} " in ip(
            "-n", lab.node, "-4", "addr", "show", "dev", f"eth{device}"
        )
        default = ip("-n", lab.node, "route", "show", "table", str(table), "default").split()
        assert default[:5] == ["default", "via", str(POD_SUBNET[1]), "dev", f"eth{device}"]
        assert f"1536:\tfrom {address} lookup {table}" in ip("-n", lab.node, "rule")

        # SNAT leaves every VPC CIDR block alone, the secondary one too
        snat = ip("netns", "exec", lab.node, "iptables", "-t", "nat", "-S", "AWS-SNAT-CHAIN-0")
        for block in ("10.0.0.0/16", SECONDARY_BLOCK):
            assert f"-A AWS-SNAT-CHAIN-0 -d {block} " in snat, snat

        # inside the VPC (either block): out of the pod's ENI, unSNATed; outside: out of the
        # primary ENI, SNATed to the node's address; the answers come back each way
        assert probe(pod, lab.vpc_host) == [str(address), f"v{device}"]
        with block_host(lab):
            assert probe(pod, BLOCK_HOST) == [str(address), f"v{device}"]
        assert probe(pod, lab.internet_host) == [str(primary.primary_ip), "v0"]

        assert cnitool(lab, node, conf, bin_dir, "check", "aws-cni", netns).returncode == 0
        for _ in range(2):
            deleted = cnitool(lab, node, conf, bin_dir, "del", "aws-cni", netns)
            assert deleted.returncode == 0, deleted.stdout + deleted.stderr
        assert node.introspect("/v1/pods") == []
        assert str(address) not in ip("-n", lab.node, "rule")
        assert str(address) not in ip("-n", lab.node, "route", "show", "table", "all")
        assert ip("-n", pod, "-o", "link", "show", "type", "veth") == ""
    finally:
        ip("netns", "del", pod)
