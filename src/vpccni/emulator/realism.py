"""How real the emulator feels: AWS's API rate limits, latency, IMDS lag and injected faults.

Owns :class:`Knobs` (every setting, with defaults: rate limits on at AWS's figures, no added
latency, no IMDS lag or partial IMDS views, no faults), the presets (``realistic_knobs()``: a few
seconds of attach/detach, IMDS lag and partial views, figures argued in docs/emulator.md), its
JSON form (scenario files, the admin API, ``--state``; ``"preset"`` names a preset to start from),
:class:`RateLimiter` (one token bucket per API, as EC2 throttles each API on its own, sized by the
API's category; the bucket arithmetic is ``vpccni.core.ec2_rate_limits.TokenBucket``) and
:class:`FaultInjector` (seeded, so a run can be replayed). Pure: time comes in as ``now`` on the
emulator clock, randomness from a seeded ``random.Random``.

Bucket sizes and refill rates are those AWS publishes ("Request throttling for the Amazon EC2
API"; see shared reference users-and-peers.md §2.3): non-mutating 100 / 20 per s; unfiltered and
unpaginated non-mutating (DescribeInstances, DescribeNetworkInterfaces, DescribeSecurityGroups
with no filter, id list or pagination) 50 / 10; mutating 50 / 5 (attach, detach, CreateVpc, ...);
uncategorized APIs their own figures (Assign/Unassign/Create/Delete/ModifyNetworkInterface... 100
/ 5, CreateTags/DeleteTags 100 / 10, RunInstances 5 / 2, TerminateInstances 100 / 5). The
resource-token buckets of RunInstances and TerminateInstances (one token per instance) are drawn
by ``service.Emulator``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from vpccni.core.ec2_rate_limits import BucketSpec, TokenBucket, bucket_for
from vpccni.emulator.errors import Ec2Error, EmulatorSetupError

UNFILTERED_CATEGORY = {"DescribeInstances", "DescribeNetworkInterfaces", "DescribeSecurityGroups"}
UNFILTERED_SUFFIX = "/unfiltered"
FAULT_CODES = ("InternalError", "Unavailable", "RequestLimitExceeded", "UnauthorizedOperation")


def bucket_key(action: str, params: Mapping[str, Any]) -> str:
    """The bucket a request draws from: its API, or the API's unfiltered bucket."""
    if action in UNFILTERED_CATEGORY:
        narrowing = (
            "Filters",
            "MaxResults",
            "NextToken",
            "NetworkInterfaceIds",
            "InstanceIds",
            "GroupIds",
            "GroupNames",
        )
        if not any(params.get(name) for name in narrowing):
            return action + UNFILTERED_SUFFIX
    return action


def default_bucket(key: str) -> BucketSpec:
    return bucket_for(key.removesuffix(UNFILTERED_SUFFIX), key.endswith(UNFILTERED_SUFFIX))


@dataclass(frozen=True)
class FaultSpec:
    """Fail ``rate`` of the calls with ``code``, before (no change made) or after acting."""

    rate: float
    code: str = "InternalError"
    after: bool = False


@dataclass(frozen=True)
class Knobs:
    """Every realism setting; the defaults behave like AWS on a good day."""

    rate_limits: bool = True
    buckets: Mapping[str, BucketSpec] = field(default_factory=dict)
    latency: Mapping[str, float] = field(default_factory=dict)
    attach_delay: float = 0.0
    detach_delay: float = 0.0
    imds_lag: float = 0.0
    faults: Mapping[str, FaultSpec] = field(default_factory=dict)
    seed: int = 0
    random_addresses: bool = False
    imds_addresses_delay: float = 0.0
    imds_stale_mac: float = 0.0
    imds_stale_addresses: float = 0.0
    subnet_count_lag: float = 0.0

    @property
    def history_seconds(self) -> float:
        """How far back a reader may look: the IMDS lag plus its longest partial view."""
        partial = max(self.imds_addresses_delay, self.imds_stale_mac, self.imds_stale_addresses)
        return max(self.imds_lag + partial, self.subnet_count_lag)

    def latency_for(self, action: str) -> float:
        """Seconds the HTTP front waits before answering ``action`` ("*" is the default)."""
        return self.latency.get(action, self.latency.get("*", 0.0))


# -- presets ----------------------------------------------------------------------------------

TIMING_FIELDS = (
    "attach_delay",
    "detach_delay",
    "imds_lag",
    "imds_addresses_delay",
    "imds_stale_mac",
    "imds_stale_addresses",
    "subnet_count_lag",
)
REALISTIC_TIMING = Knobs(
    attach_delay=3.0,
    detach_delay=2.0,
    imds_lag=2.0,
    imds_addresses_delay=2.0,
    imds_stale_mac=5.0,
    imds_stale_addresses=5.0,
    subnet_count_lag=5.0,
)


def realistic_knobs(base: Knobs = Knobs()) -> Knobs:
    """``base`` with EC2's and IMDS's timing as they behave on a good day (docs/emulator.md)."""
    return _timing_from(REALISTIC_TIMING, base)


def instant_knobs(base: Knobs = Knobs()) -> Knobs:
    """``base`` with every delay, lag and partial view off (the defaults)."""
    return _timing_from(Knobs(), base)


def _timing_from(source: Knobs, base: Knobs) -> Knobs:
    timing: dict[str, Any] = {name: getattr(source, name) for name in TIMING_FIELDS}
    return replace(base, **timing)


PRESETS = {"default": instant_knobs, "realistic": realistic_knobs}


class RateLimiter:
    """One token bucket per bucket key, refilled continuously on the emulator clock."""

    def __init__(self, knobs: Knobs) -> None:
        self._on = knobs.rate_limits
        self._overrides = knobs.buckets
        self._buckets: dict[str, TokenBucket] = {}

    def take(self, key: str, now: float) -> None:
        """Spend one token of ``key`` or raise RequestLimitExceeded (HTTP 503)."""
        if self.take_many(key, now, 1) < 1:
            raise Ec2Error("RequestLimitExceeded", "Request limit exceeded.")

    def take_many(self, key: str, now: float, count: int) -> int:
        """As ``count`` calls of ``take`` at ``now``: how many got a token (O(1))."""
        if not self._on:
            return count
        bucket = self._buckets.get(key)
        if bucket is None:
            spec = self._overrides.get(key) or default_bucket(key)
            bucket = self._buckets[key] = TokenBucket(spec)
        return bucket.take_many(now, count)

    def levels(self, now: float) -> dict[str, float]:
        """Tokens left per bucket used so far (for the admin API)."""
        return {key: round(self._buckets[key].level(now), 3) for key in sorted(self._buckets)}


class FaultInjector:
    """Decides, reproducibly from the seed, which calls fail on purpose."""

    def __init__(self, knobs: Knobs) -> None:
        self._faults = knobs.faults
        self._rng = random.Random(f"faults/{knobs.seed}")

    def roll(self, action: str) -> FaultSpec | None:
        spec = self._faults.get(action) or self._faults.get("*")
        if spec is None or spec.rate <= 0:
            return None
        return spec if self._rng.random() < spec.rate else None


def fault_error(spec: FaultSpec) -> Ec2Error:
    if spec.code == "RequestLimitExceeded":
        return Ec2Error("RequestLimitExceeded", "Request limit exceeded.")
    if spec.code == "UnauthorizedOperation":
        return Ec2Error(
            "UnauthorizedOperation", "You are not authorized to perform this operation."
        )
    if spec.code == "Unavailable":
        return Ec2Error("Unavailable", "The service is unavailable. Please try again shortly.")
    return Ec2Error(spec.code, "An internal error has occurred.")


# -- JSON form --------------------------------------------------------------------------------

KNOB_FIELDS = (
    "rate_limits",
    "buckets",
    "latency",
    "attach_delay",
    "detach_delay",
    "imds_lag",
    "faults",
    "seed",
    "random_addresses",
    "imds_addresses_delay",
    "imds_stale_mac",
    "imds_stale_addresses",
    "subnet_count_lag",
)


def knobs_to_json(knobs: Knobs) -> dict[str, Any]:
    return {
        "rate_limits": knobs.rate_limits,
        "buckets": {
            key: {"size": spec.size, "refill": spec.refill} for key, spec in knobs.buckets.items()
        },
        "latency": dict(knobs.latency),
        "attach_delay": knobs.attach_delay,
        "detach_delay": knobs.detach_delay,
        "imds_lag": knobs.imds_lag,
        "faults": {
            key: {"rate": spec.rate, "code": spec.code, "after": spec.after}
            for key, spec in knobs.faults.items()
        },
        "seed": knobs.seed,
        "random_addresses": knobs.random_addresses,
        "imds_addresses_delay": knobs.imds_addresses_delay,
        "imds_stale_mac": knobs.imds_stale_mac,
        "imds_stale_addresses": knobs.imds_stale_addresses,
        "subnet_count_lag": knobs.subnet_count_lag,
    }


def knobs_from_json(
    document: Mapping[str, Any], base: Knobs = Knobs(), where: str = "knobs"
) -> Knobs:
    """``base`` with the fields of ``document`` applied; unknown or bad fields are refused.

    ``"preset"`` (``default`` or ``realistic``) is applied to ``base`` first, the other fields
    over it."""
    if not isinstance(document, Mapping):
        raise EmulatorSetupError(f"{where} must be a JSON object, got {type(document).__name__}")
    unknown = sorted(set(document) - set(KNOB_FIELDS) - {"preset"})
    if unknown:
        raise EmulatorSetupError(
            f"{where}: unknown field(s) {', '.join(unknown)}; known: preset, "
            f"{', '.join(KNOB_FIELDS)}"
        )
    if "preset" in document:
        base = preset_knobs(document["preset"], base, f"{where}.preset")
    values: dict[str, Any] = {}
    for name in ("rate_limits", "random_addresses"):
        if name in document:
            values[name] = _boolean(document[name], f"{where}.{name}")
    for name in TIMING_FIELDS:
        if name in document:
            values[name] = _seconds(document[name], f"{where}.{name}")
    if "seed" in document:
        if not isinstance(document["seed"], int) or isinstance(document["seed"], bool):
            raise EmulatorSetupError(f"{where}.seed must be an integer")
        values["seed"] = document["seed"]
    if "latency" in document:
        values["latency"] = {
            str(k): _seconds(v, f"{where}.latency.{k}")
            for k, v in _mapping(document["latency"], f"{where}.latency").items()
        }
    if "buckets" in document:
        values["buckets"] = {
            str(k): _bucket(v, f"{where}.buckets.{k}")
            for k, v in _mapping(document["buckets"], f"{where}.buckets").items()
        }
    if "faults" in document:
        values["faults"] = {
            str(k): _fault(v, f"{where}.faults.{k}")
            for k, v in _mapping(document["faults"], f"{where}.faults").items()
        }
    return Knobs(**{**{name: getattr(base, name) for name in KNOB_FIELDS}, **values})


def preset_knobs(name: Any, base: Knobs = Knobs(), where: str = "preset") -> Knobs:
    """``base`` with the timing of preset ``name`` (``default`` or ``realistic``)."""
    if name not in PRESETS:
        raise EmulatorSetupError(f"{where} must be one of {', '.join(PRESETS)}, got {name!r}")
    return PRESETS[name](base)


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise EmulatorSetupError(f"{where} must be a JSON object")
    return value


def _boolean(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise EmulatorSetupError(f"{where} must be true or false, got {value!r}")
    return value


def _seconds(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise EmulatorSetupError(f"{where} must be a number of seconds, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise EmulatorSetupError(f"{where} must be a finite number >= 0, got {value!r}")
    return float(value)


def _bucket(value: Any, where: str) -> BucketSpec:
    body = _mapping(value, where)
    if set(body) != {"size", "refill"}:
        raise EmulatorSetupError(f'{where} must be {{"size": N, "refill": R}}')
    size, refill = (
        _seconds(body["size"], f"{where}.size"),
        _seconds(body["refill"], f"{where}.refill"),
    )
    return BucketSpec(size, refill)


def _fault(value: Any, where: str) -> FaultSpec:
    body = _mapping(value, where)
    unknown = set(body) - {"rate", "code", "after"}
    if unknown or "rate" not in body:
        raise EmulatorSetupError(f'{where} must be {{"rate": 0..1, "code": ..., "after": bool}}')
    rate = _seconds(body["rate"], f"{where}.rate")
    if rate > 1:
        raise EmulatorSetupError(f"{where}.rate must be between 0 and 1, got {rate}")
    code = body.get("code", "InternalError")
    if code not in FAULT_CODES:
        raise EmulatorSetupError(f"{where}.code must be one of {', '.join(FAULT_CODES)}")
    return FaultSpec(rate, code, _boolean(body.get("after", False), f"{where}.after"))
