"""The shipped policies, proven against the emulator enforcing them.

* The whole daemon lifecycle (start, grow by addresses / prefixes and by an ENI, shrink, free an
  ENI, tag, leaked-ENI cleanup, reconcile) succeeds under each shipped policy and under none,
  in secondary-IP and prefix mode, with no call denied.
* The EC2 actions it sent are exactly ``EC2_ACTIONS``, which is exactly each policy's action set:
  no unused grant, no missing one.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.iam.conftest import (
    MODES,
    explain,
    lifecycle,
    sent,
    set_policy,
    shipped_policy,
    stats,
)
from vpccni.cloud.permissions import EC2_ACTIONS, iam_name


def policy_actions(document: dict[str, Any]) -> set[str]:
    found: set[str] = set()
    for statement in document["Statement"]:
        actions = statement["Action"]
        found.update([actions] if isinstance(actions, str) else actions)
    return found


@pytest.mark.parametrize("kind", ["default", "tag-scoped"])
def test_each_policy_grants_exactly_the_declared_actions(kind: str) -> None:
    assert policy_actions(shipped_policy(kind)) == {iam_name(a) for a in EC2_ACTIONS}


@pytest.mark.parametrize("mode", sorted(MODES))
@pytest.mark.parametrize("kind", [None, "default", "tag-scoped"])
def test_the_whole_lifecycle_succeeds_and_calls_exactly_the_declared_actions(
    iam_node: Any, kind: str | None, mode: str
) -> None:
    node, world = iam_node()
    before = stats(node)
    set_policy(node, None if kind is None else shipped_policy(kind))
    lifecycle(node, MODES[mode])
    after = stats(node)
    assert sent(before, after, "denied") == {}, node.log()
    assert set(sent(before, after)) == set(EC2_ACTIONS), sent(before, after)
    assert explain(node)["missing_permissions"] == []
    enis = node.backend.ec2.describe_enis(filters={"vpc-id": [explain_vpc(node)]})
    assert world.leaked not in {eni.eni_id for eni in enis}  # the leaked ENI was deleted
    assert [eni.eni_id for eni in enis] == [world.primary]  # the spare ENI was freed
    assert node.stop() == 0


def explain_vpc(node: Any) -> str:
    return str(node.backend.ec2.describe_instance(node.instance_id).vpc_id)
