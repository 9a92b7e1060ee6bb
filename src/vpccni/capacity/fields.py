"""Small validators for the planning scenario: each refusal is one line naming the field.

Shared by ``capacity.scenario`` (groups, workload, settings) and ``capacity.network`` (VPC,
subnets, ENIConfigs). :class:`ScenarioError` is an ``InvalidInput`` (exit status 2).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from ipaddress import IPv4Network
from typing import Any

from vpccni.errors import InvalidInput

MIN_PREFIX, MAX_PREFIX = 16, 28


class ScenarioError(InvalidInput):
    """The scenario file is not valid; the message names the field."""


def as_object(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ScenarioError(f"{where}: expected an object (mapping), got {kind(value)}")
    return value


def list_of_objects(value: Any, where: str) -> list[Mapping[str, Any]]:
    if not isinstance(value, list):
        raise ScenarioError(f"{where}: expected a list, got {kind(value)}")
    return [as_object(item, f"{where}[{i}]") for i, item in enumerate(value)]


def known(doc: Mapping[str, Any], fields: Sequence[str], where: str) -> None:
    unknown = sorted(str(key) for key in doc if key not in fields)
    if unknown:
        raise ScenarioError(
            f"{where}: unknown field(s) {', '.join(unknown)}; known: {', '.join(fields)}"
        )


def whole(value: Any, where: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ScenarioError(f"{where}: {value!r} is not a whole number ({minimum} or more)")
    if value < minimum:
        raise ScenarioError(f"{where}: {value} is less than {minimum}")
    return value


def number(value: Any, where: str, minimum: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ScenarioError(f"{where}: {value!r} is not a number ({minimum:g} or more)")
    if not value >= minimum or value == float("inf"):
        raise ScenarioError(f"{where}: {value} must be a finite number >= {minimum:g}")
    return float(value)


def cidr(text: Any, where: str, what: str) -> IPv4Network:
    """A /16 to /28 IPv4 CIDR (what AWS allows for subnets and VPC blocks)."""
    if not isinstance(text, str):
        raise ScenarioError(f'{where}: {text!r} is not a CIDR such as "10.0.0.0/20"')
    try:
        network = IPv4Network(text.strip())
    except ValueError as error:
        raise ScenarioError(
            f'{where}: {text!r} is not a CIDR such as "10.0.0.0/20": {error}'
        ) from None
    if not MIN_PREFIX <= network.prefixlen <= MAX_PREFIX:
        raise ScenarioError(
            f"{where}: {network} has prefix length /{network.prefixlen}; {what} are "
            f"/{MIN_PREFIX} to /{MAX_PREFIX}"
        )
    return network


def kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__
