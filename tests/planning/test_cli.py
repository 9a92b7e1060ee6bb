"""``vpccni plan`` and ``vpccni simulate`` on the command line: outputs and one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import openpyxl
import pytest

from vpccni.cli.main import main

GUIDE = {
    "subnet_cidr": "10.0.0.0/24",
    "node_groups": [{"instance_type": "c5.large", "pods": [1, 1, 0]}],
}
NODE_KEYS = {
    "group",
    "name",
    "enis",
    "secondary_ips",
    "prefixes",
    "subnet_addresses",
    "assigned",
    "warm",
    "max_pods",
}


def write(tmp_path: Path, document: object, name: str = "scenario.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(document))
    return str(path)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_plan_json_has_the_shared_shape(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "plan", write(tmp_path, GUIDE), "--format", "json")
    assert code == 0
    body = json.loads(out)
    assert set(body["nodes"][0]) >= NODE_KEYS
    assert body["totals"]["subnet_addresses_used"] == 50
    assert body["totals"]["subnet_addresses_free"] == 201
    assert body["command"] == "plan"


def test_plan_table_and_compat(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scenario = write(tmp_path, GUIDE)
    code, out, _ = run(capsys, "plan", scenario)
    assert code == 0
    assert "50 subnet addresses used" in out
    assert "201 free: fits" in out
    code, out, _ = run(capsys, "plan", scenario, "--compat", "subnet-calc", "--format", "json")
    body = json.loads(out)
    assert body["totals"]["subnet_addresses_used"] == 56
    assert body["real"]["totals"]["subnet_addresses_used"] == 50
    assert body["totals"]["subnet_addresses_used"] == sum(
        n["subnet_addresses"] for n in body["nodes"]
    )
    code, out, _ = run(capsys, "plan", scenario, "--compat", "subnet-calc")
    assert "ENI primary addresses" in out


def test_plan_writes_a_workbook_and_a_chart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    book, chart = tmp_path / "plan.xlsx", tmp_path / "plan.png"
    code, _, _ = run(
        capsys,
        "plan",
        write(tmp_path, GUIDE),
        "--compat",
        "subnet-calc",
        "--xlsx",
        str(book),
        "--plot",
        str(chart),
    )
    assert code == 0
    loaded = openpyxl.load_workbook(book)
    assert loaded.sheetnames == ["Summary", "group0"]
    rows = list(loaded["group0"].iter_rows(values_only=True))
    assert rows[0][0] == "name"
    assert len(rows) == 4
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_simulate_json_text_and_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scenario = write(tmp_path, GUIDE)
    code, out, err = run(capsys, "simulate", scenario, "--format", "json", "--seed", "3")
    assert code == 0
    body = json.loads(out)
    assert set(body["nodes"][0]) >= NODE_KEYS
    assert body["totals"]["subnet_addresses_used"] == 50
    assert {"timeline", "ec2", "time_to_ip", "pods", "subnet_exhaustion"} <= set(body)
    assert err == ""
    chart = tmp_path / "run.png"
    code, out, err = run(capsys, "simulate", scenario, "--plot", str(chart), "--progress")
    assert code == 0
    assert "time to IP" in out
    assert "simulated 0." in err
    assert "virtual minutes" in err
    assert chart.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["plan", "{missing}"], "cannot read the scenario"),
        (["plan", "{bad}"], "node_groups[0].pods"),
        (["simulate", "{bad}"], "node_groups[0].pods"),
        (["plan", "{good}", "--compat", "spreadsheet"], "invalid choice"),
        (["simulate", "{good}", "--duration", "-5"], "--duration -5"),
        (["simulate", "{good}", "--seed", "x"], "invalid int value"),
    ],
)
def test_bad_input_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], expected: str
) -> None:
    files = {
        "{missing}": str(tmp_path / "nope.json"),
        "{bad}": write(
            tmp_path, {"node_groups": [{"instance_type": "c5.large", "pods": "x"}]}, "b.json"
        ),
        "{good}": write(tmp_path, GUIDE),
    }
    code, out, err = run(capsys, *[files.get(a, a) for a in argv])
    assert code == 2
    assert out == ""
    assert err.startswith("error: ")
    assert expected in err
    assert err.count("\n") == 1
    assert "Traceback" not in err


def test_real_process_bad_scenario_has_no_traceback(tmp_path: Path) -> None:
    path = write(tmp_path, {"node_groups": [{"instance_type": "c9.huge", "pods": [1]}]})
    done = subprocess.run(
        [sys.executable, "-m", "vpccni.cli.main", "plan", path],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("error: node_groups[0].instance_type: unknown instance type")
    assert "Traceback" not in done.stderr
