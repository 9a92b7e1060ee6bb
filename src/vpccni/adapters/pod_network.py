"""Pod wiring over netlink (pyroute2), upstream's layout, in the node's network namespace.

The daemon never enters a pod's namespace: the plugin passes it as two file descriptors
(``PodNamespace``: the namespace and a ``NETLINK_ROUTE`` socket created inside it), so
``CAP_NET_ADMIN`` is all wiring needs - no ``setns``, no netns paths, no helper process. For a
pod interface: the veth is created in the node namespace with its peer placed directly in the
pod's namespace through the namespace descriptor (no move, which costs ~19 ms); the pod side is
configured through the pod's netlink socket: ``eth0`` up with the pod's /32, a link-scope route
to 169.254.1.1 and the default route via it, and a permanent neighbour entry for 169.254.1.1
with the host veth's MAC; node side: before the host veth goes up, upstream's IPv6 settings on it
(``accept_ra=0``, so a pod cannot configure the node with router advertisements,
``accept_redirects=1``, ``forwarding=0``; absent keys - IPv6 disabled - are skipped as upstream
skips them), then the host veth up, a /32 route to the pod in ``main``, rule
``to <pod> lookup main`` (512) and, for pods on a secondary ENI, ``from <pod> lookup <table>``
(1536). Setup replaces what a crashed attempt left; a failure undoes what this attempt made.
Teardown (from the node side: deleting the host veth deletes the pair) is idempotent; CHECK
reads the pod side through the pod's socket too. The node namespace socket stays open (with
``--netns`` it is opened by path once; only pod namespaces come as descriptors). The adapter's
thread lives in the node's namespace (``NetlinkThread``), where the host veth's settings are.
When ``/proc/sys`` cannot be written (an unprivileged container mounts it read-only) the pod is
wired without them, with one warning per daemon naming the cause.

Descriptors: the request owns the ``PodNamespace`` descriptors and closes each once. pyroute2
(0.9.7) closes a descriptor given as ``IPRoute(fileno=...)`` itself at construction, keeping a
duplicate that its ``close`` releases; so it is handed a duplicate of ours (``_pod_side``).
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from vpccni.adapters.netlink_kit import (
    AF_INET,
    NUD_PERMANENT,
    SCOPE_LINK,
    NetlinkThread,
    ignoring,
    netns_path,
    write_sysctl,
)
from vpccni.core.naming import GATEWAY, MAIN_TABLE, RULE_FROM_POD, RULE_TO_POD
from vpccni.errors import VpccniError
from vpccni.ports import PodNamespace, PodWiring, WiredInterfaces

log = logging.getLogger("vpccni.ipamd")
HOST_VETH_SYSCTLS = (("accept_ra", "0"), ("accept_redirects", "1"), ("forwarding", "0"))
"""Upstream's ``net/ipv6/conf/<host veth>/*`` settings, made before the veth goes up."""


class WiringError(VpccniError):
    """A pod's links, routes or rules could not be set up."""


class NetlinkPodNetwork:
    """Implements ``vpccni.ports.PodNetwork`` with pyroute2."""

    def __init__(self, node_netns: str | None) -> None:
        self.node_netns = netns_path(node_netns) if node_netns else None
        self._node: Any = None
        self._node_id: tuple[int, int] | None = None
        self._thread = NetlinkThread(self.node_netns)
        self._sysctl_warned = False

    @property
    def node(self) -> Any:
        if self._node is None:
            self._node = IPRoute(netns=self.node_netns) if self.node_netns else IPRoute()
        return self._node

    def setup(self, wiring: PodWiring) -> WiredInterfaces:
        return self._thread.run(lambda: self._setup_or_undo(wiring))

    def _setup_or_undo(self, wiring: PodWiring) -> WiredInterfaces:
        try:
            return self._setup(wiring)
        except (NetlinkError, OSError) as error:
            self._teardown(wiring)
            raise WiringError(
                f"wiring {wiring.ifname} in {wiring.netns} with {wiring.address} failed: "
                f"{error}; everything this ADD created was removed"
            ) from None

    def _setup(self, wiring: PodWiring) -> WiredInterfaces:
        if wiring.pod is None:
            raise WiringError(f"wiring {wiring.ifname} needs the pod's namespace descriptors")
        node = self.node
        for index in node.link_lookup(ifname=wiring.host_veth):
            node.link("del", index=index)  # left by a crashed ADD or a reused name
        with _pod_side(wiring.pod) as pod:
            for index in pod.link_lookup(ifname=wiring.ifname):
                pod.link("del", index=index)
            peer = {"ifname": wiring.ifname, "net_ns_fd": wiring.pod.netns_fd, "mtu": wiring.mtu}
            node.link("add", ifname=wiring.host_veth, kind="veth", mtu=wiring.mtu, peer=peer)
            [host_index] = node.link_lookup(ifname=wiring.host_veth)
            [pod_index] = pod.link_lookup(ifname=wiring.ifname)
            host_mac = node.get_links(host_index)[0].get_attr("IFLA_ADDRESS")
            self._tune_host_veth(wiring.host_veth)
            node.link("set", index=host_index, state="up")
            pod.link("set", index=pod_index, state="up")
            pod.addr("add", index=pod_index, address=str(wiring.address), prefixlen=32)
            pod.route("replace", dst=f"{GATEWAY}/32", oif=pod_index, scope=SCOPE_LINK)
            pod.route("replace", dst="0.0.0.0/0", gateway=GATEWAY, oif=pod_index)
            pod.neigh(
                "replace", dst=GATEWAY, lladdr=host_mac, ifindex=pod_index, state=NUD_PERMANENT
            )
            pod_mac = pod.get_links(pod_index)[0].get_attr("IFLA_ADDRESS")
        node.route("replace", dst=f"{wiring.address}/32", oif=host_index, scope=SCOPE_LINK)
        self._rules(wiring, "add")
        return WiredInterfaces(wiring.host_veth, host_mac, pod_mac)

    def _tune_host_veth(self, veth: str) -> None:
        """Upstream's IPv6 settings on the host veth (on the thread in the node namespace)."""
        for name, value in HOST_VETH_SYSCTLS:
            try:
                write_sysctl(f"net/ipv6/conf/{veth}/{name}", value)
            except OSError as error:
                if not self._sysctl_warned:
                    self._sysctl_warned = True
                    log.warning(
                        "cannot set net.ipv6.conf.%s.%s=%s on pod host veths (%s): /proc/sys is "
                        "not writable for the daemon; pods are wired without upstream's "
                        "accept_ra=0, accept_redirects=1, forwarding=0 on their host veths, so "
                        "a pod could send router advertisements to the node. Give the daemon a "
                        "writable /proc/sys/net (warned once)",
                        veth,
                        name,
                        value,
                        error.strerror or error,
                    )
                return

    def _rules(self, wiring: PodWiring, command: str) -> None:
        address = str(wiring.address)
        wanted = [{"dst": address, "dst_len": 32, "table": MAIN_TABLE, "priority": RULE_TO_POD}]
        if wiring.table != MAIN_TABLE:
            wanted.append(
                {"src": address, "src_len": 32, "table": wiring.table, "priority": RULE_FROM_POD}
            )
        for rule in wanted:
            if command == "add":
                with ignoring(errno.EEXIST):
                    self.node.rule("add", family=AF_INET, **rule)
            else:
                with ignoring(errno.ENOENT, errno.ESRCH):
                    self.node.rule("del", family=AF_INET, **rule)

    def teardown(self, wiring: PodWiring) -> None:
        self._thread.run(lambda: self._teardown(wiring))

    def _teardown(self, wiring: PodWiring) -> None:
        node = self.node
        self._rules(wiring, "del")
        for rule in node.get_rules(family=AF_INET, priority=RULE_FROM_POD):
            if rule.get_attr("FRA_SRC") == str(wiring.address):
                with ignoring(errno.ENOENT, errno.ESRCH):
                    node.rule(
                        "del",
                        family=AF_INET,
                        priority=RULE_FROM_POD,
                        src=str(wiring.address),
                        src_len=32,
                        table=rule.get_attr("FRA_TABLE"),
                    )
        with ignoring(errno.ESRCH, errno.ENOENT, errno.ENODEV):
            node.route("del", dst=f"{wiring.address}/32", table=MAIN_TABLE)
        for index in node.link_lookup(ifname=wiring.host_veth):
            with ignoring(errno.ENODEV):
                node.link("del", index=index)

    def check(self, wiring: PodWiring) -> list[str]:
        """Every way the pod's networking differs from what ADD set up ([] when intact)."""
        return self._thread.run(lambda: self._check(wiring))

    def _check(self, wiring: PodWiring) -> list[str]:
        node = self.node
        drift: list[str] = []
        address = str(wiring.address)
        hosts = node.link_lookup(ifname=wiring.host_veth)
        if not hosts:
            drift.append(f"host veth {wiring.host_veth} is missing")
        routes = node.get_routes(family=AF_INET, dst=address, dst_len=32, table=MAIN_TABLE)
        if not any(r.get_attr("RTA_OIF") in hosts for r in routes):
            drift.append(f"host route {address}/32 dev {wiring.host_veth} is missing")
        rules = node.get_rules(family=AF_INET)
        if not any(_rule_is(r, RULE_TO_POD, MAIN_TABLE, dst=address) for r in rules):
            drift.append(f"rule 'to {address} lookup main' (priority 512) is missing")
        if wiring.table != MAIN_TABLE and not any(
            _rule_is(r, RULE_FROM_POD, wiring.table, src=address) for r in rules
        ):
            drift.append(f"rule 'from {address} lookup {wiring.table}' (priority 1536) is missing")
        if wiring.pod is None:
            drift.append(f"the pod's namespace {wiring.netns} was not passed to check it")
            return drift
        try:
            with _pod_side(wiring.pod) as pod:
                drift.extend(_check_pod(pod, wiring))
        except (OSError, NetlinkError) as error:
            drift.append(f"cannot read the pod's namespace {wiring.netns}: {error}")
        return drift

    def veth_exists(self, host_veth: str) -> bool:
        return self._thread.run(lambda: bool(self.node.link_lookup(ifname=host_veth)))

    def node_netns_id(self) -> tuple[int, int]:
        """(st_dev, st_ino) of the node namespace (``--netns`` or this process's own)."""
        if self._node_id is None:
            stat = os.stat(self.node_netns or "/proc/self/ns/net")
            self._node_id = (stat.st_dev, stat.st_ino)
        return self._node_id

    def close(self) -> None:
        if self._node is not None:
            self._node.close()
            self._node = None


@contextmanager
def _pod_side(pod: PodNamespace) -> Iterator[Any]:
    """An IPRoute on a duplicate of the pod's netlink socket; ``pod``'s descriptors stay open.

    pyroute2 owns the duplicate from construction on (it closes it there and its own copy in
    ``close``), so each descriptor is closed exactly once. Should construction fail before
    pyroute2 took the duplicate (its event loop could not be made, e.g. out of descriptors),
    the duplicate - still the same socket as ``pod``'s - is closed here.
    """
    duplicate = os.dup(pod.netlink_fd)
    try:
        ipr = IPRoute(fileno=duplicate)
    except Exception:
        if _same_file(duplicate, pod.netlink_fd):
            os.close(duplicate)
        raise
    try:
        yield ipr
    finally:
        ipr.close()


def _same_file(descriptor: int, other: int) -> bool:
    try:
        mine, theirs = os.fstat(descriptor), os.fstat(other)
    except OSError:
        return False
    return (mine.st_dev, mine.st_ino) == (theirs.st_dev, theirs.st_ino)


def _rule_is(rule: Any, priority: int, table: int, *, dst: str = "", src: str = "") -> bool:
    return bool(
        rule.get_attr("FRA_PRIORITY") == priority
        and rule.get_attr("FRA_TABLE") == table
        and (not dst or rule.get_attr("FRA_DST") == dst)
        and (not src or rule.get_attr("FRA_SRC") == src)
    )


def _check_pod(pod: Any, wiring: PodWiring) -> list[str]:
    indexes = pod.link_lookup(ifname=wiring.ifname)
    if not indexes:
        return [f"pod interface {wiring.ifname} is missing"]
    index = indexes[0]
    drift = []
    addresses = [a.get_attr("IFA_ADDRESS") for a in pod.get_addr(index=index, family=AF_INET)]
    if str(wiring.address) not in addresses:
        drift.append(f"{wiring.ifname} does not hold {wiring.address}")
    routes = pod.get_routes(family=AF_INET, table=MAIN_TABLE)
    if not any(r.get("dst_len") == 0 and r.get_attr("RTA_GATEWAY") == GATEWAY for r in routes):
        drift.append(f"the pod's default route via {GATEWAY} is missing")
    return drift
