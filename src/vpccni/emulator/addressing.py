"""Address bookkeeping of one subnet: single addresses, /28 prefixes, AWS's reserved five.

Owns :class:`SubnetPool`. Like AWS, a subnet reserves its first four addresses and its last one;
every other address is free, taken as a single (primary or secondary) address, or covered by a
/28 prefix. Prefixes are /28-aligned, never overlap each other, a single address or a reserved
one. ``available`` is EC2's ``AvailableIpAddressCount``. Choosing addresses is deterministic:
lowest first, or pseudo-random from a caller-supplied seeded ``random.Random`` (real EC2 scatters
addresses, which is what fragments a subnet for prefix delegation).
"""

from __future__ import annotations

import random
from ipaddress import IPv4Address, IPv4Network

from vpccni.emulator.errors import Ec2Error, invalid_parameter

PREFIX_SIZE = 16
PREFIX_LENGTH = 28
RESERVED_AT_START = 4
RESERVED_AT_END = 1
RANDOM_PROBES = 64


def insufficient_addresses() -> Ec2Error:
    return Ec2Error(
        "InsufficientFreeAddressesInSubnet",
        "The specified subnet does not have enough free addresses to satisfy the request.",
    )


def insufficient_cidr_blocks() -> Ec2Error:
    return Ec2Error(
        "InsufficientCidrBlocks",
        "The specified subnet does not have enough free cidr blocks to satisfy the request.",
    )


class SubnetPool:
    """Taken addresses and prefixes of one subnet; refuses what EC2 would refuse."""

    def __init__(self, cidr: IPv4Network) -> None:
        self.cidr = cidr
        self._first = int(cidr.network_address)
        self._size = cidr.num_addresses
        last = self._first + self._size - 1
        self._reserved = {*range(self._first, self._first + RESERVED_AT_START), last}
        self._singles: set[int] = set()
        self._prefixes: set[int] = set()
        self._block_load: dict[int, int] = {}
        for address in self._reserved:
            self._load(address, 1)

    # -- queries ------------------------------------------------------------------------------

    @property
    def usable(self) -> int:
        """Addresses a subnet of this size can ever hand out."""
        return max(self._size - RESERVED_AT_START - RESERVED_AT_END, 0)

    @property
    def available(self) -> int:
        """EC2's AvailableIpAddressCount."""
        return self.usable - len(self._singles) - PREFIX_SIZE * len(self._prefixes)

    @property
    def singles(self) -> frozenset[int]:
        return frozenset(self._singles)

    @property
    def prefixes(self) -> frozenset[int]:
        return frozenset(self._prefixes)

    def is_reserved(self, address: int) -> bool:
        return address in self._reserved

    def is_free(self, address: int) -> bool:
        """True when ``address`` lies in the subnet and nothing holds it."""
        return (
            self._first <= address < self._first + self._size
            and address not in self._reserved
            and address not in self._singles
            and self._block(address) not in self._prefixes
        )

    # -- choosing -----------------------------------------------------------------------------

    def choose_addresses(self, count: int, rng: random.Random | None = None) -> list[int]:
        """``count`` free single addresses (not taken yet), or InsufficientFreeAddresses."""
        if count <= 0:
            return []
        if count > self.available:
            raise insufficient_addresses()
        chosen: list[int] = []
        if rng is not None:
            for _ in range(RANDOM_PROBES * count):
                candidate = self._first + rng.randrange(self._size)
                if self.is_free(candidate) and candidate not in chosen:
                    chosen.append(candidate)
                    if len(chosen) == count:
                        return chosen
        for candidate in range(self._first, self._first + self._size):
            if self.is_free(candidate) and candidate not in chosen:
                chosen.append(candidate)
                if len(chosen) == count:
                    break
        return chosen

    def choose_prefixes(self, count: int, rng: random.Random | None = None) -> list[int]:
        """Bases of ``count`` wholly free aligned /28 blocks, or InsufficientCidrBlocks."""
        if count <= 0:
            return []
        free = [
            base
            for base in range(self._first, self._first + self._size, PREFIX_SIZE)
            if base not in self._prefixes and not self._block_load.get(base, 0)
        ]
        if len(free) < count:
            if self.available == 0:
                raise insufficient_addresses()
            raise insufficient_cidr_blocks()
        if rng is not None:
            return sorted(rng.sample(free, count))
        return free[:count]

    # -- validating explicit requests --------------------------------------------------------

    def check_address(self, address: int) -> None:
        """Refuse an explicitly requested single address EC2 would not hand out."""
        text = str(IPv4Address(address))
        if not self._first <= address < self._first + self._size:
            raise invalid_parameter(
                f"Address {text} does not fall within the subnet's address range"
            )
        if address in self._reserved:
            raise invalid_parameter(f"Address {text} is reserved by AWS in subnet {self.cidr}")
        if address in self._singles or self._block(address) in self._prefixes:
            raise Ec2Error("InvalidIPAddress.InUse", f"Address {text} is in use.")

    def check_prefix(self, prefix: IPv4Network) -> None:
        """Refuse an explicitly requested /28 that is misaligned, outside, or overlapping.

        EC2 does not document the code for an overlapping prefix; InvalidParameterValue is used.
        """
        if prefix.prefixlen != PREFIX_LENGTH or not prefix.subnet_of(self.cidr):
            raise invalid_parameter(
                f"Prefix {prefix} is not a /28 within the subnet's CIDR {self.cidr}"
            )
        base = int(prefix.network_address)
        if base in self._prefixes or self._block_load.get(base, 0):
            raise invalid_parameter(
                f"Prefix {prefix} overlaps addresses that are reserved or in use"
            )

    # -- taking and releasing -----------------------------------------------------------------

    def take_address(self, address: int) -> None:
        self.check_address(address)
        self._singles.add(address)
        self._load(address, 1)

    def take_prefix(self, base: int) -> None:
        self.check_prefix(IPv4Network((base, PREFIX_LENGTH)))
        self._prefixes.add(base)

    def release_address(self, address: int) -> None:
        if address in self._singles:
            self._singles.remove(address)
            self._load(address, -1)

    def release_prefix(self, base: int) -> None:
        self._prefixes.discard(base)

    # -- internals ----------------------------------------------------------------------------

    def _block(self, address: int) -> int:
        return self._first + (address - self._first) // PREFIX_SIZE * PREFIX_SIZE

    def _load(self, address: int, delta: int) -> None:
        block = self._block(address)
        self._block_load[block] = self._block_load.get(block, 0) + delta
