"""Reading the upstream Amazon VPC CNI checkpoint (``vpc-cni-ipam/1``) into a CheckpointState.

Owns :func:`import_upstream`. Upstream ipamd writes ``{"version": "vpc-cni-ipam/1",
"allocations": [...]}`` (by default ``/var/run/aws-node/ipam.json``); each allocation carries the
CNI key (``networkName``, ``containerID``, ``ifName``), ``ipv4`` and/or ``ipv6`` (omitted when
empty), ``allocationTimestamp`` in Unix nanoseconds, and ``metadata`` (``k8sPodNamespace``,
``k8sPodName``, ``interfacesCount``; omitted when empty or zero). Upstream keeps no cooldowns in
its checkpoint, so none are imported. IPv6-only allocations are skipped (IPv6 is out of scope)
and reported as warnings, never dropped silently. Writing the result is the adapter's job.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import AddressValueError, IPv4Address
from typing import Any

from vpccni.core.checkpoint import CheckpointCorrupt, CheckpointState
from vpccni.core.model import Assignment, PodKey, PodMeta

UPSTREAM_VERSION = "vpc-cni-ipam/1"
NANOSECONDS_PER_SECOND = 1_000_000_000
_HINT = (
    "check that it is the ipamd checkpoint of amazon-vpc-cni-k8s (default "
    "/var/run/aws-node/ipam.json), or start vpccni without importing it"
)


@dataclass(frozen=True)
class UpstreamImport:
    """The imported state, and what could not be imported (one warning per kind of entry)."""

    state: CheckpointState
    imported: int
    skipped_ipv6: int
    skipped_empty: int
    warnings: tuple[str, ...]


def import_upstream(data: bytes, *, source: str = "") -> UpstreamImport:
    """Convert an upstream ``vpc-cni-ipam/1`` checkpoint; raises :class:`CheckpointCorrupt`."""
    try:
        document = json.loads(data)
    except (ValueError, RecursionError) as error:
        raise _corrupt(f"it is not valid JSON ({error})", source) from None
    if not isinstance(document, dict):
        raise _corrupt("the top level is not a JSON object", source)
    version = document.get("version")
    if version != UPSTREAM_VERSION:
        raise _corrupt(f"version is {version!r}; vpccni imports only {UPSTREAM_VERSION!r}", source)
    entries = document.get("allocations")
    if entries is None:  # Go writes a nil slice as null
        entries = []
    if not isinstance(entries, list):
        raise _corrupt("'allocations' is not a list", source)
    assignments: dict[PodKey, Assignment] = {}
    holders: dict[IPv4Address, PodKey] = {}
    ipv6_only: list[str] = []
    empty: list[str] = []
    for number, entry in enumerate(entries, start=1):
        try:
            assignment = _assignment(entry)
        except _SkipIpv6 as skipped:
            ipv6_only.append(str(skipped))
            continue
        except _SkipEmpty as skipped:
            empty.append(str(skipped))
            continue
        except ValueError as error:
            raise _corrupt(f"allocation {number}: {error}", source) from None
        if assignment.key in assignments or assignment.address in holders:
            reason = f"allocation {number} repeats {assignment.key} or {assignment.address}"
            raise _corrupt(reason, source)
        assignments[assignment.key] = assignment
        holders[assignment.address] = assignment.key
    warnings = _warnings(ipv6_only, empty)
    state = CheckpointState(assignments, {})
    return UpstreamImport(state, len(assignments), len(ipv6_only), len(empty), warnings)


class _SkipIpv6(Exception):
    """An allocation holding only an IPv6 address."""


class _SkipEmpty(Exception):
    """An allocation holding no address at all."""


def _assignment(entry: object) -> Assignment:
    if not isinstance(entry, dict):
        raise ValueError("not a JSON object")
    key = PodKey(
        _string(entry, "networkName"), _string(entry, "containerID"), _string(entry, "ifName")
    )
    ipv4 = _string(entry, "ipv4", default="")
    if not ipv4:
        if _string(entry, "ipv6", default=""):
            raise _SkipIpv6(str(key))
        raise _SkipEmpty(str(key))
    try:
        address = IPv4Address(ipv4)
    except AddressValueError as error:
        raise ValueError(f"ipv4 {ipv4!r}: {error}") from None
    metadata = entry.get("metadata", {})
    if not isinstance(metadata, dict):
        raise ValueError("'metadata' is not a JSON object")
    meta = PodMeta(
        _string(metadata, "k8sPodNamespace", default=""),
        _string(metadata, "k8sPodName", default=""),
    )
    return Assignment(key, address, meta, _seconds(entry.get("allocationTimestamp", 0)))


def _string(body: Mapping[str, Any], name: str, default: str | None = None) -> str:
    value = body.get(name, default)
    if not isinstance(value, str):
        raise ValueError(f"{name!r} must be a string, found {value!r}")
    return value


def _seconds(nanoseconds: object) -> float:
    if isinstance(nanoseconds, bool) or not isinstance(nanoseconds, int):
        raise ValueError(
            f"'allocationTimestamp' must be integer nanoseconds, found {nanoseconds!r}"
        )
    return nanoseconds / NANOSECONDS_PER_SECOND


def _warnings(ipv6_only: list[str], empty: list[str]) -> tuple[str, ...]:
    warnings = []
    if ipv6_only:
        warnings.append(
            f"skipped {len(ipv6_only)} IPv6-only allocation(s) ({_sample(ipv6_only)}): vpccni "
            "manages IPv4 only; those pods keep their addresses but vpccni will not track them"
        )
    if empty:
        warnings.append(
            f"skipped {len(empty)} allocation(s) without any address ({_sample(empty)})"
        )
    return tuple(warnings)


def _sample(keys: list[str], limit: int = 3) -> str:
    more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def _corrupt(reason: str, source: str) -> CheckpointCorrupt:
    return CheckpointCorrupt(reason, source=source or f"{UPSTREAM_VERSION} data", hint=_HINT)
