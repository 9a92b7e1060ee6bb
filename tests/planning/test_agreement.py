"""``plan`` and ``simulate`` agree on the steady state, for random scenarios.

``plan`` converges each node with the core Datastore on a 5 s grid and synthetic EC2;
``simulate`` runs the same start-up for the whole cluster on the emulator (latency, attach
delay, rate limits, real address choice) with the lean NodePool and event-driven ticks. With no
workload both must end with the same ENIs, addresses, prefixes, assigned and warm on every node.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.planning.conftest import EXAMPLES, plan_of, simulate

FIELDS = (
    "enis",
    "secondary_ips",
    "prefixes",
    "subnet_addresses",
    "assigned",
    "warm",
    "pods_without_ip",
    "pods_over_max_pods",
)
GROUP = st.fixed_dictionaries(
    {
        "pods": st.lists(st.integers(0, 70), min_size=1, max_size=3),
    },
    optional={"max_pods": st.sampled_from([20, 110])},
).flatmap(
    lambda group: st.one_of(
        st.sampled_from(["c5.large", "m5.large", "m5.xlarge", "t3.medium"]).map(
            lambda name: {**group, "instance_type": name}
        ),
        st.tuples(st.integers(1, 4), st.integers(2, 8)).map(
            lambda pair: {**group, "limits": {"max_enis": pair[0], "ipv4_per_eni": pair[1]}}
        ),
    )
)
ENV = st.fixed_dictionaries(
    {},
    optional={
        "WARM_ENI_TARGET": st.sampled_from(["0", "1", "2"]),
        "WARM_IP_TARGET": st.sampled_from(["1", "3", "10"]),
        "MINIMUM_IP_TARGET": st.sampled_from(["5", "20"]),
        "WARM_PREFIX_TARGET": st.sampled_from(["1", "2"]),
    },
)


@settings(max_examples=max(EXAMPLES // 3, 5), deadline=None)
@given(
    mode=st.sampled_from(["secondary-ip", "prefix"]),
    env=ENV,
    groups=st.lists(GROUP, min_size=1, max_size=2),
    seed=st.integers(0, 1000),
)
def test_plan_and_simulate_agree(
    scenario_of: Any, mode: str, env: dict[str, str], groups: list[dict[str, Any]], seed: int
) -> None:
    if mode == "prefix" and all(
        env.get(k, "0") == "0" for k in ("WARM_IP_TARGET", "MINIMUM_IP_TARGET")
    ):
        env = {**env, "WARM_PREFIX_TARGET": env.get("WARM_PREFIX_TARGET", "1")}
    scenario = scenario_of({"mode": mode, "env": env, "node_groups": groups})
    planned = plan_of(scenario).to_json()["nodes"]
    simulated = simulate(scenario, seed=seed)
    got = simulated["nodes"]
    assert [n["name"] for n in got] == [n["name"] for n in planned]
    for plan_node, sim_node in zip(planned, got, strict=True):
        assert {f: sim_node[f] for f in FIELDS} == {f: plan_node[f] for f in FIELDS}, plan_node[
            "name"
        ]
    assert simulated["ec2"]["throttled"] == 0
