"""WARM_ENI_TARGET=0 (or WARM_PREFIX_TARGET=0) without warm IP targets: an empty pool is "too
low", so an ENI whose departure would empty the pool is kept. Upstream frees it and creates
another a tick later, forever, on a node whose other ENIs hold no free address (custom
networking's primary ENI holds none); vpccni documents the difference (docs/ipam.md)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from vpccni.core.config import IpamConfig
from vpccni.core.pool_rules import rest_blocker

EXAMPLE = Path(__file__).parents[2] / "examples" / "custom-networking.yaml"


@pytest.mark.parametrize(
    ("config", "free", "kept"),
    [
        (IpamConfig(warm_eni_target=0), 0, True),
        (IpamConfig(warm_eni_target=0), 1, False),
        (IpamConfig(warm_eni_target=1), 0, False),  # E >= 1: the gate F >= (E+1)N decides
        (IpamConfig(prefix_delegation=True, warm_prefix_target=0), 0, True),
        (IpamConfig(warm_eni_target=0, warm_ip_target=2), 0, True),  # WARM_IP_TARGET's rule
        (IpamConfig(warm_eni_target=0, minimum_ip_target=1), 0, False),
    ],
)
def test_the_last_free_addresses_stay_with_a_zero_warm_target(
    config: IpamConfig, free: int, kept: bool
) -> None:
    blocker = rest_blocker(free=free, total=10, free_prefixes=0, config=config)
    assert (blocker is not None) is kept, blocker


def test_custom_networking_with_warm_eni_target_0_settles(tmp_path: Path) -> None:
    text = re.sub(r"nodes: \d+", "nodes: 1", EXAMPLE.read_text())
    text = re.sub(r"pods: \d+", "pods: 0", text)  # an idle node: nothing pins the pod ENI
    scenario = tmp_path / "cn.yaml"
    scenario.write_text(text + 'env:\n  WARM_ENI_TARGET: "0"\n')
    command = [sys.executable, "-m", "vpccni.cli.main", "plan", str(scenario), "--format", "json"]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    assert json.loads(done.stdout)["unsettled_nodes"] == []
