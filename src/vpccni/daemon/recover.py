"""The datapath as a second ledger: pods the node's routes show but the checkpoint lost.

Owns :func:`adopt_routed_pods` (run by bootstrap after the checkpoint is restored, before the
datapath converges) and the ``--recover`` procedure (:func:`move_aside`, :func:`salvage`). A
pod's address is in use when the node's main table routes it (``<address>/32`` scope link) to an
up pod veth - the route ADD creates with rules 512 and 1536. Such an address is never handed to
another pod:

* the checkpoint's holder is wired to that veth: nothing to do;
* a salvaged record (``--recover``) names a pod whose veth is that veth: adopted under its key;
* otherwise: adopted as *held by an unknown pod* - a placeholder key ``vpccni:held-by-route /
  <veth> / eth0`` journaled like any assignment. The datapath wires it to that veth, so
  converge keeps the pod's route and rules, and it is released as soon as the veth is gone
  (converge at the next start, or the leaked-pod sweep). The pod's real key is not
  recoverable from the veth name alone (a hash of namespace and name).

An address routed to a veth but on none of this node's ENIs (EC2's view) cannot be handed out
here anyway; it is reported. Every step is logged; the counts come back as :class:`Adoption`.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

from vpccni.adapters.checkpoint_file import JOURNAL_NAME, SNAPSHOT_NAME, TEMP_SUFFIX
from vpccni.core.checkpoint import (
    AssignRecord,
    CheckpointCorrupt,
    CheckpointState,
    decode_record,
    decode_snapshot,
)
from vpccni.core.datastore import DatastoreError
from vpccni.core.model import Assignment, PodKey, PodMeta
from vpccni.daemon.service import IpamService

log = logging.getLogger("vpccni.ipamd")

HELD_BY_ROUTE = "vpccni:held-by-route"


def held_key(veth: str) -> PodKey:
    """The placeholder key of an address a pod veth routes but no checkpoint entry names."""
    return PodKey(HELD_BY_ROUTE, veth, "eth0")


def is_held_by_route(key: PodKey) -> bool:
    return key.network == HELD_BY_ROUTE


@dataclass
class Adoption:
    """What the cross-check found: each list holds one line per address, for logs and reports."""

    kept: int = 0
    adopted: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.kept} routed pods match the checkpoint, {len(self.adopted)} adopted with "
            f"their key, {len(self.held)} held for unknown pods, {len(self.replaced)} taken "
            f"from a checkpoint entry wired elsewhere, {len(self.foreign)} routed addresses on "
            "no attached ENI"
        )


def adopt_routed_pods(
    service: IpamService,
    routed: Mapping[IPv4Address, str],
    veth_of: Callable[[Assignment], str],
    hints: Sequence[Assignment] = (),
) -> Adoption:
    """Make every address ``routed`` (address -> up pod veth) held by the pod on that veth."""
    found = Adoption()
    hinted = {(a.address, veth_of(a)): a for a in hints}
    with service.lock:
        now = service.clock.now()
        holders = {a.address: a for a in service.datastore.assignments()}
        for address, veth in sorted(routed.items()):
            holder = holders.get(address)
            if holder is not None and veth_of(holder) == veth:
                found.kept += 1
                continue
            if holder is not None:
                service.delete(holder.key)
                found.replaced.append(
                    f"{address}: the checkpoint gave it to {holder.key}, but it is routed to "
                    f"{veth}; released from {holder.key}"
                )
            hint = hinted.get((address, veth))
            assignment = (
                Assignment(hint.key, address, hint.meta, hint.assigned_at)
                if hint is not None and service.datastore.lookup(hint.key) is None
                else Assignment(held_key(veth), address, PodMeta(), now)
            )
            try:
                stale = service.datastore.restore(CheckpointState({assignment.key: assignment}, {}))
            except DatastoreError as error:
                found.foreign.append(f"{address} (routed to {veth}) cannot be adopted: {error}")
                continue
            if stale:
                found.foreign.append(f"{address} (routed to {veth}) is on no attached ENI")
                continue
            service.store.append(AssignRecord(assignment))
            if is_held_by_route(assignment.key):
                found.held.append(f"{address}: held for the unknown pod on {veth}")
            else:
                found.adopted.append(f"{address}: adopted for {assignment.key} on {veth}")
    for line in [*found.replaced, *found.adopted, *found.held, *found.foreign]:
        log.warning("datapath cross-check: %s", line)
    return found


# -- --recover ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recovery:
    """``--recover``'s first step: where the damaged files went and what they still say."""

    aside: Path | None
    hints: tuple[Assignment, ...]
    notes: tuple[str, ...]


def prepare_recovery(directory: Path) -> Recovery:
    """Move the checkpoint files aside and salvage what they still say (run under the lock)."""
    aside = move_aside(directory) if directory.exists() else None
    if aside is None:
        return Recovery(None, (), ("no checkpoint files were found",))
    hints, notes = salvage(aside)
    return Recovery(aside, tuple(hints), tuple(notes))


def recovery_report(recovery: Recovery, adoption: Adoption, service: IpamService) -> list[str]:
    """What ``--recover`` could and could not recover, one line each (also kept beside the
    damaged files as RECOVERY.txt)."""
    held = {a.address: a for a in service.assignments()}
    enis = service.views()
    addresses = sum(IPv4Network(c.cidr).num_addresses for view in enis for c in view.cidrs)
    gone = [h for h in recovery.hints if (a := held.get(h.address)) is None or a.key != h.key]
    lines = [
        f"recover: the damaged files were moved to {recovery.aside}"
        if recovery.aside is not None
        else "recover: there were no checkpoint files to move aside",
        f"recover: EC2 - {len(enis)} ENIs with {addresses} pod addresses attached to this node",
        f"recover: salvaged {len(recovery.hints)} assignments from the readable parts; "
        + "; ".join(recovery.notes[:5])
        + (f" (+{len(recovery.notes) - 5} more)" if len(recovery.notes) > 5 else ""),
        f"recover: datapath - {adoption.summary()}",
        f"recover: recovered {len(adoption.adopted)} pods with their keys; "
        f"{len(adoption.held)} addresses stay held for pods whose key could not be recovered "
        "(released when their veth disappears)",
        f"recover: not recovered - {len(gone)} salvaged assignments have no live route to their "
        "pod's veth (pods gone since, or not wired yet: released); the cooldown start of every "
        "recently released address is lost (those addresses may be reused at once)",
    ]
    if recovery.aside is not None:
        (recovery.aside / "RECOVERY.txt").write_text("\n".join(lines) + "\n")
    return lines


def move_aside(directory: Path) -> Path | None:
    """Move the checkpoint files into ``<directory>/damaged-<time>/`` (None: there were none).

    Nothing is deleted: the operator (or :func:`salvage`) can still read them there.
    """
    names = [
        name
        for base in (SNAPSHOT_NAME, JOURNAL_NAME)
        for name in (base, base + TEMP_SUFFIX)
        if (directory / name).exists()
    ]
    if not names:
        return None
    aside = directory / time.strftime("damaged-%Y%m%dT%H%M%S")
    aside.mkdir()
    for name in names:
        os.replace(directory / name, aside / name)
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return aside


def salvage(aside: Path) -> tuple[list[Assignment], list[str]]:
    """Best effort: the assignments the readable parts of damaged files still name.

    The snapshot (when it decodes), then every journal line that passes its checksum, applied
    leniently (a later record wins over an earlier one for the same key or address); unreadable
    lines are skipped and reported. Only used as hints: an entry is adopted only when the node
    routes its address to that pod's veth, so a stale hint can never take an address.
    """
    notes: list[str] = []
    by_address: dict[IPv4Address, Assignment] = {}
    snapshot = aside / SNAPSHOT_NAME
    if snapshot.exists():
        try:
            by_address = {
                a.address: a
                for a in decode_snapshot(snapshot.read_bytes()).state.assignments.values()
            }
        except CheckpointCorrupt as error:
            notes.append(f"{SNAPSHOT_NAME} unreadable ({error.reason})")
    journal = aside / JOURNAL_NAME
    lines = journal.read_bytes().split(b"\n")[1:] if journal.exists() else []
    for number, line in enumerate(lines, start=2):
        if not line:
            continue
        try:
            record = decode_record(line)
        except CheckpointCorrupt as error:
            notes.append(f"{JOURNAL_NAME} line {number} skipped ({error.reason})")
            continue
        if isinstance(record, AssignRecord):
            key = record.assignment.key
            by_address = {k: a for k, a in by_address.items() if a.key != key}
            by_address[record.assignment.address] = record.assignment
        elif (held := by_address.get(record.address)) is not None and held.key == record.key:
            del by_address[record.address]
    return list(by_address.values()), notes
