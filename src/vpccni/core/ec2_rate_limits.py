"""EC2's API request limits (token buckets per API category) and the bucket arithmetic.

Figures from AWS's "Request throttling for the Amazon EC2 API": each API draws from a bucket of
``size`` tokens refilled at ``refill`` tokens per second. RunInstances and TerminateInstances
also draw one *resource* token per instance from a second bucket (:data:`RESOURCE_BUCKETS`).
The emulator answers ``RequestLimitExceeded`` from these buckets; the daemon keeps its own calls
inside them, so the node never throttles itself. Pure: the caller passes ``now``.
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
    "RunInstances": BucketSpec(5, 2),
    "TerminateInstances": BucketSpec(100, 5),
    "CreateSubnetCidrReservation": BucketSpec(5, 1),
}
RESOURCE_BUCKETS: dict[str, BucketSpec] = {
    "RunInstances": BucketSpec(1000, 2),
    "TerminateInstances": BucketSpec(1000, 20),
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


@dataclass(slots=True)
class TokenBucket:
    """A token bucket on the caller's clock, full from its first use; the one implementation of
    the refill arithmetic (the daemon's guard, the emulator's throttling and the simulator's)."""

    spec: BucketSpec
    tokens: float = -1.0
    updated: float = 0.0

    def level(self, now: float) -> float:
        """Tokens in the bucket at ``now`` (refilled continuously, at most ``spec.size``)."""
        if self.tokens < 0:
            return self.spec.size
        elapsed = now - self.updated
        if elapsed <= 0:
            return self.tokens
        return min(self.spec.size, self.tokens + elapsed * self.spec.refill)

    def take_many(self, now: float, count: int) -> int:
        """As ``count`` requests at ``now``, each taking a token if one is left: how many got
        one. O(1) whatever ``count``."""
        tokens = self.level(now)
        admitted = min(count, int(tokens))
        self.tokens = tokens - admitted
        self.updated = now
        return admitted

    def try_take(self, now: float) -> bool:
        """Take one token if there is one."""
        return self.take_many(now, 1) == 1

    def wait_time(self, now: float) -> float:
        """Seconds until a token will be available (0 when one is)."""
        tokens = self.level(now)
        if tokens >= 1:
            return 0.0
        return (1 - tokens) / self.spec.refill if self.spec.refill > 0 else float("inf")
