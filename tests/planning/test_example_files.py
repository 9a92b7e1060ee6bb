"""Every scenario shipped in ``examples/`` runs with ``vpccni plan`` and ``vpccni simulate``, is
pointed to from docs/planning.md and the README, and says true things about its own figures.

New files in ``examples/`` are picked up without changing this test.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


def vpccni(*args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "vpccni.cli.main", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        cwd=ROOT,
    )
    assert done.returncode == 0, f"vpccni {' '.join(args)}: {done.stderr}"
    document: dict[str, Any] = json.loads(done.stdout)
    return document


def test_there_are_examples_for_both_modes_and_a_workload() -> None:
    names = {path.name for path in EXAMPLES}
    assert {"small-cluster.yaml", "prefix-mode.yaml", "churn-and-bursts.yaml"} <= names


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.name)
def test_plan_and_a_short_simulate_succeed(example: Path) -> None:
    relative = str(example.relative_to(ROOT))
    plan = vpccni("plan", relative, "--format", "json")
    assert plan["nodes"]
    assert plan["totals"]["subnet_addresses_used"] > 0
    assert plan["unsettled_nodes"] == []
    simulated = vpccni("simulate", relative, "--duration", "5", "--format", "json")
    assert simulated["nodes"]
    assert simulated["timeline"]
    assert simulated["pods"]["failed"] == 0


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda path: path.name)
def test_each_example_is_referenced_from_the_docs(example: Path) -> None:
    reference = f"examples/{example.name}"
    assert reference in (ROOT / "docs" / "planning.md").read_text()
    assert reference in (ROOT / "README.md").read_text()


def test_the_figures_the_comments_give() -> None:
    small = vpccni("plan", "examples/small-cluster.yaml", "--format", "json")
    assert [n["subnet_addresses"] for n in small["nodes"]] == [20, 20, 10]
    assert (small["totals"]["subnet_addresses_used"], small["totals"]["warm"]) == (50, 43)
    compat = vpccni(
        "plan", "examples/small-cluster.yaml", "--compat", "subnet-calc", "--format", "json"
    )
    assert compat["totals"]["subnet_addresses_used"] == 56
    warm_ip = vpccni("plan", "examples/warm-ip-target.yaml", "--format", "json")
    assert [n["subnet_addresses"] for n in warm_ip["nodes"]] == [6, 6, 6]
    prefix = vpccni("plan", "examples/prefix-mode.yaml", "--format", "json")
    assert {n["max_pods"] for n in prefix["nodes"]} == {110}
    assert all(n["secondary_ips"] == 0 and n["prefixes"] > 0 for n in prefix["nodes"])
    churn = vpccni(
        "simulate", "examples/churn-and-bursts.yaml", "--duration", "180", "--format", "json"
    )
    assert churn["pods"]["over_max_pods"] == 0
    assert churn["pods"]["failed"] == 0
    assert len(churn["nodes"]) == 10  # 5 + 5 after the scale-out at two hours
