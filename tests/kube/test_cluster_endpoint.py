"""``CLUSTER_ENDPOINT``: in a pod (a service-account token), the daemon's Kubernetes source talks
to this address instead of ``KUBERNETES_SERVICE_HOST``'s, as upstream's client does. The daemon's
own path: ``parse_settings`` -> ``open_source`` -> the Node read from the test API server."""

from __future__ import annotations

from pathlib import Path

from tests.kube.conftest import TOKEN
from tests.kube.fake_apiserver import NODES, FakeApiServer, node
from vpccni.adapters.kubernetes_source import KubernetesSource
from vpccni.core.config import IpamConfig
from vpccni.daemon.cluster import open_source
from vpccni.settings import parse_settings

NAME = "ip-10-0-1-17.us-west-2.compute.internal"


def test_the_in_cluster_client_talks_to_cluster_endpoint(
    api_server: FakeApiServer, tmp_path: Path
) -> None:
    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "token").write_text(TOKEN, encoding="utf-8")
    api_server.put(NODES, node(NAME, pods="58"))
    env = {
        "KUBERNETES_SERVICE_HOST": "127.0.0.1",
        "KUBERNETES_SERVICE_PORT": "9",  # the discard port: nothing answers there
        "CLUSTER_ENDPOINT": api_server.url,
        "MY_NODE_NAME": NAME,
    }
    settings = parse_settings(env, service_account=account)
    assert (settings.cluster.in_cluster, settings.cluster.api_url) == (True, api_server.url)
    source = open_source(settings.cluster, IpamConfig())
    try:
        assert isinstance(source, KubernetesSource)
        assert source.wait_synced(10)
        view = source.view()
        assert view.node is not None
        assert (view.node.name, view.node.max_pods) == (NAME, 58)
    finally:
        source.close()
    assert [r for r in api_server.requests if r.resource == "nodes"]
