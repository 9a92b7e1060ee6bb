"""The pool manager: decide with the core, act through EC2, reconcile with EC2's truth.

``tick`` is one pass of upstream's pool manager: ``plan_scaling`` on the datastore's views, then
each action through the ENI lifecycle / EC2 port, the datastore updated only with what EC2
confirmed. ``reconcile`` makes the datastore match DescribeNetworkInterfaces for this instance.
Neither runs on the pod ADD path. Errors never escape a tick: they are counted, remembered for
``explain`` and retried on a later tick; a subnet running out pauses growth for 120 s.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from ipaddress import IPv4Network

from vpccni.cloud.lifecycle import EniLifecycle
from vpccni.cloud.retry import Backoff, retry
from vpccni.core.cloud import CloudError, EniDescription, LimitExceeded, SubnetExhausted
from vpccni.core.config import IpamConfig
from vpccni.core.pool import NodeLimits
from vpccni.core.reconcile import eni_cidrs, eni_info, plan_reconcile
from vpccni.core.scaling import Action, Decision, PoolTiming, plan_scaling
from vpccni.daemon.datapath import Datapath
from vpccni.daemon.service import IpamService
from vpccni.ports import Clock, Metrics, NullMetrics

log = logging.getLogger("vpccni.ipamd")
WAIT_LINK = Backoff(attempts=10, base=0.1, cap=2.0)
PRUNE_COOLDOWNS_AFTER_SECONDS = 3600.0


class _NoLink(Exception):
    pass


@dataclass
class PoolState:
    """What the pool manager remembers between ticks."""

    last_release_at: float | None = None
    insufficient_capacity_at: float | None = None
    terminating: bool = False
    recently_released: dict[IPv4Network, float] = field(default_factory=dict)
    last_decision: Decision | None = None
    last_error: str = ""
    errors: dict[str, int] = field(default_factory=dict)


class PoolManager:
    """Keeps the warm pool at its targets for one node."""

    def __init__(
        self,
        service: IpamService,
        lifecycle: EniLifecycle,
        config: IpamConfig,
        limits: NodeLimits,
        metrics: Metrics | None = None,
    ) -> None:
        self.metrics: Metrics = metrics or NullMetrics()
        self.service = service
        self.lifecycle = lifecycle
        self.ec2 = lifecycle.ec2
        self.config = config
        self.limits = limits
        self.state = PoolState()
        self.datapath: Datapath | None = None
        self._act_lock = threading.Lock()

    @property
    def clock(self) -> Clock:
        return self.service.clock

    def decide(self) -> Decision:
        """The core's decision on the current pool, without acting on it."""
        state = self.state
        timing = PoolTiming(
            last_release_at=state.last_release_at,
            insufficient_capacity_at=state.insufficient_capacity_at,
            terminating=state.terminating,
        )
        return plan_scaling(
            self.service.views(), self.config, self.limits, self.clock.now(), timing
        )

    def tick(self) -> Decision:
        """Decide and act once; returns the decision taken."""
        with self._act_lock:
            decision = self.decide()
            self.state.last_decision = decision
            for action in decision.actions:
                self._run(action)
            self.report()
            return decision

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
        cap = self.limits.eni_cap(self.config)
        self.metrics.limits(cap, cap * self.limits.addresses_per_eni(mode))

    def reconcile(self) -> None:
        """Make the datastore match EC2; a failure to read EC2 is counted and skipped."""
        try:
            self.reconcile_or_raise()
        except CloudError as error:
            self._error("reconcileFailedGetENIs", error)

    def reconcile_or_raise(self) -> None:
        """Make the datastore match EC2 (adopt attached ENIs, drop what EC2 no longer has).

        Nothing changes unless EC2 answered: a partial or failed read never removes anything.
        """
        with self._act_lock:
            instance_id = self.lifecycle.node.instance_id
            truth = self.ec2.describe_enis(filters={"attachment.instance-id": [instance_id]})
            now = self.clock.now()
            self._forget_old_releases(now)
            current = {
                view.eni_id: frozenset(IPv4Network(c.cidr) for c in view.cidrs)
                for view in self.service.views()
            }
            plan = plan_reconcile(current, truth, instance_id, now, self.state.recently_released)
            described = {eni.eni_id: eni for eni in truth}
            for info, cidrs in plan.add_enis:
                if not self._host_ready(described[info.eni_id], wait=False):
                    log.info("reconcile: %s waits for its link to appear", info.eni_id)
                    continue
                log.info("reconcile: adopting %s (device %d)", info.eni_id, info.device_index)
                self.service.add_eni(info, cidrs)
                self._tag(info.eni_id, truth)
            if plan.add_cidrs:
                for eni_id, cidr in plan.add_cidrs:
                    self.service.add_cidrs(eni_id, [cidr])
            for eni_id, cidr in plan.remove_cidrs:
                lost = self.service.force_remove_cidr(eni_id, cidr)
                self.metrics.force_removed(0, len(lost))
                log.warning(
                    "reconcile: EC2 no longer has %s on %s (%d pods lost it)",
                    cidr,
                    eni_id,
                    len(lost),
                )
            for eni_id in plan.remove_enis:
                lost = self.service.force_remove_eni(eni_id)
                self.metrics.force_removed(1, len(lost))
                log.warning(
                    "reconcile: %s is no longer attached (%d pods lost it)", eni_id, len(lost)
                )
            self.service.store.prune_cooldowns(now - PRUNE_COOLDOWNS_AFTER_SECONDS)
            subnet = self.lifecycle.node.subnet_id
            try:
                self.metrics.subnet_free(subnet, self.ec2.subnet_free_addresses(subnet))
            except CloudError as error:
                self._error("describeSubnet", error)
            self.report()

    # -- actions --------------------------------------------------------------------------------

    def _run(self, action: Action) -> None:
        try:
            if action.action == "assign-ips":
                self._assign(action, prefixes=False)
            elif action.action == "assign-prefixes":
                self._assign(action, prefixes=True)
            elif action.action == "create-eni":
                self._create_eni(action)
            elif action.action in ("release-ips", "release-prefixes"):
                self._release(action)
            else:
                self._free_eni(action)
        except SubnetExhausted as error:
            self.state.insufficient_capacity_at = self.clock.now()
            self._error("increaseIPPool", error)
        except CloudError as error:
            self._error(action.action, error)

    def _assign(self, action: Action, prefixes: bool) -> None:
        assert action.eni is not None
        try:
            cidrs = self.lifecycle.assign_cidrs(action.eni, action.count, prefixes)
        except LimitExceeded:
            self._resync_eni(action.eni)  # upstream: the datastore is out of sync with EC2
            return
        except SubnetExhausted:
            raise
        except CloudError:
            cidrs = self.lifecycle.assign_cidrs(
                action.eni, 1, prefixes
            )  # upstream retries once with 1
        self.service.add_cidrs(action.eni, cidrs)
        log.info("%s", action.reason)

    def _create_eni(self, action: Action) -> None:
        eni = self.lifecycle.allocate_cidrs_eni(action.count, self.config.prefix_delegation)
        attached = self.lifecycle.wait_attached(eni.eni_id)
        if attached is None:
            log.warning("%s is still attaching; reconcile adds it once attached", eni.eni_id)
            return
        if not self._host_ready(attached, wait=True):
            log.warning("%s has no link on the node yet; reconcile adds it later", eni.eni_id)
            return
        self.service.add_eni(eni_info(attached, self.clock.now()), eni_cidrs(attached))
        log.info(
            "%s: %s at device %d", action.reason, eni.eni_id, eni_info(attached, 0).device_index
        )

    def _host_ready(self, eni: EniDescription, wait: bool) -> bool:
        """Host networking for the ENI is configured (always true without a datapath)."""
        datapath = self.datapath
        attachment = eni.attachment
        if datapath is None or attachment is None:
            return True

        def ready() -> bool:
            assert datapath is not None
            assert attachment is not None
            if datapath.eni_ready(eni.mac, eni.primary_ip, attachment.device_index):
                return True
            raise _NoLink()

        try:
            if not wait:
                return ready()
            return retry(
                ready,
                backoff=WAIT_LINK,
                clock=self.clock,
                rng=self.lifecycle.rng,
                retry_on=(_NoLink,),
            )
        except _NoLink:
            return False

    def _release(self, action: Action) -> None:
        assert action.eni is not None
        removed = self.service.remove_unused_cidrs(
            action.eni, [IPv4Network(c) for c in action.cidrs]
        )
        if not removed:
            return
        now = self.clock.now()
        self.state.last_release_at = now
        for cidr in removed:
            self.state.recently_released[cidr] = now
        try:
            self.lifecycle.release_cidrs(action.eni, removed)
        except CloudError as error:
            self._error("decreaseIPPool", error)  # upstream logs only; reconcile re-adds
        log.info("%s", action.reason)

    def _free_eni(self, action: Action) -> None:
        assert action.eni is not None
        if not self.service.remove_unused_eni(action.eni):
            return
        try:
            self.lifecycle.free_eni(action.eni)
        except CloudError as error:
            self._error("decreaseIPPoolFreeENIFailed", error)  # reconcile re-adds if attached
            return
        log.info("%s", action.reason)

    def _resync_eni(self, eni_id: str) -> None:
        eni = self.lifecycle.describe(eni_id)
        have = {
            IPv4Network(c.cidr) for v in self.service.views() if v.eni_id == eni_id for c in v.cidrs
        }
        missing = [cidr for cidr in eni_cidrs(eni) if cidr not in have]
        self.service.add_cidrs(eni_id, missing)

    def _tag(self, eni_id: str, truth: list[EniDescription]) -> None:
        described = next((eni for eni in truth if eni.eni_id == eni_id), None)
        if described is None or described.interface_type == "trunk":
            return
        try:
            self.lifecycle.tag_eni(described)
        except CloudError as error:
            self._error("eniTag", error)

    def _forget_old_releases(self, now: float) -> None:
        released = self.state.recently_released
        for cidr in [c for c, at in released.items() if now - at >= 60.0]:
            del released[cidr]

    def _error(self, fn: str, error: Exception) -> None:
        self.state.errors[fn] = self.state.errors.get(fn, 0) + 1
        self.state.last_error = f"{fn}: {error}"
        self.metrics.error(fn)
        log.warning("%s failed: %s", fn, error)
