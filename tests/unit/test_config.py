"""IPAM configuration and the one value parser: Go's syntax, manifest defaults, refusals."""

from __future__ import annotations

import re

import pytest

from vpccni.core.config import (
    BOOL_ACCEPTED,
    ConfigError,
    IpamConfig,
    parse_bool,
    parse_int,
    parse_ipam_config,
    parse_seconds,
)
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


# -- the one parser of values: Go's strconv.ParseBool and strconv.Atoi ---------------------------

GO_TRUE = ["1", "t", "T", "TRUE", "true", "True"]
GO_FALSE = ["0", "f", "F", "FALSE", "false", "False"]


@pytest.mark.parametrize("raw", GO_TRUE + GO_FALSE)
def test_parse_bool_accepts_exactly_gos_set(raw: str) -> None:
    assert parse_bool(raw) is (raw in GO_TRUE)


@pytest.mark.parametrize(
    "raw",
    ["yes", "no", "on", "off", "tRUE", "TrUe", "y", "2", "-1", " true", "true ", "", "\uff11"],
)
def test_parse_bool_refuses_everything_else(raw: str) -> None:
    with pytest.raises(ValueError, match="is not a boolean"):
        parse_bool(raw)


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("0", 0),
        ("5", 5),
        ("+5", 5),
        ("-5", -5),
        ("007", 7),
        ("-0", 0),
        (str(2**63 - 1), 2**63 - 1),
        (str(-(2**63)), -(2**63)),
    ],
)
def test_parse_int_accepts_what_atoi_accepts(raw: str, value: int) -> None:
    assert parse_int(raw) == value


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("1_000", "is not an integer"),  # Python's int() takes underscores
        (" 5", "is not an integer (remove the spaces around it)"),  # ... and spaces
        ("5\n", "is not an integer (remove the spaces around it)"),
        ("\u0663", "is not an integer"),  # ... and Arabic-Indic digits
        ("\uff15", "is not an integer"),  # ... and fullwidth digits
        ("5.0", "is not an integer"),
        ("1e3", "is not an integer"),
        ("0x10", "is not an integer"),
        ("", "is not an integer"),
        ("+", "is not an integer"),
        ("-", "is not an integer"),
        ("++5", "is not an integer"),
        (str(2**63), "is out of range"),
        (str(-(2**63) - 1), "is out of range"),
    ],
)
def test_parse_int_refuses_what_atoi_refuses(raw: str, why: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(why)):
        parse_int(raw)


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("0x80", 128),
        ("0X80", 128),
        ("0o17", 15),
        ("017", 15),
        ("0b101", 5),
        ("128", 128),
        ("0", 0),
        ("-0x1", -1),
        ("+0x1", 1),
        ("0x_8_0", 128),
        ("1_000", 1000),
        ("0_7", 7),
    ],
)
def test_parse_int_with_base_prefixes_is_parseint_base_0(raw: str, value: int) -> None:
    assert parse_int(raw, base_prefixes=True) == value


@pytest.mark.parametrize(
    "raw", ["0x", "08", "0b2", "0xg", "_1", "1_", "1__0", "0x_", "0_", " 0x80", "0x80 ", "", "-"]
)
def test_parse_int_with_base_prefixes_refuses_what_parseint_refuses(raw: str) -> None:
    with pytest.raises(ValueError, match="is not an integer"):
        parse_int(raw, base_prefixes=True)


@pytest.mark.parametrize(("raw", "value"), [("5", 5.0), ("0.2", 0.2), (".5", 0.5), ("5.", 5.0)])
def test_parse_seconds_accepts_decimals(raw: str, value: float) -> None:
    assert parse_seconds(raw) == value


@pytest.mark.parametrize("raw", ["nan", "inf", "1e3", "-1", " 5", "5s", "1_0", "", "\u0665"])
def test_parse_seconds_refuses_anything_else(raw: str) -> None:
    with pytest.raises(ValueError, match="is not a number of seconds"):
        parse_seconds(raw)


def test_ipam_variables_take_gos_syntax() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_ipam_config(
            {"WARM_IP_TARGET": "1_0", "ENABLE_PREFIX_DELEGATION": "yes", "MAX_ENI": " 2"}
        )
    assert caught.value.problems == (
        "WARM_IP_TARGET='1_0' is not an integer; accepted: 0 or more",
        "ENABLE_PREFIX_DELEGATION='yes' is not a boolean; accepted: " + BOOL_ACCEPTED,
        "MAX_ENI=' 2' is not an integer (remove the spaces around it); accepted: 1 or more, "
        "or -1 for the instance limit",
    )


def test_targets_beyond_the_node_are_warned_with_the_numbers() -> None:
    from vpccni.core.config import capacity_warnings

    config = parse_ipam_config({"MINIMUM_IP_TARGET": "500", "WARM_IP_TARGET": "27"})
    assert capacity_warnings(config, 3, 9) == [
        "MINIMUM_IP_TARGET=500 is more than this node can ever hold: 3 ENIs (the instance's "
        "limit) x 9 addresses = 27; the pool stops at 27 - lower MINIMUM_IP_TARGET, or enable "
        "prefix delegation"
    ]
    capped = parse_ipam_config({"WARM_IP_TARGET": "10", "MAX_ENI": "1"})
    assert capacity_warnings(capped, 1, 9)[0].startswith(
        "WARM_IP_TARGET=10 is more than this node can ever hold: 1 ENIs (MAX_ENI=1) x 9"
    )
    assert capacity_warnings(parse_ipam_config({}), 3, 9) == []


def test_a_cooldown_of_years_is_refused() -> None:
    with pytest.raises(
        ConfigError, match="IP_COOLDOWN_PERIOD='94608000' is too large; accepted: 0 to 3600"
    ):
        parse_ipam_config({"IP_COOLDOWN_PERIOD": "94608000"})
