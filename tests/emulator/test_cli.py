"""``vpccni emulator`` on the command line: help, one-line errors, and a real server process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import boto3
import pytest

from vpccni.cli.main import main

SCENARIO = {
    "knobs": {"attach_delay": 1},
    "vpcs": [
        {
            "name": "main",
            "cidr": "10.0.0.0/16",
            "subnets": [{"name": "nodes", "cidr": "10.0.0.0/24"}],
            "security_groups": [{"name": "workers"}],
        }
    ],
    "instances": [
        {
            "name": "node",
            "type": "m5.large",
            "subnet": "nodes",
            "count": 2,
            "security_groups": ["workers"],
        }
    ],
}


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["emulator", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_help_lists_the_knobs(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["emulator", "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--scenario", "--state", "--imds-lag", "--latency", "--no-rate-limits", "--seed"):
        assert flag in out
    for flag in (
        "--preset",
        "--imds-addresses-delay",
        "--imds-stale-mac",
        "--imds-stale-addresses",
        "--subnet-count-lag",
    ):
        assert flag in out


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--port", "70000"], "between 0 and 65535"),
        (["--host", "10.1.2.3"], "loopback only"),
        (["--latency", "fast"], "ACTION=SECONDS"),
        (["--bucket", "CreateTags=100"], "ACTION=SIZE/REFILL"),
        (["--fault", "*=0.5:Explode"], "code must be one of"),
        (["--imds-lag", "-3", "--print-endpoints"], "imds_lag must be a finite number >= 0"),
        (["--imds-stale-mac", "-1", "--print-endpoints"], "imds_stale_mac must be a finite"),
        (["--preset", "slow"], "invalid choice: 'slow'"),
        (["--frobnicate"], "unrecognized arguments"),
    ],
)
def test_bad_flags_give_one_line_errors(
    capsys: pytest.CaptureFixture[str], argv: list[str], words: str
) -> None:
    code, out, err = run_cli(capsys, *argv)
    assert code == 2
    assert out == ""
    assert words in err
    assert err.count("\n") == 1
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("{not json", "is not valid JSON"),
        (
            '{"vpcs": [{"name": "a", "cidr": "10.0.0.0/16", "color": "red"}]}',
            "unknown field(s) color",
        ),
        ('{"vpcs": [{"name": "a", "cidr": "10.0.0.0/8"}]}', "InvalidVpc.Range"),
        ('{"instances": [{"name": "n", "type": "m5.large", "subnet": "nope"}]}', "no subnet named"),
        (
            '{"vpcs": [{"name": "a", "cidr": "10.0.0.0/16", "subnets": [{"name": "s", '
            '"cidr": "10.0.0.0/24"}]}], "instances": [{"name": "n", "type": "m9.huge", '
            '"subnet": "s"}]}',
            "Invalid value 'm9.huge' for InstanceType",
        ),
    ],
)
def test_bad_scenarios_give_one_line_errors(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, content: str, words: str
) -> None:
    path = tmp_path / "scenario.json"
    path.write_text(content)
    code, _, err = run_cli(capsys, "--scenario", str(path), "--print-endpoints")
    assert code == 2
    assert words in err
    assert err.count("\n") == 1


def test_damaged_state_file_is_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text('{"format": "something else"}')
    code, _, err = run_cli(capsys, "--state", str(path), "--print-endpoints")
    assert code == 2
    assert "not a vpccni emulator state file" in err


def start_process(*argv: str) -> tuple[subprocess.Popen[str], str, list[str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "vpccni.cli.main", "emulator", "--port", "0", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line.rstrip())
        if line.startswith("serving"):
            break
    endpoint = next(line.split()[2] for line in lines if line.startswith("EC2 endpoint"))
    return process, endpoint, lines


def ec2_client(endpoint: str) -> Any:
    return boto3.client(
        "ec2",
        endpoint_url=endpoint,
        region_name="us-west-2",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )


def test_the_command_serves_boto3_and_keeps_its_state(tmp_path: Path) -> None:
    scenario = tmp_path / "scenario.json"
    scenario.write_text(json.dumps(SCENARIO))
    state = tmp_path / "state.json"
    process, endpoint, lines = start_process("--scenario", str(scenario), "--state", str(state))
    try:
        assert sum(line.startswith("IMDS") for line in lines) == 2
        ec2 = ec2_client(endpoint)
        reservations = ec2.describe_instances()["Reservations"]
        instances = [i for r in reservations for i in r["Instances"]]
        assert sorted(t["Value"] for i in instances for t in i["Tags"]) == ["node-1", "node-2"]
        assert {g["GroupName"] for i in instances for g in i["SecurityGroups"]} == {"workers"}
        subnet = instances[0]["SubnetId"]
        eni = ec2.create_network_interface(SubnetId=subnet, SecondaryPrivateIpAddressCount=2)
        eni_id = eni["NetworkInterface"]["NetworkInterfaceId"]
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "emulator stopped after" in out
    assert "Traceback" not in err
    saved = json.loads(state.read_text())
    assert eni_id in [e["eni_id"] for e in saved["network_interfaces"]]

    again = subprocess.run(
        [
            sys.executable,
            "-m",
            "vpccni.cli.main",
            "emulator",
            "--state",
            str(state),
            "--print-endpoints",
            "--port",
            "5999",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "state loaded from" in again.stdout
    assert f"/imds/{instances[0]['InstanceId']}/" in again.stdout


def test_the_realistic_preset_from_flags_scenario_and_state(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    state = tmp_path / "state.json"
    flags = ["--preset", "realistic", "--imds-lag", "0", "--state", str(state)]
    code, out, _ = run_cli(capsys, *flags, "--print-endpoints", "--port", "0")
    assert code == 0
    assert "IMDS lag 0 s, attach 3 s, detach 2 s" in out
    assert "IMDS addresses after attach 2 s, MAC after detach 5 s" in out
    saved = json.loads(state.read_text())["knobs"]
    assert (saved["imds_lag"], saved["attach_delay"], saved["imds_stale_addresses"]) == (0, 3, 5)

    scenario = tmp_path / "scenario.json"
    scenario.write_text(json.dumps({**SCENARIO, "knobs": {"preset": "realistic"}}))
    code, out, _ = run_cli(capsys, "--scenario", str(scenario), "--print-endpoints", "--port", "0")
    assert code == 0
    assert "IMDS lag 2 s, attach 3 s" in out
    code, out, _ = run_cli(
        capsys, "--scenario", str(scenario), "--preset", "default", "--print-endpoints"
    )
    assert "IMDS lag 0 s, attach 0 s" in out
    assert "partial views" not in out


def test_a_realistic_emulator_shows_a_new_eni_late_and_partly_to_the_adapter(
    tmp_path: Path,
) -> None:
    from vpccni.adapters.imds_http import ImdsV2

    scenario = tmp_path / "scenario.json"
    scenario.write_text(json.dumps({**SCENARIO, "knobs": {}}))
    process, endpoint, _ = start_process("--scenario", str(scenario), "--preset", "realistic")
    try:
        ec2 = ec2_client(endpoint)
        instance = ec2.describe_instances()["Reservations"][0]["Instances"][0]
        eni = ec2.create_network_interface(
            SubnetId=instance["SubnetId"], SecondaryPrivateIpAddressCount=3
        )["NetworkInterface"]
        ec2.attach_network_interface(
            NetworkInterfaceId=eni["NetworkInterfaceId"],
            InstanceId=instance["InstanceId"],
            DeviceIndex=1,
        )
        imds = ImdsV2(f"{endpoint}/imds/{instance['InstanceId']}/")

        def shown() -> dict[str, int]:
            return {i.eni_id: len(i.local_ipv4s) for i in imds.interfaces()}

        def advance(seconds: float) -> None:
            request = urllib.request.Request(
                f"{endpoint}/admin/clock/advance",
                data=json.dumps({"seconds": seconds}).encode(),
                method="POST",
            )
            urllib.request.urlopen(request, timeout=10).close()

        assert eni["NetworkInterfaceId"] not in shown()  # attaching 3 s, then IMDS 2 s late
        advance(5.5)
        assert shown()[eni["NetworkInterfaceId"]] == 1  # the MAC, with its primary only
        advance(2.0)
        assert shown()[eni["NetworkInterfaceId"]] == 4
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)
