"""Reconcile the datastore with the node's ENIs, as pure functions.

IMDS first, as upstream: ``imds_difference`` compares the pool with what the instance metadata
lists (free, local, no EC2 budget spent) and says why they differ, if they do. Only then is EC2
(DescribeNetworkInterfaces) read, and EC2 is the truth whenever it is consulted:
``plan_reconcile`` diffs the pool against it. IMDS alone never removes anything (its lag made
upstream release in-use addresses and forget in-use ENIs). Only ENIs attached to this instance on
network card 0 with attachment status ``attached`` count; ENIs tagged ``no_manage=true`` are left
alone. A CIDR this node released less than 60 s ago is neither re-added from EC2 (eventually
consistent) nor counted as a difference when stale IMDS data still lists it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Network

from vpccni.core.aws_types import TAG_NO_MANAGE, EniDescription, ImdsInterface
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


def cooling(cidr: IPv4Network, now: float, recently_released: Mapping[IPv4Network, float]) -> bool:
    """True while ``cidr``, released by this node, is inside the reconcile cooldown."""
    at = recently_released.get(cidr)
    return at is not None and now - at < RECONCILE_COOLDOWN_SECONDS


def imds_cidrs(interface: ImdsInterface) -> tuple[IPv4Network, ...]:
    """The secondary addresses (as /32s, the primary left out) and prefixes IMDS lists."""
    singles = tuple(IPv4Network((int(ip), 32)) for ip in interface.local_ipv4s[1:])
    return (*singles, *interface.ipv4_prefixes)


def imds_difference(
    current: Mapping[str, frozenset[IPv4Network]],
    interfaces: Sequence[ImdsInterface],
    now: float,
    recently_released: Mapping[IPv4Network, float],
    unmanaged: frozenset[str] | set[str] = frozenset(),
) -> str | None:
    """Why IMDS's view of the node differs from the pool, or None when it matches.

    Interfaces on other network cards and ENIs known to be unmanaged are ignored; a CIDR the
    node released within the cooldown does not count when IMDS still lists it (stale data).
    """
    listed = {i.eni_id: i for i in interfaces if i.network_card == 0 and i.eni_id not in unmanaged}
    for eni_id in sorted(listed.keys() - current.keys()):
        return f"{eni_id} is attached (IMDS) but not in the pool"
    for eni_id in sorted(current.keys() - listed.keys()):
        return f"{eni_id} is in the pool but IMDS does not list it"
    for eni_id, interface in sorted(listed.items()):
        shown = {c for c in imds_cidrs(interface) if not cooling(c, now, recently_released)}
        have = current[eni_id]
        if shown != have:
            return (
                f"{eni_id}: IMDS lists {len(shown - have)} CIDRs the pool lacks, "
                f"the pool has {len(have - shown)} IMDS does not list"
            )
    return None


def unmanaged_enis(truth: Sequence[EniDescription], instance_id: str) -> set[str]:
    """ENIs attached to this instance that the CNI leaves alone (see ``managed_enis``)."""
    managed = {eni.eni_id for eni in managed_enis(truth, instance_id)}
    return {
        eni.eni_id
        for eni in truth
        if eni.attachment is not None
        and eni.attachment.instance_id == instance_id
        and eni.attachment.status == "attached"
        and eni.eni_id not in managed
    }


def plan_reconcile(
    current: Mapping[str, frozenset[IPv4Network]],
    truth: Sequence[EniDescription],
    instance_id: str,
    now: float,
    recently_released: Mapping[IPv4Network, float] | None = None,
) -> ReconcilePlan:
    """The changes that make ``current`` (ENI id -> CIDRs) match EC2's ``truth``."""
    released = recently_released or {}
    managed = {eni.eni_id: eni for eni in managed_enis(truth, instance_id)}
    add_enis: list[tuple[EniInfo, tuple[IPv4Network, ...]]] = []
    add_cidrs: list[tuple[str, IPv4Network]] = []
    remove_cidrs: list[tuple[str, IPv4Network]] = []
    for eni_id, eni in sorted(managed.items()):
        wanted = {cidr for cidr in eni_cidrs(eni) if not cooling(cidr, now, released)}
        if eni_id not in current:
            add_enis.append((eni_info(eni, now), tuple(sorted(wanted))))
            continue
        have = current[eni_id]
        add_cidrs.extend((eni_id, cidr) for cidr in sorted(wanted - have))
        listed = set(eni_cidrs(eni))
        remove_cidrs.extend((eni_id, cidr) for cidr in sorted(have - listed))
    attaching = {
        eni.eni_id
        for eni in truth
        if eni.attachment is not None
        and eni.attachment.instance_id == instance_id
        and eni.attachment.status == "attaching"
    }  # still ours: never dropped while EC2 completes the attachment
    remove_enis = tuple(sorted(set(current) - set(managed) - attaching))
    return ReconcilePlan(tuple(add_enis), tuple(add_cidrs), tuple(remove_cidrs), remove_enis)
