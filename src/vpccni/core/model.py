"""Values of the IPAM model: pods, ENIs, CIDRs and assignments.

An ENI holds CIDRs: /32 secondary addresses in secondary-IP mode, /28 prefixes in prefix mode
(both kinds may coexist after the mode was switched; only the active kind is used). A pod
interface is identified by its CNI key (network name, container id, interface name) and holds at
most one address. Times are float seconds on the caller's clock; nothing here reads a clock.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

PREFIX_LENGTH = 28
ADDRESSES_PER_PREFIX = 16


class Mode(enum.Enum):
    """How the node gets pod addresses from EC2."""

    SECONDARY_IP = "secondary-ip"
    PREFIX = "prefix"

    @property
    def uses_prefixes(self) -> bool:
        return self is Mode.PREFIX


@dataclass(frozen=True, order=True)
class PodKey:
    """The CNI primary key of one pod interface."""

    network: str
    container_id: str
    ifname: str

    def __str__(self) -> str:
        return f"{self.network}/{self.container_id}/{self.ifname}"


@dataclass(frozen=True)
class PodMeta:
    """Who the pod is, for people and for stale-entry pruning; not part of the key."""

    namespace: str = ""
    name: str = ""


@dataclass(frozen=True)
class Assignment:
    """One address held by one pod interface since ``assigned_at``."""

    key: PodKey
    address: IPv4Address
    meta: PodMeta
    assigned_at: float


@dataclass(frozen=True)
class EniInfo:
    """The facts about an ENI that IPAM decisions depend on."""

    eni_id: str
    device_index: int
    primary: bool = False
    network_card: int = 0
    trunk: bool = False
    efa: bool = False
    excluded: bool = False
    created_at: float = 0.0


def is_prefix(cidr: IPv4Network) -> bool:
    """True for a /28 delegated prefix, False for a /32 secondary address."""
    return cidr.prefixlen == PREFIX_LENGTH


def cidr_kind_matches(cidr: IPv4Network, mode: Mode) -> bool:
    """Whether ``cidr`` is of the kind the active mode hands out."""
    return is_prefix(cidr) == mode.uses_prefixes
