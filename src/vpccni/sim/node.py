"""One simulated node's daemon: the core's decisions, executed through the EC2 port.

:class:`SimNode` does what the daemon's pool manager (``vpccni.daemon.pool``) does on a tick:
``plan_scaling`` on the pool's views, then every action through the same
:class:`~vpccni.cloud.lifecycle.EniLifecycle` (create -> attach at the lowest free device index
-> DeleteOnTermination, rolled back on failure; detach -> wait -> delete) and EC2 port calls,
with the same error policy (a subnet running out pauses growth for 120 s, a limit error
re-reads the ENI, another error retries once with one address, release errors are only
counted). The daemon's pool manager cannot be used as is: it owns a core ``Datastore`` whose
pod path is too slow for millions of simulated pod events and it rebuilds the views twice per
tick (docs/planning.md). What EC2 added reaches the pool only when the calls finished on the
node's virtual clock: ``tick`` returns those additions with their times, the simulation applies
them then, and pods arriving meanwhile see the pool as it was.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field
from ipaddress import IPv4Network

from vpccni.cloud.lifecycle import EniLifecycle, NodeContext
from vpccni.core.cloud import CloudError, LimitExceeded, SubnetExhausted
from vpccni.core.config import IpamConfig
from vpccni.core.model import EniInfo
from vpccni.core.pool import NodeLimits
from vpccni.core.reconcile import RECONCILE_COOLDOWN_SECONDS, eni_cidrs, eni_info, plan_reconcile
from vpccni.core.scaling import Action, Decision, PoolTiming, plan_scaling
from vpccni.ports import Ec2
from vpccni.sim.clock import VirtualClock
from vpccni.sim.nodepool import NodePool


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


class SimNode:
    """The pool and the pool manager of one node."""

    def __init__(
        self,
        index: int,
        *,
        group: int,
        name: str,
        context: NodeContext,
        config: IpamConfig,
        limits: NodeLimits,
        ec2: Ec2,
        clock: VirtualClock,
        seed: int,
    ) -> None:
        self.index = index
        self.group = group
        self.name = name
        self.subnet: str | None = None
        self.position = 0
        self.instance_type = ""
        self.config = config
        self.limits = limits
        self.ec2 = ec2
        self.clock = clock
        self.lifecycle = EniLifecycle(ec2, clock, context, random.Random(f"{seed}/eni/{index}"))
        self.pool = NodePool(config.mode, config.ip_cooldown_seconds)
        self.last_release_at: float | None = None
        self.insufficient_capacity_at: float | None = None
        self.recently_released: dict[IPv4Network, float] = {}
        self.counters = NodeCounters()
        self.out_of_sync = False
        self.waiting: deque[tuple[int, float, float | None]] = deque()
        self.admitted = 0
        self.over_max_pods = 0
        self.pods_seen = 0
        self.tick_at: float | None = None
        self.tick_origin = 0.0
        self.retry_at: float | None = None
        self._additions: list[Addition] = []
        self._timing = PoolTiming()

    @property
    def capacity(self) -> int:
        """Pods the kubelet runs (max pods counts the two host-network pods)."""
        return max(self.limits.max_pods - 2, 0)

    def timing(self) -> PoolTiming:
        timing = self._timing
        if (
            timing.last_release_at != self.last_release_at
            or timing.insufficient_capacity_at != self.insufficient_capacity_at
        ):
            timing = self._timing = PoolTiming(self.last_release_at, self.insufficient_capacity_at)
        return timing

    # -- one tick -------------------------------------------------------------------------------

    def tick(self, now: float) -> tuple[Decision, list[Addition]]:
        """Decide at ``now`` and act; returns the decision and what EC2 added, with times."""
        self.clock.set(now)
        decision = plan_scaling(self.pool.views(now), self.config, self.limits, now, self.timing())
        self._additions = []
        for action in decision.actions:
            self._run(action)
        return decision, self._additions

    def _run(self, action: Action) -> None:
        try:
            if action.action in ("assign-ips", "assign-prefixes"):
                self._assign(action, prefixes=action.action == "assign-prefixes")
            elif action.action == "create-eni":
                self._create_eni(action)
            elif action.action in ("release-ips", "release-prefixes"):
                self._release(action)
            else:
                self._free_eni(action)
        except SubnetExhausted as error:
            self.insufficient_capacity_at = self.clock.now()
            self.counters.exhaustion_times.append(self.clock.now())
            self._error("increaseIPPool", error)
        except CloudError as error:
            self.out_of_sync = True  # EC2 may hold what the pool lacks: reconcile will look
            self._error(action.action, error)

    def _assign(self, action: Action, prefixes: bool) -> None:
        assert action.eni is not None
        try:
            cidrs = self.lifecycle.assign_cidrs(action.eni, action.count, prefixes)
        except LimitExceeded:
            self._resync_eni(action.eni)
            return
        except SubnetExhausted:
            raise
        except CloudError:
            cidrs = self.lifecycle.assign_cidrs(action.eni, 1, prefixes)
        self._additions.append(Addition(self.clock.now(), action.eni, tuple(cidrs)))

    def _create_eni(self, action: Action) -> None:
        eni = self.lifecycle.allocate_cidrs_eni(action.count, self.config.prefix_delegation)
        attached = self.lifecycle.wait_attached(eni.eni_id)
        if attached is None:
            self.out_of_sync = True  # the next reconcile adopts it, as in the daemon
            return
        now = self.clock.now()
        self._additions.append(
            Addition(now, attached.eni_id, eni_cidrs(attached), eni_info(attached, now))
        )

    def _release(self, action: Action) -> None:
        assert action.eni is not None
        removed = [
            IPv4Network(text) for text in action.cidrs if self.pool.remove_cidr(action.eni, text)
        ]
        if not removed:
            return
        now = self.clock.now()
        self.last_release_at = now
        for cidr in removed:
            self.recently_released[cidr] = now
        try:
            self.lifecycle.release_cidrs(action.eni, removed)
        except CloudError as error:
            self.out_of_sync = True
            self._error("decreaseIPPool", error)

    def _free_eni(self, action: Action) -> None:
        assert action.eni is not None
        if not self.pool.remove_eni(action.eni):
            return
        try:
            self.lifecycle.free_eni(action.eni)
        except CloudError as error:
            self.out_of_sync = True
            self._error("decreaseIPPoolFreeENIFailed", error)

    def _resync_eni(self, eni_id: str) -> None:
        eni = self.lifecycle.describe(eni_id)
        have = {c.text for e in self.pool.ordered if e.info.eni_id == eni_id for c in e.cidrs}
        missing = tuple(c for c in eni_cidrs(eni) if str(c) not in have)
        if missing:
            self._additions.append(Addition(self.clock.now(), eni_id, missing))

    # -- reconcile (only when something may differ from EC2) -----------------------------------

    def reconcile(self, now: float) -> list[Addition]:
        """The daemon's reconcile, for a node whose pool may lack what EC2 holds."""
        self.clock.set(now)
        self._additions = []
        try:
            truth = self.ec2.describe_enis(
                filters={"attachment.instance-id": [self.lifecycle.node.instance_id]}
            )
        except CloudError as error:
            self._error("reconcileFailedGetENIs", error)
            return []
        now = self.clock.now()
        for cidr in [c for c, at in self.recently_released.items() if now - at >= 60.0]:
            del self.recently_released[cidr]
        current = {
            eni.info.eni_id: frozenset(IPv4Network(c.text) for c in eni.cidrs)
            for eni in self.pool.ordered
        }
        plan = plan_reconcile(
            current, truth, self.lifecycle.node.instance_id, now, self.recently_released
        )
        for info, cidrs in plan.add_enis:
            self._additions.append(Addition(now, info.eni_id, cidrs, info))
        for eni_id, cidr in plan.add_cidrs:
            self._additions.append(Addition(now, eni_id, (cidr,)))
        self.out_of_sync = bool(plan.remove_cidrs or plan.remove_enis) or any(
            now - at < RECONCILE_COOLDOWN_SECONDS for at in self.recently_released.values()
        )
        return self._additions

    def _error(self, fn: str, error: Exception) -> None:
        self.counters.errors[fn] = self.counters.errors.get(fn, 0) + 1
