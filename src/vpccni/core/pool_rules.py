"""Warm-pool arithmetic, exactly as upstream ipamd computes it.

Works on read-only views of the pool (:class:`EniView`, :class:`CidrView`) so that the same code
judges the live datastore, an ``explain`` snapshot and the simulator. Notation as in upstream:
``T`` total, ``A`` assigned, ``C`` cooling, ``F = T - A`` available (cooling addresses count as
available), ``W``/``M``/``E``/``WP`` the WARM_IP / MINIMUM_IP / WARM_ENI / WARM_PREFIX targets,
``N`` addresses per ENI (``NP`` prefixes per ENI in prefix mode, ``N = NP * 16``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from vpccni.core.config import IpamConfig
from vpccni.core.model import ADDRESSES_PER_PREFIX, EniInfo, Mode

MIN_ENI_LIFETIME_SECONDS = 60.0


class HasEni(Protocol):
    """What the ENI-level rules read of an ENI: its info and its assigned addresses.

    Satisfied by :class:`EniView` and by the per-ENI counters of ``vpccni.core.wake``, so each
    rule below is written once for both.
    """

    @property
    def info(self) -> EniInfo: ...

    @property
    def assigned(self) -> int: ...


@dataclass(frozen=True)
class NodeLimits:
    """What the instance allows: ENIs (default card), IPv4 per ENI incl. primary, max pods."""

    max_enis: int
    ipv4_per_eni: int
    max_pods: int
    trunking: bool = True

    def eni_cap(self, config: IpamConfig) -> int:
        """``min(MAX_ENI, instance limit)``."""
        if config.max_eni is None:
            return self.max_enis
        return min(config.max_eni, self.max_enis)

    @property
    def slots_per_eni(self) -> int:
        """CIDRs an ENI can hold beside its primary address: N in SIP, NP in prefix mode."""
        return self.ipv4_per_eni - 1

    def addresses_per_eni(self, mode: Mode) -> int:
        """N: pod addresses a full ENI provides."""
        if mode.uses_prefixes:
            return self.slots_per_eni * ADDRESSES_PER_PREFIX
        return self.slots_per_eni


@dataclass(frozen=True)
class CidrView:
    """One /32 or /28 on an ENI, with how many of its addresses are assigned or cooling."""

    cidr: str
    prefix: bool
    assigned: int = 0
    cooling: int = 0

    @property
    def size(self) -> int:
        return ADDRESSES_PER_PREFIX if self.prefix else 1


@dataclass(frozen=True)
class EniView:
    """An ENI and its CIDRs as the decision logic sees them."""

    info: EniInfo
    cidrs: tuple[CidrView, ...] = ()

    @property
    def eni_id(self) -> str:
        return self.info.eni_id

    @property
    def assigned(self) -> int:
        return sum(cidr.assigned for cidr in self.cidrs)

    @property
    def cooling(self) -> int:
        return sum(cidr.cooling for cidr in self.cidrs)

    def active(self, mode: Mode) -> list[CidrView]:
        """CIDRs of the kind the mode hands out."""
        return [cidr for cidr in self.cidrs if cidr.prefix == mode.uses_prefixes]


@dataclass(frozen=True)
class PoolStats:
    """Upstream's ``GetIPStats`` plus the prefix counters."""

    total: int
    assigned: int
    cooldown: int
    total_prefixes: int
    free_prefixes: int

    @property
    def available(self) -> int:
        return self.total - self.assigned


@dataclass(frozen=True)
class TargetState:
    """How far the pool is from the warm IP targets (prefixes in prefix mode)."""

    short: int
    over: int
    defined: bool


def pool_stats(enis: Iterable[EniView], mode: Mode) -> PoolStats:
    """Totals over non-excluded ENIs and active-kind CIDRs; prefix counters over all ENIs."""
    total = assigned = cooling = prefixes = free_prefixes = 0
    for eni in enis:
        for cidr in eni.cidrs:
            if cidr.prefix:
                prefixes += 1
                free_prefixes += cidr.assigned == 0
        if eni.info.excluded:
            continue
        for cidr in eni.active(mode):
            total += cidr.size
            assigned += cidr.assigned
            cooling += cidr.cooling
    return PoolStats(total, assigned, cooling, prefixes, free_prefixes)


def target_state(stats: PoolStats, config: IpamConfig) -> TargetState:
    """Upstream's ``datastoreTargetState``: short and over for W and M."""
    if not config.warm_ip_targets_defined:
        return TargetState(0, 0, False)
    warm, minimum = config.warm_ip_target, config.minimum_ip_target
    free, total = stats.available, stats.total
    short = max(warm - free, 0, minimum - total)
    over = max(min(max(free - warm, 0), total - minimum), 0)
    if not config.prefix_delegation:
        return TargetState(short, over, True)
    short_prefixes = math.ceil(short / ADDRESSES_PER_PREFIX)
    need_warm = math.ceil((stats.assigned + warm) / ADDRESSES_PER_PREFIX)
    need_minimum = math.ceil(minimum / ADDRESSES_PER_PREFIX)
    prefixes = stats.total_prefixes
    over_prefixes = max(min(stats.free_prefixes, prefixes - need_warm, prefixes - need_minimum), 0)
    return TargetState(short_prefixes, over_prefixes, True)


def prefixes_needed(stats: PoolStats, config: IpamConfig) -> int:
    """Upstream's ``getPrefixesNeeded``: at least one prefix per increase."""
    targets = target_state(stats, config)
    if targets.defined:
        return max(1, targets.short)
    return max(1, config.warm_prefix_target - stats.free_prefixes)


def pool_is_low(stats: PoolStats, config: IpamConfig, limits: NodeLimits) -> bool:
    """Upstream's ``isDatastorePoolTooLow`` (the rule; ``pool_too_low`` adds the words)."""
    if stats.total >= limits.max_pods:
        return False
    if config.warm_ip_targets_defined:
        return target_state(stats, config).short > 0
    free = stats.available
    if config.prefix_delegation:
        wanted = config.warm_prefix_target * ADDRESSES_PER_PREFIX
        return free < wanted or (config.warm_prefix_target == 0 and free == 0)
    wanted = config.warm_eni_target * limits.addresses_per_eni(config.mode)
    return free < wanted or (config.warm_eni_target == 0 and free == 0)


def pool_is_high(stats: PoolStats, config: IpamConfig) -> bool:
    """Upstream's ``isDatastorePoolTooHigh`` (the rule; ``pool_too_high`` adds the words)."""
    if config.warm_ip_targets_defined:
        return target_state(stats, config).over > 0
    return config.prefix_delegation and stats.free_prefixes > config.warm_prefix_target


def pool_too_low(stats: PoolStats, config: IpamConfig, limits: NodeLimits) -> tuple[bool, str]:
    """``pool_is_low``, with the reason in words."""
    low = pool_is_low(stats, config, limits)
    if stats.total >= limits.max_pods:
        return low, f"total {stats.total} >= max pods {limits.max_pods}: no growth"
    unit = "prefixes" if config.prefix_delegation else "IPs"
    if config.warm_ip_targets_defined:
        targets = target_state(stats, config)
        return low, (
            f"warm IP targets (WARM_IP_TARGET={config.warm_ip_target}, MINIMUM_IP_TARGET="
            f"{config.minimum_ip_target}): short {targets.short} {unit}"
        )
    free = stats.available
    if config.prefix_delegation:
        wanted = config.warm_prefix_target * ADDRESSES_PER_PREFIX
        return low, f"WARM_PREFIX_TARGET={config.warm_prefix_target}: {free} free, want {wanted}"
    wanted = config.warm_eni_target * limits.addresses_per_eni(config.mode)
    return low, f"WARM_ENI_TARGET={config.warm_eni_target}: {free} free, want {wanted}"


def pool_too_high(stats: PoolStats, config: IpamConfig) -> tuple[bool, str]:
    """``pool_is_high``, with the reason in words."""
    high = pool_is_high(stats, config)
    if config.warm_ip_targets_defined:
        unit = "prefixes" if config.prefix_delegation else "IPs"
        over = target_state(stats, config).over
        return high, f"over the warm IP targets by {over} {unit}"
    if config.prefix_delegation:
        return high, (
            f"{stats.free_prefixes} free prefixes, WARM_PREFIX_TARGET={config.warm_prefix_target}"
        )
    return high, "WARM_ENI_TARGET alone never releases single IPs, only whole ENIs"


def release_count(stats: PoolStats, config: IpamConfig) -> int:
    """How many CIDRs a decrease gives back (IPs, or prefixes in prefix mode)."""
    targets = target_state(stats, config)
    if targets.defined:
        return targets.over
    if config.prefix_delegation:
        return max(stats.free_prefixes - config.warm_prefix_target, 0)
    return 0


def should_remove_extra_enis(
    stats: PoolStats, config: IpamConfig, limits: NodeLimits, enis: Sequence[HasEni]
) -> bool:
    """Upstream's ``shouldRemoveExtraENIs`` gate before looking for a deletable ENI."""
    if config.warm_ip_targets_defined:
        return True
    per_eni = limits.addresses_per_eni(config.mode)
    if config.prefix_delegation:
        return stats.available >= (config.warm_prefix_target + 1) * per_eni or any(
            not eni.info.primary and not eni.info.trunk and not eni.info.efa and eni.assigned == 0
            for eni in enis
        )
    return stats.available >= (config.warm_eni_target + 1) * per_eni


def deletable_eni(
    enis: Sequence[EniView], config: IpamConfig, now: float
) -> tuple[EniView | None, str]:
    """Upstream's ``getDeletableENI`` rules; the newest (highest device index) qualifying ENI.

    When none qualifies, the reason names what keeps each secondary ENI (e.g. "no ENI can be
    freed: eni-3 is 20 s old (ENIs are freed after 60 s)"); the primary ENI is never freed.
    """
    kept: list[str] = []
    for eni in sorted(enis, key=lambda e: (-e.info.device_index, e.eni_id)):
        why = _deletion_blocker(eni, enis, config, now)
        if why is None:
            return eni, f"{eni.eni_id} has no assigned or cooling address and the rest suffices"
        if not eni.info.primary:
            kept.append(f"{eni.eni_id} {why}")
    return None, "no ENI can be freed" + (": " + ", ".join(kept) if kept else "")


def _deletion_blocker(
    eni: EniView, enis: Sequence[EniView], config: IpamConfig, now: float
) -> str | None:
    """The first rule that keeps ``eni`` (upstream's rules 1-9), or None if it may go."""
    info = eni.info
    if info.primary:
        return "is the primary ENI"
    age = now - info.created_at
    if age < MIN_ENI_LIFETIME_SECONDS:
        return (
            f"is {int(max(age, 0.0))} s old (ENIs are freed after {MIN_ENI_LIFETIME_SECONDS:g} s)"
        )
    if eni.cooling > 0:
        return f"has {eni.cooling} cooling address" + ("es" if eni.cooling > 1 else "")
    if eni.assigned > 0:
        return f"has {eni.assigned} assigned address" + ("es" if eni.assigned > 1 else "")
    if info.trunk or info.efa:
        return "is a trunk or EFA ENI"
    others = [other for other in enis if other.eni_id != eni.eni_id and not other.info.excluded]
    active = [cidr for other in others for cidr in other.active(config.mode)]
    rest = rest_blocker(
        free=sum(c.size - c.assigned for c in active),
        total=sum(c.size for c in active),
        free_prefixes=sum(
            1 for other in others for cidr in other.cidrs if cidr.prefix and cidr.assigned == 0
        ),
        config=config,
    )
    return None if rest is None else f"is needed: {rest}"


def rest_blocker(free: int, total: int, free_prefixes: int, config: IpamConfig) -> str | None:
    """Rules 5-7 of ``deletable_eni``: what the *other* ENIs fail to meet, or None.

    ``free``/``total`` count their active-kind addresses, ``free_prefixes`` their unused /28s.
    """
    mode = config.mode
    if config.warm_ip_target > 0 and free < round_up_to_prefixes(config.warm_ip_target, mode):
        return "the other ENIs would not meet WARM_IP_TARGET"
    if config.minimum_ip_target > 0 and total < round_up_to_prefixes(
        config.minimum_ip_target, mode
    ):
        return "the other ENIs would not meet MINIMUM_IP_TARGET"
    if (
        mode.uses_prefixes
        and config.warm_prefix_target > 0
        and free_prefixes < config.warm_prefix_target
    ):
        return "the other ENIs would not meet WARM_PREFIX_TARGET"
    if not config.warm_ip_targets_defined and free == 0 and _zero_warm_target(config):
        # Deliberate difference: with WARM_ENI_TARGET=0 (WARM_PREFIX_TARGET=0) an empty pool is
        # "too low" (pool_is_low), so upstream frees this ENI and creates another a tick later,
        # forever (e.g. custom networking, whose primary ENI holds no pod address). Keep it.
        return (
            "the other ENIs would have no free address, and an empty pool is too low with a "
            "warm target of 0 (upstream frees and re-creates it every minute)"
        )
    return None


def _zero_warm_target(config: IpamConfig) -> bool:
    if config.mode.uses_prefixes:
        return config.warm_prefix_target == 0
    return config.warm_eni_target == 0


def round_up_to_prefixes(addresses: int, mode: Mode) -> int:
    """In prefix mode, ``addresses`` rounded up to whole /28s; unchanged otherwise."""
    if not mode.uses_prefixes:
        return addresses
    return math.ceil(addresses / ADDRESSES_PER_PREFIX) * ADDRESSES_PER_PREFIX


def has_room_for_eni(enis: Sequence[HasEni], config: IpamConfig, limits: NodeLimits) -> bool:
    """Upstream's ``hasRoomForEni`` (unmanaged ENIs are not in the pool and count as 0 here).

    With security groups for pods on a trunking type, one slot stays reserved for the trunk ENI
    until it exists.
    """
    trunk_reserve = int(
        limits.trunking and config.pod_eni and not any(eni.info.trunk for eni in enis)
    )
    return len(enis) < limits.eni_cap(config) - trunk_reserve


def can_take_cidrs(info: EniInfo, cidr_count: int, config: IpamConfig, limits: NodeLimits) -> bool:
    """The pool manager may add CIDRs to this ENI: not trunk, not excluded, a free slot."""
    return (
        not info.trunk
        and not info.excluded
        and not (config.custom_networking and info.primary)
        and cidr_count < limits.slots_per_eni
    )


def allocatable_enis(
    enis: Sequence[EniView], config: IpamConfig, limits: NodeLimits
) -> list[EniView]:
    """ENIs that can take more CIDRs, lowest device index first (upstream: map order)."""
    found = [eni for eni in enis if can_take_cidrs(eni.info, len(eni.cidrs), config, limits)]
    return sorted(found, key=lambda e: (e.info.device_index, e.eni_id))
