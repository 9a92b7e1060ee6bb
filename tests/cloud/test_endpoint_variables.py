"""Upstream's ``AWS_EC2_ENDPOINT`` and ``HTTP_TIMEOUT`` reach the clients the daemon builds.

``AWS_EC2_ENDPOINT`` is where EC2 calls go (a real HTTP server records them), unless the SDK's
own ``AWS_ENDPOINT_URL_EC2`` is set, which wins; ``HTTP_TIMEOUT`` is botocore's connect and read
timeout and IMDS's, built from the settings as ``vpccni.daemon.runner`` builds them.
"""

from __future__ import annotations

import pytest

from tests.cloud.recording_ec2 import RecordingEc2
from vpccni.adapters.ec2_boto3 import make_ec2_client
from vpccni.adapters.imds_http import ImdsV2
from vpccni.settings import MIN_HTTP_TIMEOUT, parse_settings

NOWHERE = "http://127.0.0.1:9"  # the discard port: nothing listens there


def _calls_reaching_the_recorder(
    recorder: RecordingEc2, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> int:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.delenv("AWS_ENDPOINT_URL_EC2", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    settings = parse_settings({"AWS_MAX_ATTEMPTS": "1", **env})
    client = make_ec2_client(settings.cloud.ec2("us-west-2"))
    with pytest.raises(Exception, match="AuthFailure"):
        client.describe_instances()
    return len(recorder.paths)


def test_aws_ec2_endpoint_is_where_ec2_calls_go(
    recording_ec2: RecordingEc2,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = recording_ec2.url
    assert _calls_reaching_the_recorder(recording_ec2, {"AWS_EC2_ENDPOINT": url}, monkeypatch) == 1
    both = {"AWS_ENDPOINT_URL_EC2": url, "AWS_EC2_ENDPOINT": NOWHERE}
    assert _calls_reaching_the_recorder(recording_ec2, both, monkeypatch) == 2  # standard wins


def test_http_timeout_is_ec2s_and_imdss() -> None:
    default = parse_settings({}).cloud
    cloud = parse_settings({"HTTP_TIMEOUT": "25"}).cloud
    assert (default.http_timeout, cloud.http_timeout) == (MIN_HTTP_TIMEOUT, 25.0)
    config = make_ec2_client(cloud.ec2("us-west-2")).meta.config
    assert (config.connect_timeout, config.read_timeout) == (25.0, 25.0)
    # the runner builds IMDS's client as ImdsV2(cloud.imds_endpoint, timeout_seconds=...)
    assert ImdsV2(cloud.imds_endpoint, timeout_seconds=cloud.http_timeout).timeout == 25.0
