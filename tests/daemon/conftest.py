"""A node for daemon tests: an in-process emulator with a VPC and a c5.large, and a real
``vpccni ipamd`` subprocess pointed at it, with its socket, checkpoint and spool in tmp_path.

The daemon's clock follows the emulator's (``VPCCNI_CLOCK=emulator``), so a test advances time
(ENI age, cooldown) through the emulator's admin API instead of waiting.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.cloud.conftest import Backend, advance, backend_for, free_port, start_emulator
from vpccni.core.limits import InstanceTable
from vpccni.daemon.rpc import call
from vpccni.emulator.server import EmulatorServer


@dataclass
class Node:
    """An emulated instance and the daemon process that manages it."""

    backend: Backend
    server: EmulatorServer
    instance_id: str
    directory: Path
    env: dict[str, str]
    process: subprocess.Popen[str] | None = None
    logs: list[Path] = field(default_factory=list)

    @property
    def socket(self) -> Path:
        return self.directory / "ipamd.sock"

    @property
    def introspection(self) -> str:
        return f"unix:{self.directory / 'introspection.sock'}"

    def start(self, *extra: str, wait: bool = True, wrapper: Sequence[str] = ()) -> None:
        """Start ``vpccni ipamd`` with ``extra`` flags; ``wrapper`` runs it through another
        command first (e.g. ``ip netns exec NODE setpriv ...``, which exec it in place, so the
        process is the daemon's)."""
        log = self.directory / f"ipamd-{len(self.logs)}.log"
        self.logs.append(log)
        command = [
            *wrapper,
            sys.executable,
            "-m",
            "vpccni.cli.main",
            "ipamd",
            "--socket",
            str(self.socket),
            "--checkpoint-dir",
            str(self.directory / "checkpoint"),
            "--spool-dir",
            str(self.directory / "spool"),
            "--introspection-bind",
            self.introspection,
            "--metrics-bind",
            f"127.0.0.1:{free_port()}",
            "--tick-seconds",
            "0.2",
            "--reconcile-seconds",
            "1",
            *extra,
        ]
        with log.open("w") as out:
            self.process = subprocess.Popen(
                command, env=self.env, stdout=out, stderr=subprocess.STDOUT, text=True
            )
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                pytest.fail(f"ipamd exited with {self.process.returncode}:\n{self.log()}")
            try:
                if self.rpc({"op": "status"}).get("ok"):
                    return
            except OSError:
                pass
            time.sleep(0.05)
        pytest.fail(f"ipamd did not become ready:\n{self.log()}")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        code = self.process.wait(timeout=30)
        self.process = None
        return code

    def log(self) -> str:
        return "\n".join(path.read_text() for path in self.logs)[-6000:]

    def rpc(self, request: dict[str, Any], fds: Sequence[int] = ()) -> dict[str, Any]:
        """One request; ``fds`` go with it as the plugin passes the pod's namespace."""
        return call(self.socket, {"version": 1, **request}, timeout=10, fds=fds)

    def add(self, container: str, namespace: str = "default") -> dict[str, Any]:
        netns = self.directory / "netns"
        netns.touch()
        return self.rpc(
            {
                "op": "add",
                "cni": {
                    "command": "ADD",
                    "container_id": container,
                    "netns": str(netns),
                    "ifname": "eth0",
                    "args": f"K8S_POD_NAMESPACE={namespace};K8S_POD_NAME={container}",
                },
                "config": {"cniVersion": "1.0.0", "name": "aws-cni"},
            }
        )

    def delete(self, container: str) -> dict[str, Any]:
        return self.rpc(
            {
                "op": "del",
                "cni": {"command": "DEL", "container_id": container, "netns": "", "ifname": "eth0"},
                "config": {"cniVersion": "1.0.0", "name": "aws-cni"},
            }
        )

    def wait_for_reply(self, request: Any, timeout: float = 20.0) -> dict[str, Any]:
        """Repeat ``request()`` while the daemon says try again later (as kubelet does)."""
        deadline = time.monotonic() + timeout
        while True:
            reply: dict[str, Any] = request()
            if reply["ok"] or time.monotonic() > deadline:
                assert reply["ok"], reply
                return reply
            assert reply["error"]["code"] == 11, reply
            time.sleep(0.1)

    def introspect(self, path: str) -> Any:
        from vpccni.cli.status_cmd import fetch

        return fetch(self.introspection, path)

    def enis(self) -> list[Any]:
        """EC2's view of the ENIs attached to this instance, by device index."""
        found = self.backend.ec2.describe_enis(
            filters={"attachment.instance-id": [self.instance_id]}
        )
        return sorted(found, key=lambda e: e.attachment.device_index if e.attachment else 0)

    def advance(self, seconds: float) -> None:
        advance(self.backend, seconds)

    def wait_for(self, condition: Any, timeout: float = 20.0, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            time.sleep(0.1)
        pytest.fail(f"timed out waiting for {what}:\n{self.log()}")


def node_env(server: EmulatorServer, instance_id: str, **extra: str) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(Path(__file__).parents[2] / "src"),
        "AWS_ENDPOINT_URL_EC2": server.endpoint,
        "AWS_EC2_METADATA_SERVICE_ENDPOINT": server.imds_endpoint(instance_id),
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_REGION": "us-west-2",
        "VPCCNI_CLOCK": "emulator",
    }
    env.update(extra)
    return env


@pytest.fixture
def make_node(table: InstanceTable, tmp_path: Path) -> Iterator[Any]:
    made: list[tuple[Node, EmulatorServer]] = []

    def make(
        instance_type: str = "c5.large",
        knobs: dict[str, Any] | None = None,
        cidr: str = "10.0.1.0/24",
        **env: str,
    ) -> Node:
        server = start_emulator(table, **(knobs or {}))
        backend = backend_for(server)
        _, subnet = backend.network(cidr)
        instance_id = backend.launch(subnet, instance_type)
        directory = tmp_path / f"node{len(made)}"
        directory.mkdir()
        node = Node(backend, server, instance_id, directory, node_env(server, instance_id, **env))
        made.append((node, server))
        return node

    yield make
    for node, server in made:
        if node.process is not None:
            node.stop(signal.SIGKILL)
        server.stop()


def admin_state(server: EmulatorServer) -> Any:
    with urllib.request.urlopen(f"{server.endpoint}/admin/state", timeout=10) as response:
        return json.loads(response.read())
