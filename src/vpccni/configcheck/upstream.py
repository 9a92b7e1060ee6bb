"""What upstream's ``aws-node`` does with a value: its lenient reading of each variable.

vpccni refuses a bad value; upstream mostly logs it and carries on with something else (facts
from upstream's ``ipamd``, ``networkutils`` and entry point, reference section 2). For a raw
value :func:`upstream_reading` says what upstream would actually run with: the same value (None:
nothing to say), a replacement (``effective``: the text that behaves the same, or None for
"as if unset"), or a refusal to start. Only documented behaviour is described; for a variable
whose upstream handling is not known here nothing is claimed.

:data:`CODE_DEFAULTS` are upstream's values when a variable is not set at all, where they
differ from what its shipped manifest sets (vpccni's defaults are the manifest's).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from ipaddress import IPv4Network

from vpccni.core.config import FALSE_WORDS, TRUE_WORDS, parse_int

UPSTREAM_BOOL_DEFAULTS: dict[str, bool] = {
    "ENABLE_PREFIX_DELEGATION": False,
    "ENABLE_IPv4": False,
    "ENABLE_IPv6": False,
    "AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG": False,
    "AWS_VPC_K8S_CNI_EXTERNALSNAT": False,
    "AWS_VPC_CNI_NODE_PORT_SUPPORT": True,
    "ENABLE_POD_ENI": False,
    "AWS_MANAGE_ENIS_NON_SCHEDULABLE": False,
    "ENABLE_SUBNET_DISCOVERY": True,
    "DISABLE_NETWORK_RESOURCE_PROVISIONING": False,
    "ENABLE_IMDS_ONLY_MODE": False,
    "DISABLE_LEAKED_ENI_CLEANUP": False,
    "MANAGE_UNTAGGED_ENI": True,
    "ANNOTATE_POD_IP": False,
    "ENABLE_MULTI_NIC": False,
    "DISABLE_INTROSPECTION": False,
    "DISABLE_METRICS": False,
    "ENABLE_V4_EGRESS": True,
    "ENABLE_V6_EGRESS": False,
    "ENABLE_BANDWIDTH_PLUGIN": False,
    "DISABLE_POD_V6": False,
    "DISABLE_TCP_EARLY_DEMUX": False,
}
"""Upstream's booleans and their code defaults (an unparsable value falls back to these)."""

CODE_DEFAULTS: dict[str, str] = {"ENABLE_IPv4": "false", "WARM_PREFIX_TARGET": "0"}
"""Unset, upstream runs with these; its manifest (and so vpccni) sets true and 1."""

_RANDOMIZE = ("none", "hashrandom", "prng")
_POLICY_MODES = ("none", "strict", "standard")
_SG_MODES = ("strict", "standard")


@dataclass(frozen=True)
class UpstreamReading:
    """What upstream does with one value that it does not take as written."""

    note: str
    """In words, e.g. "treats it as unset (0), logging the parse error"."""
    effective: str | None = None
    """The value that behaves as upstream does (None: as if unset)."""
    refuses: bool = False
    """Upstream's entry point or ipamd refuses to start with it."""


def upstream_reading(name: str, raw: str, env: Mapping[str, str]) -> UpstreamReading | None:
    """Upstream's handling of ``name=raw`` (``env``: the container's other values), or None when
    upstream takes the value as written or its handling is not documented here."""
    if raw == "":
        return None  # empty is unset for upstream as for vpccni
    if name in UPSTREAM_BOOL_DEFAULTS:
        return _boolean(name, raw)
    reader = _READERS.get(name)
    return reader(name, raw, env) if reader is not None else None


Reader = Callable[[str, str, Mapping[str, str]], "UpstreamReading | None"]


def _target(name: str, raw: str, env: Mapping[str, str]) -> UpstreamReading | None:
    return _integer(raw, 0, "treats it as unset (0)")


def _warm_eni(name: str, raw: str, env: Mapping[str, str]) -> UpstreamReading | None:
    return _integer(raw, 0, "uses its default, 1")


def _max_eni(name: str, raw: str, env: Mapping[str, str]) -> UpstreamReading | None:
    value = _int_or_none(raw)
    if value is None or value < 1:
        return UpstreamReading("ignores it and uses the instance type's ENI limit")
    return None


def _cooldown(name: str, raw: str, env: Mapping[str, str]) -> UpstreamReading | None:
    value = _int_or_none(raw)
    if value is None or value < 0:
        return UpstreamReading(
            "its entry point refuses to start (IP_COOLDOWN_PERIOD must be a non-negative integer)",
            refuses=True,
        )
    return None


def _connmark(name: str, raw: str, env: Mapping[str, str]) -> UpstreamReading | None:
    try:
        value = parse_int(raw, base_prefixes=True)
    except ValueError:
        value = 0
    if not 0 < value <= 2**32 - 1:
        return UpstreamReading("uses its default mark, 0x80")
    return None


def _randomize(name: str, raw: str, env: Mapping[str, str]) -> UpstreamReading | None:
    if raw in _RANDOMIZE:
        return None
    return UpstreamReading("uses prng (--random-fully), its default")


def _veth_prefix(name: str, raw: str, env: Mapping[str, str]) -> UpstreamReading | None:
    if len(raw) <= 4 and raw not in ("eth", "lo", "vlan"):
        return None
    return UpstreamReading(
        "its entry point refuses to start (at most 4 characters, not eth, lo or vlan)",
        refuses=True,
    )


def _plugin_log(name: str, raw: str, env: Mapping[str, str]) -> UpstreamReading | None:
    if raw.lower() != "stdout":
        return None
    return UpstreamReading("its entry point refuses to start (stdout)", refuses=True)


def _policy_mode(name: str, raw: str, env: Mapping[str, str]) -> UpstreamReading | None:
    if raw.lower() in _POLICY_MODES:
        return None
    return UpstreamReading("ipamd refuses to start (none, strict or standard)", refuses=True)


def _sg_mode(name: str, raw: str, env: Mapping[str, str]) -> UpstreamReading | None:
    if raw in _SG_MODES:
        return None
    if _true(env.get("ENABLE_POD_ENI", "")):
        return UpstreamReading(
            "its entry point refuses to start (strict or standard)", refuses=True
        )
    return UpstreamReading("ignores it (read only with ENABLE_POD_ENI=true)")


def _int_or_none(raw: str) -> int | None:
    try:
        return parse_int(raw)
    except ValueError:
        return None


def _integer(raw: str, minimum: int, fallback: str) -> UpstreamReading | None:
    value = _int_or_none(raw)
    if value is None:
        return UpstreamReading(f"{fallback}, logging that it is not an integer")
    if value < minimum:
        return UpstreamReading(f"{fallback}, logging that it is negative")
    return None


def _boolean(name: str, raw: str) -> UpstreamReading | None:
    if raw in TRUE_WORDS or raw in FALSE_WORDS:
        return None
    default = "true" if UPSTREAM_BOOL_DEFAULTS[name] else "false"
    consequence = ""
    if name == "ENABLE_IPv4":
        consequence = " - with ENABLE_IPv6 false too, its ipamd refuses to start"
    return UpstreamReading(
        f"uses its default, {default}, logging that it is not a boolean{consequence}",
        effective=default,
        refuses=bool(consequence),
    )


def _true(raw: str) -> bool:
    return raw in TRUE_WORDS


def _cidr_list(name: str, raw: str, env: Mapping[str, str]) -> UpstreamReading | None:
    kept: list[str] = []
    dropped: list[str] = []
    for item in raw.split(","):
        text = item.strip()
        try:
            if "/" not in text:  # Go's ParseCIDR needs the prefix length
                raise ValueError(text)
            network = IPv4Network(text, strict=False)
        except ValueError:
            dropped.append(text)
            continue
        kept.append(str(network))
    if not dropped:
        return None
    effective = ",".join(kept) if kept else None
    return UpstreamReading(
        f"drops {', '.join(repr(d) for d in dropped)} (not IPv4 CIDRs), logging it, and uses "
        + (effective if effective is not None else "none"),
        effective=effective,
    )


def _mtu(name: str, raw: str, env: Mapping[str, str]) -> UpstreamReading | None:
    low = 1280 if _true(env.get("ENABLE_IPv6", "")) else 576
    value = _int_or_none(raw)
    if value is None or not low <= value <= 9001:
        return UpstreamReading(
            f"its entry point refuses to start ({name} must be an integer {low}-9001)",
            refuses=True,
        )
    return None


def _tags(name: str, raw: str, env: Mapping[str, str]) -> UpstreamReading | None:
    try:
        tags = json.loads(raw)
    except ValueError:
        return UpstreamReading("ignores it (not valid JSON), adding no extra tags")
    if not isinstance(tags, dict):
        return UpstreamReading("ignores it (not a JSON object), adding no extra tags")
    reserved = sorted(key for key in tags if "k8s.amazonaws.com" in str(key))
    if reserved:
        return UpstreamReading(f"drops the reserved keys {', '.join(reserved)}")
    return None


_READERS: dict[str, Reader] = {
    "WARM_IP_TARGET": _target,
    "MINIMUM_IP_TARGET": _target,
    "WARM_PREFIX_TARGET": _target,
    "WARM_ENI_TARGET": _warm_eni,
    "MAX_ENI": _max_eni,
    "IP_COOLDOWN_PERIOD": _cooldown,
    "AWS_VPC_K8S_CNI_CONNMARK": _connmark,
    "AWS_VPC_K8S_CNI_RANDOMIZESNAT": _randomize,
    "AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS": _cidr_list,
    "AWS_EXTERNAL_SERVICE_CIDRS": _cidr_list,
    "AWS_VPC_ENI_MTU": _mtu,
    "POD_MTU": _mtu,
    "AWS_VPC_K8S_CNI_VETHPREFIX": _veth_prefix,
    "AWS_VPC_K8S_PLUGIN_LOG_FILE": _plugin_log,
    "NETWORK_POLICY_ENFORCING_MODE": _policy_mode,
    "POD_SECURITY_GROUP_ENFORCING_MODE": _sg_mode,
    "ADDITIONAL_ENI_TAGS": _tags,
}
"""The variables whose lenient reading upstream documents, and how each is read."""
