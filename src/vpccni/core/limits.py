"""Instance limits: what an EC2 instance type allows the CNI to use, and lookup by name.

Owns the :class:`InstanceLimits` value (ENIs per network card, IPv4 addresses per ENI,
hypervisor, bare metal, trunking, vCPUs) and :class:`InstanceTable`, the validated set of all
known types with "did you mean" suggestions. Parsing works on an already-decoded document; reading
the shipped file is the job of ``vpccni.adapters.instance_data``.

The CNI's per-node ENI limit is the *default network card's* interface count (``enis``), not the
sum over all cards (``enis_all_cards``): upstream's max-pods tables and ipamd count card 0 only.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from vpccni.errors import UnknownInstanceType, VpccniError

SUPPORTED_FORMAT_VERSION = 1


@dataclass(frozen=True)
class NetworkCard:
    """One network card of an instance type and how many ENIs it can hold."""

    index: int
    max_interfaces: int


@dataclass(frozen=True)
class InstanceLimits:
    """The networking facts of one EC2 instance type that matter to the CNI."""

    instance_type: str
    enis: int
    enis_all_cards: int
    ipv4_per_eni: int
    default_network_card_index: int
    network_cards: tuple[NetworkCard, ...]
    hypervisor: str
    bare_metal: bool
    trunking: bool
    branch_interfaces: int
    vcpus: int | None

    @property
    def nitro(self) -> bool:
        """True when EC2 reports the Nitro hypervisor (bare metal reports none)."""
        return self.hypervisor == "nitro"

    @property
    def prefixes_allowed(self) -> bool:
        """EC2 (and so ipamd) allows /28 prefixes on Nitro instances and on bare metal."""
        return self.nitro or self.bare_metal

    @property
    def hypervisor_label(self) -> str:
        """The hypervisor as a person reads it: 'nitro', 'xen' or 'none (bare metal)'."""
        if self.hypervisor:
            return self.hypervisor
        return "none (bare metal)" if self.bare_metal else "unknown"

    @property
    def secondary_ipv4_per_eni(self) -> int:
        """Addresses per ENI a pod can get: all but the ENI's primary address."""
        return self.ipv4_per_eni - 1


class InstanceTable:
    """All known instance types, looked up by name with suggestions for near misses."""

    def __init__(self, limits: Mapping[str, InstanceLimits], provenance: Mapping[str, Any]):
        self._limits = dict(limits)
        self.provenance = provenance

    def __len__(self) -> int:
        return len(self._limits)

    def __iter__(self) -> Iterator[InstanceLimits]:
        return (self._limits[name] for name in sorted(self._limits))

    def __contains__(self, name: object) -> bool:
        return name in self._limits

    def get(self, name: str) -> InstanceLimits:
        """The limits of ``name`` (case and surrounding space ignored), or a helpful error."""
        key = name.strip().lower()
        found = self._limits.get(key)
        if found is None:
            raise UnknownInstanceType(name, len(self._limits), self.suggest(key))
        return found

    def suggest(self, name: str, count: int = 3) -> tuple[str, ...]:
        """Known names closest to ``name``, best first."""
        return tuple(difflib.get_close_matches(name, self._limits, n=count, cutoff=0.6))


def parse_instance_table(document: Mapping[str, Any]) -> InstanceTable:
    """Validate a decoded ``instance_limits.json`` document and build the table."""
    version = document.get("format_version")
    if version != SUPPORTED_FORMAT_VERSION:
        raise VpccniError(
            f"instance table has format_version {version!r}, this vpccni reads "
            f"{SUPPORTED_FORMAT_VERSION}; reinstall vpccni so its code and data match"
        )
    types = document["instance_types"]
    limits = {name: _parse_entry(name, entry) for name, entry in types.items()}
    return InstanceTable(limits, document.get("provenance", {}))


def _parse_entry(name: str, entry: Mapping[str, Any]) -> InstanceLimits:
    cards = tuple(NetworkCard(index, count) for index, count in entry["network_cards"])
    limits = InstanceLimits(
        instance_type=name,
        enis=int(entry["enis"]),
        enis_all_cards=int(entry["enis_all_cards"]),
        ipv4_per_eni=int(entry["ipv4_per_eni"]),
        default_network_card_index=int(entry["default_network_card_index"]),
        network_cards=cards,
        hypervisor=str(entry["hypervisor"]),
        bare_metal=bool(entry["bare_metal"]),
        trunking=bool(entry["trunking"]),
        branch_interfaces=int(entry["branch_interfaces"]),
        vcpus=None if entry["vcpus"] is None else int(entry["vcpus"]),
    )
    if limits.enis < 1 or limits.ipv4_per_eni < 1:
        raise VpccniError(f"instance table entry {name!r} has no usable ENIs or addresses")
    return limits
