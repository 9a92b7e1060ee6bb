"""IPAM configuration from upstream's environment variable names, parsed in one place.

``parse_ipam_config`` takes a mapping (the environment, or the ``env`` of an explain snapshot)
and returns a validated :class:`IpamConfig`, or raises :class:`ConfigError` naming every bad
variable, its value and what is accepted. Upstream silently replaces a bad value with a default
(e.g. ``WARM_IP_TARGET=five`` means "not set"); vpccni refuses to start instead.

Unset variables take the values of upstream's shipped manifest (``aws-k8s-cni.yaml``), which is
what EKS users run: ``WARM_ENI_TARGET=1``, ``WARM_PREFIX_TARGET=1``, ``ENABLE_IPv4=true``,
prefix delegation off, ``IP_COOLDOWN_PERIOD=30``. An empty value counts as unset, as upstream.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from vpccni.core.model import Mode
from vpccni.errors import InvalidInput

T = TypeVar("T")

TRUE_WORDS = frozenset({"1", "t", "T", "TRUE", "true", "True"})
FALSE_WORDS = frozenset({"0", "f", "F", "FALSE", "false", "False"})
BOOL_ACCEPTED = "true/false (also 1/0, t/f, TRUE/FALSE, True/False)"


class ConfigError(InvalidInput):
    """One or more configuration variables are invalid; the message lists each of them."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__(
            "invalid configuration: " + "; ".join(problems) + ". Nothing was changed; fix the "
            "variable(s) and restart"
        )
        self.problems = tuple(problems)


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
    if config.custom_networking:
        found.append("AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG=true: not supported by this vpccni yet")
    if config.pod_eni:
        found.append("ENABLE_POD_ENI=true: security groups for pods are not supported")
    return found


def parse_ipam_config(env: Mapping[str, str]) -> IpamConfig:
    """Validate the IPAM variables in ``env``; unset ones take the shipped-manifest defaults."""
    problems: list[str] = []
    defaults = IpamConfig()

    def read(name: str, parse: Callable[[str, str], T], default: T) -> T:
        raw = env.get(name, "")
        if raw.strip() == "":
            return default
        try:
            return parse(name, raw.strip())
        except ValueError as error:
            problems.append(str(error))
            return default

    config = IpamConfig(
        warm_eni_target=read("WARM_ENI_TARGET", _non_negative_int, defaults.warm_eni_target),
        warm_ip_target=read("WARM_IP_TARGET", _non_negative_int, defaults.warm_ip_target),
        minimum_ip_target=read("MINIMUM_IP_TARGET", _non_negative_int, defaults.minimum_ip_target),
        warm_prefix_target=read(
            "WARM_PREFIX_TARGET", _non_negative_int, defaults.warm_prefix_target
        ),
        prefix_delegation=read("ENABLE_PREFIX_DELEGATION", _bool, defaults.prefix_delegation),
        max_eni=read("MAX_ENI", _max_eni, defaults.max_eni),
        ip_cooldown_seconds=read(
            "IP_COOLDOWN_PERIOD", _non_negative_int, defaults.ip_cooldown_seconds
        ),
        custom_networking=read(
            "AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG", _bool, defaults.custom_networking
        ),
        pod_eni=read("ENABLE_POD_ENI", _bool, defaults.pod_eni),
        manage_enis_non_schedulable=read(
            "AWS_MANAGE_ENIS_NON_SCHEDULABLE", _bool, defaults.manage_enis_non_schedulable
        ),
        ipv4=read("ENABLE_IPv4", _bool, defaults.ipv4),
        ipv6=read("ENABLE_IPv6", _bool, defaults.ipv6),
    )
    if problems:
        raise ConfigError(problems)
    return config


def _bool(name: str, raw: str) -> bool:
    if raw in TRUE_WORDS:
        return True
    if raw in FALSE_WORDS:
        return False
    raise ValueError(f"{name}={raw!r} is not a boolean; accepted: {BOOL_ACCEPTED}")


def _non_negative_int(name: str, raw: str) -> int:
    try:
        value = int(raw, 10)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not an integer; accepted: 0 or more") from None
    if value < 0:
        raise ValueError(f"{name}={raw!r} is negative; accepted: 0 or more")
    return value


def _max_eni(name: str, raw: str) -> int | None:
    try:
        value = int(raw, 10)
    except ValueError:
        raise ValueError(
            f"{name}={raw!r} is not an integer; accepted: 1 or more, or -1 for the instance limit"
        ) from None
    if value == -1:
        return None
    if value < 1:
        raise ValueError(
            f"{name}={raw!r} is out of range; accepted: 1 or more, or -1 for the instance limit"
        )
    return value
