"""The steady state of one node, found by running the daemon's own decisions to convergence.

``converge_node`` starts a node as EC2 launches it (the primary ENI, no secondary address), lets
its pods arrive, and then ticks every 5 s exactly as the pool manager does: ``plan_scaling`` on
the core :class:`~vpccni.core.datastore.Datastore`'s views, each action applied as EC2 would
(addresses and prefixes come from a synthetic allocator, ENIs at the lowest free device index),
waiting pods placed after every tick. It stops once no tick has acted for longer than every
timer the rules know (IP cooldown, 60 s ENI lifetime, 30 s release interval, 120 s capacity
pause), so nothing can change any more. Subnet size is not a limit here (the plan reports whether
the result fits); ``vpccni simulate`` runs the same start-up against the emulator and must end in
the same state, which ``tests/planning/test_agreement.py`` checks.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from ipaddress import IPv4Network

from vpccni.core.config import IpamConfig
from vpccni.core.datastore import Datastore, DatastoreError
from vpccni.core.maxpods import HOST_NETWORK_PODS
from vpccni.core.model import ADDRESSES_PER_PREFIX, EniInfo, PodKey, PodMeta
from vpccni.core.pool import MIN_ENI_LIFETIME_SECONDS, NodeLimits
from vpccni.core.scaling import (
    INSUFFICIENT_CAPACITY_PAUSE_SECONDS,
    RELEASE_INTERVAL_SECONDS,
    Action,
    PoolTiming,
    plan_scaling,
)

TICK_SECONDS = 5.0
GIVE_UP_SECONDS = 4 * 3600.0
POD_NETWORK = "aws-cni"


@dataclass(frozen=True)
class SteadyNode:
    """Where one node's pool settles."""

    enis: int
    secondary_ips: int
    prefixes: int
    assigned: int
    warm: int
    admitted: int
    settled: bool
    settled_after: float


def admitted_pods(pods: int, limits: NodeLimits) -> int:
    """Pods the kubelet runs: max pods counts the two host-network pods of every node."""
    return max(min(pods, limits.max_pods - HOST_NETWORK_PODS), 0)


def quiet_window(config: IpamConfig) -> float:
    """Longer than every timer the decision rules know, plus two ticks."""
    timers = (
        float(config.ip_cooldown_seconds),
        MIN_ENI_LIFETIME_SECONDS,
        RELEASE_INTERVAL_SECONDS,
        INSUFFICIENT_CAPACITY_PAUSE_SECONDS,
    )
    return max(timers) + 2 * TICK_SECONDS


class _SyntheticEc2:
    """Hands out addresses and /28s in order, as EC2's lowest-free choice would on one node."""

    def __init__(self) -> None:
        self._next_single = int(IPv4Network("10.0.0.0/8").network_address) + 16
        self._next_prefix = int(IPv4Network("10.128.0.0/9").network_address)
        self._enis = 0

    def singles(self, count: int) -> list[IPv4Network]:
        start, self._next_single = self._next_single, self._next_single + count
        return [IPv4Network((start + i, 32)) for i in range(count)]

    def prefixes(self, count: int) -> list[IPv4Network]:
        start = self._next_prefix
        self._next_prefix += count * ADDRESSES_PER_PREFIX
        return [IPv4Network((start + i * ADDRESSES_PER_PREFIX, 28)) for i in range(count)]

    def new_eni_id(self) -> str:
        self._enis += 1
        return f"eni-{self._enis:017x}"


def converge_node(config: IpamConfig, limits: NodeLimits, pods: int) -> SteadyNode:
    """Run one node's pool manager until nothing changes any more."""
    store = Datastore(config.mode, config.ip_cooldown_seconds)
    ec2 = _SyntheticEc2()
    store.add_eni(EniInfo(ec2.new_eni_id(), 0, primary=True, created_at=0.0))
    ec2.singles(1)  # the primary ENI's own address
    admitted = admitted_pods(pods, limits)
    waiting = [PodKey(POD_NETWORK, f"pod-{i}", "eth0") for i in range(admitted)]
    timing = PoolTiming()
    now = last_action = 0.0
    window = quiet_window(config)
    while now - last_action <= window and now < GIVE_UP_SECONDS:
        now += TICK_SECONDS
        decision = plan_scaling(store.views(now), config, limits, now, timing)
        for action in decision.actions:
            timing = _apply(store, ec2, action, now, timing)
        if decision.actions:
            last_action = now
        waiting = _place(store, waiting, now)
    views = store.views(now)
    mode = config.mode
    active = [c for v in views if not v.info.excluded for c in v.active(mode)]
    total = sum(c.size for c in active)
    assigned = sum(c.assigned for c in active)
    return SteadyNode(
        enis=len(views),
        secondary_ips=sum(1 for v in views for c in v.cidrs if not c.prefix),
        prefixes=sum(1 for v in views for c in v.cidrs if c.prefix),
        assigned=assigned,
        warm=total - assigned,
        admitted=admitted,
        settled=now - last_action > window,
        settled_after=last_action,
    )


def _apply(
    store: Datastore, ec2: _SyntheticEc2, action: Action, now: float, timing: PoolTiming
) -> PoolTiming:
    if action.action in ("assign-ips", "assign-prefixes"):
        assert action.eni is not None
        prefixes = action.action == "assign-prefixes"
        for cidr in ec2.prefixes(action.count) if prefixes else ec2.singles(action.count):
            store.add_cidr(action.eni, cidr)
    elif action.action == "create-eni":
        used = {info.device_index for info in store.enis()}
        device = next(index for index in range(100) if index not in used)
        eni_id = ec2.new_eni_id()
        ec2.singles(1)  # the new ENI's primary address
        store.add_eni(EniInfo(eni_id, device, created_at=now))
        prefixes = store.mode.uses_prefixes
        cidrs = ec2.prefixes(action.count) if prefixes else ec2.singles(action.count)
        for cidr in cidrs:
            store.add_cidr(eni_id, cidr)
    elif action.action in ("release-ips", "release-prefixes"):
        assert action.eni is not None
        removed = 0
        for text in action.cidrs:
            try:
                store.remove_cidr(action.eni, IPv4Network(text))
            except DatastoreError:
                continue
            removed += 1
        if removed:
            timing = PoolTiming(now, timing.insufficient_capacity_at)
    else:
        assert action.eni is not None
        with contextlib.suppress(DatastoreError):
            store.remove_eni(action.eni)
    return timing


def _place(store: Datastore, waiting: list[PodKey], now: float) -> list[PodKey]:
    meta = PodMeta()
    for index, key in enumerate(waiting):
        try:
            store.assign(key, meta, now)
        except DatastoreError:
            return waiting[index:]
    return []
