"""Virtual time: a ``Clock`` whose ``sleep`` advances the clock instead of waiting.

One :class:`VirtualClock` per simulated node. The simulation sets it to the time of the event it
runs for that node; whatever the node's daemon code then sleeps (EC2 latency, retry backoff,
waiting for an attachment, its own API rate limits) moves that node's clock forward, so the
effects of a tick land when its calls would have finished. Pure: no real clock is read.
"""

from __future__ import annotations


class VirtualClock:
    """Implements ``vpccni.ports.Clock`` on virtual seconds."""

    __slots__ = ("_now",)

    def __init__(self, start: float = 0.0) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._now += seconds

    def set(self, when: float) -> None:
        """Move to ``when`` (never backwards: work in flight keeps its later time)."""
        self._now = max(self._now, when)
