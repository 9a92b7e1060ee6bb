"""Smoke test: this machine can make the namespaces and veths the datapath will need."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

from tests.netns.conftest import ip

LISTEN = """
import socket, sys
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
    s.bind(("10.77.0.1", 9999)); s.settimeout(10)
    print("ready", flush=True)
    data, peer = s.recvfrom(100)
    print(data.decode(), peer[0], flush=True)
"""
SEND = """
import socket
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
    s.sendto(b"hello-vpc", ("10.77.0.1", 9999))
"""


def test_veth_between_two_namespaces_carries_traffic(netns_factory: Callable[[], str]) -> None:
    node, vpc = netns_factory(), netns_factory()
    ip("-n", node, "link", "add", "eth0", "type", "veth", "peer", "name", "vpc0", "netns", vpc)
    ip("-n", node, "addr", "add", "10.77.0.10/24", "dev", "eth0")
    ip("-n", vpc, "addr", "add", "10.77.0.1/24", "dev", "vpc0")
    for namespace, link in ((node, "eth0"), (vpc, "vpc0"), (node, "lo"), (vpc, "lo")):
        ip("-n", namespace, "link", "set", link, "up")
    assert "dev eth0" in ip("-n", node, "route", "get", "10.77.0.1")

    with subprocess.Popen(
        ["ip", "netns", "exec", vpc, sys.executable, "-c", LISTEN],
        stdout=subprocess.PIPE,
        text=True,
    ) as listener:
        assert listener.stdout is not None
        assert listener.stdout.readline().strip() == "ready"
        subprocess.run(["ip", "netns", "exec", node, sys.executable, "-c", SEND], check=True)
        received = listener.stdout.readline().split()
        assert listener.wait(timeout=15) == 0
    assert received == ["hello-vpc", "10.77.0.10"]
