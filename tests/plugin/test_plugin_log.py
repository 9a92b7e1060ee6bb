"""The plugin log: one line per call with its result, as upstream's plugin.log, never a failure.

``AWS_VPC_K8S_PLUGIN_LOG_FILE`` / ``AWS_VPC_K8S_PLUGIN_LOG_LEVEL`` (or the config keys
``pluginLogFile`` / ``pluginLogLevel`` upstream's installer writes) name the file and level; a
failed ADD leaves its evidence after kubelet has moved on; a planted session token never
appears; a log that cannot be written changes nothing in the CNI result.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.plugin.runtime import Runtime, network_config

TOKEN = "FwoGZXIvYXdzEPLANTEDSESSIONTOKENc2VjcmV0LXRva2Vu"


@pytest.mark.parametrize("level", ["debug", "INFO", "warn", "error"])
def test_one_line_per_call_at_the_level_asked(
    runtime: Runtime, runtime_daemon_down: Runtime, short_dir: Path, level: str
) -> None:
    log = short_dir / "log" / "plugin.log"
    env = {
        "AWS_VPC_K8S_PLUGIN_LOG_FILE": str(log),
        "AWS_VPC_K8S_PLUGIN_LOG_LEVEL": level,
        "AWS_SESSION_TOKEN": TOKEN,
    }
    config = network_config("1.0.0")
    added = runtime.call("ADD", config, "pod1", **env)
    assert added.status == 0, added
    address = added.json()["ips"][0]["address"]
    assert runtime.call("DEL", config, "pod1", **env).status == 0
    failed = runtime_daemon_down.call("ADD", config, "pod2", **env)
    assert failed.status != 0
    lines = log.read_text().splitlines() if log.exists() else []
    every_call = level.lower() in ("debug", "info")
    assert len(lines) == (3 if every_call else 1)
    if every_call:
        assert " ADD network=aws-cni container=pod1 ifname=eth0 " in lines[0]
        assert lines[0].split(" -> ")[1].startswith(f"ok {address} (")
        assert " DEL network=aws-cni container=pod1 " in lines[1]
    assert " ADD network=aws-cni container=pod2 " in lines[-1]
    assert " -> error 11: the vpccni daemon is unreachable at " in lines[-1]
    assert TOKEN not in log.read_text()
    assert log.stat().st_mode & 0o777 == 0o600


def test_the_config_keys_name_the_log_too(runtime: Runtime, short_dir: Path) -> None:
    log = short_dir / "plugin.log"
    config = network_config("1.0.0", pluginLogFile=str(log), pluginLogLevel="Debug")
    assert runtime.call("ADD", config, "pod1").status == 0
    assert "ADD network=aws-cni container=pod1" in log.read_text()


@pytest.mark.parametrize("where", ["/proc/vpccni.log", "/dev/null/plugin.log", "relative.log"])
def test_a_log_that_cannot_be_written_never_fails_the_call(runtime: Runtime, where: str) -> None:
    outcome = runtime.call(
        "ADD", network_config("1.0.0"), "pod1", AWS_VPC_K8S_PLUGIN_LOG_FILE=where
    )
    assert outcome.status == 0, outcome
    assert outcome.json()["ips"]
    assert outcome.stderr == ""
    assert not (Path.cwd() / where).exists()


def test_stdout_is_never_the_log_it_carries_the_result(runtime: Runtime) -> None:
    outcome = runtime.call(
        "ADD", network_config("1.0.0"), "pod1", AWS_VPC_K8S_PLUGIN_LOG_FILE="stdout"
    )
    assert outcome.status == 0, outcome
    assert outcome.json()["ips"]  # stdout is exactly the CNI result
    assert " ADD network=aws-cni container=pod1 " in outcome.stderr
