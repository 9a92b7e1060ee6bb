"""The daemon's datapath: pod wiring on ADD/DEL/CHECK and host networking for ENIs.

Plugs the ``PodNetwork`` and ``HostNetwork`` ports into the IPAM service. Rules: an ENI joins
the pool only once its host networking is configured; an ENI that leaves the pool (freed, or
dropped by reconcile) loses its rule, its table's routes, its connected route and address at
once - a deletion that fails is logged, counted (``awscni_ipamd_error_count{fn=
"datapathRemoveEni"}``) and retried on every later ``retry_removals`` until it succeeds; a
failed ADD releases the address it took; DEL tears down what it can and always releases; on
start-up (and after a crash) host routes, rules and veths converge to the assignments in the
checkpoint and ENI rules and tables to the pool's ENIs. A secondary ENI is configured from its own
subnet (``subnet_of``: IMDS ``subnet-ipv4-cidr-block`` of its MAC, as upstream), not the node's:
under custom networking or subnet discovery it sits in another subnet with another gateway.

The VPC's CIDR blocks can change while the node runs (AssociateVpcCidrBlock): as upstream,
``follow_vpc_cidrs`` re-reads them from IMDS every 30 s on the daemon's clock and, when they
changed, converges the node's rules to them (SNAT exclusions, connmark RETURN rules; the host
adapter changes them in one transaction). An empty answer is never applied: it would SNAT
traffic inside the VPC.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network

from vpccni.core.aws_types import CloudError, InstanceIdentity
from vpccni.core.model import Assignment, EniInfo, PodKey, PodMeta
from vpccni.core.naming import host_veth_name, route_table
from vpccni.daemon.recover import is_held_by_route
from vpccni.daemon.service import IpamService
from vpccni.errors import VpccniError
from vpccni.ports import (
    EniLink,
    HostChanges,
    HostNetwork,
    Imds,
    Metrics,
    NullMetrics,
    PodNamespace,
    PodNetwork,
    PodWiring,
    WiredInterfaces,
)

log = logging.getLogger("vpccni.ipamd")


@dataclass
class Datapath:
    """Pod and host networking for one node."""

    pods: PodNetwork
    host: HostNetwork
    subnet: IPv4Network
    mtu: int = 9001
    veth_prefix: str = "eni"
    metrics: Metrics = field(default_factory=NullMetrics)
    subnet_of: Callable[[str], IPv4Network | None] | None = None
    """The CIDR of a secondary ENI's own subnet by MAC, None while unknown (``imds_subnets``);
    without it every ENI is taken to be in ``subnet``, the node's."""
    node_link: Callable[[], tuple[EniLink, tuple[IPv4Network, ...]]] | None = None
    """The primary ENI and the VPC's CIDR blocks as IMDS lists them now (``imds_node``);
    without it ``follow_vpc_cidrs`` does nothing."""
    vpc_cidr_seconds: float = 30.0
    """How often ``follow_vpc_cidrs`` re-reads the VPC's CIDR blocks (upstream: 30 s)."""
    _vpc_cidrs: tuple[IPv4Network, ...] | None = field(default=None, init=False)
    _cidrs_read_at: float | None = field(default=None, init=False)
    _subnets: dict[str, IPv4Network] = field(default_factory=dict, init=False)
    """The subnet CIDRs ``subnet_of`` gave, by MAC (an ENI never changes subnet)."""
    _enis: dict[str, EniLink] = field(default_factory=dict, init=False)
    """Secondary ENIs whose host networking is configured, by MAC."""
    _removals: dict[str, EniLink] = field(default_factory=dict, init=False)
    """ENIs that left the pool with host state not yet deleted, by MAC."""
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def wiring(
        self,
        key: PodKey,
        meta: PodMeta,
        netns: str,
        address: IPv4Address,
        eni: EniInfo,
        *,
        mtu: int | None = None,
        pod: PodNamespace | None = None,
    ) -> PodWiring:
        """The wiring of one pod interface; ``netns`` labels it, ``pod`` reaches it (ADD and
        CHECK: the descriptors the plugin passed; None from the node's side)."""
        veth = (
            key.container_id  # an address held for an unknown pod: the veth routing it
            if is_held_by_route(key)
            else host_veth_name(
                meta.namespace, meta.name, key.container_id, key.ifname, self.veth_prefix
            )
        )
        return PodWiring(
            netns, key.ifname, veth, address, route_table(eni.device_index), mtu or self.mtu, pod
        )

    def wire(self, wiring: PodWiring) -> WiredInterfaces:
        return self.pods.setup(wiring)

    def veth_exists(self, host_veth: str) -> bool:
        """The pod's host veth exists, up or down: its peer sits in the pod's namespace, which
        therefore still exists (the kernel deletes the pair with the namespace)."""
        return self.pods.veth_exists(host_veth)

    def node_netns_id(self) -> tuple[int, int]:
        """(st_dev, st_ino) of the node's network namespace, where no pod may be wired."""
        return self.pods.node_netns_id()

    def unwire(self, wiring: PodWiring) -> None:
        try:
            self.pods.teardown(wiring)
        except Exception as error:  # DEL never fails; converge_pods cleans up later
            log.warning("teardown of %s left something behind: %s", wiring.host_veth, error)

    def check(self, wiring: PodWiring) -> list[str]:
        return self.pods.check(wiring)

    def eni_ready(self, mac: str, primary_ip: IPv4Address, device_index: int) -> bool:
        """Configure an ENI's host networking; False while its link has not appeared or when a
        change failed (logged and counted; the engine retries)."""
        subnet = self._subnet_of(mac, device_index)
        if subnet is None:
            return False  # IMDS does not list it yet: asked again with the link
        link = EniLink(mac, primary_ip, subnet, device_index)
        with self._lock:
            try:
                ready = self.host.setup_eni(link)
            except VpccniError as error:
                self._failed("datapathSetupEni", [str(error)])
                return False
            if ready and device_index != 0:
                self._enis[mac.lower()] = link
                self._removals.pop(mac.lower(), None)  # the same ENI is back (re-adopted)
            return ready

    def eni_removed(self, mac: str, primary_ip: IPv4Address, device_index: int) -> bool:
        """The ENI left the pool: delete its host networking now. False when a deletion
        failed: logged, counted and retried by ``retry_removals``."""
        if device_index == 0:
            return True
        with self._lock:
            linked = self._enis.pop(mac.lower(), None)
            subnet = linked.subnet if linked else self._subnets.get(mac.lower(), self.subnet)
            self._removals[mac.lower()] = EniLink(mac, primary_ip, subnet, device_index)
            return self._remove_pending()

    def _subnet_of(self, mac: str, device_index: int) -> IPv4Network | None:
        if self.subnet_of is None or device_index == 0:
            return self.subnet
        known = self._subnets.get(mac.lower())
        if known is None:
            known = self.subnet_of(mac)
            if known is not None:
                self._subnets[mac.lower()] = known
        return known

    def retry_removals(self) -> bool:
        """Retry the deletions that failed before; True when none is left."""
        with self._lock:
            return self._remove_pending()

    def pending_removals(self) -> list[EniLink]:
        with self._lock:
            return list(self._removals.values())

    def _remove_pending(self) -> bool:
        for mac, link in list(self._removals.items()):
            tables = {e.device_index for e in self._enis.values()}
            changes = self.host.remove_eni(link, flush_table=link.device_index not in tables)
            for change in changes.done:
                log.info("ENI %s left the pool: removed %s", link.mac, change)
            if changes.failed:
                self._failed("datapathRemoveEni", changes.failed, link)
            else:
                del self._removals[mac]
        return not self._removals

    def _failed(
        self, fn: str, failures: list[str] | tuple[str, ...], link: EniLink | None = None
    ) -> None:
        for failure in failures:
            self.metrics.error(fn)
            if link is None:
                log.error("%s failed: %s; retried later", fn, failure)
            else:
                log.error(
                    "ENI %s (%s, device %d) left the pool but deleting its %s failed; "
                    "retried on the next sweep",
                    link.mac,
                    link.primary_ip,
                    link.device_index,
                    failure,
                )

    def follow_vpc_cidrs(self, now: float) -> bool:
        """Re-read the VPC's CIDR blocks when ``vpc_cidr_seconds`` have passed on the daemon's
        clock since the last read (at once on the first call, or when the clock stepped back);
        when they differ from those last applied, converge the node's rules to them. True when
        the rules were applied. A failure is logged (and counted) and tried at the next read."""
        last = self._cidrs_read_at
        if self.node_link is None or (last is not None and 0 <= now - last < self.vpc_cidr_seconds):
            return False
        self._cidrs_read_at = now
        try:
            primary, cidrs = self.node_link()
        except CloudError as error:
            log.warning(
                "reading the VPC's CIDR blocks from IMDS failed: %s; tried again in %g s",
                error,
                self.vpc_cidr_seconds,
            )
            return False
        if not cidrs:
            log.warning(
                "IMDS lists no CIDR block for the VPC; SNAT exclusions kept as they are, read "
                "again in %g s",
                self.vpc_cidr_seconds,
            )
            return False
        if cidrs == self._vpc_cidrs:
            return False
        try:
            self.host.setup_node(primary, cidrs)
        except VpccniError as error:
            self._failed("datapathVpcCidrs", [str(error)])
            return False
        blocks = ", ".join(str(c) for c in cidrs)
        if self._vpc_cidrs is None:
            log.info("SNAT exclusions follow the VPC's CIDR blocks: %s", blocks)
        else:
            log.info("the VPC's CIDR blocks are now %s: SNAT and connmark rules updated", blocks)
        self._vpc_cidrs = cidrs
        return True

    def converge_enis(self) -> HostChanges:
        """Delete ENI rules and tables of ENIs the pool does not have (start-up)."""
        with self._lock:
            changes = self.host.converge_enis(list(self._enis.values()))
            for change in changes.done:
                log.info("datapath converge: removed %s", change)
            self._failed("datapathConvergeEnis", changes.failed)
            return changes

    def converge(self, service: IpamService) -> list[str]:
        """Make host routes, rules and veths match the datastore's assignments.

        As upstream at start-up, an assignment whose pod veth is missing (or left down by a
        crashed ADD) is released: its ADD never completed (the runtime saw it fail and will not
        use the address) or the pod is gone.
        """
        veths = self.host.host_veths()
        with service.lock:
            orphans = [
                a
                for a in service.datastore.assignments()
                if self._wiring_of(service, a).host_veth not in veths
            ]
        for assignment in orphans:
            log.info(
                "datapath converge: %s has no veth; released %s", assignment.key, assignment.address
            )
            service.delete(assignment.key)
        with service.lock:
            wired = [self._wiring_of(service, a) for a in service.datastore.assignments()]
        changes = self.host.converge_pods(wired)
        for change in changes:
            log.info("datapath converge: %s", change)
        return changes + list(self.converge_enis().done)

    def wiring_of(self, service: IpamService, assignment: Assignment) -> PodWiring:
        """The wiring an assignment has (its namespace unknown)."""
        return self._wiring_of(service, assignment)

    def _wiring_of(self, service: IpamService, assignment: Assignment) -> PodWiring:
        eni = service.datastore.eni_of(assignment.address)
        return self.wiring(assignment.key, assignment.meta, "", assignment.address, eni)


def imds_node(imds: Imds) -> Callable[[], tuple[EniLink, tuple[IPv4Network, ...]]]:
    """``Datapath.node_link`` from the instance metadata: the primary ENI (MAC and address, read
    once) with its subnet and the VPC's CIDR blocks (``vpc-ipv4-cidr-blocks``), read per call.
    Raises ``CloudError`` when IMDS fails or does not list the primary interface."""
    identity: list[InstanceIdentity] = []

    def node_link() -> tuple[EniLink, tuple[IPv4Network, ...]]:
        if not identity:
            identity.append(imds.identity())
        mac, address = identity[0].primary_mac, identity[0].local_ipv4
        found = next((i for i in imds.interfaces() if i.mac.lower() == mac.lower()), None)
        if found is None or found.subnet_cidr is None:
            raise CloudError(f"IMDS does not list the primary interface {mac} with its subnet")
        return EniLink(mac, address, found.subnet_cidr, 0), found.vpc_cidrs

    return node_link


def imds_subnets(imds: Imds) -> Callable[[str], IPv4Network | None]:
    """``Datapath.subnet_of`` from the instance metadata: the ``subnet-ipv4-cidr-block`` of the
    interface with the MAC; None while IMDS does not list it (or fails: logged, asked again)."""

    def subnet_of(mac: str) -> IPv4Network | None:
        try:
            interfaces = imds.interfaces()
        except CloudError as error:
            log.warning("reading ENI %s's subnet from IMDS failed: %s; retried", mac, error)
            return None
        found = next((i for i in interfaces if i.mac.lower() == mac.lower()), None)
        if found is not None and found.subnet_cidr is None:
            log.warning("IMDS lists ENI %s without subnet-ipv4-cidr-block; retried", mac)
        return None if found is None else found.subnet_cidr

    return subnet_of
