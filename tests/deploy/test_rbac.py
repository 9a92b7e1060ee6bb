"""The ClusterRole grants exactly the Kubernetes API calls vpccni makes: its Node and the
ENIConfigs, listed and watched (vpccni.adapters.kubernetes_source). tests/kube runs the adapter
against a test API server enforcing exactly these rules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import vpccni
from tests.deploy.conftest import by_kind, render
from vpccni.adapters.kubernetes_source import API_CALLS
from vpccni.deploy.rbac import KUBERNETES_API_CALLS, ApiCall, cluster_role_rules, needs_token

PACKAGE = Path(vpccni.__file__).parent
CLIENT_MODULES = {"kubernetes", "kubernetes_asyncio", "lightkube", "pykube", "kr8s", "kubectl"}
IN_CLUSTER_MARKERS = ("KUBERNETES_SERVICE_HOST", "/var/run/secrets/kubernetes.io/serviceaccount")
API_USERS = ["adapters/kubernetes_api.py", "deploy/variables.py", "settings.py"]
"""The modules that may name API access: the client (the service-account paths), the settings
(which read KUBERNETES_SERVICE_HOST) and the DaemonSet's table of variables (which may not set
it); everything else goes through the client."""


def kubernetes_api_users(package: Path = PACKAGE) -> list[str]:
    """Modules of vpccni that import a Kubernetes client or read in-cluster credentials."""
    found = []
    for path in sorted(package.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text)
        roots = {
            alias.name.split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
        } | {
            node.module.split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0
        }
        strings = [
            node.value
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
        ]
        if roots & CLIENT_MODULES or any(
            marker in value for value in strings for marker in IN_CLUSTER_MARKERS
        ):
            found.append(str(path.relative_to(package)))
    return found


def test_declared_calls_match_the_code() -> None:
    """The declared calls are the adapter's, and no other module reaches the API on its own
    (no Kubernetes client library, no in-cluster credentials outside the client)."""
    assert kubernetes_api_users() == API_USERS
    declared = {(call.group, call.resource, call.verb) for call in KUBERNETES_API_CALLS}
    assert declared == set(API_CALLS)
    assert len(declared) == len(KUBERNETES_API_CALLS)
    assert all(call.why for call in KUBERNETES_API_CALLS)


def test_the_scan_sees_a_client(tmp_path: Path) -> None:
    (tmp_path / "reader.py").write_text("from kubernetes import client\n", encoding="utf-8")
    (tmp_path / "token.py").write_text(
        "TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token'\n", encoding="utf-8"
    )
    (tmp_path / "quiet.py").write_text("import json\n", encoding="utf-8")
    assert kubernetes_api_users(tmp_path) == ["reader.py", "token.py"]


def test_rules_are_generated_from_the_calls_only() -> None:
    calls = (
        ApiCall("", "nodes", "get", "the node's labels"),
        ApiCall("crd.k8s.amazonaws.com", "eniconfigs", "watch", "custom networking"),
        ApiCall("", "nodes", "list", "the node's labels"),
        ApiCall("crd.k8s.amazonaws.com", "eniconfigs", "get", "custom networking"),
    )
    assert cluster_role_rules(calls) == [
        {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list"]},
        {
            "apiGroups": ["crd.k8s.amazonaws.com"],
            "resources": ["eniconfigs"],
            "verbs": ["get", "watch"],
        },
    ]
    assert needs_token(calls) is True
    assert cluster_role_rules(()) == []
    assert needs_token(()) is False


def test_shipped_role_and_token(capsys: pytest.CaptureFixture[str]) -> None:
    objects = by_kind(render(capsys))
    assert (
        objects["ClusterRole"]["rules"]
        == cluster_role_rules()
        == [
            {"apiGroups": [""], "resources": ["nodes"], "verbs": ["list", "watch"]},
            {
                "apiGroups": ["crd.k8s.amazonaws.com"],
                "resources": ["eniconfigs"],
                "verbs": ["list", "watch"],
            },
        ]
    )
    pod = objects["DaemonSet"]["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is True
    binding = objects["ClusterRoleBinding"]
    assert binding["roleRef"]["name"] == objects["ClusterRole"]["metadata"]["name"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "vpccni", "namespace": "kube-system"}
    ]
    assert pod["serviceAccountName"] == objects["ServiceAccount"]["metadata"]["name"]
