"""A local Kubernetes API server for tests: Nodes and ENIConfigs, speaking the API's real JSON.

No kube-apiserver can be installed on these machines, so the Kubernetes source is tested against
this one. It serves what the daemon and ``kubectl get`` use, in the shapes the Kubernetes API
reference gives (and real ``kubectl`` accepts: tests/kube/test_fake_apiserver.py):

* discovery: ``/api``, ``/api/v1``, ``/apis``, ``/apis/crd.k8s.amazonaws.com/v1alpha1``;
* ``GET /api/v1/nodes/NAME`` and ``/apis/.../eniconfigs/NAME`` (the object; 404 ``NotFound``);
* ``GET /api/v1/nodes`` and ``/apis/.../eniconfigs`` (``NodeList`` / ``ENIConfigList`` with the
  store's current ``metadata.resourceVersion``; ``fieldSelector=metadata.name=X``);
* the same with ``watch=1``: a chunked stream, one JSON event per line (``ADDED``, ``MODIFIED``,
  ``DELETED``, ``BOOKMARK`` when ``allowWatchBookmarks=true``, ``ERROR``) from the given
  ``resourceVersion`` (none or ``0``: the current objects as ``ADDED`` first), ending after
  ``timeoutSeconds``; a version older than the last :meth:`FakeApiServer.compact` answers
  ``410 Gone`` - as an ``ERROR`` event (``gone_as="event"``, what the watch cache does) or as
  the HTTP status (``gone_as="http"``);
* authentication (``Authorization: Bearer`` one of ``tokens``; else 401 ``Unauthorized``) and
  authorization (``rules``, ClusterRole rules; a request they do not allow answers 403
  ``Forbidden`` in the API server's words); with ``crd_installed=False`` the ENIConfig paths
  answer ``404 page not found`` as a server without the CRD does.

Every API request is recorded in :attr:`FakeApiServer.requests` (verb, resource, query,
status) so tests can check what the client asked for.
"""

from __future__ import annotations

import contextlib
import copy
import json
import socket
import ssl
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.kube.tls import TlsFiles

GROUP = "crd.k8s.amazonaws.com"
VERSION = "v1alpha1"
ENICONFIG_API = f"{GROUP}/{VERSION}"
SERVICE_ACCOUNT_USER = "system:serviceaccount:kube-system:vpccni"


@dataclass(frozen=True)
class Kind:
    """One resource the server stores."""

    resource: str
    group: str
    kind: str
    api_version: str
    singular: str
    short_names: tuple[str, ...] = ()

    @property
    def collection_path(self) -> str:
        if self.group:
            return f"/apis/{self.api_version}/{self.resource}"
        return f"/api/v1/{self.resource}"


NODES = Kind("nodes", "", "Node", "v1", "node", ("no",))
ENICONFIGS = Kind("eniconfigs", GROUP, "ENIConfig", ENICONFIG_API, "eniconfig")
KINDS = (NODES, ENICONFIGS)


@dataclass
class Recorded:
    """One API request: ``verb`` as RBAC names it (get, list, watch)."""

    verb: str
    resource: str
    path: str
    query: dict[str, str]
    status: int = 0
    at: float = field(default_factory=time.monotonic)


@dataclass
class _Event:
    version: int
    kind: Kind
    type: str
    obj: dict[str, Any]


@dataclass
class _Watch:
    connection: socket.socket
    kind: Kind
    bookmarks: bool
    pending_bookmark: bool = False


@dataclass
class FakeApiServer:
    """Start with :meth:`start` (or ``with``); :attr:`url` is ``http://127.0.0.1:PORT``."""

    tokens: set[str] = field(default_factory=lambda: {"test-token"})
    rules: list[dict[str, Any]] | None = None
    """ClusterRole rules granted to every token; None: everything is allowed."""
    crd_installed: bool = True
    gone_as: str = "event"
    user: str = SERVICE_ACCOUNT_USER
    tls: TlsFiles | None = None
    """Serve HTTPS with this certificate (``tests.kube.tls.make_tls``); None: plain HTTP."""
    requests: list[Recorded] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Condition()
        self._version = 1000
        self._compacted = 0
        self._objects: dict[Kind, dict[str, dict[str, Any]]] = {kind: {} for kind in KINDS}
        self._events: list[_Event] = []
        self._watches: list[_Watch] = []
        self._failures: list[tuple[int, str]] = []
        self._stopping = False
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- life ------------------------------------------------------------------------------------

    def start(self) -> FakeApiServer:
        return self.start_on(0)

    def start_on(self, port: int) -> FakeApiServer:
        """Start listening on ``port`` (0: any free one)."""
        handler = type("Handler", (_Handler,), {"api": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self._server.daemon_threads = True
        if self.tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(self.tls.cert, self.tls.key)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
        self.drop_watches()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "start the server first"
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://127.0.0.1:{self._server.server_address[1]}"

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    # -- the store -------------------------------------------------------------------------------

    @property
    def resource_version(self) -> int:
        with self._lock:
            return self._version

    def put(self, kind: Kind, obj: Mapping[str, Any]) -> dict[str, Any]:
        """Create or replace an object (ADDED or MODIFIED); returns it as stored."""
        stored = copy.deepcopy(dict(obj))
        name = stored["metadata"]["name"]
        with self._lock:
            self._version += 1
            old = self._objects[kind].get(name)
            metadata = stored["metadata"]
            metadata["resourceVersion"] = str(self._version)
            metadata.setdefault(
                "uid",
                old["metadata"]["uid"] if old else f"00000000-0000-4000-8000-{self._version:012d}",
            )
            metadata.setdefault(
                "creationTimestamp",
                old["metadata"]["creationTimestamp"] if old else "2026-01-01T00:00:00Z",
            )
            if kind is ENICONFIGS:
                metadata.setdefault("generation", 1)
            stored["apiVersion"], stored["kind"] = kind.api_version, kind.kind
            self._objects[kind][name] = stored
            self._record(kind, "MODIFIED" if old else "ADDED", stored)
            return copy.deepcopy(stored)

    def delete(self, kind: Kind, name: str) -> None:
        with self._lock:
            gone = self._objects[kind].pop(name)
            self._version += 1
            gone = copy.deepcopy(gone)
            gone["metadata"]["resourceVersion"] = str(self._version)
            self._record(kind, "DELETED", gone)

    def touch(self, kind: Kind, name: str, **labels: str) -> dict[str, Any]:
        """Set labels on an existing object (a MODIFIED event)."""
        with self._lock:
            obj = copy.deepcopy(self._objects[kind][name])
        obj["metadata"].setdefault("labels", {}).update(labels)
        return self.put(kind, obj)

    def unrelated_writes(self, count: int) -> None:
        """Other objects change: the store's resourceVersion moves on, nothing we watch does."""
        with self._lock:
            self._version += count
            self._lock.notify_all()

    def compact(self) -> None:
        """Forget history: a list or watch from any version seen so far gets 410 Gone."""
        with self._lock:
            self._compacted = self._version
            self._events.clear()

    def bookmark(self) -> None:
        """Send a BOOKMARK (the current version) on every watch that asked for bookmarks."""
        with self._lock:
            for watch in self._watches:
                watch.pending_bookmark = watch.bookmarks
            self._lock.notify_all()

    def drop_watches(self) -> None:
        """Cut every open watch connection mid-stream (a network failure)."""
        with self._lock:
            watches = list(self._watches)
        for watch in watches:
            with contextlib.suppress(OSError):
                watch.connection.shutdown(socket.SHUT_RDWR)

    def fail_next(self, count: int, status: int = 500) -> None:
        """The next ``count`` API requests answer ``status`` (a Status in the API's words)."""
        with self._lock:
            self._failures += [(status, "")] * count

    def open_watches(self) -> int:
        with self._lock:
            return len(self._watches)

    def wait_for(self, predicate: Any, timeout: float = 10.0) -> None:
        """Wait until ``predicate(self.requests)`` is true (else AssertionError)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(list(self.requests)):
                return
            time.sleep(0.02)
        raise AssertionError(
            f"timed out; requests: {[(r.verb, r.resource, r.status) for r in self.requests]}"
        )

    def _record(self, kind: Kind, kind_of_event: str, obj: dict[str, Any]) -> None:
        self._events.append(_Event(self._version, kind, kind_of_event, copy.deepcopy(obj)))
        self._lock.notify_all()

    # -- answers (called by the handler) ---------------------------------------------------------

    def allowed(self, kind: Kind, verb: str) -> bool:
        if self.rules is None:
            return True
        return any(
            kind.group in rule.get("apiGroups", [])
            and kind.resource in rule.get("resources", [])
            and (verb in rule.get("verbs", []) or "*" in rule.get("verbs", []))
            for rule in self.rules
        )

    def take_failure(self) -> int | None:
        with self._lock:
            if self._failures:
                return self._failures.pop(0)[0]
        return None

    def snapshot(self, kind: Kind, name: str | None) -> tuple[int, list[dict[str, Any]]]:
        with self._lock:
            items = [
                copy.deepcopy(obj)
                for key, obj in sorted(self._objects[kind].items())
                if name is None or key == name
            ]
            return self._version, items

    def compacted(self) -> int:
        with self._lock:
            return self._compacted


def _qualified(kind: Kind) -> str:
    """``nodes`` or ``eniconfigs.crd.k8s.amazonaws.com``, as the API server's messages name them."""
    return f"{kind.resource}.{kind.group}" if kind.group else kind.resource


def status(
    code: int, reason: str, message: str, details: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A ``Status`` object as the API server sends it for a failure."""
    found: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
    }
    if details is not None:
        found["details"] = details
    found["code"] = code
    return found


VERSION_INFO = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.23.4",
    "compiler": "gc",
    "platform": "linux/amd64",
}
REASONS = {
    400: "BadRequest",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
}


class _Handler(BaseHTTPRequestHandler):
    api: FakeApiServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    # -- plumbing --------------------------------------------------------------------------------

    def _send(self, code: int, body: Any, content_type: str = "application/json") -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _chunk(self, obj: Mapping[str, Any]) -> None:
        data = json.dumps(obj).encode() + b"\n"
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        path = parts.path.rstrip("/")
        if path == "/version":  # public, as on a real server
            self._send(200, VERSION_INFO)
            return
        if not self._authenticated():
            self._send(401, status(401, "Unauthorized", "Unauthorized"))
            return
        discovery = self._discovery(path)
        if discovery is not None:
            self._send(200, discovery)
            return
        route = self._route(path)
        if route is None:
            self._send(404, b"404 page not found\n", "text/plain; charset=utf-8")
            return
        kind, name = route
        watching = query.get("watch", "") in ("1", "true")
        verb = "get" if name is not None else ("watch" if watching else "list")
        recorded = Recorded(verb, kind.resource, path, query)
        self.api.requests.append(recorded)
        code = self._answer(recorded, kind, name, query)
        recorded.status = code

    def _authenticated(self) -> bool:
        header = self.headers.get("Authorization", "")
        return header.startswith("Bearer ") and header[len("Bearer ") :] in self.api.tokens

    def _route(self, path: str) -> tuple[Kind, str | None] | None:
        for kind in KINDS:
            if kind is ENICONFIGS and not self.api.crd_installed:
                continue
            base = kind.collection_path
            if path == base:
                return kind, None
            if path.startswith(base + "/") and "/" not in path[len(base) + 1 :]:
                return kind, path[len(base) + 1 :]
        return None

    def _discovery(self, path: str) -> dict[str, Any] | None:
        host = f"127.0.0.1:{self.api.port}"
        if path == "/api":
            return {
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}],
            }
        if path == "/apis":
            groups = []
            if self.api.crd_installed:
                version = {"groupVersion": ENICONFIG_API, "version": VERSION}
                groups.append({"name": GROUP, "versions": [version], "preferredVersion": version})
            return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}
        for kind in KINDS:
            if kind is ENICONFIGS and not self.api.crd_installed:
                continue
            if path == ("/api/v1" if not kind.group else f"/apis/{kind.api_version}"):
                resource: dict[str, Any] = {
                    "name": kind.resource,
                    "singularName": kind.singular,
                    "namespaced": False,
                    "kind": kind.kind,
                    "verbs": [
                        "create",
                        "delete",
                        "deletecollection",
                        "get",
                        "list",
                        "patch",
                        "update",
                        "watch",
                    ],
                }
                if kind.short_names:
                    resource["shortNames"] = list(kind.short_names)
                if kind.group:
                    resource["storageVersionHash"] = "eniconfigs00="
                return {
                    "kind": "APIResourceList",
                    "apiVersion": "v1",
                    "groupVersion": kind.api_version,
                    "resources": [resource],
                }
        return None

    # -- API requests ----------------------------------------------------------------------------

    def _answer(
        self, recorded: Recorded, kind: Kind, name: str | None, query: dict[str, str]
    ) -> int:
        refusal = self._refusal(recorded, kind, name, query)
        if refusal is not None:
            self._send(refusal["code"], refusal)
            return int(refusal["code"])
        selected = self._selected(query)  # a bad selector was refused above
        if name is not None:
            _, items = self.api.snapshot(kind, name)
            if not items:
                message = f'{_qualified(kind)} "{name}" not found'
                details = {"name": name, "kind": kind.resource}
                self._send(404, status(404, "NotFound", message, details))
                return 404
            self._send(200, items[0])
            return 200
        if recorded.verb == "watch":
            return self._watch(kind, selected, query)
        version, items = self.api.snapshot(kind, selected)
        if not kind.group:
            for item in items:  # built-in lists carry no kind/apiVersion per item
                item.pop("kind", None)
                item.pop("apiVersion", None)
        self._send(
            200,
            {
                "kind": f"{kind.kind}List",
                "apiVersion": kind.api_version,
                "metadata": {"resourceVersion": str(version)},
                "items": items,
            },
        )
        return 200

    def _refusal(
        self, recorded: Recorded, kind: Kind, name: str | None, query: dict[str, str]
    ) -> dict[str, Any] | None:
        """The Status for a request that fails before it is served (RBAC, injected, bad)."""
        if not self.api.allowed(kind, recorded.verb):
            named = f'{_qualified(kind)} "{name}"' if name else _qualified(kind)
            message = (
                f'{named} is forbidden: User "{self.api.user}" cannot {recorded.verb} resource '
                f'"{kind.resource}" in API group "{kind.group}" at the cluster scope'
            )
            details: dict[str, Any] = {"name": name} if name else {}
            details["kind"] = kind.resource
            if kind.group:
                details["group"] = kind.group
            return status(403, "Forbidden", message, details)
        failure = self.api.take_failure()
        if failure is not None:
            reason = REASONS.get(failure, "InternalError")
            return status(failure, reason, f"injected failure {failure}")
        try:
            self._selected(query)
        except ValueError as error:
            return status(400, "BadRequest", str(error))
        raw = query.get("resourceVersion", "")
        if raw and not raw.isdigit():
            return status(400, "BadRequest", f"invalid resource version: {raw}")
        return None

    def _selected(self, query: dict[str, str]) -> str | None:
        """The name a field selector picks; None: no selector; ValueError: not supported."""
        selector = query.get("fieldSelector", "")
        if not selector:
            return None
        for operator in ("==", "="):
            key, found, value = selector.partition(operator)
            if found and key == "metadata.name" and value:
                return value
        raise ValueError(f'unable to parse requirement: field label not supported: "{selector}"')

    def _watch(self, kind: Kind, name: str | None, query: dict[str, str]) -> int:
        api = self.api
        raw = query.get("resourceVersion", "")
        since = int(raw) if raw not in ("", "0") else None
        if since is not None and since < api.compacted():
            expired = status(
                410, "Expired", f"too old resource version: {since} ({api.compacted()})"
            )
            if api.gone_as == "http":
                self._send(410, expired)
                return 410
            self._start_stream()
            self._chunk({"type": "ERROR", "object": expired})
            self._end()
            return 410
        self._start_stream()
        watch = _Watch(self.connection, kind, query.get("allowWatchBookmarks") == "true")
        deadline = time.monotonic() + float(query.get("timeoutSeconds") or "1800")
        try:
            with api._lock:
                api._watches.append(watch)
                if since is None:  # "most recent": the current objects first, as ADDED
                    for key, obj in sorted(api._objects[kind].items()):
                        if name in (None, key):
                            self._chunk({"type": "ADDED", "object": obj})
                    since = api._version
            self._stream(watch, name, since, deadline)
            self._end()
        except OSError:
            self.close_connection = True
        finally:
            with api._lock:
                if watch in api._watches:
                    api._watches.remove(watch)
        return 200

    def _stream(self, watch: _Watch, name: str | None, since: int, deadline: float) -> None:
        """Send events after ``since`` (and bookmarks when asked) until ``deadline``."""
        api, kind = self.api, watch.kind
        while True:
            with api._lock:
                events = [
                    e
                    for e in api._events
                    if e.version > since
                    and e.kind is kind
                    and name in (None, e.obj["metadata"]["name"])
                ]
                bookmark = watch.pending_bookmark
                watch.pending_bookmark = False
                current = api._version
                if not events and not bookmark:
                    left = deadline - time.monotonic()
                    if left <= 0 or api._stopping:
                        return
                    api._lock.wait(min(left, 0.5))
                    continue
            for event in events:
                self._chunk({"type": event.type, "object": event.obj})
                since = event.version
            if bookmark:
                metadata = {"resourceVersion": str(current)}
                self._chunk(
                    {
                        "type": "BOOKMARK",
                        "object": {
                            "kind": kind.kind,
                            "apiVersion": kind.api_version,
                            "metadata": metadata,
                        },
                    }
                )
                since = max(since, current)

    def _start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _end(self) -> None:
        try:
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:
            self.close_connection = True


def node(
    name: str,
    *,
    labels: Mapping[str, str] | None = None,
    annotations: Mapping[str, str] | None = None,
    pods: str = "110",
) -> dict[str, Any]:
    """A Node as the API server holds it (the parts the daemon reads, and a few more)."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "node.kubernetes.io/instance-type": "m5.large",
                "topology.kubernetes.io/zone": "us-west-2a",
                **(labels or {}),
            },
            "annotations": {
                "node.alpha.kubernetes.io/ttl": "0",
                **(annotations or {}),
            },
        },
        "spec": {"providerID": "aws:///us-west-2a/i-0123456789abcdef0"},
        "status": {
            "capacity": {"cpu": "2", "memory": "7910360Ki", "pods": pods},
            "allocatable": {"cpu": "1930m", "memory": "7220184Ki", "pods": pods},
        },
    }


def eniconfig(name: str, subnet: str, groups: Iterable[str] = ()) -> dict[str, Any]:
    """An ENIConfig as ``kubectl apply`` would create it."""
    spec: dict[str, Any] = {"subnet": subnet}
    groups = list(groups)
    if groups:
        spec["securityGroups"] = groups
    return {
        "apiVersion": ENICONFIG_API,
        "kind": "ENIConfig",
        "metadata": {"name": name},
        "spec": spec,
    }
