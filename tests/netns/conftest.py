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
import subprocess
import sys
from collections.abc import Callable, Iterator
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any

import pytest

from tests.daemon.conftest import Node, make_node  # noqa: F401  (shared fixture)
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


@pytest.fixture
def lab_node(make_node: Any, netns_factory: Callable[[], str]) -> Iterator[tuple[Node, Lab]]:  # noqa: F811
    netns_factory()  # requires root (fails loudly in CI without it)
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
        node.start("--netns", lab.node)
        yield node, lab
    finally:
        if node.process is not None:
            node.stop(signal.SIGKILL)
        if server is not None:
            server.kill()
            server.wait()
        sync.stop()
        lab.destroy()


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
