"""Setting values parsed one way, and the IPAM configuration from upstream's variable names.

Every value vpccni's daemon takes from its environment or command line goes through
:class:`SettingsReader` (``vpccni.settings`` builds the daemon's settings with it; the IPAM part
lives here because ``vpccni explain`` and the planners parse the ``env`` of a snapshot or
scenario with the same rules). One boolean parser, :func:`parse_bool`, accepts exactly Go's
``strconv.ParseBool`` set; one integer parser, :func:`parse_int`, accepts exactly what Go's
``strconv.Atoi`` accepts (or, for the one variable upstream reads that way,
``strconv.ParseInt(s, 0, 64)``). A bad value becomes a problem naming the variable, its value,
why it is wrong and what is accepted, and :class:`ConfigError` lists every problem at once.
Upstream silently replaces a bad value with a default (e.g. ``WARM_IP_TARGET=five`` means "not
set"); vpccni refuses to start instead.

Unset variables take the values of upstream's shipped manifest (``aws-k8s-cni.yaml``), which is
what EKS users run: ``WARM_ENI_TARGET=1``, ``WARM_PREFIX_TARGET=1``, ``ENABLE_IPv4=true``,
prefix delegation off, ``IP_COOLDOWN_PERIOD=30``. An empty value counts as unset, as upstream.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import TypeVar

from vpccni.core.cluster import DEFAULT_ENICONFIG_LABEL
from vpccni.core.model import Mode
from vpccni.errors import InvalidInput

T = TypeVar("T")

TRUE_WORDS = frozenset({"1", "t", "T", "TRUE", "true", "True"})
FALSE_WORDS = frozenset({"0", "f", "F", "FALSE", "false", "False"})
BOOL_ACCEPTED = "true or false (also 1/0, t/f, T/F, TRUE/FALSE, True/False, as Go's ParseBool)"
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

_ATOI = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"[0-9]+(\.[0-9]*)?|\.[0-9]+")
_BASE_PREFIXES = {"x": 16, "o": 8, "b": 2}
_DIGITS = {2: "01", 8: "01234567", 10: "0123456789", 16: "0123456789abcdefABCDEF"}


class ConfigError(InvalidInput):
    """One or more settings are invalid; the message lists each of them."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(
            "invalid configuration: " + "; ".join(problems) + ". Nothing was changed; fix each "
            "value named here and start again"
        )
        self.problems = tuple(problems)


def parse_bool(raw: str) -> bool:
    """``raw`` as Go's ``strconv.ParseBool``: exactly the twelve words, no spaces."""
    if raw in TRUE_WORDS:
        return True
    if raw in FALSE_WORDS:
        return False
    raise ValueError(_why("is not a boolean", raw))


def parse_int(raw: str, *, base_prefixes: bool = False) -> int:
    """``raw`` as Go's ``strconv.Atoi``: an optional sign, then ASCII digits, within 64 bits.

    No spaces, no underscores, no other digits (Python's ``int`` takes all three). With
    ``base_prefixes``, as ``strconv.ParseInt(raw, 0, 64)``: ``0x``/``0o``/``0b`` prefixes, a
    leading ``0`` for octal, and ``_`` between digits.
    """
    if base_prefixes:
        value = _parse_int_base0(raw)
    elif _ATOI.fullmatch(raw):
        value = int(raw, 10)
    else:
        raise ValueError(_why("is not an integer", raw))
    if not INT64_MIN <= value <= INT64_MAX:
        raise ValueError("is out of range (beyond a 64-bit integer)")
    return value


def parse_seconds(raw: str) -> float:
    """A decimal number of seconds (``5``, ``0.2``): ASCII digits and one dot, nothing else."""
    if not _DECIMAL.fullmatch(raw):
        raise ValueError(_why("is not a number of seconds", raw))
    return float(raw)


def _why(reason: str, raw: str) -> str:
    return reason + (" (remove the spaces around it)" if raw != raw.strip() else "")


def _parse_int_base0(raw: str) -> int:
    """Go's ``strconv.ParseInt(raw, 0, 64)`` syntax (the range is checked by the caller)."""
    body = raw[1:] if raw[:1] in ("+", "-") else raw
    base, digits, seen = 10, body, "^"
    if len(body) >= 3 and body[0] == "0" and body[1].lower() in _BASE_PREFIXES:
        base, digits, seen = _BASE_PREFIXES[body[1].lower()], body[2:], "0"
    elif len(body) >= 2 and body[0] == "0":
        base, digits, seen = 8, body[1:], "0"
    if not body:
        raise ValueError(_why("is not an integer", raw))
    for char in digits:
        if char == "_" and seen == "0":
            seen = "_"
        elif char != "_" and char in _DIGITS[base]:
            seen = "0"
        else:
            raise ValueError(_why("is not an integer", raw))
    if seen == "_":
        raise ValueError("is not an integer (an underscore must sit between digits)")
    magnitude = int(digits.replace("_", "") or "0", base)
    return -magnitude if raw.startswith("-") else magnitude


def range_text(minimum: int, maximum: int | None = None) -> str:
    """What an integer setting accepts, in words."""
    return f"{minimum} or more" if maximum is None else f"{minimum} to {maximum}"


def in_range(value: int, minimum: int, maximum: int | None = None) -> int:
    """``value`` when within the bounds, else ValueError saying which side it missed."""
    if value < minimum:
        raise ValueError("is negative" if minimum == 0 else "is too small")
    if maximum is not None and value > maximum:
        raise ValueError("is too large")
    return value


DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
"""A Kubernetes object name (RFC 1123 subdomain): Nodes, pods."""


def object_name(raw: str, noun: str) -> str:
    """``raw`` when it is a Kubernetes object name (at most 253 characters), else ValueError
    saying it is not ``noun``."""
    if len(raw) > 253 or not DNS_SUBDOMAIN.fullmatch(raw):
        raise ValueError(f"is not {noun}")
    return raw


def absolute_file(raw: str) -> str:
    """``raw`` when it is an absolute file path (not a directory's, no spaces around it)."""
    if not raw.startswith("/") or raw.endswith("/") or raw != raw.strip():
        raise ValueError("is not an absolute file path")
    return raw


class SettingsReader:
    """Reads named raw values, collecting every problem instead of stopping at the first.

    ``values`` maps a name (an environment variable or a ``--flag``) to its text; a missing or
    None value is unset and takes the default, and so is an empty one when ``empty_is_unset``
    (environment variables, as upstream; an empty flag is refused by its parser instead).
    :meth:`check` raises :class:`ConfigError` listing every problem.
    """

    def __init__(self, values: Mapping[str, str | None], *, empty_is_unset: bool = True) -> None:
        self._values = values
        self._empty_is_unset = empty_is_unset
        self.problems: list[str] = []

    def raw(self, name: str) -> str | None:
        """The text set for ``name``, or None when unset."""
        value = self._values.get(name)
        if value == "" and self._empty_is_unset:
            return None
        return value

    def value(self, name: str, parse: Callable[[str], T], default: T, accepted: str) -> T:
        """``parse(raw)``; a ValueError (its message says why) becomes a problem."""
        raw = self.raw(name)
        if raw is None:
            return default
        try:
            return parse(raw)
        except ValueError as error:
            self.problems.append(f"{name}={raw!r} {error}; accepted: {accepted}")
            return default

    def flag(self, name: str, default: bool) -> bool:
        return self.value(name, parse_bool, default, BOOL_ACCEPTED)

    def integer(self, name: str, default: int, minimum: int, maximum: int | None = None) -> int:
        return self.value(
            name,
            lambda raw: in_range(parse_int(raw), minimum, maximum),
            default,
            range_text(minimum, maximum),
        )

    def choice(self, name: str, default: str, choices: Collection[str]) -> str:
        def parse(raw: str) -> str:
            if raw not in choices:
                raise ValueError(_why("is not one of the accepted values", raw))
            return raw

        return self.value(name, parse, default, ", ".join(choices))

    def check(self) -> None:
        """Raise :class:`ConfigError` when any value read so far was refused."""
        if self.problems:
            raise ConfigError(self.problems)


@dataclass(frozen=True)
class IpamConfig:
    """The settings the warm-pool logic reads. ``max_eni`` None means the instance limit."""

    warm_eni_target: int = 1
    warm_ip_target: int = 0
    minimum_ip_target: int = 0
    warm_prefix_target: int = 1
    prefix_delegation: bool = False
    max_eni: int | None = None
    ip_cooldown_seconds: int = 30
    custom_networking: bool = False
    pod_eni: bool = False
    manage_enis_non_schedulable: bool = False
    ipv4: bool = True
    ipv6: bool = False
    subnet_discovery: bool = True
    """``ENABLE_SUBNET_DISCOVERY`` (upstream's default since 1.18): new ENIs may go to other
    subnets of the node's zone tagged ``kubernetes.io/role/cni`` (``vpccni.core.subnets``)."""
    eniconfig_label: str = DEFAULT_ENICONFIG_LABEL
    """``ENI_CONFIG_LABEL_DEF``: the node label naming its ENIConfig (custom networking)."""
    eniconfig_annotation: str = DEFAULT_ENICONFIG_LABEL
    """``ENI_CONFIG_ANNOTATION_DEF``: the node annotation naming it (read before the label)."""

    @property
    def mode(self) -> Mode:
        return Mode.PREFIX if self.prefix_delegation else Mode.SECONDARY_IP

    @property
    def warm_ip_targets_defined(self) -> bool:
        """WARM_IP_TARGET or MINIMUM_IP_TARGET set: IP-granular mode (upstream's rule)."""
        return self.warm_ip_target > 0 or self.minimum_ip_target > 0

    def warnings(self) -> list[str]:
        """Settings upstream's entry point refuses although ipamd's logic could run them."""
        found: list[str] = []
        if self.prefix_delegation and (
            self.warm_ip_target <= 0
            and self.warm_prefix_target <= 0
            and self.minimum_ip_target <= 0
        ):
            found.append(
                "prefix delegation with WARM_IP_TARGET, WARM_PREFIX_TARGET and MINIMUM_IP_TARGET "
                "all 0: upstream's entry point refuses to start; set WARM_PREFIX_TARGET=1 or a "
                "warm IP target"
            )
        if self.ipv4 == self.ipv6:
            found.append("exactly one of ENABLE_IPv4 and ENABLE_IPv6 must be true")
        return found


def refusals(config: IpamConfig) -> list[str]:
    """Why the daemon would refuse to start with ``config`` (empty when it would start)."""
    found = config.warnings()
    if config.ipv6:
        found.append("ENABLE_IPv6=true: IPv6 is not supported by this vpccni yet")
    if config.pod_eni:
        found.append("ENABLE_POD_ENI=true: security groups for pods are not supported")
    return found


def parse_ipam_config(env: Mapping[str, str]) -> IpamConfig:
    """Validate the IPAM variables in ``env``; unset ones take the shipped-manifest defaults."""
    reader = SettingsReader(env)
    config = read_ipam_config(reader)
    reader.check()
    return config


def read_ipam_config(reader: SettingsReader) -> IpamConfig:
    """The IPAM variables through ``reader`` (refused values are left in its problems)."""
    defaults = IpamConfig()
    return IpamConfig(
        warm_eni_target=reader.integer("WARM_ENI_TARGET", defaults.warm_eni_target, 0),
        warm_ip_target=reader.integer("WARM_IP_TARGET", defaults.warm_ip_target, 0),
        minimum_ip_target=reader.integer("MINIMUM_IP_TARGET", defaults.minimum_ip_target, 0),
        warm_prefix_target=reader.integer("WARM_PREFIX_TARGET", defaults.warm_prefix_target, 0),
        prefix_delegation=reader.flag("ENABLE_PREFIX_DELEGATION", defaults.prefix_delegation),
        max_eni=reader.value("MAX_ENI", _max_eni, defaults.max_eni, MAX_ENI_ACCEPTED),
        ip_cooldown_seconds=reader.integer(
            "IP_COOLDOWN_PERIOD", defaults.ip_cooldown_seconds, 0, MAX_COOLDOWN_SECONDS
        ),
        custom_networking=reader.flag(
            "AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG", defaults.custom_networking
        ),
        pod_eni=reader.flag("ENABLE_POD_ENI", defaults.pod_eni),
        manage_enis_non_schedulable=reader.flag(
            "AWS_MANAGE_ENIS_NON_SCHEDULABLE", defaults.manage_enis_non_schedulable
        ),
        ipv4=reader.flag("ENABLE_IPv4", defaults.ipv4),
        ipv6=reader.flag("ENABLE_IPv6", defaults.ipv6),
        subnet_discovery=reader.flag("ENABLE_SUBNET_DISCOVERY", defaults.subnet_discovery),
        eniconfig_label=reader.value(
            "ENI_CONFIG_LABEL_DEF", _qualified_name, defaults.eniconfig_label, QUALIFIED_ACCEPTED
        ),
        eniconfig_annotation=reader.value(
            "ENI_CONFIG_ANNOTATION_DEF",
            _qualified_name,
            defaults.eniconfig_annotation,
            QUALIFIED_ACCEPTED,
        ),
    )


QUALIFIED_ACCEPTED = (
    "a Kubernetes label or annotation key: an optional DNS prefix and '/', then a name of at most "
    "63 letters, digits, '-', '_' or '.' starting and ending with a letter or digit "
    "(e.g. k8s.amazonaws.com/eniConfig)"
)
_KEY_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?")
_KEY_PREFIX = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*")


def _qualified_name(raw: str) -> str:
    """A Kubernetes qualified name (label or annotation key), as the API server accepts it."""
    prefix, slash, name = raw.rpartition("/")
    if slash and (len(prefix) > 253 or not _KEY_PREFIX.fullmatch(prefix)):
        raise ValueError(_why("has a prefix that is not a DNS subdomain", raw))
    if not _KEY_NAME.fullmatch(name):
        raise ValueError(_why("is not a label or annotation key", raw))
    return raw


MAX_ENI_ACCEPTED = "1 or more, or -1 for the instance limit"
# Beyond an hour a released address is out of use so long that the pool must hold a second
# copy of every churned address; upstream accepts any integer (years included).
MAX_COOLDOWN_SECONDS = 3600


def capacity_warnings(config: IpamConfig, max_enis: int, addresses_per_eni: int) -> list[str]:
    """Targets the node can never reach with ``max_enis`` ENIs of ``addresses_per_eni``."""
    capacity = max_enis * addresses_per_eni
    cap = f"MAX_ENI={config.max_eni}" if config.max_eni is not None else "the instance's limit"
    found = []
    for name, value in (
        ("MINIMUM_IP_TARGET", config.minimum_ip_target),
        ("WARM_IP_TARGET", config.warm_ip_target),
    ):
        if value > capacity:
            found.append(
                f"{name}={value} is more than this node can ever hold: {max_enis} ENIs ({cap}) x "
                f"{addresses_per_eni} addresses = {capacity}; the pool stops at {capacity} - "
                f"lower {name}, or enable prefix delegation"
            )
    return found


def _max_eni(raw: str) -> int | None:
    value = parse_int(raw)
    if value == -1:
        return None
    if value < 1:
        raise ValueError("is out of range")
    return value
