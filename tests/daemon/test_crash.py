"""Crash test: ``kill -9`` of the daemon at random moments during pod churn, then restart.

After every restart: every acknowledged assignment is still there with the same address, no
acknowledged release came back, and no address is held twice. At the end no ENI of this node is
left unattached. ``VPCCNI_DAEMON_KILLS`` sets the number of kills (CI default 6; run 50 or more
on demand).
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from typing import Any

from vpccni.core.aws_types import TAG_INSTANCE_ID

KILLS = int(os.environ.get("VPCCNI_DAEMON_KILLS", "6"))


class Churn:
    """Adds and deletes pods in a thread, remembering what the daemon acknowledged."""

    def __init__(self, node: Any, seed: int, acked: dict[str, str]) -> None:
        self.node = node
        self.rng = random.Random(seed)
        self.acked = acked  # pod -> address, for acknowledged ADDs (carried across rounds)
        self.in_flight: str | None = None  # a request whose reply was lost in a kill
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stop.is_set():
            pod = f"pod-{self.rng.randrange(24)}"
            deleting = pod in self.acked and self.rng.random() < 0.5
            self.in_flight = pod
            try:
                reply = self.node.delete(pod) if deleting else self.node.add(pod)
            except (OSError, ValueError):
                return  # the daemon died mid-request: the outcome of in_flight is unknown
            if reply["ok"]:
                if deleting:
                    self.acked.pop(pod, None)
                else:
                    self.acked[pod] = reply["result"]["ips"][0]["address"].split("/")[0]
            self.in_flight = None
            time.sleep(self.rng.uniform(0, 0.01))


def check(node: Any, churn: Churn) -> None:
    pods = {p["container_id"]: p["address"] for p in node.introspect("/v1/pods")}
    assert len(set(pods.values())) == len(pods), "an address is held twice"
    for pod, address in churn.acked.items():
        if pod != churn.in_flight:
            assert pods.get(pod) == address, f"acknowledged {pod} -> {address} lost: {pods}"
    unexpected = set(pods) - set(churn.acked) - {churn.in_flight}
    assert not unexpected, f"released pods came back: {unexpected}"
    if churn.in_flight is not None:  # settle the unknown outcome as the runtime would: retry
        if churn.in_flight in pods:
            churn.acked[churn.in_flight] = pods[churn.in_flight]
        else:
            churn.acked.pop(churn.in_flight, None)


def test_kill_9_during_churn_loses_nothing(make_node: Any) -> None:
    node = make_node("c5.large")
    rng = random.Random(2026)
    node.start()
    acked: dict[str, str] = {}
    for round_number in range(KILLS):
        node.advance(31)  # released addresses finish their cooldown
        node.wait_for(lambda: not node.introspect("/v1/explain")["actions"], what="pool settled")
        churn = Churn(node, round_number, acked)
        churn.thread.start()
        time.sleep(rng.uniform(0.05, 0.8))
        node.stop(signal.SIGKILL)
        churn.stop.set()
        churn.thread.join(timeout=15)
        node.start()
        check(node, churn)
    node.advance(301)  # orphans from a kill between create and attach are now old enough
    assert node.stop() == 0
    node.start()  # start-up sweeps leaked ENIs
    ours = node.backend.ec2.describe_enis(filters={f"tag:{TAG_INSTANCE_ID}": [node.instance_id]})
    assert [e.eni_id for e in ours if e.attachment is None] == []
    assert node.stop() == 0
