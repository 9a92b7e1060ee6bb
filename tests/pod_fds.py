"""The plugin's side of passing a pod's network namespace, for tests that talk to the daemon's
socket directly (docs/plugin-api.md: ADD and CHECK send the namespace and a ``NETLINK_ROUTE``
socket created in it, ``"fds": ["netns", "netlink"]``).

:func:`pod_fds` opens the namespace and creates the socket inside it from a short-lived thread
that enters the namespace (``setns`` changes only the calling thread's namespace, and the thread
ends with it), so the test process itself never leaves its namespace. Needs root.
"""

from __future__ import annotations

import ctypes
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CLONE_NEWNET = 0x40000000
FDS = ["netns", "netlink"]


def setns(descriptor: int) -> None:
    """Move the calling thread into the network namespace ``descriptor``."""
    if hasattr(os, "setns"):  # Python 3.12+
        os.setns(descriptor, CLONE_NEWNET)
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(descriptor, CLONE_NEWNET) != 0:
        number = ctypes.get_errno()
        raise OSError(number, os.strerror(number))


def socket_in(netns_fd: int, kind: int = socket.SOCK_DGRAM, protocol: int = 0) -> int:
    """A netlink socket (``NETLINK_ROUTE`` unless ``protocol``) created inside ``netns_fd``."""
    return _made_inside(netns_fd, socket.AF_NETLINK, kind, protocol)


def make_socket_in(netns: str, family: int, kind: int, protocol: int = 0) -> int:
    """A socket created inside the network namespace at path ``netns`` (its descriptor)."""
    netns_fd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return _made_inside(netns_fd, family, kind, protocol)
    finally:
        os.close(netns_fd)


def _made_inside(netns_fd: int, family: int, kind: int, protocol: int) -> int:
    made: dict[str, object] = {}

    def inside() -> None:
        try:
            setns(netns_fd)
            made["fd"] = socket.socket(family, kind, protocol).detach()
        except OSError as error:
            made["error"] = error

    thread = threading.Thread(target=inside, name="enter-netns")
    thread.start()
    thread.join()
    if "error" in made:
        raise made["error"]  # type: ignore[misc]
    descriptor = made["fd"]
    assert isinstance(descriptor, int)
    return descriptor


@contextmanager
def pod_fds(netns: str) -> Iterator[list[int]]:
    """[namespace, netlink socket in it] for ``netns`` (a path), closed afterwards."""
    netns_fd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
    fds = [netns_fd]
    try:
        fds.append(socket_in(netns_fd))
        yield fds
    finally:
        for fd in fds:
            os.close(fd)


def plugin_request(
    rpc: Callable[[dict[str, Any], Sequence[int]], dict[str, Any]], request: dict[str, Any]
) -> dict[str, Any]:
    """``request`` sent through ``rpc(request, fds)`` as the plugin sends it: ADD and CHECK with
    the namespace ``cni.netns`` names and a netlink socket in it, other verbs as they are."""
    if request.get("op") not in ("add", "check"):
        return rpc(request, ())
    with pod_fds(request["cni"]["netns"]) as fds:
        return rpc({**request, "fds": FDS}, fds)


def process_fds(pid: int) -> list[str]:
    """What each descriptor of process ``pid`` is (``socket:[81]``, ``/run/netns/x``, ...)."""
    found = []
    for entry in Path(f"/proc/{pid}/fd").iterdir():
        try:
            found.append(os.readlink(entry))
        except FileNotFoundError:
            continue  # closed while we looked
    return found


def leaked_fds(pid: int, before: list[str]) -> list[str]:
    """Descriptors ``pid`` holds now and did not before, other than TCP connections (its HTTP
    client pool to EC2 may grow); waits up to 5 s for workers that are still closing theirs."""
    deadline = time.monotonic() + 5
    while True:
        tcp = set()
        for table in ("tcp", "tcp6"):
            rows = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
            tcp.update(f"socket:[{row.split()[9]}]" for row in rows)
        extra = process_fds(pid)
        for target in before:
            if target in extra:
                extra.remove(target)
        extra = [target for target in extra if target not in tcp]
        if not extra or time.monotonic() > deadline:
            return extra
        time.sleep(0.05)
