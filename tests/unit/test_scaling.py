"""Scaling decisions: upstream's worked examples (reference section 3.12) and the gates."""

from __future__ import annotations

from typing import Any

import pytest

from vpccni.core.explain import SnapshotError, explain
from vpccni.errors import InvalidInput

M5 = {"max_enis": 3, "ipv4_per_eni": 10}


def decide(mode: str, enis: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    document = {"mode": mode, "limits": M5, "max_pods": 110, "enis": enis, **extra}
    return explain(document, lambda name: (3, 10, True))


def actions(result: dict[str, Any]) -> list[tuple[str, str | None, int]]:
    return [(a["action"], a["eni"], a["count"]) for a in result["actions"]]


PRIMARY = {"id": "eni-1", "device_index": 0, "primary": True}


def test_sip_defaults_fresh_node_fills_the_primary() -> None:
    result = decide("secondary-ip", [{**PRIMARY, "ips": 0}])
    assert result["pool_too_low"]
    assert actions(result) == [("assign-ips", "eni-1", 9)]


def test_sip_defaults_first_pod_creates_a_second_eni() -> None:
    result = decide("secondary-ip", [{**PRIMARY, "ips": 9, "assigned": 1}])
    assert actions(result) == [("create-eni", None, 9)]


def test_sip_defaults_pod_deleted_frees_the_second_eni_when_old_enough() -> None:
    second = {"id": "eni-2", "device_index": 1, "ips": 9}
    old = decide("secondary-ip", [{**PRIMARY, "ips": 9}, {**second, "age_seconds": 61}])
    assert old["freeable_eni"] == "eni-2"
    assert actions(old) == [("free-eni", "eni-2", 1)]
    young = decide("secondary-ip", [{**PRIMARY, "ips": 9}, {**second, "age_seconds": 59}])
    assert young["freeable_eni"] is None
    assert actions(young) == []
    cooling = decide("secondary-ip", [{**PRIMARY, "ips": 9}, {**second, "cooldown": 1}])
    assert actions(cooling) == []


def test_sip_warm_and_minimum_targets() -> None:
    env = {"WARM_IP_TARGET": "5", "MINIMUM_IP_TARGET": "10"}
    fresh = decide("secondary-ip", [{**PRIMARY, "ips": 0}], env=env)
    assert (fresh["short"], actions(fresh)) == (10, [("assign-ips", "eni-1", 9)])
    full = decide("secondary-ip", [{**PRIMARY, "ips": 9}], env=env)
    assert (full["short"], actions(full)) == (1, [("create-eni", None, 1)])


def test_sip_warm_ip_target_releases_one_surplus_ip_at_most_every_30_s() -> None:
    env = {"WARM_IP_TARGET": "2"}
    result = decide("secondary-ip", [{**PRIMARY, "ips": 3}], env=env)
    assert result["over"] == 1
    assert actions(result) == [("release-ips", "eni-1", 1)]
    recent = decide("secondary-ip", [{**PRIMARY, "ips": 3}], env=env, seconds_since_last_release=10)
    assert actions(recent) == []
    assert any("release skipped" in reason for reason in recent["reasons"])


def test_sip_warm_eni_target_alone_never_releases_single_ips() -> None:
    result = decide("secondary-ip", [{**PRIMARY, "ips": 9}])
    assert not result["pool_too_high"]
    assert actions(result) == []


def test_pd_warm_prefix_target_grows_then_releases() -> None:
    fresh = decide("prefix", [{**PRIMARY}])
    assert actions(fresh) == [("assign-prefixes", "eni-1", 1)]
    one_pod = decide("prefix", [{**PRIMARY, "prefixes": [1]}])
    assert actions(one_pod) == [("assign-prefixes", "eni-1", 1)]
    deleted = decide("prefix", [{**PRIMARY, "prefixes": [0, 0]}])
    assert deleted["pool_too_high"]
    assert actions(deleted) == [("release-prefixes", "eni-1", 1)]


def test_pd_warm_and_minimum_targets_assign_two_prefixes() -> None:
    env = {"WARM_IP_TARGET": "7", "MINIMUM_IP_TARGET": "20"}
    fresh = decide("prefix", [{**PRIMARY}], env=env)
    assert actions(fresh) == [("assign-prefixes", "eni-1", 2)]
    settled = decide("prefix", [{**PRIMARY, "prefixes": [0, 0]}], env=env)
    assert (settled["over"], actions(settled)) == (0, [])


def test_max_eni_stops_growth_with_a_reason() -> None:
    result = decide("secondary-ip", [{**PRIMARY, "ips": 9, "assigned": 9}], env={"MAX_ENI": "1"})
    assert result["pool_too_low"]
    assert actions(result) == []
    assert any("max ENI limit reached" in reason for reason in result["reasons"])


def test_instance_limit_stops_growth() -> None:
    full = [
        {"id": f"eni-{i}", "device_index": i, "primary": i == 0, "ips": 9, "assigned": 9}
        for i in range(3)
    ]
    assert actions(decide("secondary-ip", full)) == []


def test_custom_networking_never_fills_the_primary() -> None:
    result = decide(
        "secondary-ip",
        [{**PRIMARY, "ips": 0}],
        env={"AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG": "true"},
    )
    assert actions(result) == [("create-eni", None, 9)]


def test_trunk_and_efa_and_primary_enis_are_never_freed() -> None:
    for flag in ("trunk", "efa"):
        enis = [{**PRIMARY, "ips": 9}, {"id": "eni-2", "device_index": 1, "ips": 9, flag: True}]
        assert decide("secondary-ip", enis)["freeable_eni"] is None


def test_free_eni_only_if_the_rest_meets_warm_ip_target() -> None:
    env = {"WARM_IP_TARGET": "9"}
    enis = [{**PRIMARY, "ips": 9, "assigned": 5}, {"id": "eni-2", "device_index": 1, "ips": 9}]
    result = decide("secondary-ip", enis, env=env)
    assert result["freeable_eni"] is None


def test_prefix_mode_free_eni_evaluated_after_this_ticks_release() -> None:
    enis = [{**PRIMARY, "prefixes": [3, 0]}, {"id": "eni-2", "device_index": 1, "prefixes": [0]}]
    result = decide("prefix", enis)
    assert result["freeable_eni"] == "eni-2"
    # One surplus prefix is released first (from the least-used ENI, eni-2); afterwards eni-2 holds
    # nothing and eni-1 still has the one free prefix WARM_PREFIX_TARGET wants, so eni-2 goes.
    assert actions(result) == [("release-prefixes", "eni-2", 1), ("free-eni", "eni-2", 1)]


def test_refused_configuration_is_still_evaluated_with_a_warning() -> None:
    result = decide("prefix", [{**PRIMARY}], env={"WARM_PREFIX_TARGET": "0"})
    assert any("refuses to start" in reason for reason in result["reasons"])
    assert actions(result) == [("assign-prefixes", "eni-1", 1)]


def test_empty_pool_is_valid() -> None:
    result = decide("secondary-ip", [])
    assert actions(result) == [("create-eni", None, 9)]


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([], "snapshot: expected a JSON object"),
        ({"mode": "ipv6", "limits": M5}, "mode: 'ipv6' is not one of"),
        ({"limits": {}}, "limits: give"),
        ({"limits": M5, "enis": [{"ips": 12}]}, "exceed the 9 an ENI can hold"),
        ({"limits": M5, "enis": [{"ips": 2, "assigned": 3}]}, "exceed ips 2"),
        ({"limits": M5, "enis": [{"id": "a"}, {"id": "a"}]}, "duplicate ENI id"),
        ({"limits": M5, "enis": [{"primary": "yes"}]}, "expected true or false"),
        ({"limits": M5, "env": {"WARM_IP_TARGET": "x"}}, "WARM_IP_TARGET='x'"),
        ({"limits": M5, "mode": "prefix", "enis": [{"prefixes": [17]}]}, "17 is more than 16"),
        ({"limits": M5, "enis": [{}, {}, {}, {}]}, "exceed the instance limit 3"),
    ],
)
def test_invalid_snapshots_are_refused(document: Any, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        explain(document, lambda name: (3, 10, True))
    assert message in str(caught.value)
    assert isinstance(caught.value, SnapshotError) or "WARM_IP_TARGET" in message
