"""``AWS_MANAGE_ENIS_NON_SCHEDULABLE``: while the Node is cordoned (``spec.unschedulable`` or the
``node.kubernetes.io/unschedulable:NoSchedule`` taint, read from the API), the daemon adds no ENI
unless the variable is true - upstream's rule (reference 2.2, 3.8)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.kube.fake_apiserver import NODES, FakeApiServer, node
from vpccni.adapters.kubernetes_objects import node_from
from vpccni.deploy.rbac import cluster_role_rules

NAME = "ip-10-0-1-17.us-west-2.compute.internal"
TOKEN = "daemon-test-token"
# c5.large: 3 ENIs x 9 addresses; WARM_ENI_TARGET=2 keeps 18 free: the primary and one more ENI.
ENV = {"MY_NODE_NAME": NAME, "WARM_ENI_TARGET": "2"}


@pytest.fixture
def api() -> Iterator[FakeApiServer]:
    server = FakeApiServer(tokens={TOKEN}, rules=cluster_role_rules()).start()
    yield server
    server.stop()


def cordoned(spec_unschedulable: bool = True) -> dict[str, Any]:
    obj = node(NAME, pods="29")
    if spec_unschedulable:
        obj["spec"]["unschedulable"] = True
    obj["spec"]["taints"] = [{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]
    return obj


def start(make_node: Any, api: FakeApiServer, tmp_path: Path, **env: str) -> Any:
    token = tmp_path / "token"
    token.write_text(TOKEN, encoding="utf-8")
    ipamd = make_node("c5.large", **ENV, **env)
    ipamd.start("--kube-api", api.url, "--kube-token-file", str(token))
    return ipamd


def settle(ipamd: Any, seconds: float = 3.0) -> int:
    """Let the pool manager run (ticks every 0.2 s) and advance past any pause; ENIs now."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ipamd.advance(10)
        time.sleep(0.3)
    return len(ipamd.enis())


def test_the_cordon_is_read_from_spec_or_taint() -> None:
    assert node_from(cordoned()).unschedulable
    assert node_from(cordoned(spec_unschedulable=False)).unschedulable
    assert not node_from(node(NAME, pods="29")).unschedulable
    other = node(NAME, pods="29")
    other["spec"]["taints"] = [{"key": "node.kubernetes.io/unschedulable", "effect": "NoExecute"}]
    assert not node_from(other).unschedulable


def test_a_cordoned_node_adds_no_eni_by_default_then_grows_once_uncordoned(
    make_node: Any, api: FakeApiServer, tmp_path: Path
) -> None:
    api.put(NODES, cordoned())
    ipamd = start(make_node, api, tmp_path)
    assert settle(ipamd) == 1  # the primary ENI only
    explain = ipamd.introspect("/v1/explain")
    assert explain["cluster"]["node"]["unschedulable"] is True
    reasons = " ".join(explain["reasons"])
    assert "node is unschedulable and AWS_MANAGE_ENIS_NON_SCHEDULABLE is false" in reasons
    api.put(NODES, node(NAME, pods="29"))  # kubectl uncordon
    ipamd.wait_for(lambda: settle(ipamd, 1.0) == 2, timeout=30, what="a spare ENI")


def test_manage_enis_non_schedulable_true_grows_while_cordoned(
    make_node: Any, api: FakeApiServer, tmp_path: Path
) -> None:
    api.put(NODES, cordoned())
    ipamd = start(make_node, api, tmp_path, AWS_MANAGE_ENIS_NON_SCHEDULABLE="true")
    ipamd.wait_for(lambda: settle(ipamd, 1.0) == 2, timeout=30, what="a spare ENI")
