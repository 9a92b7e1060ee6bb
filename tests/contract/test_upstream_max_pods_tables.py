"""`vpccni max-pods --all --format json` reproduces upstream's published max-pods tables.

Both tables (the EKS AMI's last eni-max-pods.txt and the VPC CNI's own copy) are stored in
tests/data with their provenance; every instance type that a table and vpccni both know must
have the same value.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import DATA
from vpccni.cli.main import main


def read_table(path: Path) -> dict[str, int]:
    """Parse `<instance-type> <max-pods>` lines, skipping comments and blanks."""
    table: dict[str, int] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, value = line.split()
            table[name] = int(value)
    return table


def run_all(capsys: pytest.CaptureFixture[str], *flags: str) -> dict[str, int | None]:
    assert main(["max-pods", "--all", "--format", "json", *flags]) == 0
    result: dict[str, int | None] = json.loads(capsys.readouterr().out)
    return result


@pytest.mark.parametrize(
    ("filename", "listed", "shared"),
    [("eni-max-pods.txt", 1197, 1163), ("eni-max-pods.vpc-cni-k8s.txt", 1391, 1163)],
)
def test_all_equals_upstream_table(
    capsys: pytest.CaptureFixture[str], filename: str, listed: int, shared: int
) -> None:
    upstream = read_table(DATA / filename)
    ours = run_all(capsys)
    assert len(upstream) == listed
    assert len(ours) == 1164
    both = sorted(set(upstream) & set(ours))
    assert len(both) == shared
    mismatches = {
        name: (ours[name], upstream[name]) for name in both if ours[name] != upstream[name]
    }
    assert mismatches == {}


def test_all_recommended_marks_unknown_vcpus_as_null(capsys: pytest.CaptureFixture[str]) -> None:
    capped = run_all(capsys, "--recommended")
    assert capped["m5.24xlarge"] == 250
    assert capped["m5.large"] == 29
    assert capped["p3.2xlarge"] is None
