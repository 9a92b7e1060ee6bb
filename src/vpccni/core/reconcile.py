"""Reconcile the datastore with the node's ENIs, as pure functions.

IMDS first, as upstream: ``imds_difference`` compares the pool with what the instance metadata
lists (free, local, no EC2 budget spent) and says why they differ, if they do. Only then is EC2
(DescribeNetworkInterfaces) read, and EC2 is the truth whenever it is consulted:
``plan_reconcile`` diffs the pool against it. IMDS alone never removes anything (its lag made
upstream release in-use addresses and forget in-use ENIs). Only ENIs attached to this instance on
network card 0 with attachment status ``attached`` count, and of those only the managed ones
(``managed``: upstream's rule with ``MANAGE_UNTAGGED_ENI``). A CIDR this node released less than
60 s ago is neither re-added from EC2 (eventually consistent) nor counted as a difference when
stale IMDS data still lists it. With ``ENABLE_IMDS_ONLY_MODE`` EC2 is never read: ``imds_truth``
stands in for its description (no tags, so no ENI is told apart by them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Network

from vpccni.core.aws_types import (
    TAG_INSTANCE_ID,
    TAG_NO_MANAGE,
    EniAttachment,
    EniDescription,
    ImdsInterface,
)
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


def managed(eni: EniDescription, instance_id: str, manage_untagged: bool = True) -> bool:
    """Upstream's rule for an ENI attached to this instance: the primary ENI always; else a
    ``no_manage`` tag decides (unmanaged iff exactly ``true``); else this instance's
    ``instance_id`` tag makes it managed; else ``MANAGE_UNTAGGED_ENI`` (``manage_untagged``)."""
    attachment = eni.attachment
    if attachment is not None and attachment.device_index == 0:
        return True
    no_manage = eni.tags.get(TAG_NO_MANAGE)
    if no_manage is not None:
        return no_manage != "true"
    if eni.tags.get(TAG_INSTANCE_ID) == instance_id:
        return True
    return manage_untagged


def managed_enis(
    truth: Sequence[EniDescription], instance_id: str, manage_untagged: bool = True
) -> list[EniDescription]:
    """The ENIs of this node the CNI manages: attached here, card 0, ``managed``."""
    found = []
    for eni in truth:
        attachment = eni.attachment
        if attachment is None or attachment.instance_id != instance_id:
            continue
        if attachment.status != "attached" or attachment.network_card != 0:
            continue
        if not managed(eni, instance_id, manage_untagged):
            continue
        found.append(eni)
    return found


def imds_truth(interfaces: Sequence[ImdsInterface], instance_id: str) -> list[EniDescription]:
    """The node's ENIs as IMDS lists them, shaped as EC2's description (``ENABLE_IMDS_ONLY_MODE``):
    attached to ``instance_id`` at their device number, no tags, no attachment id. An interface
    without an IPv4 address (EFA-only, as upstream) is left out."""
    found = []
    for interface in interfaces:
        primary = interface.primary_ip
        if primary is None:
            continue
        found.append(
            EniDescription(
                eni_id=interface.eni_id,
                subnet_id=interface.subnet_id,
                vpc_id=interface.vpc_id,
                status="in-use",
                primary_ip=primary,
                secondary_ips=interface.local_ipv4s[1:],
                prefixes=interface.ipv4_prefixes,
                mac=interface.mac,
                security_groups=interface.security_group_ids,
                attachment=EniAttachment(
                    "", instance_id, interface.device_number, interface.network_card
                ),
            )
        )
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


def unmanaged_enis(
    truth: Sequence[EniDescription], instance_id: str, manage_untagged: bool = True
) -> set[str]:
    """ENIs attached to this instance that the CNI leaves alone (see ``managed_enis``)."""
    ours = {eni.eni_id for eni in managed_enis(truth, instance_id, manage_untagged)}
    return {
        eni.eni_id
        for eni in truth
        if eni.attachment is not None
        and eni.attachment.instance_id == instance_id
        and eni.attachment.status == "attached"
        and eni.eni_id not in ours
    }


def unmanaged_slots(truth: Sequence[EniDescription], instance_id: str, unmanaged: set[str]) -> int:
    """How many of the ENI slots of network card 0 the ``unmanaged`` ENIs take (upstream:
    unmanaged ENIs are not in the pool but count against the ENI limit)."""
    return sum(
        1
        for eni in truth
        if eni.eni_id in unmanaged
        and eni.attachment is not None
        and eni.attachment.instance_id == instance_id
        and eni.attachment.network_card == 0
    )


def plan_reconcile(
    current: Mapping[str, frozenset[IPv4Network]],
    truth: Sequence[EniDescription],
    instance_id: str,
    now: float,
    recently_released: Mapping[IPv4Network, float] | None = None,
    *,
    manage_untagged: bool = True,
) -> ReconcilePlan:
    """The changes that make ``current`` (ENI id -> CIDRs) match EC2's ``truth``."""
    released = recently_released or {}
    ours = {eni.eni_id: eni for eni in managed_enis(truth, instance_id, manage_untagged)}
    add_enis: list[tuple[EniInfo, tuple[IPv4Network, ...]]] = []
    add_cidrs: list[tuple[str, IPv4Network]] = []
    remove_cidrs: list[tuple[str, IPv4Network]] = []
    for eni_id, eni in sorted(ours.items()):
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
    remove_enis = tuple(sorted(set(current) - set(ours) - attaching))
    return ReconcilePlan(tuple(add_enis), tuple(add_cidrs), tuple(remove_cidrs), remove_enis)
