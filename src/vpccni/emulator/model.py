"""The pure EC2 model: one account's VPCs, subnets, instances and ENIs, on the caller's clock.

Owns :class:`Ec2Model`, the facade a simulator uses in-process and the HTTP front serves. Every
method takes ``now`` (float seconds on the emulator clock; a ``now`` earlier than one already
seen is treated as that one), first applies the attach/detach transitions that are due, then
validates and changes state (``network`` and ``interfaces`` hold the rules). Refused calls raise
:class:`~vpccni.emulator.errors.Ec2Error` with EC2's code and change nothing. ``node_view``
answers "what did this instance's ENIs look like at time t" for the IMDS lag, and
``invariant_violations`` states the address invariants the property tests check.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Network

from vpccni.emulator import interfaces, network, security_groups
from vpccni.emulator.interfaces import AddressRequest
from vpccni.emulator.network import LaunchRequest
from vpccni.emulator.records import (
    Attachment,
    CidrAssociation,
    Eni,
    Instance,
    SecurityGroup,
    Subnet,
    Tags,
    Vpc,
)
from vpccni.emulator.store import Delays, LimitsSource, Store

DEFAULT_REGION = "us-west-2"
NO_ADDRESSES = AddressRequest()


class Ec2Model:
    """EC2 as the CNI sees it, without I/O: limits, exhaustion, prefixes, attach timing."""

    def __init__(
        self,
        limits: LimitsSource,
        region: str = DEFAULT_REGION,
        rng: random.Random | None = None,
    ) -> None:
        """``rng``: choose addresses pseudo-randomly with it (None: lowest free first)."""
        self.store = Store(limits, region, rng)
        self._now = float("-inf")

    @property
    def now(self) -> float:
        """The latest emulator time the model has seen (-inf before the first call)."""
        return self._now

    @property
    def region(self) -> str:
        return self.store.region

    @property
    def delays(self) -> Delays:
        return self.store.delays

    @delays.setter
    def delays(self, value: Delays) -> None:
        self.store.delays = value

    def advance(self, now: float) -> float:
        """Move the model to ``now`` (never backwards) and apply due transitions."""
        self._now = max(float(now), self._now)
        self.store.settle(self._now)
        return self._now

    # -- VPCs, subnets, groups, instances, tags -----------------------------------------------

    def create_vpc(self, now: float, cidr: str, tags: Tags = ()) -> Vpc:
        return network.create_vpc(self.store, self.advance(now), cidr, tags)

    def associate_vpc_cidr_block(self, now: float, vpc_id: str, cidr: str) -> CidrAssociation:
        self.advance(now)
        return network.associate_vpc_cidr_block(self.store, vpc_id, cidr)

    def disassociate_vpc_cidr_block(
        self, now: float, association_id: str
    ) -> tuple[Vpc, CidrAssociation]:
        self.advance(now)
        return network.disassociate_vpc_cidr_block(self.store, association_id)

    def create_subnet(
        self,
        now: float,
        vpc_id: str,
        cidr: str,
        *,
        availability_zone: str | None = None,
        tags: Tags = (),
    ) -> Subnet:
        at = self.advance(now)
        return network.create_subnet(
            self.store, at, vpc_id, cidr, availability_zone=availability_zone, tags=tags
        )

    def create_security_group(
        self, now: float, vpc_id: str, name: str, description: str, tags: Tags = ()
    ) -> SecurityGroup:
        self.advance(now)
        return security_groups.create_security_group(self.store, vpc_id, name, description, tags)

    def run_instances(self, now: float, request: LaunchRequest) -> tuple[str, list[Instance]]:
        return network.run_instances(self.store, self.advance(now), request)

    def terminate_instances(
        self, now: float, instance_ids: Sequence[str]
    ) -> list[tuple[Instance, str]]:
        return network.terminate_instances(self.store, self.advance(now), instance_ids)

    def create_tags(
        self, now: float, resource_ids: Sequence[str], tags: Sequence[tuple[str, str]]
    ) -> None:
        network.create_tags(self.store, self.advance(now), resource_ids, tags)

    def delete_tags(
        self, now: float, resource_ids: Sequence[str], tags: Sequence[tuple[str, str | None]]
    ) -> None:
        network.delete_tags(self.store, self.advance(now), resource_ids, tags)

    # -- ENIs ---------------------------------------------------------------------------------

    def create_eni(
        self,
        now: float,
        subnet_id: str,
        request: AddressRequest = NO_ADDRESSES,
        *,
        primary_ip: str | None = None,
        description: str = "",
        group_ids: Sequence[str] = (),
        tags: Tags = (),
    ) -> Eni:
        return interfaces.create_eni(
            self.store,
            self.advance(now),
            subnet_id,
            request,
            primary_ip=primary_ip,
            description=description,
            group_ids=group_ids,
            tags=tags,
        )

    def attach_eni(
        self,
        now: float,
        eni_id: str,
        instance_id: str,
        device_index: int,
        *,
        network_card_index: int = 0,
    ) -> Attachment:
        at = self.advance(now)
        return interfaces.attach_eni(
            self.store, at, eni_id, instance_id, device_index, network_card_index=network_card_index
        )

    def detach_eni(self, now: float, attachment_id: str, force: bool = False) -> None:
        interfaces.detach_eni(self.store, self.advance(now), attachment_id, force)

    def delete_eni(self, now: float, eni_id: str) -> None:
        interfaces.delete_eni(self.store, self.advance(now), eni_id)

    def assign(
        self,
        now: float,
        eni_id: str,
        request: AddressRequest,
        allow_reassignment: bool = False,
    ) -> tuple[list[str], list[str]]:
        at = self.advance(now)
        return interfaces.assign(self.store, at, eni_id, request, allow_reassignment)

    def unassign(
        self,
        now: float,
        eni_id: str,
        addresses: Sequence[str] = (),
        prefixes: Sequence[str] = (),
    ) -> None:
        interfaces.unassign(self.store, self.advance(now), eni_id, addresses, prefixes)

    def modify_eni(
        self,
        now: float,
        eni_id: str,
        *,
        description: str | None = None,
        source_dest_check: bool | None = None,
        group_ids: Sequence[str] | None = None,
        delete_on_termination: tuple[str, bool] | None = None,
    ) -> Eni:
        return interfaces.modify_eni(
            self.store,
            self.advance(now),
            eni_id,
            description=description,
            source_dest_check=source_dest_check,
            group_ids=group_ids,
            delete_on_termination=delete_on_termination,
        )

    # -- reading ------------------------------------------------------------------------------

    def available_addresses(self, subnet_id: str, at: float | None = None) -> int:
        """EC2's AvailableIpAddressCount of a subnet (as it was at ``at``, when given and the
        model keeps counts: ``delays.subnet_count_lag`` > 0)."""
        self.store.subnet(subnet_id)
        if at is None:
            return self.store.pool(subnet_id).available
        return self.store.available_at(subnet_id, at)

    def node_view(self, instance_id: str, at: float) -> tuple[Instance | None, list[Eni]]:
        """The instance and its attached ENIs as they were at emulator time ``at``."""
        history = self.store.history
        instance = history.at(instance_id, at)
        if not isinstance(instance, Instance):
            return None, []
        enis = []
        for key in history:
            version = history.at(key, at)
            if isinstance(version, Eni) and shown_on(version, instance_id):
                enis.append(version)
        enis.sort(key=lambda e: e.attachment.device_index if e.attachment else 0)
        return instance, enis

    def forget_before(self, horizon: float) -> None:
        """Drop history no reader at or after ``horizon`` needs."""
        self.store.history.prune(horizon)
        if self.store.available_history is not None:
            self.store.available_history.prune(horizon)

    def invariant_violations(self) -> list[str]:
        """Broken address invariants (empty when all hold); used by tests and the admin API."""
        problems: list[str] = []
        for subnet in self.store.subnets.values():
            problems += _subnet_violations(self.store, subnet)
        return problems


def shown_on(eni: Eni, instance_id: str) -> bool:
    """``eni`` is listed in the IMDS of ``instance_id`` (attached there, or detaching)."""
    attachment = eni.attachment
    return (
        attachment is not None
        and attachment.instance_id == instance_id
        and attachment.status in ("attached", "detaching")
    )


def _subnet_violations(store: Store, subnet: Subnet) -> list[str]:
    pool = store.pool(subnet.subnet_id)
    cidr = IPv4Network(subnet.cidr)
    singles: list[int] = []
    prefixes: list[int] = []
    for eni in store.enis.values():
        if eni.subnet_id == subnet.subnet_id:
            singles += [int(IPv4Address(a)) for a in eni.private_ips]
            prefixes += [int(IPv4Network(p).network_address) for p in eni.prefixes]
    problems = []
    where = f"{subnet.subnet_id} ({subnet.cidr})"
    if len(set(singles)) != len(singles) or len(set(prefixes)) != len(prefixes):
        problems.append(f"{where}: an address or prefix is held twice")
    if set(singles) != pool.singles or set(prefixes) != pool.prefixes:
        problems.append(f"{where}: the pool disagrees with the ENIs")
    for address in singles:
        if IPv4Address(address) not in cidr or pool.is_reserved(address):
            problems.append(f"{where}: {IPv4Address(address)} is outside or reserved")
        if any(base <= address < base + 16 for base in prefixes):
            problems.append(f"{where}: {IPv4Address(address)} lies inside a prefix")
    for base in prefixes:
        if base % 16 or not IPv4Network((base, 28)).subnet_of(cidr):
            problems.append(f"{where}: prefix {IPv4Address(base)}/28 misaligned or outside")
        if any(pool.is_reserved(a) for a in range(base, base + 16)):
            problems.append(f"{where}: prefix {IPv4Address(base)}/28 covers a reserved address")
    expected = pool.usable - len(singles) - 16 * len(prefixes)
    if pool.available != expected or pool.available < 0:
        problems.append(f"{where}: available {pool.available} != {expected}")
    return problems
