"""Warm-pool arithmetic against upstream's formulas (behaviour reference section 3)."""

from __future__ import annotations

import pytest

from vpccni.core.config import IpamConfig
from vpccni.core.pool_rules import (
    NodeLimits,
    PoolStats,
    pool_too_high,
    pool_too_low,
    prefixes_needed,
    release_count,
    target_state,
)

M5_LARGE = NodeLimits(max_enis=3, ipv4_per_eni=10, max_pods=29)
M5_LARGE_110 = NodeLimits(max_enis=3, ipv4_per_eni=10, max_pods=110)


def stats(total: int, assigned: int, prefixes: int = 0, free_prefixes: int = 0) -> PoolStats:
    return PoolStats(total, assigned, 0, prefixes, free_prefixes)


# (W, M, total, assigned, short, over) in secondary-IP mode
SIP_TARGETS = [
    (5, 10, 0, 0, 10, 0),
    (5, 10, 9, 0, 1, 0),
    (5, 10, 10, 0, 0, 0),
    (2, 0, 3, 0, 0, 1),
    (5, 0, 20, 3, 0, 12),
    (5, 30, 20, 3, 10, 0),
    (0, 10, 12, 0, 0, 2),
    (3, 0, 10, 9, 2, 0),
]


@pytest.mark.parametrize(("warm", "minimum", "total", "assigned", "short", "over"), SIP_TARGETS)
def test_secondary_ip_short_and_over(
    warm: int, minimum: int, total: int, assigned: int, short: int, over: int
) -> None:
    config = IpamConfig(warm_ip_target=warm, minimum_ip_target=minimum)
    state = target_state(stats(total, assigned), config)
    assert (state.short, state.over, state.defined) == (short, over, True)


# (W, M, total prefixes, assigned, free prefixes, short prefixes, over prefixes)
PD_TARGETS = [
    (7, 20, 0, 0, 0, 2, 0),
    (7, 20, 2, 0, 2, 0, 0),
    (1, 0, 3, 0, 3, 0, 2),
    (16, 0, 2, 10, 1, 0, 0),
    (16, 0, 2, 20, 0, 1, 0),
    (17, 0, 1, 0, 1, 1, 0),
    (0, 48, 4, 0, 4, 0, 1),
]


@pytest.mark.parametrize(
    ("warm", "minimum", "prefixes", "assigned", "free", "short", "over"), PD_TARGETS
)
def test_prefix_short_and_over_in_prefixes(
    warm: int, minimum: int, prefixes: int, assigned: int, free: int, short: int, over: int
) -> None:
    config = IpamConfig(warm_ip_target=warm, minimum_ip_target=minimum, prefix_delegation=True)
    state = target_state(stats(prefixes * 16, assigned, prefixes, free), config)
    assert (state.short, state.over) == (short, over)


def test_targets_undefined_without_w_or_m() -> None:
    assert not target_state(stats(9, 1), IpamConfig()).defined


@pytest.mark.parametrize(
    ("eni_target", "total", "assigned", "low"),
    [
        (1, 0, 0, True),
        (1, 9, 1, True),
        (1, 18, 1, False),
        (2, 18, 1, True),
        (0, 0, 0, True),
        (0, 9, 9, True),
        (0, 9, 8, False),
    ],
)
def test_warm_eni_target_low(eni_target: int, total: int, assigned: int, low: bool) -> None:
    config = IpamConfig(warm_eni_target=eni_target)
    assert pool_too_low(stats(total, assigned), config, M5_LARGE_110)[0] is low


@pytest.mark.parametrize(
    ("warm_prefix", "prefixes", "assigned", "free_prefixes", "low"),
    [
        (1, 0, 0, 0, True),
        (1, 1, 1, 0, True),
        (1, 2, 1, 1, False),
        (0, 0, 0, 0, True),
        (0, 1, 0, 1, False),
        (2, 2, 0, 2, False),
        (2, 2, 1, 1, True),
    ],
)
def test_warm_prefix_target_compares_free_addresses(
    warm_prefix: int, prefixes: int, assigned: int, free_prefixes: int, low: bool
) -> None:
    config = IpamConfig(prefix_delegation=True, warm_prefix_target=warm_prefix)
    state = stats(prefixes * 16, assigned, prefixes, free_prefixes)
    assert pool_too_low(state, config, M5_LARGE_110)[0] is low


def test_max_pods_ceiling_uses_total_not_assigned() -> None:
    low, reason = pool_too_low(stats(29, 0), IpamConfig(warm_ip_target=50), M5_LARGE)
    assert not low
    assert "max pods 29" in reason


def test_pool_too_high_rules() -> None:
    assert not pool_too_high(stats(27, 0), IpamConfig())[0]
    assert pool_too_high(stats(3, 0), IpamConfig(warm_ip_target=2))[0]
    pd = IpamConfig(prefix_delegation=True, warm_prefix_target=1)
    assert pool_too_high(stats(32, 0, 2, 2), pd)[0]
    assert not pool_too_high(stats(32, 1, 2, 1), pd)[0]


def test_release_counts() -> None:
    assert release_count(stats(3, 0), IpamConfig(warm_ip_target=2)) == 1
    assert release_count(stats(27, 0), IpamConfig()) == 0
    pd = IpamConfig(prefix_delegation=True, warm_prefix_target=1)
    assert release_count(stats(48, 0, 3, 3), pd) == 2


def test_prefixes_needed_at_least_one() -> None:
    pd = IpamConfig(prefix_delegation=True, warm_prefix_target=0)
    assert prefixes_needed(stats(16, 1, 1, 0), pd) == 1
    assert (
        prefixes_needed(stats(0, 0), IpamConfig(prefix_delegation=True, warm_prefix_target=3)) == 3
    )
    targeted = IpamConfig(prefix_delegation=True, warm_ip_target=7, minimum_ip_target=20)
    assert prefixes_needed(stats(0, 0), targeted) == 2


def test_eni_cap_is_min_of_max_eni_and_instance_limit() -> None:
    assert M5_LARGE.eni_cap(IpamConfig(max_eni=2)) == 2
    assert M5_LARGE.eni_cap(IpamConfig(max_eni=10)) == 3
    assert M5_LARGE.eni_cap(IpamConfig()) == 3
    assert M5_LARGE.addresses_per_eni(IpamConfig(prefix_delegation=True).mode) == 144
