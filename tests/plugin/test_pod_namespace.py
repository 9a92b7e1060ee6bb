"""ADD and CHECK pass the pod's network namespace to the daemon as file descriptors; DEL, GC
and STATUS pass nothing (docs/plugin-api.md). Checked on what the fake daemon receives: the
request names ``"fds": ["netns", "netlink"]`` and exactly two descriptors come with it, the
namespace ``CNI_NETNS`` names and a ``NETLINK_ROUTE`` datagram socket living in it. A namespace
that cannot be opened or entered is CNI error 4 before the daemon is asked. And the start-up
cost of entering it: ``ctypes`` is loaded only on interpreters without ``posix.setns`` (3.12+),
and nothing heavy besides what ``ctypes`` itself imports.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.plugin.fake_daemon import FakeDaemon
from tests.plugin.runtime import Runtime, network_config
from vpccni.cli import install_cni_cmd

HEAVY = {"json", "socket", "os", "re", "enum", "ipaddress", "typing", "collections", "functools"}


def assert_passed_the_namespace(daemon: FakeDaemon, netns: str) -> None:
    request = daemon.requests[-1]
    assert request["fds"] == ["netns", "netlink"]
    namespace, netlink = daemon.passed[-1]  # exactly two, in this order
    assert namespace["netns"], namespace
    assert namespace["netns_inode"] == os.stat(netns).st_ino
    assert (netlink["family"], netlink["protocol"], netlink["type"]) == (16, 0, 2), netlink
    assert netlink["netns_inode"] == namespace["netns_inode"]  # created inside the pod's


def test_add_and_check_pass_the_namespace_and_a_netlink_socket_in_it(
    runtime: Runtime, fake_daemon: FakeDaemon
) -> None:
    added = runtime.call("ADD", network_config("1.0.0"))
    assert added.status == 0, added.stdout
    assert_passed_the_namespace(fake_daemon, runtime.netns)
    checked = runtime.call("CHECK", network_config("1.0.0", prevResult=added.json()))
    assert checked.status == 0, checked.stdout
    assert_passed_the_namespace(fake_daemon, runtime.netns)


def test_del_gc_and_status_pass_nothing(runtime: Runtime, fake_daemon: FakeDaemon) -> None:
    added = runtime.call("ADD", network_config("1.1.0"))
    config = network_config("1.1.0", prevResult=added.json())
    assert runtime.call("DEL", config).status == 0
    gc = network_config("1.1.0", **{"cni.dev/valid-attachments": []})
    assert runtime.call("GC", gc).status == 0
    assert runtime.call("STATUS", network_config("1.1.0")).status == 0
    assert [r["op"] for r in fake_daemon.requests[1:]] == ["del", "gc", "status"]
    assert all("fds" not in r for r in fake_daemon.requests[1:])
    assert fake_daemon.passed[1:] == [[], [], []]


@pytest.mark.parametrize("command", ["ADD", "CHECK"])
def test_a_namespace_that_cannot_be_opened_is_error_4_before_the_daemon(
    runtime: Runtime, fake_daemon: FakeDaemon, command: str
) -> None:
    config = network_config("1.0.0", prevResult={"cniVersion": "1.0.0", "ips": []})
    outcome = runtime.call(command, config, CNI_NETNS="/nonexistent/netns")
    body = json.loads(outcome.stdout)
    assert (outcome.status, body["code"]) == (1, 4)
    assert body["msg"] == (
        "CNI_NETNS /nonexistent/netns: cannot open the network namespace: No such file or directory"
    )
    assert fake_daemon.requests == []


def test_a_file_that_is_not_a_namespace_is_error_4_before_the_daemon(
    runtime: Runtime, fake_daemon: FakeDaemon
) -> None:
    not_a_namespace = str(runtime.plugin)
    outcome = runtime.call("ADD", network_config("1.0.0"), CNI_NETNS=not_a_namespace)
    body = json.loads(outcome.stdout)
    assert (outcome.status, body["code"]) == (1, 4)
    assert body["msg"].startswith(f"CNI_NETNS {not_a_namespace}: "), body
    assert fake_daemon.requests == []


# --- start-up: what entering the namespace costs in imports (the Python plugin) ---


def interpreters() -> list[str]:
    """The interpreter install-cni chooses, and any 3.12+ one installed (with posix.setns)."""
    found = [install_cni_cmd.choose_interpreter(None)]
    for path in sorted(Path.home().glob(".pyenv/versions/3.1[2-9]*/bin/python3.1[2-9]")):
        if str(path) not in found:
            found.append(str(path))
    return found


INTERPRETERS = interpreters()


@pytest.fixture(params=INTERPRETERS, ids=[Path(path).name for path in INTERPRETERS])
def python_plugin_on(request: pytest.FixtureRequest) -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="vpccni-imports-", dir="/tmp"))
    try:
        yield install_cni_cmd.install_plugin(directory, request.param)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def imported(interpreter: str, arguments: list[str], env: dict[str, str], stdin: bytes) -> set[str]:
    """Modules loaded, read from ``-X importtime`` with the plugin's own flags."""
    done = subprocess.run(
        [interpreter, "-IS", "-X", "importtime", *arguments],
        env=env,
        input=stdin,
        capture_output=True,
        timeout=60,
        check=False,
    )
    lines = done.stderr.decode().splitlines()
    return {line.rsplit("|", 1)[1].strip() for line in lines if line.startswith("import time:")}


@pytest.mark.parametrize("command", ["ADD", "CHECK"])
def test_entering_the_namespace_loads_ctypes_only_without_posix_setns(
    python_plugin_on: Path, fake_daemon: FakeDaemon, netns: str, command: str
) -> None:
    interpreter = python_plugin_on.read_text().splitlines()[0][2:].split()[0]
    spool = fake_daemon.socket_path.parent / "spool"
    runtime = Runtime(python_plugin_on, fake_daemon.socket_path, spool, netns)
    added: dict[str, Any] = runtime.call("ADD", network_config("1.0.0")).json()
    config = json.dumps(network_config("1.0.0", prevResult=added)).encode()
    modules = imported(interpreter, [str(python_plugin_on)], runtime.env(command), config)
    assert fake_daemon.requests[-1]["op"] == command.lower()  # it did reach the daemon
    has_setns = subprocess.run(
        [interpreter, "-IS", "-c", "import posix; print(hasattr(posix, 'setns'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if has_setns == "True":
        assert "ctypes" not in modules
        assert modules & HEAVY == set()
    else:
        assert "ctypes" in modules
        ctypes_needs = imported(interpreter, ["-c", "import ctypes"], {}, b"")
        assert modules & HEAVY <= ctypes_needs, (modules & HEAVY) - ctypes_needs
