"""Migration without draining, in the lab: a node prepared exactly as upstream's aws-node leaves
it is taken over by vpccni.

Before vpccni starts, the node is made what upstream leaves behind: secondary IPs on the primary
ENI and a second ENI created, tagged and attached as upstream's ipamd does (through the
emulator's EC2 API), that ENI's host networking (address, table 2, rule 32765, no connected
route), the fwmark rule, four pods wired with ``ip`` as upstream's plugin wires them (veth
``eni`` + sha1("<namespace>.<name>")[:11], /32 address, 169.254.1.1 gateway with a permanent
neighbour, host route, rule 512 and, on the second ENI, rule 1536), and upstream's checkpoint
``ipam.json`` in its exact format with those four pods and a fifth whose pod is gone. Then
vpccni starts with ``AWS_VPC_K8S_CNI_BACKING_STORE`` pointing at it: the pods keep their
addresses and connectivity, the dead pod's entry is dropped, the ENIs are adopted with their
tags untouched, new pods get other addresses, and DEL of an old pod releases its address and
removes its veth, route and rules.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import pytest

from tests.daemon.conftest import Node
from tests.netns.conftest import ip, running_lab
from tests.netns.test_datapath import probe
from tests.pod_fds import plugin_request
from vpccni.core.aws_types import TAG_CREATED_AT, TAG_INSTANCE_ID
from vpccni.core.naming import host_veth_name
from vpccni.lab.topology import Lab

NAMESPACE = "shop"
UPSTREAM_TABLE = 2  # device 1 -> table 2, as upstream numbers them
SECONDARY_IPS = 3


@dataclass(frozen=True)
class UpstreamPod:
    """A pod upstream's plugin wired: its CNI key, address, ENI table and namespace."""

    name: str
    container_id: str
    address: IPv4Address
    table: int
    netns: str

    @property
    def veth(self) -> str:
        return host_veth_name(NAMESPACE, self.name, self.container_id, "eth0")


@dataclass
class UpstreamNode:
    """What upstream left on the node."""

    pods: list[UpstreamPod]
    gone: IPv4Address
    checkpoint: Path
    enis: dict[str, dict[str, str]]  # ENI id -> its tags, as upstream left them


def upstream_enis(node: Node, lab: Lab) -> dict[str, Any]:
    """Secondary IPs on the primary ENI and a second ENI, as upstream's ipamd makes them."""
    client = node.backend.client
    primary = node.enis()[0]
    created_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    client.create_tags(
        Resources=[primary.eni_id], Tags=[{"Key": TAG_INSTANCE_ID, "Value": node.instance_id}]
    )
    client.assign_private_ip_addresses(
        NetworkInterfaceId=primary.eni_id, SecondaryPrivateIpAddressCount=SECONDARY_IPS
    )
    created = client.create_network_interface(
        SubnetId=primary.subnet_id,
        Description=f"aws-K8S-{node.instance_id}",
        Groups=sorted(primary.security_groups),
        SecondaryPrivateIpAddressCount=SECONDARY_IPS,
        TagSpecifications=[
            {
                "ResourceType": "network-interface",
                "Tags": [
                    {"Key": TAG_CREATED_AT, "Value": created_at},
                    {"Key": TAG_INSTANCE_ID, "Value": node.instance_id},
                ],
            }
        ],
    )["NetworkInterface"]
    attachment = client.attach_network_interface(
        NetworkInterfaceId=created["NetworkInterfaceId"],
        InstanceId=node.instance_id,
        DeviceIndex=1,
    )["AttachmentId"]
    client.modify_network_interface_attribute(
        NetworkInterfaceId=created["NetworkInterfaceId"],
        Attachment={"AttachmentId": attachment, "DeleteOnTermination": True},
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        enis = node.enis()
        attached = [e for e in enis if e.attachment and e.attachment.status == "attached"]
        if len(attached) == 2 and "eth1" in ip("-n", lab.node, "-o", "link"):
            return {"primary": enis[0], "second": enis[1]}
        time.sleep(0.1)
    pytest.fail("the second ENI did not attach")


def upstream_host_networking(lab: Lab, second: Any) -> None:
    """What upstream's ipamd sets up for the second ENI and the node (section 7)."""
    gateway = str(lab.gateway)
    node = ("-n", lab.node)
    ip(*node, "link", "set", "eth1", "mtu", "9001", "up")
    ip(*node, "addr", "add", f"{second.primary_ip}/{lab.subnet.prefixlen}", "dev", "eth1")
    ip(*node, "route", "del", str(lab.subnet), "dev", "eth1")
    table = str(UPSTREAM_TABLE)
    ip(*node, "route", "replace", f"{gateway}/32", "dev", "eth1", "scope", "link", "table", table)
    ip(*node, "route", "replace", "default", "via", gateway, "dev", "eth1", "table", table)
    ip(*node, "rule", "add", "from", f"{second.primary_ip}/32", "lookup", table, "prio", "32765")
    ip(*node, "rule", "add", "fwmark", "0x80/0x80", "lookup", "main", "prio", "1024")


def wire_like_upstream(lab: Lab, pod: UpstreamPod) -> None:
    """Upstream's plugin: veth named by the pod, /32, gateway 169.254.1.1, rules 512 and 1536."""
    ip("netns", "add", pod.netns)
    node, inside = ("-n", lab.node), ("-n", pod.netns)
    ip(*node, "link", "add", pod.veth, "mtu", "9001", "type", "veth", "peer", "name", "eth0",
       "mtu", "9001", "netns", pod.netns)  # fmt: skip
    mac = json.loads(ip(*node, "-j", "link", "show", pod.veth))[0]["address"]
    ip(*node, "link", "set", pod.veth, "up")
    ip(*inside, "link", "set", "lo", "up")
    ip(*inside, "link", "set", "eth0", "up")
    ip(*inside, "addr", "add", f"{pod.address}/32", "dev", "eth0")
    ip(*inside, "route", "add", "169.254.1.1", "dev", "eth0", "scope", "link")
    ip(*inside, "route", "add", "default", "via", "169.254.1.1", "dev", "eth0")
    ip(*inside, "neigh", "add", "169.254.1.1", "lladdr", mac, "dev", "eth0", "nud", "permanent")
    ip(*node, "route", "add", f"{pod.address}/32", "dev", pod.veth, "scope", "link")
    ip(*node, "rule", "add", "to", f"{pod.address}/32", "lookup", "main", "prio", "512")
    if pod.table != 254:
        ip(*node, "rule", "add", "from", f"{pod.address}/32", "lookup", str(pod.table),
           "prio", "1536")  # fmt: skip


def upstream_checkpoint(path: Path, pods: list[UpstreamPod], gone: IPv4Address) -> None:
    """``ipam.json`` exactly as upstream writes it (reference section 4.5)."""

    def allocation(name: str, container: str, address: IPv4Address) -> dict[str, Any]:
        return {
            "networkName": "aws-cni",
            "containerID": container,
            "ifName": "eth0",
            "ipv4": str(address),
            "allocationTimestamp": time.time_ns(),
            "metadata": {"k8sPodNamespace": NAMESPACE, "k8sPodName": name, "interfacesCount": 1},
        }

    allocations = [allocation(p.name, p.container_id, p.address) for p in pods]
    allocations.append(allocation("checkout-gone", "c0ffee" * 10 + "dead", gone))
    path.parent.mkdir(parents=True)
    temporary = path.with_name("ipam.json.tmp")
    temporary.write_text(json.dumps({"version": "vpc-cni-ipam/1", "allocations": allocations}))
    temporary.chmod(0o644)
    temporary.replace(path)


def prepare_upstream_node(node: Node, lab: Lab) -> UpstreamNode:
    enis = upstream_enis(node, lab)
    primary, second = enis["primary"], enis["second"]
    upstream_host_networking(lab, second)
    addresses = [(a, 254) for a in primary.secondary_ips] + [
        (a, UPSTREAM_TABLE) for a in second.secondary_ips
    ]
    pods = [
        UpstreamPod(f"web-{i}", f"{i:02d}" * 32, address, table, f"{lab.prefix}-tk-web{i}")
        for i, (address, table) in enumerate(addresses)
        if i not in (2, 5)  # the last secondary IP of each ENI stays free
    ]
    for pod in pods:
        wire_like_upstream(lab, pod)
    checkpoint = node.directory / "aws-node" / "ipam.json"
    gone = primary.secondary_ips[2]
    upstream_checkpoint(checkpoint, pods, gone)
    return UpstreamNode(pods, gone, checkpoint, {e.eni_id: dict(e.tags) for e in enis.values()})


def rules(lab: Lab) -> str:
    return ip("-n", lab.node, "rule")


def held(node: Node) -> dict[str, tuple[str, str, str]]:
    """Address -> (network, container id, pod name) of every assignment (Unix socket: ids shown)."""
    return {
        p["address"]: (p["network"], p["container_id"], p["name"])
        for p in node.introspect("/v1/pods")
    }


def request(node: Node, op: str, name: str, container: str, netns: str) -> dict[str, Any]:
    return plugin_request(
        node.rpc,
        {
            "op": op,
            "cni": {
                "command": op.upper(),
                "container_id": container,
                "netns": netns,
                "ifname": "eth0",
                "args": f"IgnoreUnknown=1;K8S_POD_NAMESPACE={NAMESPACE};K8S_POD_NAME={name}",
            },
            "config": {"cniVersion": "1.0.0", "name": "aws-cni", "mtu": 9001},
        },
    )


def add_new_pod(node: Node, lab: Lab, name: str) -> str:
    netns = f"{lab.prefix}-tk-{name}"
    ip("netns", "add", netns)
    deadline = time.monotonic() + 30
    while True:
        reply = request(node, "add", name, name.ljust(64, "a"), f"/var/run/netns/{netns}")
        if reply["ok"] or reply["error"]["code"] != 11 or time.monotonic() > deadline:
            assert reply["ok"], reply
            return str(reply["result"]["ips"][0]["address"]).split("/")[0]
        time.sleep(0.2)


@pytest.fixture
def upstream_node(make_node: Any, netns_factory: Any) -> Iterator[tuple[Node, Lab, UpstreamNode]]:
    """The lab with a node upstream ran, and vpccni started on it (``--netns NODE``)."""
    netns_factory()  # requires root (fails loudly in CI without it)
    prepared: list[UpstreamNode] = []

    def start(node: Node, lab: Lab) -> None:
        upstream = prepare_upstream_node(node, lab)
        prepared.append(upstream)
        for pod in upstream.pods:  # upstream's own wiring works before vpccni touches it
            expected = "v0" if pod.table == 254 else "v1"
            assert probe(f"/var/run/netns/{pod.netns}", str(lab.vpc_host)) == [
                str(pod.address),
                expected,
            ]
        node.env["AWS_VPC_K8S_CNI_BACKING_STORE"] = str(upstream.checkpoint)
        node.start("--netns", lab.node)

    try:
        with running_lab(make_node, start) as (node, lab):
            yield node, lab, prepared[0]
    finally:
        done = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
        for line in done.stdout.splitlines():
            name = line.split()[0] if line.strip() else ""
            if "-tk-" in name:
                subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


def test_vpccni_takes_over_a_node_upstream_ran(
    upstream_node: tuple[Node, Lab, UpstreamNode],
) -> None:
    node, lab, upstream = upstream_node
    live = {str(p.address) for p in upstream.pods}

    # The pods keep their addresses: imported under their CNI keys; the dead pod is dropped.
    holders = held(node)
    for pod in upstream.pods:
        assert holders[str(pod.address)] == ("aws-cni", pod.container_id, pod.name)
    assert str(upstream.gone) not in holders
    report = node.introspect("/v1/explain")["takeover"]
    assert report["source"] == str(upstream.checkpoint)
    assert len(report["imported"]) == len(upstream.pods)
    assert [line.split(":")[0] for line in report["dropped"]] == [
        f"{upstream.gone} {NAMESPACE}/checkout-gone"
    ]
    assert "takeover: took over from upstream's aws-node" in node.log()

    # ENIs upstream created are adopted, their tags as upstream left them (they are ours too).
    adopted = {e["id"] for e in node.introspect("/v1/explain")["enis"]}
    assert set(upstream.enis) <= adopted
    now = {e.eni_id: e.tags for e in node.enis()}
    assert {eni: now[eni] for eni in upstream.enis} == upstream.enis

    # Their networking survives: veths, routes, rules, and traffic both ways on both ENIs.
    routes = ip("-n", lab.node, "route")
    for pod in upstream.pods:
        assert f"{pod.address} dev {pod.veth} " in routes
        assert f"from all to {pod.address} lookup main" in rules(lab)
        expected = "v0" if pod.table == 254 else "v1"
        netns = f"/var/run/netns/{pod.netns}"
        assert probe(netns, str(lab.vpc_host)) == [str(pod.address), expected]
    node_ip = str(node.enis()[0].primary_ip)
    assert probe(f"/var/run/netns/{upstream.pods[0].netns}", str(lab.internet_host))[0] == node_ip

    # New pods get other addresses.
    fresh = {add_new_pod(node, lab, f"new{i}") for i in range(3)}
    assert len(fresh) == 3
    assert not fresh & live

    # DEL of an old pod (on the second ENI) releases its address, its veth, route and rules.
    old = next(p for p in upstream.pods if p.table == UPSTREAM_TABLE)
    reply = request(node, "del", old.name, old.container_id, f"/var/run/netns/{old.netns}")
    assert reply["ok"], reply
    assert str(old.address) not in held(node)
    assert old.veth not in ip("-n", lab.node, "-o", "link")
    assert f"{old.address} dev" not in ip("-n", lab.node, "route")
    assert str(old.address) not in rules(lab)
    for pod in upstream.pods:
        if pod is not old:
            assert holders[str(pod.address)] == held(node)[str(pod.address)]


def test_status_reports_the_takeover(
    upstream_node: tuple[Node, Lab, UpstreamNode],
) -> None:
    node, lab, upstream = upstream_node
    done = subprocess.run(
        [*STATUS, "--introspection", node.introspection],
        capture_output=True,
        text=True,
        env=node.env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert (
        f"({upstream.checkpoint}): {len(upstream.pods)} pods imported, 1 dropped (pod gone, or "
        "address on no ENI)"
    ) in done.stdout
    assert f"  dropped {upstream.gone} {NAMESPACE}/checkout-gone: no host veth" in done.stdout
    node.stop()
    node.start("--netns", lab.node)  # a restart imports nothing again but keeps the report
    assert node.introspect("/v1/explain")["takeover"]["imported"]
    assert {str(p.address) for p in upstream.pods} <= set(held(node))


STATUS = [sys.executable, "-m", "vpccni.cli.main", "status"]
