"""KubernetesSource against the test API server: list + watch, resume, 410 re-list, backoff,
problems that name the fix, and exactly the RBAC it is shipped with."""

from __future__ import annotations

import itertools
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.kube.fake_apiserver import (
    ENICONFIGS,
    NODES,
    FakeApiServer,
    Recorded,
    eniconfig,
    node,
)
from vpccni.adapters.kubernetes_api import KubeApi, KubeEndpoint
from vpccni.adapters.kubernetes_source import API_CALLS, KubernetesSource
from vpccni.core.cluster import ClusterView, EniConfig
from vpccni.deploy.rbac import cluster_role_rules

LABEL = "k8s.amazonaws.com/eniConfig"


def wait_view(
    source: KubernetesSource, check: Callable[[ClusterView], bool], timeout: float = 10.0
) -> ClusterView:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        view = source.view()
        if check(view):
            return view
        time.sleep(0.02)
    raise AssertionError(f"the view never got there: {source.view()}")


def watches(requests: list[Recorded], resource: str) -> list[Recorded]:
    return [r for r in requests if r.verb == "watch" and r.resource == resource]


def lists(requests: list[Recorded], resource: str) -> list[Recorded]:
    return [r for r in requests if r.verb == "list" and r.resource == resource]


def test_lists_then_follows_every_change(api_server: FakeApiServer, make_source: Any) -> None:
    api_server.put(NODES, node("node-1", labels={LABEL: "az1"}, pods="110"))
    api_server.put(NODES, node("node-2"))  # another node: never read
    api_server.put(ENICONFIGS, eniconfig("az1", "subnet-1", ["sg-1", "sg-2"]))
    source = make_source(api_server)
    assert source.wait_synced(10)
    view = source.view()
    assert view.reachable
    assert view.problem == ""
    assert view.node is not None
    assert (view.node.name, view.node.labels[LABEL], view.node.max_pods) == ("node-1", "az1", 110)
    assert view.eniconfigs == {"az1": EniConfig("az1", "subnet-1", ("sg-1", "sg-2"))}
    first = view.generation

    api_server.put(ENICONFIGS, eniconfig("az2", "subnet-2"))
    view = wait_view(source, lambda v: "az2" in v.eniconfigs)
    assert view.generation > first
    api_server.touch(NODES, "node-1", **{LABEL: "az2"})
    view = wait_view(source, lambda v: v.node is not None and v.node.labels[LABEL] == "az2")
    api_server.put(ENICONFIGS, eniconfig("az2", "subnet-2b", ["sg-9"]))
    wait_view(source, lambda v: v.eniconfigs["az2"].subnet == "subnet-2b")
    api_server.delete(ENICONFIGS, "az1")
    view = wait_view(source, lambda v: "az1" not in v.eniconfigs)
    assert view.eniconfigs == {"az2": EniConfig("az2", "subnet-2b", ("sg-9",))}
    api_server.touch(NODES, "node-2", team="other")  # not ours: no change
    time.sleep(0.3)
    assert source.view().generation == view.generation

    requests = api_server.requests
    node_lists = lists(requests, "nodes")
    assert node_lists[0].query == {"fieldSelector": "metadata.name=node-1", "resourceVersion": "0"}
    node_watch = watches(requests, "nodes")[0].query
    assert node_watch["fieldSelector"] == "metadata.name=node-1"
    assert node_watch["allowWatchBookmarks"] == "true"
    assert node_watch["resourceVersion"] == "1003"  # the list's, not the Node's own 1001
    assert int(node_watch["timeoutSeconds"]) == 5
    assert len(lists(requests, "eniconfigs")) == 1  # no relist: everything came by watch


def test_a_dropped_watch_resumes_from_the_last_version_seen(
    api_server: FakeApiServer, make_source: Any
) -> None:
    api_server.put(NODES, node("node-1"))
    source = make_source(api_server)
    assert source.wait_synced(10)
    api_server.put(ENICONFIGS, eniconfig("a", "subnet-a"))
    wait_view(source, lambda v: "a" in v.eniconfigs)
    seen = api_server.resource_version
    api_server.drop_watches()
    api_server.wait_for(lambda rs: len(watches(rs, "eniconfigs")) >= 2)
    resumed = watches(api_server.requests, "eniconfigs")[1]
    assert resumed.query["resourceVersion"] == str(seen)
    assert len(lists(api_server.requests, "eniconfigs")) == 1
    api_server.put(ENICONFIGS, eniconfig("b", "subnet-b"))
    view = wait_view(source, lambda v: "b" in v.eniconfigs)
    assert view.reachable  # one dropped connection is routine, not a problem


def test_bookmarks_move_the_resume_point(api_server: FakeApiServer, make_source: Any) -> None:
    """Without bookmarks a quiet watch would resume from an old version (and after compaction
    re-list); a bookmark carries the current one."""
    api_server.put(NODES, node("node-1"))
    source = make_source(api_server, eniconfigs=False)
    assert source.wait_synced(10)
    api_server.wait_for(lambda rs: watches(rs, "nodes"))
    api_server.unrelated_writes(50)
    api_server.bookmark()
    time.sleep(0.3)
    api_server.compact()  # every version before now is gone
    api_server.drop_watches()
    api_server.wait_for(lambda rs: len(watches(rs, "nodes")) >= 2)
    time.sleep(0.3)
    second = watches(api_server.requests, "nodes")[1]
    assert second.query["resourceVersion"] == str(api_server.resource_version)
    assert second.status != 410
    assert len(lists(api_server.requests, "nodes")) == 1


@pytest.mark.parametrize("gone_as", ["event", "http"])
def test_410_gone_lists_again(api_server: FakeApiServer, make_source: Any, gone_as: str) -> None:
    """Gone as an ERROR event with a 410 Status (the watch cache) or as HTTP 410: re-list (a
    consistent list, without resourceVersion) and watch from the new list."""
    api_server.gone_as = gone_as
    api_server.put(NODES, node("node-1"))
    api_server.put(ENICONFIGS, eniconfig("a", "subnet-a"))
    source = make_source(api_server)
    assert source.wait_synced(10)
    api_server.wait_for(lambda rs: watches(rs, "eniconfigs"))
    api_server.delete(ENICONFIGS, "a")
    api_server.compact()  # the deletion's event is lost with the history
    api_server.put(ENICONFIGS, eniconfig("b", "subnet-b"))
    api_server.compact()
    api_server.drop_watches()
    view = wait_view(source, lambda v: set(v.eniconfigs) == {"b"})
    assert view.reachable
    requests = api_server.requests
    relists = lists(requests, "eniconfigs")
    assert len(relists) == 2
    assert "resourceVersion" not in relists[1].query
    assert any(r.status == 410 for r in watches(requests, "eniconfigs"))
    api_server.put(ENICONFIGS, eniconfig("c", "subnet-c"))
    wait_view(source, lambda v: set(v.eniconfigs) == {"b", "c"})


def test_api_errors_back_off_doubling_then_recover(
    api_server: FakeApiServer, make_source: Any
) -> None:
    api_server.put(NODES, node("node-1"))
    api_server.fail_next(5, 500)
    source = make_source(api_server, eniconfigs=False)
    view = wait_view(source, lambda v: not v.reachable and "500" in v.problem)
    assert "injected failure 500" in view.problem
    assert source.wait_synced(10)
    assert wait_view(source, lambda v: v.reachable).problem == ""
    failed = [r for r in api_server.requests if r.status == 500]
    assert len(failed) == 5
    times = [r.at for r in api_server.requests[:6]]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    # 0.05, 0.1, 0.2, 0.4, 0.4 s (FAST: doubling, capped at 0.4)
    for gap, expected in zip(gaps, [0.05, 0.1, 0.2, 0.4, 0.4], strict=True):
        assert expected * 0.8 <= gap <= expected + 0.3, gaps


def test_401_and_403_name_the_fix(
    api_server: FakeApiServer, make_source: Any, tmp_path: Any
) -> None:
    api_server.put(NODES, node("node-1"))
    wrong = tmp_path / "wrong-token"
    wrong.write_text("expired", encoding="utf-8")
    refused = make_source(api_server, token=wrong, eniconfigs=False)
    view = wait_view(refused, lambda v: "401" in v.problem)
    assert not view.reachable
    assert "automountServiceAccountToken: true" in view.problem
    refused.close()

    api_server.rules = [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["list"]}]
    denied = make_source(api_server, eniconfigs=False)
    view = wait_view(denied, lambda v: "403" in v.problem)
    assert 'cannot watch resource "nodes"' in view.problem
    assert "RBAC" in view.problem
    assert "nodes list/watch, eniconfigs list/watch" in view.problem
    assert view.node is not None  # the list worked; the watch is what is denied
    api_server.rules = cluster_role_rules()
    assert wait_view(denied, lambda v: v.reachable).problem == ""


def test_missing_crd_and_missing_node_are_explained(
    api_server: FakeApiServer, make_source: Any
) -> None:
    api_server.crd_installed = False
    source = make_source(api_server)
    view = wait_view(source, lambda v: "CRD" in v.problem and "does not exist" in v.problem)
    assert "apply deploy/kubernetes/base/eniconfig-crd.yaml" in view.problem
    assert "MY_NODE_NAME must be this node's name" in view.problem
    assert view.node is None
    api_server.put(NODES, node("node-1"))  # the Node appears: the watch brings it
    wait_view(source, lambda v: v.node is not None and "does not exist" not in v.problem)


def test_a_malformed_eniconfig_is_skipped_and_named(
    api_server: FakeApiServer, make_source: Any
) -> None:
    api_server.put(NODES, node("node-1"))
    api_server.put(ENICONFIGS, eniconfig("good", "subnet-1"))
    bad = eniconfig("bad", "subnet-2")
    bad["spec"] = {"securityGroups": ["sg-1"]}  # a CRD without a schema would let this in
    api_server.put(ENICONFIGS, bad)
    source = make_source(api_server)
    view = wait_view(source, lambda v: "good" in v.eniconfigs)
    assert set(view.eniconfigs) == {"good"}
    assert "ENIConfig 'bad' has no spec.subnet" in view.problem


def test_the_shipped_rbac_is_exactly_enough(api_server: FakeApiServer, make_source: Any) -> None:
    """Under the ClusterRole 'vpccni manifests' ships: no 403, and every verb it grants used."""
    api_server.rules = cluster_role_rules()
    api_server.put(NODES, node("node-1"))
    api_server.put(ENICONFIGS, eniconfig("a", "subnet-a"))
    source = make_source(api_server)
    assert source.wait_synced(10)
    api_server.unrelated_writes(1)
    api_server.compact()
    api_server.drop_watches()  # -> 410 -> re-list: every kind of request
    api_server.wait_for(lambda rs: len(lists(rs, "eniconfigs")) >= 2)
    assert all(r.status != 403 for r in api_server.requests)
    group = {"nodes": "", "eniconfigs": "crd.k8s.amazonaws.com"}
    used = {(group[r.resource], r.resource, r.verb) for r in api_server.requests}
    assert used == set(API_CALLS)


def test_view_never_waits_for_the_network(token_file: Any) -> None:
    """A server that accepts and never answers: view() still returns at once."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        source = KubernetesSource(KubeApi(KubeEndpoint(url, token_file, timeout_seconds=30)), "n")
        try:
            time.sleep(0.2)
            began = time.monotonic()
            view = source.view()
            assert time.monotonic() - began < 0.05
            assert not view.reachable
            assert view.problem == "the Kubernetes API has not answered yet"
            assert not source.wait_synced(0.2)
        finally:
            closer = threading.Thread(target=source.close)
            closer.start()
    finally:
        silent.close()
    closer.join(40)


def test_close_stops_the_threads_mid_watch(api_server: FakeApiServer, make_source: Any) -> None:
    api_server.put(NODES, node("node-1"))
    source = make_source(api_server, watch_seconds=(60, 60))
    assert source.wait_synced(10)
    api_server.wait_for(lambda rs: len(watches(rs, "nodes")) and len(watches(rs, "eniconfigs")))
    began = time.monotonic()
    source.close()
    assert time.monotonic() - began < 3
    assert not any(thread.is_alive() for thread in source._threads)
