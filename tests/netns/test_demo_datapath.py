"""The main job as root, `vpccni demo --datapath`, proves traffic and leaves nothing behind."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

from tests.netns.conftest import ip


def test_datapath_demo(netns_factory: Callable[[], str]) -> None:
    netns_factory()  # root, or fail loudly in CI
    before = ip("netns", "list")
    done = subprocess.run(
        [sys.executable, "-m", "vpccni.cli.main", "demo", "--datapath", "--pods", "11"],
        capture_output=True,
        text=True,
        check=False,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    assert "pod-0 -> pod-1 (10.0.1.6): answered, pod-1 saw 10.0.1.5" in out
    assert "ENI device 1) -> VPC host 10.0.255.5: arrived from 10.0.1.16 on VPC link v1" in out
    assert "arrived from 10.0.1.4 (SNAT to the node's primary address)" in out
    assert "11 assigned" in out
    assert "Traceback" not in done.stderr
    leftover = [n for n in ip("netns", "list").split() if n.startswith("vd") and n not in before]
    assert leftover == [], leftover
