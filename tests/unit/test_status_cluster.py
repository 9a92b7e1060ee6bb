"""`vpccni status` says what the daemon read from the cluster, or why it could not."""

from __future__ import annotations

from vpccni.cli.status_cmd import _cluster


def test_a_read_node_shows_its_max_pods_and_the_eniconfigs() -> None:
    cluster = {
        "reachable": True,
        "problem": "",
        "generation": 3,
        "node": {"name": "ip-10-0-1-5", "max_pods": 110},
        "eniconfigs": ["us-west-2a", "us-west-2b"],
    }
    assert _cluster(cluster) == [
        "cluster: Node ip-10-0-1-5, max pods 110; ENIConfigs: us-west-2a, us-west-2b"
    ]


def test_an_unreadable_node_says_why() -> None:
    problem = "403 Forbidden: the ServiceAccount may not list nodes; apply vpccni's ClusterRole"
    cluster = {"reachable": False, "problem": problem, "node": None, "eniconfigs": []}
    assert _cluster(cluster) == [f"cluster: the Node is not read ({problem})"]


def test_a_daemon_without_the_cluster_section_prints_nothing() -> None:
    assert _cluster(None) == []
