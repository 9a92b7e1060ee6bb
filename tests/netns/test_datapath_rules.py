"""Upstream's datapath rules with the daemon in the lab (issue #16, part 2).

* NodePort / load-balancer return path (``AWS_VPC_CNI_NODE_PORT_SUPPORT``): a connection from the
  VPC to the node's primary address, DNATed (as kube-proxy does) to a pod whose address is on a
  secondary ENI, gets its replies, and they leave by the primary interface; without node-port
  support the replies leave by the pod's ENI with the node's address and EC2's source/dest check
  drops them (the lab's vpc namespace plays it with strict reverse-path filtering).
* ``AWS_EXTERNAL_SERVICE_CIDRS``: rule ``to CIDR lookup main`` (1535) sends a secondary-ENI pod's
  traffic for those CIDRs through the primary ENI; a restart with another list removes the stale
  rules.
* The VPC's CIDR blocks are re-read every 30 s on the daemon's (the emulator's) clock: a block
  associated later joins the SNAT and connmark exclusions, a block disassociated leaves them.
* Host veths get ``accept_ra=0``, ``accept_redirects=1``, ``forwarding=0`` (IPv6).
* Upstream's nftables ``table ip aws-cni`` and stale ``AWS-SNAT-CHAIN-1..n`` /
  ``AWS-CONNMARK-CHAIN-1..n`` chains are gone once the daemon has started, and the log says so.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.daemon.conftest import Node
from tests.netns.conftest import ip, running_lab
from tests.netns.test_datapath import add, pod_netns, probe
from tests.netns.test_node_rules import iptables, plant_upstream_leftovers, rules
from vpccni.lab.topology import Lab, _sysctl

NODE_PORT, POD_PORT = 30080, 8080
ECHO = """
import socket
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("0.0.0.0", 8080))
server.listen(8)
print("ready", flush=True)
while True:
    connection, _ = server.accept()
    connection.sendall(connection.recv(100))
    connection.close()
"""
CLIENT = """
import socket, sys
client = socket.socket()
client.settimeout(3)
client.bind((sys.argv[1], 0))
client.connect((sys.argv[2], int(sys.argv[3])))
client.sendall(b"through the node port")
print(client.recv(100).decode())
"""


def start_lab(make_node: Any, **env: str) -> Callable[[], Any]:
    """``running_lab`` with the daemon (``--netns NODE``) started with ``env`` added."""

    def start(node: Node, lab: Lab) -> None:
        node.env.update(env)
        node.start("--netns", lab.node)

    return lambda: running_lab(make_node, start)


def pod_on_the_second_eni(node: Node, lab: Lab, created: list[str]) -> tuple[str, str]:
    """(netns, address) of a pod on ENI device 1: nine pods fill the primary ENI (packing)."""
    node.wait_for(lambda: node.rpc({"op": "status"})["result"]["available"] == 9, what="IPs")
    found: tuple[str, str] | None = None
    for index in range(10):
        netns = pod_netns(f"{lab.prefix}-p{index}", created)
        reply = node.wait_for_reply(lambda n=netns, i=index: add(node, f"c{i}", n, f"web-{i}"))
        found = (netns, reply["result"]["ips"][0]["address"].split("/")[0])
    assert found is not None
    devices = {str(a): e.attachment.device_index for e in node.enis() for a in e.secondary_ips}
    assert devices[found[1]] == 1
    return found


@contextmanager
def echo_server(netns: str) -> Iterator[None]:
    command = ["ip", "netns", "exec", Path(netns).name, sys.executable, "-c", ECHO]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        assert server.stdout.readline().strip() == "ready"
        yield
    finally:
        server.kill()
        server.wait()


def replies_by_link(lab: Lab) -> dict[str, int]:
    """The pod's replies (from its port, before they are un-DNATed) the node sent, by link."""
    listing = iptables(lab.node, "-t", "mangle", "-S", "POSTROUTING", "-v")
    found = {}
    for link in ("eth0", "eth1"):
        counted = [line for line in listing.splitlines() if f"-o {link} " in line]
        assert len(counted) == 1, listing
        found[link] = int(counted[0].split("-c ")[1].split()[0])
    return found


@pytest.mark.parametrize("node_port_support", ["true", "false"])
def test_node_port_replies_from_a_pod_on_a_secondary_eni_leave_by_the_primary_interface(
    make_node: Any, netns_factory: Callable[[], str], node_port_support: str
) -> None:
    netns_factory()  # requires root (fails loudly in CI without it)
    lab_of = start_lab(make_node, AWS_VPC_CNI_NODE_PORT_SUPPORT=node_port_support)
    created: list[str] = []
    with lab_of() as (node, lab):
        try:
            netns, pod = pod_on_the_second_eni(node, lab, created)
            node_ip = str(node.enis()[0].primary_ip)
            # the node as upstream's init container leaves it (loose reverse-path filter on the
            # primary interface), kube-proxy's DNAT for the NodePort service
            _sysctl(lab.node, "net.ipv4.conf.eth0.rp_filter", "2")
            iptables(
                lab.node,
                *("-t", "nat", "-A", "PREROUTING", "-i", "eth0", "-p", "tcp"),
                *("--dport", str(NODE_PORT), "-j", "DNAT", "--to-destination", f"{pod}:{POD_PORT}"),
            )
            for link in ("eth0", "eth1"):  # count the pod's replies by the link they leave
                iptables(
                    lab.node,
                    *("-t", "mangle", "-A", "POSTROUTING", "-o", link, "-p", "tcp"),
                    *("--sport", str(POD_PORT)),
                )
            # the VPC: EC2's source/dest check drops what an ENI sends from another ENI's
            # address (strict reverse-path filtering in the lab's VPC router)
            _sysctl(lab.vpc, "net.ipv4.conf.all.rp_filter", "1")
            with echo_server(netns):
                client = [sys.executable, "-c", CLIENT, str(lab.vpc_host), node_ip]
                done = subprocess.run(
                    ["ip", "netns", "exec", lab.vpc, *client, str(NODE_PORT)],
                    capture_output=True,
                    text=True,
                    check=False,
                    timeout=20,
                )
            replies = replies_by_link(lab)
            if node_port_support == "true":
                assert done.returncode == 0, done.stderr
                assert done.stdout.strip() == "through the node port"
                assert replies["eth0"] > 0, replies
                assert replies["eth1"] == 0, replies
            else:  # the replies follow the pod's ENI table out of eth1 and are dropped
                assert done.returncode != 0, done.stdout
                assert "timed out" in done.stderr, done.stderr
                assert replies["eth0"] == 0, replies
                assert replies["eth1"] > 0, replies
        finally:
            for name in created:
                ip("netns", "del", name)


def external_rules(lab: Lab) -> list[str]:
    return [line for line in ip("-n", lab.node, "rule").splitlines() if line.startswith("1535:")]


def test_external_service_cidrs_route_by_main_and_a_restart_removes_stale_rules(
    make_node: Any, netns_factory: Callable[[], str]
) -> None:
    netns_factory()
    vpc_hosts = "10.0.255.0/24"  # the lab's VPC host, a service "outside" the pod's ENI
    lab_of = start_lab(make_node, AWS_EXTERNAL_SERVICE_CIDRS=f"{vpc_hosts}, 192.0.2.0/24")
    created: list[str] = []
    with lab_of() as (node, lab):
        try:
            netns, pod = pod_on_the_second_eni(node, lab, created)
            assert external_rules(lab) == [
                f"1535:\tfrom all to {vpc_hosts} lookup main",
                "1535:\tfrom all to 192.0.2.0/24 lookup main",
            ]
            for key in ("all", "v0"):  # the VPC router takes the pod's address on any link
                _sysctl(lab.vpc, f"net.ipv4.conf.{key}.rp_filter", "0")
            # rule 1535 comes before the pod's 1536: out of the primary ENI, not the pod's
            assert probe(netns, str(lab.vpc_host)) == [pod, "v0"]

            node.stop()
            node.env["AWS_EXTERNAL_SERVICE_CIDRS"] = "192.0.2.0/24"
            node.start("--netns", lab.node)
            assert external_rules(lab) == ["1535:\tfrom all to 192.0.2.0/24 lookup main"]
            assert probe(netns, str(lab.vpc_host)) == [pod, "v1"]  # its ENI's table again
        finally:
            for name in created:
                ip("netns", "del", name)


def snat_exclusions(lab: Lab) -> dict[str, list[str]]:
    """The destinations each of our nat chains RETURNs for."""
    return {
        chain: [r.split()[1] for r in rules(lab.node, "nat", chain) if r.startswith("-d ")]
        for chain in ("AWS-SNAT-CHAIN-0", "AWS-CONNMARK-CHAIN-0")
    }


def test_a_vpc_cidr_block_associated_later_reaches_the_snat_exclusions_within_the_refresh(
    lab_node: tuple[Node, Lab],
) -> None:
    node, lab = lab_node
    node.wait_for(  # the first tick's read
        lambda: "SNAT exclusions follow the VPC's CIDR blocks: 10.0.0.0/16" in node.log(),
        what="the first read of the VPC's blocks",
    )
    client = node.backend.client
    subnet = node.backend.ec2.describe_instance(node.instance_id).subnet_id
    vpc = client.describe_subnets(SubnetIds=[subnet])["Subnets"][0]["VpcId"]
    first = {"AWS-SNAT-CHAIN-0": ["10.0.0.0/16"], "AWS-CONNMARK-CHAIN-0": ["10.0.0.0/16"]}
    assert snat_exclusions(lab) == first
    association = client.associate_vpc_cidr_block(VpcId=vpc, CidrBlock="100.64.0.0/16")
    time.sleep(1)  # five ticks: the blocks are not read again before 30 s have passed
    assert snat_exclusions(lab) == first

    node.advance(31)  # on the daemon's clock (the emulator's)
    both = ["10.0.0.0/16", "100.64.0.0/16"]
    node.wait_for(
        lambda: snat_exclusions(lab) == dict.fromkeys(first, both), what="the new block", timeout=10
    )
    assert "the VPC's CIDR blocks are now 10.0.0.0/16, 100.64.0.0/16" in node.log()

    client.disassociate_vpc_cidr_block(
        AssociationId=association["CidrBlockAssociation"]["AssociationId"]
    )
    node.advance(31)
    node.wait_for(lambda: snat_exclusions(lab) == first, what="the block gone", timeout=10)


def test_host_veths_get_upstreams_ipv6_settings(lab_node: tuple[Node, Lab]) -> None:
    node, lab = lab_node
    created: list[str] = []
    node.wait_for(lambda: node.rpc({"op": "status"})["result"]["available"] == 9, what="IPs")
    try:
        netns = pod_netns(f"{lab.prefix}-ra", created)
        reply = node.wait_for_reply(lambda: add(node, "ra", netns, "web"))
        veth = reply["result"]["interfaces"][0]["name"]
        ip("-n", lab.node, "link", "add", "vt-plain", "type", "veth", "peer", "name", "vt-peer")

        def settings(link: str) -> list[str]:
            keys = [f"/proc/sys/net/ipv6/conf/{link}/{k}" for k in ("accept_ra", "forwarding")]
            keys.append(f"/proc/sys/net/ipv6/conf/{link}/accept_redirects")
            done = subprocess.run(
                ["ip", "netns", "exec", lab.node, "cat", *keys],
                capture_output=True,
                text=True,
                check=True,
            )
            return done.stdout.split()

        assert settings("vt-plain") == ["1", "0", "1"]  # the kernel's defaults: RAs accepted
        assert settings(veth) == ["0", "0", "1"]  # accept_ra=0, forwarding=0, redirects=1
    finally:
        for name in created:
            ip("netns", "del", name)


def test_upstreams_nft_table_and_stale_chains_are_gone_after_the_daemon_starts(
    make_node: Any, netns_factory: Callable[[], str]
) -> None:
    netns_factory()

    def start(node: Node, lab: Lab) -> None:
        plant_upstream_leftovers(lab.node)  # what aws-node left before vpccni took over
        node.start("--netns", lab.node)

    with running_lab(make_node, start) as (node, lab):
        tables = subprocess.run(
            ["ip", "netns", "exec", lab.node, "nft", "list", "tables"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert "aws-cni" not in tables
        listing = iptables(lab.node, "-t", "nat", "-S")
        for kind in ("SNAT", "CONNMARK"):
            assert f"-N AWS-{kind}-CHAIN-0" in listing
            for index in (1, 2):
                assert f"AWS-{kind}-CHAIN-{index}" not in listing
        log = node.log()
        assert "removed upstream's nftables table ip aws-cni" in log
        assert "removed the stale nat chain AWS-SNAT-CHAIN-2" in log
