"""The cluster from the Kubernetes API: this node's Node and the ENIConfigs, listed and watched.

Two background threads, one per stream, each a small reflector:

* **node**: ``GET /api/v1/nodes?fieldSelector=metadata.name=<MY_NODE_NAME>`` (a list, so its
  ``resourceVersion`` is the cluster's current one even when the Node has not changed for days),
  then a watch with the same selector;
* **eniconfigs** (with custom networking): ``GET /apis/crd.k8s.amazonaws.com/v1alpha1/
  eniconfigs``, then a watch.

A watch asks for bookmarks (``allowWatchBookmarks=true``) and lasts 5 to 10 minutes (random, as
client-go's reflector); when it ends or breaks, the next one resumes from the last
``resourceVersion`` seen (an event's or a bookmark's). ``410 Gone`` - as the HTTP status or as a
watch ``ERROR`` event whose ``Status`` has code 410 - means that version is too old: list again
at once. Any other failure (unreachable, 401, 403, 5xx, a watch that closes at once) waits 1 s
doubling to 60 s with 15 % jitter, then retries; the wait starts over after a success.

``view()`` returns the last :class:`~vpccni.core.cluster.ClusterView` at once (no network):
``reachable`` is true while every stream's last request succeeded; ``problem`` says what is wrong
in one line with the fix (401: the token; 403: the RBAC rules; 404 on ENIConfigs: the CRD is
not installed); ``generation`` grows on every change. After a failure the view keeps the last
objects it had, so a restarted API server does not make the node forget its ENIConfig.

:data:`API_CALLS` lists every request this module makes, as (group, resource, verb): the
ClusterRole shipped in ``deploy/`` grants exactly these (a test ties the two).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vpccni.adapters.kubernetes_api import (
    WATCH_BROKEN,
    KubeApi,
    KubeApiError,
    WatchStream,
    status_error,
)
from vpccni.adapters.kubernetes_objects import ObjectError, eniconfig_from, node_from
from vpccni.cloud.retry import Backoff
from vpccni.core.cluster import (
    ENICONFIG_GROUP,
    ENICONFIG_PLURAL,
    ENICONFIG_VERSION,
    ClusterView,
    EniConfig,
    NodeInfo,
)

log = logging.getLogger("vpccni.kubernetes")

NODES_PATH = "/api/v1/nodes"
ENICONFIGS_PATH = f"/apis/{ENICONFIG_GROUP}/{ENICONFIG_VERSION}/{ENICONFIG_PLURAL}"
API_CALLS: tuple[tuple[str, str, str], ...] = (
    ("", "nodes", "list"),
    ("", "nodes", "watch"),
    (ENICONFIG_GROUP, ENICONFIG_PLURAL, "list"),
    (ENICONFIG_GROUP, ENICONFIG_PLURAL, "watch"),
)
"""(API group, resource, verb) of every request :class:`KubernetesSource` makes."""
BACKOFF = Backoff(attempts=1_000_000, base=1.0, cap=60.0, jitter=0.15)
WATCH_SECONDS = (300, 600)
SHORT_WATCH_SECONDS = 1.0
RBAC_FIX = (
    "grant the daemon's ServiceAccount the ClusterRole 'vpccni manifests' renders "
    "(nodes list/watch, eniconfigs list/watch)"
)


@dataclass
class _Stream:
    """One list + watch loop's target and health."""

    name: str
    path: str
    params: dict[str, str]
    resource: str
    ok: bool = False
    problem: str = "not read yet"
    listed: bool = False
    version: str | None = None
    """The last resourceVersion seen (list, event or bookmark): where the next watch starts."""
    watch: WatchStream | None = None
    events: int = 0
    """Events the current (or last) watch delivered."""
    objects: dict[str, Any] = field(default_factory=dict)


class KubernetesSource:
    """A :class:`~vpccni.ports.ClusterSource` kept current by list + watch on its own threads."""

    def __init__(
        self,
        api: KubeApi,
        node_name: str,
        *,
        eniconfigs: bool = True,
        backoff: Backoff = BACKOFF,
        watch_seconds: tuple[int, int] = WATCH_SECONDS,
        retry_cap_until_synced: float | None = None,
        rng: random.Random | None = None,
        start: bool = True,
    ) -> None:
        self.api = api
        self.node_name = node_name
        self.backoff = backoff
        self.watch_seconds = watch_seconds
        self.retry_cap_until_synced = retry_cap_until_synced
        self._rng = rng or random.Random()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._synced = threading.Event()
        self._view = ClusterView(problem="the Kubernetes API has not answered yet")
        self._streams = [
            _Stream(
                "node",
                NODES_PATH,
                {"fieldSelector": f"metadata.name={node_name}"},
                f"Node {node_name}",
            )
        ]
        if eniconfigs:
            self._streams.append(_Stream("eniconfigs", ENICONFIGS_PATH, {}, "ENIConfigs"))
        self._threads = [
            threading.Thread(target=self._run, args=(s,), name=f"kube-{s.name}", daemon=True)
            for s in self._streams
        ]
        if start:
            self.start()

    # -- the port --------------------------------------------------------------------------------

    def view(self) -> ClusterView:
        with self._lock:
            return self._view

    def close(self) -> None:
        """Stop both threads (an open watch is cut) and the connection pool."""
        self._stop.set()
        with self._lock:
            watches = [s.watch for s in self._streams if s.watch is not None]
        for watch in watches:
            watch.close()
        for thread in self._threads:
            if thread.is_alive() and thread is not threading.current_thread():
                thread.join(timeout=15)
        self.api.close()

    # -- control ---------------------------------------------------------------------------------

    def start(self) -> None:
        for thread in self._threads:
            if not thread.is_alive():
                thread.start()

    def wait_synced(self, timeout: float | None, stop: threading.Event | None = None) -> bool:
        """Wait until every stream has been listed once (the API answered); False on timeout
        or when ``stop`` is set."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._synced.is_set():
            if stop is not None and stop.is_set():
                return False
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            self._synced.wait(0.2 if left is None else min(0.2, left))
        return True

    # -- the loop --------------------------------------------------------------------------------

    def _run(self, stream: _Stream) -> None:
        consistent = False
        attempt = 0
        broke = False
        while not self._stop.is_set():
            try:
                if stream.version is None:
                    stream.version = self._list(stream, consistent=consistent)
                    consistent = False
                    attempt = 0
                self._watch(stream)
                attempt = 0
                broke = False
            except KubeApiError as error:
                if self._stop.is_set():
                    return
                if error.gone:
                    log.info("%s: %s; listing again", stream.resource, error)
                    stream.version, consistent = None, True
                    continue
                if error.reason == WATCH_BROKEN and (stream.events or not broke):
                    # a dropped connection is routine: resume at once (again only after events)
                    log.info("%s: %s; resuming from %s", stream.resource, error, stream.version)
                    broke = True
                    continue
                self._failed(stream, error)
                wait = self.backoff.delay(attempt, self._rng)
                if self.retry_cap_until_synced is not None and not self._synced.is_set():
                    wait = min(wait, self.retry_cap_until_synced)
                attempt += 1
                self._stop.wait(wait)

    def _list(self, stream: _Stream, *, consistent: bool) -> str:
        """List the stream's objects; returns the list's resourceVersion to watch from.

        The first list may come from the API server's cache (``resourceVersion=0``); after a
        410 the list is consistent (no ``resourceVersion``), as client-go's reflector does.
        """
        params = dict(stream.params)
        if not consistent:
            params["resourceVersion"] = "0"
        document = self.api.get(stream.path, params)
        metadata = document.get("metadata")
        version = metadata.get("resourceVersion") if isinstance(metadata, dict) else None
        items = document.get("items")
        if not isinstance(version, str) or not isinstance(items, list):
            raise KubeApiError(
                f"GET {stream.path}", 200, "BadResponse", "not a list (no items or resourceVersion)"
            )
        with self._lock:
            stream.objects = {_object_name(item): item for item in items if isinstance(item, dict)}
            stream.listed = True
            self._succeeded(stream)
        return version

    def _watch(self, stream: _Stream) -> None:
        """Watch from the stream's version until the server ends the watch, keeping the version
        of every event (and bookmark) in the stream: a broken watch resumes from there."""
        low, high = self.watch_seconds
        seconds = low if high <= low else self._rng.randrange(low, high)
        assert stream.version is not None
        params = {**stream.params, "resourceVersion": stream.version, "allowWatchBookmarks": "true"}
        started = time.monotonic()
        watch = self.api.watch(stream.path, params, seconds)
        with self._lock:
            stream.watch = watch
            if not stream.ok:
                self._succeeded(stream)  # the API answered: whatever failed before is over
        if self._stop.is_set():
            watch.close()
        stream.events = 0
        try:
            for event in watch:
                stream.events += 1
                self._apply(stream, event)
        finally:
            with self._lock:
                stream.watch = None
        if self._stop.is_set():
            return
        if not stream.events and time.monotonic() - started < min(SHORT_WATCH_SECONDS, seconds):
            raise KubeApiError(
                f"WATCH {stream.path}", 0, "ShortWatch", "the watch closed at once, with no event"
            )

    def _apply(self, stream: _Stream, event: Mapping[str, Any]) -> None:
        kind, obj = event.get("type"), event["object"]
        if kind == "ERROR":
            raise status_error(f"WATCH {stream.path}", obj)
        metadata = obj.get("metadata")
        found = metadata.get("resourceVersion") if isinstance(metadata, dict) else None
        if isinstance(found, str) and found:
            stream.version = found
        if kind == "BOOKMARK":
            return
        name = _object_name(obj)
        with self._lock:
            if kind in ("ADDED", "MODIFIED"):
                stream.objects[name] = obj
            elif kind == "DELETED":
                stream.objects.pop(name, None)
            else:
                log.warning("%s: ignored a watch event of type %r", stream.resource, kind)
                return
            self._succeeded(stream)

    # -- state -----------------------------------------------------------------------------------

    def _succeeded(self, stream: _Stream) -> None:
        """Under the lock: the stream answered; rebuild the view from both streams' objects."""
        stream.ok = True
        stream.problem = ""
        self._rebuild()
        if all(s.listed for s in self._streams):
            self._synced.set()

    def _failed(self, stream: _Stream, error: KubeApiError) -> None:
        problem = self._explain(stream, error)
        with self._lock:
            changed = problem != stream.problem
            stream.ok = False
            stream.problem = problem
            self._rebuild()
        if changed:
            log.warning("Kubernetes API: %s", problem)

    def _explain(self, stream: _Stream, error: KubeApiError) -> str:
        where = self.api.endpoint.url
        if error.status == 0:
            return f"cannot reach the Kubernetes API at {where}: {error}"
        if error.status == 401:
            return (
                f"the Kubernetes API at {where} refused the token (401 Unauthorized) on "
                f"{error.request}; the service-account token is missing, expired or from another "
                "cluster: check automountServiceAccountToken: true and the ServiceAccount"
            )
        if error.status == 403:
            return f"{error} (403); RBAC: {RBAC_FIX}"
        if error.status == 404 and stream.name == "eniconfigs":
            return (
                f"the ENIConfig CRD is not installed ({error.request}: 404); apply "
                "deploy/kubernetes/base/eniconfig-crd.yaml (kubectl apply -f)"
            )
        return f"Kubernetes API {error}"

    def _rebuild(self) -> None:
        """Under the lock: the view from the streams; a new generation when anything changed."""
        node_stream = self._streams[0]
        node: NodeInfo | None = None
        problems: list[str] = []
        for obj in node_stream.objects.values():
            try:
                node = node_from(obj)
            except ObjectError as error:
                problems.append(f"Node {self.node_name}: {error}")
        if node_stream.listed and node_stream.ok and not node_stream.objects:
            problems.append(
                f"the Node {self.node_name!r} does not exist; MY_NODE_NAME must be this node's "
                "name (the DaemonSet sets it from spec.nodeName)"
            )
        eniconfigs: dict[str, EniConfig] = {}
        for stream in self._streams[1:]:
            for name, obj in sorted(stream.objects.items()):
                try:
                    eniconfigs[name] = eniconfig_from(obj)
                except ObjectError as error:
                    problems.append(f"skipped: {error}")
        problems += [s.problem for s in self._streams if s.problem]
        old = self._view
        fresh = (node, eniconfigs, all(s.ok for s in self._streams), "; ".join(problems))
        if fresh != (old.node, dict(old.eniconfigs), old.reachable, old.problem):
            self._view = ClusterView(
                node=fresh[0],
                eniconfigs=eniconfigs,
                generation=old.generation + 1,
                reachable=fresh[2],
                problem=fresh[3],
            )


def _object_name(obj: Mapping[str, Any]) -> str:
    metadata = obj.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    return name if isinstance(name, str) else ""
