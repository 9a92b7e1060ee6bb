"""The EKS guide's worked examples, in their upstream-correct form (ENI primaries are not pods).

Sources: shared reference best-practices-facts.md (the guide) and vpc-cni-behavior.md §3.12.
The guide's WARM_ENI_TARGET, WARM_IP_TARGET and MINIMUM_IP_TARGET examples count every address
of an ENI as a pod slot; upstream keeps the primary, so "5 IPs per ENI" is ``ipv4_per_eni`` 6 and
so on. The c5.large walkthrough already subtracts the primaries: 3 nodes with 1, 1 and 0 pods
hold 20 + 20 + 10 = 50 addresses, 43 of them warm.
"""

from __future__ import annotations

from typing import Any

from tests.planning.conftest import plan_of


def nodes(scenario_of: Any, document: dict[str, Any]) -> list[dict[str, Any]]:
    return list(plan_of(scenario_of(document)).to_json()["nodes"])


def test_three_c5_large_with_1_1_0_pods_hold_50_addresses(scenario_of: Any) -> None:
    document = plan_of(
        scenario_of({"node_groups": [{"instance_type": "c5.large", "pods": [1, 1, 0]}]})
    ).to_json()
    assert [n["subnet_addresses"] for n in document["nodes"]] == [20, 20, 10]
    assert [n["enis"] for n in document["nodes"]] == [2, 2, 1]
    assert [n["warm"] for n in document["nodes"]] == [17, 17, 9]
    totals = document["totals"]
    assert totals["subnet_addresses_used"] == 50
    assert totals["warm"] == 43
    assert totals["enis"] == 5
    assert totals["subnet_addresses_free"] is None


def test_warm_eni_target_with_five_pod_addresses_per_eni(scenario_of: Any) -> None:
    # Guide: 5 IPs per ENI, target 1; 5 pods -> 2 ENIs, the 6th pod -> a 3rd ENI.
    group = {"limits": {"max_enis": 4, "ipv4_per_eni": 6}, "pods": [5, 6]}
    found = nodes(scenario_of, {"node_groups": [group]})
    assert [n["enis"] for n in found] == [2, 3]
    assert [n["secondary_ips"] for n in found] == [10, 15]


def test_warm_ip_target_five_with_twenty_pod_addresses_per_eni(scenario_of: Any) -> None:
    # Guide: 20 IPs per ENI, WARM_IP_TARGET=5, WARM_ENI_TARGET=0: one ENI until the 16th pod.
    # Upstream then attaches a second ENI with only the missing address (not 20 more).
    group = {"limits": {"max_enis": 3, "ipv4_per_eni": 21}, "pods": [15, 16]}
    env = {"WARM_IP_TARGET": "5", "WARM_ENI_TARGET": "0"}
    found = nodes(scenario_of, {"env": env, "node_groups": [group]})
    assert [n["enis"] for n in found] == [1, 2]
    assert [n["secondary_ips"] for n in found] == [20, 21]
    assert [n["subnet_addresses"] for n in found] == [21, 23]
    assert [n["warm"] for n in found] == [5, 5]


def test_minimum_ip_target_100_with_ten_pod_addresses_per_eni(scenario_of: Any) -> None:
    # Guide: 10 IPs per ENI, MINIMUM_IP_TARGET=100 -> 9 more ENIs, 100 addresses up front.
    group = {"limits": {"max_enis": 12, "ipv4_per_eni": 11}, "pods": 0, "nodes": 1}
    env = {"MINIMUM_IP_TARGET": "100", "WARM_ENI_TARGET": "0"}
    (node,) = nodes(scenario_of, {"env": env, "node_groups": [group]})
    assert (node["enis"], node["secondary_ips"], node["subnet_addresses"]) == (10, 100, 110)


def test_behaviour_reference_worked_examples_on_m5_large(scenario_of: Any) -> None:
    # vpc-cni-behavior.md §3.12: SIP defaults, fresh node -> 9; one pod -> 18 (F = 17).
    found = nodes(scenario_of, {"node_groups": [{"instance_type": "m5.large", "pods": [0, 1]}]})
    assert [n["secondary_ips"] for n in found] == [9, 18]
    assert found[1]["warm"] == 17
    # W=5, M=10, fresh: primary gets 9, then a new ENI with 1 address (T = 10).
    env = {"WARM_IP_TARGET": "5", "MINIMUM_IP_TARGET": "10"}
    (node,) = nodes(
        scenario_of,
        {"env": env, "node_groups": [{"instance_type": "m5.large", "pods": 0, "nodes": 1}]},
    )
    assert (node["enis"], node["secondary_ips"]) == (2, 10)
    # PD, WARM_PREFIX_TARGET=1: fresh -> 1 prefix; one pod -> 2 prefixes.
    found = nodes(
        scenario_of,
        {"mode": "prefix", "node_groups": [{"instance_type": "m5.large", "pods": [0, 1]}]},
    )
    assert [n["prefixes"] for n in found] == [1, 2]
    assert [n["subnet_addresses"] for n in found] == [17, 33]


def test_prefix_mode_fills_one_eni_with_up_to_nine_prefixes(scenario_of: Any) -> None:
    # Guide: c5.large holds up to 9 prefixes per ENI; most prefix-mode nodes need one ENI.
    group = {"instance_type": "c5.large", "max_pods": 150, "pods": [100, 135]}
    found = nodes(scenario_of, {"mode": "prefix", "node_groups": [group]})
    assert [n["enis"] for n in found] == [1, 2]
    assert found[0]["prefixes"] == 8  # 7 full /28s + one spare (WARM_PREFIX_TARGET=1)
    assert found[1]["prefixes"] == 10


def test_pods_over_max_pods_and_without_address_are_reported(scenario_of: Any) -> None:
    group = {"instance_type": "c5.large", "pods": [40], "max_pods": 29}
    (node,) = nodes(scenario_of, {"node_groups": [group]})
    assert node["pods_over_max_pods"] == 13  # 27 pod addresses; max pods counts 2 host pods
    assert node["assigned"] == 27
    group = {"instance_type": "c5.large", "pods": [40], "max_pods": 110}
    (node,) = nodes(scenario_of, {"node_groups": [group]})
    assert node["pods_over_max_pods"] == 0
    assert node["pods_without_ip"] == 13  # max pods above the ENI capacity: pods stuck


def test_subnet_fit_counts_aws_reserved_addresses(scenario_of: Any) -> None:
    document = plan_of(
        scenario_of(
            {
                "subnet_cidr": ["10.0.0.0/28", "10.0.1.0/24"],
                "node_groups": [
                    {"instance_type": "c5.large", "pods": [1], "subnet": "10.0.0.0/28"},
                    {"instance_type": "c5.large", "pods": [1, 1]},
                ],
            }
        )
    ).to_json()
    small, big = document["subnets"]
    # node 1 is placed explicitly; the others round-robin: node 2 -> subnet 1, node 3 -> 0
    assert (small["usable"], small["used"], small["fits"]) == (11, 40, False)
    assert (big["usable"], big["used"], big["fits"]) == (251, 20, True)
    assert document["totals"]["fits"] is False
    assert document["totals"]["subnet_addresses_free"] == 11 + 251 - 60
