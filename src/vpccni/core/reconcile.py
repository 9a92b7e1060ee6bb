"""Reconcile the datastore with EC2's view of the node, as a pure diff.

EC2 (DescribeNetworkInterfaces) is the truth, not IMDS: upstream reconciled from IMDS, whose
lag made it release in-use addresses and forget in-use ENIs. Only ENIs attached to this
instance on network card 0 with attachment status ``attached`` count; ENIs tagged
``no_manage=true`` are left alone. A CIDR this node released less than 60 s ago is not re-added
even if EC2 still lists it (EC2 is eventually consistent).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Network

from vpccni.core.cloud import TAG_NO_MANAGE, EniDescription
from vpccni.core.model import EniInfo

RECONCILE_COOLDOWN_SECONDS = 60.0


@dataclass(frozen=True)
class ReconcilePlan:
    """What to change so the datastore matches EC2."""

    add_enis: tuple[tuple[EniInfo, tuple[IPv4Network, ...]], ...] = ()
    add_cidrs: tuple[tuple[str, IPv4Network], ...] = ()
    remove_cidrs: tuple[tuple[str, IPv4Network], ...] = ()
    remove_enis: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.add_enis or self.add_cidrs or self.remove_cidrs or self.remove_enis)


def managed_enis(truth: Sequence[EniDescription], instance_id: str) -> list[EniDescription]:
    """The ENIs of this node the CNI manages: attached here, card 0, not ``no_manage``."""
    found = []
    for eni in truth:
        attachment = eni.attachment
        if attachment is None or attachment.instance_id != instance_id:
            continue
        if attachment.status != "attached" or attachment.network_card != 0:
            continue
        if eni.tags.get(TAG_NO_MANAGE) == "true" and attachment.device_index != 0:
            continue
        found.append(eni)
    return found


def eni_cidrs(eni: EniDescription) -> tuple[IPv4Network, ...]:
    """The ENI's secondary addresses as /32s and its prefixes as /28s (not its primary)."""
    singles = tuple(IPv4Network((int(ip), 32)) for ip in eni.secondary_ips)
    return (*singles, *eni.prefixes)


def eni_info(eni: EniDescription, now: float) -> EniInfo:
    """The datastore's view of a described ENI, joining the pool at ``now``."""
    attachment = eni.attachment
    device = attachment.device_index if attachment else 0
    return EniInfo(
        eni_id=eni.eni_id,
        device_index=device,
        primary=device == 0,
        network_card=attachment.network_card if attachment else 0,
        trunk=eni.interface_type == "trunk",
        efa=eni.interface_type == "efa",
        created_at=now,
    )


def plan_reconcile(
    current: Mapping[str, frozenset[IPv4Network]],
    truth: Sequence[EniDescription],
    instance_id: str,
    now: float,
    recently_released: Mapping[IPv4Network, float] | None = None,
) -> ReconcilePlan:
    """The changes that make ``current`` (ENI id -> CIDRs) match EC2's ``truth``."""
    released = recently_released or {}

    def cooling(cidr: IPv4Network) -> bool:
        at = released.get(cidr)
        return at is not None and now - at < RECONCILE_COOLDOWN_SECONDS

    managed = {eni.eni_id: eni for eni in managed_enis(truth, instance_id)}
    add_enis: list[tuple[EniInfo, tuple[IPv4Network, ...]]] = []
    add_cidrs: list[tuple[str, IPv4Network]] = []
    remove_cidrs: list[tuple[str, IPv4Network]] = []
    for eni_id, eni in sorted(managed.items()):
        wanted = {cidr for cidr in eni_cidrs(eni) if not cooling(cidr)}
        if eni_id not in current:
            add_enis.append((eni_info(eni, now), tuple(sorted(wanted))))
            continue
        have = current[eni_id]
        add_cidrs.extend((eni_id, cidr) for cidr in sorted(wanted - have))
        listed = set(eni_cidrs(eni))
        remove_cidrs.extend((eni_id, cidr) for cidr in sorted(have - listed))
    remove_enis = tuple(sorted(set(current) - set(managed)))
    return ReconcilePlan(tuple(add_enis), tuple(add_cidrs), tuple(remove_cidrs), remove_enis)
