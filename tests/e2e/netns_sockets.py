"""Sockets that live in a lab network namespace while this test process stays where it is.

A socket belongs to the network namespace it was created in, and ``setns(CLONE_NEWNET)`` moves
only the calling thread. So a short-lived thread enters the namespace, creates the socket and
ends; the socket keeps working from any thread. Used to reach a containerised daemon's
loopback-only listeners (as kubelet's prober would on the node) and to give that daemon a
loopback path to the in-process EC2 + IMDS emulator (a forwarder listening in the node
namespace and connecting in ours).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import socket
import threading
from collections.abc import Callable
from typing import TypeVar

CLONE_NEWNET = 0x40000000
T = TypeVar("T")


def in_netns(netns: str, make: Callable[[], T]) -> T:
    """Run ``make`` on a thread inside ``netns`` (a path or a name under /var/run/netns)."""
    path = netns if "/" in netns else f"/var/run/netns/{netns}"
    result: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        descriptor = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            if libc.setns(descriptor, CLONE_NEWNET) != 0:
                error = ctypes.get_errno()
                raise OSError(error, f"setns {path}: {os.strerror(error)}")
            result.append(make())
        except BaseException as error:  # handed to the caller's thread
            failure.append(error)
        finally:
            os.close(descriptor)

    thread = threading.Thread(target=run, name=f"in-{os.path.basename(path)}")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return result[0]


def connect_in(netns: str, host: str, port: int, timeout: float) -> socket.socket:
    """A TCP connection made from inside ``netns``."""

    def make() -> socket.socket:
        return socket.create_connection((host, port), timeout=timeout)

    return in_netns(netns, make)


class Forwarder:
    """Listens on 127.0.0.1:``port`` inside ``netns`` and relays to 127.0.0.1:``target`` here."""

    def __init__(self, netns: str, target: int) -> None:
        self.target = target

        def make() -> socket.socket:
            listener = socket.socket()
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", 0))
            listener.listen(64)
            return listener

        self.listener = in_netns(netns, make)
        self.port: int = self.listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept, daemon=True, name="forwarder")
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                inside, _ = self.listener.accept()
            except OSError:
                return  # closed
            try:
                outside = socket.create_connection(("127.0.0.1", self.target), timeout=30)
            except OSError:
                inside.close()
                continue
            for source, sink in ((inside, outside), (outside, inside)):
                threading.Thread(target=_pump, args=(source, sink), daemon=True).start()

    def close(self) -> None:
        self.listener.close()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
