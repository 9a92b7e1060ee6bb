"""`vpccni emulator --iam-policy FILE`: help, one-line refusals, an enforcing process, state."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests.emulator.test_cli import SCENARIO, ec2_client, run_cli, start_process

DESCRIBE_ONLY = {
    "Version": "2012-10-17",
    "Statement": [{"Sid": "Read", "Effect": "Allow", "Action": "ec2:Describe*", "Resource": "*"}],
}


def test_help_documents_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        run_cli(capsys, "--help")
    out = capsys.readouterr().out
    assert "--iam-policy FILE" in out
    assert "UnauthorizedOperation" in out


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (None, "cannot read --iam-policy"),
        ("{not json", "is not valid JSON"),
        ('{"Version": "2012-10-17"}', "Statement must be"),
        (
            '{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "NotAction": "ec2:*", '
            '"Resource": "*"}}',
            "Statement[0]: NotAction is not supported",
        ),
        (
            '{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Action": "ec2:*", '
            '"Resource": "*", "Condition": {"DateGreaterThan": {"aws:CurrentTime": "2020"}}}}',
            "'DateGreaterThan' is not supported",
        ),
    ],
)
def test_bad_policies_give_one_line_errors(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, content: str | None, words: str
) -> None:
    path = tmp_path / "policy.json"
    if content is not None:
        path.write_text(content)
    code, out, err = run_cli(capsys, "--iam-policy", str(path), "--print-endpoints")
    assert code == 2
    assert out == ""
    assert words in err
    assert str(path) in err
    assert err.count("\n") == 1
    assert "Traceback" not in err


def test_a_process_enforces_the_policy_and_keeps_it_in_its_state(tmp_path: Path) -> None:
    scenario = tmp_path / "scenario.json"
    scenario.write_text(json.dumps(SCENARIO))
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps(DESCRIBE_ONLY))
    state = tmp_path / "state.json"
    process, endpoint, lines = start_process(
        "--scenario", str(scenario), "--state", str(state), "--iam-policy", str(policy)
    )
    try:
        assert any(line.startswith("IAM            enforcing a policy of 1") for line in lines)
        ec2 = ec2_client(endpoint)
        subnet = ec2.describe_subnets()["Subnets"][0]["SubnetId"]
        with pytest.raises(ClientError) as refused:
            ec2.create_network_interface(SubnetId=subnet)
        assert refused.value.response["Error"]["Code"] == "UnauthorizedOperation"
        assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
        assert ec2.describe_network_interfaces()["NetworkInterfaces"] != []  # nodes' own ENIs
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "Traceback" not in err
    assert json.loads(state.read_text())["iam_policy"] == DESCRIBE_ONLY


def test_the_flag_wins_over_the_state_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    state = tmp_path / "state.json"
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps(DESCRIBE_ONLY))
    code, out, _ = run_cli(
        capsys, "--state", str(state), "--iam-policy", str(policy), "--print-endpoints"
    )
    assert code == 0
    assert "IAM            enforcing" in out
    everything = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
    }
    policy.write_text(json.dumps(everything))
    code, out, _ = run_cli(
        capsys, "--state", str(state), "--iam-policy", str(policy), "--print-endpoints"
    )
    assert code == 0
    assert json.loads(state.read_text())["iam_policy"] == everything
    code, out, _ = run_cli(capsys, "--state", str(state), "--print-endpoints")
    assert "IAM            enforcing" in out  # the state file keeps it
