"""The ports the pool engine needs beyond EC2 and IMDS: the pool ledger and the link check.

The link check is told when an ENI joins the pool (configure its host networking first) and
when it leaves it (freed, or dropped because EC2 detached it): nothing of it may stay on the
host, or a pod later given its primary address would follow its rule out of the wrong link.

:class:`PoolLedger` is the node's record of ENIs, CIDRs and pods as the engine changes it. The
daemon's ledger is durable and applies a change at once; the simulator's records what EC2 added
with the node's clock and applies it when those calls would have finished. Removals are always
applied at once and never touch a CIDR or ENI a pod uses, unless forced (EC2 no longer has it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from ipaddress import IPv4Address, IPv4Network
from typing import Protocol

from vpccni.core.model import EniInfo
from vpccni.core.pool_rules import EniView


class PoolLedger(Protocol):
    """ENIs -> CIDRs -> pods of one node, as the engine reads and changes them."""

    def views(self, now: float) -> tuple[EniView, ...]:
        """The pool as ``plan_scaling`` reads it."""
        ...

    def cidrs_by_eni(self) -> Mapping[str, frozenset[IPv4Network]]:
        """Every ENI the pool knows and its CIDRs (for reconcile)."""
        ...

    def add_eni(self, info: EniInfo, cidrs: Iterable[IPv4Network]) -> None:
        """A new ENI with the CIDRs EC2 gave it."""
        ...

    def add_cidrs(self, eni_id: str, cidrs: Iterable[IPv4Network]) -> None:
        """CIDRs EC2 assigned to a known ENI (known ones are ignored)."""
        ...

    def remove_unused_cidrs(self, eni_id: str, cidrs: Iterable[IPv4Network]) -> list[IPv4Network]:
        """Remove the CIDRs no pod uses; returns those removed."""
        ...

    def remove_unused_eni(self, eni_id: str) -> bool:
        """Forget an ENI no pod uses; False when one does (or it is unknown)."""
        ...

    def force_remove_cidr(self, eni_id: str, cidr: IPv4Network) -> int:
        """EC2 no longer has ``cidr``: drop it; returns how many pods lost their address."""
        ...

    def force_remove_eni(self, eni_id: str) -> int:
        """EC2 no longer attaches the ENI here: drop it; returns how many pods lost theirs."""
        ...


class LinkCheck(Protocol):
    """The datapath's side of an ENI: its host networking (link, table, routes, rule)."""

    def eni_ready(self, mac: str, primary_ip: IPv4Address, device_index: int) -> bool:
        """Configure the ENI's host networking; False while that is not possible yet."""
        ...

    def eni_removed(self, mac: str, primary_ip: IPv4Address, device_index: int) -> bool:
        """The ENI left the pool: delete its host networking. False when something could not
        be deleted yet (the datapath logs, counts and retries it)."""
        ...
