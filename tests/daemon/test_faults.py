"""Fault tests: throttling, slow attach and IMDS lag do not cost a pod its address or leak ENIs.

30 % of EC2 calls answer RequestLimitExceeded (injected), attach takes 2 s, IMDS lags 10 s.
A burst of pods up to max pods must all get distinct addresses (retrying as kubelet does while
the daemon says "try again later"); every address stays on an ENI EC2 shows attached; no ENI is
left unattached; and the emulator's real token buckets never throttle the daemon.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from tests.daemon.conftest import admin_state
from vpccni.core.aws_types import TAG_INSTANCE_ID

KNOBS = {
    "faults": {"*": {"rate": 0.3, "code": "RequestLimitExceeded"}},
    "attach_delay": 2.0,
    "imds_lag": 10.0,
    "seed": 7,
}


def add_until_granted(node: Any, pod: str, seconds: float) -> dict[str, Any]:
    deadline = time.monotonic() + seconds
    while True:
        reply: dict[str, Any] = node.add(pod)
        if reply["ok"] or time.monotonic() > deadline:
            return reply
        assert reply["error"]["code"] == 11, reply
        time.sleep(0.2)


def test_a_burst_to_max_pods_survives_throttling_slow_attach_and_imds_lag(make_node: Any) -> None:
    node = make_node("c5.large", knobs=KNOBS, WARM_ENI_TARGET="1")
    node.start()
    pods = [f"burst-{i}" for i in range(27)]  # max pods 29 = 27 pod addresses + 2 host pods
    with ThreadPoolExecutor(9) as pool:
        replies = list(pool.map(lambda p: add_until_granted(node, p, 120), pods))
    assert all(r["ok"] for r in replies), [r for r in replies if not r["ok"]][:3]
    addresses = [r["result"]["ips"][0]["address"].split("/")[0] for r in replies]
    assert len(set(addresses)) == 27

    attached = {str(ip) for eni in node.enis() for ip in eni.secondary_ips}
    assert set(addresses) <= attached
    assert len(node.enis()) == 3

    ours = node.backend.ec2.describe_enis(filters={f"tag:{TAG_INSTANCE_ID}": [node.instance_id]})
    unattached = [e.eni_id for e in ours if e.attachment is None]
    assert unattached == []
    stats = admin_state(node.server)["stats"]
    assert stats.get("faults", 0) > 0, "the fault injection did not fire"
    assert stats.get("throttled", 0) == 0, "the daemon exceeded EC2's token buckets"
    assert {p["address"] for p in node.introspect("/v1/pods")} == set(addresses)
    assert node.stop() == 0
