"""What a wiring daemon accepts as a pod's namespace (docs/plugin-api.md): exactly the pod's
network namespace and a NETLINK_ROUTE datagram socket living in it, named ``"fds": ["netns",
"netlink"]``. Everything else is CNI error 4 with a message saying what came instead, and
nothing is allocated; and no descriptor is ever leaked - not by ADD/DEL cycles, nor refusals,
nor malformed requests or connections that end early (200 requests, the daemon's descriptors
counted before and after)."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.netns.conftest import Lab, Node, ip
from tests.pod_fds import FDS, leaked_fds, pod_fds, process_fds, socket_in
from vpccni.daemon.pod_fds import MISSING

NETLINK_GENERIC = 16


def add_request(container: str, netns: str, fds: Any = FDS) -> dict[str, Any]:
    request: dict[str, Any] = {
        "op": "add",
        "cni": {"command": "ADD", "container_id": container, "netns": netns, "ifname": "eth0"},
        "config": {"cniVersion": "1.0.0", "name": "aws-cni"},
    }
    if fds is not None:
        request["fds"] = fds
    return request


def opened(stack: ExitStack, path: str) -> int:
    descriptor = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    stack.callback(os.close, descriptor)
    return descriptor


def kept(stack: ExitStack, descriptor: int) -> int:
    stack.callback(os.close, descriptor)
    return descriptor


@contextmanager
def refusal_cases(
    pod: str, other: str, node_ns: str
) -> Iterator[list[tuple[str, Any, list[int], str]]]:
    """(case, the request's fds field, the descriptors, what the error message must say)."""
    with ExitStack() as stack:
        netns = opened(stack, pod)
        netlink = kept(stack, socket_in(netns))
        null = opened(stack, "/dev/null")
        unix_a, unix_b = socket.socketpair()
        stack.enter_context(unix_a)
        stack.enter_context(unix_b)
        generic = kept(stack, socket_in(netns, protocol=NETLINK_GENERIC))
        raw = kept(stack, socket_in(netns, kind=socket.SOCK_RAW))
        elsewhere = kept(stack, socket_in(opened(stack, other)))
        node_netns = opened(stack, node_ns)
        node_netlink = kept(stack, socket_in(node_netns))
        mount_ns = opened(stack, "/proc/self/ns/mnt")
        yield [
            ("no descriptors at all", None, [], MISSING),
            ("the field without descriptors", FDS, [], "0 file descriptors came"),
            ("one descriptor", FDS, [netns], "1 file descriptors came with the request"),
            ("three descriptors", FDS, [netns, netlink, netlink], "3 file descriptors came"),
            ("nine descriptors", FDS, [netns] * 9, "more than 8 file descriptors came"),
            ("reversed names", ["netlink", "netns"], [netns, netlink], "fds field is"),
            (
                "a file for the namespace",
                FDS,
                [null, netlink],
                "not a network namespace but /dev/null",
            ),
            ("a mount namespace", FDS, [mount_ns, netlink], "another kind of namespace"),
            ("a file for the socket", FDS, [netns, null], "second file descriptor is not a socket"),
            ("a unix socket", FDS, [netns, unix_a.fileno()], "not a NETLINK_ROUTE socket"),
            ("netlink generic", FDS, [netns, generic], f"protocol {NETLINK_GENERIC}, not"),
            ("a raw netlink socket", FDS, [netns, raw], "not SOCK_DGRAM"),
            ("a socket of another namespace", FDS, [netns, elsewhere], "another network namespace"),
            ("the node's namespace", FDS, [node_netns, node_netlink], "the node's own network"),
        ]


def raw_exchange(path: Path, data: bytes, fds: list[int], close_early: bool = False) -> bytes:
    """Send ``data`` with ``fds``; the reply ('' when the daemon answered nothing)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(15)
        client.connect(str(path))
        client.sendmsg(
            [data],
            [
                (
                    socket.SOL_SOCKET,
                    socket.SCM_RIGHTS,
                    bytes(b"".join(fd.to_bytes(4, "little") for fd in fds)),
                )
            ]
            if fds
            else [],
        )
        if close_early:
            return b""
        client.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := client.recv(65536):
            reply += chunk
        return reply


def test_refused_descriptors_say_why_and_allocate_nothing(lab_node: tuple[Node, Lab]) -> None:
    node, lab = lab_node
    node.wait_for(lambda: node.rpc({"op": "status"})["result"]["available"] == 9, what="IPs")
    pod, other = f"{lab.prefix}-fd0", f"{lab.prefix}-fd1"
    ip("netns", "add", pod)
    ip("netns", "add", other)
    try:
        with refusal_cases(
            f"/var/run/netns/{pod}", f"/var/run/netns/{other}", f"/var/run/netns/{lab.node}"
        ) as cases:
            for case, declared, fds, says in cases:
                reply = node.rpc(
                    add_request(
                        case.replace(" ", "-").replace("'", ""), f"/var/run/netns/{pod}", declared
                    ),
                    fds,
                )
                assert not reply["ok"], case
                assert reply["error"]["code"] == 4, (case, reply)
                assert says in reply["error"]["msg"], (case, reply)
        assert node.introspect("/v1/pods") == []
        assert node.rpc({"op": "status"})["result"]["available"] == 9
        assert "eth0" not in ip("-n", pod, "link", "show")
    finally:
        ip("netns", "del", pod)
        ip("netns", "del", other)


def test_no_descriptor_leaks_over_200_requests(lab_node: tuple[Node, Lab]) -> None:
    node, lab = lab_node
    node.wait_for(lambda: node.rpc({"op": "status"})["result"]["available"] == 9, what="IPs")
    pod, other = f"{lab.prefix}-fl0", f"{lab.prefix}-fl1"
    ip("netns", "add", pod)
    ip("netns", "add", other)
    netns = f"/var/run/netns/{pod}"
    try:
        node.wait_for_reply(lambda: node_add(node, "warm", netns))  # first use opens sockets
        assert node.delete("warm")["ok"]
        node.advance(31)
        before = process_fds(pid(node))
        sent = 0
        with refusal_cases(netns, f"/var/run/netns/{other}", f"/var/run/netns/{lab.node}") as cases:
            while sent < 200:
                for case, declared, fds, _ in cases:
                    reply = node.rpc(add_request("refused", netns, declared), fds)
                    assert reply["error"]["code"] == 4, (case, reply)
                _, _, pair, _ = cases[3]  # three descriptors: some valid, with malformed data
                assert b'"code": 101' in raw_exchange(node.socket, b"{not json\n", pair)
                cut = raw_exchange(node.socket, b'{"version": 1, "op": "add"', pair)
                assert b'"code": 101' in cut  # ended without its newline: not JSON
                raw_exchange(node.socket, b'{"version": 1', pair, close_early=True)
                reply = node_add(node, f"cycle{sent}", netns)
                assert reply["ok"], reply
                assert node.delete(f"cycle{sent}")["ok"]
                node.advance(31)  # the released address cools down on the emulator's clock
                sent += len(cases) + 5
        assert leaked_fds(pid(node), before) == [], f"descriptors leaked over {sent} requests"
        assert not [t for t in process_fds(pid(node)) if "netns" in t or t.startswith("net:")]
    finally:
        ip("netns", "del", pod)
        ip("netns", "del", other)


def node_add(node: Node, container: str, netns: str) -> dict[str, Any]:
    with pod_fds(netns) as fds:
        return node.rpc(add_request(container, netns), fds)


@pytest.mark.parametrize("op", ["del", "gc", "status"])
def test_verbs_that_pass_nothing_ignore_descriptors(lab_node: tuple[Node, Lab], op: str) -> None:
    """Descriptors sent with DEL, GC or STATUS change nothing and are closed."""
    node, lab = lab_node
    pod = f"{lab.prefix}-fv"
    ip("netns", "add", pod)
    try:
        before = process_fds(pid(node))
        request: dict[str, Any] = {
            "op": op,
            "cni": {"command": op.upper(), "container_id": "nobody", "ifname": "eth0"},
            "config": {"name": "aws-cni", "cni.dev/valid-attachments": []},
        }
        with pod_fds(f"/var/run/netns/{pod}") as fds:
            for _ in range(20):
                assert node.rpc(request, fds)["ok"]
        assert leaked_fds(pid(node), before) == []
    finally:
        ip("netns", "del", pod)


def pid(node: Node) -> int:
    assert node.process is not None
    return node.process.pid
