"""The emulated node's instance profile: boto3 with no other credentials takes the node role's
from the emulator's IMDS and signs EC2 calls with them, as on a real EKS node."""

from __future__ import annotations

import json
import urllib.request
from datetime import UTC, datetime

import boto3
import botocore.session
import pytest

from tests.cloud.conftest import Backend
from vpccni.emulator.imds import NODE_ROLE


def _imds(backend: Backend, instance_id: str, path: str) -> str:
    assert backend.server is not None
    base = backend.server.imds_endpoint(instance_id).rstrip("/")
    token_request = urllib.request.Request(
        f"{base}/latest/api/token",
        method="PUT",
        headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"},
    )
    with urllib.request.urlopen(token_request, timeout=5) as reply:
        token = reply.read().decode()
    request = urllib.request.Request(
        f"{base}/latest/{path}", headers={"X-aws-ec2-metadata-token": token}
    )
    with urllib.request.urlopen(request, timeout=5) as reply:
        return str(reply.read().decode())


def test_imds_lists_the_node_role_and_fresh_credentials(emulator: Backend) -> None:
    _, subnet = emulator.network()
    instance = emulator.launch(subnet, "c5.large")
    assert _imds(emulator, instance, "meta-data/iam/security-credentials/") == NODE_ROLE
    path = f"meta-data/iam/security-credentials/{NODE_ROLE}"
    document = json.loads(_imds(emulator, instance, path))
    assert document["Code"] == "Success"
    assert document["AccessKeyId"].startswith("ASIA")
    expires = datetime.strptime(document["Expiration"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert (expires - datetime.now(UTC)).total_seconds() > 5 * 3600
    info = json.loads(_imds(emulator, instance, "meta-data/iam/info"))
    assert info["InstanceProfileArn"].endswith(f":instance-profile/{NODE_ROLE}")


def test_boto3_without_credentials_uses_the_node_role(
    emulator: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, subnet = emulator.network()
    instance = emulator.launch(subnet, "c5.large")
    assert emulator.server is not None
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    imds = emulator.server.imds_endpoint(instance)
    monkeypatch.setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", imds)
    session = boto3.Session(botocore_session=botocore.session.Session(), region_name="us-west-2")
    credentials = session.get_credentials()
    assert credentials is not None
    assert credentials.method == "iam-role"
    client = session.client("ec2", endpoint_url=emulator.endpoint)
    reservations = client.describe_instances(InstanceIds=[instance])["Reservations"]
    assert reservations[0]["Instances"][0]["InstanceId"] == instance
