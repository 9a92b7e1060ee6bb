"""What the pool engine remembers between ticks and reconciles."""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Network

from vpccni.core.scaling import Decision, PoolTiming


@dataclass
class EngineState:
    """Timers of the decision rules, the reconcile cooldown cache and the errors seen."""

    last_release_at: float | None = None
    insufficient_capacity_at: float | None = None
    terminating: bool = False
    recently_released: dict[IPv4Network, float] = field(default_factory=dict)
    """CIDRs this node released, and when: not re-added from stale data within the cooldown."""
    unmanaged: set[str] = field(default_factory=set)
    """Attached ENIs EC2 says are not ours to manage (no_manage tag, other network cards)."""
    may_differ: bool = True
    """The pool may lack something EC2 holds (a failed call, an attachment still pending)."""
    throttled_until: float | None = None
    throttle_streak: int = 0
    """Consecutive growth attempts EC2 throttled: the pause doubles with each (jittered)."""
    subnet_read_at: float | None = None
    last_decision: Decision | None = None
    last_error: str = ""
    errors: dict[str, int] = field(default_factory=dict)
    exhaustions: int = 0
    imds_reconciles: int = 0
    ec2_reconciles: int = 0
    _timing: PoolTiming = field(default_factory=PoolTiming)

    def timing(self) -> PoolTiming:
        """The timers as ``plan_scaling`` and ``next_wake`` take them (cached while unchanged)."""
        timing = self._timing
        if (
            timing.last_release_at != self.last_release_at
            or timing.insufficient_capacity_at != self.insufficient_capacity_at
            or timing.terminating != self.terminating
            or timing.throttled_until != self.throttled_until
        ):
            timing = self._timing = PoolTiming(
                self.last_release_at,
                self.insufficient_capacity_at,
                self.terminating,
                throttled_until=self.throttled_until,
            )
        return timing
