"""Past versions of records, so a reader can see the world as it was ``lag`` seconds ago.

Owns :class:`History`: for each key (an ENI or instance id) the versions it had and the emulator
time each took effect; ``None`` marks deletion. ``prune(horizon)`` forgets versions superseded
before ``horizon``, keeping exactly what a reader at or after ``horizon`` can still ask for.
This is how the IMDS lags EC2: it reads ``at(key, now - lag)``; ``during(key, start, end)``
gives every version a key had in a window, for IMDS's partial views (addresses that linger after
an unassign, a MAC still listed after a detach, an ENI seen before its addresses).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class History(Generic[T]):
    """Time-stamped versions per key; versions of one key are recorded in time order."""

    def __init__(self) -> None:
        self._times: dict[str, list[float]] = {}
        self._values: dict[str, list[T | None]] = {}

    def record(self, key: str, at: float, value: T | None) -> None:
        times = self._times.setdefault(key, [])
        values = self._values.setdefault(key, [])
        if times and at < times[-1]:
            at = times[-1]
        if times and times[-1] == at:
            values[-1] = value
            return
        times.append(at)
        values.append(value)

    def at(self, key: str, when: float) -> T | None:
        """The version of ``key`` in force at ``when`` (None: absent or deleted then)."""
        times = self._times.get(key)
        if not times:
            return None
        index = bisect.bisect_right(times, when) - 1
        return None if index < 0 else self._values[key][index]

    def during(self, key: str, start: float, end: float) -> list[T | None]:
        """Every version of ``key`` in force at some time in [start, end], oldest first."""
        times = self._times.get(key)
        if not times:
            return []
        first = bisect.bisect_right(times, start) - 1
        last = bisect.bisect_right(times, end)
        found: list[T | None] = [None] if first < 0 else []
        found += self._values[key][max(first, 0) : last]
        return found

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._times))

    def prune(self, horizon: float) -> None:
        """Drop versions no reader at or after ``horizon`` can see."""
        for key in list(self._times):
            times = self._times[key]
            values = self._values[key]
            keep_from = max(bisect.bisect_right(times, horizon) - 1, 0)
            if keep_from:
                del times[:keep_from]
                del values[:keep_from]
            if len(values) == 1 and values[0] is None and times[0] <= horizon:
                del self._times[key]
                del self._values[key]
