"""The HTTP front: EC2 Query API, per-node IMDSv2 and a JSON admin API on one loopback port.

Owns :class:`EmulatorServer` (a ``ThreadingHTTPServer``; one lock around the emulator, so requests
are applied one at a time). Routes:

* ``POST /`` (or ``GET /?Action=...``): EC2 Query API, XML answers in EC2's namespace, errors as
  EC2's ``<Response><Errors>`` document with HTTP 400 / 500 / 503;
* ``PUT /imds/<instance-id>/latest/api/token`` and ``GET /imds/<instance-id>/latest/...``: the
  IMDSv2 of node ``<instance-id>``; point botocore's ``AWS_EC2_METADATA_SERVICE_ENDPOINT`` at
  ``http://127.0.0.1:PORT/imds/<instance-id>/``;
* ``/admin/...``: JSON - health, clock (+ advance), knobs, scenario, state, reset, endpoints,
  invariants, save, iam-policy (see docs/emulator.md).

``iam_policy`` (a Policy or a policy document) makes the emulator enforce it from the start, as
``POST /admin/iam-policy`` does later.

Configured response latency is slept outside the lock, in the request's own thread. Only
loopback addresses can be bound.

Bounded: at most ``max_connections`` connections are served at once (one thread each); one more
is answered 503 ``ServiceUnavailable`` and closed. A request body must arrive whole within
``read_timeout`` seconds, an idle keep-alive connection is closed after ``idle_timeout``. A
Content-Length that is not a whole number or is over 8 MiB, a chunked body, a body cut short:
an AWS-shaped 400 on the EC2 route (JSON on /admin/, text on /imds/), then the connection closes.
"""

from __future__ import annotations

import ipaddress
import json
import re
import socket
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from vpccni.emulator import admin, wire
from vpccni.emulator.clock import EmulatorClock
from vpccni.emulator.errors import Ec2Error, EmulatorSetupError
from vpccni.emulator.iam import Policy
from vpccni.emulator.service import Emulator
from vpccni.emulator.statefile import dump_state, write_state_file

MAX_BODY = 8 * 1024 * 1024
READ_TIMEOUT = 10.0
IDLE_TIMEOUT = 60.0
MAX_CONNECTIONS = 128
CONTENT_LENGTH = re.compile(r"[0-9]+")


class RequestError(Exception):
    """A request refused before routing: EC2's error code and a message saying what to do."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class EmulatorServer(ThreadingHTTPServer):
    """Serves one :class:`Emulator` on a loopback address."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        emulator: Emulator,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        clock: EmulatorClock | None = None,
        state_path: Path | None = None,
        verbose: bool = False,
        read_timeout: float = READ_TIMEOUT,
        idle_timeout: float = IDLE_TIMEOUT,
        max_connections: int = MAX_CONNECTIONS,
        iam_policy: Policy | Mapping[str, Any] | None = None,
    ) -> None:
        if not is_loopback(host):
            raise EmulatorSetupError(
                f"refusing to bind {host!r}: the emulator serves loopback only (e.g. 127.0.0.1)"
            )
        try:
            super().__init__((host, port), _Handler)
        except OSError as error:
            raise EmulatorSetupError(
                f"cannot listen on {host}:{port}: {error.strerror}; pick another --port "
                "(0 picks a free one)"
            ) from error
        self.emulator = emulator
        if iam_policy is not None:
            emulator.set_iam_policy(iam_policy)
        self.read_timeout = read_timeout
        self.idle_timeout = idle_timeout
        self._slots = threading.BoundedSemaphore(max_connections)
        self.clock = clock or EmulatorClock()
        self.state_path = state_path
        self.verbose = verbose
        self.lock = threading.Lock()
        self._save_lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def imds_endpoint(self, instance_id: str) -> str:
        return f"{self.endpoint}/imds/{instance_id}/"

    def endpoints(self) -> dict[str, Any]:
        with self.lock:
            instances = sorted(
                i.instance_id for i in self.emulator.model.store.instances.values() if i.running
            )
        return {"ec2": self.endpoint, "imds": {i: self.imds_endpoint(i) for i in instances}}

    def save_state(self) -> bool:
        """Write the state file (if one is configured); True when written."""
        if self.state_path is None:
            return False
        with self._save_lock:
            with self.lock:
                document = dump_state(self.emulator, self.clock.offset)
            write_state_file(self.state_path, document)
        return True

    def start(self, save_every: float | None = None) -> None:
        """Serve in a background thread (and save the state every ``save_every`` seconds)."""
        self._thread = threading.Thread(
            target=self.serve_forever, args=(0.1,), name="emulator", daemon=True
        )
        self._thread.start()
        if save_every and self.state_path is not None:
            threading.Thread(
                target=self._autosave, args=(save_every,), name="emulator-save", daemon=True
            ).start()

    def stop(self) -> None:
        """Stop serving, close the socket and save the state."""
        self._stopped.set()
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.save_state()

    # -- bounded connections -------------------------------------------------------------------

    def process_request(self, request: Any, client_address: Any) -> None:
        """Serve the connection in a thread of its own, or refuse it when all slots are taken."""
        if not self._slots.acquire(blocking=False):
            self._refuse(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def _refuse(self, sock: socket.socket) -> None:
        """503 ServiceUnavailable (botocore retries it) and close; bounded to about 0.6 s."""
        body = wire.encode_error(
            "ServiceUnavailable",
            "The emulator is serving its maximum number of connections; retry shortly, or close "
            "idle connections.",
            str(uuid.uuid4()),
        )
        head = (
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/xml;charset=UTF-8\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        )
        try:
            sock.settimeout(0.5)
            sock.sendall(head.encode() + body)
            sock.shutdown(socket.SHUT_WR)
            sock.settimeout(0.1)
            sock.recv(65536)  # drain what the client sent, so closing does not reset the answer
        except OSError:
            pass
        self.shutdown_request(sock)

    def _autosave(self, interval: float) -> None:
        while not self._stopped.wait(interval):
            try:
                self.save_state()
            except EmulatorSetupError as error:
                print(f"emulator: {error}", file=sys.stderr, flush=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: EmulatorServer

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.idle_timeout)

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)

    # -- dispatch -----------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        route = "imds" if url.path.startswith("/imds/") else "ec2"
        route = "admin" if url.path.startswith("/admin/") else route
        try:
            body = self._body()
            if route == "imds":
                self._imds(method, url.path)
            elif route == "admin":
                self._admin(method, url.path, body)
            else:
                form = body.decode("utf-8", "replace") if method == "POST" else url.query
                self._ec2(form, url.query)
        except RequestError as error:
            self.close_connection = True
            self._refused(route, error)
        except Exception as error:
            traceback.print_exc(file=sys.stderr)
            self.close_connection = True
            bug = RequestError("InternalError", f"emulator bug: {type(error).__name__}: {error}")
            self._refused(route, bug, 500)

    def _refused(self, route: str, error: RequestError, status: int | None = None) -> None:
        status = status or error.status
        if route == "ec2":
            body = wire.encode_error(error.code, error.message, str(uuid.uuid4()))
            self._send(status, body, "text/xml;charset=UTF-8")
        elif route == "admin":
            self._send(status, json.dumps({"error": error.message}).encode(), "application/json")
        else:
            self._send(status, error.message.encode(), "text/plain")

    def _body(self) -> bytes:
        """The request body, read whole within the server's ``read_timeout``."""
        if self.headers.get("Transfer-Encoding"):
            raise RequestError(
                "InvalidRequest",
                "Transfer-Encoding is not supported: send the body with a Content-Length.",
            )
        text = (self.headers.get("Content-Length") or "0").strip()
        if not CONTENT_LENGTH.fullmatch(text):
            shown = text if len(text) <= 20 else text[:20] + "..."
            raise RequestError(
                "MalformedQueryString",
                f"Content-Length {shown!r} is not a whole number of bytes; send the body's length.",
            )
        if len(text) > 10 or int(text) > MAX_BODY:
            raise RequestError(
                "InvalidRequest",
                f"Content-Length {text[:20]} is over the emulator's limit of {MAX_BODY} bytes; "
                "send a smaller request (EC2 requests are a few KiB).",
            )
        return self._read(int(text))

    def _read(self, length: int) -> bytes:
        deadline = time.monotonic() + self.server.read_timeout
        chunks: list[bytes] = []
        remaining = length
        try:
            while remaining > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                self.connection.settimeout(left)
                chunk = self.rfile.read1(min(remaining, 65536))
                if not chunk:
                    raise RequestError(
                        "IncompleteBody", f"The connection closed {remaining} bytes short."
                    )
                chunks.append(chunk)
                remaining -= len(chunk)
        except TimeoutError as error:
            raise RequestError(
                "RequestTimeout",
                f"Only {length - remaining} of the {length} bytes of the body (Content-Length) "
                f"arrived within {self.server.read_timeout:g} s; send the whole body at once.",
            ) from error
        finally:
            self.connection.settimeout(self.server.idle_timeout)
        return b"".join(chunks)

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    # -- EC2 ----------------------------------------------------------------------------------

    def _ec2(self, query: str, url_query: str) -> None:
        fields = parse_qs(query, keep_blank_values=True)
        form = {key: values[-1] for key, values in fields.items()}
        action = form.get("Action", "")
        request_id = str(uuid.uuid4())
        emulator = self.server.emulator
        try:
            presigned = parse_qs(url_query).get("X-Amz-Credential", [None])[-1]
            credential = form.get("X-Amz-Credential") or presigned
            emulator.check_region(wire.signed_region(self.headers.get("Authorization"), credential))
            if not action:
                raise Ec2Error("MissingAction", "The request must contain the parameter Action")
            params = wire.decode_request(action, form)
            with self.server.lock:
                result = emulator.call(action, params, self.server.clock.now())
            status, body = 200, wire.encode_response(action, result, request_id)
        except Ec2Error as error:
            status, body = (
                error.http_status,
                wire.encode_error(error.code, error.message, request_id),
            )
        latency = emulator.knobs.latency_for(action)
        if latency > 0:
            time.sleep(latency)
        self._send(status, body, "text/xml;charset=UTF-8")

    # -- IMDS ---------------------------------------------------------------------------------

    def _imds(self, method: str, path: str) -> None:
        _, _, rest = path.partition("/imds/")
        instance_id, _, tail = rest.partition("/")
        tail = "/" + tail
        emulator = self.server.emulator
        with self.server.lock:
            now = self.server.clock.now()
            if method == "PUT" and tail == "/latest/api/token":
                ttl = self.headers.get("X-aws-ec2-metadata-token-ttl-seconds")
                forwarded = self.headers.get("X-Forwarded-For") is not None
                answer = emulator.imds_token(instance_id, ttl, now, forwarded=forwarded)
            elif method == "GET" and (tail.startswith("/latest/") or tail == "/latest"):
                token = self.headers.get("X-aws-ec2-metadata-token")
                answer = emulator.imds_get(instance_id, tail[len("/latest") :], token, now)
            else:
                self._send(405 if method != "GET" else 404, b"Not Found", "text/plain")
                return
        self._send(answer.status, answer.body.encode(), answer.content_type)

    # -- admin --------------------------------------------------------------------------------

    def _admin(self, method: str, path: str, body: bytes) -> None:
        try:
            payload = json.loads(body) if body.strip() else {}
            status, result = 200, admin.route(self.server, method, path.rstrip("/"), payload)
        except (json.JSONDecodeError, EmulatorSetupError, Ec2Error) as error:
            status, result = 400, {"error": str(error)}
        except LookupError as error:
            status, result = 404, {"error": str(error)}
        self._send(status, json.dumps(result, indent=1).encode(), "application/json")
