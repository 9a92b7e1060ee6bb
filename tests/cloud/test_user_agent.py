"""``VPC_CNI_VERSION`` reaches EC2 in the user agent, as upstream sends it (a real HTTP server
records the header boto3 sends)."""

from __future__ import annotations

import pytest

from tests.cloud.recording_ec2 import RecordingEc2
from vpccni.adapters.ec2_boto3 import make_ec2_client
from vpccni.settings import parse_settings


def _agent(recorder: RecordingEc2, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    settings = parse_settings(
        {"AWS_ENDPOINT_URL_EC2": recorder.url, "AWS_MAX_ATTEMPTS": "1", **env}
    )
    endpoint = settings.cloud.ec2("us-west-2", settings.provisioning.cni_version)
    client = make_ec2_client(endpoint)
    with pytest.raises(Exception, match="AuthFailure"):
        client.describe_instances()
    assert len(recorder.agents) == 1
    return recorder.agents[0]


def test_vpc_cni_version_is_in_the_user_agent(
    recording_ec2: RecordingEc2,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    agent = _agent(recording_ec2, {"VPC_CNI_VERSION": "v1.19.2"}, monkeypatch)
    assert agent.endswith(" vpccni amazon-vpc-cni-k8s/v1.19.2"), agent


def test_without_it_the_user_agent_names_vpccni_only(
    recording_ec2: RecordingEc2,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    agent = _agent(recording_ec2, {}, monkeypatch)
    assert agent.endswith(" vpccni"), agent
    assert "amazon-vpc-cni-k8s" not in agent
