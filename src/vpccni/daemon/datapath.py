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

Pods are wired in parallel (the pod adapter has several workers), so the datapath keeps apart
what must not overlap - a host veth name (ADD and DEL of the same pod, or of two sandboxes of one
pod: the name is a hash of namespace and name) and an address:

* ADD (``wire``) waits until no DEL is tearing down its host veth or unrouting its address,
  then holds the veth name while it wires. An ADD into a namespace reused right after a DEL of
  another pod (another veth name, same ifname) waits for nothing: the pod adapter deletes the
  old pair's pod end, still pending deletion, itself (either deletion finding it gone is done).
* DEL (``release_pod``) holds the pod's veth name from start to end. It removes the pod's rules
  and route (synchronously), then releases the address durably, answers, and deletes the host
  veth in the background (the ~20 ms of kernel time a veth deletion costs); the name is free
  again once the veth is gone. The route goes before the release is durable, so a daemon killed
  in between never finds the released address routed at its next start (which would adopt it,
  ``recover``), and the veth left behind is removed there as a veth no assignment owns
  (``converge``). A DEL touches an address only while no other pod holds it and a veth only
  while no other pod's wiring has that name (a late DEL of an old sandbox or a repeated DEL
  whose address went to another pod changes nothing of that pod's).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from functools import lru_cache, partial
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


class WiringBusy(VpccniError):
    """An earlier DEL of the pod is still tearing its host veth or address down."""


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
    teardown_wait: float = 30.0
    """How long an ADD waits for an earlier DEL's teardown of its veth or address (and a DEL
    for an ADD wiring its veth) before it gives up (ADD fails; DEL leaves the veth to the next
    start)."""
    _idle: threading.Condition = field(default_factory=threading.Condition, init=False)
    _busy_veths: dict[str, bool] = field(default_factory=dict, init=False)
    """Host veth names an ADD is wiring (False) or a DEL is tearing down (True, until the
    veth is gone)."""
    _busy_addresses: set[IPv4Address] = field(default_factory=set, init=False)
    """Addresses whose rules and route a DEL is removing."""

    def host_veth(self, key: PodKey, meta: PodMeta) -> str:
        """The host veth name of a pod interface (an address held for an unknown pod: the veth
        routing it)."""
        if is_held_by_route(key):
            return key.container_id
        return _veth_name(meta.namespace, meta.name, key.container_id, key.ifname, self.veth_prefix)

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
        return PodWiring(
            netns,
            key.ifname,
            self.host_veth(key, meta),
            address,
            route_table(eni.device_index),
            mtu or self.mtu,
            pod,
        )

    def wire(self, wiring: PodWiring) -> WiredInterfaces:
        """ADD: once no DEL is tearing down the pod's veth name or unrouting its address, wire
        it, holding the veth name meanwhile. Raises ``WiringBusy`` after ``teardown_wait``."""
        veth, address = wiring.host_veth, wiring.address
        with self._idle:
            if not self._idle.wait_for(
                lambda: veth not in self._busy_veths and address not in self._busy_addresses,
                self.teardown_wait,
            ):
                raise WiringBusy(
                    f"host veth {veth} or address {address} is still being torn down by an "
                    f"earlier DEL after {self.teardown_wait:g} s; try again"
                )
            self._busy_veths[veth] = False
        try:
            return self.pods.setup(wiring)
        finally:
            self._free(veth)

    def release_pod(
        self,
        service: IpamService,
        key: PodKey,
        meta: PodMeta,
        prev: Sequence[IPv4Address] = (),
        *,
        only_if: Callable[[Assignment | None], bool] | None = None,
    ) -> Assignment | None:
        """DEL: remove the pod's rules and route, release its address durably (``service.
        delete``: the key's, or a ``prev`` address the same container holds), then delete the
        host veth in the background. Never fails for the datapath's sake (what cannot be
        removed is logged and removed at the next start). ``only_if`` (the leaked-pod sweep):
        called under the service's lock with what the key holds, once the veth name is held;
        nothing is done unless it returns True. Returns the released assignment."""
        veth = self._claim_for_delete(service, key, meta)
        index: int | None = None
        try:
            with service.lock:
                held = service.datastore.lookup(key)
                if only_if is not None and not only_if(held):
                    return None
                wirings, deleting = self._plan_release(
                    service, key, meta, prev, held=held, veth=veth
                )
            unrouted = self._unroute(wirings)
            released = service.delete(key, prev)
            index = unrouted if deleting else None
        finally:
            if veth is not None:
                self._delete_later(veth, index)  # None: nothing to delete, the name is free
        return released

    def _claim_for_delete(self, service: IpamService, key: PodKey, meta: PodMeta) -> str | None:
        """Wait until no ADD wires the pod's veth name and hold it; None when an earlier DEL
        is deleting it already (a repeated DEL: nothing to wait for) or when an ADD held it for
        ``teardown_wait`` (the veth is then left alone)."""
        held = service.lookup(key)
        veth = self.host_veth(key, held.meta if held is not None else meta)
        with self._idle:
            # done waiting once no ADD wires it: free (absent) or being deleted (True)
            if not self._idle.wait_for(
                lambda: self._busy_veths.get(veth, True), self.teardown_wait
            ):
                log.warning(
                    "DEL of %s: host veth %s stayed busy for %g s; it is left for the next start",
                    key,
                    veth,
                    self.teardown_wait,
                )
                return None
            if self._busy_veths.get(veth):
                return None  # being deleted
            self._busy_veths[veth] = True
        return veth

    def _plan_release(
        self,
        service: IpamService,
        key: PodKey,
        meta: PodMeta,
        prev: Sequence[IPv4Address],
        *,
        held: Assignment | None,
        veth: str | None,
    ) -> tuple[list[tuple[PodWiring, bool]], bool]:
        """Under the service's lock: the wirings to unroute, each with whether its address is
        this pod's to unroute (nobody else holds it, nor another DEL unroutes it: then marked
        busy), and whether the veth is this pod's to delete."""
        pod_meta = held.meta if held is not None else meta
        addresses = [held.address] if held is not None else list(prev)
        if not addresses:
            return [], False
        others = [a for a in service.datastore.assignments() if a.key != key]
        holders = {a.address: a.key for a in others}
        mine = self.host_veth(key, pod_meta)
        deleting = veth == mine and all(self.host_veth(a.key, a.meta) != mine for a in others)
        wirings: list[tuple[PodWiring, bool]] = []
        for address in addresses:
            try:
                eni = service.datastore.eni_of(address)
            except KeyError:
                continue  # on none of this node's ENIs: never wired here
            holder = holders.get(address)
            ours = holder is None or (holder.network, holder.container_id) == (
                key.network,
                key.container_id,
            )
            wirings.append((self.wiring(key, pod_meta, "", address, eni), ours))
        with self._idle:
            wirings = [(w, ours and w.address not in self._busy_addresses) for w, ours in wirings]
            self._busy_addresses.update(w.address for w, ours in wirings if ours)
        return wirings, deleting and bool(wirings)

    def _unroute(self, wirings: list[tuple[PodWiring, bool]]) -> int | None:
        """Remove the rules and routes of the wirings marked ours (then unmark them); the host
        veth's index (None: gone, or unknown)."""
        index = None
        try:
            for wiring, ours in wirings:
                try:
                    index, failed = self.pods.unroute(wiring, address=ours)
                except Exception as error:  # DEL never fails; the next start cleans up
                    failed = [str(error)]
                for failure in failed:
                    log.warning(
                        "DEL of %s left something behind (removed at the next start): %s",
                        wiring.host_veth,
                        failure,
                    )
        finally:
            with self._idle:
                self._busy_addresses.difference_update(w.address for w, ours in wirings if ours)
                self._idle.notify_all()
        return index

    def _delete_later(self, veth: str, index: int | None) -> None:
        """Delete the host veth in the background; its name is free again once it is gone."""
        if index is None:
            self._free(veth)
            return
        try:
            future = self.pods.delete_link(index)
        except Exception as error:  # e.g. shutting down: the next start removes it
            log.warning("deleting host veth %s: %s; removed at the next start", veth, error)
            self._free(veth)
            return
        future.add_done_callback(partial(self._veth_deleted, veth))

    def _veth_deleted(self, veth: str, future: Future[None]) -> None:
        error = future.exception()
        if error is not None:
            log.warning("deleting host veth %s failed: %s; removed at the next start", veth, error)
        self._free(veth)

    def _free(self, veth: str) -> None:
        with self._idle:
            self._busy_veths.pop(veth, None)
            self._idle.notify_all()

    def pending_teardowns(self) -> set[str]:
        """Host veth names a DEL is tearing down (or an ADD wiring) right now."""
        with self._idle:
            return set(self._busy_veths)

    def veth_exists(self, host_veth: str) -> bool:
        """The pod's host veth exists, up or down: its peer sits in the pod's namespace, which
        therefore still exists (the kernel deletes the pair with the namespace)."""
        return self.pods.veth_exists(host_veth)

    def node_netns_id(self) -> tuple[int, int]:
        """(st_dev, st_ino) of the node's network namespace, where no pod may be wired."""
        return self.pods.node_netns_id()

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


VETH_NAMES_KEPT = 1024
"""How many host veth names ``_veth_name`` remembers: more than a node's pods (upstream's
largest max-pods is 737), so that a DEL's comparison with every other pod hits. Each entry
keeps its request's strings alive (~0.45 kB), and pod churn brings new names all the time: a
larger cache only grows the daemon (4096 entries: ~1.8 MB, +0.45 kB per ADD/DEL cycle over the
first 4,000 pods, benchmarks/daemon_rss.py)."""


@lru_cache(maxsize=VETH_NAMES_KEPT)
def _veth_name(namespace: str, name: str, container_id: str, ifname: str, prefix: str) -> str:
    """``host_veth_name``, remembered: a DEL compares its veth with every other pod's."""
    return host_veth_name(namespace, name, container_id, ifname, prefix)


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
