"""The node's iptables rules (upstream section 7.3), converged atomically, and upstream's leftovers.

:func:`wanted_rules` says what the node should have, from the settings, the primary interface
and the VPC's CIDR blocks:

* nat ``AWS-SNAT-CHAIN-0``: RETURN for each VPC CIDR block and each excluded CIDR, then SNAT to
  the node's primary address for everything not local (``--random-fully`` / ``--random`` / none
  per ``AWS_VPC_K8S_CNI_RANDOMIZESNAT``), jumped to from nat POSTROUTING;
* nat ``AWS-CONNMARK-CHAIN-0``: RETURN for the same CIDRs, then set the connmark, jumped to from
  nat PREROUTING for traffic from pod veths (``-i <prefix>+``), followed by the restore-mark
  rule; so a pod connection leaving the VPC carries the mark and rule 1024 routes it by main;
* mangle PREROUTING (``AWS_VPC_CNI_NODE_PORT_SUPPORT``): connections arriving on the primary
  interface for a local address (NodePort, load balancers) get the connmark, and the mark is
  restored for traffic from pod veths and ``vlan+``, so a pod's replies leave by the primary
  interface even when the pod's address is on a secondary ENI. The pod-veth restore rule stays
  with external SNAT as long as node-port support is on (upstream's condition).

With ``AWS_VPC_K8S_CNI_EXTERNALSNAT`` both chains are left empty and nothing jumps to them.

:func:`converge` applies that with one ``iptables-restore --noflush`` transaction (one commit
per table: atomic with iptables-nft and iptables-legacy): our two chains are declared, which
empties them, and rewritten in the same commit, so a refresh never leaves a moment where a VPC
destination is SNATed or a rule missing. Our rules in the built-in chains (known by their
comments) are rewritten only when one is missing or one too many; other rules are not touched.
Upstream's older layouts chained ``AWS-SNAT-CHAIN-1..n`` and ``AWS-CONNMARK-CHAIN-1..n``
behind chain 0: those chains, and any rule jumping to them, are deleted in the same commit.

:func:`remove_upstream_nft_table` deletes ``table ip aws-cni``, where upstream on an nftables
host keeps its connmark rules (over netlink, from a thread in the node's namespace; no ``nft``
binary needed): left behind, it would mark pod traffic a second time.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from typing import TYPE_CHECKING, Any

from vpccni.adapters.eni_links import HostNetworkError

if TYPE_CHECKING:
    from vpccni.settings import DatapathSettings

SNAT_CHAIN = "AWS-SNAT-CHAIN-0"
CONNMARK_CHAIN = "AWS-CONNMARK-CHAIN-0"
UPSTREAM_NFT_TABLE = "aws-cni"
NFPROTO_IPV4 = 2
RANDOM_FLAGS = {0: "", 1: " --random", 2: " --random-fully"}
STALE_CHAIN = re.compile(r"AWS-(SNAT|CONNMARK)-CHAIN-[1-9][0-9]*")
"""Chains of upstream's older layouts (one chain per VPC CIDR); vpccni only uses chain 0."""

COMMENT_SNAT_JUMP = "AWS SNAT CHAIN"
COMMENT_OUTBOUND = "AWS, outbound connections"
COMMENT_CONNMARK = "AWS, CONNMARK"
COMMENT_PRIMARY = "AWS, primary ENI"


@dataclass(frozen=True)
class BuiltinRules:
    """Our rules in one built-in chain: those carrying one of ``comments`` are ours."""

    table: str
    chain: str
    comments: frozenset[str]
    rules: tuple[str, ...] = ()


@dataclass(frozen=True)
class WantedRules:
    """Everything vpccni's iptables rules should be: our chains' rules, our built-in rules."""

    chains: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """nat chain -> its rules (``AWS-SNAT-CHAIN-0``, ``AWS-CONNMARK-CHAIN-0``)."""
    builtin: tuple[BuiltinRules, ...] = ()


def wanted_rules(
    settings: DatapathSettings,
    primary_ip: IPv4Address,
    primary_if: str,
    vpc_cidrs: Sequence[IPv4Network],
) -> WantedRules:
    """Upstream's rules for these settings (section 7.3), in ``iptables-restore`` syntax."""
    external, node_port = settings.external_snat, settings.node_port_support
    excluded = tuple(settings.exclude_snat_cidrs or ())
    prefix = settings.veth_prefix
    mark = f"{settings.connmark:#x}"
    snat: tuple[str, ...] = ()
    connmark: tuple[str, ...] = ()
    nat_post: tuple[str, ...] = ()
    nat_pre: tuple[str, ...] = ()
    if not external:
        snat = (
            *(f'-d {c} -m comment --comment "AWS SNAT CHAIN" -j RETURN' for c in vpc_cidrs),
            *(
                ("" if c.prefixlen == 0 else f"-d {c} ")
                + '-m comment --comment "AWS SNAT CHAIN EXCLUSION" -j RETURN'
                for c in excluded
            ),
            '! -o vlan+ -m comment --comment "AWS, SNAT" -m addrtype ! --dst-type LOCAL '
            f"-j SNAT --to-source {primary_ip}{RANDOM_FLAGS[settings.random_snat_code]}",
        )
        connmark = (
            *(
                ("" if c.prefixlen == 0 else f"-d {c} ")
                + '-m comment --comment "AWS CONNMARK CHAIN" -j RETURN'
                for c in (*vpc_cidrs, *excluded)
            ),
            f'-m comment --comment "AWS, CONNMARK" -j CONNMARK --set-xmark {mark}/{mark}',
        )
        nat_post = (f'-m comment --comment "AWS SNAT CHAIN" -j {SNAT_CHAIN}',)
        nat_pre = (
            f'-i {prefix}+ -m comment --comment "AWS, outbound connections" -j {CONNMARK_CHAIN}',
            f'-m comment --comment "AWS, CONNMARK" -j CONNMARK --restore-mark --mask {mark}',
        )
    mangle: list[str] = []
    if node_port:
        mangle.append(
            f'-m comment --comment "AWS, primary ENI" -i {primary_if} -m addrtype '
            f"--dst-type LOCAL --limit-iface-in -j CONNMARK --set-mark {mark}/{mark}"
        )
    if node_port or not external:
        mangle.append(
            f'-m comment --comment "AWS, primary ENI" -i {prefix}+ '
            f"-j CONNMARK --restore-mark --mask {mark}"
        )
    if node_port:
        mangle.append(
            '-m comment --comment "AWS, primary ENI" -i vlan+ '
            f"-j CONNMARK --restore-mark --mask {mark}"
        )
    return WantedRules(
        {SNAT_CHAIN: snat, CONNMARK_CHAIN: connmark},
        (
            BuiltinRules("nat", "POSTROUTING", frozenset({COMMENT_SNAT_JUMP}), nat_post),
            BuiltinRules(
                "nat", "PREROUTING", frozenset({COMMENT_OUTBOUND, COMMENT_CONNMARK}), nat_pre
            ),
            BuiltinRules("mangle", "PREROUTING", frozenset({COMMENT_PRIMARY}), tuple(mangle)),
        ),
    )


class Iptables:
    """``iptables`` and ``iptables-restore`` (whichever backend the host has) in the node's
    namespace (``ip netns exec NODE`` with ``--netns``), with ``-w``."""

    def __init__(self, node_netns: str | None) -> None:
        self.prefix = ["ip", "netns", "exec", node_netns] if node_netns else []

    def run(self, *args: str) -> str:
        done = self._run(["iptables", "-w", *args])
        if done.returncode != 0:
            raise HostNetworkError(
                f"iptables {' '.join(args)} failed: {done.stderr.strip()}; is iptables "
                "installed and are we root in the node's namespace?"
            )
        return done.stdout

    def has(self, table: str, chain: str, rule: str) -> bool:
        """The rule exists (``iptables -C``; False too when a chain it names does not)."""
        return self._run(["iptables", "-w", "-t", table, "-C", chain, *shlex.split(rule)]).ok

    def restore(self, payload: str) -> None:
        done = self._run(["iptables-restore", "-w", "--noflush"], payload)
        if done.returncode != 0:
            raise HostNetworkError(
                f"iptables-restore failed: {' '.join(done.stderr.split())}; nothing was "
                "changed (one transaction per table)"
            )

    def _run(self, command: list[str], payload: str | None = None) -> _Done:
        done = subprocess.run(
            [*self.prefix, *command], input=payload, capture_output=True, text=True, check=False
        )
        return _Done(done.returncode, done.stdout, done.stderr)


@dataclass(frozen=True)
class _Done:
    returncode: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0


@dataclass(frozen=True)
class _Rule:
    """One rule as ``iptables -S`` prints it: its chain, its words after the chain, the line."""

    chain: str
    spec: tuple[str, ...]
    line: str

    def option(self, *names: str) -> str | None:
        """The value after the first of ``names`` (``-j``, ``--comment``) in the rule."""
        for index, word in enumerate(self.spec[:-1]):
            if word in names:
                return self.spec[index + 1]
        return None

    @property
    def deletion(self) -> str:
        """The ``iptables-restore`` line deleting it (iptables' own quoting kept)."""
        return "-D" + self.line[2:]


@dataclass
class _Listing:
    """One table as ``iptables -S`` prints it: its user chains and its rules."""

    chains: set[str] = field(default_factory=set)
    rules: list[_Rule] = field(default_factory=list)

    @classmethod
    def parse(cls, text: str) -> _Listing:
        listing = cls()
        for line in text.splitlines():
            words = shlex.split(line)
            if len(words) >= 2 and words[0] == "-N":
                listing.chains.add(words[1])
            elif len(words) >= 2 and words[0] == "-A":
                listing.rules.append(_Rule(words[1], tuple(words[2:]), line))
        return listing


def converge(iptables: Iptables, wanted: WantedRules) -> list[str]:
    """Make the node's iptables rules ``wanted`` in one ``iptables-restore`` transaction per
    table; returns what changed besides rewriting our chains (for the log)."""
    listings = {t: _Listing.parse(iptables.run("-t", t, "-S")) for t in ("nat", "mangle")}
    nat = listings["nat"]
    stale = sorted(c for c in nat.chains if STALE_CHAIN.fullmatch(c))
    declared = {*wanted.chains, *stale}
    changes: list[str] = []
    head = {"nat": [f":{chain} - [0:0]" for chain in (*wanted.chains, *stale)], "mangle": []}
    for chain, rules in wanted.chains.items():
        head["nat"] += [f"-A {chain} {rule}" for rule in rules]
    deletions: dict[str, dict[str, None]] = {"nat": {}, "mangle": {}}  # ordered sets
    additions: dict[str, list[str]] = {"nat": [], "mangle": []}
    for rule in nat.rules:
        target = rule.option("-j", "-g")
        if rule.chain not in declared and target in stale:
            deletions["nat"][rule.deletion] = None
            changes.append(f"removed the nat {rule.chain} rule jumping to {target}")
    for builtin in wanted.builtin:
        ours = [
            rule
            for rule in listings[builtin.table].rules
            if rule.chain == builtin.chain and rule.option("--comment") in builtin.comments
        ]
        if len(ours) == len(builtin.rules) and all(
            iptables.has(builtin.table, builtin.chain, rule) for rule in builtin.rules
        ):
            continue
        for rule in ours:
            deletions[builtin.table][rule.deletion] = None
        additions[builtin.table] += [f"-A {builtin.chain} {rule}" for rule in builtin.rules]
        changes.append(
            f"{builtin.table} {builtin.chain}: our {len(builtin.rules)} rules set "
            f"({len(ours)} of ours were there)"
        )
    changes += [f"removed the stale nat chain {chain} (an older aws-node's)" for chain in stale]
    payload = ""
    for table in ("nat", "mangle"):
        lines = [*head[table], *deletions[table], *additions[table]]
        lines += [f"-X {chain}" for chain in stale] if table == "nat" else []
        if lines:
            payload += f"*{table}\n" + "".join(f"{line}\n" for line in lines) + "COMMIT\n"
    iptables.restore(payload)
    return changes


def _nftables() -> Any:
    """pyroute2's nftables socket (imported on use, after ``pyroute2_lean``: only the takeover
    check needs it)."""
    from pyroute2.nftables.main import NFTables

    return NFTables(NFPROTO_IPV4)


def remove_upstream_nft_table(make: Callable[[], Any] = _nftables) -> bool:
    """Delete upstream's ``table ip aws-cni`` if the calling thread's namespace has it; True
    when it was there. Raises ``NetlinkError`` / ``OSError`` when nftables cannot be read."""
    nft = make()
    try:
        names = {str(t.get_attr("NFTA_TABLE_NAME")) for t in nft.get_tables()}
        if UPSTREAM_NFT_TABLE not in names:
            return False
        nft.table("del", name=UPSTREAM_NFT_TABLE)
        return True
    finally:
        nft.close()


__all__ = [
    "CONNMARK_CHAIN",
    "SNAT_CHAIN",
    "Iptables",
    "WantedRules",
    "converge",
    "remove_upstream_nft_table",
    "wanted_rules",
]
