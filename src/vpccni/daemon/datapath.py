"""The daemon's datapath: pod wiring on ADD/DEL/CHECK and host networking for ENIs.

Plugs the ``PodNetwork`` and ``HostNetwork`` ports into the IPAM service. Rules: an ENI joins
the pool only once its host networking is configured; a failed ADD releases the address it took;
DEL tears down what it can and always releases; on start-up (and after a crash) host routes,
rules and veths converge to the assignments in the checkpoint.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

from vpccni.core.model import Assignment, EniInfo, PodKey, PodMeta
from vpccni.core.naming import host_veth_name, route_table
from vpccni.daemon.recover import is_held_by_route
from vpccni.daemon.service import IpamService
from vpccni.ports import EniLink, HostNetwork, PodNetwork, PodWiring, WiredInterfaces

log = logging.getLogger("vpccni.ipamd")


@dataclass
class Datapath:
    """Pod and host networking for one node."""

    pods: PodNetwork
    host: HostNetwork
    subnet: IPv4Network
    mtu: int = 9001
    veth_prefix: str = "eni"

    def wiring(
        self,
        key: PodKey,
        meta: PodMeta,
        netns: str,
        address: IPv4Address,
        eni: EniInfo,
        *,
        mtu: int | None = None,
    ) -> PodWiring:
        veth = (
            key.container_id  # an address held for an unknown pod: the veth routing it
            if is_held_by_route(key)
            else host_veth_name(
                meta.namespace, meta.name, key.container_id, key.ifname, self.veth_prefix
            )
        )
        return PodWiring(
            netns, key.ifname, veth, address, route_table(eni.device_index), mtu or self.mtu
        )

    def wire(self, wiring: PodWiring) -> WiredInterfaces:
        return self.pods.setup(wiring)

    def unwire(self, wiring: PodWiring) -> None:
        try:
            self.pods.teardown(wiring)
        except Exception as error:  # DEL never fails; converge_pods cleans up later
            log.warning("teardown of %s left something behind: %s", wiring.host_veth, error)

    def check(self, wiring: PodWiring) -> list[str]:
        return self.pods.check(wiring)

    def eni_ready(self, mac: str, primary_ip: IPv4Address, device_index: int) -> bool:
        """Configure an ENI's host networking; False while its link has not appeared."""
        return self.host.setup_eni(EniLink(mac, primary_ip, self.subnet, device_index))

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
        return changes

    def _wiring_of(self, service: IpamService, assignment: Assignment) -> PodWiring:
        eni = service.datastore.eni_of(assignment.address)
        return self.wiring(assignment.key, assignment.meta, "", assignment.address, eni)
