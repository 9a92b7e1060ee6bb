"""One node's pool engine: decide with the core, act through EC2, record only what EC2 confirmed.

``tick`` is one pass of upstream's pool manager: ``plan_scaling`` on the ledger's views, then
each action through the ENI lifecycle (create -> attach at the lowest free device index ->
DeleteOnTermination, rolled back on failure; detach -> wait -> delete) with upstream's error
policy: ``PrivateIpAddressLimitExceeded`` / ``AttachmentLimitExceeded`` re-reads the ENI (the
pool is out of sync with EC2); any other error on an assignment of more than one address -
``InsufficientFreeAddressesInSubnet`` included, throttling and denials not - retries once with
one address, so a node takes a nearly full subnet's last addresses one by one; when that fails
too, with subnet discovery on the next ENI is tried, then a new ENI (possibly in another
subnet), else the subnet running out pauses growth for 120 s; release errors are counted and
left to reconcile. New ENIs go where :class:`~vpccni.engine.placement.Placement` says (custom
networking's ENIConfig subnet, the discovered subnets in order - the first create that succeeds
wins, an exhausted subnet passes to the next - or the node's subnet); a placement problem (a
broken ENIConfig) creates no ENI and is tried again when the cluster view changes. ENIs joining
the pool in an excluded subnet (and the primary ENI under custom networking) take no pod address
and give their unused ones back. An ``UnauthorizedOperation`` (a missing IAM permission) pauses
that action (for that ENI) until the permission gate's backoff is over - 60 s doubling to 10 min
- so a denied ENI creation does not create and roll back an ENI on every tick. A new ENI joins
the pool once IMDS lists it (polled with backoff, as upstream's ``WaitForENIAndIPsAttached``)
and, with a datapath, its link is configured. ``reconcile`` (module ``vpccni.engine.reconcile``)
makes the ledger match the node's ENIs. Errors never escape a tick: they are counted, remembered
for ``explain`` and retried on a later tick. Unmanaged ENIs attached to the node (``no_manage``,
or untagged with ``MANAGE_UNTAGGED_ENI=false``) take ENI slots the pool cannot have. With
provisioning off (:class:`~vpccni.engine.state.ProvisioningPolicy`) a tick decides with no
action and nothing is sent to EC2 but reads; in IMDS-only mode not even those.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from ipaddress import IPv4Address, IPv4Network

from vpccni.cloud.lifecycle import EniLifecycle
from vpccni.cloud.permissions import FIRST_WAIT_SECONDS, Denied
from vpccni.cloud.retry import Backoff, retry
from vpccni.core.aws_types import (
    CloudError,
    EniDescription,
    LimitExceeded,
    SubnetExhausted,
    Throttled,
    Unauthorized,
)
from vpccni.core.config import IpamConfig
from vpccni.core.model import EniInfo
from vpccni.core.no_address import Attaching, Failure
from vpccni.core.pool_rules import (
    NodeLimits,
    allocatable_enis,
    has_room_for_eni,
    pool_stats,
    prefixes_needed,
    target_state,
)
from vpccni.core.reconcile import cooling, eni_cidrs, eni_info
from vpccni.core.scaling import Action, Decision, plan_scaling
from vpccni.core.subnets import PlacementProblem, Target, excluded_releases, groups_problem
from vpccni.engine.ledger import LinkCheck, PoolLedger
from vpccni.engine.placement import Placement
from vpccni.engine.reconcile import ReconcileOutcome, reconcile
from vpccni.engine.state import EngineState, ProvisioningPolicy
from vpccni.ports import Clock, ClusterSource, Imds, Metrics, NullMetrics

log = logging.getLogger("vpccni.ipamd")
WAIT_IMDS = Backoff(attempts=40, base=0.1, cap=1.0)
"""Polling IMDS for a new ENI: 100 ms doubling up to 1 s, for ~35 s in all. Upstream doubles up
to 1 min (12 tries); IMDS is local and free, so a short cap costs nothing and a pod waiting for
the ENI does not sit out a 25 s gap after an attachment that took 3 s."""
WAIT_LINK = Backoff(attempts=10, base=0.1, cap=2.0)
SUBNET_READ_SECONDS = 600.0
"""After growth, at most one DescribeSubnets per 10 minutes (and at start, and on exhaustion)."""
THROTTLE_PAUSE = Backoff(attempts=0, base=5.0, cap=60.0, jitter=0.5)
"""Growth paused after EC2 throttled it: 5 s doubling to 1 min, +/- 50 %, reset by a success."""
GROWTH = frozenset({"assign-ips", "assign-prefixes", "create-eni"})


class _NotYet(Exception):
    pass


class PlacementBlocked(CloudError):
    """No new ENI: where it would go is broken (``problem`` says why)."""

    def __init__(self, problem: PlacementProblem, *, again: bool = False) -> None:
        super().__init__(problem.message, code=problem.reason, operation="CreateNetworkInterface")
        self.problem = problem
        self.again = again
        """The same problem as before, with nothing changed since: not counted or logged again."""


class PoolEngine:
    """Keeps one node's warm pool at its targets through EC2."""

    @property
    def log(self) -> logging.Logger:
        """Where the engine (and its placement) logs; the planners set a quiet one."""
        return self._log

    @log.setter
    def log(self, logger: logging.Logger) -> None:
        self._log = logger
        self.placement.log = logger

    def __init__(
        self,
        ledger: PoolLedger,
        lifecycle: EniLifecycle,
        config: IpamConfig,
        limits: NodeLimits,
        imds: Imds,
        *,
        metrics: Metrics | None = None,
        links: LinkCheck | None = None,
        policy: ProvisioningPolicy | None = None,
    ) -> None:
        self.ledger = ledger
        self.policy = policy or ProvisioningPolicy()
        self.lifecycle = lifecycle
        self.ec2 = lifecycle.ec2
        self.clock: Clock = lifecycle.clock
        self.config = config
        self.limits = limits
        self.imds = imds
        self.metrics: Metrics = metrics or NullMetrics()
        self.links = links
        self.linked: dict[str, tuple[str, IPv4Address, int]] = {}
        """ENIs whose host networking the link check configured: MAC, primary, device."""
        self.state = EngineState()
        self.placement = Placement(self.ec2, config, lifecycle.node, self.clock, self.state)
        self.eni_subnets: dict[str, str] = {}
        """The subnet of every ENI the engine saw join the pool or described."""
        self._log = log
        self._runners: dict[str, Callable[[Action], None]] = {
            "assign-ips": self._assign,
            "assign-prefixes": self._assign,
            "create-eni": self._create_eni,
            "release-ips": self._release,
            "release-prefixes": self._release,
            "free-eni": self._free_eni,
        }

    @property
    def cluster(self) -> ClusterSource | None:
        """Where the node's labels and the ENIConfigs come from (custom networking)."""
        return self.placement.cluster

    @cluster.setter
    def cluster(self, source: ClusterSource | None) -> None:
        self.placement.cluster = source

    # -- deciding and acting --------------------------------------------------------------------

    @property
    def pool_limits(self) -> NodeLimits:
        """The node's limits less the ENI slots unmanaged ENIs take (upstream counts them
        against the ENI limit); the primary ENI's slot always remains."""
        taken = self.state.unmanaged_slots
        if not taken:
            return self.limits
        cap = max(self.limits.eni_cap(self.config) - taken, 1)
        return replace(self.limits, max_enis=cap)

    def decide(self) -> Decision:
        """The core's decision on the current pool, without acting on it (with provisioning
        off: the same figures, no action)."""
        now = self.clock.now()
        cluster = self.placement.cluster
        node = cluster.view().node if cluster is not None else None
        self.state.unschedulable = node is not None and node.unschedulable
        decision = plan_scaling(
            self.ledger.views(now), self.config, self.pool_limits, now, self.state.timing()
        )
        if self.policy.provisioning or not decision.actions:
            return decision
        why = "provisioning is off (DISABLE_NETWORK_RESOURCE_PROVISIONING or ENABLE_IMDS_ONLY_MODE)"
        skipped = "; ".join(action.reason for action in decision.actions)
        return replace(decision, actions=(), reasons=(*decision.reasons, f"{why}: not {skipped}"))

    def tick(self) -> Decision:
        """Decide and act once; returns the decision taken."""
        decision = self.decide()
        self.state.last_decision = decision
        if not self.policy.provisioning:
            return decision  # nothing is created, assigned, released or freed
        grew = False
        for action in decision.actions:
            if self._denied(action):
                continue
            self._run(action)
            grew = grew or action.action in GROWTH
        for action in excluded_releases(self.ledger.views(self.clock.now())):
            if not self._denied(action):
                self._run(action)
        if grew and self.state.throttle_streak == 0:
            self.read_subnet(force=False)
        return decision

    def execute(self, action: Action) -> None:
        """Run one decided action (errors counted, never raised)."""
        self._run(action)

    def _denied(self, action: Action) -> bool:
        """EC2 denied this action (on this ENI) and its backoff is not over: skip it."""
        denied = self.state.denied_until
        now = self.clock.now()
        for key in [key for key, until in denied.items() if now >= until]:
            del denied[key]
        until = denied.get((action.action, action.eni))
        if until is None:
            return False
        self.log.debug("%s skipped: denied by IAM until %.0f", action.reason, until)
        return True

    def _deny(self, action: Action, error: Unauthorized) -> None:
        """Pause ``action`` until the permission gate lets its EC2 call go again."""
        until = error.retry_at if isinstance(error, Denied) else None
        if until is None:
            until = self.clock.now() + FIRST_WAIT_SECONDS
        self.state.denied_until[(action.action, action.eni)] = until

    def _run(self, action: Action) -> None:
        state = self.state
        if not self.policy.provisioning:
            self.log.debug("%s skipped: provisioning is off", action.reason)
            return
        try:
            self._runners[action.action](action)
        except PlacementBlocked as error:
            if not error.again:  # counted once per attempt; Placement.block logged it
                self.state.errors["increaseIPPoolAllocENI"] = (
                    self.state.errors.get("increaseIPPoolAllocENI", 0) + 1
                )
                self.state.last_error = f"increaseIPPoolAllocENI: {error}"
                self.metrics.error("increaseIPPoolAllocENI")
        except Unauthorized as error:
            state.may_differ = True
            self._deny(action, error)
            self._growth_failed(action, action.action, error)
            self.error(action.action, error)
        except SubnetExhausted as error:
            self._growth_failed(action, "increaseIPPool", error)
            state.insufficient_capacity_at = self.clock.now()
            state.exhaustions += 1
            self.error("increaseIPPool", error)
            self.read_subnet(force=True)
        except Throttled as error:
            state.may_differ = True
            self._growth_failed(action, action.action, error)
            if action.action in GROWTH:
                pause = THROTTLE_PAUSE.delay(state.throttle_streak, self.lifecycle.rng)
                state.throttled_until = self.clock.now() + pause
                state.throttle_streak += 1
            self.error(action.action, error)
        except CloudError as error:
            state.may_differ = True  # EC2 may hold what the pool lacks: reconcile looks
            self._growth_failed(action, action.action, error)
            self.error(action.action, error)

    def _growth_failed(self, action: Action, fn: str, error: CloudError) -> None:
        """Remember a failed growth call for ``why_no_address`` (cleared once the pool grows)."""
        if action.action == "create-eni":
            self.state.attaching = None  # the ENI was not made (or was rolled back)
        if action.action in GROWTH:
            self.state.growth_failure = Failure(
                fn, error.code, error.operation, str(error), self.clock.now()
            )

    def _grew(self) -> None:
        self.state.throttle_streak = 0
        self.state.throttled_until = None
        self.state.growth_failure = None
        self.state.insufficient_capacity_at = None

    def _assign(self, action: Action) -> None:
        assert action.eni is not None
        prefixes = action.action == "assign-prefixes"
        eni_id = action.eni
        try:
            cidrs = self._assign_cidrs(eni_id, action.count, prefixes)
        except LimitExceeded:
            self._resync_eni(eni_id)  # upstream: the datastore is out of sync with EC2
            return
        except SubnetExhausted as exhausted:
            if not self.config.subnet_discovery:
                raise
            # upstream with subnet discovery: the next ENI (maybe in another subnet), then a
            # new ENI, which discovery may put in another subnet
            self.log.info("%s: %s; trying the next ENI", eni_id, exhausted)
            found = self._assign_elsewhere(eni_id, action.count, prefixes)
            if found is None:
                self._grow_into_new_eni(action, exhausted)
                return
            eni_id, cidrs = found
        self.ledger.add_cidrs(eni_id, cidrs)
        self._grew()
        self.log.info(
            "%s", action.reason if eni_id == action.eni else f"{action.reason}: on {eni_id}"
        )

    def _assign_cidrs(self, eni_id: str, count: int, prefixes: bool) -> list[IPv4Network]:
        """Assign ``count``; a failed batch is retried once with one (upstream), for any error
        - a subnet with fewer free addresses than asked included - but the ENI's limit (the pool
        is out of sync), a denied call (only an IAM change helps, and the permission gate holds
        the call back anyway) and throttling (an immediate second call feeds it; growth pauses
        with backoff instead - a deliberate difference, docs/ipamd.md)."""
        try:
            return self.lifecycle.assign_cidrs(eni_id, count, prefixes)
        except (LimitExceeded, Unauthorized, Throttled):
            raise
        except CloudError as error:
            if count <= 1:
                raise
            self.log.info("%s: %d failed (%s); asking for one", eni_id, count, error.code or error)
            return self.lifecycle.assign_cidrs(eni_id, 1, prefixes)

    def _assign_elsewhere(
        self, exhausted_eni: str, want: int, prefixes: bool
    ) -> tuple[str, list[IPv4Network]] | None:
        """The other ENIs with a free slot, in turn, until one takes addresses."""
        views = self.ledger.views(self.clock.now())
        slots = self.limits.slots_per_eni
        for view in allocatable_enis(views, self.config, self.pool_limits):
            if view.eni_id == exhausted_eni:
                continue
            count = min(slots - len(view.cidrs), want)
            try:
                return view.eni_id, self._assign_cidrs(view.eni_id, count, prefixes)
            except SubnetExhausted as error:
                self.log.info("%s: %s; trying the next ENI", view.eni_id, error)
            except LimitExceeded:
                self._resync_eni(view.eni_id)
        return None

    def _grow_into_new_eni(self, action: Action, exhausted: SubnetExhausted) -> None:
        """Every ENI's subnet is out of addresses: a new ENI, if there is room for one."""
        views = self.ledger.views(self.clock.now())
        if not has_room_for_eni(views, self.config, self.pool_limits):
            raise exhausted
        stats = pool_stats(views, self.config.mode)
        slots = self.limits.slots_per_eni
        if self.config.prefix_delegation:
            want = prefixes_needed(stats, self.config)
        else:
            targets = target_state(stats, self.config)
            want = targets.short if targets.defined else slots
        amount = min(max(want, 1), slots)
        unit = "prefixes" if self.config.prefix_delegation else "IPs"
        reason = f"every ENI's subnet is out of addresses: create an ENI with {amount} {unit}"
        self._create_eni(Action("create-eni", None, amount, reason))

    def _create_eni(self, action: Action) -> None:
        placement = self.placement
        held = placement.held_back()
        if held is not None:
            self.log.debug("no new ENI (unchanged since): %s", held.message)
            raise PlacementBlocked(held, again=True)
        found = placement.targets()
        if isinstance(found, PlacementProblem):
            placement.block(found)
            raise PlacementBlocked(found)
        self.state.attaching = Attaching("", self.clock.now())
        try:
            eni = self._create_in(found, action.count)
        except CloudError:
            self.state.attaching = None
            raise
        placement.placed()
        self.eni_subnets[eni.eni_id] = eni.subnet_id
        self.state.attaching = Attaching(eni.eni_id, self.state.attaching.since)
        if not self._listed_in_imds(eni.eni_id):
            self.state.may_differ = True
            self.log.warning("%s is not in IMDS yet; reconcile adds it once it is", eni.eni_id)
            return
        if not self.host_ready(eni, wait=True):
            self.state.may_differ = True
            self.log.warning("%s has no link on the node yet; reconcile adds it later", eni.eni_id)
            return
        info = self.join_info(eni_info(eni, self.clock.now()), eni.subnet_id)
        self.ledger.add_eni(info, eni_cidrs(eni))
        self.state.attaching = None
        self._grew()
        self.log.info(
            "%s: %s at device %d in %s", action.reason, eni.eni_id, info.device_index, eni.subnet_id
        )

    def _create_in(self, targets: list[Target], count: int) -> EniDescription:
        """Create (and attach) the ENI in the first target whose subnet has room: an exhausted
        subnet passes to the next; when all are exhausted the last refusal is raised."""
        exhausted: SubnetExhausted | None = None
        for target in targets:
            try:
                return self.lifecycle.allocate_cidrs_eni(
                    count,
                    self.config.prefix_delegation,
                    subnet_id=target.subnet_id,
                    security_groups=target.security_groups,
                )
            except SubnetExhausted as error:
                self.log.info("no new ENI in %s (%s): %s", target.subnet_id, target.why, error)
                exhausted = error
            except CloudError as error:
                choice = self.placement.choice
                if self.config.custom_networking and choice is not None:
                    problem = groups_problem(
                        choice.name, target.security_groups, error.code, str(error)
                    )
                    if problem is not None:
                        self.placement.block(problem)
                        raise PlacementBlocked(problem) from None
                raise
        assert exhausted is not None
        raise exhausted

    def join_info(self, info: EniInfo, subnet_id: str) -> EniInfo:
        """An ENI joining the pool, marked excluded from pod addresses when it must be."""
        if subnet_id:
            self.eni_subnets[info.eni_id] = subnet_id
        if self.policy.imds_only:  # no DescribeSubnets: no subnet is known to be excluded
            excluded = info.primary and self.config.custom_networking
        else:
            excluded = self.placement.excluded(subnet_id, info.primary)
        if excluded:
            why = (
                "the primary ENI under custom networking"
                if info.primary and (self.config.custom_networking)
                else f"its subnet {subnet_id} is excluded (kubernetes.io/role/cni)"
            )
            self.log.info("%s takes no pod address: %s", info.eni_id, why)
            return replace(info, excluded=True)
        return info

    def _listed_in_imds(self, eni_id: str) -> bool:
        """Poll IMDS with backoff until it lists the ENI (attached and visible to the node)."""

        def listed() -> bool:
            try:
                return any(i.eni_id == eni_id for i in self.imds.interfaces())
            except CloudError:
                return False

        return self._poll(listed, WAIT_IMDS)

    def host_ready(self, eni: EniDescription, wait: bool) -> bool:
        """Host networking for the ENI is configured (always true without a datapath)."""
        links = self.links
        attachment = eni.attachment
        if links is None or attachment is None:
            return True

        def ready() -> bool:
            return links.eni_ready(eni.mac, eni.primary_ip, attachment.device_index)

        done = self._poll(ready, WAIT_LINK) if wait else ready()
        if done:
            self.linked[eni.eni_id] = (eni.mac, eni.primary_ip, attachment.device_index)
        return done

    def host_removed(self, eni_id: str) -> None:
        """The ENI left the pool: the link check deletes its host networking (and retries
        what fails)."""
        linked = self.linked.pop(eni_id, None)
        if self.links is not None and linked is not None:
            self.links.eni_removed(*linked)

    def _poll(self, check: Callable[[], bool], backoff: Backoff) -> bool:
        """True once ``check`` is, retried with ``backoff`` on the engine's clock; else False."""

        def attempt() -> bool:
            if check():
                return True
            raise _NotYet()

        try:
            return retry(
                attempt,
                backoff=backoff,
                clock=self.clock,
                rng=self.lifecycle.rng,
                retry_on=(_NotYet,),
            )
        except _NotYet:
            return False

    def _release(self, action: Action) -> None:
        assert action.eni is not None
        removed = self.ledger.remove_unused_cidrs(
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
        except (Throttled, Unauthorized) as error:
            # EC2 refused the request: nothing was released, so the CIDRs are still ours and
            # go back in the pool now (upstream waits for reconcile); retried after 30 s.
            for cidr in removed:
                self.state.recently_released.pop(cidr, None)
            self.ledger.add_cidrs(action.eni, removed)
            if isinstance(error, Unauthorized):
                self._deny(action, error)
            self.error("decreaseIPPool", error)
            return
        except CloudError as error:
            # The outcome is unknown (EC2 may have released them): they stay out for the 60 s
            # reconcile cooldown; reconcile re-adds what EC2 still holds after it.
            self.state.may_differ = True
            self.error("decreaseIPPool", error)
            return
        self.log.info("%s", action.reason)

    def _free_eni(self, action: Action) -> None:
        assert action.eni is not None
        if not self.ledger.remove_unused_eni(action.eni):
            return
        self.host_removed(action.eni)
        try:
            self.lifecycle.free_eni(action.eni)
        except CloudError as error:
            if isinstance(error, Unauthorized):
                self._deny(action, error)
            self.state.may_differ = True
            self.error("decreaseIPPoolFreeENIFailed", error)  # reconcile re-adds if attached
            return
        self.log.info("%s", action.reason)

    def _resync_eni(self, eni_id: str) -> None:
        """EC2 says the ENI is full: add what EC2 holds that the pool lacks.

        CIDRs this node released within the reconcile cooldown stay out (a release EC2 has not
        applied yet, or that failed): reconcile re-adds them once the cooldown is over.
        """
        eni = self.lifecycle.describe(eni_id)
        have = self.ledger.cidrs_by_eni().get(eni_id, frozenset())
        now = self.clock.now()
        released = self.state.recently_released
        missing = [
            cidr for cidr in eni_cidrs(eni) if cidr not in have and not cooling(cidr, now, released)
        ]
        if missing:
            self.ledger.add_cidrs(eni_id, missing)

    # -- reconcile ------------------------------------------------------------------------------

    def reconcile(self, *, force_ec2: bool = False) -> ReconcileOutcome | None:
        """Make the pool match the node's ENIs (IMDS first); a failed read is counted, None."""
        try:
            return reconcile(self, force_ec2=force_ec2)
        except CloudError as error:
            self.error("reconcileFailedGetENIs", error)
            return None

    def reconcile_or_raise(self, *, force_ec2: bool = False) -> ReconcileOutcome:
        """As ``reconcile``, but a failed IMDS or EC2 read raises (start-up must not go on)."""
        return reconcile(self, force_ec2=force_ec2)

    # -- the subnet's free addresses -------------------------------------------------------------

    def read_subnet(self, force: bool) -> None:
        """Publish the free addresses of the node's subnet and its ENIs' subnets
        (DescribeSubnets; with subnet discovery one call for the node's zone).

        Read at start-up, on exhaustion and after the pool grew, at most once per 10 minutes:
        a read every reconcile on every node would spend the account's DescribeSubnets budget
        at scale. Never in IMDS-only mode (no EC2 call at all).
        """
        if self.policy.imds_only:
            return
        now = self.clock.now()
        last = self.state.subnet_read_at
        if not force and last is not None and now - last < SUBNET_READ_SECONDS:
            return
        self.state.subnet_read_at = now
        node_subnet = self.lifecycle.node.subnet_id
        wanted = {node_subnet, *self.pool_subnets().values()}
        placement = self.placement
        try:
            if self.config.subnet_discovery:
                seen = {s.subnet_id for s in placement.read_zone()}
                placement.describe(wanted - seen)
            else:
                placement.describe(wanted)
        except CloudError as error:
            self.error("describeSubnet", error)
            return
        for subnet_id in sorted(wanted):
            subnet = placement.subnets.get(subnet_id)
            if subnet is not None:
                self.metrics.subnet_free(subnet_id, subnet.free)
        node = placement.subnets.get(node_subnet)
        self.state.subnet_free = node.free if node is not None else None

    def pool_subnets(self) -> dict[str, str]:
        """The subnet of each ENI in the pool (those whose subnet is known)."""
        known = self.eni_subnets
        return {
            view.eni_id: known[view.eni_id]
            for view in self.ledger.views(self.clock.now())
            if view.eni_id in known
        }

    def error(self, fn: str, error: Exception) -> None:
        """Count, remember and log a failed step (a denied call at info, one the permission gate
        withheld at debug: the gate logs each denial as a MissingIAMPermissions warning)."""
        self.state.errors[fn] = self.state.errors.get(fn, 0) + 1
        self.state.last_error = f"{fn}: {error}"
        self.metrics.error(fn)
        level = logging.WARNING
        if isinstance(error, Denied):  # the gate logged MissingIAMPermissions already
            level = logging.DEBUG if error.withheld else logging.INFO
        self.log.log(level, "%s failed: %s", fn, error)
