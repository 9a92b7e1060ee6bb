"""Ports: the small interfaces through which the daemon touches the world.

Adapters in ``vpccni.adapters`` implement them (boto3 EC2, IMDSv2 over HTTP, the system clock);
tests and the simulator use honest fakes (the emulator model, a virtual clock). Each method is
named by intent and returns values from ``vpccni.core.aws_types``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from typing import Protocol

from vpccni.core.aws_types import (
    EniDescription,
    ImdsInterface,
    InstanceDescription,
    InstanceIdentity,
)
from vpccni.core.checkpoint import CheckpointState, Record
from vpccni.core.cluster import ClusterView
from vpccni.core.subnets import Subnet


class Clock(Protocol):
    """Wall-clock seconds (for tags and ages) and a way to wait."""

    def now(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class Ec2(Protocol):
    """The EC2 calls the CNI makes, and no others."""

    def describe_instance(self, instance_id: str) -> InstanceDescription: ...

    def describe_enis(
        self,
        eni_ids: Sequence[str] = (),
        filters: Mapping[str, Sequence[str]] | None = None,
    ) -> list[EniDescription]: ...

    def create_eni(
        self,
        subnet_id: str,
        security_groups: Sequence[str],
        description: str,
        tags: Mapping[str, str],
        *,
        secondary_ips: int = 0,
        prefixes: int = 0,
    ) -> EniDescription: ...

    def attach_eni(
        self, eni_id: str, instance_id: str, device_index: int, network_card: int = 0
    ) -> str: ...

    def set_delete_on_termination(self, eni_id: str, attachment_id: str) -> None: ...

    def detach_eni(self, attachment_id: str, force: bool = False) -> None: ...

    def delete_eni(self, eni_id: str) -> None: ...

    def assign_ips(self, eni_id: str, count: int) -> list[IPv4Address]: ...

    def assign_prefixes(self, eni_id: str, count: int) -> list[IPv4Network]: ...

    def unassign_ips(self, eni_id: str, addresses: Sequence[IPv4Address]) -> None: ...

    def unassign_prefixes(self, eni_id: str, prefixes: Sequence[IPv4Network]) -> None: ...

    def create_tags(self, resource_id: str, tags: Mapping[str, str]) -> None: ...

    def subnet_free_addresses(self, subnet_id: str) -> int: ...

    def describe_subnets(
        self,
        subnet_ids: Sequence[str] = (),
        filters: Mapping[str, Sequence[str]] | None = None,
    ) -> list[Subnet]:
        """DescribeSubnets by ids and/or filters (``vpc-id``, ``availability-zone``,
        ``tag:KEY``...), every page; an unknown id raises EC2's ``InvalidSubnetID.NotFound``."""
        ...


class Imds(Protocol):
    """The instance metadata the CNI reads (IMDSv2)."""

    def identity(self) -> InstanceIdentity: ...

    def interfaces(self) -> list[ImdsInterface]: ...


class CheckpointStore(Protocol):
    """Durable assignments: ``append`` returns only once the record survives a crash."""

    def load(self) -> CheckpointState: ...

    def append(self, record: Record) -> None: ...

    def prune_cooldowns(self, cutoff: float) -> None: ...


class Metrics(Protocol):
    """What the daemon reports; the Prometheus adapter names the series (docs/metrics.md)."""

    def ec2_call(self, api: str, seconds: float, error_code: str) -> None: ...

    def ec2_failure(self, fn: str, error_code: str) -> None:
        """An EC2 call made by the EC2 port function ``fn`` (``assign_ips``...) failed with EC2's
        ``error_code`` (upstream's ``awscni_aws_utils_error_count``)."""
        ...

    def add_request(self, seconds: float, ok: bool) -> None: ...

    def del_request(self) -> None: ...

    def no_address(self, reason: str) -> None:
        """An ADD found no address; ``reason`` is the cause's name (``core.no_address``)."""
        ...

    def pods_waiting(self, count: int) -> None: ...

    def pool(
        self, enis: int, total: int, assigned: int, prefixes: int, per_eni: dict[str, int]
    ) -> None: ...

    def assigned_per_cidr(self, per_cidr: Mapping[str, int]) -> None:
        """Assigned addresses of every CIDR in the datastore (``"10.0.1.5/32"`` or a ``/28``);
        a CIDR missing from ``per_cidr`` has left it."""
        ...

    def limits(self, max_enis: int, max_ips: int) -> None: ...

    def error(self, fn: str) -> None: ...

    def force_removed(self, enis: int, ips: int) -> None: ...

    def subnet_free(self, subnet_id: str, free: int) -> None: ...


class NullMetrics:
    """Metrics that go nowhere (tests, DISABLE_METRICS)."""

    def ec2_call(self, api: str, seconds: float, error_code: str) -> None:
        pass

    def ec2_failure(self, fn: str, error_code: str) -> None:
        pass

    def add_request(self, seconds: float, ok: bool) -> None:
        pass

    def del_request(self) -> None:
        pass

    def no_address(self, reason: str) -> None:
        pass

    def pods_waiting(self, count: int) -> None:
        pass

    def pool(
        self, enis: int, total: int, assigned: int, prefixes: int, per_eni: dict[str, int]
    ) -> None:
        pass

    def assigned_per_cidr(self, per_cidr: Mapping[str, int]) -> None:
        pass

    def limits(self, max_enis: int, max_ips: int) -> None:
        pass

    def error(self, fn: str) -> None:
        pass

    def force_removed(self, enis: int, ips: int) -> None:
        pass

    def subnet_free(self, subnet_id: str, free: int) -> None:
        pass


@dataclass(frozen=True)
class PodNamespace:
    """The pod's network namespace as the plugin passed it (docs/plugin-api.md): a file
    descriptor of the namespace and a ``NETLINK_ROUTE`` socket the plugin created inside it.

    Both were checked when they arrived; they belong to the request that carried them, which
    closes each once when it is answered. Users that need to keep a descriptor past a call
    duplicate it (a descriptor held on pins the pod's namespace).
    """

    netns_fd: int
    netlink_fd: int


@dataclass(frozen=True)
class PodWiring:
    """Everything needed to wire (or unwire) one pod interface.

    ``netns`` is the runtime's ``CNI_NETNS``, a label for logs and results only: the pod's side
    is reached through ``pod`` (ADD and CHECK); DEL and start-up work from the node's side and
    have no ``pod``.
    """

    netns: str
    ifname: str
    host_veth: str
    address: IPv4Address
    table: int
    mtu: int = 9001
    pod: PodNamespace | None = None


@dataclass(frozen=True)
class WiredInterfaces:
    """The links ADD created, for the CNI result."""

    host_veth: str
    host_mac: str
    pod_mac: str


class PodNetwork(Protocol):
    """Pod-side and host-side links, routes and rules of one pod interface."""

    def setup(self, wiring: PodWiring) -> WiredInterfaces: ...

    def unroute(self, wiring: PodWiring, *, address: bool) -> tuple[int | None, list[str]]:
        """DEL's synchronous part: with ``address`` (no other pod holds it), the pod's rules and
        host route. Returns the host veth's index (None: gone) and what could not be deleted."""
        ...

    def delete_link(self, index: int) -> Future[None]:
        """Delete the host veth with ``index`` (its pair goes with it) in the background; the
        future is done when it is gone."""
        ...

    def check(self, wiring: PodWiring) -> list[str]: ...

    def veth_exists(self, host_veth: str) -> bool:
        """The host veth exists, up or down. Its peer is in the pod's namespace and the kernel
        deletes both ends with that namespace, so while it exists the pod does."""
        ...

    def node_netns_id(self) -> tuple[int, int]:
        """(st_dev, st_ino) of the node's network namespace: a pod must not be wired there."""
        ...


@dataclass(frozen=True)
class EniLink:
    """An ENI as the node's host networking needs it."""

    mac: str
    primary_ip: IPv4Address
    subnet: IPv4Network
    device_index: int


class HostNetwork(Protocol):
    """The node's own routes, rules and SNAT (idempotent: re-applying converges)."""

    def setup_node(self, primary: EniLink, vpc_cidrs: Sequence[IPv4Network]) -> None: ...

    def setup_eni(self, eni: EniLink) -> bool: ...

    def remove_eni(self, eni: EniLink, *, flush_table: bool) -> HostChanges:
        """Delete the ENI's rule, its connected route and address and (``flush_table``) the
        routes of its table; carries on past a failed deletion and reports it."""
        ...

    def converge_enis(self, enis: Sequence[EniLink]) -> HostChanges:
        """Delete ENI rules (and their tables' routes) of ENIs not in ``enis``."""
        ...

    def converge_pods(self, wired: Sequence[PodWiring]) -> list[str]: ...

    def host_veths(self) -> set[str]: ...

    def pod_routes(self) -> dict[IPv4Address, str]:
        """Read only: each address the main table routes (``/32``, scope link) to an up pod
        veth, with that veth's name - the node's own record of which pod holds what."""
        ...


@dataclass(frozen=True)
class HostChanges:
    """What a host-networking clean-up did and what it could not do (each: what, and why)."""

    done: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()


class ClusterSource(Protocol):
    """Where the daemon's :class:`~vpccni.core.cluster.ClusterView` comes from: the Kubernetes
    API (list + watch of the Node and the ENIConfigs), a directory of ENIConfig YAML with node
    labels from the command line, or nothing. ``view`` never blocks on the network: a source that
    talks to an API server keeps its view current on its own thread."""

    def view(self) -> ClusterView: ...

    def close(self) -> None: ...
