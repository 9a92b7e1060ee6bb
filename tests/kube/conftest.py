"""Fixtures for the Kubernetes source tests: the test API server, a token file, fast sources."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.kube.fake_apiserver import FakeApiServer
from tests.kube.tls import make_tls
from vpccni.adapters.kubernetes_api import KubeApi, KubeEndpoint
from vpccni.adapters.kubernetes_source import KubernetesSource
from vpccni.cloud.retry import Backoff

TOKEN = "test-token"
FAST = Backoff(attempts=1_000_000, base=0.05, cap=0.4, jitter=0.0)
"""The production backoff's shape (doubling to a cap) on a test's time scale."""


@pytest.fixture
def api_server() -> Iterator[FakeApiServer]:
    server = FakeApiServer(tokens={TOKEN}).start()
    yield server
    server.stop()


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n", encoding="utf-8")
    return path


@pytest.fixture
def make_source(token_file: Path) -> Iterator[Any]:
    made: list[KubernetesSource] = []

    def make(server: FakeApiServer, node: str = "node-1", **options: Any) -> KubernetesSource:
        options.setdefault("backoff", FAST)
        options.setdefault("watch_seconds", (5, 5))
        endpoint = KubeEndpoint(server.url, options.pop("token", token_file), timeout_seconds=5)
        source = KubernetesSource(KubeApi(endpoint), node, **options)
        made.append(source)
        return source

    yield make
    for source in made:
        source.close()


def _require(condition: bool, reason: str) -> None:
    if condition:
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the kubectl tests, but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def kubectl() -> str:
    """kubectl's path (preinstalled here and on CI)."""
    found = shutil.which("kubectl")
    _require(found is not None, "kubectl is not on PATH (install kubectl 1.32 or newer)")
    assert found is not None
    return found


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[FakeApiServer]:
    """The test API server over HTTPS (kubectl sends a bearer token only over TLS)."""
    server = FakeApiServer(tokens={TOKEN}, tls=make_tls(tmp_path / "tls")).start()
    yield server
    server.stop()


def kubeconfig(server: FakeApiServer, directory: Path) -> dict[str, str]:
    """An environment for kubectl with a kubeconfig pointing at ``server``."""
    assert server.tls is not None
    path = directory / "kubeconfig"
    path.write_text(
        "apiVersion: v1\nkind: Config\n"
        f"clusters: [{{name: test, cluster: {{server: '{server.url}', "
        f"certificate-authority: '{server.tls.ca}'}}}}]\n"
        f"users: [{{name: vpccni, user: {{token: {TOKEN}}}}}]\n"
        "contexts: [{name: test, context: {cluster: test, user: vpccni}}]\n"
        "current-context: test\n",
        encoding="utf-8",
    )
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "KUBECONFIG": str(path),
        "HOME": str(directory),
    }
