"""One daemon per node: a second ``vpccni ipamd`` on the same socket or checkpoint directory
exits with an error naming the running one's PID, and the running one keeps serving."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest


@pytest.mark.parametrize("shared", ["socket", "checkpoint-dir", "both"])
def test_a_second_daemon_exits_naming_the_running_one(make_node: Any, shared: str) -> None:
    node = make_node()
    node.start()
    assert node.process is not None
    first_pid = node.process.pid
    other = node.directory / "other"
    socket = node.socket if shared in ("socket", "both") else other / "ipamd.sock"
    checkpoint = (
        node.directory / "checkpoint" if shared in ("checkpoint-dir", "both") else other / "ckpt"
    )
    inode = node.socket.stat().st_ino
    second = subprocess.run(
        [
            sys.executable,
            "-m",
            "vpccni.cli.main",
            "ipamd",
            "--socket",
            str(socket),
            "--checkpoint-dir",
            str(checkpoint),
            "--spool-dir",
            str(other / "spool"),
            "--introspection-bind",
            f"unix:{other / 'introspection.sock'}",
            "--metrics-bind",
            "none",
        ],
        env=node.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert second.returncode != 0, second.stderr
    message = second.stderr.strip()
    assert len(message.splitlines()) == 1, message
    assert f"another vpccni ipamd (PID {first_pid}) is running" in message
    assert "stop that daemon first" in message
    assert node.socket.stat().st_ino == inode, "the running daemon's socket was replaced"
    assert node.rpc({"op": "status"})["ok"]
    assert node.wait_for_reply(lambda: node.add("after-second"))["ok"]  # retried as kubelet does
    node.stop()
    node.start()  # the lock dies with its holder: a restart is never blocked by a stale lock
    assert node.rpc({"op": "status"})["ok"]
