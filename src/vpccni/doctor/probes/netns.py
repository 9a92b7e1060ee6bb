"""Looking into another network namespace without moving this process.

``setns(CLONE_NEWNET)`` changes only the calling thread, so :func:`in_netns` runs a function in a
short-lived thread that entered the namespace: a socket it creates belongs to that namespace for
good, and ``/proc/sys/net`` read from it shows that namespace's sysctls. Commands run inside with
``nsenter --net=PATH``. The rest of the process (the daemon's Unix sockets, EC2) stays where it
is, which is what ``vpccni doctor --netns`` and ``support-bundle --netns`` need: the lab's node
namespace for the host checks, the daemon wherever it runs.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

from vpccni.errors import InvalidInput, VpccniError

CLONE_NEWNET = 0x40000000
NETNS_DIR = "/var/run/netns"
T = TypeVar("T")


class CommandFailed(VpccniError):
    """A command the doctor runs to read the host failed; the message says which and why."""


def netns_path(name: str) -> str:
    """A namespace given by name (``/var/run/netns/NAME``) or by path."""
    return name if "/" in name else f"{NETNS_DIR}/{name}"


def check_netns(name: str, flag: str) -> str:
    """The path of namespace ``name`` if this process can open it, else a one-line error."""
    path = netns_path(name)
    try:
        os.close(os.open(path, os.O_RDONLY | os.O_CLOEXEC))
    except OSError as error:
        raise InvalidInput(
            f"{flag} {name}: cannot open the network namespace {path}: "
            f"{error.strerror or error}; give a name from `ip netns list` (needs root)"
        ) from None
    return path


def _enter(path: str) -> None:
    descriptor = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.setns(descriptor, CLONE_NEWNET) != 0:
            raise VpccniError(
                f"cannot enter the network namespace {path}: "
                f"{os.strerror(ctypes.get_errno())} (needs root)"
            )
    finally:
        os.close(descriptor)


def in_netns(path: str | None, work: Callable[[], T]) -> T:
    """``work()`` run inside namespace ``path`` (here when None); its exception is re-raised."""
    if path is None:
        return work()
    outcome: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            _enter(path)
            outcome.append(work())
        except BaseException as error:  # handed to the caller's thread
            failure.append(error)

    thread = threading.Thread(target=run, name="vpccni-netns", daemon=True)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return outcome[0]


def command(argv: Sequence[str], netns: str | None = None, timeout: float = 15.0) -> str:
    """``argv``'s standard output, run inside ``netns`` (a path) when given; a failure (missing
    command, non-zero exit, timeout) raises CommandFailed naming the command and its stderr."""
    full = ["nsenter", f"--net={netns}", *argv] if netns else list(argv)
    shown = " ".join(argv)
    try:
        done = subprocess.run(
            full,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except FileNotFoundError:
        raise CommandFailed(f"`{full[0]}` is not installed") from None
    except subprocess.TimeoutExpired:
        raise CommandFailed(f"`{shown}` did not finish within {timeout:g} s") from None
    if done.returncode != 0:
        detail = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        raise CommandFailed(f"`{shown}` failed: {detail}")
    return done.stdout


def same_netns(path: str) -> bool:
    """True when ``path`` is the namespace this process is in."""
    try:
        return os.stat(path).st_ino == os.stat("/proc/self/ns/net").st_ino
    except OSError:
        return False
