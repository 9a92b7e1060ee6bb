"""Cloud settings from the environment: endpoints, region, retries, timeouts."""

from __future__ import annotations

import pytest

from vpccni.core.config import ConfigError
from vpccni.settings import cloud_settings


def test_defaults_reach_aws_and_the_link_local_imds() -> None:
    settings = cloud_settings({})
    assert settings.ec2_endpoint_url is None
    assert settings.region is None
    assert (settings.retry_mode, settings.max_attempts, settings.http_timeout) == (
        "standard",
        3,
        10.0,
    )
    assert settings.imds_endpoint == "http://169.254.169.254/"
    assert settings.ec2("eu-west-1").region == "eu-west-1"


def test_standard_endpoint_wins_over_upstreams_variable() -> None:
    env = {
        "AWS_ENDPOINT_URL_EC2": "http://127.0.0.1:5000",
        "AWS_EC2_ENDPOINT": "http://127.0.0.1:6000",
        "AWS_REGION": "us-west-2",
        "AWS_EC2_METADATA_SERVICE_ENDPOINT": "http://127.0.0.1:5000/imds/i-1/",
    }
    settings = cloud_settings(env)
    assert settings.ec2_endpoint_url == "http://127.0.0.1:5000"
    assert settings.ec2("eu-west-1").region == "us-west-2"
    assert settings.imds_endpoint.endswith("/imds/i-1/")
    assert cloud_settings({"AWS_EC2_ENDPOINT": "http://x:1"}).ec2_endpoint_url == "http://x:1"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"HTTP_TIMEOUT": "5"}, "HTTP_TIMEOUT='5' is too small; accepted: 10 or more"),
        ({"HTTP_TIMEOUT": "ten"}, "HTTP_TIMEOUT='ten' is not an integer"),
        ({"AWS_RETRY_MODE": "legacy"}, "accepted: standard, adaptive"),
        ({"AWS_MAX_ATTEMPTS": "0"}, "AWS_MAX_ATTEMPTS='0' is too small"),
        ({"AWS_EC2_ENDPOINT": "ec2.local"}, "must start with http://"),
    ],
)
def test_bad_values_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        cloud_settings(env)
