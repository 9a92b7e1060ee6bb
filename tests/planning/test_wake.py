"""``next_wake`` is exact against ``plan_scaling``: a tick acts at t exactly when t >= the wake.

Random pools (ENIs of random ages, CIDRs of both kinds, pods assigned and released at random
times), random settings and random timers; then, without changing the pool, ``plan_scaling`` is
asked at ``now`` and at later instants. Whenever it acts, the wake computed at ``now`` must not
be later; at ``now`` itself it acts exactly when the wake is ``now``. This is what lets the
simulator skip idle ticks without changing any decision.
"""

from __future__ import annotations

import math
from dataclasses import replace
from ipaddress import IPv4Network

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.planning.conftest import EXAMPLES
from vpccni.core.config import IpamConfig
from vpccni.core.model import EniInfo
from vpccni.core.pool_rules import NodeLimits, pool_stats, pool_too_high, pool_too_low
from vpccni.core.scaling import PoolTiming, plan_scaling
from vpccni.core.wake import _low_high, next_wake, stats_of
from vpccni.sim.fast_pool import NodePool

NOW = 1000.0
CONFIGS = st.builds(
    IpamConfig,
    warm_eni_target=st.sampled_from([0, 1, 2]),
    warm_ip_target=st.sampled_from([0, 0, 1, 2, 5, 20]),
    minimum_ip_target=st.sampled_from([0, 0, 3, 10, 40]),
    warm_prefix_target=st.sampled_from([0, 1, 2]),
    prefix_delegation=st.booleans(),
    max_eni=st.sampled_from([None, None, 2]),
    ip_cooldown_seconds=st.sampled_from([0, 30]),
)
LIMITS = st.builds(
    NodeLimits,
    max_enis=st.integers(1, 4),
    ipv4_per_eni=st.integers(2, 6),
    max_pods=st.integers(3, 80),
)
TIMING = st.builds(
    PoolTiming,
    last_release_at=st.one_of(st.none(), st.sampled_from([NOW, NOW - 10, NOW - 30, NOW - 100])),
    insufficient_capacity_at=st.one_of(st.none(), st.sampled_from([NOW - 5, NOW - 120, NOW])),
    terminating=st.booleans(),
    unschedulable=st.booleans(),
    throttled_until=st.one_of(st.none(), st.sampled_from([NOW - 1, NOW, NOW + 7, NOW + 200])),
)
ENIS = st.lists(
    st.tuples(
        st.sampled_from([0.0, 940.0, 960.0, 990.0, NOW]),  # created at
        st.lists(st.booleans(), max_size=5),  # CIDRs: prefix?
        st.booleans(),  # excluded
    ),
    min_size=1,
    max_size=4,
)
PODS = st.lists(
    st.tuples(st.integers(0, 60), st.sampled_from([None, 960.0, 975.0, 990.0, NOW])),
    max_size=60,
)


def build(config: IpamConfig, enis: list, pods: list) -> NodePool:
    pool = NodePool(config.mode, config.ip_cooldown_seconds)
    base = int(IPv4Network("10.0.0.0/16").network_address)
    singles, blocks = base + 8, base + 4096
    for index, (created, cidrs, excluded) in enumerate(enis):
        info = EniInfo(
            f"eni-{index}", index, index == 0, excluded=excluded and index > 0, created_at=created
        )
        pool.add_eni(info)
        for prefix in cidrs:
            if prefix:
                pool.add_cidr(info.eni_id, IPv4Network((blocks, 28)))
                blocks += 16
            else:
                pool.add_cidr(info.eni_id, IPv4Network((singles, 32)))
                singles += 1
    for pod, released in pods:
        if pool.assign(pod, 900.0) and released is not None:
            pool.release(pod, released)
    return pool


@settings(max_examples=EXAMPLES * 5, deadline=None)
@given(config=CONFIGS, limits=LIMITS, timing=TIMING, enis=ENIS, pods=PODS)
def test_next_wake_agrees_with_plan_scaling(
    config: IpamConfig, limits: NodeLimits, timing: PoolTiming, enis: list, pods: list
) -> None:
    pool = build(config, enis, pods)
    cooldown = config.ip_cooldown_seconds
    wake = next_wake(pool.ordered, config, limits, NOW, timing=timing, cooldown_seconds=cooldown)
    acts_now = bool(plan_scaling(pool.views(NOW), config, limits, NOW, timing).actions)
    assert acts_now == (wake == NOW), (wake, acts_now)
    for later in (5.0, 29.0, 30.0, 31.0, 60.0, 61.0, 119.0, 125.0, 200.0):
        at = NOW + later
        if plan_scaling(pool.views(at), config, limits, at, timing).actions:
            assert wake <= at, (wake, at)
    if wake < math.inf and wake > NOW:
        # a timer was named: by then (or one tick later) the tick must be able to act
        assert any(
            plan_scaling(pool.views(t), config, limits, t, timing).actions
            for t in (wake + 1e-6, wake + 1.0)
        )


@settings(max_examples=EXAMPLES * 5, deadline=None)
@given(config=CONFIGS, limits=LIMITS, enis=ENIS, pods=PODS)
def test_low_and_high_are_the_pool_functions(
    config: IpamConfig, limits: NodeLimits, enis: list, pods: list
) -> None:
    pool = build(config, enis, pods)
    stats = stats_of(pool.ordered)
    assert stats == replace(pool_stats(pool.views(NOW), config.mode), cooldown=0)
    expected = (pool_too_low(stats, config, limits)[0], pool_too_high(stats, config)[0])
    assert _low_high(stats, config, limits)[0] == expected[0]
    if not expected[0]:
        assert _low_high(stats, config, limits)[1] == expected[1]
