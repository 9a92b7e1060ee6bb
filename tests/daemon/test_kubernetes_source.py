"""A real ipamd reading its Node from the test API server (``--kube-api``): max pods from the
Node's ``status.capacity.pods`` (issue #15 item 6), followed when it appears or changes, and
``/v1/eni-configs``; without the API, the prefix-mode warning and ``--max-pods``.

Upstream's ipamd takes max pods from the Node when the API is reachable; before this, vpccni
always used the ``eni-max-pods.txt`` figure, so in prefix mode an m5.large (kubelet: 110 pods)
stopped at 29 (3 ENIs x 9 + 2) and pod 33 never got an address.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.kube.fake_apiserver import NODES, FakeApiServer, node
from vpccni.deploy.rbac import cluster_role_rules

NAME = "ip-10-0-1-17.us-west-2.compute.internal"
TOKEN = "daemon-test-token"
LABEL = "k8s.amazonaws.com/eniConfig"
PREFIX = {"ENABLE_PREFIX_DELEGATION": "true", "WARM_PREFIX_TARGET": "1", "MY_NODE_NAME": NAME}


@pytest.fixture
def api() -> Iterator[FakeApiServer]:
    """The test API server, granting exactly the shipped ClusterRole."""
    server = FakeApiServer(tokens={TOKEN}, rules=cluster_role_rules()).start()
    yield server
    server.stop()


def kube_flags(api: FakeApiServer, tmp_path: Path) -> list[str]:
    token = tmp_path / "token"
    token.write_text(TOKEN, encoding="utf-8")
    return ["--kube-api", api.url, "--kube-token-file", str(token)]


def add_all(node: Any, count: int, start: int = 0) -> set[str]:
    """ADD pods ``start`` .. ``start+count-1`` (retrying while the pool grows); their addresses."""
    addresses = set()
    for number in range(start, start + count):
        reply = node.wait_for_reply(lambda n=number: node.add(f"pod-{n:03d}"), timeout=30)
        addresses.add(reply["result"]["ips"][0]["address"])
    return addresses


def max_pods(node: Any) -> int:
    return int(node.introspect("/v1/explain")["max_pods"])


def test_prefix_mode_m5_large_serves_the_nodes_110_pods(
    make_node: Any, api: FakeApiServer, tmp_path: Path
) -> None:
    api.put(NODES, node(NAME, labels={LABEL: "us-west-2a"}, pods="110"))
    ipamd = make_node("m5.large", **PREFIX)
    ipamd.start(*kube_flags(api, tmp_path))
    assert max_pods(ipamd) == 110
    assert "max pods 110 (the Node's status.capacity.pods)" in ipamd.log()
    assert "prefix delegation is on but max pods" not in ipamd.log()
    cluster = ipamd.introspect("/v1/explain")["cluster"]
    assert cluster["node"] == {"name": NAME, "max_pods": 110, "unschedulable": False}
    assert (cluster["reachable"], cluster["problem"], cluster["eniconfigs"]) == (True, "", [])
    assert len(add_all(ipamd, 110)) == 110
    assert ipamd.introspect("/v1/eni-configs") == "us-west-2a"
    assert all(r.status != 403 for r in api.requests)  # the shipped RBAC is enough


def test_the_nodes_capacity_is_followed_when_it_appears_and_changes(
    make_node: Any, api: FakeApiServer, tmp_path: Path
) -> None:
    """The Node does not exist yet: the table's 29 and the warning; then kubelet registers it
    with 110 and the node grows past 29; then its capacity changes to 40."""
    ipamd = make_node("m5.large", **PREFIX)
    ipamd.start(*kube_flags(api, tmp_path))
    assert max_pods(ipamd) == 29
    log = ipamd.log()
    assert "max pods 29 (eni-max-pods.txt)" in log
    assert "set --max-pods to kubelet's max pods" in log
    assert f"the Node '{NAME}' does not exist" in ipamd.introspect("/v1/eni-configs")["error"]
    cluster = ipamd.introspect("/v1/explain")["cluster"]
    assert (cluster["reachable"], cluster["node"]) == (True, None)
    assert "MY_NODE_NAME must be this node's name" in cluster["problem"]
    add_all(ipamd, 32)  # two /28 prefixes: the pool stops there (total 32 >= 29)
    refused = ipamd.add("pod-032")
    assert not refused["ok"]

    api.put(NODES, node(NAME, pods="110"))
    ipamd.wait_for(lambda: max_pods(ipamd) == 110, what="max pods 110 from the Node")
    assert "max pods 29 -> 110 (the Node's status.capacity.pods)" in ipamd.log()
    add_all(ipamd, 20, start=32)
    assert ipamd.introspect("/v1/eni-configs") == "default"

    api.put(NODES, node(NAME, pods="40"))
    ipamd.wait_for(lambda: max_pods(ipamd) == 40, what="max pods 40 from the Node")


def test_without_the_api_prefix_mode_warns_and_max_pods_is_the_flag(
    make_node: Any, tmp_path: Path
) -> None:
    ipamd = make_node("m5.large", **PREFIX)
    ipamd.start("--node-label", f"{LABEL}=us-west-2b")
    assert max_pods(ipamd) == 29
    warning = next(line for line in ipamd.log().splitlines() if "prefix delegation is on" in line)
    assert "max pods is 29, the eni-max-pods.txt figure for secondary IPs" in warning
    assert "set --max-pods to kubelet's max pods (e.g. --max-pods 110)" in warning
    assert ipamd.introspect("/v1/eni-configs") == "us-west-2b"
    ipamd.stop()

    ipamd.start("--max-pods", "110")
    assert max_pods(ipamd) == 110
    assert "max pods 110 (--max-pods)" in ipamd.log()
    assert ipamd.introspect("/v1/eni-configs") == "default"  # custom networking off, no API
    assert len(add_all(ipamd, 40)) == 40  # the demo: pod 33 and beyond get addresses
