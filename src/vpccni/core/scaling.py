"""One pool-manager tick as a pure function: what to grow, release or free, and why.

``plan_scaling`` follows upstream's ``updateIPPoolIfRequired``: if the pool is too low, fill an
existing ENI (else create one, if there is room); else, if it is too high and no release happened
in the last 30 s, release surplus IPs or prefixes; then, independently, free one whole ENI when
the rules allow. Every action carries a reason a person can read.

Where upstream picks by Go map order (i.e. at random) we choose deterministically: fill the lowest
device index first, release from the least-used ENI first (and addresses that are not cooling
before cooling ones), free the newest qualifying ENI.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from vpccni.core.config import IpamConfig
from vpccni.core.pool_rules import (
    CidrView,
    EniView,
    NodeLimits,
    PoolStats,
    TargetState,
    allocatable_enis,
    deletable_eni,
    has_room_for_eni,
    pool_stats,
    pool_too_high,
    pool_too_low,
    prefixes_needed,
    release_count,
    should_remove_extra_enis,
    target_state,
)

RELEASE_INTERVAL_SECONDS = 30.0
INSUFFICIENT_CAPACITY_PAUSE_SECONDS = 120.0

ActionKind = Literal[
    "assign-ips", "assign-prefixes", "create-eni", "release-ips", "release-prefixes", "free-eni"
]


@dataclass(frozen=True)
class Action:
    """One step for the executor. ``count`` is addresses or prefixes; ``cidrs`` names releases."""

    action: ActionKind
    eni: str | None
    count: int
    reason: str
    cidrs: tuple[str, ...] = ()


@dataclass(frozen=True)
class PoolTiming:
    """Tick context the core cannot know by itself (times on the caller's clock)."""

    last_release_at: float | None = None
    insufficient_capacity_at: float | None = None
    terminating: bool = False
    unschedulable: bool = False
    throttled_until: float | None = None
    """EC2 throttled this node's growth: no growth before this time (vpccni; see docs/ipam.md)."""


@dataclass(frozen=True)
class Decision:
    """What one tick decided, with the figures behind it."""

    stats: PoolStats
    targets: TargetState
    pool_too_low: bool
    pool_too_high: bool
    freeable_eni: str | None
    actions: tuple[Action, ...]
    reasons: tuple[str, ...]


def plan_scaling(
    enis: Sequence[EniView],
    config: IpamConfig,
    limits: NodeLimits,
    now: float,
    timing: PoolTiming = PoolTiming(),
) -> Decision:
    """Decide one pool-manager tick."""
    tick = _Tick(tuple(enis), config, limits, now, timing, pool_stats(enis, config.mode))
    return tick.decide()


@dataclass
class _Tick:
    """The inputs of one tick and the reasons collected while deciding."""

    enis: tuple[EniView, ...]
    config: IpamConfig
    limits: NodeLimits
    now: float
    timing: PoolTiming
    stats: PoolStats
    reasons: list[str] = field(default_factory=list)

    def decide(self) -> Decision:
        config, stats = self.config, self.stats
        targets = target_state(stats, config)
        low, low_reason = pool_too_low(stats, config, self.limits)
        high, high_reason = pool_too_high(stats, config)
        self.reasons.append(
            f"mode {config.mode.value}: total {stats.total}, assigned {stats.assigned}, "
            f"cooling {stats.cooldown}, available {stats.available}"
        )
        self.reasons.append(("pool too low: " if low else "pool not low: ") + low_reason)
        self.reasons.extend(config.warnings())
        actions: list[Action] = []
        if low:
            actions.extend(self._grow(targets))
        elif high:
            self.reasons.append("pool too high: " + high_reason)
            actions.extend(self._release())
        freeable, free_reason = deletable_eni(self.enis, config, self.now)
        free = self._free_eni(actions)
        if free is not None:
            actions.append(free)
        elif freeable is None:
            self.reasons.append(free_reason)
        return Decision(
            stats=stats,
            targets=targets,
            pool_too_low=low,
            pool_too_high=high,
            freeable_eni=None if freeable is None else freeable.eni_id,
            actions=tuple(actions),
            reasons=tuple(self.reasons),
        )

    def _grow(self, targets: TargetState) -> list[Action]:
        blocked = self._attach_blocker() or self._capacity_pause()
        if blocked is not None:
            self.reasons.append(blocked)
            return []
        config, limits = self.config, self.limits
        slots = limits.slots_per_eni
        prefix = config.prefix_delegation
        if prefix:
            want = prefixes_needed(self.stats, config)
        else:
            want = targets.short if targets.defined else slots
        unit = "prefixes" if prefix else "IPs"
        candidates = allocatable_enis(self.enis, config, limits)
        if candidates:
            eni = candidates[0]
            count = min(slots - len(eni.cidrs), want)
            kind: ActionKind = "assign-prefixes" if prefix else "assign-ips"
            used = f"{len(eni.cidrs)} of {slots} slots used"
            reason = f"pool too low: add {count} {unit} to {eni.eni_id} ({used})"
            return [Action(kind, eni.eni_id, count, reason)]
        if not has_room_for_eni(self.enis, config, limits):
            cap = f"limit {limits.eni_cap(config)}" + (" (MAX_ENI)" if config.max_eni else "")
            self.reasons.append(f"max ENI limit reached: {len(self.enis)} ENIs, {cap}")
            return []
        amount = min(want, slots)
        if amount <= 0:
            return []
        reason = f"pool too low and no ENI has a free slot: create an ENI with {amount} {unit}"
        return [Action("create-eni", None, amount, reason)]

    def _release(self) -> list[Action]:
        last = self.timing.last_release_at
        if last is not None and self.now - last < RELEASE_INTERVAL_SECONDS:
            self.reasons.append(
                f"release skipped: the last one was {self.now - last:.0f} s ago (minimum "
                f"{RELEASE_INTERVAL_SECONDS:.0f} s)"
            )
            return []
        over = release_count(self.stats, self.config)
        actions: list[Action] = []
        for eni in sorted(self.enis, key=lambda e: (e.assigned, -e.info.device_index, e.eni_id)):
            if over <= 0:
                break
            freeable = sorted(
                (cidr for cidr in eni.cidrs if cidr.assigned == 0),
                key=lambda c: (c.cooling > 0, c.cidr),
            )[:over]
            over -= len(freeable)
            actions.extend(_release_actions(eni.eni_id, freeable))
        return actions

    def _free_eni(self, planned: Sequence[Action]) -> Action | None:
        if not should_remove_extra_enis(self.stats, self.config, self.limits, self.enis):
            return None
        blocked = self._attach_blocker()
        if blocked is not None:
            self.reasons.append(blocked)
            return None
        eni, why = deletable_eni(apply_releases(self.enis, planned), self.config, self.now)
        if eni is None:
            return None
        return Action("free-eni", eni.eni_id, 1, f"free ENI: {why}")

    def _attach_blocker(self) -> str | None:
        if self.timing.terminating:
            return "terminating: no ENI or IP changes"
        if self.timing.unschedulable and not self.config.manage_enis_non_schedulable:
            return "node is unschedulable and AWS_MANAGE_ENIS_NON_SCHEDULABLE is false"
        return None

    def _capacity_pause(self) -> str | None:
        until = self.timing.throttled_until
        if until is not None and self.now < until:
            return f"growth paused {until - self.now:.0f} s more: EC2 throttled this node's calls"
        since = self.timing.insufficient_capacity_at
        if since is None or self.now - since >= INSUFFICIENT_CAPACITY_PAUSE_SECONDS:
            return None
        left = INSUFFICIENT_CAPACITY_PAUSE_SECONDS - (self.now - since)
        return f"growth paused {left:.0f} s more after the subnet ran out of addresses"


def _release_actions(eni_id: str, freeable: Sequence[CidrView]) -> list[Action]:
    """One release action per CIDR kind."""
    actions = []
    for prefix in (False, True):
        chosen = tuple(cidr.cidr for cidr in freeable if cidr.prefix == prefix)
        if chosen:
            kind: ActionKind = "release-prefixes" if prefix else "release-ips"
            unit = "prefixes" if prefix else "IPs"
            reason = f"pool too high: release {len(chosen)} unused {unit} from {eni_id}"
            actions.append(Action(kind, eni_id, len(chosen), reason, chosen))
    return actions


def apply_releases(enis: Sequence[EniView], actions: Sequence[Action]) -> list[EniView]:
    """The views after the release actions took their CIDRs away."""
    released = {
        (a.eni, cidr) for a in actions if a.action.startswith("release") for cidr in a.cidrs
    }
    if not released:
        return list(enis)
    return [
        replace(eni, cidrs=tuple(c for c in eni.cidrs if (eni.eni_id, c.cidr) not in released))
        for eni in enis
    ]


__all__ = ["Action", "CidrView", "Decision", "PoolTiming", "apply_releases", "plan_scaling"]
