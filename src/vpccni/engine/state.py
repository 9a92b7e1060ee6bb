"""What the pool engine remembers between ticks and reconciles, and what it may do to EC2."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Network

from vpccni.core.no_address import Attaching, Failure, PoolFacts
from vpccni.core.scaling import Decision, PoolTiming
from vpccni.core.subnets import PlacementProblem


@dataclass(frozen=True)
class ProvisioningPolicy:
    """What the engine may do to EC2 (upstream's awsutils variables; the default is upstream's)."""

    provisioning: bool = True
    """False (``DISABLE_NETWORK_RESOURCE_PROVISIONING``): no ENI or address is created, assigned,
    released, freed or tagged; ticks decide but act on nothing, reconcile only follows."""
    imds_only: bool = False
    """``ENABLE_IMDS_ONLY_MODE``: the node's ENIs are read from IMDS only, never from EC2 (no
    tags, no DescribeSubnets); implies ``provisioning`` off."""
    manage_untagged: bool = True
    """``MANAGE_UNTAGGED_ENI``: an attached ENI without this node's instance tag is managed."""


@dataclass
class EngineState:
    """Timers of the decision rules, the reconcile cooldown cache and the errors seen."""

    last_release_at: float | None = None
    insufficient_capacity_at: float | None = None
    terminating: bool = False
    unschedulable: bool = False
    """The Node is cordoned (read from the cluster source before each decision)."""
    recently_released: dict[IPv4Network, float] = field(default_factory=dict)
    """CIDRs this node released, and when: not re-added from stale data within the cooldown."""
    unmanaged: set[str] = field(default_factory=set)
    """Attached ENIs EC2 says are not ours to manage (no_manage tag, other network cards,
    untagged with ``MANAGE_UNTAGGED_ENI=false``)."""
    unmanaged_slots: int = 0
    """The ENI slots of network card 0 that unmanaged ENIs take: the pool has that many fewer."""
    may_differ: bool = True
    """The pool may lack something EC2 holds (a failed call, an attachment still pending)."""
    throttled_until: float | None = None
    throttle_streak: int = 0
    """Consecutive growth attempts EC2 throttled: the pause doubles with each (jittered)."""
    subnet_read_at: float | None = None
    last_decision: Decision | None = None
    last_error: str = ""
    growth_failure: Failure | None = None
    """The last failed growth call since the pool last grew (for "why has my pod no IP")."""
    attaching: Attaching | None = None
    """The ENI being created and attached, and since when (until it joins the pool)."""
    subnet_free: int | None = None
    """The node subnet's free addresses at the last DescribeSubnets."""
    placement_problem: PlacementProblem | None = None
    """Why new ENIs cannot be placed (a broken ENIConfig, no pod subnet), until one is."""
    errors: dict[str, int] = field(default_factory=dict)
    denied_until: dict[tuple[str, str | None], float] = field(default_factory=dict)
    """Actions (kind, ENI) EC2 denied (UnauthorizedOperation): skipped until this time."""
    denied_enis: dict[str, float] = field(default_factory=dict)
    """Attached ENIs left out of the pool because EC2 denied tagging them (a tag-scoped policy:
    not this cluster's), until this time; reconcile does not read EC2 for them before."""
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
            or timing.unschedulable != self.unschedulable
        ):
            timing = self._timing = PoolTiming(
                self.last_release_at,
                self.insufficient_capacity_at,
                self.terminating,
                unschedulable=self.unschedulable,
                throttled_until=self.throttled_until,
            )
        return timing

    def facts(
        self,
        subnet_id: str,
        cooling_released_at: Sequence[float] = (),
        policy: ProvisioningPolicy | None = None,
    ) -> PoolFacts:
        """What ``why_no_address`` needs of the engine (and the caller's cooling times)."""
        return PoolFacts(
            started=self.last_decision is not None,
            attaching=self.attaching,
            growth_failure=self.growth_failure,
            throttled_until=self.throttled_until,
            insufficient_capacity_at=self.insufficient_capacity_at,
            subnet_id=subnet_id,
            subnet_free=self.subnet_free,
            cooling_released_at=tuple(cooling_released_at),
            placement_problem=self.placement_problem,
            provisioning=policy is None or policy.provisioning,
        )
