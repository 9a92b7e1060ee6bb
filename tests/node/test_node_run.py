"""``vpccni node-run`` with a real ipamd child against the emulator: the order (plugin, ipamd,
conflist only once ipamd answers), bad settings refused before anything starts, SIGTERM
forwarded, and an ipamd that dies taking node-run down with a non-zero status."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.daemon.conftest import Node


def host_dirs(node: Node) -> tuple[Path, Path]:
    bin_dir, conf_dir = node.directory / "bin", node.directory / "net.d"
    bin_dir.mkdir(exist_ok=True)
    conf_dir.mkdir(exist_ok=True)
    node.env.update(HOST_CNI_BIN_PATH=str(bin_dir), HOST_CNI_CONFDIR_PATH=str(conf_dir))
    return bin_dir, conf_dir


def node_run(node: Node, *ipamd: str, **popen: Any) -> subprocess.Popen[str]:
    command = [
        *(sys.executable, "-m", "vpccni.cli.main", "node-run", "--plugin", "python"),
        *("--datapath", "none", "--"),
        *("--socket", str(node.socket), "--checkpoint-dir", str(node.directory / "checkpoint")),
        *("--spool-dir", str(node.directory / "spool"), "--introspection-bind", node.introspection),
        *("--metrics-bind", "none", "--tick-seconds", "0.2"),
        *ipamd,
    ]
    return subprocess.Popen(
        command, env=node.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen
    )


def wait_for(
    condition: Any, process: subprocess.Popen[str], what: str, timeout: float = 30
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            out, err = process.communicate()
            pytest.fail(f"node-run exited {process.returncode} before {what}:\n{out}\n{err}")
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0): look at its state
    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return state != "Z"


def ipamd_pid(output: str) -> int:
    found = re.search(r"started ipamd \(pid (\d+)\)", output)
    assert found, output
    return int(found.group(1))


def test_node_run_installs_waits_writes_the_conflist_and_forwards_sigterm(
    make_node: Any,
) -> None:
    node = make_node()
    bin_dir, conf_dir = host_dirs(node)
    process = node_run(node)
    conflist = conf_dir / "10-vpccni.conflist"
    wait_for(conflist.exists, process, "the conflist")
    # the daemon answers when the conflist appears, and the plugin was there before it
    assert node.rpc({"op": "status"})["ok"]
    plugin = bin_dir / "vpccni-cni"
    assert plugin.stat().st_mtime <= conflist.stat().st_mtime
    assert plugin.read_bytes().startswith(b"#!/usr/bin/python3 -IS\n")
    document = json.loads(conflist.read_text())
    assert document["name"] == "aws-cni"
    assert document["plugins"][0] == {
        "type": "vpccni-cni",
        "mtu": 9001,
        "socket": str(node.socket),
        "spoolDir": str(node.directory / "spool"),
        "pluginLogFile": "/var/log/aws-routed-eni/plugin.log",
        "pluginLogLevel": "Debug",
    }
    time.sleep(0.5)
    assert process.poll() is None  # stays in the foreground
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    lines = [line for line in out.splitlines() if line.startswith("vpccni: ")]
    assert lines[0].startswith(f"vpccni: installed {plugin}: Python plugin with /usr/bin/python3")
    assert lines[1].startswith("vpccni: started ipamd (pid ")
    assert lines[2].startswith(f"vpccni: installed {conflist} (network aws-cni: vpccni-cni")
    assert lines[-1] == "vpccni: ipamd stopped after signal 15 (exit 0)"
    assert not alive(ipamd_pid(out))
    assert not node.socket.exists()  # ipamd shut down cleanly and removed its socket


def test_the_conflist_waits_for_ipamd_and_sigterm_while_waiting_writes_none(
    make_node: Any,
) -> None:
    node = make_node(knobs={"faults": {"DescribeInstances": {"rate": 1.0}}})
    bin_dir, conf_dir = host_dirs(node)
    node.env["POD_MTU"] = "1500"
    process = node_run(node)
    wait_for((bin_dir / "vpccni-cni").exists, process, "the plugin")
    time.sleep(2.0)  # ipamd keeps failing its start-up (DescribeInstances fails)
    assert process.poll() is None
    assert list(conf_dir.iterdir()) == []
    set_knobs(node, {"faults": {}})
    conflist = conf_dir / "10-vpccni.conflist"
    wait_for(conflist.exists, process, "the conflist once EC2 answers", timeout=60)
    assert json.loads(conflist.read_text())["plugins"][0]["mtu"] == 1500
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=30) == 0


def test_sigterm_before_ipamd_is_ready_stops_it_and_writes_no_conflist(make_node: Any) -> None:
    node = make_node(knobs={"faults": {"DescribeInstances": {"rate": 1.0}}})
    bin_dir, conf_dir = host_dirs(node)
    process = node_run(node)
    wait_for((bin_dir / "vpccni-cni").exists, process, "the plugin")
    time.sleep(1.0)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert not alive(ipamd_pid(out))
    assert list(conf_dir.iterdir()) == []


def set_knobs(node: Node, knobs: dict[str, Any]) -> None:
    request = urllib.request.Request(
        f"{node.server.endpoint}/admin/knobs",
        data=json.dumps(knobs).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    urllib.request.urlopen(request, timeout=10).close()


@pytest.mark.parametrize(
    ("signal_number", "status"), [(signal.SIGKILL, 128 + 9), (signal.SIGTERM, 1)]
)
def test_an_ipamd_that_dies_takes_node_run_down_non_zero(
    make_node: Any, signal_number: int, status: int
) -> None:
    node = make_node()
    _, conf_dir = host_dirs(node)
    process = node_run(node)
    wait_for((conf_dir / "10-vpccni.conflist").exists, process, "the conflist")
    # node-run's stdout is read only at the end: find its child in /proc
    children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
    assert len(children) == 1
    os.kill(int(children[0]), signal_number)  # SIGTERM: ipamd stops cleanly, exit 0, by itself
    _, err = process.communicate(timeout=30)
    assert process.returncode == status, err
    last = err.splitlines()[-1]  # ipamd's own log lines come first (it shares stderr)
    assert last == (
        f"error: ipamd exited by itself with status {128 + 9 if status != 1 else 0}; exiting "
        "so the kubelet restarts the container"
    )


@pytest.mark.parametrize(
    ("env", "ipamd", "named"),
    [
        ({"WARM_IP_TARGET": "ten"}, (), "WARM_IP_TARGET='ten' is not an integer"),
        ({"HOST_CNI_BIN_PATH": "relative/bin"}, (), "HOST_CNI_BIN_PATH='relative/bin'"),
        ({"DISABLE_TCP_EARLY_DEMUX": "yes"}, (), "DISABLE_TCP_EARLY_DEMUX='yes'"),
        ({"AWS_VPC_K8S_PLUGIN_LOG_FILE": "stdout"}, (), "AWS_VPC_K8S_PLUGIN_LOG_FILE='stdout'"),
        ({"POD_MTU": "65536"}, (), "POD_MTU='65536'"),
        ({"HOST_CNI_CONFDIR_PATH": "/nonexistent/net.d"}, (), "HOST_CNI_CONFDIR_PATH /nonexis"),
        ({}, ("--tick-seconds", "0"), "--tick-seconds='0'"),
        ({}, ("--no-such-flag",), "unrecognized arguments: --no-such-flag"),
    ],
)
def test_bad_settings_exit_1_before_anything_starts(
    make_node: Any, env: dict[str, str], ipamd: tuple[str, ...], named: str
) -> None:
    node = make_node()
    bin_dir, conf_dir = host_dirs(node)
    node.env.update(env)
    process = node_run(node, *ipamd)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 1, (out, err)
    assert err.startswith("error: ")
    assert err.count("\n") == 1
    assert named in err
    assert out == ""  # nothing installed, no ipamd started
    assert list(bin_dir.iterdir()) == list(conf_dir.iterdir()) == []
    assert not (node.directory / "checkpoint").exists()
    assert not node.socket.exists()
