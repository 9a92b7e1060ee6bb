"""The system clock as the ``Clock`` port: wall-clock seconds and a real sleep."""

from __future__ import annotations

import time


class SystemClock:
    """Implements ``vpccni.ports.Clock`` with the host's clock."""

    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        time.sleep(max(seconds, 0.0))
