"""Pod churn from a scenario's workload: Poisson arrivals, lifetimes, bursts, node scale-out.

Each node draws from its own seeded ``random.Random`` (seed and node number), so a node's pods
do not depend on what other nodes did and a run is reproducible for a given seed. Times are
seconds on the simulation clock; the scenario gives minutes. Pure.
"""

from __future__ import annotations

import random

from vpccni.capacity.scenario import Workload


class PodSource:
    """One node's churn: when the next pod arrives and how long each one lives."""

    __slots__ = ("_mean_life", "_rate", "_rng", "fixed", "start", "stop")

    def __init__(self, workload: Workload, seed: int, node: int) -> None:
        self._rng = random.Random(f"{seed}/workload/{node}")
        self._rate = workload.arrivals_per_minute / 60.0
        self._mean_life = workload.lifetime_minutes * 60.0
        self.fixed = workload.lifetime == "fixed"
        self.start = workload.start_minutes * 60.0
        self.stop = None if workload.stop_minutes is None else workload.stop_minutes * 60.0

    def next_arrival(self, after: float) -> float | None:
        """The next arrival after ``after`` (None when the workload has stopped or is empty)."""
        if self._rate <= 0:
            return None
        when = max(after, self.start) + self._rng.expovariate(self._rate)
        if self.stop is not None and when >= self.stop:
            return None
        return when

    def lifetime(self) -> float:
        if self.fixed:
            return self._mean_life
        return self._rng.expovariate(1.0 / self._mean_life)

    def burst_lifetime(self, minutes: float | None) -> float | None:
        """A burst pod's lifetime: exponential around the burst's mean, or for good (None)."""
        if minutes is None:
            return None
        if self.fixed or minutes <= 0:
            return minutes * 60.0
        return self._rng.expovariate(1.0 / (minutes * 60.0))
