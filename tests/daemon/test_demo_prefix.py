"""Issue #15's reproduction: in prefix mode an m5.large's demo node serves 40 pods (kubelet's max
pods there is the calculator's 110, not eni-max-pods.txt's secondary-IP 29)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from vpccni.cli.demo_cmd import pods_capacity


def test_prefix_mode_demo_serves_40_pods_on_an_m5_large() -> None:
    env = {**os.environ, "ENABLE_PREFIX_DELEGATION": "true"}
    command = [sys.executable, "-m", "vpccni.cli.main", "demo", "--instance-type", "m5.large"]
    done = subprocess.run(
        [*command, "--pods", "40"],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr
    assert done.stdout.count("ADD pod-") == 40
    assert "max pods 110" in done.stdout


def test_the_demo_node_holds_what_its_mode_allows(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ENABLE_PREFIX_DELEGATION", raising=False)
    assert pods_capacity("m5.large")[:1] == (27,)  # 3 ENIs x 9 addresses
    monkeypatch.setenv("ENABLE_PREFIX_DELEGATION", "true")
    assert pods_capacity("m5.large") == (
        110,
        "max pods 110 in prefix mode, as an EKS node's kubelet is given",
        ["--max-pods", "110"],
    )
