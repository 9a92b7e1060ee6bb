"""The shared netlink kit of the pod- and host-network adapters (pyroute2).

Owns the constants both use, how a namespace is named, the one-thread-per-adapter executor
(pyroute2 keeps a socket per thread) and ``ignoring``, which lets the errno codes meaning
"already done" pass.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

from pyroute2.netlink.exceptions import NetlinkError

T = TypeVar("T")
SCOPE_LINK = 253
NUD_PERMANENT = 128
AF_INET = 2


def netns_path(name: str) -> str:
    """A netns given by name (``/var/run/netns/NAME``) or by path."""
    return name if "/" in name else f"/var/run/netns/{name}"


@contextmanager
def ignoring(*codes: int) -> Iterator[None]:
    """Let netlink errors with these errno codes pass (the change is already made)."""
    try:
        yield
    except NetlinkError as error:
        if error.code not in codes:
            raise


class NetlinkThread:
    """Runs every netlink call of one adapter on one long-lived thread.

    pyroute2 keeps a socket per thread and forks a helper to open one inside another namespace;
    calling it from each request's thread leaked a socket (and paid a ~10 ms fork) per request.
    One thread keeps one node-namespace socket for the daemon's lifetime.
    """

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="netlink")

    def run(self, call: Callable[[], T]) -> T:
        return self._pool.submit(call).result()
