"""Bounded listeners for everything the daemon serves: the plugin API, introspection, /metrics.

One thread per listener runs a selector: it accepts connections and reads each request without
blocking until the request is complete, too large, or past its whole-request deadline (not a
per-read timeout: a client sending one byte every few seconds is cut off at the deadline).
Complete requests go to a fixed pool of worker threads that compute and send the reply. A slow
or idle client therefore holds a file descriptor and a buffer, never a thread; beyond
``max_connections`` open connections a new one gets the protocol's "busy" reply at once. The
threads are 1 + ``workers`` per listener, whatever the clients do. Every connection gets a
reply (complete, too large, too slow or busy) unless the peer went away first.

File descriptors: an exchange that takes them (``max_fds`` > 0: the plugin API, where the plugin
passes the pod's namespace) is read with ``recvmsg``; the descriptors that come with a request
(``SCM_RIGHTS``, close-on-exec) belong to its connection and are closed exactly once, when the
request has been answered or the connection ends without one (too large, too slow, gone, or the
listener stopping). Beyond ``max_fds`` per request they are closed on arrival and the request
is marked ``overflow``. Other exchanges read with ``recv``, and the kernel discards any sent.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import selectors
import socket
import threading
import time
from array import array
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from vpccni.errors import InvalidInput

log = logging.getLogger("vpccni.ipamd")

BACKLOG = 1024  # a burst of pods must queue in the kernel, not be refused
_RECEIVE = 65536


@dataclass(frozen=True)
class Limits:
    """How much one listener accepts: request size, whole-request time, connections, workers."""

    max_request_bytes: int
    request_seconds: float
    max_connections: int
    workers: int
    send_seconds: float = 5.0


@dataclass(frozen=True)
class Passed:
    """The file descriptors that came with one request, in order; ``overflow``: more came than
    the exchange's ``max_fds`` (those were closed on arrival). The listener closes ``fds``."""

    fds: tuple[int, ...] = ()
    overflow: bool = False


class Exchange(Protocol):
    """One request-reply protocol over a stream: where a request ends and what to answer."""

    max_fds: int
    """How many file descriptors a request may carry (0: none are received)."""

    def request_end(self, buffer: bytes) -> int | None:
        """The length of the complete request at the start of ``buffer``, or None."""

    def reply(self, request: bytes, connection: socket.socket, passed: Passed) -> bytes:
        """The reply to one complete request (never raises); ``passed`` stays the listener's."""

    def too_large(self) -> bytes: ...

    def too_slow(self) -> bytes: ...

    def busy(self, open_connections: int) -> bytes: ...


@dataclass
class _Pending:
    connection: socket.socket
    deadline: float
    buffer: bytes = b""
    fds: list[int] = field(default_factory=list)
    overflow: bool = False

    def close(self) -> None:
        """Close the connection and every descriptor that came with it, once."""
        close_fds(self.fds)
        self.connection.close()


def close_fds(fds: list[int]) -> None:
    """Close each descriptor and empty the list (so that nothing closes them twice)."""
    while fds:
        with contextlib.suppress(OSError):
            os.close(fds.pop())


def unix_listener(path: Path) -> socket.socket:
    """A listening Unix socket at ``path``, mode 0600 from creation (root only).

    A socket file left by a daemon that is gone is replaced; one that still answers is not: the
    other process is named in the error instead of having its socket taken away.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_socket():
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.settimeout(1.0)
            probe.connect(str(path))
        except OSError:
            path.unlink(missing_ok=True)  # stale: nobody listens any more
        else:
            raise InvalidInput(
                f"another process is already serving on {path}; stop it or give this daemon "
                "another path (--socket, --introspection-bind)"
            )
        finally:
            probe.close()
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)
    try:
        server.bind(str(path))
    except OSError as error:
        server.close()
        raise InvalidInput(f"cannot listen on {path}: {error.strerror}") from None
    finally:
        os.umask(old_umask)
    os.chmod(path, 0o600)
    server.listen(BACKLOG)
    return server


def tcp_listener(host: str, port: int, flag: str) -> socket.socket:
    """A listening TCP socket on ``host:port``; a failure names ``flag`` as what to change."""
    try:
        info = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        server = socket.socket(info[0], socket.SOCK_STREAM)
    except OSError as error:
        raise InvalidInput(f"cannot listen on {host}:{port} ({flag}): {error}") from None
    try:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(info[4])
        server.listen(BACKLOG)
    except OSError as error:
        server.close()
        raise InvalidInput(
            f"cannot listen on {host}:{port} ({flag}): {error.strerror}; another process may "
            f"hold the port, or the address is not this node's - choose another with {flag}"
        ) from None
    return server


class Listener:
    """Serves one listening socket with ``exchange`` within ``limits``; see the module text."""

    def __init__(
        self,
        server: socket.socket,
        exchange: Exchange,
        limits: Limits,
        name: str,
        unix_path: Path | None = None,
    ) -> None:
        self.server = server
        self.exchange = exchange
        self.limits = limits
        self.name = name
        self.unix_path = unix_path
        self._selector = selectors.DefaultSelector()
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._pending: dict[int, _Pending] = {}
        self._lock = threading.Lock()
        self._open = 0
        self._stopping = threading.Event()
        self._serving = threading.Event()
        self._stopped = threading.Event()
        self._workers = ThreadPoolExecutor(limits.workers, thread_name_prefix=name)
        self.counts = {"requests": 0, "busy": 0, "too_slow": 0, "too_large": 0}

    @property
    def open_connections(self) -> int:
        with self._lock:
            return self._open

    def serve_forever(self) -> None:
        """Accept and read until :meth:`shutdown`; runs in the caller's thread."""
        self._serving.set()
        self.server.setblocking(False)
        self._wake_reader.setblocking(False)
        self._selector.register(self.server, selectors.EVENT_READ, "accept")
        self._selector.register(self._wake_reader, selectors.EVENT_READ, "wake")
        try:
            while not self._stopping.is_set():
                for key, _ in self._selector.select(self._wait()):
                    if key.data == "accept":
                        self._accept()
                    elif key.data == "read":
                        self._read(key.fileobj)  # type: ignore[arg-type]
                self._expire(time.monotonic())
        finally:
            self._stopped.set()

    def shutdown(self) -> None:
        """Stop accepting, let requests already being answered finish, then return."""
        self._stopping.set()
        with contextlib.suppress(OSError):
            self._wake_writer.send(b"x")
        if self._serving.is_set():
            self._stopped.wait(5.0)
        self._workers.shutdown(wait=True)

    def server_close(self) -> None:
        """Close every socket, and remove the Unix socket file."""
        for pending in list(self._pending.values()):
            pending.close()
        self._pending.clear()
        self._selector.close()
        self.server.close()
        self._wake_reader.close()
        self._wake_writer.close()
        if self.unix_path is not None and self.unix_path.is_socket():
            self.unix_path.unlink(missing_ok=True)

    def _wait(self) -> float:
        if not self._pending:
            return 1.0
        earliest = min(p.deadline for p in self._pending.values())
        return max(0.0, min(1.0, earliest - time.monotonic()))

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.server.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:  # e.g. EMFILE: leave the rest queued in the kernel
                log.warning("%s: cannot accept a connection: %s", self.name, error)
                time.sleep(0.05)
                return
            connection.setblocking(False)
            with self._lock:
                full = self._open >= self.limits.max_connections
                if not full:
                    self._open += 1
            if full:
                self.counts["busy"] += 1
                self._answer_now(connection, self.exchange.busy(self.limits.max_connections))
                continue
            deadline = time.monotonic() + self.limits.request_seconds
            self._pending[connection.fileno()] = _Pending(connection, deadline)
            self._selector.register(connection, selectors.EVENT_READ, "read")

    def _read(self, connection: socket.socket) -> None:
        pending = self._pending[connection.fileno()]
        try:
            if self.exchange.max_fds:
                chunk = self._receive_with_fds(pending)
            else:
                chunk = connection.recv(_RECEIVE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop(pending, None)  # the peer went away
            return
        pending.buffer += chunk
        end = self.exchange.request_end(pending.buffer)
        if end is None and not chunk and pending.buffer:
            end = len(pending.buffer)  # the peer finished writing without a terminator
        if end is not None and end <= self.limits.max_request_bytes:
            self._dispatch(pending, pending.buffer[:end])
        elif len(pending.buffer) > self.limits.max_request_bytes or (
            end is not None and end > self.limits.max_request_bytes
        ):
            self.counts["too_large"] += 1
            self._drop(pending, self.exchange.too_large())
        elif not chunk:
            self._drop(pending, None)  # closed before sending anything

    def _receive_with_fds(self, pending: _Pending) -> bytes:
        """One read, keeping the descriptors that come with it (up to ``max_fds``)."""
        room = socket.CMSG_SPACE(self.exchange.max_fds * array("i").itemsize)
        chunk, ancillary, flags, _ = pending.connection.recvmsg(
            _RECEIVE, room, socket.MSG_CMSG_CLOEXEC
        )
        for level, kind, data in ancillary:
            if level != socket.SOL_SOCKET or kind != socket.SCM_RIGHTS:
                continue
            received = array("i")
            received.frombytes(data[: len(data) - len(data) % received.itemsize])
            for descriptor in received:
                if len(pending.fds) < self.exchange.max_fds:
                    pending.fds.append(descriptor)
                else:
                    pending.overflow = True
                    close_fds([descriptor])
        if flags & socket.MSG_CTRUNC:
            pending.overflow = True  # the kernel closed those that did not fit
        return chunk

    def _expire(self, now: float) -> None:
        for pending in [p for p in self._pending.values() if p.deadline <= now]:
            self.counts["too_slow"] += 1
            self._drop(pending, self.exchange.too_slow())

    def _forget(self, pending: _Pending) -> None:
        self._selector.unregister(pending.connection)
        del self._pending[pending.connection.fileno()]

    def _drop(self, pending: _Pending, reply: bytes | None) -> None:
        self._forget(pending)
        close_fds(pending.fds)
        if reply is not None:
            self._answer_now(pending.connection, reply)
        else:
            pending.connection.close()
        self._closed()

    def _dispatch(self, pending: _Pending, request: bytes) -> None:
        self._forget(pending)
        self.counts["requests"] += 1
        try:
            self._workers.submit(self._work, pending, request)
        except RuntimeError:  # the workers are shutting down
            pending.close()
            self._closed()

    def _work(self, pending: _Pending, request: bytes) -> None:
        connection = pending.connection
        try:
            connection.setblocking(True)
            connection.settimeout(self.limits.send_seconds)
            passed = Passed(tuple(pending.fds), pending.overflow)
            reply = self.exchange.reply(request, connection, passed)
            close_fds(pending.fds)  # answered: the pod's namespace is not held while sending
            connection.sendall(reply)
        except OSError:
            pass  # the peer went away or stopped reading
        except Exception:
            log.exception("%s: answering a request failed", self.name)
        finally:
            pending.close()
            self._closed()

    def _answer_now(self, connection: socket.socket, reply: bytes) -> None:
        """A short reply from the selector thread: never blocks (it fits the socket buffer)."""
        try:
            connection.send(reply)
        except OSError:
            pass
        finally:
            connection.close()

    def _closed(self) -> None:
        with self._lock:
            self._open -= 1


_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}
JSON = "application/json"


def http_response(status: int, content_type: str, body: bytes) -> bytes:
    """One HTTP/1.0 response; the connection closes after it."""
    head = (
        f"HTTP/1.0 {status} {_REASONS.get(status, 'Error')}\r\n"
        f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


def _json_error(status: int, message: str) -> bytes:
    return http_response(status, JSON, json.dumps({"error": message}).encode())


class HttpGet:
    """A small HTTP exchange for read-only endpoints: GET (or HEAD) of a path, no body.

    ``answer(path)`` returns (status, content type, body); it is called in a worker thread.
    """

    max_fds = 0

    def __init__(self, answer: Callable[[str], tuple[int, str, bytes]]) -> None:
        self.answer = answer

    def request_end(self, buffer: bytes) -> int | None:
        for terminator in (b"\r\n\r\n", b"\n\n"):
            end = buffer.find(terminator)
            if end >= 0:
                return end + len(terminator)
        return None

    def reply(self, request: bytes, connection: socket.socket, passed: Passed) -> bytes:
        words = request.split(b"\n", 1)[0].decode("latin-1").split()
        if len(words) not in (2, 3) or not words[1].startswith("/"):
            return _json_error(400, "not an HTTP request line")
        if words[0] not in ("GET", "HEAD"):
            return _json_error(405, f"{words[0][:20]} is not served here; use GET")
        path = words[1].split("?", 1)[0]
        try:
            status, content_type, body = self.answer(path)
        except Exception as error:
            log.exception("answering GET %s failed", path[:100])
            return _json_error(500, f"{type(error).__name__}: {error}")
        response = http_response(status, content_type, body)
        if words[0] == "HEAD":
            return response[: response.index(b"\r\n\r\n") + 4]
        return response

    def too_large(self) -> bytes:
        return _json_error(431, "request head larger than the limit")

    def too_slow(self) -> bytes:
        return _json_error(408, "request not received in time")

    def busy(self, open_connections: int) -> bytes:
        return _json_error(503, f"busy: {open_connections} connections open; try again shortly")


HTTP_LIMITS = Limits(max_request_bytes=16384, request_seconds=5.0, max_connections=32, workers=2)


def http_listener(
    bind: str, answer: Callable[[str], tuple[int, str, bytes]], name: str, flag: str
) -> Listener:
    """``answer`` served on ``bind`` (``host:port`` or ``unix:PATH``, already validated)."""
    if bind.startswith("unix:"):
        path = Path(bind[len("unix:") :])
        return Listener(unix_listener(path), HttpGet(answer), HTTP_LIMITS, name, unix_path=path)
    host, _, port = bind.rpartition(":")
    server = tcp_listener(host.strip("[]"), int(port), flag)
    return Listener(server, HttpGet(answer), HTTP_LIMITS, name)
