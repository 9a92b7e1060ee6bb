"""Retry with exponential backoff and jitter, on an injected clock and random source."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from vpccni.ports import Clock

T = TypeVar("T")


@dataclass(frozen=True)
class Backoff:
    """``attempts`` tries; waits ``base * 2**n`` capped at ``cap``, +/- ``jitter`` fraction."""

    attempts: int = 5
    base: float = 0.2
    cap: float = 10.0
    jitter: float = 0.15

    def delay(self, attempt: int, rng: random.Random) -> float:
        """The wait after failed attempt number ``attempt`` (0-based)."""
        wait = min(self.cap, self.base * 2.0**attempt)
        return wait * (1 + rng.uniform(-self.jitter, self.jitter))


def retry(
    action: Callable[[], T],
    *,
    backoff: Backoff,
    clock: Clock,
    rng: random.Random,
    retry_on: tuple[type[Exception], ...],
) -> T:
    """Run ``action`` until it succeeds or the attempts are used up (the last error is raised)."""
    for attempt in range(backoff.attempts):
        try:
            return action()
        except retry_on:
            if attempt == backoff.attempts - 1:
                raise
            clock.sleep(backoff.delay(attempt, rng))
    raise AssertionError("unreachable: Backoff.attempts must be at least 1")
