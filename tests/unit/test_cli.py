"""The `vpccni` command line: output shapes, and clear one-line errors for bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from vpccni.cli.main import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_max_pods_json_for_one_type(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "max-pods", "m5.large", "--prefix-delegation", "--format", "json")
    assert code == 0
    body = json.loads(out)
    assert set(body) == {"instance_type", "max_pods", "uncapped", "recommended", "vcpus", "note"}
    assert body["max_pods"] == 434
    assert body["uncapped"] == 434
    assert body["recommended"] == 110
    assert body["vcpus"] == 2
    assert "capped at 110" in body["note"]


def test_max_pods_recommended_selects_the_capped_figure(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "max-pods", "m5.24xlarge", "--recommended", "--format", "json")
    assert code == 0
    assert json.loads(out)["max_pods"] == 250


def test_max_pods_table_shows_both_figures_and_why(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "max-pods", "m4.large", "--prefix-delegation")
    assert code == 0
    assert "uncapped       20" in out
    assert "recommended    20" in out
    assert "prefix delegation needs a Nitro instance; m4.large is xen" in out


def test_limits_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "limits", "p5.48xlarge", "--format", "json")
    assert code == 0
    body = json.loads(out)
    assert (body["enis"], body["enis_all_cards"], body["ipv4_per_eni"]) == (2, 64, 50)
    assert body["vcpus"] == 192
    assert body["prefix_delegation"] is True
    assert len(body["network_cards"]) == 32


def test_limits_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "limits", "c5.metal")
    assert code == 0
    assert "none (bare metal)" in out
    assert "ENIs (default card)  15" in out


def test_limits_list(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "limits", "--list")
    assert code == 0
    assert len(out.split()) == 1164


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["max-pods", "m5.larg"], "did you mean m5.large"),
        (["limits", "m5.larg"], "did you mean m5.large"),
        (["max-pods", "m5.large", "--max-eni", "0"], "give 1 or more"),
        (["max-pods", "m5.large", "--max-eni", "two"], "invalid int value: 'two'"),
        (["max-pods", "m5.large", "--cni-version", "latest"], "invalid CNI version 'latest'"),
        (["max-pods", "m5.large", "--format", "yaml"], "invalid choice: 'yaml'"),
        (["max-pods"], "exactly one of INSTANCE_TYPE or --all"),
        (["max-pods", "m5.large", "--all"], "exactly one of INSTANCE_TYPE or --all"),
        (["max-pods", "p3.2xlarge", "--recommended"], "no vCPU count"),
        (["limits"], "give an INSTANCE_TYPE"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        ([], "give a command"),
    ],
)
def test_bad_input_is_one_clear_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = run(capsys, *argv)
    assert code != 0
    assert out == ""
    assert message in err
    assert err.count("\n") == 1
    assert err.startswith("error: ")


def test_installed_command_never_prints_a_traceback() -> None:
    bin_dir = sys.executable.rsplit("/", 1)[0]
    done = subprocess.run(
        [f"{bin_dir}/vpccni", "max-pods", "nosuch.type", "--max-eni", "-3"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


def test_explain_reads_a_file_and_prints_the_decision(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    snapshot = tmp_path / "pool.json"
    snapshot.write_text(
        json.dumps(
            {
                "limits": {"instance_type": "m5.large"},
                "enis": [{"id": "eni-1", "primary": True, "ips": 9, "assigned": 1}],
            }
        )
    )
    code, out, _ = run(capsys, "explain", str(snapshot))
    assert code == 0
    body = json.loads(out)
    assert (body["total"], body["assigned"], body["available"], body["max_pods"]) == (9, 1, 8, 29)
    assert body["actions"][0]["action"] == "create-eni"


def test_explain_reads_stdin() -> None:
    bin_dir = sys.executable.rsplit("/", 1)[0]
    done = subprocess.run(
        [f"{bin_dir}/vpccni", "explain", "-"],
        input='{"mode": "prefix", "limits": {"max_enis": 2, "ipv4_per_eni": 4}, "enis": []}',
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["actions"][0] == {
        "action": "create-eni",
        "eni": None,
        "count": 1,
        "reason": "pool too low and no ENI has a free slot: create an ENI with 1 prefixes",
    }


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "snapshot is not valid JSON"),
        ('{"limits": {"instance_type": "m5.larg"}}', "did you mean m5.large"),
        ('{"limits": {"max_enis": 0, "ipv4_per_eni": 4}}', "limits.max_enis"),
    ],
)
def test_explain_bad_snapshot_exits_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, content: str, message: str
) -> None:
    snapshot = tmp_path / "bad.json"
    snapshot.write_text(content)
    code, out, err = run(capsys, "explain", str(snapshot))
    assert (code, out) == (2, "")
    assert message in err


def test_explain_missing_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "explain", str(tmp_path / "nope.json"))
    assert code == 2
    assert "cannot read snapshot" in err
