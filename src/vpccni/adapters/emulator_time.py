"""The ``Clock`` port read from a running ``vpccni emulator`` (its ``/admin/clock``).

When the daemon runs against the emulator, ages (an ENI's createdAt tag, the leaked-ENI
cleanup's five minutes) must follow the emulator's clock, which tests and demos advance with
``POST /admin/clock/advance``. Sleeping stays real.
"""

from __future__ import annotations

import json
import time
import urllib.request

from vpccni.core.aws_types import CloudError


class RemoteEmulatorClock:
    """Implements ``vpccni.ports.Clock`` with the emulator's notion of now."""

    def __init__(self, endpoint: str, timeout_seconds: float = 5.0) -> None:
        self.url = endpoint.rstrip("/") + "/admin/clock"
        self.timeout = timeout_seconds

    def now(self) -> float:
        try:
            with urllib.request.urlopen(self.url, timeout=self.timeout) as response:
                return float(json.loads(response.read())["now"])
        except (OSError, ValueError, KeyError) as error:
            raise CloudError(
                f"cannot read the emulator's clock at {self.url}: {error}; is it running?"
            ) from None

    def sleep(self, seconds: float) -> None:
        time.sleep(max(seconds, 0.0))
