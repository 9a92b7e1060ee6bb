"""EC2's API request limits (token buckets per API category) and the bucket arithmetic.

Figures from AWS's "Request throttling for the Amazon EC2 API": each API draws from a bucket of
``size`` tokens refilled at ``refill`` tokens per second. The emulator answers
``RequestLimitExceeded`` from these buckets; the daemon keeps its own calls inside them, so the
node never throttles itself. Pure: the caller passes ``now``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BucketSpec:
    """A token bucket: capacity and refill per second."""

    size: float
    refill: float


NON_MUTATING = BucketSpec(100, 20)
UNFILTERED_NON_MUTATING = BucketSpec(50, 10)
MUTATING = BucketSpec(50, 5)
UNCATEGORIZED = BucketSpec(100, 5)

ACTION_BUCKETS: dict[str, BucketSpec] = {
    "AssignPrivateIpAddresses": UNCATEGORIZED,
    "UnassignPrivateIpAddresses": UNCATEGORIZED,
    "AssignIpv6Addresses": UNCATEGORIZED,
    "CreateNetworkInterface": UNCATEGORIZED,
    "DeleteNetworkInterface": UNCATEGORIZED,
    "ModifyNetworkInterfaceAttribute": UNCATEGORIZED,
    "CreateTags": BucketSpec(100, 10),
    "DeleteTags": BucketSpec(100, 10),
    "AttachNetworkInterface": MUTATING,
    "DetachNetworkInterface": MUTATING,
    "RunInstances": MUTATING,
    "TerminateInstances": MUTATING,
    "CreateSubnetCidrReservation": BucketSpec(5, 1),
}


def bucket_for(action: str, unfiltered: bool = False) -> BucketSpec:
    """The bucket ``action`` draws from (unfiltered describes have a smaller one)."""
    if unfiltered:
        return UNFILTERED_NON_MUTATING
    if action in ACTION_BUCKETS:
        return ACTION_BUCKETS[action]
    if action.startswith(("Describe", "Get", "List")):
        return NON_MUTATING
    return MUTATING


@dataclass
class TokenBucket:
    """A token bucket on the caller's clock; starts full."""

    spec: BucketSpec
    tokens: float = -1.0
    updated: float = 0.0

    def _refill(self, now: float) -> None:
        if self.tokens < 0:
            self.tokens, self.updated = self.spec.size, now
            return
        elapsed = max(now - self.updated, 0.0)
        self.tokens = min(self.spec.size, self.tokens + elapsed * self.spec.refill)
        self.updated = now

    def try_take(self, now: float) -> bool:
        """Take one token if there is one."""
        self._refill(now)
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True

    def wait_time(self, now: float) -> float:
        """Seconds until a token will be available (0 when one is)."""
        self._refill(now)
        if self.tokens >= 1:
            return 0.0
        return (1 - self.tokens) / self.spec.refill if self.spec.refill > 0 else float("inf")
