"""Why a pod gets no address: one named cause with its numbers, as a pure function.

``why_no_address`` judges the pool views, the configuration, the node's limits and the facts the
pool engine remembers (``PoolFacts``: whether a pass has run, an ENI being attached, the last
failed growth call, the throttle and subnet-exhaustion pauses, the subnet's last known free
count, when the cooling addresses were released) at ``now``, and names the one cause an operator
has to act on - instead of upstream's single "no available IP" for every case. Checked in order:

1. an address is ready: no cause (``None``); provisioning is off: addresses come only from
   whoever assigns them to the node's ENIs;
2. the pool cannot grow: cooling addresses (they come back), else max pods, MAX_ENI or the
   instance's ENI limit (node full) - no retry helps without a change;
3. the daemon has not run its first pool pass yet (starting);
4. an ENI is being attached (growing);
5. no new ENI can be placed (custom networking's ENIConfig is missing or broken, subnet
   discovery found no pod subnet) while no existing ENI has a free slot;
6. EC2 refuses growth: UnauthorizedOperation (needs an IAM change; the missing ``ec2:`` action
   is named), the subnet is exhausted
   (paused 120 s), EC2 throttled the node (paused with backoff);
7. released addresses are cooling down;
8. another EC2 error on the last growth call;
9. the warm targets ask for no growth; else the pool manager grows on its next pass.

``retryable`` says whether a retry can succeed without a change; the plugin API maps it to CNI
code 11 ("try again later") or its own code for "no address without a change".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from vpccni.core.aws_types import Throttled, Unauthorized, error_for_code
from vpccni.core.config import IpamConfig
from vpccni.core.maxpods import HOST_NETWORK_PODS, default_max_pods
from vpccni.core.pool_rules import (
    EniView,
    NodeLimits,
    allocatable_enis,
    has_room_for_eni,
    pool_stats,
    pool_too_low,
)
from vpccni.core.scaling import INSUFFICIENT_CAPACITY_PAUSE_SECONDS
from vpccni.core.subnets import PlacementProblem

REASONS = (
    "node_full",
    "max_eni",
    "max_pods",
    "cooling",
    "subnet_exhausted",
    "throttled",
    "unauthorized",
    "ec2_error",
    "attaching",
    "eniconfig",
    "pod_subnet",
    "growing",
    "starting",
    "targets",
    "provisioning_off",
)
"""Every cause's short name (the ``reason`` label of ``vpccni_no_address_adds_total``)."""
_PERMISSION = re.compile(r"\bnot authorized to perform: ([A-Za-z0-9-]+:[A-Za-z0-9]+)")
"""The permission EC2's UnauthorizedOperation message says is missing."""


@dataclass(frozen=True)
class Failure:
    """A failed EC2 call of the pool manager: its step, EC2's code and operation, and when."""

    fn: str
    code: str
    operation: str
    message: str
    at: float


@dataclass(frozen=True)
class Attaching:
    """An ENI the pool manager is creating or attaching (``eni_id`` empty until EC2 named it)."""

    eni_id: str
    since: float


@dataclass(frozen=True)
class PoolFacts:
    """What the pool engine knows beyond the views (times on the caller's clock)."""

    started: bool = True
    """The pool manager has run at least one pass since the daemon started."""
    attaching: Attaching | None = None
    growth_failure: Failure | None = None
    """The last failed growth call since the pool last grew."""
    throttled_until: float | None = None
    insufficient_capacity_at: float | None = None
    subnet_id: str = ""
    subnet_free: int | None = None
    """The subnet's free addresses at the last DescribeSubnets, if any."""
    cooling_released_at: Sequence[float] = ()
    """When each released address was released (only those still cooling matter)."""
    placement_problem: PlacementProblem | None = None
    """Why no new ENI can be placed (``vpccni.core.subnets``), if so."""
    provisioning: bool = True
    """False: ``DISABLE_NETWORK_RESOURCE_PROVISIONING`` or ``ENABLE_IMDS_ONLY_MODE``; the pool
    holds only what someone else assigns to the node's ENIs."""


@dataclass(frozen=True)
class NoAddress:
    """The cause: a short name, the sentence with its numbers, what to do, whether to retry."""

    reason: str
    message: str
    action: str
    retryable: bool


def why_no_address(
    enis: Sequence[EniView],
    config: IpamConfig,
    limits: NodeLimits,
    facts: PoolFacts,
    now: float,
) -> NoAddress | None:
    """The one cause a pod gets no address now, or None when an address is ready."""
    stats = pool_stats(enis, config.mode)
    if stats.total - stats.assigned - stats.cooldown > 0:
        return None
    if not facts.provisioning:
        return _provisioning_off(stats.total, stats.assigned, stats.cooldown)
    if not _can_grow(enis, config, limits, stats.total):
        if stats.cooldown > 0:
            return _cooling(stats.cooldown, config, facts, now)
        return _capacity(enis, config, limits, stats.total, stats.assigned)
    checks: tuple[Callable[[], NoAddress | None], ...] = (
        lambda: _starting(stats.total, stats.assigned, facts),
        lambda: _attaching(enis, facts, now),
        lambda: _placement(enis, config, limits, facts),
        lambda: _ec2_refusal(facts, now),
        lambda: _cooling(stats.cooldown, config, facts, now) if stats.cooldown else None,
        lambda: _other_failure(facts, now),
    )
    for check in checks:
        found = check()
        if found is not None:
            return found
    return _growing(enis, config, limits)


def _provisioning_off(total: int, assigned: int, cooling: int) -> NoAddress:
    return NoAddress(
        "provisioning_off",
        "provisioning is off (DISABLE_NETWORK_RESOURCE_PROVISIONING or ENABLE_IMDS_ONLY_MODE): "
        f"vpccni adds no address itself, and all {total} on the node's ENIs are taken "
        f"({assigned} assigned, {cooling} cooling)",
        "assign more addresses to the node's ENIs (they join the pool at the next reconcile), "
        "or unset the variable so that vpccni grows the pool",
        True,
    )


def _starting(total: int, assigned: int, facts: PoolFacts) -> NoAddress | None:
    if facts.started:
        return None
    return NoAddress(
        "starting",
        "the daemon is starting: the pool manager has not run its first pass yet "
        f"({total} addresses in the pool, {assigned} assigned)",
        "retry shortly; the first pass fills the warm pool",
        True,
    )


def _other_failure(facts: PoolFacts, now: float) -> NoAddress | None:
    failure = facts.growth_failure
    if failure is None:
        return None
    return NoAddress(
        "ec2_error",
        f"EC2 refusing: {failure.code or 'error'} on {_operation(failure)} "
        f"({_ago(failure.at, now)}): {failure.message}",
        "the pool manager retries on its next pass; retry shortly",
        True,
    )


def _growing(enis: Sequence[EniView], config: IpamConfig, limits: NodeLimits) -> NoAddress:
    stats = pool_stats(enis, config.mode)
    low, why = pool_too_low(stats, config, limits)
    if not low:
        return NoAddress(
            "targets",
            f"the warm pool targets ask for no growth although no address is free: {why}",
            "set WARM_IP_TARGET / MINIMUM_IP_TARGET / WARM_ENI_TARGET so that the pool keeps "
            "a free address",
            False,
        )
    return NoAddress(
        "growing",
        f"growing: all {stats.total} addresses are assigned; the pool manager adds addresses "
        "on its next pass",
        "retry shortly",
        True,
    )


def _can_grow(enis: Sequence[EniView], config: IpamConfig, limits: NodeLimits, total: int) -> bool:
    """The pool rules allow more addresses: below max pods, and an ENI slot or ENI to add."""
    if total >= limits.max_pods:
        return False
    return bool(allocatable_enis(enis, config, limits)) or has_room_for_eni(enis, config, limits)


def _capacity(
    enis: Sequence[EniView], config: IpamConfig, limits: NodeLimits, total: int, assigned: int
) -> NoAddress:
    """Max pods, MAX_ENI or node full: why the pool cannot grow."""
    held = f"{assigned} of {total} addresses assigned"
    if total >= limits.max_pods:
        return NoAddress(
            "max_pods",
            f"max pods reached: {held}; the pool does not grow beyond max pods {limits.max_pods}",
            "schedule the pod on another node, or raise the node's max pods (--max-pods and "
            "kubelet's maxPods) if the instance can hold more",
            False,
        )
    cap = limits.eni_cap(config)
    if config.max_eni is not None and config.max_eni < limits.max_enis:
        return NoAddress(
            "max_eni",
            f"MAX_ENI reached: {len(enis)} of {cap} ENIs (MAX_ENI={config.max_eni}; "
            f"{limits.max_enis} allowed by the instance type), {held}",
            "schedule the pod on another node, or raise MAX_ENI",
            False,
        )
    pod_enis = limits.max_enis - (1 if config.custom_networking else 0)
    default = default_max_pods(pod_enis, limits.ipv4_per_eni)
    if limits.max_pods == default:
        host = f"max pods {limits.max_pods} includes {HOST_NETWORK_PODS} host-network pods"
    else:
        host = f"max pods is {limits.max_pods}"
    reserved = " (one kept for the trunk ENI)" if len(enis) < cap else ""
    if config.custom_networking:
        host += "; custom networking: the primary ENI carries no pod address"
    action = "schedule the pod on another node or a larger instance type"
    if not config.prefix_delegation:
        action += ", or enable prefix delegation (ENABLE_PREFIX_DELEGATION=true) on Nitro"
    return NoAddress(
        "node_full",
        f"node full: {len(enis)} of {cap} ENIs{reserved}, {held} ({host})",
        action + "; lower kubelet's maxPods to what the node holds",
        False,
    )


def _cooling(count: int, config: IpamConfig, facts: PoolFacts, now: float) -> NoAddress:
    cooldown = config.ip_cooldown_seconds
    ends = [at + cooldown for at in facts.cooling_released_at if now - at <= cooldown]
    first = f"first reusable in {max(min(ends) - now, 0.0):.0f} s" if ends else "reusable soon"
    return NoAddress(
        "cooling",
        f"addresses only cooling: {count} released, {first} (IP_COOLDOWN_PERIOD={cooldown:g})",
        "retry shortly; a released address is reused once its cooldown is over",
        True,
    )


def _attaching(enis: Sequence[EniView], facts: PoolFacts, now: float) -> NoAddress | None:
    attaching = facts.attaching
    if attaching is None or any(e.eni_id == attaching.eni_id for e in enis):
        return None
    what = f"ENI {attaching.eni_id}" if attaching.eni_id else "a new ENI"
    verb = "attaching" if attaching.eni_id else "being created"
    return NoAddress(
        "attaching",
        f"growing: {what} {verb} since {max(now - attaching.since, 0.0):.0f} s",
        "retry shortly; its addresses join the pool once the node sees the ENI",
        True,
    )


def _placement(
    enis: Sequence[EniView], config: IpamConfig, limits: NodeLimits, facts: PoolFacts
) -> NoAddress | None:
    """A new ENI is needed (no ENI has a free slot) and cannot be placed."""
    problem = facts.placement_problem
    if problem is None or allocatable_enis(enis, config, limits):
        return None
    return NoAddress(problem.reason, problem.message, problem.action, False)


def _ec2_refusal(facts: PoolFacts, now: float) -> NoAddress | None:
    """Unauthorized, subnet exhausted or throttled, from the engine's facts."""
    failure = facts.growth_failure
    kind = error_for_code(failure.code) if failure is not None else None
    if failure is not None and kind is Unauthorized:
        named = _PERMISSION.search(failure.message)  # AWS names it: CreateTags for a tagged create
        action = named.group(1) if named else f"ec2:{_operation(failure)}"
        return NoAddress(
            "unauthorized",
            f"EC2 refusing: {failure.code} on {_operation(failure)} ({_ago(failure.at, now)}): "
            f"the node's IAM role lacks the permission {action}",
            f"grant {action} to the IAM role vpccni runs with (deploy/iam/vpccni-ipv4-policy.json "
            "lists every action it needs; the AmazonEKS_CNI_Policy grants them too); the pool "
            "manager tries again after a backoff of 60 s doubling to 10 min",
            False,
        )
    since = facts.insufficient_capacity_at
    if since is not None and now - since < INSUFFICIENT_CAPACITY_PAUSE_SECONDS:
        subnet = facts.subnet_id or "the node's subnet"
        free = "" if facts.subnet_free is None else f" has {facts.subnet_free} free addresses"
        code = failure.code if failure is not None and failure.code else "exhausted"
        until = since + INSUFFICIENT_CAPACITY_PAUSE_SECONDS
        return NoAddress(
            "subnet_exhausted",
            f"subnet exhausted: {subnet}{free} ({code} {_ago(since, now)}), growth paused "
            f"until {_clock(until)} ({until - now:.0f} s more)",
            "free addresses in the subnet, add a larger or additional subnet, or enable prefix "
            "delegation; growth resumes after the pause",
            True,
        )
    resume = facts.throttled_until
    paused = resume is not None and now < resume
    if paused or kind is Throttled:
        seen = ""
        if failure is not None:
            seen = f" ({failure.code} on {_operation(failure)}, {_ago(failure.at, now)})"
        then = "the pool manager is retrying"
        if resume is not None and paused:
            then = f"growth paused until {_clock(resume)} ({resume - now:.0f} s more)"
        return NoAddress(
            "throttled",
            f"EC2 refusing: throttled{seen}, {then}",
            "retry shortly; if it persists, other callers in the account are spending EC2's "
            "request budget",
            True,
        )
    return None


def _operation(failure: Failure) -> str:
    return failure.operation or failure.fn


def _ago(at: float, now: float) -> str:
    return f"at {_clock(at)}, {max(now - at, 0.0):.0f} s ago"


def _clock(at: float) -> str:
    """A time on the caller's clock as UTC, to the second (what the daemon's log shows)."""
    return datetime.fromtimestamp(at, tz=UTC).strftime("%H:%M:%S UTC")
