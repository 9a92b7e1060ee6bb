"""The node's host networking (upstream section 7), idempotent, in the node's namespace.

* Node: primary ENI link MTU; rule ``fwmark 0x80/0x80 lookup main`` (1024); iptables nat chain
  ``AWS-SNAT-CHAIN-0`` (RETURN for VPC and excluded CIDRs, then SNAT to the node's primary
  address for everything not local), connmark rules in mangle/nat PREROUTING so that pod
  connections leaving the VPC are marked and routed via the primary ENI. External SNAT removes
  them. iptables runs as ``iptables -w`` (iptables-nft or legacy, whichever the host has).
* Each secondary ENI (``vpccni.adapters.eni_links``): link found by MAC, MTU, up, its primary
  address, table ``device + 1`` with the subnet gateway and a default route, the kernel's
  connected route dropped from main, rule ``from <ENI primary> lookup <table>`` (32765);
  ``remove_eni`` deletes it all again when the ENI leaves the pool; ``converge_enis`` (start-up)
  deletes the rules and tables of ENIs the pool no longer has.
* Pods: ``converge_pods`` removes host routes, rules and veths of pods the datastore no longer
  has (after a crash) and restores missing ones for pods it has.
"""

from __future__ import annotations

import errno
import shlex
import subprocess
from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Network
from typing import TYPE_CHECKING, Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from vpccni.adapters.eni_links import (
    HostNetworkError,
    converge_eni_rules,
    remove_eni_link,
    setup_eni_link,
)
from vpccni.adapters.netlink_kit import AF_INET, SCOPE_LINK, NetlinkThread, ignoring, netns_path
from vpccni.core.naming import (
    MAIN_TABLE,
    RULE_FROM_POD,
    RULE_FWMARK,
    RULE_TO_POD,
)
from vpccni.ports import EniLink, HostChanges, PodWiring

if TYPE_CHECKING:
    from vpccni.settings import DatapathSettings

SNAT_CHAIN = "AWS-SNAT-CHAIN-0"
CONNMARK_CHAIN = "AWS-CONNMARK-CHAIN-0"
RANDOM_FLAGS = {0: [], 1: ["--random"], 2: ["--random-fully"]}
__all__ = ["HostNetworkError", "NetlinkHostNetwork"]


class NetlinkHostNetwork:
    """Implements ``vpccni.ports.HostNetwork``."""

    def __init__(self, node_netns: str | None, settings: DatapathSettings) -> None:
        self.node_netns = node_netns
        self.settings = settings
        self._ipr: Any = None
        self._thread = NetlinkThread()

    @property
    def ipr(self) -> Any:
        if self._ipr is None:
            self._ipr = IPRoute(netns=netns_path(self.node_netns)) if self.node_netns else IPRoute()
        return self._ipr

    # -- node -----------------------------------------------------------------------------------

    def setup_node(self, primary: EniLink, vpc_cidrs: Sequence[IPv4Network]) -> None:
        self._thread.run(lambda: self._setup_node(primary, vpc_cidrs))

    def _setup_node(self, primary: EniLink, vpc_cidrs: Sequence[IPv4Network]) -> None:
        mtu = self.settings.mtu
        index = self._link_by_mac(primary.mac)
        if index is not None:
            self.ipr.link("set", index=index, mtu=mtu)
        mark = self.settings.connmark
        external = self.settings.external_snat
        with ignoring(errno.ENOENT, errno.ESRCH):
            self.ipr.rule(
                "del",
                family=AF_INET,
                priority=RULE_FWMARK,
                fwmark=mark,
                fwmask=mark,
                table=MAIN_TABLE,
            )
        if not external or self.settings.node_port_support:
            self.ipr.rule(
                "add",
                family=AF_INET,
                priority=RULE_FWMARK,
                fwmark=mark,
                fwmask=mark,
                table=MAIN_TABLE,
            )
        self._iptables_snat(primary, vpc_cidrs, external, mark)

    def _iptables_snat(
        self, primary: EniLink, vpc_cidrs: Sequence[IPv4Network], external: bool, mark: int
    ) -> None:
        excluded = self.settings.exclude_snat_cidrs or ()
        prefix = self.settings.veth_prefix
        hexmark = f"{mark:#x}"
        jumps = [  # our rules in the built-in chains: removed, then re-added unless external SNAT
            ("nat", "POSTROUTING", f'-m comment --comment "AWS SNAT CHAIN" -j {SNAT_CHAIN}'),
            (
                "nat",
                "PREROUTING",
                f"-i {prefix}+ -m comment --comment "
                f'"AWS, outbound connections" -j {CONNMARK_CHAIN}',
            ),
            (
                "nat",
                "PREROUTING",
                f'-m comment --comment "AWS, CONNMARK" -j CONNMARK --restore-mark --mask {hexmark}',
            ),
            (
                "mangle",
                "PREROUTING",
                f'-m comment --comment "AWS, primary ENI" -i {prefix}+ '
                f"-j CONNMARK --restore-mark --mask {hexmark}",
            ),
        ]
        self._flush_chain("nat", SNAT_CHAIN)
        self._flush_chain("nat", CONNMARK_CHAIN)
        for table, chain, rule in jumps:
            self._delete_all(table, chain, shlex.split(rule))
        if external:
            return
        random = " ".join(RANDOM_FLAGS[self.settings.random_snat_code])
        snat = [f'-d {c} -m comment --comment "AWS SNAT CHAIN" -j RETURN' for c in vpc_cidrs]
        snat += [
            ("" if c.prefixlen == 0 else f"-d {c} ")
            + '-m comment --comment "AWS SNAT CHAIN EXCLUSION" -j RETURN'
            for c in excluded
        ]
        snat.append(
            '! -o vlan+ -m comment --comment "AWS, SNAT" -m addrtype ! --dst-type LOCAL '
            f"-j SNAT --to-source {primary.primary_ip} {random}"
        )
        connmark = [
            f'-d {c} -m comment --comment "AWS CONNMARK CHAIN" -j RETURN'
            for c in [*vpc_cidrs, *excluded]
        ]
        connmark.append(
            f'-m comment --comment "AWS, CONNMARK" -j CONNMARK --set-xmark {hexmark}/{hexmark}'
        )
        rules = [("nat", SNAT_CHAIN, r) for r in snat] + [
            ("nat", CONNMARK_CHAIN, r) for r in connmark
        ]
        for table, chain, rule in [*rules, *jumps]:
            self._iptables("-t", table, "-A", chain, *shlex.split(rule))

    # -- ENIs -----------------------------------------------------------------------------------

    def setup_eni(self, eni: EniLink) -> bool:
        """Configure a secondary ENI; False when its link is absent; HostNetworkError when a
        change fails (nothing is ignored but "already so")."""

        def setup() -> bool:
            try:
                return self._setup_eni(eni)
            except (NetlinkError, OSError) as error:
                raise HostNetworkError(
                    f"configuring ENI {eni.mac} (device {eni.device_index}, {eni.primary_ip}) "
                    f"failed: {error}"
                ) from None

        return self._thread.run(setup)

    def _setup_eni(self, eni: EniLink) -> bool:
        if eni.device_index == 0:
            return True
        index = self._link_by_mac(eni.mac)
        if index is None:
            return False
        setup_eni_link(self.ipr, eni, index, self.settings.mtu)
        return True

    def remove_eni(self, eni: EniLink, *, flush_table: bool) -> HostChanges:
        return self._thread.run(
            lambda: remove_eni_link(self.ipr, eni, self._link_by_mac(eni.mac), flush_table)
        )

    def converge_enis(self, enis: Sequence[EniLink]) -> HostChanges:
        return self._thread.run(lambda: converge_eni_rules(self.ipr, enis))

    # -- pods -----------------------------------------------------------------------------------

    def converge_pods(self, wired: Sequence[PodWiring]) -> list[str]:
        return self._thread.run(lambda: self._converge_pods(wired))

    def _converge_pods(self, wired: Sequence[PodWiring]) -> list[str]:
        """Remove pod routes, rules and veths nobody owns; restore owned ones. Returns changes."""
        prefix = self.settings.veth_prefix
        wanted = {str(w.address): w for w in wired}
        changes: list[str] = []
        ipr = self.ipr
        for rule in ipr.get_rules(family=AF_INET):
            priority = rule.get_attr("FRA_PRIORITY")
            address = (
                rule.get_attr("FRA_DST")
                if priority == RULE_TO_POD
                else (rule.get_attr("FRA_SRC") if priority == RULE_FROM_POD else None)
            )
            if address is None or address in wanted:
                continue
            with ignoring(errno.ENOENT, errno.ESRCH):
                fields = (
                    {"dst": address, "dst_len": 32}
                    if priority == RULE_TO_POD
                    else {"src": address, "src_len": 32}
                )
                ipr.rule(
                    "del",
                    family=AF_INET,
                    priority=priority,
                    table=rule.get_attr("FRA_TABLE"),
                    **fields,
                )
            changes.append(f"removed rule {priority} for {address}")
        links = {link.get_attr("IFLA_IFNAME"): link["index"] for link in ipr.get_links()}
        owned = {w.host_veth for w in wired}
        for name, index in links.items():
            if name.startswith(prefix) and name not in owned:
                with ignoring(errno.ENODEV):
                    ipr.link("del", index=index)
                changes.append(f"removed stale veth {name}")
        for address, wiring in wanted.items():
            host = links.get(wiring.host_veth)
            if host is None:
                continue
            ipr.route("replace", dst=f"{address}/32", oif=host, scope=SCOPE_LINK)
            with ignoring(errno.EEXIST):
                ipr.rule(
                    "add",
                    family=AF_INET,
                    priority=RULE_TO_POD,
                    dst=address,
                    dst_len=32,
                    table=MAIN_TABLE,
                )
            if wiring.table != MAIN_TABLE:
                with ignoring(errno.EEXIST):
                    ipr.rule(
                        "add",
                        family=AF_INET,
                        priority=RULE_FROM_POD,
                        src=address,
                        src_len=32,
                        table=wiring.table,
                    )
        return changes

    def host_veths(self) -> set[str]:
        return self._thread.run(self._host_veths)

    def _host_veths(self) -> set[str]:
        """Names of the pod veths on the node that are up with their pod end (a veth left
        half-made by a crashed ADD is not)."""
        prefix = self.settings.veth_prefix
        links = self.ipr.get_links()
        return {
            str(link.get_attr("IFLA_IFNAME"))
            for link in links
            if str(link.get_attr("IFLA_IFNAME")).startswith(prefix)
            and link.get_attr("IFLA_OPERSTATE") == "UP"
        }

    def pod_routes(self) -> dict[IPv4Address, str]:
        return self._thread.run(self._pod_routes)

    def _pod_routes(self) -> dict[IPv4Address, str]:
        """Read only: address -> veth for every main-table ``/32`` scope-link route to an up
        pod veth (what ADD creates with rules 512 and 1536; converge does not run first)."""
        prefix = self.settings.veth_prefix
        veths = {
            int(link["index"]): str(link.get_attr("IFLA_IFNAME"))
            for link in self.ipr.get_links()
            if str(link.get_attr("IFLA_IFNAME")).startswith(prefix)
            and link.get_attr("IFLA_OPERSTATE") == "UP"
        }
        routed: dict[IPv4Address, str] = {}
        for route in self.ipr.get_routes(family=AF_INET, table=MAIN_TABLE):
            oif = route.get_attr("RTA_OIF")
            dst = route.get_attr("RTA_DST")
            if route["dst_len"] == 32 and dst is not None and oif in veths:
                routed[IPv4Address(dst)] = veths[oif]
        return routed

    # -- helpers --------------------------------------------------------------------------------

    def _link_by_mac(self, mac: str) -> int | None:
        for link in self.ipr.get_links():
            if str(link.get_attr("IFLA_ADDRESS")).lower() == mac.lower():
                return int(link["index"])
        return None

    def _iptables(self, *args: str) -> str:
        command = ["iptables", "-w", *args]
        if self.node_netns:
            command = ["ip", "netns", "exec", self.node_netns, *command]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise HostNetworkError(
                f"iptables {' '.join(args)} failed: {done.stderr.strip()}; is iptables installed "
                "and are we root in the node's namespace?"
            )
        return done.stdout

    def _flush_chain(self, table: str, chain: str) -> None:
        existing = self._iptables("-t", table, "-S").splitlines()
        if f"-N {chain}" in existing:
            self._iptables("-t", table, "-F", chain)
        else:
            self._iptables("-t", table, "-N", chain)

    def _delete_all(self, table: str, chain: str, rule: list[str]) -> None:
        while True:
            command = ["iptables", "-w", "-t", table, "-D", chain, *rule]
            if self.node_netns:
                command = ["ip", "netns", "exec", self.node_netns, *command]
            if subprocess.run(command, capture_output=True, check=False).returncode != 0:
                return

    def close(self) -> None:
        if self._ipr is not None:
            self._ipr.close()
            self._ipr = None
