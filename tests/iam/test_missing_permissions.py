"""Every grant of each shipped policy is needed, and the daemon names the one that is missing.

For each statement of each shipped policy, and for each action within a statement, the test
enforces the policy without it, runs the part of the lifecycle that needs it (start and grow;
or grow under the whole policy, then shrink and free without it), sees EC2 deny at least one
call, and finds the missing permission named: in ``/v1/explain``'s ``missing_permissions``,
``vpccni status`` and ``vpccni_ec2_unauthorized_total{action}`` - or, when start-up itself
cannot finish (the daemon serves nothing before), in its ``MissingIAMPermissions`` warning. The
denied calls stay few: the daemon does not retry a denied call before its backoff is over.
"""

from __future__ import annotations

import copy
import re
import urllib.request
from typing import Any

import pytest

from tests.cloud.conftest import free_port
from tests.iam.conftest import (
    MAX_PODS,
    SECONDARY,
    explain,
    grow,
    sent,
    set_policy,
    shipped_policy,
    stats,
)
from vpccni.cli.status_cmd import render
from vpccni.errors import VpccniError

SHRINK = {"ec2:UnassignPrivateIpAddresses", "ec2:DetachNetworkInterface"}
"""Needed only once the pool shrinks: the rest is needed by start-up or growth."""
AT_START_UP = {"ec2:DescribeInstances", "ec2:DescribeNetworkInterfaces"}
"""Start-up cannot finish without these: the daemon names them in its log only."""


def removals() -> list[Any]:
    """(policy, what is removed, the policy without it, the permissions that may be named)."""
    cases = []
    for kind in ("default", "tag-scoped"):
        document = shipped_policy(kind)
        for index, statement in enumerate(document["Statement"]):
            actions = statement["Action"]
            actions = [actions] if isinstance(actions, str) else list(actions)
            without = copy.deepcopy(document)
            del without["Statement"][index]
            cases.append(pytest.param(kind, without, set(actions), id=f"{kind}-{statement['Sid']}"))
            if len(actions) == 1:
                continue
            for action in actions:
                without = copy.deepcopy(document)
                kept = [a for a in actions if a != action]
                without["Statement"][index]["Action"] = kept
                case_id = f"{kind}-{statement['Sid']}-{action.removeprefix('ec2:')}"
                cases.append(pytest.param(kind, without, {action}, id=case_id))
    return cases


def named_in_log(node: Any, wanted: set[str]) -> str | None:
    found = re.findall(r"MissingIAMPermissions: EC2 denied (\S+)", node.log())
    return next((name for name in found if name in wanted), None)


def named_by_daemon(node: Any, wanted: set[str]) -> dict[str, Any] | None:
    try:
        denials = explain(node)["missing_permissions"]
    except VpccniError:
        return None  # not serving yet (or never: start-up needs the permission)
    return next((d for d in denials if d["action"] in wanted), None)


def unauthorized_count(port: int, call: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    found = re.search(rf'^vpccni_ec2_unauthorized_total\{{action="{call}"\}} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


@pytest.mark.parametrize(("kind", "without", "wanted"), removals())
def test_a_missing_grant_is_denied_and_named(
    iam_node: Any, kind: str, without: dict[str, Any], wanted: set[str]
) -> None:
    node, _ = iam_node()
    port = free_port()
    metrics = ("--metrics-bind", f"127.0.0.1:{port}")
    if wanted <= SHRINK:
        set_policy(node, shipped_policy(kind))
        grow(node, SECONDARY)  # the pool grows under the whole policy
        assert node.stop() == 0
        for name in SECONDARY["grow"]:
            node.env.pop(name)
        node.env.update(SECONDARY["shrink"])
        before = stats(node)
        set_policy(node, without)
        node.start(*MAX_PODS, *metrics)
        node.advance(61)
    else:
        before = stats(node)
        set_policy(node, without)
        node.env.update({"CLUSTER_NAME": "iam-test", **SECONDARY["grow"]})
        node.start(*MAX_PODS, *metrics, wait=False)

    found: dict[str, Any] = {}

    def named() -> bool:
        denial = named_by_daemon(node, wanted)
        if denial is not None:
            found["denial"] = denial
            return True
        logged = named_in_log(node, wanted & AT_START_UP)
        if logged is not None:
            found["logged"] = logged
            return True
        return False

    node.wait_for(named, timeout=30, what=f"the daemon to name one of {sorted(wanted)}")
    denied = sent(before, stats(node), "denied")
    assert denied, "EC2 denied nothing"
    assert sum(denied.values()) <= 4, denied  # no storm: each denial waits its backoff
    if not wanted & AT_START_UP:
        assert "denial" in found, found  # the daemon runs: it shows what it lacks
    if "denial" in found:
        denial = found["denial"]
        assert denial["denied_calls"] >= 1
        assert "not authorized to perform: " + denial["action"] in denial["message"]
        assert denial["retry_in_seconds"] > 0
        document = explain(node)
        status = render(document, node.introspect("/v1/pods"))
        assert f"missing IAM permission: {denial['action']}" in status
        assert unauthorized_count(port, denial["call"]) >= 1
    else:
        assert f"MissingIAMPermissions: EC2 denied {found['logged']}" in node.log()
        assert "start-up failed" in node.log()
    assert node.stop() == 0


def without_action(document: dict[str, Any], sid: str, action: str | None) -> dict[str, Any]:
    """``document`` without ``action`` in statement ``sid`` (without the statement: None)."""
    changed = copy.deepcopy(document)
    for statement in list(changed["Statement"]):
        if statement["Sid"] != sid:
            continue
        if action is None:
            changed["Statement"].remove(statement)
        else:
            statement["Action"] = [a for a in statement["Action"] if a != action]
    return changed


@pytest.mark.parametrize(
    ("kind", "sid", "action", "pods", "permission"),
    [
        ("default", "VpcCniEc2", "ec2:AssignPrivateIpAddresses", 0, "ec2:AssignPrivateIpAddresses"),
        ("tag-scoped", "TagEniAtCreation", None, 9, "ec2:CreateTags"),
    ],
)
def test_a_pod_without_an_address_is_told_which_permission_is_missing(
    iam_node: Any, kind: str, sid: str, action: str | None, pods: int, permission: str
) -> None:
    node, _ = iam_node()
    set_policy(node, without_action(shipped_policy(kind), sid, action))
    node.env.update({"CLUSTER_NAME": "iam-test"})
    node.start()
    for i in range(pods):  # the primary ENI's addresses; the next pod needs a new ENI
        node.wait_for_reply(lambda i=i: node.add(f"pod-{i}"))
    node.wait_for(
        lambda: any(d["action"] == permission for d in explain(node)["missing_permissions"]),
        what=f"{permission} named",
    )
    reply = node.add("one-too-many")
    assert not reply["ok"], reply
    error = reply["error"]
    assert error["code"] == 110, error  # no retry helps without an IAM change
    assert error["msg"].startswith("EC2 refusing: UnauthorizedOperation on "), error
    assert error["msg"].endswith(f"the node's IAM role lacks the permission {permission}")
    assert error["details"].startswith(f"grant {permission} to the IAM role vpccni runs with")
    assert explain(node)["no_address"]["reason"] == "unauthorized"
    assert node.stop() == 0
