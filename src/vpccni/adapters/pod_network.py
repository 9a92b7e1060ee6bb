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
(1536). Setup replaces what a crashed attempt left, or the pod end of a pair an earlier DEL is
still deleting in the background (a runtime may reuse the namespace at once): when the pair
cannot be created for a name in use, both names are deleted - one that vanishes meanwhile, the
background deletion having come first, is gone all the same - and it is created again. A
failure undoes what this attempt made.
Teardown (from the node side: deleting the host veth deletes the pair) is idempotent and comes
in two parts for DEL: ``unroute`` (rules - the 1536 one in whatever table - and the /32 route)
and ``delete_link`` (the host veth by index, on a teardown worker, in the background); CHECK
reads the pod side through the pod's socket too. The work runs on worker threads
(``NetlinkWorkers``) that live in the node's namespace (with ``--netns`` each enters it once),
where the host veth's settings are, each with a node socket of its own kept open; pods are
wired in parallel, and the caller keeps apart calls for one veth name or address. When
``/proc/sys`` cannot be written (an unprivileged container mounts it read-only) the pod is wired
without them, with one warning per daemon naming the cause.

Descriptors: the request owns the ``PodNamespace`` descriptors and closes each once. pyroute2
(0.9.7) closes a descriptor given as ``IPRoute(fileno=...)`` itself at construction, keeping a
duplicate that its ``close`` releases; so it is handed a duplicate of ours (``_pod_side``).
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Any

from vpccni.adapters.netlink_kit import (
    AF_INET,
    GONE,
    NUD_PERMANENT,
    SCOPE_LINK,
    Attempts,
    NetlinkWorkers,
    default_workers,
    ignoring,
    netns_path,
    write_sysctl,
)
from vpccni.adapters.pyroute2_lean import IPRoute, NetlinkError
from vpccni.core.naming import GATEWAY, MAIN_TABLE, RULE_FROM_POD, RULE_TO_POD
from vpccni.errors import VpccniError
from vpccni.ports import PodNamespace, PodWiring, WiredInterfaces

log = logging.getLogger("vpccni.ipamd")
HOST_VETH_SYSCTLS = (("accept_ra", "0"), ("accept_redirects", "1"), ("forwarding", "0"))
"""Upstream's ``net/ipv6/conf/<host veth>/*`` settings, made before the veth goes up."""


class WiringError(VpccniError):
    """A pod's links, routes or rules could not be set up."""


class NetlinkPodNetwork:
    """Implements ``vpccni.ports.PodNetwork`` with pyroute2; DEL comes in two parts
    (``unroute`` now, ``delete_link`` in the background).

    ``workers`` wiring threads (default :func:`default_workers`) serve ADD, CHECK and the
    synchronous part of DEL; as many teardown threads delete host veths, so that a slow veth
    deletion (~20 ms of kernel time) never queues ahead of a pod being wired. Every thread has
    its own node-namespace socket. Calls for different pods run in parallel; the caller
    (``Datapath``) keeps calls for the same host veth or address apart.
    """

    def __init__(self, node_netns: str | None, workers: int | None = None) -> None:
        self.node_netns = netns_path(node_netns) if node_netns else None
        self._node_id: tuple[int, int] | None = None
        count = workers or default_workers()
        self._wiring = NetlinkWorkers(self.node_netns, count, "wiring")
        self._deleters = NetlinkWorkers(self.node_netns, count, "teardown")
        self._sysctl_warned = False

    def setup(self, wiring: PodWiring) -> WiredInterfaces:
        return self._wiring.run(lambda node: self._setup_or_undo(node, wiring))

    def _setup_or_undo(self, node: Any, wiring: PodWiring) -> WiredInterfaces:
        try:
            return self._setup(node, wiring)
        except (NetlinkError, OSError) as error:
            self._teardown(node, wiring)
            raise WiringError(
                f"wiring {wiring.ifname} in {wiring.netns} with {wiring.address} failed: "
                f"{error}; everything this ADD created was removed"
            ) from None

    def _setup(self, node: Any, wiring: PodWiring) -> WiredInterfaces:
        if wiring.pod is None:
            raise WiringError(f"wiring {wiring.ifname} needs the pod's namespace descriptors")
        with _pod_side(wiring.pod) as pod:
            peer = {"ifname": wiring.ifname, "net_ns_fd": wiring.pod.netns_fd, "mtu": wiring.mtu}
            veth = {"ifname": wiring.host_veth, "kind": "veth", "mtu": wiring.mtu, "peer": peer}
            try:
                node.link("add", **veth)
            except NetlinkError as error:
                if error.code != errno.EEXIST:
                    raise
                # A name in use: left by a crashed ADD, or the pod end of a pair an earlier
                # DEL is still deleting in the background (a namespace reused after DEL, as
                # podman's disconnect/connect does). Both names go - whichever deletion comes
                # first, ours or the background one - then the pair again.
                _delete_named(node, wiring.host_veth)
                _delete_named(pod, wiring.ifname)
                node.link("add", **veth)
            host_index, host_mac = _index_and_mac(node, wiring.host_veth)
            pod_index, pod_mac = _index_and_mac(pod, wiring.ifname)
            self._tune_host_veth(wiring.host_veth)
            node.link("set", index=host_index, state="up")
            pod.link("set", index=pod_index, state="up")
            pod.addr("add", index=pod_index, address=str(wiring.address), prefixlen=32)
            pod.route("replace", dst=f"{GATEWAY}/32", oif=pod_index, scope=SCOPE_LINK)
            pod.route("replace", dst="0.0.0.0/0", gateway=GATEWAY, oif=pod_index)
            pod.neigh(
                "replace", dst=GATEWAY, lladdr=host_mac, ifindex=pod_index, state=NUD_PERMANENT
            )
        node.route("replace", dst=f"{wiring.address}/32", oif=host_index, scope=SCOPE_LINK)
        for rule in _pod_rules(wiring):
            with ignoring(errno.EEXIST):
                node.rule("add", family=AF_INET, **rule)
        return WiredInterfaces(wiring.host_veth, host_mac, pod_mac)

    def _tune_host_veth(self, veth: str) -> None:
        """Upstream's IPv6 settings on the host veth (on a worker in the node namespace)."""
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

    def _teardown(self, node: Any, wiring: PodWiring) -> None:
        """Everything a failed ADD created, at once, on the worker: rules, route, host veth."""
        index, failed = self._unroute(node, wiring, address=True)
        if index is not None:
            with ignoring(*GONE):
                node.link("del", index=index)
        if failed:
            raise WiringError(f"removing {wiring.host_veth}'s {'; '.join(failed)}")

    def unroute(self, wiring: PodWiring, *, address: bool) -> tuple[int | None, list[str]]:
        """DEL's synchronous part, from the node's side: with ``address``, the pod's rules
        (512, and 1536 in whatever table) and its ``/32`` route in main. Returns the host
        veth's index (None when it is gone) and what could not be deleted ("what: why")."""
        return self._wiring.run(lambda node: self._unroute(node, wiring, address=address))

    def _unroute(
        self, node: Any, wiring: PodWiring, *, address: bool
    ) -> tuple[int | None, list[str]]:
        indexes = node.link_lookup(ifname=wiring.host_veth)
        if not address:
            return (indexes[0] if indexes else None), []
        pod = str(wiring.address)
        attempts = Attempts()
        to_pod = {"dst": pod, "dst_len": 32, "table": MAIN_TABLE, "priority": RULE_TO_POD}
        attempts.attempt(f"rule 'to {pod}'", lambda: node.rule("del", family=AF_INET, **to_pod))
        from_pod = {"src": pod, "src_len": 32, "priority": RULE_FROM_POD}  # any table
        attempts.attempt(
            f"rules 'from {pod}'",
            lambda: _delete_all(lambda: node.rule("del", family=AF_INET, **from_pod)),
        )
        attempts.attempt(  # with its scope: a delete without it matches nothing (ESRCH)
            f"route {pod}/32",
            lambda: node.route("del", dst=f"{pod}/32", table=MAIN_TABLE, scope=SCOPE_LINK),
        )
        return (indexes[0] if indexes else None), attempts.failed

    def delete_link(self, index: int) -> Future[None]:
        """Delete the host veth with ``index`` (its pair goes with it) on a teardown worker;
        the future is done when it is gone (already gone counts)."""
        return self._deleters.submit(lambda node: _delete_link(node, index))

    def check(self, wiring: PodWiring) -> list[str]:
        """Every way the pod's networking differs from what ADD set up ([] when intact)."""
        return self._wiring.run(lambda node: self._check(node, wiring))

    def _check(self, node: Any, wiring: PodWiring) -> list[str]:
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
        return self._wiring.run(lambda node: bool(node.link_lookup(ifname=host_veth)))

    def node_netns_id(self) -> tuple[int, int]:
        """(st_dev, st_ino) of the node namespace (``--netns`` or this process's own)."""
        if self._node_id is None:
            stat = os.stat(self.node_netns or "/proc/self/ns/net")
            self._node_id = (stat.st_dev, stat.st_ino)
        return self._node_id

    def close(self) -> None:
        """Finish queued work (pending veth deletions included) and close the sockets."""
        self._wiring.close()
        self._deleters.close()


def _index_and_mac(ipr: Any, name: str) -> tuple[int, str]:
    """A link's index and MAC address, in one request."""
    [link] = ipr.link("get", ifname=name)
    return int(link["index"]), str(link.get_attr("IFLA_ADDRESS"))


def _pod_rules(wiring: PodWiring) -> list[dict[str, Any]]:
    address = str(wiring.address)
    rules: list[dict[str, Any]] = [
        {"dst": address, "dst_len": 32, "table": MAIN_TABLE, "priority": RULE_TO_POD}
    ]
    if wiring.table != MAIN_TABLE:
        rules.append(
            {"src": address, "src_len": 32, "table": wiring.table, "priority": RULE_FROM_POD}
        )
    return rules


def _deleted(delete: Callable[[], object]) -> bool:
    """True when ``delete`` removed something, False when there was nothing (ENOENT)."""
    try:
        delete()
    except NetlinkError as error:
        if error.code in (errno.ENOENT, errno.ESRCH):
            return False
        raise
    return True


def _delete_all(delete: Callable[[], object]) -> None:
    """Repeat a deletion that matches one object at a time until nothing matches."""
    for _ in range(MAX_MATCHES):
        if not _deleted(delete):
            return


MAX_MATCHES = 16
"""A deletion is repeated at most this often (rules of one pod in several tables)."""


def _delete_link(node: Any, index: int) -> None:
    with ignoring(*GONE):  # gone already: e.g. an ADD reusing the namespace deleted its peer
        node.link("del", index=index)


def _delete_named(ipr: Any, name: str) -> None:
    """Delete the link called ``name`` (and its veth peer) if there is one; a link that
    vanishes between lookup and deletion (a pending background deletion won) is gone too."""
    for index in ipr.link_lookup(ifname=name):
        with ignoring(*GONE):
            ipr.link("del", index=index)


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
