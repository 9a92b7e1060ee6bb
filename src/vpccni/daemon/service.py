"""The IPAM service: the datastore behind one lock, every pod change durable before it returns.

Owns the node's :class:`Datastore` and its checkpoint store. Pod requests (``add``, ``delete``,
``gc``) never call EC2; they take the lock, change the datastore, append the matching checkpoint
record (fsync) and only then return - if the write fails the change is undone and the caller
gets the error. The pool loop and reconcile use the ``*_cidrs`` / ``*_eni`` methods, which also
journal the releases of pods that lose their address to a forced removal.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

from vpccni.core.checkpoint import AssignRecord, ReleaseRecord
from vpccni.core.datastore import Datastore
from vpccni.core.model import Assignment, EniInfo, PodKey, PodMeta
from vpccni.core.pool_rules import EniView
from vpccni.engine.datastore_ledger import DatastoreLedger
from vpccni.ports import CheckpointStore, Clock


@dataclass(frozen=True)
class AddOutcome:
    """An address for a pod, and the ENI it lives on."""

    assignment: Assignment
    eni: EniInfo
    created: bool


class IpamService:
    """Thread-safe, durable pod address management for one node."""

    def __init__(
        self,
        datastore: Datastore,
        store: CheckpointStore,
        clock: Clock,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.datastore = datastore
        self.store = store
        self.clock = clock
        self.lock = threading.RLock()
        self._on_change = on_change

    # -- pods -----------------------------------------------------------------------------------

    def add(self, key: PodKey, meta: PodMeta) -> AddOutcome:
        """The pod's address (the same one again for a repeated ADD); durable on return."""
        with self.lock:
            assignment, created = self.datastore.assign(key, meta, self.clock.now())
            if created:
                try:
                    self.store.append(AssignRecord(assignment))
                except Exception:
                    self.datastore.undo_assign(assignment)
                    raise
                self._on_change()
            return AddOutcome(assignment, self.datastore.eni_of(assignment.address), created)

    def delete(self, key: PodKey, addresses: Sequence[IPv4Address] = ()) -> Assignment | None:
        """Release the pod's address. Idempotent.

        When the key holds nothing, an address from ``addresses`` (the runtime's prevResult) is
        released only if the same container holds it under another interface name: an address
        that has meanwhile gone to another pod is never taken from it.
        """
        with self.lock:
            now = self.clock.now()
            released = self.datastore.release(key, now)
            if released is None:
                for address in addresses:
                    held = self._holder(address)
                    if held is not None and (held.key.network, held.key.container_id) == (
                        key.network,
                        key.container_id,
                    ):
                        released = self.datastore.release(held.key, now)
                        break
            if released is None:
                return None
            try:
                self.store.append(ReleaseRecord(released.key, released.address, now))
            except Exception:
                self.datastore.undo_release(released)
                raise
            self._on_change()
            return released

    def lookup(self, key: PodKey) -> Assignment | None:
        with self.lock:
            return self.datastore.lookup(key)

    def gc(self, network: str, valid: Iterable[tuple[str, str]]) -> list[Assignment]:
        """Release every assignment of ``network`` whose (container id, ifname) is not valid."""
        keep = set(valid)
        with self.lock:
            stale = [
                a
                for a in self.datastore.assignments()
                if a.key.network == network and (a.key.container_id, a.key.ifname) not in keep
            ]
            return [r for a in stale if (r := self.delete(a.key)) is not None]

    def assignments(self) -> tuple[Assignment, ...]:
        with self.lock:
            return self.datastore.assignments()

    # -- pool -----------------------------------------------------------------------------------

    def views(self) -> tuple[EniView, ...]:
        with self.lock:
            return self.datastore.views(self.clock.now())

    def add_eni(self, info: EniInfo, cidrs: Iterable[IPv4Network] = ()) -> None:
        """Track a new ENI with its CIDRs."""
        with self.lock:
            DatastoreLedger(self.datastore).add_eni(info, cidrs)
            self._on_change()

    def add_cidrs(self, eni_id: str, cidrs: Iterable[IPv4Network]) -> None:
        """Add CIDRs EC2 assigned to a known ENI (ones it already has are ignored)."""
        with self.lock:
            DatastoreLedger(self.datastore).add_cidrs(eni_id, cidrs)
            self._on_change()

    def cidrs_by_eni(self) -> Mapping[str, frozenset[IPv4Network]]:
        """Every ENI and its CIDRs (for reconcile)."""
        with self.lock:
            return DatastoreLedger(self.datastore).cidrs_by_eni()

    def remove_unused_cidrs(self, eni_id: str, cidrs: Iterable[IPv4Network]) -> list[IPv4Network]:
        """Remove the CIDRs no pod uses (a pod may have taken one since the decision)."""
        with self.lock:
            removed = DatastoreLedger(self.datastore).remove_unused_cidrs(eni_id, cidrs)
            self._on_change()
        return removed

    def remove_unused_eni(self, eni_id: str) -> bool:
        """Forget an ENI if no pod uses it; False when one does (or it is unknown)."""
        with self.lock:
            removed = DatastoreLedger(self.datastore).remove_unused_eni(eni_id)
            if removed:
                self._on_change()
            return removed

    def force_remove_cidr(self, eni_id: str, cidr: IPv4Network) -> list[Assignment]:
        """EC2 no longer has ``cidr`` on the ENI: drop it, releasing (durably) any pods on it."""
        with self.lock:
            lost = self.datastore.remove_cidr(eni_id, cidr, force=True)
            self._journal_lost(lost)
            return lost

    def force_remove_eni(self, eni_id: str) -> list[Assignment]:
        """EC2 says the ENI is gone: drop it, releasing (durably) any pods on it."""
        with self.lock:
            lost = self.datastore.remove_eni(eni_id, force=True)
            self._journal_lost(lost)
            return lost

    def _journal_lost(self, lost: Sequence[Assignment]) -> None:
        now = self.clock.now()
        for assignment in lost:
            self.store.append(ReleaseRecord(assignment.key, assignment.address, now))
        self._on_change()

    def _holder(self, address: IPv4Address) -> Assignment | None:
        return next((a for a in self.datastore.assignments() if a.address == address), None)
