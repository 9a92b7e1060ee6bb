"""Table tests of where new ENIs go: the ENIConfig name, the ENIConfig check, subnet discovery
and exclusion (behaviour reference sections 8.6 and 10)."""

from __future__ import annotations

import pytest

from vpccni.core.cluster import ClusterView, EniConfig, NodeInfo
from vpccni.core.model import EniInfo
from vpccni.core.pool_rules import CidrView, EniView
from vpccni.core.subnets import (
    EniConfigChoice,
    PlacementProblem,
    Subnet,
    Target,
    check_eniconfig_subnet,
    discovery_candidates,
    discovery_targets,
    eniconfig_choice,
    eniconfig_name,
    excluded_releases,
    groups_problem,
    node_eniconfig,
    node_subnet_target,
    subnet_excluded,
)

EXTERNAL = "vpc.amazonaws.com/externalEniConfig"
DEFAULT_KEY = "k8s.amazonaws.com/eniConfig"


@pytest.mark.parametrize(
    ("labels", "annotations", "label_key", "annotation_key", "expected"),
    [
        ({}, {}, DEFAULT_KEY, DEFAULT_KEY, "default"),
        ({DEFAULT_KEY: "us-west-2a"}, {}, DEFAULT_KEY, DEFAULT_KEY, "us-west-2a"),
        ({}, {DEFAULT_KEY: "from-annotation"}, DEFAULT_KEY, DEFAULT_KEY, "from-annotation"),
        # the annotation is read before the label
        (
            {DEFAULT_KEY: "label"},
            {DEFAULT_KEY: "annotation"},
            DEFAULT_KEY,
            DEFAULT_KEY,
            "annotation",
        ),
        # the external label wins over both
        (
            {EXTERNAL: "external", DEFAULT_KEY: "label"},
            {DEFAULT_KEY: "annotation"},
            DEFAULT_KEY,
            DEFAULT_KEY,
            "external",
        ),
        # custom keys: only those are read
        ({DEFAULT_KEY: "ignored", "pods/zone": "z1"}, {}, "pods/zone", DEFAULT_KEY, "z1"),
        ({DEFAULT_KEY: "ignored"}, {"pods/eni": "a1"}, "pods/zone", "pods/eni", "a1"),
        ({DEFAULT_KEY: "ignored"}, {}, "pods/zone", "pods/eni", "default"),
        # a present key names the ENIConfig even with an empty value (a map lookup)
        ({DEFAULT_KEY: ""}, {}, DEFAULT_KEY, DEFAULT_KEY, ""),
    ],
)
def test_eniconfig_name_follows_upstreams_order(
    labels: dict[str, str],
    annotations: dict[str, str],
    label_key: str,
    annotation_key: str,
    expected: str,
) -> None:
    node = NodeInfo("n1", labels, annotations)
    assert eniconfig_name(node, label_key, annotation_key) == expected


def test_eniconfig_choice_says_what_named_it() -> None:
    node = NodeInfo("n1", {EXTERNAL: "x"})
    assert eniconfig_choice(node) == ("x", f"label {EXTERNAL}")
    assert eniconfig_choice(None)[0] == "default"
    assert "the default name" in eniconfig_choice(None)[1]


def subnet(
    subnet_id: str,
    free: int,
    tags: dict[str, str] | None = None,
    zone: str = "us-west-2a",
    vpc: str = "vpc-1",
) -> Subnet:
    return Subnet(subnet_id, vpc, zone, "10.0.0.0/24", free, tags or {})


ROLE = "kubernetes.io/role/cni"
CLUSTER = "cni.networking.k8s.aws/cluster/"


@pytest.mark.parametrize(
    ("tags", "cluster", "mine", "usable", "excluded"),
    [
        ({}, "", False, False, False),  # untagged: only the node's subnet
        ({}, "", True, True, False),
        ({ROLE: "0"}, "", True, False, True),  # =0: never, the node's own included
        ({ROLE: "0"}, "", False, False, True),
        ({ROLE: "1"}, "", False, True, False),
        ({ROLE: ""}, "", False, True, False),  # any value but 0
        ({ROLE: "1", CLUSTER + "blue": "1"}, "", False, True, False),  # no CLUSTER_NAME: no check
        ({ROLE: "1", CLUSTER + "blue": "1"}, "blue", False, True, False),
        ({ROLE: "1", CLUSTER + "blue": "1"}, "green", False, False, True),
        ({ROLE: "1", CLUSTER + "blue": "1", CLUSTER + "green": "1"}, "green", False, True, False),
        ({ROLE: "1"}, "green", False, True, False),  # no cluster tags: every cluster
        ({CLUSTER + "blue": "1"}, "green", True, True, False),  # no role tag: not excluded
    ],
)
def test_discovery_and_exclusion_rules(
    tags: dict[str, str], cluster: str, mine: bool, usable: bool, excluded: bool
) -> None:
    candidate = subnet("subnet-b", 10, tags)
    node_subnet = "subnet-b" if mine else "subnet-a"
    found = discovery_candidates([candidate], node_subnet, cluster)
    assert (found == [candidate]) is usable
    assert subnet_excluded(candidate, cluster) is excluded


def test_candidates_go_by_free_addresses_descending() -> None:
    subnets = [
        subnet("subnet-node", 3),
        subnet("subnet-big", 900, {ROLE: "1"}),
        subnet("subnet-never", 5000, {ROLE: "0"}),
        subnet("subnet-mid", 200, {ROLE: "1"}),
        subnet("subnet-untagged", 800),
        subnet("subnet-mid2", 200, {ROLE: "yes"}),
    ]
    found = discovery_candidates(subnets, "subnet-node", "")
    assert [s.subnet_id for s in found] == [
        "subnet-big",
        "subnet-mid",
        "subnet-mid2",
        "subnet-node",
    ]
    targets = discovery_targets(subnets, "subnet-node", "", ["sg-2", "sg-1"])
    assert isinstance(targets, list)
    assert targets[0] == Target("subnet-big", ("sg-1", "sg-2"), targets[0].why)
    assert "kubernetes.io/role/cni=1" in targets[0].why


def test_no_candidate_is_a_pod_subnet_problem_naming_each_subnet() -> None:
    problem = discovery_targets(
        [subnet("subnet-node", 3, {ROLE: "0"}), subnet("subnet-x", 9)], "subnet-node", "", []
    )
    assert isinstance(problem, PlacementProblem)
    assert problem.reason == "pod_subnet"
    assert "subnet-node: tagged kubernetes.io/role/cni=0" in problem.message
    assert "subnet-x: no kubernetes.io/role/cni tag" in problem.message


def test_without_discovery_the_node_subnet_unless_tagged_never() -> None:
    assert node_subnet_target(subnet("subnet-a", 1), "subnet-a", ["sg-1"]) == Target(
        "subnet-a", ("sg-1",), "the node's subnet"
    )
    assert isinstance(node_subnet_target(None, "subnet-a", ["sg-1"]), Target)
    problem = node_subnet_target(subnet("subnet-a", 1, {ROLE: "0"}), "subnet-a", [])
    assert isinstance(problem, PlacementProblem)
    assert "subnet discovery is off" in problem.message


def view_with(labels: dict[str, str], *configs: EniConfig) -> ClusterView:
    return ClusterView(
        node=NodeInfo("n1", labels), eniconfigs={c.name: c for c in configs}, generation=3
    )


def test_node_eniconfig_found_or_a_precise_reason() -> None:
    az_a = EniConfig("us-west-2a", "subnet-pods", ("sg-pods",))
    found = node_eniconfig(view_with({DEFAULT_KEY: "us-west-2a"}, az_a), DEFAULT_KEY, DEFAULT_KEY)
    assert found == EniConfigChoice(
        "us-west-2a", f"label {DEFAULT_KEY}", "subnet-pods", ("sg-pods",)
    )
    missing = node_eniconfig(view_with({DEFAULT_KEY: "us-west-2b"}, az_a), DEFAULT_KEY, DEFAULT_KEY)
    assert isinstance(missing, PlacementProblem)
    assert "ENIConfig 'us-west-2b'" in missing.message
    assert "does not exist (ENIConfigs: us-west-2a)" in missing.message
    no_default = node_eniconfig(view_with({}, az_a), DEFAULT_KEY, DEFAULT_KEY)
    assert isinstance(no_default, PlacementProblem)
    assert "ENIConfig 'default'" in no_default.message
    empty = node_eniconfig(view_with({}, EniConfig("default", "")), DEFAULT_KEY, DEFAULT_KEY)
    assert isinstance(empty, PlacementProblem)
    assert "names no subnet" in empty.message
    unread = node_eniconfig(ClusterView(problem="403 Forbidden"), DEFAULT_KEY, DEFAULT_KEY)
    assert isinstance(unread, PlacementProblem)
    assert "403 Forbidden" in unread.message
    assert isinstance(node_eniconfig(None, DEFAULT_KEY, DEFAULT_KEY), PlacementProblem)


CHOICE = EniConfigChoice("az-a", "label x", "subnet-pods", ())


@pytest.mark.parametrize(
    ("described", "expected"),
    [
        (None, "which EC2 does not know"),
        (subnet("subnet-pods", 10, vpc="vpc-2"), "of vpc-2, but the node is in vpc-1"),
        (
            subnet("subnet-pods", 10, zone="us-west-2b"),
            "in us-west-2b, but the node is in us-west-2a",
        ),
    ],
)
def test_a_broken_eniconfig_subnet_is_named(described: Subnet | None, expected: str) -> None:
    problem = check_eniconfig_subnet(CHOICE, described, "vpc-1", "us-west-2a", ["sg-1"])
    assert isinstance(problem, PlacementProblem)
    assert problem.reason == "eniconfig"
    assert expected in problem.message


def test_an_eniconfig_without_groups_takes_the_primary_enis() -> None:
    target = check_eniconfig_subnet(
        CHOICE, subnet("subnet-pods", 10), "vpc-1", "us-west-2a", ["sg-2", "sg-1"]
    )
    assert target == Target("subnet-pods", ("sg-1", "sg-2"), target.why)  # type: ignore[union-attr]
    with_groups = EniConfigChoice("az-a", "label x", "subnet-pods", ("sg-9",))
    target = check_eniconfig_subnet(with_groups, subnet("subnet-pods", 10), "vpc-1", "", ["sg-1"])
    assert isinstance(target, Target)
    assert target.security_groups == ("sg-9",)


@pytest.mark.parametrize(
    ("code", "message", "about_groups"),
    [
        ("InvalidGroup.NotFound", "The security group 'sg-1' does not exist", True),
        ("InvalidGroupId.Malformed", 'Invalid id: "x"', True),
        (
            "InvalidParameterValue",
            "Security group sg-1 and subnet x belong to different networks",
            True,
        ),
        ("InsufficientFreeAddressesInSubnet", "no addresses", False),
        ("InvalidParameterValue", "something else", False),
    ],
)
def test_group_errors_are_recognised(code: str, message: str, about_groups: bool) -> None:
    problem = groups_problem("az-a", ["sg-1"], code, message)
    assert (problem is not None) is about_groups
    if problem is not None:
        assert "ENIConfig 'az-a' names security groups sg-1" in problem.message


def test_excluded_enis_release_only_unused_settled_cidrs() -> None:
    views = [
        EniView(
            EniInfo("eni-x", 1, excluded=True),
            (
                CidrView("10.0.0.5/32", False, assigned=1),
                CidrView("10.0.0.6/32", False),
                CidrView("10.0.0.7/32", False, cooling=1),
                CidrView("10.0.1.0/28", True),
            ),
        ),
        EniView(EniInfo("eni-y", 2), (CidrView("10.0.0.9/32", False),)),
    ]
    actions = excluded_releases(views)
    assert [(a.action, a.eni, a.cidrs) for a in actions] == [
        ("release-ips", "eni-x", ("10.0.0.6/32",)),
        ("release-prefixes", "eni-x", ("10.0.1.0/28",)),
    ]
