"""The daemon's pool manager: the pool engine over the durable IPAM service, plus its gauges.

The deciding, acting and reconciling are the engine's (``vpccni.engine``), the same code the
simulator and the planner run. This module adapts the daemon's :class:`IpamService` to the
engine's ledger port (every change durable and under the service's lock), serialises ticks and
reconciles, hands the datapath's link check to the engine and publishes the pool's gauges.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from ipaddress import IPv4Network

from vpccni.cloud.lifecycle import EniLifecycle
from vpccni.core.config import IpamConfig
from vpccni.core.model import EniInfo
from vpccni.core.pool_rules import EniView, NodeLimits
from vpccni.core.scaling import Decision
from vpccni.daemon.datapath import Datapath
from vpccni.daemon.service import IpamService
from vpccni.engine import EngineState, PoolEngine, ProvisioningPolicy
from vpccni.engine.reconcile import ReconcileOutcome
from vpccni.ports import Clock, Imds, Metrics, NullMetrics

PRUNE_COOLDOWNS_AFTER_SECONDS = 3600.0


class ServiceLedger:
    """The engine's ledger port over the durable IPAM service."""

    def __init__(self, service: IpamService) -> None:
        self.service = service

    def views(self, now: float) -> tuple[EniView, ...]:
        return self.service.views()

    def cidrs_by_eni(self) -> Mapping[str, frozenset[IPv4Network]]:
        return self.service.cidrs_by_eni()

    def add_eni(self, info: EniInfo, cidrs: Iterable[IPv4Network]) -> None:
        self.service.add_eni(info, cidrs)

    def add_cidrs(self, eni_id: str, cidrs: Iterable[IPv4Network]) -> None:
        self.service.add_cidrs(eni_id, cidrs)

    def remove_unused_cidrs(self, eni_id: str, cidrs: Iterable[IPv4Network]) -> list[IPv4Network]:
        return self.service.remove_unused_cidrs(eni_id, cidrs)

    def remove_unused_eni(self, eni_id: str) -> bool:
        return self.service.remove_unused_eni(eni_id)

    def force_remove_cidr(self, eni_id: str, cidr: IPv4Network) -> int:
        return len(self.service.force_remove_cidr(eni_id, cidr))

    def force_remove_eni(self, eni_id: str) -> int:
        return len(self.service.force_remove_eni(eni_id))


class PoolManager:
    """Keeps the warm pool at its targets for one node."""

    def __init__(
        self,
        service: IpamService,
        lifecycle: EniLifecycle,
        config: IpamConfig,
        limits: NodeLimits,
        metrics: Metrics | None = None,
        *,
        imds: Imds,
        policy: ProvisioningPolicy | None = None,
    ) -> None:
        self.metrics: Metrics = metrics or NullMetrics()
        self.service = service
        self.lifecycle = lifecycle
        self.config = config
        self.limits = limits
        self.engine = PoolEngine(
            ServiceLedger(service),
            lifecycle,
            config,
            limits,
            imds,
            metrics=self.metrics,
            policy=policy,
        )
        self._datapath: Datapath | None = None
        self._act_lock = threading.Lock()

    @property
    def clock(self) -> Clock:
        return self.service.clock

    @property
    def state(self) -> EngineState:
        return self.engine.state

    @property
    def datapath(self) -> Datapath | None:
        return self._datapath

    @datapath.setter
    def datapath(self, datapath: Datapath | None) -> None:
        self._datapath = datapath
        self.engine.links = datapath

    def decide(self) -> Decision:
        """The core's decision on the current pool, without acting on it."""
        return self.engine.decide()

    def tick(self) -> Decision:
        """Decide and act once; returns the decision taken."""
        with self._act_lock:
            decision = self.engine.tick()
            self.report()
            return decision

    def reconcile(self) -> ReconcileOutcome | None:
        """Make the datastore match the node's ENIs; a failed read is counted and skipped."""
        with self._act_lock:
            outcome = self.engine.reconcile()
            self._after_reconcile()
            return outcome

    def reconcile_or_raise(self, *, force_ec2: bool = False) -> ReconcileOutcome:
        """As ``reconcile``, but a failed IMDS or EC2 read raises; start-up reads EC2 once."""
        with self._act_lock:
            outcome = self.engine.reconcile_or_raise(force_ec2=force_ec2)
            if force_ec2:
                self.engine.read_subnet(force=True)
            self._after_reconcile()
            return outcome

    def _after_reconcile(self) -> None:
        now = self.clock.now()
        self.service.store.prune_cooldowns(now - PRUNE_COOLDOWNS_AFTER_SECONDS)
        self.report()

    def report(self) -> None:
        """Publish the pool's gauges."""
        views = self.service.views()
        mode = self.config.mode
        active = [c for v in views if not v.info.excluded for c in v.active(mode)]
        self.metrics.pool(
            enis=len(views),
            total=sum(c.size for c in active),
            assigned=sum(c.assigned for c in active),
            prefixes=sum(1 for v in views for c in v.cidrs if c.prefix),
            per_eni={v.eni_id: v.assigned for v in views},
        )
        self.metrics.assigned_per_cidr({c.cidr: c.assigned for v in views for c in v.cidrs})
        cap = self.engine.pool_limits.eni_cap(self.config)  # unmanaged ENIs' slots left out
        self.metrics.limits(cap, cap * self.limits.addresses_per_eni(mode))
