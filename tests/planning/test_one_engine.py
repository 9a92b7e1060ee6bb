"""The daemon, the simulator and the planner run one pool engine, not copies of it.

Two checks: every one of them ticks through ``PoolEngine.tick`` (each with its own ledger), and
the daemon's pool manager (durable IPAM service) and the planner's convergence (plain datastore),
driven over the same synthetic EC2 with the same pods, take the same actions in the same order
and end with the same ENIs and CIDRs. A behaviour change made in the engine therefore shows in
all three; ``test_agreement.py`` holds the simulator's end state to the planner's.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest

from tests.planning.conftest import simulate
from vpccni.capacity import converge
from vpccni.capacity.synthetic import SUBNET, VPC, StepClock, SyntheticCloud
from vpccni.cloud.lifecycle import EniLifecycle, NodeContext
from vpccni.core.checkpoint import CheckpointState, Record
from vpccni.core.config import parse_ipam_config
from vpccni.core.datastore import Datastore, DatastoreError
from vpccni.core.model import PodKey, PodMeta
from vpccni.core.pool_rules import NodeLimits
from vpccni.core.scaling import Decision
from vpccni.daemon.pool_manager import PoolManager
from vpccni.daemon.service import IpamService
from vpccni.engine import PoolEngine
from vpccni.engine.datastore_ledger import DatastoreLedger

LIMITS = NodeLimits(max_enis=3, ipv4_per_eni=6, max_pods=40)
PODS = 23


class MemoryStore:
    """An honest in-memory checkpoint store (the daemon's durability is tested elsewhere)."""

    def __init__(self) -> None:
        self.records: list[Record] = []

    def load(self) -> CheckpointState:
        return CheckpointState()

    def append(self, record: Record) -> None:
        self.records.append(record)

    def prune_cooldowns(self, cutoff: float) -> None:
        return None


@pytest.fixture
def ledgers(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """The ledger types that ticked through PoolEngine.tick."""
    seen: set[str] = set()
    original = PoolEngine.tick

    def tick(self: PoolEngine) -> Decision:
        seen.add(type(self.ledger).__name__)
        return original(self)

    monkeypatch.setattr(PoolEngine, "tick", tick)
    return seen


def test_daemon_simulator_and_planner_all_tick_through_the_engine(
    ledgers: set[str], scenario_of: Callable[[dict[str, Any]], Any]
) -> None:
    config = parse_ipam_config({})
    converge.converge_node(config, LIMITS, 10)
    simulate(scenario_of({"node_groups": [{"instance_type": "c5.large", "nodes": 1, "pods": 5}]}))
    _drive(_daemon(config), config)
    assert ledgers == {"DatastoreLedger", "SimLedger", "ServiceLedger"}


@pytest.mark.parametrize(
    "env",
    [{}, {"WARM_IP_TARGET": "3", "MINIMUM_IP_TARGET": "7"}, {"ENABLE_PREFIX_DELEGATION": "true"}],
)
def test_the_daemon_and_the_planner_act_alike(env: dict[str, str]) -> None:
    config = parse_ipam_config(env)
    daemon_cloud, daemon = _daemon(config)
    planner_cloud, planner = _planner(config)
    daemon_steps = _drive((daemon_cloud, daemon), config)
    planner_steps = _drive((planner_cloud, planner), config)
    assert daemon_steps == planner_steps
    assert daemon_steps, "the pool never acted"
    assert _cidrs(daemon_cloud) == _cidrs(planner_cloud)


Node = tuple[SyntheticCloud, Any]


def _daemon(config: Any) -> Node:
    cloud, clock = SyntheticCloud(), StepClock()
    service = IpamService(Datastore(config.mode, config.ip_cooldown_seconds), MemoryStore(), clock)
    lifecycle = EniLifecycle(cloud, clock, NodeContext(cloud.instance_id, VPC, SUBNET, ()))
    manager = PoolManager(service, lifecycle, config, LIMITS, imds=cloud)
    manager.reconcile_or_raise(force_ec2=True)
    return cloud, manager


def _planner(config: Any) -> Node:
    cloud, clock = SyntheticCloud(), StepClock()
    store = Datastore(config.mode, config.ip_cooldown_seconds)
    context = NodeContext(cloud.instance_id, VPC, SUBNET, ())
    lifecycle = EniLifecycle(cloud, clock, context, random.Random(0))
    engine = PoolEngine(DatastoreLedger(store), lifecycle, config, LIMITS, cloud)
    engine.reconcile_or_raise(force_ec2=True)
    return cloud, engine


def _drive(node: Node, config: Any) -> list[tuple[float, str, int]]:
    """Tick every 5 s for 10 minutes; pods arrive, later half of them leave."""
    _cloud, runner = node
    clock = runner.clock
    steps: list[tuple[float, str, int]] = []
    now = 0.0
    for tick in range(120):
        now += 5.0
        clock.set(now)
        decision = runner.tick()
        steps.extend((now, a.action, a.count) for a in decision.actions)
        if tick < 60:
            _place(runner, tick % PODS, now)
        elif tick % 2:
            _remove(runner, tick % PODS, now)
    return steps


def _place(runner: Any, pod: int, now: float) -> None:
    key = PodKey("aws-cni", f"pod-{pod}", "eth0")
    store = _datastore(runner)
    try:
        store.assign(key, PodMeta(), now)
    except DatastoreError:
        return


def _remove(runner: Any, pod: int, now: float) -> None:
    store = _datastore(runner)
    store.release(PodKey("aws-cni", f"pod-{pod}", "eth0"), now)


def _datastore(runner: Any) -> Datastore:
    if isinstance(runner, PoolManager):
        return runner.service.datastore
    ledger = runner.ledger
    assert isinstance(ledger, DatastoreLedger)
    return ledger.store


def _cidrs(cloud: SyntheticCloud) -> list[tuple[int, tuple[str, ...]]]:
    return sorted(
        (
            eni.attachment.device_index if eni.attachment else -1,
            tuple(sorted([*map(str, eni.secondary_ips), *map(str, eni.prefixes)])),
        )
        for eni in cloud.enis.values()
    )
