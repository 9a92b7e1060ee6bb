"""The node entrypoints' own variables (upstream's entrypoint and init container read them),
parsed strictly with the daemon's one reader; the daemon's variables are ``vpccni.settings``'.

| variable | default | accepted |
| --- | --- | --- |
| ``HOST_CNI_BIN_PATH`` | ``/host/opt/cni/bin`` | absolute path |
| ``HOST_CNI_CONFDIR_PATH`` | ``/host/etc/cni/net.d`` | absolute path |
| ``DISABLE_TCP_EARLY_DEMUX`` | false | boolean |
| ``POD_MTU`` | ``AWS_VPC_ENI_MTU`` | integer 576-9001 |
| ``ENABLE_BANDWIDTH_PLUGIN`` | false | boolean |
| ``AWS_VPC_K8S_PLUGIN_LOG_FILE`` | ``/var/log/aws-routed-eni/plugin.log`` | absolute, or stderr |
| ``AWS_VPC_K8S_PLUGIN_LOG_LEVEL`` | Debug | debug, info, warn, error (any case) |
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from vpccni.core.config import ConfigError, SettingsReader

DEFAULT_BIN_DIR = Path("/host/opt/cni/bin")
DEFAULT_CONF_DIR = Path("/host/etc/cni/net.d")
DEFAULT_PLUGIN_LOG = "/var/log/aws-routed-eni/plugin.log"
PLUGIN_LOG_LEVELS = ("debug", "info", "warn", "warning", "error")
NETWORK_NAME = "aws-cni"


@dataclass(frozen=True)
class NodeSettings:
    """Where the plugin and the conflist go, and what the conflist and the sysctls say."""

    bin_dir: Path = DEFAULT_BIN_DIR
    conf_dir: Path = DEFAULT_CONF_DIR
    tcp_early_demux: bool = True
    pod_mtu: int = 9001
    bandwidth: bool = False
    plugin_log_file: str = DEFAULT_PLUGIN_LOG
    plugin_log_level: str = "Debug"
    network_name: str = NETWORK_NAME


def parse_node_settings(env: Mapping[str, str], eni_mtu: int) -> NodeSettings:
    """The node variables in ``env``; every bad one is named in one ``ConfigError``."""
    reader = SettingsReader(env)
    path_accepted = "an absolute directory path"
    settings = NodeSettings(
        bin_dir=reader.value("HOST_CNI_BIN_PATH", _absolute, DEFAULT_BIN_DIR, path_accepted),
        conf_dir=reader.value("HOST_CNI_CONFDIR_PATH", _absolute, DEFAULT_CONF_DIR, path_accepted),
        tcp_early_demux=not reader.flag("DISABLE_TCP_EARLY_DEMUX", False),
        pod_mtu=reader.integer("POD_MTU", eni_mtu, 576, 9001),
        bandwidth=reader.flag("ENABLE_BANDWIDTH_PLUGIN", False),
        plugin_log_file=reader.value(
            "AWS_VPC_K8S_PLUGIN_LOG_FILE",
            _log_file,
            DEFAULT_PLUGIN_LOG,
            "an absolute file path or stderr (stdout carries the CNI result)",
        ),
        plugin_log_level=reader.value(
            "AWS_VPC_K8S_PLUGIN_LOG_LEVEL", _log_level, "Debug", "debug, info, warn or error"
        ),
    )
    if reader.problems:
        raise ConfigError(reader.problems)
    return settings


def _absolute(raw: str) -> Path:
    if not raw.startswith("/") or raw != raw.strip():
        raise ValueError("is not an absolute path")
    return Path(raw)


def _log_file(raw: str) -> str:
    if raw == "stdout":
        raise ValueError("would mix the log into the CNI result the runtime reads")
    if raw != "stderr" and (not raw.startswith("/") or raw.endswith("/") or raw != raw.strip()):
        raise ValueError("is not an absolute file path")
    return raw


def _log_level(raw: str) -> str:
    if raw.lower() not in PLUGIN_LOG_LEVELS:
        raise ValueError("is not a log level")
    return raw
