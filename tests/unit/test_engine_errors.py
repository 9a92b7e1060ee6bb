"""The pool engine's error policy on releases, limits and throttling (over a synthetic EC2)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from ipaddress import IPv4Address, IPv4Network

import pytest

from vpccni.capacity.synthetic import SUBNET, VPC, StepClock, SyntheticCloud
from vpccni.cloud.lifecycle import EniLifecycle, NodeContext
from vpccni.core.aws_types import CloudError, LimitExceeded, Throttled
from vpccni.core.config import parse_ipam_config
from vpccni.core.datastore import Datastore
from vpccni.core.pool_rules import NodeLimits
from vpccni.core.scaling import Action
from vpccni.engine import PoolEngine
from vpccni.engine.datastore_ledger import DatastoreLedger

LIMITS = NodeLimits(max_enis=2, ipv4_per_eni=6, max_pods=20)


class FlakyCloud(SyntheticCloud):
    """The synthetic EC2 with the next unassign / assign failing as told."""

    def __init__(self) -> None:
        super().__init__()
        self.unassign_error: CloudError | None = None
        self.assign_error: CloudError | None = None

    def unassign_ips(self, eni_id: str, addresses: Sequence[IPv4Address]) -> None:
        if self.unassign_error is not None:
            raise self.unassign_error
        super().unassign_ips(eni_id, addresses)

    def assign_ips(self, eni_id: str, count: int) -> list[IPv4Address]:
        if self.assign_error is not None:
            raise self.assign_error
        return super().assign_ips(eni_id, count)


def engine_with(cloud: FlakyCloud) -> PoolEngine:
    config = parse_ipam_config({"WARM_IP_TARGET": "1", "MINIMUM_IP_TARGET": "1"})
    clock = StepClock()
    store = Datastore(config.mode, config.ip_cooldown_seconds)
    lifecycle = EniLifecycle(
        cloud, clock, NodeContext(cloud.instance_id, VPC, SUBNET, ()), random.Random(0)
    )
    engine = PoolEngine(DatastoreLedger(store), lifecycle, config, LIMITS, cloud)
    engine.reconcile_or_raise(force_ec2=True)
    return engine


def primary_cidrs(engine: PoolEngine, cloud: SyntheticCloud) -> frozenset[IPv4Network]:
    return engine.ledger.cidrs_by_eni()[cloud.primary_eni_id]


def grow_and_release(engine: PoolEngine, cloud: FlakyCloud, error: CloudError) -> IPv4Network:
    engine.execute(Action("assign-ips", cloud.primary_eni_id, 3, "test"))
    victim = sorted(primary_cidrs(engine, cloud))[0]
    cloud.unassign_error = error
    engine.execute(Action("release-ips", cloud.primary_eni_id, 1, "test", (str(victim),)))
    cloud.unassign_error = None
    return victim


def test_a_throttled_release_takes_the_cidrs_back_at_once() -> None:
    cloud = FlakyCloud()
    engine = engine_with(cloud)
    victim = grow_and_release(engine, cloud, Throttled("slow down", code="RequestLimitExceeded"))
    assert victim in primary_cidrs(engine, cloud)
    assert victim not in engine.state.recently_released
    assert engine.state.errors == {"decreaseIPPool": 1}


def test_a_release_of_unknown_outcome_waits_out_the_cooldown() -> None:
    cloud = FlakyCloud()
    engine = engine_with(cloud)
    victim = grow_and_release(engine, cloud, CloudError("boom", code="InternalError"))
    assert victim not in primary_cidrs(engine, cloud)
    assert victim in engine.state.recently_released
    # EC2 kept it and says the ENI is full: the resync must not bring it back yet
    cloud.assign_error = LimitExceeded("full", code="PrivateIpAddressLimitExceeded")
    engine.execute(Action("assign-ips", cloud.primary_eni_id, 1, "test"))
    assert victim not in primary_cidrs(engine, cloud)
    engine.clock.sleep(61.0)
    engine.execute(Action("assign-ips", cloud.primary_eni_id, 1, "test"))
    assert victim in primary_cidrs(engine, cloud)


@pytest.mark.parametrize("streak", [0, 3])
def test_a_throttled_growth_pauses_growth(streak: int) -> None:
    cloud = FlakyCloud()
    engine = engine_with(cloud)
    engine.state.throttle_streak = streak
    cloud.assign_error = Throttled("slow down", code="RequestLimitExceeded")
    engine.execute(Action("assign-ips", cloud.primary_eni_id, 2, "test"))
    until = engine.state.throttled_until
    assert until is not None
    pause = until - engine.clock.now()
    assert 2.5 * 2**streak <= pause <= 7.5 * 2**streak
    decision = engine.decide()
    assert decision.actions == ()
    assert any("EC2 throttled" in reason for reason in decision.reasons)
    cloud.assign_error = None
    engine.clock.sleep(pause)
    assert engine.tick().actions
    assert engine.state.throttled_until is None
    assert engine.state.throttle_streak == 0
