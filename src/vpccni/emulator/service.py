"""The emulator as one object: the EC2 model plus realism, answering EC2 actions and IMDS.

Owns :class:`Emulator`. ``call(action, params, now)`` is one EC2 API request as boto3 would make
it (parameters and result shaped like boto3's): it draws a token from the API's rate-limit
bucket, may fail on purpose (injected faults), then runs the action on the model.
With an IAM policy (``iam_policy``, ``set_iam_policy``) every request is first authorized as the
node's role (``vpccni.emulator.authorization``): a denied one answers ``UnauthorizedOperation``
and changes nothing. ``DryRun`` requests are validated and authorized, then answered
``DryRunOperation`` without acting (they draw an API rate-limit token, not RunInstances'
resource tokens). ``imds_token`` / ``imds_get`` are IMDSv2 for one node: a token is bound to
its node and expires on the emulator clock; answers show the node's ENIs as they were
``imds_lag`` seconds ago (never before the instance launched, so a new node sees its primary ENI
at once), with the partial views the ``imds_*`` knobs turn on
(``vpccni.emulator.imds.PartialViews``). Pure: the caller passes ``now``; the HTTP front in
``server`` adds the real clock, threads and sockets.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping
from typing import Any

from vpccni.core.ec2_rate_limits import RESOURCE_BUCKETS, TokenBucket
from vpccni.emulator import actions, authorization, interface_actions
from vpccni.emulator.errors import Ec2Error
from vpccni.emulator.iam import Policy, as_policy
from vpccni.emulator.imds import (
    NOT_FOUND,
    ImdsAnswer,
    PartialViews,
    imds_view,
    instance_role_tree,
    lookup,
    node_tree,
)
from vpccni.emulator.model import DEFAULT_REGION, Ec2Model
from vpccni.emulator.realism import (
    FaultInjector,
    Knobs,
    RateLimiter,
    bucket_key,
    fault_error,
)
from vpccni.emulator.store import Delays, LimitsSource

TOKEN_TTL_MAX = 21600
HANDLERS = {**actions.HANDLERS, **interface_actions.HANDLERS}
READ_ONLY = frozenset(name for name in HANDLERS if name.startswith("Describe"))
PRUNE_EVERY = 256
RESOURCE_SUFFIX = "/resources"


class Emulator:
    """EC2 + IMDS for many nodes, with AWS's limits, rate limits, delays and faults."""

    def __init__(
        self,
        limits: LimitsSource,
        knobs: Knobs | None = None,
        region: str = DEFAULT_REGION,
        iam_policy: Policy | Mapping[str, Any] | None = None,
    ) -> None:
        self.limits = limits
        self.region = region
        self._knobs = knobs or Knobs()
        self._policy = as_policy(iam_policy)
        self.model = self._new_model()
        self._limiter = RateLimiter(self._knobs)
        self._resources: dict[str, TokenBucket] = {}
        self._faults = FaultInjector(self._knobs)
        self._token_rng = random.Random(f"imds/{self._knobs.seed}")
        self._tokens: dict[str, tuple[str, float]] = {}
        self.stats: Counter[str] = Counter()

    # -- knobs --------------------------------------------------------------------------------

    @property
    def knobs(self) -> Knobs:
        return self._knobs

    def set_knobs(self, knobs: Knobs) -> None:
        """Apply new knobs; rate-limit buckets restart full, the model keeps its state."""
        self._knobs = knobs
        self.model.delays = _delays(knobs)
        self._limiter = RateLimiter(knobs)
        self._resources.clear()
        self._faults = FaultInjector(knobs)

    @property
    def iam_policy(self) -> Policy | None:
        """The policy every request is authorized against; None: everything is allowed."""
        return self._policy

    def set_iam_policy(self, policy: Policy | Mapping[str, Any] | None) -> None:
        """Enforce ``policy`` (a Policy or a document) from the next request on; None stops."""
        self._policy = as_policy(policy)

    def reset(self) -> None:
        """Forget every resource, token and statistic; keep the knobs and the IAM policy."""
        self.model = self._new_model()
        self._limiter = RateLimiter(self._knobs)
        self._resources.clear()
        self._faults = FaultInjector(self._knobs)
        self._tokens.clear()
        self.stats.clear()

    def _new_model(self) -> Ec2Model:
        knobs = self._knobs
        rng = random.Random(f"addresses/{knobs.seed}") if knobs.random_addresses else None
        model = Ec2Model(self.limits, self.region, rng)
        model.delays = _delays(knobs)
        return model

    # -- EC2 ----------------------------------------------------------------------------------

    def call(self, action: str, params: Mapping[str, Any], now: float) -> dict[str, Any]:
        """One EC2 request; raises Ec2Error exactly where EC2 would answer with an error."""
        handler = HANDLERS.get(action)
        if handler is None:
            raise Ec2Error(
                "InvalidAction",
                f"The action {action} is not valid for this web service (the emulator "
                f"supports: {', '.join(sorted(HANDLERS))}).",
            )
        now = self.model.advance(now)
        dry_run = bool(params.get("DryRun"))
        self.stats["requests"] += 1
        self.stats[f"requests.{action}"] += 1
        if dry_run and action in authorization.NO_DRY_RUN:
            raise authorization.no_dry_run(action)
        try:
            self._limiter.take(bucket_key(action, params), now)
            if not dry_run:
                self._take_resources(action, params, now)
        except Ec2Error:
            self.stats["throttled"] += 1
            self.stats[f"throttled.{action}"] += 1
            raise
        fault = self._faults.roll(action)
        if fault is not None and not fault.after:
            self.stats["faults"] += 1
            raise fault_error(fault)
        result = None
        if dry_run or self._policy is not None:
            # A read validates its ids and filters before authorization; it changes nothing.
            if action in READ_ONLY:
                result = handler(self.model, params, now)
            self._authorize(action, params, dry_run)
        if result is None:
            result = handler(self.model, params, now)
        if fault is not None:
            self.stats["faults"] += 1
            raise fault_error(fault)
        if self.stats["requests"] % PRUNE_EVERY == 0:
            self.model.forget_before(now - self._knobs.history_seconds - 1.0)
        return result

    def _authorize(self, action: str, params: Mapping[str, Any], dry_run: bool) -> None:
        """Validate the request as the call would, authorize every check it needs, and answer a
        dry run; raises before anything changes."""
        checks = authorization.checks_for(self.model, action, params, self.region)
        if self._policy is not None:
            for check in checks:
                decision = self._policy.evaluate(check.action, check.arn, check.context)
                if not decision.allowed:
                    self.stats["denied"] += 1
                    self.stats[f"denied.{action}"] += 1
                    raise authorization.unauthorized(check, decision)
        if dry_run:
            self.stats["dry_runs"] += 1
            raise authorization.dry_run_succeeded()

    def check_region(self, region: str | None) -> None:
        """Refuse a request signed for a region this emulator does not serve.

        EC2 answers a credential it cannot validate with ``AuthFailure`` (HTTP 401); the message
        is SigV4's for a credential scoped to the wrong region. Unsigned requests are served.
        """
        if region is not None and region != self.region:
            raise Ec2Error(
                "AuthFailure",
                f"Credential should be scoped to a valid region, not '{region}'. This emulator "
                f"serves {self.region} only: use region {self.region} in the client (region_name "
                f"or AWS_REGION), or start the emulator with --region {region}.",
            )

    def _take_resources(self, action: str, params: Mapping[str, Any], now: float) -> None:
        """RunInstances / TerminateInstances: one resource token per instance, all or none.

        A launch needs ``MaxCount`` tokens (EC2 documents one per instance launched; whether a
        short bucket launches ``MinCount`` instead is undocumented, so the request is refused).
        """
        spec = RESOURCE_BUCKETS.get(action)
        if spec is None or not self._knobs.rate_limits:
            return
        key = action + RESOURCE_SUFFIX
        if action == "RunInstances":
            count = _count(params.get("MaxCount"))
        else:
            count = len(params.get("InstanceIds") or ())
        bucket = self._resources.get(key)
        if bucket is None:
            bucket = self._resources[key] = TokenBucket(self._knobs.buckets.get(key) or spec)
        if bucket.level(now) < count:
            raise Ec2Error(
                "RequestLimitExceeded",
                f"Request limit exceeded: {action} for {count} instances needs {count} resource "
                f"tokens and {int(bucket.level(now))} are left (refill {spec.refill:g}/s).",
            )
        bucket.take_many(now, count)

    def bucket_levels(self, now: float) -> dict[str, float]:
        levels = self._limiter.levels(now)
        levels.update({key: round(b.level(now), 3) for key, b in self._resources.items()})
        return dict(sorted(levels.items()))

    # -- IMDS ---------------------------------------------------------------------------------

    def imds_token(
        self, instance_id: str, ttl_header: str | None, now: float, *, forwarded: bool = False
    ) -> ImdsAnswer:
        """PUT /latest/api/token: a token for this node valid ``ttl`` seconds.

        ``forwarded``: the PUT carried ``X-Forwarded-For``; IMDS issues no token to a request
        that came through a proxy and answers 403 Forbidden.
        """
        if forwarded:
            return ImdsAnswer(403, "Forbidden")
        if ttl_header is None:
            return ImdsAnswer(400, "Missing X-aws-ec2-metadata-token-ttl-seconds header")
        try:
            ttl = int(ttl_header)
        except ValueError:
            ttl = 0
        if not 1 <= ttl <= TOKEN_TTL_MAX:
            return ImdsAnswer(400, f"TTL must be between 1 and {TOKEN_TTL_MAX} seconds")
        now = self.model.advance(now)
        self._tokens = {t: v for t, v in self._tokens.items() if v[1] > now}
        token = "AQAE" + "".join(f"{self._token_rng.getrandbits(8):02x}" for _ in range(24))
        self._tokens[token] = (instance_id, now + ttl)
        return ImdsAnswer(200, token)

    def imds_get(self, instance_id: str, path: str, token: str | None, now: float) -> ImdsAnswer:
        """GET /latest/<path> for one node; 401 without a valid token for that node."""
        now = self.model.advance(now)
        held = self._tokens.get(token or "")
        if held is None or held[0] != instance_id or held[1] <= now:
            return ImdsAnswer(401, "Unauthorized")
        current = self.model.store.instances.get(instance_id)
        if current is None or not current.running:
            return NOT_FOUND
        knobs = self._knobs
        at = max(now - knobs.imds_lag, current.launch_time)
        partial = PartialViews(
            knobs.imds_addresses_delay, knobs.imds_stale_mac, knobs.imds_stale_addresses
        )
        view = imds_view(self.model, instance_id, at, partial)
        if view is None:
            return NOT_FOUND
        tree = node_tree(self.model, view.instance, view.enis, view.departed)
        meta = tree["meta-data"]
        assert isinstance(meta, dict)
        meta["iam"] = instance_role_tree(view.instance, now)
        return lookup(tree, path)


def _count(value: Any) -> int:
    try:
        return max(int(value), 0)
    except (TypeError, ValueError):
        return 0


def _delays(knobs: Knobs) -> Delays:
    return Delays(knobs.attach_delay, knobs.detach_delay, knobs.subnet_count_lag)
