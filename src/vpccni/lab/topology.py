"""A laptop VPC in network namespaces: a "node" and a "vpc", joined by one veth pair per ENI.

Each ENI the emulator attaches to the node's instance appears as ``eth<device>`` in the node
namespace (with the ENI's MAC) paired with ``v<device>`` in the vpc namespace. The vpc namespace
plays the VPC router: it holds the gateway of each ENI's subnet (its ``.1``) on that ENI's ``v*``
link - ``subnet`` for ENIs of a subnet the lab was not told about (``subnets``: id -> CIDR, e.g.
a pod subnet in a secondary VPC CIDR under custom networking) - routes each ENI's primary
address, secondary addresses and prefixes to that ENI's link (as the VPC fabric does), and holds
two test hosts: one inside the VPC CIDR (``vpc_host``) and one outside it (``internet_host``) to
see SNAT. The node's primary ENI gets its address and default route as the OS would at boot;
secondary ENIs are configured by ipamd. Nothing here touches the root namespace.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network

from vpccni.core.aws_types import EniDescription
from vpccni.errors import VpccniError

VPC_HOST = IPv4Address("10.0.255.5")
INTERNET_HOST = IPv4Address("198.51.100.1")


class LabError(VpccniError):
    """The lab's namespaces or links could not be set up."""


def ip(*args: str, check: bool = True) -> str:
    """Run ``ip ARGS``; raise LabError with its message on failure."""
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise LabError(f"ip {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


@dataclass
class Lab:
    """Two namespaces and the ENI links between them."""

    prefix: str
    subnet: IPv4Network
    vpc_host: IPv4Address = VPC_HOST
    internet_host: IPv4Address = INTERNET_HOST
    subnets: dict[str, IPv4Network] = field(default_factory=dict)
    """Subnet id -> CIDR, for ENIs outside ``subnet`` (``LabSync`` learns them from EC2)."""
    _routes: dict[int, set[str]] = field(default_factory=dict)

    @property
    def node(self) -> str:
        return f"{self.prefix}-node"

    @property
    def vpc(self) -> str:
        return f"{self.prefix}-vpc"

    @property
    def gateway(self) -> IPv4Address:
        return self.subnet.network_address + 1

    def subnet_of(self, eni: EniDescription) -> IPv4Network:
        """The CIDR of the ENI's subnet: learnt from EC2, else the lab's ``subnet``."""
        return self.subnets.get(eni.subnet_id, self.subnet)

    def create(self) -> None:
        """Make both namespaces with loopback up, forwarding on and the two test hosts."""
        for name in (self.node, self.vpc):
            ip("netns", "add", name)
            ip("-n", name, "link", "set", "lo", "up")
            _sysctl(name, "net.ipv4.ip_forward", "1")
        for host in (self.vpc_host, self.internet_host):
            ip("-n", self.vpc, "addr", "add", f"{host}/32", "dev", "lo")

    def destroy(self) -> None:
        """Delete both namespaces (their links go with them)."""
        for name in (self.node, self.vpc):
            ip("netns", "del", name, check=False)

    def sync(self, enis: Sequence[EniDescription]) -> None:
        """Make the ENI links and the VPC's routes match EC2's view of the node's ENIs."""
        attached = {
            eni.attachment.device_index: eni
            for eni in enis
            if eni.attachment is not None and eni.attachment.status == "attached"
        }
        for device in sorted(set(self._routes) - set(attached)):
            ip("-n", self.node, "link", "del", f"eth{device}", check=False)
            del self._routes[device]
        for device, eni in sorted(attached.items()):
            if device not in self._routes:
                self._add_link(device, eni)
            self._sync_routes(device, eni)

    def _add_link(self, device: int, eni: EniDescription) -> None:
        node_link, vpc_link = f"eth{device}", f"v{device}"
        subnet = self.subnet_of(eni)
        gateway = subnet.network_address + 1
        ip(
            "link",
            "add",
            node_link,
            "netns",
            self.node,
            "address",
            eni.mac,
            "type",
            "veth",
            "peer",
            "name",
            vpc_link,
            "netns",
            self.vpc,
        )
        ip("-n", self.vpc, "addr", "add", f"{gateway}/32", "dev", vpc_link)
        ip("-n", self.vpc, "link", "set", vpc_link, "up")
        if device == 0:
            ip(
                "-n",
                self.node,
                "addr",
                "add",
                f"{eni.primary_ip}/{subnet.prefixlen}",
                "dev",
                node_link,
            )
            ip("-n", self.node, "link", "set", node_link, "up")
            ip(
                "-n",
                self.node,
                "route",
                "add",
                "default",
                "via",
                str(gateway),
                "dev",
                node_link,
            )
        ip("-n", self.vpc, "route", "replace", f"{eni.primary_ip}/32", "dev", vpc_link)
        self._routes[device] = set()

    def _sync_routes(self, device: int, eni: EniDescription) -> None:
        vpc_link = f"v{device}"
        wanted = {f"{a}/32" for a in eni.secondary_ips} | {str(p) for p in eni.prefixes}
        for stale in self._routes[device] - wanted:
            ip("-n", self.vpc, "route", "del", stale, "dev", vpc_link, check=False)
        for target in wanted - self._routes[device]:
            ip(
                "-n",
                self.vpc,
                "route",
                "replace",
                target,
                "via",
                str(eni.primary_ip),
                "dev",
                vpc_link,
            )
        self._routes[device] = wanted


def _sysctl(netns: str, key: str, value: str) -> None:
    path = "/proc/sys/" + key.replace(".", "/")
    done = subprocess.run(
        ["ip", "netns", "exec", netns, "sh", "-c", f"echo {value} > {path}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise LabError(f"setting {key}={value} in {netns} failed: {done.stderr.strip()}")
