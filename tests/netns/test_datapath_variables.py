"""Upstream's networkutils variables in the node's rules: a real ``vpccni ipamd --netns NODE``
against the emulator, where NODE is a fresh namespace holding a link with the primary ENI's MAC.
Each test sets one variable and reads iptables, ``ip rule`` and the links there; the first test
shows the defaults (upstream's) they differ from.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from tests.daemon.conftest import Node
from tests.netns.conftest import ip
from tests.netns.test_datapath import add


@dataclass
class Wired:
    node: Node
    netns: str

    def iptables(self, table: str) -> list[str]:
        done = subprocess.run(
            ["ip", "netns", "exec", self.netns, "iptables", "-w", "-t", table, "-S"],
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout.splitlines()

    def chain(self, table: str, chain: str) -> list[str]:
        return [line for line in self.iptables(table) if line.startswith(f"-A {chain} ")]

    def rules(self) -> list[str]:
        return ip("-n", self.netns, "rule").splitlines()

    def mtu(self, link: str) -> int:
        return int(ip("-n", self.netns, "-o", "link", "show", link).split(" mtu ")[1].split()[0])


@pytest.fixture
def wired(make_node: Any, netns_factory: Callable[[], str]) -> Callable[..., Wired]:
    def start(**env: str) -> Wired:
        node = make_node("c5.large", **env)
        netns = netns_factory()
        mac = node.enis()[0].mac
        ip("-n", netns, "link", "add", "eth0", "address", mac, "type", "veth", "peer", "name", "vp")
        node.start("--netns", netns)  # ready: the node's rules are in place
        return Wired(node, netns)

    return start


SNAT = "AWS-SNAT-CHAIN-0"
CONNMARK = "AWS-CONNMARK-CHAIN-0"


def snat_rule(wired: Wired) -> str:
    found = [line for line in wired.chain("nat", SNAT) if " -j SNAT " in line]
    assert len(found) == 1, wired.iptables("nat")
    return found[0]


def test_the_defaults_are_upstreams(wired: Callable[..., Wired]) -> None:
    node = wired()
    assert "1024:\tfrom all fwmark 0x80/0x80 lookup main" in node.rules()
    assert snat_rule(node).endswith(" --random-fully")
    assert any("--set-xmark 0x80/0x80" in line for line in node.chain("nat", CONNMARK))
    assert any(line.startswith("-A PREROUTING -i eni+ ") for line in node.iptables("nat"))
    assert node.mtu("eth0") == 9001
    assert node.node.stop() == 0


def test_connmark_is_the_mark_of_rules_and_routing(wired: Callable[..., Wired]) -> None:
    node = wired(AWS_VPC_K8S_CNI_CONNMARK="0x100")
    assert "1024:\tfrom all fwmark 0x100/0x100 lookup main" in node.rules()
    assert not [line for line in node.rules() if "0x80" in line]
    rules = node.iptables("nat") + node.iptables("mangle")
    assert any("--set-xmark 0x100/0x100" in line for line in node.chain("nat", CONNMARK))
    assert [line for line in rules if "CONNMARK --restore-mark" in line]
    assert all("0x100" in line for line in rules if "CONNMARK --" in line), rules
    assert not [line for line in rules if "0x80" in line], rules
    assert node.node.stop() == 0


def test_excluded_cidrs_are_neither_snatted_nor_marked(wired: Callable[..., Wired]) -> None:
    node = wired(AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS="192.168.0.0/16,172.16.0.0/12")
    chain = node.chain("nat", SNAT)
    snat = chain.index(snat_rule(node))
    for cidr in ("192.168.0.0/16", "172.16.0.0/12"):
        returns = [i for i, line in enumerate(chain) if f"-d {cidr} " in line and "RETURN" in line]
        assert returns, chain
        assert returns[0] < snat, chain
        marked = node.chain("nat", CONNMARK)
        assert [line for line in marked if f"-d {cidr} " in line and "RETURN" in line], marked
    assert node.node.stop() == 0


def test_external_snat_installs_no_snat(wired: Callable[..., Wired]) -> None:
    node = wired(AWS_VPC_K8S_CNI_EXTERNALSNAT="true")
    nat = node.iptables("nat")
    assert not [line for line in nat if " -j SNAT " in line], nat
    assert not [line for line in nat if line.startswith("-A POSTROUTING") and SNAT in line], nat
    assert node.node.stop() == 0


def test_randomizesnat_chooses_the_snat_port_flag(wired: Callable[..., Wired]) -> None:
    hashed = wired(AWS_VPC_K8S_CNI_RANDOMIZESNAT="hashrandom")
    assert snat_rule(hashed).endswith(" --random")
    assert hashed.node.stop() == 0
    plain = wired(AWS_VPC_K8S_CNI_RANDOMIZESNAT="none")
    assert "--random" not in snat_rule(plain)
    assert plain.node.stop() == 0


def test_veth_prefix_names_pod_veths_and_their_rules(
    wired: Callable[..., Wired], netns_factory: Callable[[], str]
) -> None:
    node = wired(AWS_VPC_K8S_CNI_VETHPREFIX="abc")
    rules = node.iptables("nat") + node.iptables("mangle")
    assert [line for line in rules if " -i abc+ " in line], rules
    assert not [line for line in rules if " -i eni+ " in line], rules
    pod = f"/var/run/netns/{netns_factory()}"
    reply = node.node.wait_for_reply(lambda: add(node.node, "c-abc", pod, "web-0"))
    host_veth = reply["result"]["interfaces"][0]["name"]
    assert host_veth.startswith("abc"), reply
    assert host_veth in ip("-n", node.netns, "-o", "link", "show")
    assert node.node.stop() == 0


def test_eni_mtu_is_the_primary_links(wired: Callable[..., Wired]) -> None:
    node = wired(AWS_VPC_ENI_MTU="1400")
    assert node.mtu("eth0") == 1400
    assert node.node.stop() == 0
