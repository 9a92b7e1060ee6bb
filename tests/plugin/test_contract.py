"""The CNI contract of the installed ``vpccni-cni``, exec'd like a runtime does, per result version.

Against a running daemon (the fake, or the real one through ``VPCCNI_TEST_DAEMON_SOCKET``):
every verb, every supported cniVersion, the result shapes of 0.4.0 / 1.0.0 / 1.1.0, and daemon
errors passed through. Then with the daemon down: ADD 11, STATUS 50, CHECK/GC 11, and DEL exit
0 with a durable DEL record in the spool directory.
"""

from __future__ import annotations

import json
import os
import socket
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.plugin.fake_daemon import FakeDaemon
from tests.plugin.runtime import (
    ALL_VERSIONS,
    NETWORK,
    VERSIONS,
    Runtime,
    exec_plugin,
    network_config,
)

CNI_VERSION_REPLY = {"cniVersion": "1.1.0", "supportedVersions": list(ALL_VERSIONS)}


def assert_error(outcome: Any, code: int, version: str = "1.1.0") -> dict[str, Any]:
    assert outcome.status != 0, outcome
    body: dict[str, Any] = outcome.json()
    assert body["code"] == code, body
    assert body["cniVersion"] == version
    assert isinstance(body["msg"], str)
    assert body["msg"]
    assert isinstance(body["details"], str)
    assert "Traceback" not in outcome.stderr
    return body


def assert_silent_success(outcome: Any) -> None:
    assert (outcome.status, outcome.stdout) == (0, ""), outcome


def added(runtime: Runtime, version: str, container_id: str = "c0ffee") -> dict[str, Any]:
    outcome = runtime.call("ADD", network_config(version), container_id)
    assert outcome.status == 0, outcome
    result: dict[str, Any] = outcome.json()
    return result


# --- VERSION ---


@pytest.mark.parametrize("stdin", [b"", b'{"cniVersion": "1.0.0"}', b"\xff not json"])
def test_version_needs_nothing_but_the_command(plugin: Path, stdin: bytes) -> None:
    outcome = exec_plugin(plugin, {"CNI_COMMAND": "VERSION"}, stdin)
    assert outcome.status == 0
    assert outcome.json() == CNI_VERSION_REPLY
    assert outcome.stderr == ""


# --- against a running daemon ---


@pytest.mark.parametrize("version", VERSIONS)
def test_add_returns_a_result_in_the_configs_version(runtime: Runtime, version: str) -> None:
    result = added(runtime, version)
    assert next(iter(result)) == "cniVersion"
    assert result["cniVersion"] == version
    assert result["ips"], result
    for ip in result["ips"]:
        assert ip["address"].endswith("/32")
        assert ("version" in ip) is (version == "0.4.0")
        if version == "0.4.0":
            assert ip["version"] == "4"
        if "interface" in ip:
            assert 0 <= ip["interface"] < len(result["interfaces"])
    for route in result.get("routes", []):
        assert set(route) <= {"dst", "gw"} or version != "0.4.0"


def test_0_4_0_result_keeps_only_the_0_4_0_fields(
    runtime: Runtime, fake_daemon: FakeDaemon
) -> None:
    result = added(runtime, "0.4.0")
    assert set(result) <= {"cniVersion", "interfaces", "ips", "routes", "dns"}
    assert all(set(item) <= {"name", "mac", "sandbox"} for item in result["interfaces"])
    assert result["interfaces"][1]["sandbox"] == runtime.netns
    assert result["ips"][0] == {
        "version": "4",
        "interface": 1,
        "address": result["ips"][0]["address"],
        "gateway": "169.254.1.1",
    }


@pytest.mark.parametrize("version", VERSIONS)
def test_check_passes_for_the_added_pod_and_fails_after_del(runtime: Runtime, version: str) -> None:
    result = added(runtime, version)
    config = network_config(version, prevResult=result)
    assert_silent_success(runtime.call("CHECK", config))
    assert_silent_success(runtime.call("DEL", config))
    assert_error(runtime.call("CHECK", config), 102, version)


@pytest.mark.parametrize("version", VERSIONS)
def test_check_reports_a_different_address(runtime: Runtime, version: str) -> None:
    result = added(runtime, version)
    result["ips"][0]["address"] = "10.255.255.254/32"
    assert_error(runtime.call("CHECK", network_config(version, prevResult=result)), 102, version)


@pytest.mark.parametrize("version", VERSIONS)
def test_del_is_idempotent_and_releases_the_address(
    runtime: Runtime, fake_daemon: FakeDaemon, version: str
) -> None:
    result = added(runtime, version)
    config = network_config(version, prevResult=result)
    assert ("aws-cni", "c0ffee", "eth0") in fake_daemon.state()
    assert_silent_success(runtime.call("DEL", config))
    assert_silent_success(runtime.call("DEL", config))
    assert_silent_success(runtime.call("DEL", network_config(version), "never-added"))
    assert fake_daemon.state() == {}


def test_del_without_netns_reaches_the_daemon(runtime: Runtime, fake_daemon: FakeDaemon) -> None:
    added(runtime, "1.0.0")
    assert_silent_success(runtime.call("DEL", network_config("1.0.0"), CNI_NETNS="-"))
    assert fake_daemon.state() == {}


def test_the_request_carries_the_cni_variables_and_the_config_unchanged(
    runtime: Runtime, fake_daemon: FakeDaemon
) -> None:
    """ADD and CHECK name the two descriptors they pass (the pod's namespace and a netlink
    socket in it: docs/plugin-api.md); DEL, GC and STATUS pass none and carry no ``fds``."""
    config = network_config("1.1.0", runtimeConfig={"portMappings": []}, args={"x": [1, 2.5]})
    add = runtime.call("ADD", config, "pod-7", "eth1")
    assert add.status == 0, add
    attachments = [{"containerID": "pod-7", "ifname": "eth1"}]
    configs = {
        "ADD": config,
        "CHECK": {**config, "prevResult": add.json()},
        "DEL": {**config, "prevResult": add.json()},
        "GC": {**config, "cni.dev/valid-attachments": attachments},
        "STATUS": config,
    }
    for command in ("CHECK", "DEL", "GC", "STATUS"):
        outcome = runtime.call(command, configs[command], "pod-7", "eth1")
        assert outcome.status == 0, (command, outcome)
    assert len(fake_daemon.requests) == len(configs)
    for (command, sent), request, passed in zip(
        configs.items(), fake_daemon.requests, fake_daemon.passed, strict=True
    ):
        expected = {
            "version": 1,
            "op": command.lower(),
            "cni": {
                "command": command,
                "container_id": "pod-7",
                "netns": runtime.netns,
                "ifname": "eth1",
                "args": "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0",
                "path": "/opt/cni/bin",
            },
            "config": sent,
        }
        if command in ("ADD", "CHECK"):
            expected["fds"] = ["netns", "netlink"]
            assert len(passed) == 2, (command, passed)
            netns, netlink = passed
            assert netns["netns_inode"] == os.stat(runtime.netns).st_ino, (command, passed)
            assert netlink["netns_inode"] == netns["netns_inode"], (command, passed)
        else:
            assert passed == [], (command, passed)
        assert request == expected, command


def test_gc_releases_what_is_not_listed(runtime: Runtime, fake_daemon: FakeDaemon) -> None:
    keep = added(runtime, "1.1.0", "keep")
    gone = added(runtime, "1.1.0", "gone")
    valid = [{"containerID": "keep", "ifname": "eth0"}]
    gc = network_config("1.1.0", **{"cni.dev/valid-attachments": valid})
    assert_silent_success(runtime.call("GC", gc, CNI_CONTAINERID="-", CNI_IFNAME="-"))
    assert_silent_success(runtime.call("CHECK", network_config("1.1.0", prevResult=keep), "keep"))
    assert_error(runtime.call("CHECK", network_config("1.1.0", prevResult=gone), "gone"), 102)


def test_status_succeeds_silently_when_ready(runtime: Runtime) -> None:
    assert_silent_success(runtime.call("STATUS", network_config("1.1.0")))


def test_status_is_50_when_the_daemon_is_not_ready(
    runtime: Runtime, fake_daemon: FakeDaemon
) -> None:
    fake_daemon.ready = False
    assert_error(runtime.call("STATUS", network_config("1.1.0")), 50)


@pytest.mark.parametrize("verb", ["GC", "STATUS"])
@pytest.mark.parametrize("version", ["0.4.0", "1.0.0"])
def test_gc_and_status_need_1_1_0(
    runtime: Runtime, fake_daemon: FakeDaemon, verb: str, version: str
) -> None:
    config = network_config(version, **{"cni.dev/valid-attachments": []})
    body = assert_error(runtime.call(verb, config), 1, version)
    assert verb in body["msg"]
    assert fake_daemon.requests == []


def test_add_into_a_missing_netns_is_refused_by_the_daemon(runtime: Runtime) -> None:
    outcome = runtime.call("ADD", network_config("1.0.0"), CNI_NETNS="/nonexistent/netns")
    assert_error(outcome, 4, "1.0.0")


@pytest.mark.parametrize("code", [11, 103])
def test_daemon_errors_pass_through_with_their_code(
    runtime: Runtime, fake_daemon: FakeDaemon, code: int
) -> None:
    fake_daemon.error = {"code": code, "msg": "no IP address available yet", "details": "pool"}
    body = assert_error(runtime.call("ADD", network_config("0.4.0")), code, "0.4.0")
    assert (body["msg"], body["details"]) == ("no IP address available yet", "pool")


def test_a_daemon_del_error_is_not_hidden(runtime: Runtime, fake_daemon: FakeDaemon) -> None:
    fake_daemon.error = {"code": 11, "msg": "ipamd is stopping"}
    assert_error(runtime.call("DEL", network_config("1.0.0")), 11, "1.0.0")


def test_config_keys_name_the_socket_when_the_environment_does_not(
    runtime: Runtime, fake_daemon: FakeDaemon
) -> None:
    config = network_config("1.0.0", socket=str(fake_daemon.socket_path))
    assert runtime.call("ADD", config, VPCCNI_SOCKET="-").status == 0
    assert len(fake_daemon.requests) == 1


def test_the_environment_wins_over_the_config(runtime: Runtime, fake_daemon: FakeDaemon) -> None:
    config = network_config("1.0.0", socket="/nonexistent/ipamd.sock")
    assert runtime.call("ADD", config).status == 0


def test_an_invalid_reply_is_try_again_later(plugin: Path, short_dir: Path, netns: str) -> None:
    path = short_dir / "odd.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
        server.bind(str(path))
        server.listen()
        runtime = Runtime(plugin, path, short_dir / "spool", netns)

        def answer() -> None:
            connection, _ = server.accept()
            with connection:
                connection.recv(65536)
                connection.sendall(b'{"version": 1, "ok": true, "result": []}\n')

        thread = threading.Thread(target=answer)
        thread.start()
        body = assert_error(runtime.call("ADD", network_config("1.0.0")), 11, "1.0.0")
        thread.join()
    assert "invalid reply" in body["msg"]


# --- with the daemon down ---


def test_add_with_the_daemon_down_is_11_naming_the_socket(runtime_daemon_down: Runtime) -> None:
    body = assert_error(runtime_daemon_down.call("ADD", network_config("1.0.0")), 11, "1.0.0")
    assert str(runtime_daemon_down.socket) in body["msg"]
    assert "unreachable" in body["msg"]


def test_status_with_the_daemon_down_is_50(runtime_daemon_down: Runtime) -> None:
    assert_error(runtime_daemon_down.call("STATUS", network_config("1.1.0")), 50)


def test_check_and_gc_with_the_daemon_down_are_11(runtime_daemon_down: Runtime) -> None:
    previous = {"ips": [{"address": "10.0.1.5/32"}]}
    check = network_config("1.1.0", prevResult=previous)
    gc = network_config("1.1.0", **{"cni.dev/valid-attachments": []})
    assert_error(runtime_daemon_down.call("CHECK", check), 11)
    assert_error(runtime_daemon_down.call("GC", gc), 11)


def spool_record(spool: Path) -> dict[str, Any]:
    (path,) = spool.iterdir()
    assert path.name == "c0ffee-eth0.json"
    assert path.stat().st_mode & 0o777 == 0o600
    record: dict[str, Any] = json.loads(path.read_text())
    return record


@pytest.mark.parametrize("version", VERSIONS)
def test_del_with_the_daemon_down_succeeds_and_spools_the_prev_result_ips(
    runtime: Runtime, runtime_daemon_down: Runtime, version: str
) -> None:
    result = added(runtime, version)
    outcome = runtime_daemon_down.call("DEL", network_config(version, prevResult=result))
    assert_silent_success(outcome)
    assert "recorded" in outcome.stderr
    record = spool_record(runtime_daemon_down.spool)
    address = result["ips"][0]["address"].split("/")[0]
    assert record == {
        "version": 1,
        "network": NETWORK,
        "container_id": "c0ffee",
        "ifname": "eth0",
        "ips": [address],
        "spooled_at": record["spooled_at"],
    }
    assert isinstance(record["spooled_at"], float)


def test_del_with_the_daemon_down_and_no_prev_result_spools_no_ips(
    runtime_daemon_down: Runtime,
) -> None:
    assert_silent_success(runtime_daemon_down.call("DEL", network_config("1.0.0")))
    assert spool_record(runtime_daemon_down.spool)["ips"] == []


def test_del_with_the_daemon_hanging_up_spools_too(
    runtime: Runtime, fake_daemon: FakeDaemon
) -> None:
    fake_daemon.behaviour = "close"
    assert_silent_success(runtime.call("DEL", network_config("1.0.0")))
    assert spool_record(runtime.spool)["container_id"] == "c0ffee"
    assert_error(runtime.call("ADD", network_config("1.0.0")), 11, "1.0.0")


def test_del_record_file_names_replace_odd_characters(runtime_daemon_down: Runtime) -> None:
    outcome = runtime_daemon_down.call("DEL", network_config("1.0.0"), ifname="net@1")
    assert_silent_success(outcome)
    assert [path.name for path in runtime_daemon_down.spool.iterdir()] == ["c0ffee-net_1.json"]


def test_del_fails_with_11_when_the_record_cannot_be_written(
    runtime_daemon_down: Runtime, short_dir: Path
) -> None:
    blocker = short_dir / "a-file"
    blocker.write_text("")
    outcome = runtime_daemon_down.call(
        "DEL", network_config("1.0.0"), VPCCNI_SPOOL_DIR=str(blocker / "spool")
    )
    assert "DEL record" in assert_error(outcome, 11, "1.0.0")["msg"]


def test_status_times_out_as_not_available(runtime: Runtime, fake_daemon: FakeDaemon) -> None:
    fake_daemon.behaviour = "hang"
    body = assert_error(runtime.call("STATUS", network_config("1.1.0")), 50)
    assert "no reply within" in body["details"]
