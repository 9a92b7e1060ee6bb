"""The emulator's clock: real time plus an offset that the admin API can only push forward.

Owns :class:`EmulatorClock`. The model never reads it; the HTTP front reads ``now()`` once per
request and passes it in, so "advance the clock by N seconds" makes age-based behaviour
(attach/detach completion, IMDS lag, bucket refill, token expiry) testable without waiting.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from vpccni.emulator.errors import EmulatorSetupError


class EmulatorClock:
    """The emulator's clock: the wall clock plus an offset that only grows."""

    def __init__(self, offset: float = 0.0, wall: Callable[[], float] = time.time) -> None:
        self.offset = offset
        self._wall = wall

    def now(self) -> float:
        return self._wall() + self.offset

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise EmulatorSetupError("the emulator clock only moves forward; give seconds >= 0")
        self.offset += seconds
