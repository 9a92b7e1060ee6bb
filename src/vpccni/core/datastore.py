"""The IPAM datastore: ENIs, their CIDRs, and which pod holds which address.

Pure and in-memory; the caller passes ``now`` and makes every change durable (checkpoint) before
acknowledging it. Guarantees, checked by ``check_invariants`` in the property tests:

* an address is held by at most one pod interface, and only if it lies in a CIDR of a
  non-excluded ENI of the active kind at the time it was handed out;
* assign is idempotent per :class:`PodKey` (the same address comes back);
* a released address cools down for ``cooldown_seconds`` (cooling while ``now - released_at <=
  cooldown``, as upstream) and is never handed out meanwhile.

Addresses are chosen deterministically and *packed*: the ENI with the most assignments first,
then its fullest CIDR, then the lowest free address. Upstream picks by Go map order (random),
which spreads pods over ENIs and /28s so that none becomes freeable.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network

from vpccni.core.checkpoint import CheckpointState
from vpccni.core.model import (
    PREFIX_LENGTH,
    Assignment,
    EniInfo,
    Mode,
    PodKey,
    PodMeta,
    cidr_kind_matches,
)
from vpccni.core.pool_rules import CidrView, EniView
from vpccni.errors import VpccniError


class DatastoreError(VpccniError):
    """A datastore operation was refused; the datastore is unchanged."""


class NoAvailableAddress(DatastoreError):
    """The warm pool has no address to hand out right now."""


@dataclass
class _Cidr:
    network: IPv4Network
    assigned: dict[IPv4Address, Assignment] = field(default_factory=dict)


@dataclass
class _Eni:
    info: EniInfo
    cidrs: dict[IPv4Network, _Cidr] = field(default_factory=dict)

    @property
    def assigned(self) -> int:
        return sum(len(cidr.assigned) for cidr in self.cidrs.values())


class Datastore:
    """ENIs -> CIDRs -> addresses -> assignments, for one network card."""

    def __init__(self, mode: Mode, cooldown_seconds: float) -> None:
        self.mode = mode
        self.cooldown_seconds = cooldown_seconds
        self._enis: dict[str, _Eni] = {}
        self._by_key: dict[PodKey, Assignment] = {}
        self._owner: dict[IPv4Network, str] = {}
        self._released: dict[IPv4Address, float] = {}

    # -- ENIs and CIDRs -------------------------------------------------------------------------

    def add_eni(self, info: EniInfo) -> None:
        """Track a new ENI (no CIDRs yet)."""
        if info.eni_id in self._enis:
            raise DatastoreError(f"ENI {info.eni_id} is already in the datastore")
        self._enis[info.eni_id] = _Eni(info)

    def add_cidr(self, eni_id: str, cidr: IPv4Network) -> None:
        """Add a /32 secondary address or a /28 prefix to an ENI."""
        eni = self._eni(eni_id)
        if cidr.prefixlen not in (32, PREFIX_LENGTH):
            raise DatastoreError(f"{cidr} is neither a /32 address nor a /28 prefix")
        for other in self._owner:
            if other.overlaps(cidr):
                raise DatastoreError(f"{cidr} overlaps {other} on {self._owner[other]}")
        eni.cidrs[cidr] = _Cidr(cidr)
        self._owner[cidr] = eni_id

    def remove_cidr(
        self, eni_id: str, cidr: IPv4Network, *, force: bool = False
    ) -> list[Assignment]:
        """Remove a CIDR; refused while pods hold addresses in it unless ``force``.

        Returns the assignments a forced removal took away (their pods lost their address).
        """
        eni = self._eni(eni_id)
        entry = eni.cidrs.get(cidr)
        if entry is None:
            raise DatastoreError(f"{cidr} is not on ENI {eni_id}")
        if entry.assigned and not force:
            raise DatastoreError(f"{cidr} on {eni_id} is in use by {len(entry.assigned)} pod(s)")
        removed = list(entry.assigned.values())
        for assignment in removed:
            del self._by_key[assignment.key]
        for address in cidr:
            self._released.pop(address, None)
        del eni.cidrs[cidr]
        del self._owner[cidr]
        return removed

    def remove_eni(self, eni_id: str, *, force: bool = False) -> list[Assignment]:
        """Forget an ENI and its CIDRs; refused while pods use it unless ``force``."""
        eni = self._eni(eni_id)
        if eni.assigned and not force:
            raise DatastoreError(f"ENI {eni_id} is in use by {eni.assigned} pod(s)")
        removed: list[Assignment] = []
        for cidr in list(eni.cidrs):
            removed.extend(self.remove_cidr(eni_id, cidr, force=True))
        del self._enis[eni_id]
        return removed

    # -- pods -----------------------------------------------------------------------------------

    def assign(self, key: PodKey, meta: PodMeta, now: float) -> tuple[Assignment, bool]:
        """An address for ``key``: the one it holds already (False), or a new one (True)."""
        held = self._by_key.get(key)
        if held is not None:
            return held, False
        for cidr in self._packing_order():
            address = self._free_address(cidr.network, cidr, now)
            if address is not None:
                assignment = Assignment(key, address, meta, now)
                cidr.assigned[address] = assignment
                self._by_key[key] = assignment
                self._released.pop(address, None)
                return assignment, True
        raise NoAvailableAddress(
            f"no available {'prefix address' if self.mode.uses_prefixes else 'IP'} for {key}: "
            f"the warm pool is empty ({len(self._by_key)} assigned); the pool manager is growing "
            "it - retry shortly"
        )

    def release(self, key: PodKey, now: float) -> Assignment | None:
        """Release the address of ``key``; None when the key holds none (DEL is idempotent)."""
        assignment = self._by_key.pop(key, None)
        if assignment is None:
            return None
        cidr = self._cidr_of(assignment.address)
        del cidr.assigned[assignment.address]
        self._released[assignment.address] = now
        return assignment

    def release_address(self, address: IPv4Address, now: float) -> Assignment | None:
        """Release whichever pod holds ``address`` (DEL without the pod's key)."""
        for assignment in self._by_key.values():
            if assignment.address == address:
                return self.release(assignment.key, now)
        return None

    def undo_assign(self, assignment: Assignment) -> None:
        """Take back an assignment that could not be made durable (the address is free again)."""
        if self._by_key.get(assignment.key) != assignment:
            raise DatastoreError(f"{assignment.key} does not hold {assignment.address}")
        del self._by_key[assignment.key]
        del self._cidr_of(assignment.address).assigned[assignment.address]

    def undo_release(self, assignment: Assignment) -> None:
        """Give back a released address whose release could not be made durable."""
        if assignment.key in self._by_key or self._is_assigned(assignment.address):
            raise DatastoreError(f"cannot give {assignment.address} back to {assignment.key}")
        self._cidr_of(assignment.address).assigned[assignment.address] = assignment
        self._by_key[assignment.key] = assignment
        self._released.pop(assignment.address, None)

    def lookup(self, key: PodKey) -> Assignment | None:
        """The assignment of ``key``, if any."""
        return self._by_key.get(key)

    def eni_of(self, address: IPv4Address) -> EniInfo:
        """The ENI whose CIDR contains ``address``."""
        return self._enis[self._owner[self._network_of(address)]].info

    def is_cooling(self, address: IPv4Address, now: float) -> bool:
        """True while a released address may not be handed out again."""
        released = self._released.get(address)
        return released is not None and now - released <= self.cooldown_seconds

    # -- checkpoint -----------------------------------------------------------------------------

    def checkpoint_state(self) -> CheckpointState:
        """The durable part: assignments and cooldown start times."""
        return CheckpointState(dict(self._by_key), dict(self._released))

    def restore(self, state: CheckpointState) -> list[Assignment]:
        """Re-apply a checkpoint after ENIs and CIDRs were added; returns stale assignments.

        An assignment whose address is on no known CIDR is stale (its ENI or CIDR is gone) and
        is dropped; two pods on one address is an error, never resolved silently.
        """
        stale: list[Assignment] = []
        for assignment in sorted(state.assignments.values(), key=lambda a: a.key):
            network = self._network_of(assignment.address)
            if network not in self._owner:
                stale.append(assignment)
                continue
            cidr = self._enis[self._owner[network]].cidrs[network]
            if assignment.address in cidr.assigned or assignment.key in self._by_key:
                raise DatastoreError(
                    f"checkpoint gives {assignment.address} to {assignment.key}, but it conflicts "
                    "with another entry; the checkpoint file was left untouched - inspect it"
                )
            cidr.assigned[assignment.address] = assignment
            self._by_key[assignment.key] = assignment
        for address, released_at in state.cooldowns.items():
            if self._network_of(address) in self._owner and not self._is_assigned(address):
                self._released[address] = released_at
        return stale

    # -- views ----------------------------------------------------------------------------------

    def views(self, now: float) -> tuple[EniView, ...]:
        """Read-only views for the pool arithmetic and scaling decisions."""
        return tuple(
            EniView(
                eni.info,
                tuple(
                    CidrView(
                        str(network),
                        network.prefixlen == PREFIX_LENGTH,
                        len(cidr.assigned),
                        sum(
                            1
                            for address in _addresses(network)
                            if address not in cidr.assigned and self.is_cooling(address, now)
                        ),
                    )
                    for network, cidr in sorted(eni.cidrs.items())
                ),
            )
            for eni in sorted(self._enis.values(), key=lambda e: e.info.device_index)
        )

    def enis(self) -> tuple[EniInfo, ...]:
        return tuple(eni.info for eni in self._enis.values())

    def assignments(self) -> tuple[Assignment, ...]:
        return tuple(sorted(self._by_key.values(), key=lambda a: a.key))

    def check_invariants(self, now: float) -> None:
        """Raise AssertionError when an internal guarantee is broken (tests only)."""
        seen: set[IPv4Address] = set()
        for eni in self._enis.values():
            for network, cidr in eni.cidrs.items():
                assert self._owner[network] == eni.info.eni_id
                for address, assignment in cidr.assigned.items():
                    assert address in network
                    assert address not in seen
                    assert self._by_key[assignment.key] is assignment
                    seen.add(address)
        assert len(seen) == len(self._by_key)
        assert not any(self._is_assigned(a) for a in self._released)

    # -- internals ------------------------------------------------------------------------------

    def _eni(self, eni_id: str) -> _Eni:
        eni = self._enis.get(eni_id)
        if eni is None:
            raise DatastoreError(f"ENI {eni_id} is not in the datastore")
        return eni

    def _packing_order(self) -> Iterator[_Cidr]:
        enis = [eni for eni in self._enis.values() if not eni.info.excluded]
        enis.sort(key=lambda e: (-e.assigned, e.info.device_index, e.info.eni_id))
        for eni in enis:
            cidrs = [c for c in eni.cidrs.values() if cidr_kind_matches(c.network, self.mode)]
            cidrs.sort(key=lambda c: (-len(c.assigned), c.network))
            yield from cidrs

    def _free_address(self, network: IPv4Network, cidr: _Cidr, now: float) -> IPv4Address | None:
        for address in _addresses(network):
            if address not in cidr.assigned and not self.is_cooling(address, now):
                return address
        return None

    def _network_of(self, address: IPv4Address) -> IPv4Network:
        prefix = IPv4Network((int(address) & ~0xF, PREFIX_LENGTH))
        if prefix in self._owner:
            return prefix
        return IPv4Network((int(address), 32))

    def _cidr_of(self, address: IPv4Address) -> _Cidr:
        network = self._network_of(address)
        return self._enis[self._owner[network]].cidrs[network]

    def _is_assigned(self, address: IPv4Address) -> bool:
        network = self._network_of(address)
        owner = self._owner.get(network)
        return owner is not None and address in self._enis[owner].cidrs[network].assigned


def _addresses(network: IPv4Network) -> Iterator[IPv4Address]:
    """Every address of the CIDR, the /28's first and last included (as upstream)."""
    first = int(network.network_address)
    return (IPv4Address(first + offset) for offset in range(network.num_addresses))
