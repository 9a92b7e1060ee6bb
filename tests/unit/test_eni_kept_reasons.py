"""When no ENI can be freed, the decision says what keeps each secondary ENI.

The reason comes from the pool rules themselves (``deletable_eni``), so ``vpccni explain``,
``/v1/explain``, ``vpccni status`` and the demo all show the same words.
"""

from __future__ import annotations

from typing import Any

from vpccni.core.explain import explain

M5 = {"max_enis": 3, "ipv4_per_eni": 10}
PRIMARY = {"id": "eni-1", "device_index": 0, "primary": True, "ips": 9}


def kept_reason(enis: list[dict[str, Any]], **extra: Any) -> str:
    document = {"limits": M5, "max_pods": 110, "enis": enis, **extra}
    result = explain(document, lambda name: (3, 10, True))
    assert result["freeable_eni"] is None
    (reason,) = [r for r in result["reasons"] if r.startswith("no ENI can be freed")]
    return str(reason)


def test_a_young_eni_is_named_with_its_age_and_the_rule() -> None:
    young = {"id": "eni-2", "device_index": 1, "ips": 9, "age_seconds": 20.7}
    assert kept_reason([PRIMARY, young]) == (
        "no ENI can be freed: eni-2 is 20 s old (ENIs are freed after 60 s)"
    )


def test_each_secondary_eni_gets_its_first_blocking_rule_newest_first() -> None:
    enis = [
        PRIMARY,
        {"id": "eni-2", "device_index": 1, "ips": 9, "cooldown": 2},
        {"id": "eni-3", "device_index": 2, "ips": 9, "assigned": 4, "cooldown": 0},
    ]
    assert kept_reason(enis) == (
        "no ENI can be freed: eni-3 has 4 assigned addresses, eni-2 has 2 cooling addresses"
    )


def test_an_eni_the_targets_need_says_which_target() -> None:
    enis = [PRIMARY, {"id": "eni-2", "device_index": 1, "ips": 9}]
    reason = kept_reason(enis, env={"MINIMUM_IP_TARGET": "15", "WARM_IP_TARGET": "1"})
    assert reason == (
        "no ENI can be freed: eni-2 is needed: the other ENIs would not meet MINIMUM_IP_TARGET"
    )


def test_the_primary_alone_is_not_listed() -> None:
    assert kept_reason([PRIMARY]) == "no ENI can be freed"
