"""``simulate``: reproducible, driven by the workload, and honest about EC2's limits."""

from __future__ import annotations

import json
from typing import Any

from tests.planning.conftest import simulate
from vpccni.sim.cluster import Simulation

SAME = ("nodes", "totals", "timeline", "time_to_ip", "pods", "actions", "subnet_exhaustion")

CHURN = {
    "subnet_cidr": "10.0.0.0/20",
    "node_groups": [
        {
            "name": "web",
            "instance_type": "m5.large",
            "nodes": 4,
            "pods": 3,
            "workload": {
                "arrivals_per_minute": 1.0,
                "lifetime_minutes": 10,
                "bursts": [{"at_minutes": 20, "pods": 6, "lifetime_minutes": 5}],
                "scale_out": [{"at_minutes": 25, "nodes": 2, "pods": 4}],
            },
        }
    ],
}


def test_same_seed_same_report_and_other_seed_differs(scenario_of: Any) -> None:
    scenario = scenario_of(CHURN)
    first = json.dumps(simulate(scenario, seed=7, duration=1800.0), sort_keys=True)
    again = json.dumps(simulate(scenario, seed=7, duration=1800.0), sort_keys=True)
    other = json.dumps(simulate(scenario, seed=8, duration=1800.0), sort_keys=True)
    assert first == again
    assert first != other


def test_workload_arrivals_bursts_and_scale_out(scenario_of: Any) -> None:
    report = simulate(scenario_of(CHURN), seed=1, duration=1800.0)
    assert report["totals"]["nodes"] == 6
    assert [n["name"] for n in report["nodes"]][-2:] == ["web-5", "web-6"]
    pods = report["pods"]
    assert pods["arrived"] > 4 * 3 + 4 * 6 + 2 * 4 + 100  # steady + burst + new nodes + churn
    assert pods["got_address"] + pods["failed"] + pods["over_max_pods"] == pods["arrived"]
    assert report["time_to_ip"]["pods"] == pods["got_address"]
    assert report["time_to_ip"]["p50"] == 0.0  # most pods find a warm address
    assert report["time_to_ip"]["max"] > 0.0  # the first ones wait for the first tick
    assert report["timeline"]["seconds"][-1] == 1800.0
    assert max(report["timeline"]["waiting_pods"]) > 0
    assert report["totals"]["subnet_addresses_used"] == sum(
        n["subnet_addresses"] for n in report["nodes"]
    )
    apis = report["ec2"]["apis"]
    assert apis["CreateNetworkInterface"]["calls"] >= 6
    assert apis["DescribeNetworkInterfaces"]["per_minute_mean"] > 0
    assert len(report["ec2"]["per_minute"]["DescribeSubnets"]) == 30


def test_a_small_subnet_runs_out_and_pauses_growth(scenario_of: Any) -> None:
    scenario = scenario_of(
        {
            "subnet_cidr": "10.0.0.0/26",
            "node_groups": [{"instance_type": "m5.large", "pods": [20, 20, 20]}],
        }
    )
    report = simulate(scenario, duration=600.0)
    exhaustion = report["subnet_exhaustion"]
    assert exhaustion["events"] >= 1
    assert exhaustion["nodes"] >= 1
    assert report["pods"]["failed"] > 0
    assert report["totals"]["fits"] is True  # the pools fit: they stopped growing
    assert report["subnets"][0]["free"] < 16


def test_tight_rate_limits_throttle_and_slow_pods_down(scenario_of: Any) -> None:
    base = {"node_groups": [{"instance_type": "m5.large", "nodes": 30, "pods": 12}]}
    relaxed = simulate(scenario_of(base), duration=900.0)
    tight = {
        **base,
        "ec2": {"buckets": {"CreateNetworkInterface": {"size": 2, "refill": 0.05}}},
    }
    throttled = simulate(scenario_of(tight), duration=900.0)
    assert relaxed["ec2"]["apis"]["CreateNetworkInterface"]["throttled"] == 0
    assert throttled["ec2"]["apis"]["CreateNetworkInterface"]["throttled"] > 0
    assert throttled["time_to_ip"]["p99"] > relaxed["time_to_ip"]["p99"]


def test_no_workload_runs_until_stable(scenario_of: Any) -> None:
    report = simulate(
        scenario_of({"node_groups": [{"instance_type": "c5.large", "pods": [1, 1, 0]}]})
    )
    assert report["totals"]["subnet_addresses_used"] == 50
    assert report["duration_seconds"] < 120.0
    assert report["pods"]["failed"] == 0


def test_event_driven_ticks_decide_exactly_as_ticking_every_5_s(scenario_of: Any) -> None:
    scenario = scenario_of(
        {
            **CHURN,
            "env": {"WARM_IP_TARGET": "3", "MINIMUM_IP_TARGET": "6", "WARM_ENI_TARGET": "0"},
        }
    )
    reports = []
    for fixed in (False, True):
        simulation = Simulation(scenario, seed=5, duration=1500.0, fixed_ticks=fixed)
        simulation.run()
        report = simulation.recorder.report()
        reports.append(json.dumps({k: report[k] for k in SAME}, sort_keys=True))
    assert reports[0] == reports[1]
