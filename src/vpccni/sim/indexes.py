"""Indexed drop-ins for two emulator internals, so 1,000 nodes can share one emulator.

The emulator is written for tests and a handful of nodes: its
:class:`~vpccni.emulator.addressing.SubnetPool` chooses the lowest free address (or /28) by
scanning the subnet from its first address, and :meth:`Store.enis_of
<vpccni.emulator.store.Store.enis_of>` (used by every attach and DescribeInstances) scans every
ENI of the account. A simulated cluster holds tens of thousands of addresses and thousands of
ENIs, and those scans dominated the run time. :class:`IndexedSubnetPool` keeps lazy min-heaps of
candidate free addresses and free /28 blocks; :class:`IndexedStore` keeps instance -> ENI ids.
Both are subclasses that give exactly the original's answers (the lowest free ones, the same
errors; with a random-address ``rng`` the pool defers to the original); the simulator installs
them in its own emulator before creating anything. ``tests/planning/test_indexes.py`` checks
them against the originals on random sequences of operations.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable
from ipaddress import IPv4Network

from vpccni.emulator.addressing import (
    PREFIX_SIZE,
    SubnetPool,
    insufficient_addresses,
    insufficient_cidr_blocks,
)
from vpccni.emulator.records import Eni
from vpccni.emulator.store import LimitsSource, Store


class IndexedSubnetPool(SubnetPool):
    """``SubnetPool`` with O(log n) lowest-free choices.

    Two lazy min-heaps hold candidate free addresses and /28 bases (stale entries are dropped
    when met). Below a watermark every free candidate is in its heap (released ones are pushed
    back); above it nothing was ever handed out, and the heap is topped up a block at a time.
    """

    CHUNK = 256

    def __init__(self, cidr: IPv4Network) -> None:
        super().__init__(cidr)
        self._first = int(cidr.network_address)
        self._end = self._first + cidr.num_addresses
        self._free_addresses: list[int] = []
        self._free_blocks: list[int] = []
        self._address_mark = self._first
        self._block_mark = self._first - (self._first % PREFIX_SIZE)

    def choose_addresses(self, count: int, rng: random.Random | None = None) -> list[int]:
        if rng is not None:
            return super().choose_addresses(count, rng)
        if count <= 0:
            return []
        if count > self.available:
            raise insufficient_addresses()
        chosen = self._lowest(self._free_addresses, count, self.is_free, self._more_addresses)
        if len(chosen) < count:  # cannot happen while the index is complete; stay correct
            return super().choose_addresses(count, rng)
        return chosen

    def choose_prefixes(self, count: int, rng: random.Random | None = None) -> list[int]:
        if rng is not None:
            return super().choose_prefixes(count, rng)
        if count <= 0:
            return []
        chosen = self._lowest(self._free_blocks, count, self._block_free, self._more_blocks)
        if len(chosen) < count:
            if self.available == 0:
                raise insufficient_addresses()
            raise insufficient_cidr_blocks()
        return chosen

    def release_address(self, address: int) -> None:
        super().release_address(address)
        self._push_address(address)
        self._push_block(address - (address - self._first) % PREFIX_SIZE)

    def release_prefix(self, base: int) -> None:
        super().release_prefix(base)
        self._push_block(base)
        for address in range(base, base + PREFIX_SIZE):
            self._push_address(address)

    def _push_address(self, address: int) -> None:
        if address < self._address_mark:  # above the mark it is pushed when the mark passes
            heapq.heappush(self._free_addresses, address)

    def _push_block(self, base: int) -> None:
        if base < self._block_mark:
            heapq.heappush(self._free_blocks, base)

    def _more_addresses(self) -> bool:
        if self._address_mark >= self._end:
            return False
        top = min(self._address_mark + self.CHUNK, self._end)
        for address in range(self._address_mark, top):
            heapq.heappush(self._free_addresses, address)
        self._address_mark = top
        return True

    def _more_blocks(self) -> bool:
        if self._block_mark >= self._end:
            return False
        top = min(self._block_mark + self.CHUNK * PREFIX_SIZE, self._end)
        for base in range(self._block_mark, top, PREFIX_SIZE):
            heapq.heappush(self._free_blocks, base)
        self._block_mark = top
        return True

    def _block_free(self, base: int) -> bool:
        inside = self._first <= base and base + PREFIX_SIZE <= self._end
        return inside and base not in self._prefixes and not self._block_load.get(base, 0)

    @staticmethod
    def _lowest(
        heap: list[int], count: int, free: Callable[[int], bool], more: Callable[[], bool]
    ) -> list[int]:
        """Pop the ``count`` lowest free entries (topping the heap up), then put them back."""
        chosen: list[int] = []
        while len(chosen) < count:
            if not heap and not more():
                break
            candidate = heapq.heappop(heap)
            if (not chosen or candidate != chosen[-1]) and free(candidate):
                chosen.append(candidate)
        for candidate in chosen:
            heapq.heappush(heap, candidate)
        return chosen


class IndexedStore(Store):
    """``Store`` with an index of the ENIs attached to each instance."""

    def __init__(self, limits: LimitsSource, region: str, rng: random.Random | None) -> None:
        super().__init__(limits, region, rng)
        self._attached: dict[str, set[str]] = {}
        self.caller_lag = 0.0

    def schedule(self, due: float, kind: str, eni_id: str, attachment_id: str) -> None:
        """An attachment completes its delay after the *calling node* asked.

        The shared model's time is the latest of all nodes' clocks; a node whose clock is behind
        it by ``caller_lag`` asked that much earlier, so its attach or detach is due that much
        sooner (at the model's present at the latest), as it would be on that node's own EC2.
        """
        delay = self.delays.attach if kind == "attached" else self.delays.detach
        super().schedule(due - min(self.caller_lag, delay), kind, eni_id, attachment_id)

    def put_eni(self, eni: Eni, at: float) -> None:
        self._unindex(eni.eni_id)
        super().put_eni(eni, at)
        if eni.attachment is not None:
            self._attached.setdefault(eni.attachment.instance_id, set()).add(eni.eni_id)

    def drop_eni(self, eni_id: str, at: float) -> None:
        self._unindex(eni_id)
        super().drop_eni(eni_id, at)

    def _unindex(self, eni_id: str) -> None:
        old = self.enis.get(eni_id)
        if old is not None and old.attachment is not None:
            self._attached.get(old.attachment.instance_id, set()).discard(eni_id)

    def enis_of(self, instance_id: str) -> list[Eni]:
        found = [self.enis[eni_id] for eni_id in self._attached.get(instance_id, ())]
        return sorted(
            found,
            key=lambda eni: (
                eni.attachment.network_card_index if eni.attachment else 0,
                eni.attachment.device_index if eni.attachment else 0,
            ),
        )
