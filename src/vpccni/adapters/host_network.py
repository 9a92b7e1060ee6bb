"""The node's host networking (upstream section 7), idempotent, in the node's namespace.

* Node (``setup_node``, at start and again when the VPC's CIDR blocks change): primary ENI link
  MTU; rule ``fwmark 0x80/0x80 lookup main`` (1024; without it only with external SNAT and no
  node-port support); rules ``to <cidr> lookup main`` (1535) for ``AWS_EXTERNAL_SERVICE_CIDRS``,
  others at 1535 removed; the iptables rules of ``vpccni.adapters.node_rules`` (SNAT, connmark,
  NodePort marks), converged in one transaction; upstream's nftables ``table ip aws-cni`` and
  stale ``AWS-*-CHAIN-1..n`` chains removed (logged). Rules are added and deleted one by one,
  never deleted to be re-added, so repeating it leaves no gap.
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
import logging
from collections.abc import Callable, Sequence
from ipaddress import IPv4Address, IPv4Network
from typing import TYPE_CHECKING, Any, TypeVar

from vpccni.adapters.eni_links import (
    HostNetworkError,
    converge_eni_rules,
    remove_eni_link,
    setup_eni_link,
)
from vpccni.adapters.link_names import up_links
from vpccni.adapters.netlink_kit import (
    AF_INET,
    SCOPE_LINK,
    NetlinkThread,
    drop_stale_replies,
    ignoring,
    netns_path,
)
from vpccni.adapters.node_rules import (
    UPSTREAM_NFT_TABLE,
    Iptables,
    converge,
    remove_upstream_nft_table,
    wanted_rules,
)
from vpccni.adapters.pyroute2_lean import IPRoute, NetlinkError
from vpccni.core.naming import (
    MAIN_TABLE,
    RULE_FROM_POD,
    RULE_FWMARK,
    RULE_TO_POD,
)
from vpccni.ports import EniLink, HostChanges, PodWiring

if TYPE_CHECKING:
    from vpccni.settings import DatapathSettings

RULE_EXTERNAL_SERVICE = 1535
"""``to <AWS_EXTERNAL_SERVICE_CIDRS entry> lookup main``: ahead of the pods' 1536 rules."""
T = TypeVar("T")
log = logging.getLogger("vpccni.ipamd")
__all__ = ["HostNetworkError", "NetlinkHostNetwork"]


class NetlinkHostNetwork:
    """Implements ``vpccni.ports.HostNetwork``."""

    def __init__(self, node_netns: str | None, settings: DatapathSettings) -> None:
        self.node_netns = node_netns
        self.settings = settings
        self._ipr: Any = None
        self._thread = NetlinkThread(node_netns)
        self._iptables = Iptables(node_netns)

    def _run(self, call: Callable[[], T]) -> T:
        """``call`` on the adapter's netlink thread, then the replies pyroute2 parked dropped."""

        def then_drop() -> T:
            try:
                return call()
            finally:
                if self._ipr is not None:
                    drop_stale_replies(self._ipr)

        return self._thread.run(then_drop)

    @property
    def ipr(self) -> Any:
        if self._ipr is None:
            self._ipr = IPRoute(netns=netns_path(self.node_netns)) if self.node_netns else IPRoute()
        return self._ipr

    # -- node -----------------------------------------------------------------------------------

    def setup_node(self, primary: EniLink, vpc_cidrs: Sequence[IPv4Network]) -> None:
        """Converge the node's own networking; safe to repeat (the VPC CIDR refresh does):
        rules are added and removed, never deleted to be re-added, and the iptables rules
        change in one transaction."""

        def setup() -> None:
            try:
                self._setup_node(primary, vpc_cidrs)
            except (NetlinkError, OSError) as error:
                raise HostNetworkError(
                    f"setting up the node's networking (primary ENI {primary.mac}) failed: {error}"
                ) from None

        self._run(setup)

    def _setup_node(self, primary: EniLink, vpc_cidrs: Sequence[IPv4Network]) -> None:
        index = self._link_by_mac(primary.mac)
        if index is None:
            raise HostNetworkError(
                f"the primary ENI's link (MAC {primary.mac}) is not in the node's network "
                "namespace; is this the node's namespace (--netns / --host-datapath)?"
            )
        self.ipr.link("set", index=index, mtu=self.settings.mtu)
        name = str(self.ipr.get_links(index)[0].get_attr("IFLA_IFNAME"))
        self._remove_upstream_nft_table()
        mark = self.settings.connmark
        fwmark = {"fwmark": mark, "fwmask": mark, "table": MAIN_TABLE}
        external, node_port = self.settings.external_snat, self.settings.node_port_support
        self._converge_rules(RULE_FWMARK, [fwmark] if not external or node_port else [])
        services = self.settings.external_service_cidrs or ()
        self._converge_rules(
            RULE_EXTERNAL_SERVICE,
            [
                {"dst": str(c.network_address), "dst_len": c.prefixlen, "table": MAIN_TABLE}
                if c.prefixlen
                else {"table": MAIN_TABLE}  # 0.0.0.0/0: the kernel lists no destination
                for c in services
            ],
        )
        wanted = wanted_rules(self.settings, primary.primary_ip, name, vpc_cidrs)
        for change in converge(self._iptables, wanted):
            log.info("host networking: %s", change)

    def _converge_rules(self, priority: int, wanted: list[dict[str, Any]]) -> None:
        """Make the IPv4 rules at ``priority`` exactly ``wanted`` (fields as pyroute2 takes
        them): missing ones added, others deleted; a wanted rule is never deleted first."""
        have = []
        for rule in self.ipr.get_rules(family=AF_INET, priority=priority):
            fields = {
                "fwmark": rule.get_attr("FRA_FWMARK"),
                "fwmask": rule.get_attr("FRA_FWMASK"),
                "dst": rule.get_attr("FRA_DST"),
                "dst_len": rule["dst_len"],
                "src": rule.get_attr("FRA_SRC"),
                "src_len": rule["src_len"],
                "table": rule.get_attr("FRA_TABLE") or rule["table"],
            }
            have.append({k: v for k, v in fields.items() if v is not None and v != 0})
        wanted = [{k: v for k, v in w.items() if v is not None and v != 0} for w in wanted]
        for fields in have:
            if fields not in wanted:
                with ignoring(errno.ENOENT, errno.ESRCH):
                    self.ipr.rule("del", family=AF_INET, priority=priority, **fields)
        for fields in wanted:
            if fields not in have:
                with ignoring(errno.EEXIST):
                    self.ipr.rule("add", family=AF_INET, priority=priority, **fields)

    def _remove_upstream_nft_table(self) -> None:
        try:
            removed = remove_upstream_nft_table()
        except (NetlinkError, OSError) as error:
            log.warning(
                "cannot read the node's nftables to look for upstream's table ip %s: %s; if "
                "aws-node ran here on an nftables host, delete it (nft delete table ip %s)",
                UPSTREAM_NFT_TABLE,
                error,
                UPSTREAM_NFT_TABLE,
            )
            return
        if removed:
            log.warning(
                "host networking: removed upstream's nftables table ip %s (aws-node's connmark "
                "rules: left, they would mark pod traffic a second time)",
                UPSTREAM_NFT_TABLE,
            )

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

        return self._run(setup)

    def _setup_eni(self, eni: EniLink) -> bool:
        if eni.device_index == 0:
            return True
        index = self._link_by_mac(eni.mac)
        if index is None:
            return False
        setup_eni_link(self.ipr, eni, index, self.settings.mtu)
        return True

    def remove_eni(self, eni: EniLink, *, flush_table: bool) -> HostChanges:
        return self._run(
            lambda: remove_eni_link(self.ipr, eni, self._link_by_mac(eni.mac), flush_table)
        )

    def converge_enis(self, enis: Sequence[EniLink]) -> HostChanges:
        return self._run(lambda: converge_eni_rules(self.ipr, enis))

    # -- pods -----------------------------------------------------------------------------------

    def converge_pods(self, wired: Sequence[PodWiring]) -> list[str]:
        return self._run(lambda: self._converge_pods(wired))

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
        return self._run(self._host_veths)

    def _host_veths(self) -> set[str]:
        """Names of the pod veths on the node that are up with their pod end (a veth left
        half-made by a crashed ADD is not). Read without pyroute2 (``link_names``): the pod
        sweep asks every tick, and pyroute2's decoded dump is ~28 kB of cyclic garbage per
        link."""
        return up_links(self.settings.veth_prefix)

    def pod_routes(self) -> dict[IPv4Address, str]:
        return self._run(self._pod_routes)

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

    def close(self) -> None:
        if self._ipr is not None:
            self._ipr.close()
            self._ipr = None
