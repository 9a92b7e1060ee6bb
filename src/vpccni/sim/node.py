"""One simulated node's daemon: the daemon's own pool engine over a fast pool and the emulator.

:class:`SimNode` runs :class:`vpccni.engine.PoolEngine` - the code the daemon's pool manager runs
- with three simulator ports: :class:`SimLedger` over the lean :class:`NodePool` (the daemon's
durable datastore is too slow for millions of simulated pod events; ``tests/planning/
test_fast_pool.py`` holds the two equal), the node's :class:`~vpccni.sim.ec2.NodeEc2` on its
virtual clock, and :class:`SimImds`, the node's instance metadata read from the emulator model.
With custom networking the engine reads a :class:`StaticCluster`: the node's ENIConfig label and
the scenario's ENIConfigs. What EC2 added reaches the pool only when the calls finished on the
node's virtual clock: the ledger records those additions with their times, ``tick`` and
``reconcile`` return them, and the simulation applies them then, so pods arriving meanwhile see
the pool as it was. Removals apply at once, as in the daemon.
"""

from __future__ import annotations

import logging
import random
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network

from vpccni.cloud.lifecycle import EniLifecycle, NodeContext
from vpccni.core.aws_types import ImdsInterface, InstanceIdentity
from vpccni.core.cluster import ClusterView
from vpccni.core.config import IpamConfig
from vpccni.core.model import EniInfo
from vpccni.core.pool_rules import EniView, NodeLimits
from vpccni.core.scaling import Decision, PoolTiming
from vpccni.emulator.model import Ec2Model
from vpccni.engine import PoolEngine
from vpccni.ports import ClusterSource
from vpccni.sim.clock import VirtualClock
from vpccni.sim.ec2 import NodeEc2
from vpccni.sim.fast_pool import NodePool

QUIET = logging.getLogger("vpccni.sim.node")
QUIET.addHandler(logging.NullHandler())
QUIET.propagate = False


@dataclass(frozen=True)
class Addition:
    """CIDRs (and maybe a new ENI) EC2 confirmed at ``at`` on the node's clock."""

    at: float
    eni_id: str
    cidrs: tuple[IPv4Network, ...]
    new_eni: EniInfo | None = None


@dataclass
class NodeCounters:
    """What went wrong on one node, for the report."""

    errors: dict[str, int] = field(default_factory=dict)
    exhaustion_times: list[float] = field(default_factory=list)


class SimLedger:
    """The engine's ledger port over a :class:`NodePool`; additions land later."""

    def __init__(self, pool: NodePool, clock: VirtualClock) -> None:
        self.pool = pool
        self.clock = clock
        self.additions: list[Addition] = []

    def views(self, now: float) -> tuple[EniView, ...]:
        return self.pool.views(now)

    def cidrs_by_eni(self) -> Mapping[str, frozenset[IPv4Network]]:
        return {
            eni.info.eni_id: frozenset(IPv4Network(c.text) for c in eni.cidrs)
            for eni in self.pool.ordered
        }

    def add_eni(self, info: EniInfo, cidrs: Iterable[IPv4Network]) -> None:
        self.additions.append(Addition(self.clock.now(), info.eni_id, tuple(cidrs), info))

    def add_cidrs(self, eni_id: str, cidrs: Iterable[IPv4Network]) -> None:
        found = tuple(cidrs)
        if found:
            self.additions.append(Addition(self.clock.now(), eni_id, found))

    def remove_unused_cidrs(self, eni_id: str, cidrs: Iterable[IPv4Network]) -> list[IPv4Network]:
        return [cidr for cidr in cidrs if self.pool.remove_cidr(eni_id, str(cidr))]

    def remove_unused_eni(self, eni_id: str) -> bool:
        return self.pool.remove_eni(eni_id)

    def force_remove_cidr(self, eni_id: str, cidr: IPv4Network) -> int:
        return self.pool.force_remove_cidr(eni_id, str(cidr), self.clock.now())

    def force_remove_eni(self, eni_id: str) -> int:
        return self.pool.force_remove_eni(eni_id, self.clock.now())


class SimImds:
    """The node's instance metadata (``vpccni.ports.Imds``) read from the emulator model.

    Answers as the emulator's IMDS does with no lag: the ENIs attached (or detaching) to the
    instance on the node's clock, their addresses and prefixes.
    """

    def __init__(self, model: Ec2Model, instance_id: str, clock: VirtualClock) -> None:
        self.model = model
        self.instance_id = instance_id
        self.clock = clock

    def identity(self) -> InstanceIdentity:
        raise NotImplementedError("the simulator's nodes start without reading their identity")

    def interfaces(self) -> list[ImdsInterface]:
        self.model.advance(self.clock.now())
        found = []
        for eni in self.model.store.enis_of(self.instance_id):
            attachment = eni.attachment
            if attachment is None or attachment.status not in ("attached", "detaching"):
                continue
            found.append(
                ImdsInterface(
                    mac=eni.mac,
                    eni_id=eni.eni_id,
                    device_number=attachment.device_index,
                    network_card=attachment.network_card_index,
                    local_ipv4s=tuple(IPv4Address(a) for a in eni.private_ips),
                    ipv4_prefixes=tuple(IPv4Network(p) for p in eni.prefixes),
                    subnet_id=eni.subnet_id,
                    subnet_cidr=None,
                    vpc_id=eni.vpc_id,
                    vpc_cidrs=(),
                    security_group_ids=tuple(eni.group_ids),
                )
            )
        return found


class StaticCluster:
    """A ``ClusterSource`` whose view never changes: the scenario's node labels and ENIConfigs."""

    def __init__(self, view: ClusterView) -> None:
        self._view = view

    def view(self) -> ClusterView:
        return self._view

    def close(self) -> None:
        return None


class SimNode:
    """The pool and the pool engine of one node."""

    def __init__(
        self,
        index: int,
        *,
        group: int,
        name: str,
        context: NodeContext,
        config: IpamConfig,
        limits: NodeLimits,
        ec2: NodeEc2,
        clock: VirtualClock,
        seed: int,
        cluster: ClusterSource | None = None,
    ) -> None:
        self.index = index
        self.group = group
        self.name = name
        self.subnet: str | None = None
        self.availability_zone: str | None = None
        self.eniconfig: str | None = None
        self.position = 0
        self.instance_type = ""
        self.config = config
        self.limits = limits
        self.ec2 = ec2
        self.clock = clock
        self.pool = NodePool(config.mode, config.ip_cooldown_seconds)
        self.ledger = SimLedger(self.pool, clock)
        lifecycle = EniLifecycle(ec2, clock, context, random.Random(f"{seed}/eni/{index}"))
        imds = SimImds(ec2.model, context.instance_id, clock)
        self.engine = PoolEngine(self.ledger, lifecycle, config, limits, imds)
        self.engine.cluster = cluster  # the node's labels and the ENIConfigs (custom networking)
        self.engine.log = QUIET  # a cluster's worth of per-node warnings would drown the report
        self.counters = NodeCounters(errors=self.engine.state.errors)
        self._timing = self.engine.state.timing()
        self.waiting: deque[tuple[int, float, float | None]] = deque()
        self.admitted = 0
        self.over_max_pods = 0
        self.pods_seen = 0
        self.tick_at: float | None = None
        self.tick_origin = 0.0
        self.retry_at: float | None = None

    @property
    def capacity(self) -> int:
        """Pods the kubelet runs (max pods counts the two host-network pods)."""
        return max(self.limits.max_pods - 2, 0)

    @property
    def out_of_sync(self) -> bool:
        """The pool may lack what EC2 holds: the periodic reconcile has work to do.

        A node in sync has nothing a reconcile could change (IMDS equals its pool), so the
        simulation skips its reconcile; that reconcile would read IMDS only and spend no EC2.
        """
        return self.engine.state.may_differ

    def timing(self) -> PoolTiming:
        """The engine's timers; only its tick and reconcile change them, so cached after each."""
        return self._timing

    def tick(self, now: float) -> tuple[Decision, list[Addition]]:
        """Decide at ``now`` and act; returns the decision and what EC2 added, with times."""
        self.clock.set(now)
        self.ledger.additions = []
        exhaustions = self.engine.state.exhaustions
        decision = self.engine.tick()
        self._timing = self.engine.state.timing()
        if self.engine.state.exhaustions != exhaustions:
            self.counters.exhaustion_times.append(self.clock.now())
        return decision, self.ledger.additions

    def reconcile(self, now: float) -> list[Addition]:
        """The daemon's reconcile (IMDS first, EC2 on a difference); what it adds, with times."""
        self.clock.set(now)
        self.ledger.additions = []
        self.engine.reconcile()
        self._timing = self.engine.state.timing()
        return self.ledger.additions
