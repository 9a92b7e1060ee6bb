"""The DaemonSet's environment: the catalogue is tied to the parsers that read it, the defaults
are upstream's shipped values, and every value is checked with vpccni's own parsers."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import pytest

from vpccni.core.config import ConfigError, IpamConfig
from vpccni.deploy.variables import (
    DAEMON_VARIABLES,
    NODE_VARIABLES,
    READ_BY_VPCCNI,
    UPSTREAM_INIT_ENV,
    UPSTREAM_MANIFEST_ENV,
    UPSTREAM_VARIABLES,
    Assignment,
    default_environment,
    node_environment,
    unknown_name,
)
from vpccni.node.env import parse_node_settings
from vpccni.settings import DatapathSettings, parse_settings


class Recorder(Mapping[str, str]):
    """An empty environment that remembers every name asked of it."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def __getitem__(self, name: str) -> str:
        self.asked.append(name)
        raise KeyError(name)

    def get(self, name: str, default: object = None) -> object:  # type: ignore[override]
        self.asked.append(name)
        return default

    def __contains__(self, name: object) -> bool:
        self.asked.append(str(name))
        return False

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def set_(*pairs: str) -> list[Assignment]:
    return [Assignment(*pair.split("=", 1), origin="--set") for pair in pairs]


def test_daemon_variables_are_what_the_daemon_reads() -> None:
    recorder = Recorder()
    parse_settings(recorder)
    assert sorted(set(recorder.asked)) == sorted(DAEMON_VARIABLES)


def test_node_variables_are_what_the_node_commands_read() -> None:
    recorder = Recorder()
    parse_node_settings(recorder, 9001)
    assert sorted(set(recorder.asked)) == sorted(NODE_VARIABLES)


def test_defaults_are_upstreams_manifest_values_for_what_vpccni_reads() -> None:
    defaults = default_environment()
    upstream = {**UPSTREAM_MANIFEST_ENV, **UPSTREAM_INIT_ENV}
    assert set(defaults) <= READ_BY_VPCCNI
    for name, value in defaults.items():
        assert value == upstream.get(name, value), name
    # Every upstream manifest variable vpccni reads is set, with upstream's value.
    assert {n for n in upstream if n in READ_BY_VPCCNI} <= set(defaults)
    # Every upstream variable is read by vpccni (honoured, refused unless default, or noted).
    assert UPSTREAM_VARIABLES <= READ_BY_VPCCNI
    assert defaults["DISABLE_NETWORK_RESOURCE_PROVISIONING"] == "false"
    # vpccni's code defaults already equal upstream's manifest for the IPAM variables.
    assert parse_settings(defaults).ipam == IpamConfig()
    assert parse_settings(defaults).datapath == DatapathSettings()


def test_a_bad_value_gets_the_daemons_own_words() -> None:
    with pytest.raises(ConfigError) as caught:
        node_environment(set_("WARM_IP_TARGET=abc"))
    with pytest.raises(ConfigError) as daemon:
        parse_settings({"WARM_IP_TARGET": "abc"})
    assert caught.value.problems == daemon.value.problems
    assert str(caught.value) == str(daemon.value)


def test_every_problem_is_listed_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        node_environment(
            set_(
                "AWS_VPC_ENI_MTU=100",
                "POD_MTU=x",
                "ENABLE_POD_ENI=true",
                "AWS_VPC_K8S_CNI_LOG_FILE=/var/log/ipamd.log",
                "HOST_CNI_BIN_PATH=/opt/cni/bin",
            )
        )
    text = "\n".join(caught.value.problems)
    for name in (
        "AWS_VPC_ENI_MTU='100' is too small",  # the daemon's parser
        "POD_MTU='x' is not an integer",  # the node commands' parser
        "ENABLE_POD_ENI=true: security groups for pods are not supported",  # start-up refusal
        "AWS_VPC_K8S_CNI_LOG_FILE='/var/log/ipamd.log' is not on a writable mount",
        "HOST_CNI_BIN_PATH='/opt/cni/bin' is not a directory under /host/",
    ):
        assert name in text
    assert len(caught.value.problems) == 5


def test_the_probes_must_reach_the_health_endpoints() -> None:
    for bind in ("unix:/run/vpccni/introspection.sock", "10.0.0.5:61679", "[::1]:61679"):
        with pytest.raises(ConfigError, match="cannot be reached by the probes"):
            node_environment(set_(f"INTROSPECTION_BIND_ADDRESS={bind}"))
    for bind, port in (("127.0.0.1:7000", 7000), ("0.0.0.0:7001", 7001), (":7002", 7002)):
        assert node_environment(set_(f"INTROSPECTION_BIND_ADDRESS={bind}")).probe_port == port
    # With introspection off the daemon still serves /healthz and /readyz on its address.
    assert node_environment(set_("DISABLE_INTROSPECTION=true")).probe_port == 61679


def test_names_unknown_fixed_or_repeated_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"did you mean WARM_IP_TARGET"):
        node_environment(set_("WARM_IP_TRAGET=3"))
    with pytest.raises(ConfigError, match=r"did you mean ENABLE_IPv6\?"):
        node_environment(set_("enable_ipv6=false"))
    with pytest.raises(ConfigError, match="downward API"):
        node_environment(set_("MY_NODE_NAME=n1"))
    with pytest.raises(ConfigError, match="already set by --set"):
        node_environment(set_("WARM_IP_TARGET=3", "WARM_IP_TARGET=4"))
    assert "did you mean" not in unknown_name("COMPLETELY_DIFFERENT_THING")


def test_an_empty_value_removes_a_default_and_deprecated_names_warn() -> None:
    environment = node_environment(set_("AWS_VPC_K8S_CNI_LOG_FILE=", "ENABLE_NFTABLES=true"))
    assert "AWS_VPC_K8S_CNI_LOG_FILE" not in environment.values
    assert environment.settings.daemon.log_file == "stderr"
    assert environment.values["ENABLE_NFTABLES"] == "true"
    assert environment.warnings == (
        "ENABLE_NFTABLES='true' has no effect: it is deprecated and upstream no longer reads it "
        "either; remove it",
    )


def test_an_upstream_variable_vpccni_cannot_honour_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"ANNOTATE_POD_IP='true' cannot be honoured"):
        node_environment(set_("ANNOTATE_POD_IP=true"))
    assert node_environment(set_("ANNOTATE_POD_IP=false")).warnings == ()
