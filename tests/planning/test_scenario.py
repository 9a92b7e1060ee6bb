"""Scenario validation: every mistake is refused with the field it is in."""

from __future__ import annotations

from typing import Any

import pytest

from vpccni.capacity.scenario import ScenarioError, decode_scenario
from vpccni.errors import InvalidInput

GROUP = {"instance_type": "c5.large", "nodes": 1, "pods": 1}


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ([], "scenario: expected an object"),
        ({"node_groups": []}, "node_groups: give a non-empty list"),
        ({"node_groups": [GROUP], "colour": 1}, "scenario: unknown field(s) colour"),
        ({"mode": "ipv6", "node_groups": [GROUP]}, "mode: 'ipv6' is not one of"),
        ({"env": {"WARM_IP_TARGET": "five"}, "node_groups": [GROUP]}, "WARM_IP_TARGET='five'"),
        ({"env": {"WARM_IP_TARGET": True}, "node_groups": [GROUP]}, "env.WARM_IP_TARGET"),
        (
            {
                "mode": "prefix",
                "env": {"ENABLE_PREFIX_DELEGATION": "false"},
                "node_groups": [GROUP],
            },
            "contradicts env.ENABLE_PREFIX_DELEGATION",
        ),
        ({"env": {"ENABLE_IPv6": "true", "ENABLE_IPv4": "false"}, "node_groups": [GROUP]}, "IPv6"),
        ({"subnet_cidr": "10.0.0.0/33", "node_groups": [GROUP]}, "subnet_cidr: '10.0.0.0/33'"),
        ({"subnet_cidr": "10.0.0.0/8", "node_groups": [GROUP]}, "AWS subnets are /16 to /28"),
        (
            {"subnet_cidr": ["10.0.0.0/24", "10.0.0.0/25"], "node_groups": [GROUP]},
            "subnet_cidr[1]: 10.0.0.0/25 overlaps",
        ),
        ({"node_groups": [{"nodes": 1, "pods": 1}]}, "node_groups[0]: give exactly one of"),
        (
            {"node_groups": [{"instance_type": "c5.lrge", "nodes": 1}]},
            "node_groups[0].instance_type: unknown instance type 'c5.lrge'",
        ),
        ({"node_groups": [{"instance_type": "c5.large", "pods": 1}]}, "node_groups[0].nodes"),
        (
            {"node_groups": [{"instance_type": "c5.large", "nodes": 2, "pods": [1]}]},
            "node_groups[0].pods: 1 counts for nodes=2",
        ),
        (
            {"node_groups": [{"instance_type": "c5.large", "pods": [1, -1]}]},
            "node_groups[0].pods[1]: -1 is less than 0",
        ),
        (
            {"node_groups": [{"limits": {"max_enis": 3}, "pods": [1]}]},
            "node_groups[0].limits.ipv4_per_eni: missing",
        ),
        (
            {"node_groups": [{**GROUP, "max_pods": 0}]},
            "node_groups[0].max_pods: 0 is less than 1",
        ),
        (
            {"mode": "prefix", "node_groups": [{"instance_type": "m4.large", "pods": [1]}]},
            "prefixes need Nitro",
        ),
        (
            {"node_groups": [{**GROUP, "subnet": "10.9.0.0/24"}]},
            "node_groups[0].subnet: '10.9.0.0/24' is not one of subnet_cidr",
        ),
        (
            {"node_groups": [{**GROUP, "workload": {"arrivals_per_minute": -1}}]},
            "node_groups[0].workload.arrivals_per_minute",
        ),
        (
            {"node_groups": [{**GROUP, "workload": {"bursts": [{"at_minutes": 1}]}}]},
            "node_groups[0].workload.bursts[0].pods",
        ),
        (
            {"node_groups": [{**GROUP, "workload": {"lifetime": "gamma"}}]},
            "node_groups[0].workload.lifetime: 'gamma'",
        ),
        ({"node_groups": [GROUP], "ec2": {"latency": {"*": -1}}}, "ec2.latency.*"),
    ],
)
def test_bad_scenarios_name_the_field(scenario_of: Any, document: Any, expected: str) -> None:
    with pytest.raises(ScenarioError) as error:
        scenario_of(document)
    assert expected in str(error.value)
    assert isinstance(error.value, InvalidInput)
    assert "\n" not in str(error.value)


def test_yaml_and_json_decode_the_same() -> None:
    text_json = '{"node_groups": [{"instance_type": "c5.large", "pods": [1, 0]}]}'
    text_yaml = "node_groups:\n  - instance_type: c5.large\n    pods: [1, 0]\n"
    assert decode_scenario(text_json, "a.json") == decode_scenario(text_yaml, "a.yaml")
    with pytest.raises(ScenarioError, match="neither JSON"):
        decode_scenario("node_groups: [unclosed", "b.yaml")


def test_defaults(scenario_of: Any) -> None:
    scenario = scenario_of({"node_groups": [{"instance_type": "c5.large", "pods": [3, 2]}]})
    group = scenario.groups[0]
    assert (group.nodes, group.node_limits.max_pods, group.name) == (2, 29, "group0")
    assert scenario.host_networking_ips == 2
    assert scenario.subnets == ()
    assert scenario.ec2.latency == {"*": 0.1}
    assert scenario.mode.value == "secondary-ip"
    assert not scenario.has_workload
