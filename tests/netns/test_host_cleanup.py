"""Nothing stays behind on the host (issue #11, part 2), in real namespaces.

An ENI that leaves the pool - freed by the pool, or dropped by reconcile because EC2 detached it
- loses its ``from <primary> lookup <table>`` rule, its table's routes, its connected route and
its address; a deletion that fails is counted and retried. A pod later given the old primary
address on the primary ENI leaves through the primary ENI. A pod whose namespace goes without a
DEL is released by the sweep after the grace period.
"""

from __future__ import annotations

import errno
import os
import signal
import time
from collections.abc import Callable
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

from pyroute2.netlink.exceptions import NetlinkError

from tests.daemon.conftest import Node
from tests.netns.conftest import ip
from tests.netns.test_datapath import add, pod_netns, probe
from vpccni.adapters.host_network import NetlinkHostNetwork
from vpccni.adapters.pod_network import NetlinkPodNetwork
from vpccni.daemon.datapath import Datapath
from vpccni.lab.topology import Lab
from vpccni.ports import NullMetrics
from vpccni.settings import DatapathSettings

SUBNET = IPv4Network("10.0.1.0/24")
MAC = "02:00:00:00:11:01"


class Errors(NullMetrics):
    def __init__(self) -> None:
        self.errors: list[str] = []

    def error(self, fn: str) -> None:
        self.errors.append(fn)


def eni_rules(netns: str) -> list[str]:
    return [line for line in ip("-n", netns, "rule").splitlines() if line.startswith("32765:")]


def table(netns: str, number: int) -> str:
    return ip("-n", netns, "route", "show", "table", str(number)).strip()


def main_routes_of(netns: str, link: str) -> list[str]:
    return [line for line in ip("-n", netns, "route").splitlines() if f"dev {link} " in line + " "]


def test_a_removed_eni_loses_rule_table_connected_route_and_address_even_past_a_failure(
    netns_factory: Callable[[], str],
) -> None:
    node = netns_factory()
    ip("-n", node, "link", "add", "eth1", "address", MAC, "type", "veth", "peer", "name", "x1")
    ip("-n", node, "link", "set", "x1", "up")
    metrics = Errors()
    host = NetlinkHostNetwork(node, DatapathSettings())
    datapath = Datapath(NetlinkPodNetwork(node), host, SUBNET, metrics=metrics)
    primary = IPv4Address("10.0.1.20")
    try:
        assert datapath.eni_ready(MAC, primary, 1)
        assert eni_rules(node) == [f"32765:\tfrom {primary} lookup 2"]
        assert "default via 10.0.1.1 dev eth1" in table(node, 2)
        assert main_routes_of(node, "eth1") == []  # the connected route left main, as documented

        real_rule = host.ipr.rule
        refused: list[str] = []

        def refuse_once(command: str, **fields: Any) -> Any:
            if command == "del" and not refused:
                refused.append(command)
                raise NetlinkError(errno.EPERM, "Operation not permitted")
            return real_rule(command, **fields)

        host.ipr.rule = refuse_once
        assert not datapath.eni_removed(MAC, primary, 1)
        assert metrics.errors == ["datapathRemoveEni"]  # counted, not swallowed
        assert table(node, 2) == ""  # carried on past the failure
        assert str(primary) not in ip("-n", node, "addr", "show", "dev", "eth1")
        assert len(eni_rules(node)) == 1
        assert datapath.pending_removals()
        assert datapath.retry_removals()  # retried later: now it goes
        assert eni_rules(node) == []
        assert datapath.pending_removals() == []
        assert main_routes_of(node, "eth1") == []
    finally:
        host.close()


def rules_from(lab: Lab, address: IPv4Address) -> list[str]:
    return [line for line in eni_rules(lab.node) if f"from {address} " in line + " "]


def wait_second_eni(node: Node, lab: Lab) -> Any:
    node.wait_for(lambda: len(node.enis()) == 2, what="a second ENI")
    second = node.enis()[1]
    node.wait_for(lambda: rules_from(lab, second.primary_ip) != [], what="its rule 32765")
    return second


def test_an_eni_the_pool_frees_leaves_nothing_on_the_host(lab_node: tuple[Node, Lab]) -> None:
    node, lab = lab_node
    created: list[str] = []
    try:
        node.wait_for(lambda: node.rpc({"op": "status"})["result"]["available"] == 9, what="IPs")
        netns = pod_netns(f"{lab.prefix}-f0", created)
        node.wait_for_reply(lambda: add(node, "f0", netns))
        second = wait_second_eni(node, lab)
        assert table(lab.node, 2)
        assert node.delete("f0")["ok"]
        node.advance(120)  # past the cooldown and the ENI's minimum age: the pool frees it
        node.wait_for(lambda: len(node.enis()) == 1, what="the pool to free the ENI", timeout=40)
        node.wait_for(lambda: rules_from(lab, second.primary_ip) == [], what="its rule to go")
        assert table(lab.node, 2) == ""
        assert eni_rules(lab.node) == []
    finally:
        for name in created:
            ip("netns", "del", name)


def test_an_eni_reconcile_drops_leaves_no_rule_and_its_old_address_leaves_right(
    lab_node: tuple[Node, Lab],
) -> None:
    node, lab = lab_node
    created: list[str] = []
    client = node.backend.client
    try:
        node.wait_for(lambda: node.rpc({"op": "status"})["result"]["available"] == 9, what="IPs")
        netns = pod_netns(f"{lab.prefix}-r0", created)
        held = node.wait_for_reply(lambda: add(node, "r0", netns))["result"]["ips"][0]["address"]
        dropped = wait_second_eni(node, lab)
        old = dropped.primary_ip
        primary = node.enis()[0]
        spare = max(a for a in primary.secondary_ips if f"{a}/32" != held)
        assert node.process is not None
        os.kill(node.process.pid, signal.SIGSTOP)  # EC2 changes at once, as the daemon sees it
        try:
            attachment = dropped.attachment.attachment_id
            client.detach_network_interface(AttachmentId=attachment, Force=True)
            for _ in range(100):
                try:
                    client.delete_network_interface(NetworkInterfaceId=dropped.eni_id)
                    break
                except Exception:
                    time.sleep(0.1)
            client.unassign_private_ip_addresses(
                NetworkInterfaceId=primary.eni_id, PrivateIpAddresses=[str(spare)]
            )
            client.assign_private_ip_addresses(
                NetworkInterfaceId=primary.eni_id, PrivateIpAddresses=[str(old)]
            )
        finally:
            os.kill(node.process.pid, signal.SIGCONT)
        node.wait_for(lambda: rules_from(lab, old) == [], what="the dropped ENI's rule to go")
        # the pool grows again: a new ENI takes device 1 and table 2
        node.wait_for(
            lambda: len(node.enis()) == 2 and node.enis()[1].eni_id != dropped.eni_id,
            what="a new ENI at device 1",
        )
        new = node.enis()[1]
        node.wait_for(lambda: rules_from(lab, new.primary_ip) != [], what="the new ENI's rule")
        assert rules_from(lab, old) == []
        pods: dict[str, str] = {}
        for index in range(8):
            name = pod_netns(f"{lab.prefix}-q{index}", created)
            reply = node.wait_for_reply(lambda n=name, i=index: add(node, f"q{i}", n))
            pods[reply["result"]["ips"][0]["address"].split("/")[0]] = name
            if str(old) in pods:
                break
        assert str(old) in pods, pods
        assert probe(pods[str(old)], str(lab.vpc_host)) == [str(old), "v0"]
    finally:
        for name in created:
            ip("netns", "del", name)


def test_a_pod_whose_namespace_goes_without_del_is_released_by_the_sweep(
    lab_node: tuple[Node, Lab],
) -> None:
    node, lab = lab_node
    created: list[str] = []
    try:
        node.wait_for(lambda: node.rpc({"op": "status"})["result"]["available"] == 9, what="IPs")
        kept = pod_netns(f"{lab.prefix}-s0", created)
        gone = pod_netns(f"{lab.prefix}-s1", created)
        down = pod_netns(f"{lab.prefix}-s2", created)
        kept_ip = node.wait_for_reply(lambda: add(node, "kept", kept))["result"]["ips"][0]
        gone_ip = node.wait_for_reply(lambda: add(node, "gone", gone))["result"]["ips"][0]
        down_reply = node.wait_for_reply(lambda: add(node, "down", down))["result"]
        down_ip, down_veth = down_reply["ips"][0], down_reply["interfaces"][0]["name"]
        gone_address = gone_ip["address"].split("/")[0]
        # A pod that sets its eth0 down leaves its host veth down but there: the pod is alive.
        ip("-n", Path(down).name, "link", "set", "eth0", "down")
        ip("netns", "del", Path(gone).name)  # as ctr removes a container: no CNI DEL
        created.remove(Path(gone).name)
        time.sleep(1.5)  # a few sweeps see it missing
        node.advance(30)
        time.sleep(1.0)
        assert gone_address in ip("-n", lab.node, "rule")  # within the grace period: kept
        node.advance(31)

        def released() -> bool:
            held = {p["address"] for p in node.introspect("/v1/pods")}
            return held == {kept_ip["address"].split("/")[0], down_ip["address"].split("/")[0]}

        node.wait_for(released, what="the sweep to release the pod")
        assert gone_address not in ip("-n", lab.node, "rule")
        assert f"pod sweep: aws-cni/gone/eth0 (-/-) held {gone_address}" in node.log()
        assert "aws-cni/down/eth0" not in node.log()
        assert "NO-CARRIER" in ip("-n", lab.node, "-o", "link", "show", down_veth)  # not UP
        assert probe(kept, str(lab.vpc_host))[0] == kept_ip["address"].split("/")[0]
    finally:
        for name in created:
            ip("netns", "del", name)
