"""The steady state of one node, found by running the daemon's own pool engine to convergence.

``converge_node`` starts a node as EC2 launches it (the primary ENI, no secondary address),
adopts it as the daemon does at start-up, lets its pods arrive, and then ticks every 5 s with
the daemon's :class:`~vpccni.engine.PoolEngine` over a plain core datastore and a synthetic,
instant one-node EC2 (``vpccni.capacity.synthetic``: addresses and prefixes in order, ENIs at the
lowest free device index), waiting pods placed after every tick. It stops once no tick has
acted for longer than every timer the rules know (IP cooldown, 60 s ENI lifetime, 30 s release
interval, 120 s capacity pause), so nothing can change any more. Subnet size is not a limit
here (the plan reports whether the result fits); ``vpccni simulate`` runs the same engine
against the emulator and must end in the same state (``tests/planning/test_agreement.py``).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass

from vpccni.capacity.synthetic import SUBNET, VPC, StepClock, SyntheticCloud
from vpccni.cloud.lifecycle import EniLifecycle, NodeContext
from vpccni.core.config import IpamConfig
from vpccni.core.datastore import Datastore, DatastoreError
from vpccni.core.maxpods import HOST_NETWORK_PODS
from vpccni.core.model import PodKey, PodMeta
from vpccni.core.pool_rules import MIN_ENI_LIFETIME_SECONDS, NodeLimits
from vpccni.core.scaling import INSUFFICIENT_CAPACITY_PAUSE_SECONDS, RELEASE_INTERVAL_SECONDS
from vpccni.engine import PoolEngine
from vpccni.engine.datastore_ledger import DatastoreLedger

TICK_SECONDS = 5.0
GIVE_UP_SECONDS = 4 * 3600.0
POD_NETWORK = "aws-cni"
QUIET = logging.getLogger("vpccni.capacity.converge")
QUIET.addHandler(logging.NullHandler())
QUIET.propagate = False


@dataclass(frozen=True)
class SteadyEni:
    """One ENI of a settled node: its place and what it holds."""

    device_index: int
    primary: bool
    secondary_ips: int
    prefixes: int


@dataclass(frozen=True)
class SteadyNode:
    """Where one node's pool settles."""

    enis: int
    secondary_ips: int
    prefixes: int
    assigned: int
    warm: int
    admitted: int
    settled: bool
    settled_after: float
    eni_list: tuple[SteadyEni, ...] = ()


def admitted_pods(pods: int, limits: NodeLimits) -> int:
    """Pods the kubelet runs: max pods counts the two host-network pods of every node."""
    return max(min(pods, limits.max_pods - HOST_NETWORK_PODS), 0)


def quiet_window(config: IpamConfig) -> float:
    """Longer than every timer the decision rules know, plus two ticks."""
    timers = (
        float(config.ip_cooldown_seconds),
        MIN_ENI_LIFETIME_SECONDS,
        RELEASE_INTERVAL_SECONDS,
        INSUFFICIENT_CAPACITY_PAUSE_SECONDS,
    )
    return max(timers) + 2 * TICK_SECONDS


def converge_node(
    config: IpamConfig,
    limits: NodeLimits,
    pods: int,
    *,
    subnet_tags: Mapping[str, str] | None = None,
    pod_subnet: bool = False,
    cluster_name: str = "",
) -> SteadyNode:
    """Run one node's pool engine until nothing changes any more.

    ``subnet_tags`` are the node subnet's (``kubernetes.io/role/cni=0`` keeps pods off the
    primary ENI with subnet discovery on); ``pod_subnet`` says the node's zone has another subnet
    discovery may put ENIs in.
    """
    store = Datastore(config.mode, config.ip_cooldown_seconds)
    cloud = SyntheticCloud(subnet_tags=subnet_tags, pod_subnet=pod_subnet)
    clock = StepClock()
    context = NodeContext(cloud.instance_id, VPC, SUBNET, (), cluster_name=cluster_name)
    lifecycle = EniLifecycle(cloud, clock, context, random.Random(0))
    engine = PoolEngine(DatastoreLedger(store), lifecycle, config, limits, cloud)
    engine.log = QUIET
    engine.reconcile_or_raise(force_ec2=True)  # adopt the primary ENI, as ipamd starts
    admitted = admitted_pods(pods, limits)
    waiting = [PodKey(POD_NETWORK, f"pod-{i}", "eth0") for i in range(admitted)]
    now = last_action = 0.0
    window = quiet_window(config)
    while now - last_action <= window and now < GIVE_UP_SECONDS:
        now += TICK_SECONDS
        clock.set(now)
        decision = engine.tick()
        if decision.actions:
            last_action = now
        waiting = _place(store, waiting, now)
    views = store.views(now)
    mode = config.mode
    active = [c for v in views if not v.info.excluded for c in v.active(mode)]
    total = sum(c.size for c in active)
    assigned = sum(c.assigned for c in active)
    return SteadyNode(
        enis=len(views),
        secondary_ips=sum(1 for v in views for c in v.cidrs if not c.prefix),
        prefixes=sum(1 for v in views for c in v.cidrs if c.prefix),
        assigned=assigned,
        warm=total - assigned,
        admitted=admitted,
        settled=now - last_action > window,
        settled_after=last_action,
        eni_list=tuple(
            SteadyEni(
                v.info.device_index,
                v.info.primary,
                sum(1 for c in v.cidrs if not c.prefix),
                sum(1 for c in v.cidrs if c.prefix),
            )
            for v in sorted(views, key=lambda v: v.info.device_index)
        ),
    )


def _place(store: Datastore, waiting: list[PodKey], now: float) -> list[PodKey]:
    meta = PodMeta()
    for index, key in enumerate(waiting):
        try:
            store.assign(key, meta, now)
        except DatastoreError:
            return waiting[index:]
    return []
