"""The thin client (vpccni.adapters.kubernetes_api) against the test API server: auth, errors in
the API's words, watch streams, TLS, and where in-cluster access comes from."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path

import pytest

from tests.kube.conftest import TOKEN
from tests.kube.fake_apiserver import ENICONFIGS, NODES, FakeApiServer, eniconfig, node
from tests.kube.tls import make_tls
from vpccni.adapters.kubernetes_api import (
    KubeApi,
    KubeApiError,
    KubeEndpoint,
    in_cluster_endpoint,
)


def test_get_sends_the_bearer_token_and_returns_the_object(
    api_server: FakeApiServer, token_file: Path
) -> None:
    api_server.put(NODES, node("node-1"))
    api = KubeApi(KubeEndpoint(api_server.url, token_file))
    found = api.get("/api/v1/nodes/node-1")
    assert (found["kind"], found["metadata"]["name"]) == ("Node", "node-1")
    listed = api.get("/api/v1/nodes", {"fieldSelector": "metadata.name=node-1"})
    assert listed["kind"] == "NodeList"
    assert listed["metadata"]["resourceVersion"] == str(api_server.resource_version)
    assert [item["metadata"]["name"] for item in listed["items"]] == ["node-1"]


def test_a_rotated_token_is_read_again(api_server: FakeApiServer, tmp_path: Path) -> None:
    """kubelet rewrites projected tokens in place: the next request carries the new one."""
    api_server.put(NODES, node("node-1"))
    token = tmp_path / "token"
    token.write_text("old-token", encoding="utf-8")
    api_server.tokens = {"old-token"}
    api = KubeApi(KubeEndpoint(api_server.url, token))
    api.get("/api/v1/nodes/node-1")
    token.write_text("rotated-token-longer", encoding="utf-8")
    api_server.tokens = {"rotated-token-longer"}
    assert api.get("/api/v1/nodes/node-1")["metadata"]["name"] == "node-1"


def test_a_401_reads_the_token_again_once(api_server: FakeApiServer, tmp_path: Path) -> None:
    """A rotation the file's stat did not show (same size and mtime) is caught by the 401."""
    api_server.put(NODES, node("node-1"))
    token = tmp_path / "token"
    token.write_text("token-a", encoding="utf-8")
    api_server.tokens = {"token-a"}
    api = KubeApi(KubeEndpoint(api_server.url, token))
    api.get("/api/v1/nodes/node-1")
    stat = token.stat()
    token.write_text("token-b", encoding="utf-8")
    os.utime(token, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    api_server.tokens = {"token-b"}
    before = len(api_server.requests)
    assert api.get("/api/v1/nodes/node-1")["metadata"]["name"] == "node-1"
    assert len(api_server.requests) == before + 1  # the 401 was not an API request


def test_errors_carry_the_status_objects_words(
    api_server: FakeApiServer, token_file: Path, tmp_path: Path
) -> None:
    api = KubeApi(KubeEndpoint(api_server.url, token_file))
    with pytest.raises(KubeApiError) as missing:
        api.get("/api/v1/nodes/nowhere")
    assert (missing.value.status, missing.value.reason) == (404, "NotFound")
    assert missing.value.message == 'nodes "nowhere" not found'

    api_server.rules = []
    with pytest.raises(KubeApiError) as denied:
        api.get("/apis/crd.k8s.amazonaws.com/v1alpha1/eniconfigs")
    assert (denied.value.status, denied.value.reason) == (403, "Forbidden")
    assert 'cannot list resource "eniconfigs" in API group "crd.k8s.amazonaws.com"' in str(
        denied.value
    )

    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-token", encoding="utf-8")
    with pytest.raises(KubeApiError) as refused:
        KubeApi(KubeEndpoint(api_server.url, wrong)).get("/api/v1/nodes")
    assert (refused.value.status, refused.value.reason) == (401, "Unauthorized")

    api_server.crd_installed = False
    with pytest.raises(KubeApiError) as no_crd:
        api.get("/apis/crd.k8s.amazonaws.com/v1alpha1/eniconfigs")
    assert (no_crd.value.status, no_crd.value.message) == (404, "404 page not found")

    with pytest.raises(KubeApiError) as gone:
        KubeApi(KubeEndpoint(api_server.url, tmp_path / "no-such-token")).get("/api/v1/nodes")
    assert gone.value.reason == "NoToken"
    assert "no-such-token" in gone.value.message


def test_an_unreachable_server_is_status_0(token_file: Path) -> None:
    with pytest.raises(KubeApiError) as error:
        KubeApi(KubeEndpoint("http://127.0.0.1:9", token_file, timeout_seconds=2)).get("/api")
    assert (error.value.status, error.value.reason) == (0, "Unreachable")
    assert "refused" in error.value.message.lower()


def test_a_watch_yields_events_and_ends_with_the_servers_timeout(
    api_server: FakeApiServer, token_file: Path
) -> None:
    api_server.put(ENICONFIGS, eniconfig("a", "subnet-a"))
    api = KubeApi(KubeEndpoint(api_server.url, token_file))
    start = api.get("/apis/crd.k8s.amazonaws.com/v1alpha1/eniconfigs")["metadata"][
        "resourceVersion"
    ]
    api_server.put(ENICONFIGS, eniconfig("b", "subnet-b"))
    api_server.put(ENICONFIGS, eniconfig("a", "subnet-a2"))
    api_server.delete(ENICONFIGS, "b")
    began = time.monotonic()
    watch = api.watch(
        "/apis/crd.k8s.amazonaws.com/v1alpha1/eniconfigs", {"resourceVersion": start}, 1
    )
    events = [(e["type"], e["object"]["metadata"]["name"]) for e in watch]
    assert events == [("ADDED", "b"), ("MODIFIED", "a"), ("DELETED", "b")]
    assert 0.9 < time.monotonic() - began < 5


def test_close_ends_a_blocked_watch_from_another_thread(
    api_server: FakeApiServer, token_file: Path
) -> None:
    api = KubeApi(KubeEndpoint(api_server.url, token_file))
    watch = api.watch("/api/v1/nodes", {}, 60)
    done = threading.Event()

    def read() -> None:
        with contextlib.suppress(KubeApiError):
            list(watch)
        done.set()

    threading.Thread(target=read, daemon=True).start()
    time.sleep(0.3)
    assert not done.is_set()
    watch.close()
    assert done.wait(5), "close() did not end the blocked read"


def test_tls_is_verified_against_the_ca_file(tmp_path: Path, token_file: Path) -> None:
    tls = make_tls(tmp_path / "tls")
    with FakeApiServer(tokens={TOKEN}, tls=tls) as server:
        server.put(NODES, node("node-1"))
        api = KubeApi(KubeEndpoint(server.url, token_file, tls.ca))
        assert api.get("/api/v1/nodes/node-1")["metadata"]["name"] == "node-1"
        other = make_tls(tmp_path / "other")  # a CA that did not sign the server's certificate
        with pytest.raises(KubeApiError) as error:
            KubeApi(KubeEndpoint(server.url, token_file, other.ca)).get("/api/v1/nodes")
        assert error.value.status == 0
        assert "certificate verify failed" in error.value.message


def test_in_cluster_access_needs_the_token(tmp_path: Path) -> None:
    account = tmp_path / "serviceaccount"
    assert in_cluster_endpoint("10.100.0.1", 443, None, account) is None
    account.mkdir()
    (account / "token").write_text("t", encoding="utf-8")
    found = in_cluster_endpoint("10.100.0.1", 443, None, account)
    assert found == KubeEndpoint("https://10.100.0.1:443", account / "token", None)
    (account / "ca.crt").write_text("pem", encoding="utf-8")
    v6 = in_cluster_endpoint("fd00:10:96::1", 6443, None, account)
    assert v6 is not None
    assert (v6.url, v6.ca_file) == ("https://[fd00:10:96::1]:6443", account / "ca.crt")
    override = in_cluster_endpoint(
        "10.100.0.1", 443, "https://ABC.gr7.us-west-2.eks.amazonaws.com/", account
    )
    assert override is not None
    assert override.url == "https://ABC.gr7.us-west-2.eks.amazonaws.com"
    assert in_cluster_endpoint(None, 443, None, account) is None
