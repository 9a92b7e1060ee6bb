"""The node's rules (upstream section 7.3) as the host adapter converges them, in a namespace.

Each test gives ``NetlinkHostNetwork.setup_node`` a bare node namespace with the primary ENI's
link and reads back what the kernel and iptables hold: the NodePort marks
(``AWS_VPC_CNI_NODE_PORT_SUPPORT``), what external SNAT keeps, the external service rules
(``AWS_EXTERNAL_SERVICE_CIDRS``, priority 1535), a repeated set-up with other VPC CIDR blocks
(the refresh) changing only what differs, and upstream's leftovers removed: its nftables
``table ip aws-cni`` and the stale ``AWS-SNAT-CHAIN-1..n`` / ``AWS-CONNMARK-CHAIN-1..n`` chains.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from collections.abc import Callable
from ipaddress import IPv4Address, IPv4Network
from typing import Any

import pytest

from tests.netns.conftest import _require, ip
from vpccni.adapters.host_network import NetlinkHostNetwork
from vpccni.ports import EniLink
from vpccni.settings import DatapathSettings

MAC = "02:00:00:00:10:00"
PRIMARY = EniLink(MAC, IPv4Address("10.0.1.10"), IPv4Network("10.0.1.0/24"), 0)
VPC = [IPv4Network("10.0.0.0/16")]
MARK_RULE = "1024:\tfrom all fwmark 0x80/0x80 lookup main"


@pytest.fixture
def node(netns_factory: Callable[[], str]) -> str:
    """A node namespace with the primary ENI's link ``eth0`` (by its MAC)."""
    name = netns_factory()
    ip("-n", name, "link", "add", "eth0", "address", MAC, "type", "veth", "peer", "name", "x0")
    return name


def iptables(node: str, *args: str) -> str:
    done = subprocess.run(
        ["ip", "netns", "exec", node, "iptables", "-w", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def rules(node: str, table: str, chain: str) -> list[str]:
    """The chain's rules as ``iptables -S`` prints them, without the ``-A CHAIN``."""
    lines = iptables(node, "-t", table, "-S", chain).splitlines()
    return [line.split(" ", 2)[2] for line in lines if line.startswith("-A ")]


def builtin_handles(node: str) -> list[str]:
    """With iptables-nft (Debian's default), the nftables handles of the rules in the built-in
    chains of nat and mangle: a rule deleted and added again gets a new one. With
    iptables-legacy the rules' text instead."""
    version = iptables(node, "--version")
    if "nf_tables" not in version:
        return [iptables(node, "-t", t, "-S") for t in ("nat", "mangle")]
    found = []
    for table in ("nat", "mangle"):
        listing = subprocess.run(
            ["ip", "netns", "exec", node, "nft", "-a", "list", "table", "ip", table],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        chain = ""
        for line in (line.strip() for line in listing.splitlines()):
            if line.startswith("chain "):
                chain = line.split()[1]
            elif "# handle" in line and chain in ("PREROUTING", "POSTROUTING"):
                found.append(f"{table} {chain}: {line}")
    assert len(found) == 6, found  # ours: 1 + 2 in nat, 3 in mangle
    return found


def setup(node: str, cidrs: list[IPv4Network] = VPC, **settings: Any) -> None:
    host = NetlinkHostNetwork(node, DatapathSettings(**settings))
    try:
        host.setup_node(PRIMARY, cidrs)
    finally:
        host.close()


NODE_PORT = (
    '-i eth0 -m comment --comment "AWS, primary ENI" -m addrtype --dst-type LOCAL '
    "--limit-iface-in -j CONNMARK --set-xmark 0x80/0x80"
)
RESTORE = (
    '-m comment --comment "AWS, primary ENI" -j CONNMARK --restore-mark --nfmask 0x80 --ctmask 0x80'
)
RESTORE_PODS, RESTORE_VLAN = f"-i eni+ {RESTORE}", f"-i vlan+ {RESTORE}"


def test_node_port_marks_and_snat_by_default_and_a_refresh_changes_only_the_blocks(
    node: str,
) -> None:
    setup(node)
    assert rules(node, "mangle", "PREROUTING") == [NODE_PORT, RESTORE_PODS, RESTORE_VLAN]
    assert MARK_RULE in ip("-n", node, "rule")
    snat = rules(node, "nat", "AWS-SNAT-CHAIN-0")
    assert snat[0] == '-d 10.0.0.0/16 -m comment --comment "AWS SNAT CHAIN" -j RETURN'
    assert "-j SNAT --to-source 10.0.1.10 --random-fully" in snat[-1]
    assert rules(node, "nat", "POSTROUTING") == [
        '-m comment --comment "AWS SNAT CHAIN" -j AWS-SNAT-CHAIN-0'
    ]
    before = {c: rules(node, "nat", c) for c in ("PREROUTING", "POSTROUTING")}
    kept = builtin_handles(node)

    setup(node, [*VPC, IPv4Network("100.64.0.0/16")])  # the refresh after a block is added
    snat = rules(node, "nat", "AWS-SNAT-CHAIN-0")
    assert [r.split()[1] for r in snat[:2]] == ["10.0.0.0/16", "100.64.0.0/16"]
    connmark = rules(node, "nat", "AWS-CONNMARK-CHAIN-0")
    assert [r.split()[1] for r in connmark[:2]] == ["10.0.0.0/16", "100.64.0.0/16"]
    assert {c: rules(node, "nat", c) for c in ("PREROUTING", "POSTROUTING")} == before
    assert rules(node, "mangle", "PREROUTING") == [NODE_PORT, RESTORE_PODS, RESTORE_VLAN]
    assert ip("-n", node, "rule").count("fwmark") == 1
    assert builtin_handles(node) == kept  # not deleted and re-added: never missing

    setup(node)  # and removed again
    for chain in ("AWS-SNAT-CHAIN-0", "AWS-CONNMARK-CHAIN-0"):
        assert "100.64.0.0/16" not in "\n".join(rules(node, "nat", chain))


def test_without_node_port_support_no_connection_is_marked_on_the_primary_interface(
    node: str,
) -> None:
    setup(node, node_port_support=False)
    assert rules(node, "mangle", "PREROUTING") == [RESTORE_PODS]  # SNAT's marks still restored
    assert MARK_RULE in ip("-n", node, "rule")


def test_external_snat_keeps_the_pods_restore_mark_rule_while_node_port_support_is_on(
    node: str,
) -> None:
    setup(node)  # first as default, then switched: what SNAT needed goes
    setup(node, external_snat=True)
    assert rules(node, "mangle", "PREROUTING") == [NODE_PORT, RESTORE_PODS, RESTORE_VLAN]
    assert rules(node, "nat", "AWS-SNAT-CHAIN-0") == []
    assert rules(node, "nat", "AWS-CONNMARK-CHAIN-0") == []
    assert rules(node, "nat", "POSTROUTING") == rules(node, "nat", "PREROUTING") == []
    assert MARK_RULE in ip("-n", node, "rule")

    setup(node, external_snat=True, node_port_support=False)
    assert rules(node, "mangle", "PREROUTING") == []
    assert "fwmark" not in ip("-n", node, "rule")


def external_rules(node: str) -> list[str]:
    return [line for line in ip("-n", node, "rule").splitlines() if line.startswith("1535:")]


def test_external_service_cidrs_get_rules_to_main_at_1535_and_stale_ones_go(node: str) -> None:
    first = (IPv4Network("172.20.0.0/16"), IPv4Network("192.0.2.0/24"))
    setup(node, external_service_cidrs=first)
    assert external_rules(node) == [
        "1535:\tfrom all to 172.20.0.0/16 lookup main",
        "1535:\tfrom all to 192.0.2.0/24 lookup main",
    ]
    setup(node, external_service_cidrs=(IPv4Network("192.0.2.0/24"),))  # changed on a restart
    assert external_rules(node) == ["1535:\tfrom all to 192.0.2.0/24 lookup main"]
    setup(node)  # unset
    assert external_rules(node) == []


UPSTREAM_NFT = """
table ip aws-cni {
  chain nat-prerouting {
    type nat hook prerouting priority -90; policy accept;
    fib daddr type local return
    iifname "eni*" counter jump snat-mark
    meta mark set ct mark & 0x80
  }
  chain snat-mark {
    ip daddr 10.0.0.0/16 return
    ct mark set ct mark | 0x80
  }
}
"""


def plant_upstream_leftovers(node: str) -> None:
    """What an aws-node leaves on a node: its nftables table (nftables backend) and an older
    version's chained SNAT and connmark chains (one per VPC CIDR) behind chain 0."""
    _require(shutil.which("nft") is not None, "nft (the nftables package) is missing")
    done = subprocess.run(
        ["ip", "netns", "exec", node, "nft", "-f", "-"],
        input=UPSTREAM_NFT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    for kind in ("SNAT", "CONNMARK"):
        for index in range(3):
            iptables(node, "-t", "nat", "-N", f"AWS-{kind}-CHAIN-{index}")
        for index in range(2):
            iptables(
                node,
                *("-t", "nat", "-A", f"AWS-{kind}-CHAIN-{index}", "!", "-d", "10.1.0.0/16"),
                *("-j", f"AWS-{kind}-CHAIN-{index + 1}"),
            )
    iptables(node, "-t", "nat", "-A", "AWS-SNAT-CHAIN-2", "-j", "SNAT", "--to-source", "10.0.1.10")
    iptables(node, "-t", "nat", "-A", "POSTROUTING", "-j", "AWS-SNAT-CHAIN-0")
    iptables(node, "-t", "nat", "-A", "OUTPUT", "-j", "AWS-CONNMARK-CHAIN-2")  # a stray jump


def test_upstreams_nft_table_and_stale_chains_are_removed_and_logged(
    node: str, caplog: pytest.LogCaptureFixture
) -> None:
    plant_upstream_leftovers(node)
    with caplog.at_level(logging.INFO, logger="vpccni.ipamd"):
        setup(node)
    ruleset = subprocess.run(
        ["ip", "netns", "exec", node, "nft", "list", "tables"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "aws-cni" not in ruleset
    listing = iptables(node, "-t", "nat", "-S")
    for index in (1, 2):
        assert f"AWS-SNAT-CHAIN-{index}" not in listing
        assert f"AWS-CONNMARK-CHAIN-{index}" not in listing
    assert rules(node, "nat", "OUTPUT") == []
    assert rules(node, "nat", "POSTROUTING") == [
        "-j AWS-SNAT-CHAIN-0",  # not ours (no comment), left alone
        '-m comment --comment "AWS SNAT CHAIN" -j AWS-SNAT-CHAIN-0',
    ]
    logged = caplog.text
    assert "removed upstream's nftables table ip aws-cni" in logged
    for chain in ("AWS-SNAT-CHAIN-1", "AWS-SNAT-CHAIN-2", "AWS-CONNMARK-CHAIN-2"):
        assert f"removed the stale nat chain {chain}" in logged
    assert "removed the nat OUTPUT rule jumping to AWS-CONNMARK-CHAIN-2" in logged
