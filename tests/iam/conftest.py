"""A daemon's whole lifecycle against the emulator, under an IAM policy the emulator enforces.

``make_node`` is the daemon tests' (an in-process emulator, a real ``vpccni ipamd``). The
lifecycle, in two phases so that both growth and shrinking happen without hundreds of pods:
set-up as an EKS node group would leave it (the instance tagged
``kubernetes.io/cluster/<name>=owned``, its primary ENI tagged with the cluster, as a launch
template does) plus a leaked ENI (what a daemon killed between create and attach leaves, 10
minutes old); then, with the policy enforced, start (describe, adopt and tag the primary ENI,
read the subnet, delete the leaked ENI), grow (addresses or prefixes on the primary ENI, then a
new ENI: create, attach, DeleteOnTermination), a pod added and deleted, reconcile; then a
restart with a small warm target: shrink (unassign) and free the spare ENI (detach, delete).
What the daemon sent is the emulator's request counts over that window, to which the test adds
no EC2 call of its own.
"""

from __future__ import annotations

import json
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.daemon.conftest import Node, admin_state, make_node  # noqa: F401 - the fixture
from vpccni.cloud.lifecycle import rfc3339
from vpccni.core.aws_types import (
    ENI_DESCRIPTION_PREFIX,
    TAG_CLUSTER_NAME,
    TAG_CREATED_AT,
    TAG_INSTANCE_ID,
)
from vpccni.deploy.iam import IamValues, policy_text

CLUSTER = "iam-test"
SECONDARY = {"grow": {"WARM_IP_TARGET": "12"}, "shrink": {"WARM_IP_TARGET": "1"}}
PREFIX = {
    "grow": {"ENABLE_PREFIX_DELEGATION": "true", "WARM_PREFIX_TARGET": "10"},
    "shrink": {"ENABLE_PREFIX_DELEGATION": "true", "WARM_PREFIX_TARGET": "1"},
}
MODES = {"secondary-ip": SECONDARY, "prefix": PREFIX}
MAX_PODS = ("--max-pods", "250")  # prefix mode: room for 10 prefixes (a second ENI)


def shipped_policy(kind: str) -> dict[str, Any]:
    """A shipped policy as ``vpccni manifests --iam-policy`` prints it for this cluster."""
    values = IamValues(cluster_name=CLUSTER if kind == "tag-scoped" else None)
    document: dict[str, Any] = json.loads(policy_text(kind, values))
    return document


def set_policy(node: Node, document: dict[str, Any] | None) -> None:
    """``POST /admin/iam-policy``: the emulator enforces ``document`` from the next request."""
    request = urllib.request.Request(
        f"{node.server.endpoint}/admin/iam-policy",
        data=json.dumps(document).encode(),
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert json.loads(response.read()) == {"enforcing": document is not None}


def stats(node: Node) -> Counter[str]:
    return Counter({k: int(v) for k, v in admin_state(node.server)["stats"].items()})


def sent(before: Counter[str], after: Counter[str], kind: str = "requests") -> Counter[str]:
    """EC2 actions (``requests``) or denials (``denied``) counted between two snapshots."""
    prefix = f"{kind}."
    return Counter(
        {
            key[len(prefix) :]: after[key] - before[key]
            for key in after
            if key.startswith(prefix) and after[key] > before[key]
        }
    )


@dataclass
class World:
    """What the set-up made: the node's primary ENI and the leaked ENI."""

    primary: str
    leaked: str
    extra: dict[str, str] = field(default_factory=dict)


def prepare(node: Node) -> World:
    """The node as a cluster's node group leaves it, and a leaked ENI 10 minutes old (set-up
    calls, made before any policy is enforced)."""
    client = node.backend.client
    described = client.describe_instances(InstanceIds=[node.instance_id])
    instance = described["Reservations"][0]["Instances"][0]
    primary = instance["NetworkInterfaces"][0]["NetworkInterfaceId"]
    client.create_tags(
        Resources=[node.instance_id],
        Tags=[{"Key": f"kubernetes.io/cluster/{CLUSTER}", "Value": "owned"}],
    )
    client.create_tags(Resources=[primary], Tags=[{"Key": TAG_CLUSTER_NAME, "Value": CLUSTER}])
    clock = json.loads(
        urllib.request.urlopen(f"{node.server.endpoint}/admin/clock", timeout=10).read()
    )
    leaked = client.create_network_interface(
        SubnetId=instance["SubnetId"],
        Description=f"{ENI_DESCRIPTION_PREFIX}{node.instance_id}",
        TagSpecifications=[
            {
                "ResourceType": "network-interface",
                "Tags": [
                    {"Key": TAG_INSTANCE_ID, "Value": node.instance_id},
                    {"Key": TAG_CLUSTER_NAME, "Value": CLUSTER},
                    {"Key": TAG_CREATED_AT, "Value": rfc3339(clock["now"] - 600)},
                ],
            }
        ],
    )["NetworkInterface"]["NetworkInterfaceId"]
    return World(primary, leaked)


def explain(node: Node) -> dict[str, Any]:
    document: dict[str, Any] = node.introspect("/v1/explain")
    return document


def grow(node: Node, mode: dict[str, dict[str, str]]) -> None:
    """Phase 1: start, grow onto a second ENI, a pod in and out, reconcile."""
    node.env.update({"CLUSTER_NAME": CLUSTER, **mode["grow"]})
    node.start(*MAX_PODS)
    node.wait_for(lambda: len(explain(node)["enis"]) == 2, timeout=30, what="a second ENI")
    reply = node.wait_for_reply(lambda: node.add("pod-1"))
    assert reply["ok"], reply
    assert node.delete("pod-1")["ok"]
    node.wait_for(
        lambda: explain(node)["errors"] == {} and not explain(node)["actions"],
        what="the pool at its targets with no error",
    )


def shrink(node: Node, mode: dict[str, dict[str, str]]) -> None:
    """Phase 2: restart with a small target; surplus released, the spare ENI freed."""
    assert node.stop() == 0
    for name in mode["grow"]:
        node.env.pop(name)
    node.env.update(mode["shrink"])
    node.start(*MAX_PODS)
    node.advance(61)  # the spare ENI is older than a minute, the release interval is over
    # The pool forgets the ENI before it asks EC2 to detach and delete it (as upstream): wait
    # for EC2's view too, or a loaded machine reads the call counts before the detach is sent.
    node.wait_for(
        lambda: len(explain(node)["enis"]) == 1 and len(node.enis()) == 1,
        timeout=30,
        what="the spare ENI freed (the pool's and EC2's views)",
    )


def lifecycle(node: Node, mode: dict[str, dict[str, str]]) -> None:
    grow(node, mode)
    shrink(node, mode)


@pytest.fixture
def iam_node(make_node: Any) -> Any:  # noqa: F811 - make_node is the imported fixture
    """A c5.large prepared as a cluster node, with a leaked ENI."""

    def make(**env: str) -> tuple[Node, World]:
        node = make_node("c5.large", **env)
        return node, prepare(node)

    return make
