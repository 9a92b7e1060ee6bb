"""The emulator's world: every resource, each subnet's address pool, ids, pending transitions.

Owns :class:`Store`, the single mutable container the operations in ``network`` and
``interfaces`` work on, and :class:`Delays` (how long attach and detach take on the emulator
clock, and how late DescribeSubnets' AvailableIpAddressCount is). Lookups raise EC2's NotFound
errors. Every change to an ENI or instance goes through
``put_*`` / ``drop_eni`` so that :class:`~vpccni.emulator.history.History` sees it at the time it
happened (and, while ``delays.subnet_count_lag`` is set, each subnet's free-address count
likewise); timed transitions (attaching -> attached, detaching -> detached) wait in a queue and
``settle(now)`` applies those that are due, each at its own time. Ids are minted from counters,
so a run is reproducible.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterator
from dataclasses import dataclass, replace
from ipaddress import IPv4Address, IPv4Network
from typing import Protocol

from vpccni.core.limits import InstanceLimits
from vpccni.emulator.addressing import PREFIX_LENGTH, SubnetPool
from vpccni.emulator.errors import ID_PREFIX, Ec2Error, not_found
from vpccni.emulator.history import History
from vpccni.emulator.records import Eni, Instance, SecurityGroup, Subnet, Vpc
from vpccni.errors import VpccniError


class LimitsSource(Protocol):
    """Where instance-type limits come from (``vpccni.core.limits.InstanceTable`` fits)."""

    def get(self, name: str) -> InstanceLimits: ...

    def __iter__(self) -> Iterator[InstanceLimits]: ...


@dataclass(frozen=True)
class Delays:
    """Seconds on the emulator clock before an attach or detach completes (0: at once), and
    how far behind the true count DescribeSubnets' AvailableIpAddressCount is."""

    attach: float = 0.0
    detach: float = 0.0
    subnet_count_lag: float = 0.0


@dataclass(frozen=True, order=True)
class Transition:
    due: float
    sequence: int
    kind: str  # "attached" or "detached"
    eni_id: str
    attachment_id: str


class Store:
    """All resources of one emulated account and region."""

    def __init__(self, limits: LimitsSource, region: str, rng: random.Random | None) -> None:
        self.limits = limits
        self.region = region
        self.rng = rng
        self.available_history: History[int] | None = None
        self.delays = Delays()
        self.vpcs: dict[str, Vpc] = {}
        self.subnets: dict[str, Subnet] = {}
        self.groups: dict[str, SecurityGroup] = {}
        self.instances: dict[str, Instance] = {}
        self.enis: dict[str, Eni] = {}
        self.pools: dict[str, SubnetPool] = {}
        self.attachments: dict[str, str] = {}
        self.counters: dict[str, int] = {}
        self.pending: list[Transition] = []
        self.history: History[Eni | Instance] = History()
        self._max_slots: int | None = None

    @property
    def delays(self) -> Delays:
        return self._delays

    @delays.setter
    def delays(self, value: Delays) -> None:
        """New delays; a subnet-count lag starts keeping counts (known so far: the current)."""
        self._delays = value
        if value.subnet_count_lag <= 0:
            self.available_history = None
        elif self.available_history is None:
            self.available_history = History()
            for subnet_id, pool in self.pools.items():
                self.available_history.record(subnet_id, float("-inf"), pool.available)

    # -- ids ----------------------------------------------------------------------------------

    def mint(self, kind: str) -> str:
        number = self.counters.get(kind, 0) + 1
        self.counters[kind] = number
        return f"{ID_PREFIX[kind]}-{number:017x}"

    def mint_mac(self) -> str:
        number = self.counters.get("mac", 0) + 1
        self.counters["mac"] = number
        octets = [(number >> shift) & 0xFF for shift in (32, 24, 16, 8, 0)]
        return "02:" + ":".join(f"{octet:02x}" for octet in octets)

    # -- lookups ------------------------------------------------------------------------------

    def vpc(self, vpc_id: str) -> Vpc:
        found = self.vpcs.get(vpc_id)
        if found is None:
            raise not_found("vpc", vpc_id)
        return found

    def subnet(self, subnet_id: str) -> Subnet:
        found = self.subnets.get(subnet_id)
        if found is None:
            raise not_found("subnet", subnet_id)
        return found

    def group(self, group_id: str) -> SecurityGroup:
        found = self.groups.get(group_id)
        if found is None:
            raise not_found("group", group_id)
        return found

    def instance(self, instance_id: str) -> Instance:
        found = self.instances.get(instance_id)
        if found is None:
            raise not_found("instance", instance_id)
        return found

    def eni(self, eni_id: str) -> Eni:
        found = self.enis.get(eni_id)
        if found is None:
            raise not_found("eni", eni_id)
        return found

    def eni_by_attachment(self, attachment_id: str) -> Eni:
        eni_id = self.attachments.get(attachment_id)
        if eni_id is None:
            raise not_found("attachment", attachment_id)
        return self.enis[eni_id]

    def instance_limits(self, instance_type: str) -> InstanceLimits:
        try:
            return self.limits.get(instance_type)
        except (VpccniError, KeyError) as error:
            raise Ec2Error(
                "InvalidParameterValue", f"Invalid value '{instance_type}' for InstanceType."
            ) from error

    def max_unattached_slots(self) -> int:
        """EC2 does not document an unattached ENI's limit; the largest of any type is used."""
        if self._max_slots is None:
            self._max_slots = max((item.ipv4_per_eni for item in self.limits), default=50)
        return self._max_slots

    def enis_of(self, instance_id: str) -> list[Eni]:
        """ENIs with an attachment (any status) to ``instance_id``, by card and device index."""
        found = [
            eni
            for eni in self.enis.values()
            if eni.attachment is not None and eni.attachment.instance_id == instance_id
        ]
        return sorted(
            found,
            key=lambda eni: (
                eni.attachment.network_card_index if eni.attachment else 0,
                eni.attachment.device_index if eni.attachment else 0,
            ),
        )

    def pool(self, subnet_id: str) -> SubnetPool:
        return self.pools[subnet_id]

    def available_at(self, subnet_id: str, at: float) -> int:
        """The subnet's free-address count as it was at ``at`` (for a subnet younger than that,
        its first count; when counts are not kept, the current one)."""
        history = self.available_history
        if history is None:
            return self.pools[subnet_id].available
        count = history.at(subnet_id, at)
        if count is None:
            later = history.during(subnet_id, at, float("inf"))
            count = next((c for c in later if c is not None), self.pools[subnet_id].available)
        return count

    # -- changes ------------------------------------------------------------------------------

    def note_available(self, subnet_id: str, at: float) -> None:
        """Remember the subnet's free-address count from ``at`` on (when counts are kept)."""
        if self.available_history is not None:
            self.available_history.record(subnet_id, at, self.pools[subnet_id].available)

    def put_eni(self, eni: Eni, at: float) -> None:
        old = self.enis.get(eni.eni_id)
        if old is not None and old.attachment is not None:
            self.attachments.pop(old.attachment.attachment_id, None)
        self.enis[eni.eni_id] = eni
        if eni.attachment is not None:
            self.attachments[eni.attachment.attachment_id] = eni.eni_id
        self.history.record(eni.eni_id, at, eni)
        self.note_available(eni.subnet_id, at)

    def drop_eni(self, eni_id: str, at: float) -> None:
        eni = self.enis.pop(eni_id)
        if eni.attachment is not None:
            self.attachments.pop(eni.attachment.attachment_id, None)
        pool = self.pools[eni.subnet_id]
        for address in eni.private_ips:
            pool.release_address(int(IPv4Address(address)))
        for prefix in eni.prefixes:
            pool.release_prefix(int(IPv4Network(prefix).network_address))
        self.history.record(eni_id, at, None)
        self.note_available(eni.subnet_id, at)

    def put_instance(self, instance: Instance, at: float) -> None:
        self.instances[instance.instance_id] = instance
        self.history.record(instance.instance_id, at, instance)

    # -- timed transitions ---------------------------------------------------------------------

    def schedule(self, due: float, kind: str, eni_id: str, attachment_id: str) -> None:
        sequence = self.counters.get("transition", 0) + 1
        self.counters["transition"] = sequence
        heapq.heappush(self.pending, Transition(due, sequence, kind, eni_id, attachment_id))

    def settle(self, now: float) -> None:
        """Apply every transition due at or before ``now``, each at its own due time."""
        while self.pending and self.pending[0].due <= now:
            step = heapq.heappop(self.pending)
            eni = self.enis.get(step.eni_id)
            attachment = eni.attachment if eni else None
            if eni is None or attachment is None:
                continue
            if attachment.attachment_id != step.attachment_id:
                continue
            if step.kind == "attached" and attachment.status == "attaching":
                self.put_eni(
                    replace(eni, attachment=replace(attachment, status="attached")), step.due
                )
            elif step.kind == "detached" and attachment.status == "detaching":
                self.put_eni(replace(eni, attachment=None), step.due)


def prefix_text(base: int) -> str:
    return str(IPv4Network((base, PREFIX_LENGTH)))
