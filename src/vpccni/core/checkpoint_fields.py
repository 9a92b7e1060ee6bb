"""Field readers for the checkpoint codec: each checks one JSON value and says what is wrong.

Owns the small validators that ``vpccni.core.checkpoint`` uses to turn decoded JSON bodies into
values (strings, addresses, finite times, counters, pod keys and assignments). They raise
:class:`Invalid`, which the codec turns into ``CheckpointCorrupt`` naming the file and line.
Pure: no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from ipaddress import AddressValueError, IPv4Address
from typing import Any

from vpccni.core.model import Assignment, PodKey, PodMeta


class Invalid(Exception):
    """Why a body is unacceptable; turned into CheckpointCorrupt with the file and line."""


def assignment_of(entry: object) -> Assignment:
    body = object_of(entry)
    meta = PodMeta(text(body, "namespace"), text(body, "name"))
    return Assignment(key_of(body), address(body, "address"), meta, seconds(body, "assigned_at"))


def key_of(body: Mapping[str, Any]) -> PodKey:
    return PodKey(text(body, "network"), text(body, "container_id"), text(body, "ifname"))


def object_of(value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Invalid(f"expected a JSON object, found {type(value).__name__}")
    return value


def list_of(body: Mapping[str, Any], name: str) -> list[Any]:
    value = body.get(name)
    if not isinstance(value, list):
        raise Invalid(f"{name!r} must be a list")
    return value


def text(body: Mapping[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str):
        raise Invalid(f"{name!r} must be a string, found {value!r}")
    return value


def address(body: Mapping[str, Any], name: str) -> IPv4Address:
    try:
        return IPv4Address(text(body, name))
    except AddressValueError as error:
        raise Invalid(f"{name!r}: {error}") from None


def seconds(body: Mapping[str, Any], name: str) -> float:
    value = body.get(name)
    if not isinstance(value, bool) and isinstance(value, int | float):
        try:
            found = float(value)
        except OverflowError:
            found = math.inf
        if math.isfinite(found):
            return found
    raise Invalid(f"{name!r} must be a finite number of seconds, found {value!r}")


def counter(body: Mapping[str, Any], name: str) -> int:
    """A non-negative integer field (generation, sequence number)."""
    value = body.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise Invalid(f"{name!r} must be a non-negative integer, found {value!r}")
    return value
