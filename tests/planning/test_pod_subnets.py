"""Planning with pod subnets apart from node subnets: custom networking and subnet discovery.

The numbers are worked by hand from upstream's rules (behaviour reference sections 3, 8.6, 10):
an m5.large has 3 ENIs of 10 addresses; WARM_ENI_TARGET=1 keeps 9 free addresses; with custom
networking the primary ENI holds only the node's own address, so pods live on the other two ENIs
(max pods (3 - 1) x (10 - 1) + 2 = 20) in the ENIConfig's subnet; with subnet discovery each new
ENI goes to the subnet of the node's zone with the most free addresses that may hold pod ENIs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.planning.conftest import plan_of
from vpccni.capacity.scenario import ScenarioError
from vpccni.cli.main import main
from vpccni.cli.plan_cmd import load_scenario
from vpccni.core.limits import InstanceTable
from vpccni.core.maxpods import MaxPodsOptions, compute_max_pods
from vpccni.sim.cluster import Simulation

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
M5 = {"instance_type": "m5.large"}


def custom(pods: int, nodes: int = 2, pod_subnet: str = "100.64.0.0/24") -> dict[str, Any]:
    return {
        "vpc": {"cidr": "10.0.0.0/16", "secondary_cidrs": ["100.64.0.0/16"]},
        "subnet_cidr": [{"cidr": "10.0.0.0/24", "availability_zone": "us-west-2a"}],
        "pod_subnets": [{"cidr": pod_subnet, "availability_zone": "us-west-2a"}],
        "custom_networking": True,
        "eniconfigs": {"us-west-2a": {"subnet": pod_subnet, "security_groups": ["pods"]}},
        "node_groups": [{**M5, "name": "a", "nodes": nodes, "pods": pods}],
    }


def discovery(
    pods: int, *, env: dict[str, str] | None = None, tagged: list[Any] | None = None
) -> dict[str, Any]:
    return {
        "env": env or {},
        "vpc": {"cidr": "10.0.0.0/16"},
        "subnet_cidr": [{"cidr": "10.0.0.0/26", "availability_zone": "us-west-2a"}],
        "cni_subnets": tagged
        if tagged is not None
        else [{"cidr": "10.0.1.0/24", "availability_zone": "us-west-2a"}],
        "node_groups": [{**M5, "name": "d", "nodes": 2, "pods": pods}],
    }


def used(document: dict[str, Any]) -> dict[str, int]:
    return {row["cidr"]: row["used"] for row in document["subnets"]}


# -- custom networking -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pods", "pod_enis"),
    [
        (0, 1),  # one pod ENI keeps the 9 warm addresses
        (5, 2),  # 4 free < 9: a second pod ENI
        (18, 2),  # max pods 20 - 2 host-network pods: both pod ENIs full
    ],
)
def test_custom_networking_by_hand(scenario_of: Any, pods: int, pod_enis: int) -> None:
    document = plan_of(scenario_of(custom(pods))).to_json()
    for node in document["nodes"]:
        assert node["primary_eni"] == {"subnet": "10.0.0.0/24", "addresses": 1, "pod_addresses": 0}
        assert node["pod_enis"] == [{"subnet": "100.64.0.0/24", "addresses": 10}] * pod_enis
        assert node["max_pods"] == 20
        assert node["assigned"] == pods
        assert node["eniconfig"] == "us-west-2a"
        assert node["availability_zone"] == "us-west-2a"
    assert used(document) == {"10.0.0.0/24": 2, "100.64.0.0/24": 2 * 10 * pod_enis}
    assert document["warnings"] == []
    assert document["custom_networking"] is True


def test_custom_networking_max_pods_is_the_calculators(
    scenario_of: Any, table: InstanceTable
) -> None:
    scenario = scenario_of(custom(1))
    options = MaxPodsOptions(custom_networking=True)
    assert (
        scenario.groups[0].node_limits.max_pods
        == compute_max_pods(table.get("m5.large"), options).uncapped
    )
    # pods beyond max pods - 2 are refused by the kubelet, not given an address
    document = plan_of(scenario_of(custom(25))).to_json()
    assert {n["pods_over_max_pods"] for n in document["nodes"]} == {7}


def test_a_pod_subnet_too_small_warns_with_the_zone_and_the_shortfall(scenario_of: Any) -> None:
    # 5 nodes x 2 pod ENIs x 10 addresses = 100 in a /26 (59 usable): 41 short; a /25 holds 123
    document = plan_of(scenario_of(custom(18, nodes=5, pod_subnet="100.64.0.0/26"))).to_json()
    (warning,) = document["warnings"]
    assert warning["availability_zone"] == "us-west-2a"
    assert (warning["needed"], warning["usable"], warning["short"]) == (100, 59, 41)
    assert warning["subnets"] == ["100.64.0.0/26"]
    assert (
        "ENIConfig us-west-2a a /25 or larger subnet in us-west-2a (123 usable"
        in (warning["advice"])
    )
    # the secondary block has room: the first free /25 in it
    assert "100.64.0.128/25 is free in the VPC's secondary CIDR" in warning["advice"]
    assert document["totals"]["fits"] is False


def test_a_full_secondary_block_suggests_another(scenario_of: Any) -> None:
    document = custom(18, nodes=5, pod_subnet="100.64.0.0/26")
    document["vpc"]["secondary_cidrs"] = ["100.64.0.0/26"]
    (warning,) = plan_of(scenario_of(document)).to_json()["warnings"]
    assert (
        "associate another secondary CIDR with the VPC (e.g. 100.65.0.0/16)" in (warning["advice"])
    )


def test_each_zone_is_checked_on_its_own(scenario_of: Any) -> None:
    document = custom(18, nodes=5, pod_subnet="100.64.0.0/26")
    document["subnet_cidr"].append({"cidr": "10.0.1.0/24", "availability_zone": "us-west-2b"})
    document["pod_subnets"].append({"cidr": "100.64.64.0/18", "availability_zone": "us-west-2b"})
    document["eniconfigs"]["us-west-2b"] = {"subnet": "100.64.64.0/18"}
    document["node_groups"].append({**M5, "name": "b", "nodes": 5, "pods": 18})
    result = plan_of(scenario_of(document)).to_json()
    assert [w["availability_zone"] for w in result["warnings"]] == ["us-west-2a"]
    assert used(result)["100.64.64.0/18"] == 100
    # round-robin over node subnets: each node picks the ENIConfig of its own zone
    zones = {
        n["name"]: (n["availability_zone"], n["pod_enis"][0]["subnet"]) for n in result["nodes"]
    }
    assert zones["b-1"] == ("us-west-2b", "100.64.64.0/18")


def test_group_eniconfig_wins_over_the_zone_name(scenario_of: Any) -> None:
    document = custom(5)
    document["pod_subnets"].append({"cidr": "100.64.1.0/24", "availability_zone": "us-west-2a"})
    document["eniconfigs"]["batch"] = {"subnet": "100.64.1.0/24"}
    document["node_groups"][0]["eniconfig"] = "batch"
    result = plan_of(scenario_of(document)).to_json()
    assert used(result) == {"10.0.0.0/24": 2, "100.64.0.0/24": 0, "100.64.1.0/24": 40}


# -- subnet discovery ------------------------------------------------------------------------


def test_discovery_puts_new_enis_in_the_tagged_subnet(scenario_of: Any) -> None:
    # 20 pods: 3 ENIs of 10 addresses; the primary ENI (with pods on it) stays in the node
    # subnet, the others go to 10.0.1.0/24 (251 free beats the /26's 59 - 10 - 10)
    result = plan_of(scenario_of(discovery(20))).to_json()
    for node in result["nodes"]:
        assert node["primary_eni"] == {
            "subnet": "10.0.0.0/26",
            "addresses": 10,
            "pod_addresses": 9,
        }
        assert [e["subnet"] for e in node["pod_enis"]] == ["10.0.1.0/24"] * 2
    assert used(result) == {"10.0.0.0/26": 20, "10.0.1.0/24": 40}
    assert result["warnings"] == []


def test_discovery_off_keeps_everything_in_the_node_subnet(scenario_of: Any) -> None:
    result = plan_of(scenario_of(discovery(20, env={"ENABLE_SUBNET_DISCOVERY": "false"}))).to_json()
    assert used(result) == {"10.0.0.0/26": 60, "10.0.1.0/24": 0}
    (warning,) = result["warnings"]
    assert (warning["needed"], warning["usable"], warning["short"]) == (60, 59, 1)
    assert "ENABLE_SUBNET_DISCOVERY=true" in warning["advice"]


@pytest.mark.parametrize(
    ("tags", "env"),
    [
        ({"kubernetes.io/role/cni": "0"}, {}),  # never for pods
        ({"cni.networking.k8s.aws/cluster/other": "1"}, {"CLUSTER_NAME": "mine"}),
    ],
)
def test_discovery_skips_excluded_subnets(
    scenario_of: Any, tags: dict[str, str], env: dict[str, str]
) -> None:
    tagged = [{"cidr": "10.0.1.0/24", "availability_zone": "us-west-2a", "tags": tags}]
    result = plan_of(scenario_of(discovery(20, env=env, tagged=tagged))).to_json()
    assert used(result) == {"10.0.0.0/26": 60, "10.0.1.0/24": 0}
    # 60 - 59 = 1 short: any /28 tagged for pods would do, and the VPC has room for one
    assert (
        "tag a subnet in us-west-2a kubernetes.io/role/cni=1 with at least 1 free"
        in (result["warnings"][0]["advice"])
    )
    assert (
        "(a /28: 10.0.0.64/28 is free in the VPC's CIDR blocks)" in result["warnings"][0]["advice"]
    )


def test_discovery_uses_a_subnet_tagged_for_this_cluster(scenario_of: Any) -> None:
    tags = {"cni.networking.k8s.aws/cluster/mine": "1"}
    tagged = [{"cidr": "10.0.1.0/24", "availability_zone": "us-west-2a", "tags": tags}]
    env = {"CLUSTER_NAME": "mine"}
    result = plan_of(scenario_of(discovery(20, env=env, tagged=tagged))).to_json()
    assert used(result) == {"10.0.0.0/26": 20, "10.0.1.0/24": 40}


def test_discovery_ignores_untagged_and_other_zones_subnets(scenario_of: Any) -> None:
    document = discovery(20, tagged=[{"cidr": "10.0.2.0/24", "availability_zone": "us-west-2b"}])
    document["pod_subnets"] = [{"cidr": "10.0.1.0/24", "availability_zone": "us-west-2a"}]
    result = plan_of(scenario_of(document)).to_json()
    assert used(result) == {"10.0.0.0/26": 60, "10.0.1.0/24": 0, "10.0.2.0/24": 0}


def test_discovery_fills_the_emptiest_subnet_first(scenario_of: Any) -> None:
    tagged = [
        {"cidr": "10.0.1.0/26", "availability_zone": "us-west-2a"},
        {"cidr": "10.0.2.0/26", "availability_zone": "us-west-2a"},
    ]
    document = discovery(20, tagged=tagged)
    document["node_groups"][0]["nodes"] = 3
    result = plan_of(scenario_of(document)).to_json()
    # node subnet: 3 primaries x 10 = 30 (29 of 59 left); the six other ENIs (10 each) go to
    # whichever tagged /26 has more free addresses, so they share them evenly, and never to
    # the node subnet, which never has more free than the emptier tagged one
    counts = used(result)
    assert sum(counts.values()) == 90
    assert counts["10.0.1.0/26"] == counts["10.0.2.0/26"] == 30
    assert counts["10.0.0.0/26"] == 30


# -- the scenario's network is validated -----------------------------------------------------


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: d.pop("eniconfigs"), "eniconfigs: custom networking is on"),
        (
            lambda d: d.update(eniconfigs={"us-west-2b": {"subnet": "100.64.0.0/24"}}),
            "no ENIConfig for nodes in 10.0.0.0/24 (us-west-2a): none named 'us-west-2a'",
        ),
        (
            lambda d: d["pod_subnets"][0].update(availability_zone="us-west-2b"),
            "ENIConfig 'us-west-2a' names subnet 100.64.0.0/24 in us-west-2b",
        ),
        (
            lambda d: d["eniconfigs"]["us-west-2a"].update(subnet="100.65.0.0/24"),
            "eniconfigs.us-west-2a.subnet: '100.65.0.0/24' is not a subnet of the scenario",
        ),
        (
            lambda d: d["eniconfigs"]["us-west-2a"].update(security_groups="pods"),
            "eniconfigs.us-west-2a.security_groups",
        ),
        (
            lambda d: d.update(custom_networking=False),
            "eniconfigs: given, but custom networking is off",
        ),
        (
            lambda d: d.update(env={"AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG": "false"}),
            "custom_networking true contradicts env.AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG",
        ),
        (
            lambda d: d["node_groups"][0].update(eniconfig="nope"),
            "node_groups[0].eniconfig: 'nope' is not one of eniconfigs",
        ),
        (
            lambda d: d["vpc"].update(secondary_cidrs=[]),
            "pod_subnets[0]: 100.64.0.0/24 is in none of the VPC's CIDR blocks (10.0.0.0/16)",
        ),
        (
            lambda d: d["vpc"].update(secondary_cidrs=["172.16.0.0/16"]),
            "vpc.secondary_cidrs[0]: EC2 would refuse 172.16.0.0/16",
        ),
        (
            lambda d: d["vpc"].update(secondary_cidrs=["10.0.128.0/17"]),
            "vpc.secondary_cidrs[0]: EC2 would refuse 10.0.128.0/17",
        ),
        (lambda d: d["vpc"].update(colour=1), "vpc: unknown field(s) colour"),
        (
            lambda d: d["pod_subnets"][0].update(availability_zone="eu-west-1a"),
            "the subnets' zones are in 2 regions",
        ),
        (
            lambda d: d["pod_subnets"][0].update(availability_zone="zone-a"),
            "pod_subnets[0].availability_zone: 'zone-a' is not an availability zone",
        ),
        (
            lambda d: d["pod_subnets"][0].update(cidr="10.0.0.128/25"),
            "pod_subnets[0].cidr: 10.0.0.128/25 overlaps 10.0.0.0/24 (subnet_cidr[0])",
        ),
        (
            lambda d: d["pod_subnets"][0].update(tags={"kubernetes.io/role/cni": 1}),
            "pod_subnets[0].tags.kubernetes.io/role/cni: 1 is not a string",
        ),
        (lambda d: d.update(cni_subnets="10.0.9.0/24"), "cni_subnets: expected a list"),
        (lambda d: d.pop("subnet_cidr"), "subnet_cidr: custom networking needs the node subnets"),
        (
            lambda d: d["node_groups"][0].update(subnet="100.64.0.0/24"),
            "node_groups[0].subnet: '100.64.0.0/24' is not one of subnet_cidr",
        ),
    ],
)
def test_network_mistakes_name_the_field(scenario_of: Any, change: Any, expected: str) -> None:
    document = custom(1)
    change(document)
    with pytest.raises(ScenarioError) as error:
        scenario_of(document)
    assert expected in str(error.value)
    assert "\n" not in str(error.value)


def test_derived_vpc_blocks_ec2_refuses_together(scenario_of: Any) -> None:
    document = {
        "subnet_cidr": ["10.0.0.0/24", "172.16.0.0/24"],
        "node_groups": [{**M5, "nodes": 1}],
    }
    with pytest.raises(ScenarioError, match=r"subnet_cidr\[1\]: .*give vpc"):
        scenario_of(document)


# -- the shipped examples --------------------------------------------------------------------


def test_custom_networking_example(table: InstanceTable) -> None:
    scenario = load_scenario(str(EXAMPLES / "custom-networking.yaml"))
    network = scenario.network
    assert [str(b) for b in network.vpc.blocks] == ["10.0.0.0/16", "100.64.0.0/16"]  # type: ignore[union-attr]
    pod = [s for s in network.subnets if not s.for_nodes]
    assert [s.cidr.prefixlen for s in pod] == [18, 18, 18]
    assert all(s.cidr.subnet_of(network.vpc.secondary_cidrs[0]) for s in pod)  # type: ignore[union-attr]
    document = plan_of(scenario).to_json()
    assert {n["primary_eni"]["addresses"] for n in document["nodes"]} == {1}
    assert {n["max_pods"] for n in document["nodes"]} == {20}
    by_zone = {row["cidr"]: row for row in document["subnets"]}
    assert by_zone["100.64.0.0/18"]["used"] == 200 * 20
    assert by_zone["100.64.128.0/18"]["used"] == 120 * 20
    assert by_zone["10.0.2.0/24"]["used"] == 120
    assert document["totals"]["fits"] is True
    assert document["warnings"] == []


def test_subnet_discovery_example() -> None:
    document = plan_of(load_scenario(str(EXAMPLES / "subnet-discovery.yaml"))).to_json()
    assert used(document) == {"10.0.0.0/24": 20 * 10, "10.0.64.0/18": 20 * 20}
    assert document["totals"]["fits"] is True


def test_plan_prints_the_fit_and_the_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "short.json"
    path.write_text(json.dumps(custom(18, nodes=5, pod_subnet="100.64.0.0/26")))
    assert main(["plan", str(path)]) == 0
    out = capsys.readouterr().out
    assert "subnet 100.64.0.0/26 (us-west-2a, pod subnet): 100 of 59 usable" in out
    assert "DOES NOT FIT" in out
    assert "WARNING us-west-2a: pod subnet 100.64.0.0/26 cannot hold" in out
    assert "41 short" in out
    assert main(["plan", str(EXAMPLES / "custom-networking.yaml"), "--format", "json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["nodes"][0]["pod_enis"][0]["subnet"] == "100.64.0.0/18"


def test_node_subnet_excluded_from_pods(scenario_of: Any) -> None:
    # kubernetes.io/role/cni=0 on the node subnet: with discovery the primary ENI takes no pod
    # address (1 address: the node's), pods live on two ENIs in the tagged subnet; without
    # discovery no ENI can be made at all and the primary ENI's 9 addresses are all there is
    document = discovery(12)
    document["subnet_cidr"][0]["tags"] = {"kubernetes.io/role/cni": "0"}
    result = plan_of(scenario_of(document)).to_json()
    node = result["nodes"][0]
    assert node["primary_eni"] == {"subnet": "10.0.0.0/26", "addresses": 1, "pod_addresses": 0}
    assert node["pod_enis"] == [{"subnet": "10.0.1.0/24", "addresses": 10}] * 2
    assert used(result) == {"10.0.0.0/26": 2, "10.0.1.0/24": 40}
    document["env"] = {"ENABLE_SUBNET_DISCOVERY": "false"}
    result = plan_of(scenario_of(document)).to_json()
    assert {(n["enis"], n["assigned"], n["pods_without_ip"]) for n in result["nodes"]} == {
        (1, 9, 3)
    }


# -- simulate agrees -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["custom-networking.yaml", "subnet-discovery.yaml"])
def test_the_examples_simulate_as_planned(name: str) -> None:
    scenario = load_scenario(str(EXAMPLES / name))
    planned = plan_of(scenario).to_json()
    simulation = Simulation(scenario, seed=1, duration=None, launch_over=600.0)
    simulation.run()
    simulated = simulation.recorder.report()
    assert simulated["subnets"] == planned["subnets"]
    assert [n["pod_enis"] for n in simulated["nodes"]] == [n["pod_enis"] for n in planned["nodes"]]
    assert simulated["ec2"]["throttled"] == 0
    if scenario.network.custom_networking:
        # pod ENIs carry the ENIConfig's security group, the primary ENIs the node's
        store = simulation.model.store
        pods_group = simulation.group_ids["pods"]
        for node in simulation.nodes:
            for eni in node.pool.ordered:
                groups = store.enis[eni.info.eni_id].group_ids
                assert (pods_group in groups) == (not eni.info.primary)
