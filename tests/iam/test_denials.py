"""A missing IAM permission is named and never retried in a tight loop (no emulator needed).

The permission gate's backoff (60 s doubling to 10 min, per action; per ENI for CreateTags), the
engine pausing a denied action, reconcile leaving alone an ENI it may not tag, the leaked-ENI
sweep surviving denials, the ``MissingIAMPermissions`` warning once per window, and the metric -
over a synthetic EC2 that denies what it is told to, on a virtual clock.
"""

from __future__ import annotations

import ast
import logging
import random
from pathlib import Path

import pytest

from tests.iam.fakes import DenyingCloud, denial_message
from vpccni.adapters.prometheus_metrics import PrometheusMetrics
from vpccni.capacity.synthetic import SUBNET, VPC, StepClock
from vpccni.cloud.guarded_ec2 import GuardedEc2
from vpccni.cloud.lifecycle import EniLifecycle, NodeContext
from vpccni.cloud.permissions import (
    EC2_ACTIONS,
    Denied,
    PermissionGate,
    aws_message,
    wait_after,
)
from vpccni.core.aws_types import (
    ENI_DESCRIPTION_PREFIX,
    TAG_INSTANCE_ID,
    Unauthorized,
    ec2_error,
)
from vpccni.core.config import parse_ipam_config
from vpccni.core.datastore import Datastore
from vpccni.core.model import EniInfo
from vpccni.core.no_address import Failure, PoolFacts, why_no_address
from vpccni.core.pool_rules import CidrView, EniView, NodeLimits
from vpccni.engine import PoolEngine
from vpccni.engine.datastore_ledger import DatastoreLedger
from vpccni.ports import Metrics, NullMetrics

SRC = Path(__file__).resolve().parents[2] / "src" / "vpccni"
LIMITS = NodeLimits(max_enis=3, ipv4_per_eni=6, max_pods=20)
TICK = 5.0
HOUR = 3600.0
BACKOFF_TIMES = [0.0]
for n in range(1, 20):
    BACKOFF_TIMES.append(BACKOFF_TIMES[-1] + wait_after(n))
WITHIN_AN_HOUR = sum(1 for t in BACKOFF_TIMES if t < HOUR)  # 0, 60, 180, 420, 900, 1500, ...


def engine_over(
    cloud: DenyingCloud, metrics: Metrics | None = None, env: dict[str, str] | None = None
) -> PoolEngine:
    clock = StepClock()
    clock.set(1_800_000_000.0)
    config = parse_ipam_config(env or {})
    store = Datastore(config.mode, config.ip_cooldown_seconds)
    ec2 = GuardedEc2(cloud, clock, metrics or NullMetrics())
    lifecycle = EniLifecycle(
        ec2, clock, NodeContext(cloud.instance_id, VPC, SUBNET, ()), random.Random(0)
    )
    engine = PoolEngine(DatastoreLedger(store), lifecycle, config, LIMITS, cloud)
    engine.reconcile_or_raise(force_ec2=True)
    return engine


def run_for(engine: PoolEngine, seconds: float) -> None:
    clock = engine.clock
    end = clock.now() + seconds
    while clock.now() < end:
        engine.tick()
        engine.reconcile()
        clock.sleep(TICK)


def test_the_declared_actions_are_the_ones_the_ec2_port_calls() -> None:
    """Every EC2 API name the adapters send is declared, and every declared one is sent."""
    for module in ("adapters/ec2_boto3.py", "cloud/guarded_ec2.py"):
        tree = ast.parse((SRC / module).read_text())
        names = {
            node.args[0].value
            for node in ast.walk(tree)
            if isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "_call"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        }
        assert names == set(EC2_ACTIONS), module
    assert all(why for why in EC2_ACTIONS.values())


def test_backoff_is_60_s_doubling_to_10_min() -> None:
    assert [wait_after(n) for n in range(1, 7)] == [60, 120, 240, 480, 600, 600]
    assert WITHIN_AN_HOUR == 9


def test_the_gate_withholds_a_denied_call_until_its_backoff_is_over() -> None:
    gate = PermissionGate()
    error = ec2_error("AssignPrivateIpAddresses", "UnauthorizedOperation", "no")
    raised = gate.denied("AssignPrivateIpAddresses", "eni-1", error, 1000.0)
    assert (raised.retry_at, raised.withheld, raised.code) == (1060.0, False, error.code)
    with pytest.raises(Denied) as withheld:
        gate.check("AssignPrivateIpAddresses", "eni-2", 1059.0)  # per action: any ENI
    assert withheld.value.withheld
    assert "not sent: ec2:AssignPrivateIpAddresses was denied 1 time(s)" in str(withheld.value)
    gate.check("AssignPrivateIpAddresses", "eni-1", 1060.0)  # the backoff is over: it goes
    gate.check("UnassignPrivateIpAddresses", "eni-1", 1000.0)  # another action is not held
    second = gate.denied("AssignPrivateIpAddresses", "eni-1", error, 1060.0)
    assert second.retry_at == 1180.0
    (denial,) = gate.denials()
    assert (denial.denied, denial.withheld, denial.first_at) == (2, 1, 1000.0)
    gate.allowed("AssignPrivateIpAddresses", "eni-1")
    assert gate.denials() == []
    gate.check("AssignPrivateIpAddresses", "eni-1", 1061.0)


def test_create_tags_is_held_per_resource() -> None:
    gate = PermissionGate()
    error = ec2_error("CreateTags", "UnauthorizedOperation", denial_message("CreateTags"))
    gate.denied("CreateTags", "eni-foreign", error, 0.0)
    gate.check("CreateTags", "eni-ours", 1.0)
    with pytest.raises(Denied):
        gate.check("CreateTags", "eni-foreign", 1.0)


def test_the_denial_keeps_aws_words_and_the_resource_aws_named() -> None:
    arn = "arn:aws:ec2:us-west-2:111122223333:network-interface/eni-9"
    text = denial_message("AssignPrivateIpAddresses", arn)
    error = ec2_error("AssignPrivateIpAddresses", "UnauthorizedOperation", text)
    assert aws_message("AssignPrivateIpAddresses", error) == text
    gate = PermissionGate()
    gate.denied("AssignPrivateIpAddresses", "eni-9", error, 0.0)
    (denial,) = gate.denials()
    assert (denial.resource, denial.message) == (arn, text)
    assert denial.permission == "ec2:AssignPrivateIpAddresses"
    other = Unauthorized("a bare message")
    assert aws_message("X", other) == "a bare message"


def test_the_missing_permission_aws_names_wins_over_the_call() -> None:
    """Tagging at creation: CreateNetworkInterface is refused for want of ec2:CreateTags."""
    text = denial_message("CreateTags", "arn:aws:ec2:us-west-2:111122223333:network-interface/*")
    error = ec2_error("CreateNetworkInterface", "UnauthorizedOperation", text)
    gate = PermissionGate()
    gate.denied("CreateNetworkInterface", "", error, 0.0)
    (denial,) = gate.denials()
    assert (denial.action, denial.permission) == ("CreateNetworkInterface", "ec2:CreateTags")


def test_missing_iam_permissions_is_logged_once_per_window(
    caplog: pytest.LogCaptureFixture,
) -> None:
    cloud = DenyingCloud()
    cloud.denied.add("AssignPrivateIpAddresses")
    with caplog.at_level(logging.INFO, logger="vpccni.ipamd"):
        engine = engine_over(cloud)
        run_for(engine, HOUR)
    warnings = [r.getMessage() for r in caplog.records if "MissingIAMPermissions" in r.message]
    assert len(warnings) == cloud.denials["AssignPrivateIpAddresses"] == WITHIN_AN_HOUR
    assert warnings[0].startswith(
        "MissingIAMPermissions: EC2 denied ec2:AssignPrivateIpAddresses on "
        "arn:aws:ec2:us-west-2:111122223333:network-interface/eni-"
    )
    assert "grow by secondary addresses or /28 prefixes" in warnings[0]
    assert "not retried for 60 s" in warnings[0]
    failed = [r for r in caplog.records if r.getMessage().startswith("assign-ips failed")]
    assert len(failed) == WITHIN_AN_HOUR  # one line per real denial, none per skipped tick
    assert {r.levelname for r in failed} == {"INFO"}
    louder = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert all("MissingIAMPermissions" in r.getMessage() for r in louder)


NEEDS_AN_ENI = {"MINIMUM_IP_TARGET": "8", "WARM_IP_TARGET": "1"}
"""The primary ENI holds 5 addresses: reaching 8 takes a second ENI."""


@pytest.mark.parametrize(
    ("action", "env"),
    [
        ("AssignPrivateIpAddresses", {}),
        ("AssignPrivateIpAddresses", {"ENABLE_PREFIX_DELEGATION": "true"}),
        ("CreateNetworkInterface", NEEDS_AN_ENI),
        ("AttachNetworkInterface", NEEDS_AN_ENI),
        ("ModifyNetworkInterfaceAttribute", NEEDS_AN_ENI),
        ("DescribeInstances", NEEDS_AN_ENI),
    ],
)
def test_denied_growth_is_bounded_over_an_hour_of_ticks(action: str, env: dict[str, str]) -> None:
    cloud = DenyingCloud()
    cloud.denied.add(action)
    engine = engine_over(cloud, env=env)
    run_for(engine, HOUR)
    denied = cloud.denials[action]
    assert 1 <= denied <= WITHIN_AN_HOUR, (action, denied)
    # nothing else is called in a loop either: at most one create, attach, delete per denial
    for other in ("CreateNetworkInterface", "DeleteNetworkInterface", "AttachNetworkInterface"):
        assert cloud.calls[other] <= WITHIN_AN_HOUR, (other, cloud.calls)
    assert engine.state.growth_failure is not None
    assert engine.state.growth_failure.code == "UnauthorizedOperation"
    assert len(engine.ledger.cidrs_by_eni()) == 1  # no ENI was added (or leaked)
    assert len([e for e in cloud.enis.values() if e.attachment is None]) == 0
    cloud.denied.clear()
    engine.clock.sleep(wait_after(20))
    run_for(engine, 60)
    assert engine.state.growth_failure is None  # allowed again: the pool grows
    assert engine.lifecycle.ec2.permissions.denials() == []  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "action", ["UnassignPrivateIpAddresses", "DetachNetworkInterface", "DeleteNetworkInterface"]
)
def test_denied_shrinking_is_bounded_and_keeps_the_pool(action: str) -> None:
    cloud = DenyingCloud()
    engine = engine_over(cloud, env={"WARM_IP_TARGET": "1", "WARM_ENI_TARGET": "0"})
    run_for(engine, 30)
    # the pool grows too big behind the engine's back: 4 more addresses, and an ENI
    cloud.assign_ips(cloud.primary_eni_id, 4)
    spare = engine.lifecycle.allocate_eni(secondary_ips=2)
    engine.reconcile(force_ec2=True)
    assert spare.eni_id in engine.ledger.cidrs_by_eni()
    cloud.denied.add(action)
    calls = cloud.calls.copy()
    run_for(engine, HOUR)
    assert 1 <= cloud.denials[action] <= WITHIN_AN_HOUR, cloud.denials
    described = cloud.calls["DescribeNetworkInterfaces"] - calls["DescribeNetworkInterfaces"]
    assert described <= 4 * WITHIN_AN_HOUR  # no describe per tick either
    if action == "UnassignPrivateIpAddresses":
        assert len(engine.ledger.cidrs_by_eni()[cloud.primary_eni_id]) >= 5  # kept, in use
    cloud.denied.clear()
    engine.clock.sleep(wait_after(20))
    run_for(engine, 120)
    assert sum(len(c) for c in engine.ledger.cidrs_by_eni().values()) <= 3


def test_reconcile_leaves_alone_an_eni_it_may_not_tag() -> None:
    """A tag-scoped policy refuses CreateTags on another cluster's ENI attached to the node:
    the daemon does not adopt it, and does not ask again before the backoff is over."""
    cloud = DenyingCloud()
    engine = engine_over(cloud, env=NEEDS_AN_ENI)
    foreign = cloud.create_eni(SUBNET, (), "someone else's", {"team": "other"})
    cloud._attach(foreign.eni_id, 5)
    cloud.denied_on.add(foreign.eni_id)
    run_for(engine, HOUR)
    assert foreign.eni_id not in engine.ledger.cidrs_by_eni()
    assert 1 <= cloud.denials["CreateTags"] <= WITHIN_AN_HOUR
    # the describes it costs are bounded too: one per backoff window, plus the node's own
    assert cloud.calls["DescribeNetworkInterfaces"] <= 3 * WITHIN_AN_HOUR
    assert engine.state.errors.get("eniTag", 0) == cloud.denials["CreateTags"]
    # the pool grows on ENIs of its own around it
    pool = engine.ledger.cidrs_by_eni()
    assert len(pool) == 2
    assert sum(len(c) for c in pool.values()) >= 8
    assert cloud.enis[foreign.eni_id].tags == {"team": "other"}


def test_the_leaked_eni_sweep_survives_denials() -> None:
    cloud = DenyingCloud()
    engine = engine_over(cloud)
    lifecycle = engine.lifecycle
    leaked = cloud.create_eni(
        SUBNET, (), f"{ENI_DESCRIPTION_PREFIX}{cloud.instance_id}", {TAG_INSTANCE_ID: "i-x"}
    )
    cloud._attach(leaked.eni_id, 7)  # the synthetic EC2 lists only attached ENIs
    cloud.denied.add("CreateTags")
    assert lifecycle.cleanup_leaked_enis() == []
    cloud.denied = {"DescribeNetworkInterfaces"}
    assert lifecycle.cleanup_leaked_enis() == []
    assert cloud.denials == {"CreateTags": 1, "DescribeNetworkInterfaces": 1}


def test_the_metric_counts_denied_calls_by_action() -> None:
    cloud = DenyingCloud()
    cloud.denied.add("AssignPrivateIpAddresses")
    metrics = PrometheusMetrics()
    engine = engine_over(cloud, metrics=metrics)
    run_for(engine, 200)
    text = metrics.exposition().decode()
    assert 'vpccni_ec2_unauthorized_total{action="AssignPrivateIpAddresses"} 3.0' in text
    assert "# TYPE vpccni_ec2_unauthorized_total counter" in text


def test_the_no_address_reason_names_the_permission_aws_names() -> None:
    text = denial_message("CreateTags", "arn:aws:ec2:us-west-2:111122223333:network-interface/*")
    failure = Failure("create-eni", "UnauthorizedOperation", "CreateNetworkInterface", text, 0.0)
    config = parse_ipam_config({})
    full = EniView(EniInfo("eni-1", 0, primary=True), (CidrView("10.0.0.5/32", False, 1, 0),))
    cause = why_no_address([full], config, LIMITS, PoolFacts(growth_failure=failure), 4.0)
    assert cause is not None
    assert cause.reason == "unauthorized"
    assert cause.message.endswith("the node's IAM role lacks the permission ec2:CreateTags")
    assert cause.action.startswith("grant ec2:CreateTags to the IAM role vpccni runs with")
