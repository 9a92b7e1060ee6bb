"""One simulated node's address pool: the core datastore's rules on plain integers.

:class:`NodePool` is a lean twin of :class:`vpccni.core.datastore.Datastore` for the simulator,
which does millions of pod ADD/DEL per run: it hands out addresses with the same *packing* rule
(the ENI with the most assignments, then its fullest CIDR, then the lowest free address that is
not cooling), keeps the same cooldown semantics (cooling while ``now - released <= cooldown``)
and produces the same :class:`~vpccni.core.pool_rules.EniView` values for ``plan_scaling``.
It differs
only in representation: addresses are offsets in an integer bitmask, pods are integers, no
checkpoint, and it keeps per-ENI counters (:class:`PoolEni` satisfies
:class:`vpccni.core.wake.EniCounts`) so the simulator can ask ``next_wake`` after every pod
event without building views. ``tests/planning/test_fast_pool.py`` drives both with the same random
operations and requires identical views and addresses at every step.
"""

from __future__ import annotations

import bisect
import math
from ipaddress import IPv4Network

from vpccni.core.model import ADDRESSES_PER_PREFIX, PREFIX_LENGTH, EniInfo, Mode
from vpccni.core.pool_rules import CidrView, EniView


class PoolCidr:
    """A /32 or /28 on an ENI; ``taken`` is a bitmask of assigned offsets."""

    __slots__ = ("base", "prefix", "released", "size", "taken", "text", "used")

    def __init__(self, network: IPv4Network) -> None:
        self.base = int(network.network_address)
        self.prefix = network.prefixlen == PREFIX_LENGTH
        self.size = ADDRESSES_PER_PREFIX if self.prefix else 1
        self.text = str(network)
        self.taken = 0
        self.used = 0
        self.released: dict[int, float] = {}


class PoolEni:
    """An ENI, its CIDRs (by address) and the counters the wake-up gate reads."""

    __slots__ = (
        "active_assigned",
        "active_size",
        "assigned",
        "cidrs",
        "free_prefixes",
        "info",
        "last_release",
        "prefix_count",
    )

    def __init__(self, info: EniInfo) -> None:
        self.info = info
        self.cidrs: list[PoolCidr] = []
        self.assigned = 0
        self.active_size = 0
        self.active_assigned = 0
        self.prefix_count = 0
        self.free_prefixes = 0
        self.last_release = -math.inf

    @property
    def cidr_count(self) -> int:
        return len(self.cidrs)

    def recompute_last_release(self) -> None:
        self.last_release = max(
            (at for cidr in self.cidrs for at in cidr.released.values()), default=-math.inf
        )


class NodePool:
    """ENIs -> CIDRs -> pods for one node; the same choices as the core datastore."""

    def __init__(self, mode: Mode, cooldown_seconds: float) -> None:
        self.prefix_mode = mode.uses_prefixes
        self.cooldown = cooldown_seconds
        self.enis: dict[str, PoolEni] = {}
        self.ordered: list[PoolEni] = []
        self.pods: dict[int, tuple[PoolEni, PoolCidr, int]] = {}
        self.singles = 0
        self.prefixes = 0

    # -- ENIs and CIDRs -------------------------------------------------------------------------

    def add_eni(self, info: EniInfo) -> None:
        if info.eni_id in self.enis:
            raise ValueError(f"ENI {info.eni_id} is already in the pool")
        eni = PoolEni(info)
        self.enis[info.eni_id] = eni
        self.ordered.append(eni)
        self.ordered.sort(key=lambda e: e.info.device_index)

    def add_cidr(self, eni_id: str, network: IPv4Network) -> None:
        eni = self.enis[eni_id]
        cidr = PoolCidr(network)
        bases = [c.base for c in eni.cidrs]
        eni.cidrs.insert(bisect.bisect_left(bases, cidr.base), cidr)
        if cidr.prefix:
            eni.prefix_count += 1
            eni.free_prefixes += 1
            self.prefixes += 1
        else:
            self.singles += 1
        if cidr.prefix == self.prefix_mode:
            eni.active_size += cidr.size

    def remove_cidr(self, eni_id: str, text: str) -> bool:
        """Remove an unused CIDR; False when a pod uses it (or it is unknown)."""
        eni = self.enis.get(eni_id)
        if eni is None:
            return False
        cidr = next((c for c in eni.cidrs if c.text == text), None)
        if cidr is None or cidr.used:
            return False
        eni.cidrs.remove(cidr)
        if cidr.prefix:
            eni.prefix_count -= 1
            eni.free_prefixes -= 1
            self.prefixes -= 1
        else:
            self.singles -= 1
        if cidr.prefix == self.prefix_mode:
            eni.active_size -= cidr.size
        eni.recompute_last_release()
        return True

    def remove_eni(self, eni_id: str) -> bool:
        """Forget an ENI no pod uses; False when one does (or it is unknown)."""
        eni = self.enis.get(eni_id)
        if eni is None or eni.assigned:
            return False
        for cidr in list(eni.cidrs):
            self.remove_cidr(eni_id, cidr.text)
        del self.enis[eni_id]
        self.ordered.remove(eni)
        return True

    def force_remove_cidr(self, eni_id: str, text: str, now: float) -> int:
        """EC2 no longer has the CIDR: release its pods, drop it; returns the pods that lost it."""
        eni = self.enis.get(eni_id)
        cidr = None if eni is None else next((c for c in eni.cidrs if c.text == text), None)
        if cidr is None:
            return 0
        lost = [pod for pod, (_, held, _) in self.pods.items() if held is cidr]
        for pod in lost:
            self.release(pod, now)
        self.remove_cidr(eni_id, text)
        return len(lost)

    def force_remove_eni(self, eni_id: str, now: float) -> int:
        """EC2 no longer attaches the ENI: release its pods, drop it; returns how many lost it."""
        eni = self.enis.get(eni_id)
        if eni is None:
            return 0
        lost = sum(self.force_remove_cidr(eni_id, c.text, now) for c in list(eni.cidrs))
        self.remove_eni(eni_id)
        return lost

    # -- pods -----------------------------------------------------------------------------------

    def assign(self, pod: int, now: float) -> bool:
        """Give ``pod`` an address (True), or False when none is free and not cooling."""
        if pod in self.pods:
            return True
        if len(self.ordered) == 1:
            enis = self.ordered if not self.ordered[0].info.excluded else []
        else:
            enis = [eni for eni in self.ordered if not eni.info.excluded]
            enis.sort(key=lambda e: (-e.assigned, e.info.device_index, e.info.eni_id))
        want = self.prefix_mode
        cooldown = self.cooldown
        for eni in enis:
            cidrs = [c for c in eni.cidrs if c.prefix == want and c.used < c.size]
            cidrs.sort(key=lambda c: -c.used)
            for cidr in cidrs:
                released = cidr.released
                for offset in range(cidr.size):
                    if cidr.taken >> offset & 1:
                        continue
                    at = released.get(offset)
                    if at is not None and now - at <= cooldown:
                        continue
                    self._take(pod, eni, cidr, offset)
                    return True
        return False

    def _take(self, pod: int, eni: PoolEni, cidr: PoolCidr, offset: int) -> None:
        cidr.taken |= 1 << offset
        cidr.released.pop(offset, None)
        if cidr.prefix and cidr.used == 0:
            eni.free_prefixes -= 1
        cidr.used += 1
        eni.assigned += 1
        eni.active_assigned += 1
        self.pods[pod] = (eni, cidr, offset)

    def release(self, pod: int, now: float) -> bool:
        """Release the address of ``pod``; it cools down before reuse. False if it held none."""
        held = self.pods.pop(pod, None)
        if held is None:
            return False
        eni, cidr, offset = held
        cidr.taken &= ~(1 << offset)
        cidr.released[offset] = now
        cidr.used -= 1
        if cidr.prefix and cidr.used == 0:
            eni.free_prefixes += 1
        eni.assigned -= 1
        if cidr.prefix == self.prefix_mode:
            eni.active_assigned -= 1
        eni.last_release = max(eni.last_release, now)
        return True

    def address_of(self, pod: int) -> int | None:
        held = self.pods.get(pod)
        return None if held is None else held[1].base + held[2]

    # -- reading --------------------------------------------------------------------------------

    def views(self, now: float) -> tuple[EniView, ...]:
        """The same views the core datastore gives ``plan_scaling``."""
        cooldown = self.cooldown
        return tuple(
            EniView(
                eni.info,
                tuple(
                    CidrView(
                        cidr.text,
                        cidr.prefix,
                        cidr.used,
                        sum(1 for at in cidr.released.values() if now - at <= cooldown),
                    )
                    for cidr in eni.cidrs
                ),
            )
            for eni in self.ordered
        )

    def next_cooling_end(self, now: float) -> float | None:
        """When the next cooling address becomes usable again (None when none cools)."""
        ends = [
            at + self.cooldown
            for eni in self.ordered
            for cidr in eni.cidrs
            if cidr.prefix == self.prefix_mode
            for at in cidr.released.values()
            if now - at <= self.cooldown
        ]
        return min(ends) if ends else None

    @property
    def assigned(self) -> int:
        return len(self.pods)

    @property
    def active_total(self) -> int:
        return sum(eni.active_size for eni in self.ordered if not eni.info.excluded)

    @property
    def subnet_addresses(self) -> int:
        """Addresses this node takes from its subnet: ENI primaries, secondaries, 16 per /28."""
        return len(self.ordered) + self.singles + ADDRESSES_PER_PREFIX * self.prefixes
