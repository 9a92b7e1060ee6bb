"""IPAM configuration: upstream variable names, manifest defaults, bad values refused."""

from __future__ import annotations

import pytest

from vpccni.core.config import ConfigError, IpamConfig, parse_ipam_config
from vpccni.core.model import Mode


def test_unset_takes_the_shipped_manifest_defaults() -> None:
    config = parse_ipam_config({})
    assert config == IpamConfig()
    assert (config.warm_eni_target, config.warm_prefix_target, config.ip_cooldown_seconds) == (
        1,
        1,
        30,
    )
    assert config.ipv4
    assert not config.ipv6
    assert config.mode is Mode.SECONDARY_IP
    assert config.max_eni is None


def test_values_are_read() -> None:
    config = parse_ipam_config(
        {
            "WARM_ENI_TARGET": "0",
            "WARM_IP_TARGET": "5",
            "MINIMUM_IP_TARGET": "10",
            "WARM_PREFIX_TARGET": "2",
            "ENABLE_PREFIX_DELEGATION": "True",
            "MAX_ENI": "2",
            "IP_COOLDOWN_PERIOD": "0",
            "AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG": "1",
        }
    )
    assert config.warm_ip_targets_defined
    assert config.mode is Mode.PREFIX
    assert (config.warm_eni_target, config.warm_ip_target, config.minimum_ip_target) == (0, 5, 10)
    assert (config.warm_prefix_target, config.max_eni, config.ip_cooldown_seconds) == (2, 2, 0)
    assert config.custom_networking


def test_empty_values_count_as_unset_and_minus_one_max_eni_means_no_cap() -> None:
    config = parse_ipam_config({"WARM_IP_TARGET": "", "MAX_ENI": "-1"})
    assert config.warm_ip_target == 0
    assert config.max_eni is None


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("WARM_IP_TARGET", "five", "WARM_IP_TARGET='five' is not an integer; accepted: 0 or more"),
        ("WARM_IP_TARGET", "-1", "WARM_IP_TARGET='-1' is negative"),
        ("WARM_ENI_TARGET", "1.5", "WARM_ENI_TARGET='1.5' is not an integer"),
        ("MINIMUM_IP_TARGET", "-3", "is negative"),
        ("WARM_PREFIX_TARGET", "x", "WARM_PREFIX_TARGET='x' is not an integer"),
        ("ENABLE_PREFIX_DELEGATION", "yes", "ENABLE_PREFIX_DELEGATION='yes' is not a boolean"),
        ("MAX_ENI", "0", "MAX_ENI='0' is out of range; accepted: 1 or more, or -1"),
        ("MAX_ENI", "many", "MAX_ENI='many' is not an integer"),
        ("IP_COOLDOWN_PERIOD", "30s", "IP_COOLDOWN_PERIOD='30s' is not an integer"),
    ],
)
def test_bad_values_are_refused_with_name_value_and_accepted(
    name: str, value: str, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_ipam_config({name: value})
    assert message in str(caught.value)
    assert "Nothing was changed" in str(caught.value)


def test_every_bad_variable_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_ipam_config({"WARM_IP_TARGET": "a", "MAX_ENI": "b"})
    assert len(caught.value.problems) == 2


def test_prefix_mode_with_no_target_warns_like_upstreams_entry_point() -> None:
    config = parse_ipam_config({"ENABLE_PREFIX_DELEGATION": "true", "WARM_PREFIX_TARGET": "0"})
    assert any("refuses to start" in warning for warning in config.warnings())
    assert parse_ipam_config({}).warnings() == []
