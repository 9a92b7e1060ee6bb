"""A thin Kubernetes API client over urllib3: bearer-token GETs and watch streams, nothing else.

Why not the official ``kubernetes`` client or lightkube: see docs/kubernetes.md (memory, start-up
time, and the official client's ``python-dateutil>=3`` pin, which botocore's ``<3`` excludes).
urllib3 is already in the daemon through botocore, so this client costs no new dependency.

What it does: ``GET`` a path with query parameters and return the JSON object; open a watch
(``watch=1``) and yield its events, one JSON object per line of the chunked body. Every request
carries ``Authorization: Bearer <token>``, the token read from ``token_file`` whenever the file
changed (kubelet rotates projected service-account tokens in place) and again after a 401.
Errors are :class:`KubeApiError` with the HTTP status (0 when the server could not be reached)
and the ``Status`` object's ``reason`` and ``message`` when the body is one. TCP keepalive is on,
so a watch over a dead connection fails within about a minute instead of hanging.

Endpoints: :func:`in_cluster_endpoint` (the pod's service account: ``KUBERNETES_SERVICE_HOST``
and ``_PORT``, or upstream's ``CLUSTER_ENDPOINT`` override, as ``vpccni.settings`` read them;
``token`` and ``ca.crt`` from :data:`SERVICE_ACCOUNT_DIR`) or an explicit
:class:`KubeEndpoint` (``--kube-api URL`` with an optional token file and CA, used by tests
against a local server).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import urllib3
from urllib3.connection import HTTPConnection

from vpccni import __version__

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
WATCH_BROKEN = "WatchBroken"
"""The reason of the error a watch raises when its connection breaks mid-stream."""
USER_AGENT = f"vpccni/{__version__}"
KEEPALIVE_OPTIONS = [
    (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1),
    (socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 30),
    (socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 10),
    (socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 3),
]


@dataclass(frozen=True)
class KubeEndpoint:
    """Where the API server is and how to prove who we are.

    ``token_file`` None: no ``Authorization`` header (a test server without authentication);
    ``ca_file`` None with ``https``: the system's trust store.
    """

    url: str
    token_file: Path | None = None
    ca_file: Path | None = None
    timeout_seconds: float = 10.0


def in_cluster_endpoint(
    host: str | None,
    port: int | None,
    override: str | None,
    service_account: Path = SERVICE_ACCOUNT_DIR,
) -> KubeEndpoint | None:
    """The pod's own API access, or None when this process has no service-account token.

    The URL is ``override`` (upstream's ``CLUSTER_ENDPOINT``) when given, else
    ``https://host:port`` (``KUBERNETES_SERVICE_HOST`` / ``_PORT``, 443 by default); None
    without either.
    """
    token = service_account / "token"
    if not token.is_file():
        return None
    if override:
        url = override.rstrip("/")
    elif host:
        url = f"https://[{host}]:{port or 443}" if ":" in host else f"https://{host}:{port or 443}"
    else:
        return None
    ca = service_account / "ca.crt"
    return KubeEndpoint(url, token, ca if ca.is_file() else None)


class KubeApiError(Exception):
    """A request failed: ``status`` is the HTTP status, 0 when the server was not reached."""

    def __init__(self, request: str, status: int, reason: str, message: str) -> None:
        self.request = request
        self.status = status
        self.reason = reason
        self.message = message
        detail = f"{status} {reason}" if status else reason
        super().__init__(f"{request}: {detail}: {message}" if message else f"{request}: {detail}")

    @property
    def gone(self) -> bool:
        """410: the resourceVersion asked for is older than the server keeps; list again."""
        return self.status == 410


def status_error(request: str, status: Mapping[str, Any]) -> KubeApiError:
    """The error a ``Status`` object describes (an error response body or a watch ERROR)."""
    code = status.get("code")
    return KubeApiError(
        request,
        code if isinstance(code, int) else 500,
        str(status.get("reason") or "Failure"),
        str(status.get("message") or ""),
    )


class _Token:
    """The bearer token, re-read when its file changes (rotation) or after a 401."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._seen: tuple[int, int, int] | None = None
        self._value = ""
        self._lock = threading.Lock()

    def header(self, *, force: bool = False) -> dict[str, str]:
        if self.path is None:
            return {}
        with self._lock:
            try:
                info = self.path.stat()
                seen = (info.st_ino, info.st_mtime_ns, info.st_size)
                if force or seen != self._seen:
                    self._value = self.path.read_text(encoding="utf-8").strip()
                    self._seen = seen
            except OSError as error:
                raise KubeApiError(
                    "reading the service-account token",
                    0,
                    "NoToken",
                    f"cannot read {self.path}: {error.strerror}",
                ) from None
            return {"Authorization": f"Bearer {self._value}"}


class WatchStream:
    """One open watch: iterate for its events (dicts with ``type`` and ``object``).

    Iteration ends when the server ends the watch (its ``timeoutSeconds``); a broken connection
    raises :class:`KubeApiError`. :meth:`close` from another thread ends a blocked read.
    """

    def __init__(self, request: str, response: urllib3.BaseHTTPResponse) -> None:
        self.request = request
        self._response = response

    def __iter__(self) -> Iterator[dict[str, Any]]:
        pending = b""
        try:
            for chunk in self._response.stream(4096):
                pending += chunk
                while b"\n" in pending:
                    line, pending = pending.split(b"\n", 1)
                    if line.strip():
                        yield self._event(line)
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as error:
            raise KubeApiError(self.request, 0, WATCH_BROKEN, str(error)) from None
        finally:
            self._response.release_conn()
        if pending.strip():
            yield self._event(pending)

    def _event(self, line: bytes) -> dict[str, Any]:
        try:
            event = json.loads(line)
        except ValueError:
            raise KubeApiError(
                self.request, 0, "BadWatchEvent", f"not JSON: {line[:80]!r}"
            ) from None
        if not isinstance(event, dict) or not isinstance(event.get("object"), dict):
            raise KubeApiError(self.request, 0, "BadWatchEvent", f"not an event: {line[:80]!r}")
        return event

    def close(self) -> None:
        """Stop the stream now (safe from another thread, and twice)."""
        with contextlib.suppress(OSError):
            self._response.shutdown()
        self._response.release_conn()


class KubeApi:
    """GET and watch against one API server."""

    def __init__(self, endpoint: KubeEndpoint) -> None:
        self.endpoint = endpoint
        self._token = _Token(endpoint.token_file)
        options: dict[str, Any] = {
            "num_pools": 1,
            "maxsize": 4,
            "socket_options": HTTPConnection.default_socket_options + KEEPALIVE_OPTIONS,
            "headers": {"User-Agent": USER_AGENT, "Accept": "application/json"},
        }
        if endpoint.url.startswith("https:"):
            options["cert_reqs"] = "CERT_REQUIRED"
            if endpoint.ca_file is not None:
                options["ca_certs"] = os.fspath(endpoint.ca_file)
        self._pool = urllib3.PoolManager(**options)

    def get(self, path: str, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        """The JSON object at ``path``; raises :class:`KubeApiError`."""
        request = f"GET {path}"
        response = self._request(path, params, self.endpoint.timeout_seconds, stream=False)
        try:
            document = json.loads(response.data)
        except ValueError:
            raise KubeApiError(request, response.status, "BadResponse", "not JSON") from None
        if not isinstance(document, dict):
            raise KubeApiError(request, response.status, "BadResponse", "not a JSON object")
        return document

    def watch(self, path: str, params: Mapping[str, str], timeout_seconds: int) -> WatchStream:
        """Open a watch on ``path`` for at most ``timeout_seconds`` (the server ends it)."""
        query = {**params, "watch": "1", "timeoutSeconds": str(timeout_seconds)}
        read_timeout = timeout_seconds + 30.0
        response = self._request(path, query, read_timeout, stream=True)
        return WatchStream(f"WATCH {path}", response)

    def _request(
        self,
        path: str,
        params: Mapping[str, str] | None,
        read_timeout: float,
        *,
        stream: bool,
    ) -> urllib3.BaseHTTPResponse:
        url = self.endpoint.url.rstrip("/") + path
        if params:
            url += "?" + urlencode(dict(params))
        request = f"{'WATCH' if stream else 'GET'} {path}"
        timeout = urllib3.Timeout(connect=self.endpoint.timeout_seconds, read=read_timeout)
        for attempt in range(2):
            headers = self._token.header(force=attempt > 0)
            try:
                response = self._pool.request(
                    "GET",
                    url,
                    headers={**self._pool.headers, **headers},
                    timeout=timeout,
                    retries=False,
                    redirect=False,
                    preload_content=not stream,
                )
            except urllib3.exceptions.HTTPError as error:
                raise KubeApiError(request, 0, "Unreachable", _cause(error)) from None
            if response.status == 401 and attempt == 0 and self.endpoint.token_file is not None:
                response.drain_conn()
                response.release_conn()
                continue  # the token may have rotated since we read it: read it again, once
            if response.status >= 300:
                raise _response_error(request, response)
            return response
        raise AssertionError("unreachable")

    def close(self) -> None:
        self._pool.clear()


def _response_error(request: str, response: urllib3.BaseHTTPResponse) -> KubeApiError:
    body = response.data if response.data is not None else b""
    response.release_conn()
    try:
        document = json.loads(body)
    except ValueError:
        document = None
    if isinstance(document, dict) and document.get("kind") == "Status":
        error = status_error(request, document)
        error.status = response.status
        return error
    text = body.decode("utf-8", "replace").strip().splitlines()
    return KubeApiError(
        request, response.status, response.reason or "Error", text[0][:200] if text else ""
    )


def _cause(error: Exception) -> str:
    """The innermost reason urllib3 wraps (connection refused, TLS failure, timeout)."""
    reason = getattr(error, "reason", None)
    return str(reason) if reason is not None else str(error)
