"""The shared netlink kit of the pod- and host-network adapters (pyroute2).

Owns the constants both use, how a namespace is named, the one-thread-per-adapter executor
(pyroute2 keeps a socket per thread), ``ignoring``, which lets the errno codes meaning
"already done" pass, and :class:`Attempts`, which carries on past a failed deletion and keeps
what failed and why for the caller to log and count.
"""

from __future__ import annotations

import errno
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


GONE = frozenset({errno.ENOENT, errno.ESRCH, errno.ENODEV, errno.EADDRNOTAVAIL})
"""errno codes of a deletion whose object vanished since it was listed: the goal is reached."""


class Attempts:
    """Deletions that go on after one fails: ``done`` and ``failed`` ("what: why") lists."""

    def __init__(self) -> None:
        self.done: list[str] = []
        self.failed: list[str] = []

    def attempt(self, what: str, call: Callable[[], object]) -> bool:
        """Run ``call``; True when ``what`` is now gone (done, or already gone)."""
        try:
            call()
        except NetlinkError as error:
            if error.code not in GONE:
                self.failed.append(f"{what}: {error}")
                return False
        except OSError as error:
            self.failed.append(f"{what}: {error}")
            return False
        self.done.append(what)
        return True


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
