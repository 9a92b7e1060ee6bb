"""When a pool next needs a pool-manager tick: the gate that makes event-driven time exact.

``next_wake`` answers, for a pool summarised per ENI (counts, not CIDR lists), the earliest time
at which ``plan_scaling`` can return an action if nothing else changes: ``now`` (a tick now would
act), a later time (a timer must pass first: the 120 s capacity pause, the 30 s release interval,
an ENI's 60 s minimum lifetime, an address's cooldown) or ``math.inf`` (only a pod or pool change
can make it act). It applies the same rules as ``plan_scaling`` in the same order - pool too low
(grow), else too high (release), then free one ENI - using the pool arithmetic of
``vpccni.core.pool_rules``; the property tests check it against ``plan_scaling`` on random pools and
times, in both directions. The simulator calls it after every pod event so that it only ticks a
node when the tick can do something, instead of stepping 1,000 nodes every 5 s.

Per-ENI state comes through :class:`EniCounts`, a read-only protocol, so a caller can hand in its
own live counters without building views; ``counts_of`` builds them from views for the rest.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from vpccni.core.config import IpamConfig
from vpccni.core.model import EniInfo, Mode
from vpccni.core.pool_rules import (
    MIN_ENI_LIFETIME_SECONDS,
    EniView,
    NodeLimits,
    PoolStats,
    can_take_cidrs,
    has_room_for_eni,
    pool_is_high,
    pool_is_low,
    rest_blocker,
    should_remove_extra_enis,
)
from vpccni.core.scaling import (
    INSUFFICIENT_CAPACITY_PAUSE_SECONDS,
    RELEASE_INTERVAL_SECONDS,
    PoolTiming,
)

NEVER = math.inf
EARLY = 1e-6
"""Timer wakes come this much early: float rounding may cost a no-op tick, never a late one."""


class EniCounts(Protocol):
    """What the decision rules read of one ENI (all kinds of CIDR unless it says active)."""

    @property
    def info(self) -> EniInfo: ...

    @property
    def cidr_count(self) -> int: ...

    @property
    def assigned(self) -> int: ...

    @property
    def active_size(self) -> int: ...

    @property
    def active_assigned(self) -> int: ...

    @property
    def prefix_count(self) -> int: ...

    @property
    def free_prefixes(self) -> int: ...

    @property
    def last_release(self) -> float:
        """Latest release time of an unassigned address on the ENI (-inf when none)."""
        ...


@dataclass(frozen=True)
class Counts:
    """An :class:`EniCounts` value built from a view (tests, plan, explain)."""

    info: EniInfo
    cidr_count: int
    assigned: int
    active_size: int
    active_assigned: int
    prefix_count: int
    free_prefixes: int
    last_release: float


def counts_of(view: EniView, mode: Mode, last_release: float = -math.inf) -> Counts:
    """The counts of one ENI view; ``last_release`` is known to the datastore only."""
    active = view.active(mode)
    return Counts(
        info=view.info,
        cidr_count=len(view.cidrs),
        assigned=view.assigned,
        active_size=sum(c.size for c in active),
        active_assigned=sum(c.assigned for c in active),
        prefix_count=sum(1 for c in view.cidrs if c.prefix),
        free_prefixes=sum(1 for c in view.cidrs if c.prefix and c.assigned == 0),
        last_release=last_release,
    )


def stats_of(enis: Sequence[EniCounts]) -> PoolStats:
    """``pool_stats`` from counts. Cooling is left at 0: no rule reads it (F = T - A)."""
    total = assigned = prefixes = free_prefixes = 0
    for eni in enis:
        prefixes += eni.prefix_count
        free_prefixes += eni.free_prefixes
        if not eni.info.excluded:
            total += eni.active_size
            assigned += eni.active_assigned
    return PoolStats(total, assigned, 0, prefixes, free_prefixes)


def next_wake(
    enis: Sequence[EniCounts],
    config: IpamConfig,
    limits: NodeLimits,
    now: float,
    *,
    timing: PoolTiming,
    cooldown_seconds: float,
) -> float:
    """The earliest time >= ``now`` at which ``plan_scaling`` may act, or ``math.inf``."""
    stats = stats_of(enis)
    attach_blocked = timing.terminating or (
        timing.unschedulable and not config.manage_enis_non_schedulable
    )
    wake = NEVER
    low, high = _low_high(stats, config, limits)
    if low:
        if not attach_blocked and _can_grow(enis, config, limits):
            wake = _capacity_pause_end(timing, now)
    elif high:
        last = timing.last_release_at
        if last is None or now - last >= RELEASE_INTERVAL_SECONDS:
            return now
        wake = last + RELEASE_INTERVAL_SECONDS - EARLY
    if not attach_blocked and should_remove_extra_enis(stats, config, limits, enis):
        wake = min(wake, _free_eni_wake(enis, config, now, cooldown_seconds))
    return max(wake, now)


def _low_high(stats: PoolStats, config: IpamConfig, limits: NodeLimits) -> tuple[bool, bool]:
    """``pool_too_low`` and ``pool_too_high`` without their reason text (the same rules)."""
    return pool_is_low(stats, config, limits), pool_is_high(stats, config)


def _capacity_pause_end(timing: PoolTiming, now: float) -> float:
    end = now
    until = timing.throttled_until
    if until is not None and now < until:
        end = until
    since = timing.insufficient_capacity_at
    if since is not None and end - since < INSUFFICIENT_CAPACITY_PAUSE_SECONDS:
        end = since + INSUFFICIENT_CAPACITY_PAUSE_SECONDS - EARLY
    return max(end, now)


def _can_grow(enis: Sequence[EniCounts], config: IpamConfig, limits: NodeLimits) -> bool:
    """An ENI has a free slot (``allocatable_enis``) or there is room for one (``has_room``)."""
    for eni in enis:
        if can_take_cidrs(eni.info, eni.cidr_count, config, limits):
            return True
    return has_room_for_eni(enis, config, limits)


def _free_eni_wake(
    enis: Sequence[EniCounts], config: IpamConfig, now: float, cooldown_seconds: float
) -> float:
    """When the first ENI passes every ``deletable_eni`` rule (``inf`` if none ever will)."""
    wake = NEVER
    for eni in enis:
        info = eni.info
        if info.primary or info.trunk or info.efa or eni.assigned > 0:
            continue
        if not _rest_suffices(eni, enis, config):
            continue
        ready = now
        if now - info.created_at < MIN_ENI_LIFETIME_SECONDS:
            ready = info.created_at + MIN_ENI_LIFETIME_SECONDS - EARLY
        if now - eni.last_release <= cooldown_seconds:
            # cooling while now - released <= cooldown; a tick at that instant is a no-op
            ready = max(ready, eni.last_release + cooldown_seconds - EARLY)
        wake = min(wake, ready)
    return wake


def _rest_suffices(eni: EniCounts, enis: Sequence[EniCounts], config: IpamConfig) -> bool:
    """Rules 5-7 of ``deletable_eni``: the other ENIs still meet W, M and WP."""
    others = [o for o in enis if o.info.eni_id != eni.info.eni_id and not o.info.excluded]
    blocker = rest_blocker(
        free=sum(o.active_size - o.active_assigned for o in others),
        total=sum(o.active_size for o in others),
        free_prefixes=sum(o.free_prefixes for o in others),
        config=config,
    )
    return blocker is None
