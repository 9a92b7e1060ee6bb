"""The simulation's event queue: events in time order, ties in the order they were scheduled.

Events are plain tuples ``(time, sequence, kind, node, payload)`` on a binary heap; the sequence
number makes the order total, so a run is reproducible. Pure.
"""

from __future__ import annotations

import heapq
from typing import Any

Event = tuple[float, int, int, int, Any]


class EventQueue:
    """A min-heap of events keyed by (time, sequence)."""

    __slots__ = ("_heap", "_sequence")

    def __init__(self) -> None:
        self._heap: list[Event] = []
        self._sequence = 0

    def push(self, when: float, kind: int, node: int, payload: Any = None) -> None:
        self._sequence += 1
        heapq.heappush(self._heap, (when, self._sequence, kind, node, payload))

    def pop(self) -> Event:
        return heapq.heappop(self._heap)

    def peek_time(self) -> float:
        return self._heap[0][0]

    def __len__(self) -> int:
        return len(self._heap)
