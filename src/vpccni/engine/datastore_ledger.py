"""The engine's ledger port over a plain core :class:`Datastore` (no checkpoint, no lock).

For callers that keep the pool in memory only: the planner's convergence and tests. The daemon
uses its durable IPAM service instead (``vpccni.daemon.pool_manager.ServiceLedger``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from ipaddress import IPv4Network

from vpccni.core.datastore import Datastore, DatastoreError
from vpccni.core.model import EniInfo
from vpccni.core.pool_rules import EniView


class DatastoreLedger:
    """Implements :class:`vpccni.engine.PoolLedger` over a datastore."""

    def __init__(self, store: Datastore) -> None:
        self.store = store

    def views(self, now: float) -> tuple[EniView, ...]:
        return self.store.views(now)

    def cidrs_by_eni(self) -> Mapping[str, frozenset[IPv4Network]]:
        return {
            view.eni_id: frozenset(IPv4Network(c.cidr) for c in view.cidrs)
            for view in self.store.views(0.0)
        }

    def add_eni(self, info: EniInfo, cidrs: Iterable[IPv4Network]) -> None:
        self.store.add_eni(info)
        for cidr in cidrs:
            self.store.add_cidr(info.eni_id, cidr)

    def add_cidrs(self, eni_id: str, cidrs: Iterable[IPv4Network]) -> None:
        have = self.cidrs_by_eni().get(eni_id, frozenset())
        for cidr in cidrs:
            if cidr not in have:
                self.store.add_cidr(eni_id, cidr)

    def remove_unused_cidrs(self, eni_id: str, cidrs: Iterable[IPv4Network]) -> list[IPv4Network]:
        removed = []
        for cidr in cidrs:
            try:
                self.store.remove_cidr(eni_id, cidr)
            except DatastoreError:
                continue
            removed.append(cidr)
        return removed

    def remove_unused_eni(self, eni_id: str) -> bool:
        try:
            self.store.remove_eni(eni_id)
        except DatastoreError:
            return False
        return True

    def force_remove_cidr(self, eni_id: str, cidr: IPv4Network) -> int:
        return len(self.store.remove_cidr(eni_id, cidr, force=True))

    def force_remove_eni(self, eni_id: str) -> int:
        return len(self.store.remove_eni(eni_id, force=True))
