"""``vpccni explain``: read a pool snapshot, run one decision tick, describe it as JSON.

The snapshot format is documented in ``docs/explain.md``. Instance types are resolved through a
function passed in (the CLI gives the shipped instance table), so this module stays pure.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from vpccni.core.config import IpamConfig, parse_ipam_config
from vpccni.core.maxpods import default_max_pods
from vpccni.core.model import ADDRESSES_PER_PREFIX, EniInfo
from vpccni.core.pool_rules import CidrView, EniView, NodeLimits
from vpccni.core.scaling import Decision, PoolTiming, plan_scaling
from vpccni.errors import InvalidInput

ResolveInstance = Callable[[str], tuple[int, int, bool]]
"""instance type -> (ENIs of the default card, IPv4 per ENI, trunking compatible)."""

MODES = ("secondary-ip", "prefix")


class SnapshotError(InvalidInput):
    """The explain snapshot is not valid; the message says where and what is expected."""


@dataclass(frozen=True)
class Snapshot:
    """A validated snapshot, ready for ``plan_scaling`` (``now`` is 0, ages are negative)."""

    config: IpamConfig
    limits: NodeLimits
    enis: tuple[EniView, ...]
    timing: PoolTiming


def parse_snapshot(document: Any, resolve_instance: ResolveInstance) -> Snapshot:
    """Validate a decoded snapshot document."""
    doc = _object(document, "snapshot")
    mode = doc.get("mode", "secondary-ip")
    if mode not in MODES:
        raise SnapshotError(f"mode: {mode!r} is not one of {', '.join(MODES)}")
    env = {str(k): _string(v, f"env.{k}") for k, v in _object(doc.get("env", {}), "env").items()}
    env["ENABLE_PREFIX_DELEGATION"] = "true" if mode == "prefix" else "false"
    config = parse_ipam_config(env)
    limits = _limits(doc, resolve_instance)
    enis = _enis(doc.get("enis", []), limits, mode == "prefix")
    since = doc.get("seconds_since_last_release")
    last_release = None if since is None else -_number(since, "seconds_since_last_release")
    return Snapshot(config, limits, enis, PoolTiming(last_release_at=last_release))


def explain(document: Any, resolve_instance: ResolveInstance) -> dict[str, Any]:
    """The decision for a snapshot document, as a JSON-ready dict."""
    snapshot = parse_snapshot(document, resolve_instance)
    decision = plan_scaling(snapshot.enis, snapshot.config, snapshot.limits, 0.0, snapshot.timing)
    return decision_json(decision, snapshot.config, snapshot.limits)


def decision_json(decision: Decision, config: IpamConfig, limits: NodeLimits) -> dict[str, Any]:
    """A decision in explain's output shape (also served by ipamd at ``/v1/explain``)."""
    stats = decision.stats
    return {
        "mode": config.mode.value,
        "max_pods": limits.max_pods,
        "max_enis": limits.eni_cap(config),
        "total": stats.total,
        "assigned": stats.assigned,
        "cooldown": stats.cooldown,
        "available": stats.available,
        "total_prefixes": stats.total_prefixes,
        "free_prefixes": stats.free_prefixes,
        "short": decision.targets.short,
        "over": decision.targets.over,
        "pool_too_low": decision.pool_too_low,
        "pool_too_high": decision.pool_too_high,
        "freeable_eni": decision.freeable_eni,
        "actions": [
            {"action": a.action, "eni": a.eni, "count": a.count, "reason": a.reason}
            for a in decision.actions
        ],
        "reasons": list(decision.reasons),
    }


def _limits(doc: Mapping[str, Any], resolve_instance: ResolveInstance) -> NodeLimits:
    raw = _object(doc.get("limits"), "limits")
    trunking = True
    if "instance_type" in raw:
        max_enis, per_eni, trunking = resolve_instance(_string(raw["instance_type"], "limits"))
    elif "max_enis" in raw and "ipv4_per_eni" in raw:
        max_enis = _count(raw["max_enis"], "limits.max_enis", minimum=1)
        per_eni = _count(raw["ipv4_per_eni"], "limits.ipv4_per_eni", minimum=2)
    else:
        raise SnapshotError(
            'limits: give {"instance_type": "c5.large"} or {"max_enis": N, "ipv4_per_eni": L}'
        )
    max_pods = doc.get("max_pods")
    if max_pods is None:
        pods = default_max_pods(max_enis, per_eni)
    else:
        pods = _count(max_pods, "max_pods", minimum=1)
    return NodeLimits(max_enis, per_eni, pods, trunking)


def _enis(raw: Any, limits: NodeLimits, prefix_mode: bool) -> tuple[EniView, ...]:
    if not isinstance(raw, list):
        raise SnapshotError("enis: expected a list of ENI objects")
    views: list[EniView] = []
    seen_ids: set[str] = set()
    seen_devices: set[int] = set()
    for position, item in enumerate(raw):
        where = f"enis[{position}]"
        eni = _object(item, where)
        eni_id = _string(eni.get("id", f"eni-{position}"), f"{where}.id")
        device = _count(eni.get("device_index", position), f"{where}.device_index")
        if eni_id in seen_ids or device in seen_devices:
            raise SnapshotError(f"{where}: duplicate ENI id {eni_id!r} or device index {device}")
        seen_ids.add(eni_id)
        seen_devices.add(device)
        info = EniInfo(
            eni_id=eni_id,
            device_index=device,
            primary=_flag(eni, "primary", where),
            trunk=_flag(eni, "trunk", where),
            efa=_flag(eni, "efa", where),
            excluded=_flag(eni, "excluded", where),
            created_at=-_number(eni.get("age_seconds", 3600), f"{where}.age_seconds"),
        )
        cidrs = _cidrs(eni, where, prefix_mode)
        if len(cidrs) > limits.slots_per_eni:
            raise SnapshotError(
                f"{where}: {len(cidrs)} IPs/prefixes exceed the {limits.slots_per_eni} an ENI "
                f"can hold (ipv4_per_eni {limits.ipv4_per_eni} includes the primary address)"
            )
        views.append(EniView(info, cidrs))
    if len(views) > limits.max_enis:
        raise SnapshotError(f"enis: {len(views)} ENIs exceed the instance limit {limits.max_enis}")
    return tuple(views)


def _cidrs(eni: Mapping[str, Any], where: str, prefix_mode: bool) -> tuple[CidrView, ...]:
    ips = _count(eni.get("ips", 0), f"{where}.ips")
    assigned = _count(eni.get("assigned", 0), f"{where}.assigned")
    cooldown = _count(eni.get("cooldown", 0), f"{where}.cooldown")
    raw_prefixes = eni.get("prefixes", [])
    if not isinstance(raw_prefixes, list):
        raise SnapshotError(f"{where}.prefixes: expected a list of assigned counts per /28")
    prefixes = [
        _count(v, f"{where}.prefixes[{i}]", maximum=ADDRESSES_PER_PREFIX)
        for i, v in enumerate(raw_prefixes)
    ]
    eni_id = str(eni.get("id", where))
    if prefix_mode:
        room = sum(ADDRESSES_PER_PREFIX - used for used in prefixes)
        if cooldown > room:
            raise SnapshotError(f"{where}: cooldown {cooldown} exceeds the {room} free addresses")
        ip_views = [CidrView(f"{eni_id}/ip{i}", False, int(i < assigned)) for i in range(ips)]
        if assigned > ips:
            raise SnapshotError(f"{where}: assigned {assigned} exceeds ips {ips}")
        prefix_views = []
        for i, used in enumerate(prefixes):
            cooling = min(cooldown, ADDRESSES_PER_PREFIX - used)
            cooldown -= cooling
            prefix_views.append(CidrView(f"{eni_id}/prefix{i}", True, used, cooling))
        return (*ip_views, *prefix_views)
    if assigned + cooldown > ips:
        raise SnapshotError(f"{where}: assigned {assigned} + cooldown {cooldown} exceed ips {ips}")
    ip_views = [
        CidrView(
            f"{eni_id}/ip{i}", False, int(i < assigned), int(assigned <= i < assigned + cooldown)
        )
        for i in range(ips)
    ]
    prefix_views = [CidrView(f"{eni_id}/prefix{i}", True, used) for i, used in enumerate(prefixes)]
    return (*ip_views, *prefix_views)


def _object(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise SnapshotError(f"{where}: expected a JSON object")
    return value


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise SnapshotError(f"{where}: expected a string, got {json_type(value)}")
    return value


def _flag(eni: Mapping[str, Any], name: str, where: str) -> bool:
    value = eni.get(name, False)
    if not isinstance(value, bool):
        raise SnapshotError(f"{where}.{name}: expected true or false, got {json_type(value)}")
    return value


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise SnapshotError(f"{where}: expected a number of seconds >= 0, got {value!r}")
    return float(value)


def _count(value: Any, where: str, minimum: int = 0, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SnapshotError(f"{where}: expected an integer >= {minimum}, got {value!r}")
    if maximum is not None and value > maximum:
        raise SnapshotError(f"{where}: {value} is more than {maximum}")
    return value


def json_type(value: Any) -> str:
    """The JSON name of a decoded value's type, for error messages."""
    names = {bool: "boolean", int: "number", float: "number", str: "string", list: "array"}
    return "null" if value is None else names.get(type(value), "object")
