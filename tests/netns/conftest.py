"""Fixtures for tests that need root and real network namespaces.

These tests only create namespaces and links of their own (names start with ``vt-``), never touch
the root namespace's routes, rules, iptables or sysctls, and remove everything they create. In CI
(``CI=true``) missing root or a missing ``ip`` command fails loudly; elsewhere such tests skip.
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any

import pytest

from tests.daemon.conftest import Node, make_node  # noqa: F401  (shared fixture)
from tests.pod_fds import make_socket_in
from vpccni.lab.sync import LabSync
from vpccni.lab.topology import Lab

_counter = itertools.count()


def _require(condition: bool, reason: str) -> None:
    if condition:
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the netns tests, but {reason}")
    pytest.skip(reason)


def ip(*args: str) -> str:
    """Run `ip ARGS`, raising with its stderr on failure."""
    done = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise AssertionError(f"ip {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


@pytest.fixture
def netns_factory() -> Iterator[Callable[[], str]]:
    """Create uniquely named network namespaces; all are deleted afterwards."""
    _require(os.geteuid() == 0, "they need root")
    _require(shutil.which("ip") is not None, "the 'ip' command (iproute2) is missing")
    created: list[str] = []

    def make() -> str:
        name = f"vt-{os.getpid()}-{next(_counter)}"
        ip("netns", "add", name)
        created.append(name)
        return name

    yield make
    for name in created:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


PROBE = ["-m", "vpccni.lab.probe"]
PORT = 7777


@contextmanager
def running_lab(make_node: Any, start: Callable[[Node, Lab], None]) -> Iterator[tuple[Node, Lab]]:  # noqa: F811
    """A c5.large node with the lab built around it (VPC host and internet host serving the
    probe) and its daemon started by ``start``; everything is removed afterwards."""
    node = make_node("c5.large")
    lab = Lab(f"vl{os.getpid() % 10000}", IPv4Network("10.0.1.0/24"))
    lab.create()
    sync = LabSync(lab, node.backend.ec2, node.instance_id)
    server = None
    try:
        sync.start()
        server = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                lab.vpc,
                sys.executable,
                *PROBE,
                "serve",
                str(PORT),
                str(lab.vpc_host),
                str(lab.internet_host),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert server.stdout is not None
        assert server.stdout.readline().strip() == "ready"
        start(node, lab)
        yield node, lab
    finally:
        if node.process is not None:
            node.stop(signal.SIGKILL)
        if server is not None:
            server.kill()
            server.wait()
        sync.stop()
        lab.destroy()


@pytest.fixture
def lab_node(make_node: Any, netns_factory: Callable[[], str]) -> Iterator[tuple[Node, Lab]]:  # noqa: F811
    """The lab, with the daemon in our namespace wiring the lab's node (``--netns NODE``)."""
    netns_factory()  # requires root (fails loudly in CI without it)
    with running_lab(make_node, lambda node, lab: node.start("--netns", lab.node)) as running:
        yield running


NET_CAPS = "-all,+net_admin,+net_raw"
CAP_NET_ADMIN, CAP_NET_RAW = 12, 13


@pytest.fixture
def lab_node_net_caps_only(
    make_node: Any,  # noqa: F811
    netns_factory: Callable[[], str],
) -> Iterator[tuple[Node, Lab]]:
    """The lab, with the daemon as a DaemonSet runs it: inside the node's namespace
    (``--host-datapath``, like hostNetwork) with only CAP_NET_ADMIN and CAP_NET_RAW (setpriv:
    effective, inheritable, ambient and bounding sets), so it can neither enter namespaces nor
    regain a capability. The emulator, in our namespace, is reached through a relay whose
    listening socket lives in the node's namespace."""
    netns_factory()
    _require(shutil.which("setpriv") is not None, "setpriv (util-linux) is missing")
    relays: list[Relay] = []

    def start(node: Node, lab: Lab) -> None:
        relay = Relay(f"/var/run/netns/{lab.node}", node.server.server_address[1])
        relays.append(relay)
        endpoint = f"http://127.0.0.1:{relay.port}"
        node.env["AWS_ENDPOINT_URL_EC2"] = endpoint
        node.env["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = f"{endpoint}/imds/{node.instance_id}/"
        wrapper = [
            "ip",
            "netns",
            "exec",
            lab.node,
            "setpriv",
            f"--inh-caps={NET_CAPS}",
            f"--ambient-caps={NET_CAPS}",
            f"--bounding-set={NET_CAPS}",
        ]
        node.start("--host-datapath", wrapper=wrapper)

    try:
        with running_lab(make_node, start) as running:
            yield running
    finally:
        for relay in relays:
            relay.stop()


def capabilities(pid: int) -> dict[str, int]:
    """The capability sets of a process (CapInh, CapPrm, CapEff, CapBnd, CapAmb) as masks."""
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    return {
        name: int(value, 16)
        for name, _, value in (line.partition(":\t") for line in status)
        if name.startswith("Cap")
    }


class Relay:
    """A TCP listener on 127.0.0.1 inside a network namespace that relays each connection to
    127.0.0.1:``target`` in ours. The listening socket is created by a thread that entered the
    namespace (a socket stays in the namespace it was made in); everything else runs here, so
    nothing is added to our namespace."""

    def __init__(self, netns: str, target: int) -> None:
        self.target = target
        self.listener = socket.socket(
            fileno=make_socket_in(netns, socket.AF_INET, socket.SOCK_STREAM)
        )
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = int(self.listener.getsockname()[1])
        self._open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True, name="relay").start()

    def _accept(self) -> None:
        while True:
            try:
                inside, _ = self.listener.accept()
            except OSError:
                return  # stopped
            try:
                outside = socket.create_connection(("127.0.0.1", self.target), timeout=10)
            except OSError:
                inside.close()
                continue
            outside.settimeout(None)
            self._open.extend((inside, outside))
            for source, sink in ((inside, outside), (outside, inside)):
                threading.Thread(target=_pump, args=(source, sink), daemon=True).start()

    def stop(self) -> None:
        self.listener.close()
        for connection in self._open:
            with suppress(OSError):
                connection.close()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    with suppress(OSError):
        while chunk := source.recv(65536):
            sink.sendall(chunk)
    with suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


def install_plugin(node: Node, directory: Path) -> tuple[Path, Path]:
    """`vpccni install-cni` into DIRECTORY/bin and DIRECTORY/net.d for the node's daemon."""
    bin_dir, conf = directory / "bin", directory / "net.d"
    bin_dir.mkdir()
    conf.mkdir()
    command = [
        sys.executable,
        "-m",
        "vpccni.cli.main",
        "install-cni",
        "--bin-dir",
        str(bin_dir),
        "--conf-dir",
        str(conf),
        "--socket",
        str(node.socket),
        "--spool-dir",
        str(node.directory / "spool"),
        "--wait-seconds",
        "30",
    ]
    done = subprocess.run(command, capture_output=True, text=True, env=node.env, check=False)
    assert done.returncode == 0, done.stderr
    return bin_dir, conf
