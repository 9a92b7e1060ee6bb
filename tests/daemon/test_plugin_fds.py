"""A daemon without a datapath ignores the descriptors the plugin passes (it wires nothing): ADD
and CHECK work with or without them, as before, and every descriptor that comes with a request
is closed - over 200 requests of every kind, the daemon holds no descriptor it did not hold
before (its TCP connections to EC2 aside)."""

from __future__ import annotations

import os
import socket
from typing import Any

from tests.daemon.conftest import Node
from tests.pod_fds import leaked_fds, process_fds

FDS = ["netns", "netlink"]


def add_request(node: Node, container: str, fds: Any) -> dict[str, Any]:
    netns = node.directory / "netns"
    netns.touch()
    request: dict[str, Any] = {
        "op": "add",
        "cni": {"command": "ADD", "container_id": container, "netns": str(netns), "ifname": "eth0"},
        "config": {"cniVersion": "1.0.0", "name": "aws-cni"},
    }
    if fds is not None:
        request["fds"] = fds
    return request


def raw(node: Node, data: bytes, fds: list[int], close_early: bool = False) -> bytes:
    rights = b"".join(fd.to_bytes(4, "little") for fd in fds)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(15)
        client.connect(str(node.socket))
        client.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, rights)])
        if close_early:
            return b""
        client.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := client.recv(65536):
            reply += chunk
        return reply


def test_descriptors_are_ignored_and_closed_without_a_datapath(make_node: Any) -> None:
    node = make_node("c5.large")
    node.start()
    node.wait_for(lambda: node.rpc({"op": "status"})["result"]["available"] > 0, what="IPs")
    null = os.open("/dev/null", os.O_RDONLY)
    left, right = socket.socketpair()
    try:
        assert node.rpc(add_request(node, "plain", None))["ok"]  # as before: no descriptors
        assert node.delete("plain")["ok"]
        before = process_fds(pid(node))
        sent = 0
        for round_ in range(20):
            odd = [[null], [null, left.fileno()], [null, left.fileno(), right.fileno()], [null] * 9]
            for index, fds in enumerate(odd):
                reply = node.rpc(add_request(node, f"p{round_}-{index}", FDS), fds)
                assert reply["ok"], reply  # no datapath: nothing to check them against
                assert node.delete(f"p{round_}-{index}")["ok"]
            assert b'"code": 101' in raw(node, b"{not json\n", [null, left.fileno()])
            assert b'"code": 101' in raw(node, b'{"version": 1', [null, null, null])
            raw(node, b'{"version": 1', [null], close_early=True)
            sent += 2 * len(odd) + 3
            node.advance(31)  # the released addresses cool down on the emulator's clock
        assert sent >= 200
        assert leaked_fds(pid(node), before) == [], f"descriptors leaked over {sent} requests"
    finally:
        os.close(null)
        left.close()
        right.close()


def pid(node: Node) -> int:
    assert node.process is not None
    return node.process.pid
