"""Which cluster source the daemon runs (vpccni.settings, ClusterSettings), and its refusals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from vpccni.adapters.eniconfig_files import FileSource
from vpccni.adapters.kubernetes_source import KubernetesSource
from vpccni.core.config import ConfigError, IpamConfig
from vpccni.daemon.cluster import NoClusterSource, open_source
from vpccni.settings import ClusterSettings, DaemonFlags, parse_settings

NODE = "ip-10-0-1-17.us-west-2.compute.internal"


@pytest.fixture
def account(tmp_path: Path) -> Path:
    """A pod's service-account directory: token and CA."""
    directory = tmp_path / "serviceaccount"
    directory.mkdir()
    (directory / "token").write_text("t", encoding="utf-8")
    (directory / "ca.crt").write_text("pem", encoding="utf-8")
    return directory


def cluster(env: dict[str, str], account: Path, **flags: Any) -> ClusterSettings:
    return parse_settings(env, DaemonFlags(**flags), service_account=account).cluster


def test_in_a_pod_the_service_account_is_used(account: Path) -> None:
    env = {"KUBERNETES_SERVICE_HOST": "10.100.0.1", "KUBERNETES_SERVICE_PORT": "443"}
    found = cluster({**env, "MY_NODE_NAME": NODE}, account)
    assert (found.source, found.in_cluster, found.api_url) == (
        "api",
        True,
        "https://10.100.0.1:443",
    )
    assert (found.token_file, found.ca_file, found.node_name) == (
        account / "token",
        account / "ca.crt",
        NODE,
    )
    override = cluster(
        {**env, "CLUSTER_ENDPOINT": "https://ABC.gr7.us-west-2.eks.amazonaws.com"}, account
    )
    assert override.api_url == "https://ABC.gr7.us-west-2.eks.amazonaws.com"


def test_without_a_token_there_is_no_api(tmp_path: Path) -> None:
    found = cluster({"KUBERNETES_SERVICE_HOST": "10.100.0.1"}, tmp_path / "none")
    assert found.source == "none"
    assert "no service-account token" in found.note
    assert "automountServiceAccountToken: false?" in found.note
    source = open_source(found, IpamConfig())
    assert isinstance(source, NoClusterSource)
    assert source.view().problem.startswith("no Kubernetes API access (no service-account token")
    assert cluster({}, tmp_path / "none") == ClusterSettings()


def test_explicit_flags_win(account: Path, tmp_path: Path) -> None:
    in_pod = {"KUBERNETES_SERVICE_HOST": "10.100.0.1", "MY_NODE_NAME": NODE}
    token = tmp_path / "my-token"
    token.write_text("x", encoding="utf-8")
    explicit = cluster(
        in_pod, account, kube_api="https://127.0.0.1:6443", kube_token_file=str(token)
    )
    assert (explicit.source, explicit.in_cluster, explicit.token_file) == ("api", False, token)
    files = cluster(
        in_pod,
        account,
        eniconfig_dir=str(tmp_path),
        node_labels=("k8s.amazonaws.com/eniConfig=us-west-2a", "team="),
        node_annotations=("example.com/owner=network team, on call",),
    )
    assert (files.source, files.eniconfig_dir) == ("files", tmp_path)
    assert files.node_labels == {"k8s.amazonaws.com/eniConfig": "us-west-2a", "team": ""}
    assert files.node_annotations == {"example.com/owner": "network team, on call"}
    labels_only = cluster({}, account, node_labels=("zone=a",))
    assert (labels_only.source, labels_only.eniconfig_dir) == ("files", None)


@pytest.mark.parametrize(
    ("env", "flags", "problem"),
    [
        (
            {},
            {"kube_api": "https://127.0.0.1:6443", "eniconfig_dir": "/"},
            "--kube-api and --eniconfig-dir/--node-label/--node-annotation contradict",
        ),
        ({}, {"kube_token_file": __file__}, "--kube-token-file and --kube-ca-file go with"),
        ({}, {"kube_api": "127.0.0.1:6443"}, "--kube-api='127.0.0.1:6443' is not an http://"),
        ({}, {"kube_api": "http://x", "kube_ca_file": "/nonexistent"}, "is not a file"),
        ({}, {"eniconfig_dir": "/nonexistent"}, "--eniconfig-dir='/nonexistent' is not a dir"),
        ({}, {"node_labels": ("no-equals",)}, "--node-label 'no-equals' is not KEY=VALUE"),
        (
            {},
            {"node_labels": ("a/b/c=x",)},
            "--node-label 'a/b/c=x' has the key prefix 'a/b', which is not a DNS subdomain",
        ),
        ({}, {"node_labels": ("zone=a b",)}, "has a value that is not a label value"),
        (
            {"AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG": "true"},
            {"kube_api": "http://127.0.0.1:8080"},
            "but MY_NODE_NAME is not set",
        ),
    ],
)
def test_refusals(env: dict[str, str], flags: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError) as error:
        parse_settings(env, DaemonFlags(**flags))
    assert problem in str(error.value)


def test_the_source_follows_the_settings(tmp_path: Path, account: Path) -> None:
    files = open_source(cluster({}, account, eniconfig_dir=str(tmp_path)), IpamConfig())
    assert isinstance(files, FileSource)
    without_name = open_source(cluster({}, account, kube_api="http://127.0.0.1:9"), IpamConfig())
    assert isinstance(without_name, NoClusterSource)
    assert "MY_NODE_NAME is not set" in without_name.view().problem
    api = open_source(
        cluster({"MY_NODE_NAME": NODE}, account, kube_api="http://127.0.0.1:9"),
        IpamConfig(custom_networking=True),
    )
    try:
        assert isinstance(api, KubernetesSource)
        assert [s.name for s in api._streams] == ["node", "eniconfigs"]
        assert api.retry_cap_until_synced == 2.0  # custom networking: retry every 2 s
    finally:
        api.close()
    plain = open_source(
        cluster({"MY_NODE_NAME": NODE}, account, kube_api="http://127.0.0.1:9"), IpamConfig()
    )
    try:
        assert isinstance(plain, KubernetesSource)
        assert [s.name for s in plain._streams] == ["node"]  # no ENIConfigs without it
    finally:
        plain.close()
