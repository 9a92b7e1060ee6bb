"""The shared netlink kit of the pod- and host-network adapters (pyroute2).

Owns the constants both use, how a namespace is named, the one-thread-per-adapter executor
(pyroute2 keeps a socket per thread; with a node namespace the thread lives in it, so the
node's ``/proc/sys/net`` and nftables are reachable from it), :class:`NetlinkWorkers` (several
such threads, each with its own node socket, for work that may run in parallel: pod wiring),
``ignoring``, which lets the errno
codes meaning "already done" pass, :func:`write_sysctl` (the node's kernel parameters, written
from that thread) and :class:`Attempts`, which carries on past a failed deletion and keeps what
failed and why for the caller to log and count.
"""

from __future__ import annotations

import ctypes
import errno
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from typing import Any, TypeVar

from vpccni.adapters.pyroute2_lean import IPRoute, NetlinkError
from vpccni.errors import VpccniError

T = TypeVar("T")
SCOPE_LINK = 253
NUD_PERMANENT = 128
AF_INET = 2
CLONE_NEWNET = 0x40000000


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
    One thread keeps one node-namespace socket for the daemon's lifetime. Given ``netns`` (a
    path), the thread enters that network namespace before its first call (``setns``, which needs
    ``CAP_SYS_ADMIN``, as opening the namespace by path does anyway): what it opens under
    ``/proc/sys/net`` and the netlink sockets it creates without pyroute2's ``netns`` (nftables)
    are the node's. Without it the thread stays in the daemon's namespace, the node's.
    """

    def __init__(self, netns: str | None = None) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="netlink")
        self._netns = None if netns is None else netns_path(netns)
        self._entered = False

    def run(self, call: Callable[[], T]) -> T:
        return self._pool.submit(self._in_netns, call).result()

    def _in_netns(self, call: Callable[[], T]) -> T:
        if self._netns is not None and not self._entered:
            _enter_netns(self._netns)  # NetnsError: raised to the caller, tried again next call
            self._entered = True
        return call()


OPEN_SECONDS = 10.0
"""How long the workers wait for each other when they start (``NetlinkWorkers._start``)."""


def default_workers() -> int:
    """How many wiring workers a daemon runs: twice the cores, at most 4 (veth deletions, the
    slow part, overlap in the kernel; more threads only contend for the GIL)."""
    return max(1, min(4, (os.cpu_count() or 1) * 2))


class NetlinkWorkers:
    """Runs netlink calls on ``count`` long-lived threads, each with its own node socket.

    Each worker enters ``netns`` (a path; ``setns``, as :class:`NetlinkThread`) before its
    first call and opens one ``IPRoute`` there - in the thread's own namespace, so without
    pyroute2's fork - kept until :meth:`close`; a call gets its worker's ``IPRoute``. Up to
    ``count`` calls run at once: the caller keeps apart what must not overlap. Work queued when
    the process exits still runs (the pool's threads are joined at exit).
    """

    def __init__(self, netns: str | None, count: int, name: str) -> None:
        self._pool = ThreadPoolExecutor(max_workers=count, thread_name_prefix=name)
        self._count = count
        self._netns = None if netns is None else netns_path(netns)
        self._local = threading.local()
        self._opened: list[Any] = []
        self._lock = threading.Lock()
        self._started = False

    def submit(self, call: Callable[[Any], T]) -> Future[T]:
        """Queue ``call(ipr)``; its future holds the result or the exception."""
        self._start()
        return self._pool.submit(self._in_worker, call)

    def _start(self) -> None:
        """At the first call, start every worker and open its socket before the call is
        queued: the descriptors they hold (4 per ``IPRoute``: socket, event loop) are all there
        once the first call is made, never more. The openers meet at a barrier, so that each
        runs on a thread of its own."""
        with self._lock:
            if self._started:
                return
            self._started = True
        barrier = threading.Barrier(self._count, timeout=OPEN_SECONDS)

        def open_worker() -> None:
            try:
                self._in_worker(lambda ipr: barrier.wait())
            except Exception:  # raised again by the first call that needs it
                barrier.abort()

        opened = [self._pool.submit(open_worker) for _ in range(self._count)]
        wait(opened, timeout=OPEN_SECONDS)

    def run(self, call: Callable[[Any], T]) -> T:
        """``call(ipr)`` on a worker; waits for it and returns (or raises) what it did."""
        return self.submit(call).result()

    def _in_worker(self, call: Callable[[Any], T]) -> T:
        ipr = getattr(self._local, "ipr", None)
        if ipr is None:
            if self._netns is not None and not getattr(self._local, "entered", False):
                _enter_netns(self._netns)  # NetnsError: raised to the caller, tried again
                self._local.entered = True
            ipr = IPRoute()
            self._local.ipr = ipr
            with self._lock:
                self._opened.append(ipr)
        try:
            return call(ipr)
        finally:
            drop_stale_replies(ipr)

    def close(self) -> None:
        """Finish the queued calls, stop the workers and close their sockets (no calls after)."""
        self._pool.shutdown(wait=True)
        with self._lock:
            opened, self._opened = self._opened, []
        for ipr in opened:
            ipr.close()


def drop_stale_replies(ipr: Any) -> int:
    """Drop the replies pyroute2 (0.9.7) parked for no request; how many.

    A ``get`` request is answered by the object and then by the kernel's acknowledgement; the
    request returns with the first, and the acknowledgement, arriving for a finished request,
    is parked in the socket's catch-all queue, which nothing reads on a socket subscribed to no
    multicast group (none of ours is). Each parked reply held about 1.5 kB, so a daemon grew
    by ~25 kB per pod ADD/DEL at 250 pods (benchmarks/daemon_rss.py). Call it on the thread
    that makes the socket's requests, between them."""
    queue = getattr(getattr(getattr(ipr, "asyncore", None), "msg_queue", None), "root", None)
    dropped = 0
    while queue is not None and not queue.empty():
        queue.get_nowait()
        queue.task_done()
        dropped += 1
    return dropped


class NetnsError(VpccniError):
    """The node's network namespace cannot be entered."""


def _enter_netns(path: str) -> None:
    """Move the calling thread into the network namespace at ``path``."""
    libc = ctypes.CDLL(None, use_errno=True)
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as error:
        raise NetnsError(
            f"cannot open the node's network namespace {path}: {error.strerror}; does it exist?"
        ) from None
    try:
        if libc.setns(descriptor, CLONE_NEWNET) != 0:
            raise NetnsError(
                f"cannot enter the node's network namespace {path}: "
                f"{os.strerror(ctypes.get_errno())}; --netns needs CAP_SYS_ADMIN"
            )
    finally:
        os.close(descriptor)


PROC_SYS = "/proc/sys"
"""The kernel parameters, as the process's own procfs shows them."""
HOST_PROC_SYS_NET = "/host/proc/sys/net"
"""Where the DaemonSet mounts the host's ``/proc/sys/net`` read-write (hostPath, ``Directory``),
for the main container, whose own ``/proc/sys`` the runtime mounts read-only."""
_READ_ONLY = (errno.EROFS, errno.EACCES)


def write_sysctl(key: str, value: str) -> bool:
    """Set ``/proc/sys/<key>`` (``net/ipv6/conf/<link>/accept_ra``) in the calling thread's
    network namespace; False when the key does not exist (IPv6 disabled: nothing to set, as
    upstream ignores it).

    When ``/proc/sys`` refuses the write because it is mounted read-only (``EROFS``, or
    ``EACCES`` as some runtimes' read-only mounts answer) and the key is under ``net/``, the
    write goes through :data:`HOST_PROC_SYS_NET` instead, if that directory exists: entries of
    ``/proc/sys/net`` act on the network namespace of the task that opens them, whichever procfs
    mount they are opened through, so a writable bind of the host's ``/proc/sys/net`` sets the
    calling thread's namespace's parameters as ``/proc/sys`` would. Other failures, and a
    read-only ``/proc/sys`` with no such mount, raise ``OSError`` (the caller warns once)."""
    try:
        return _write(f"{PROC_SYS}/{key}", value)
    except OSError as error:
        fallback = HOST_PROC_SYS_NET + key.removeprefix("net")
        if (
            error.errno not in _READ_ONLY
            or not key.startswith("net/")
            or not os.path.isdir(HOST_PROC_SYS_NET)
        ):
            raise
    return _write(fallback, value)


def _write(path: str, value: str) -> bool:
    try:
        with open(path, "w") as out:
            out.write(value + "\n")
    except FileNotFoundError:
        return False
    return True
