"""The test API server speaks the real API: the real kubectl (a Go client-go client) reads Nodes
and ENIConfigs from it, lists, gets and watches. And the file source, fed what kubectl prints,
gives the same view and the same decisions as the API source on the same objects."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

from tests.kube.conftest import kubeconfig
from tests.kube.fake_apiserver import ENICONFIGS, NODES, FakeApiServer, eniconfig, node
from vpccni.adapters.kubernetes_api import KubeApi, KubeEndpoint
from vpccni.adapters.kubernetes_source import KubernetesSource
from vpccni.core.config import IpamConfig
from vpccni.core.subnets import (
    EniConfigChoice,
    PlacementProblem,
    eniconfig_choice,
    node_eniconfig,
)
from vpccni.daemon.cluster import max_pods_choice, open_source
from vpccni.settings import DaemonFlags, parse_settings

NAME = "ip-10-0-1-17.us-west-2.compute.internal"


def run(kubectl: str, env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [kubectl, *args], capture_output=True, text=True, env=env, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def fill(server: FakeApiServer) -> None:
    server.put(
        NODES,
        node(
            NAME,
            labels={"k8s.amazonaws.com/eniConfig": "us-west-2a", "team": "payments"},
            annotations={"example.com/owner": "network team"},
            pods="110",
        ),
    )
    server.put(ENICONFIGS, eniconfig("us-west-2a", "subnet-0a1", ["sg-0a", "sg-0b"]))
    server.put(ENICONFIGS, eniconfig("us-west-2b", "subnet-0b2"))
    server.put(ENICONFIGS, eniconfig("payments", "subnet-0c3", ["sg-0c"]))
    server.put(ENICONFIGS, eniconfig("default", "subnet-0d4"))


def test_kubectl_gets_lists_and_watches(
    kubectl: str, tls_server: FakeApiServer, tmp_path: Path
) -> None:
    fill(tls_server)
    env = kubeconfig(tls_server, tmp_path)
    table = run(kubectl, env, "get", "eniconfigs").splitlines()
    assert table[0].split() == ["NAME", "AGE"]
    assert [line.split()[0] for line in table[1:]] == [
        "default",
        "payments",
        "us-west-2a",
        "us-west-2b",
    ]
    listed = json.loads(run(kubectl, env, "get", "eniconfigs", "-o", "json"))
    assert [i["metadata"]["name"] for i in listed["items"]] == [
        "default",
        "payments",
        "us-west-2a",
        "us-west-2b",
    ]
    assert listed["items"][2]["spec"] == {
        "subnet": "subnet-0a1",
        "securityGroups": ["sg-0a", "sg-0b"],
    }
    got = json.loads(run(kubectl, env, "get", "node", NAME, "-o", "json"))
    assert got["status"]["capacity"]["pods"] == "110"
    one = yaml.safe_load(run(kubectl, env, "get", "eniconfig", "payments", "-o", "yaml"))
    assert (one["kind"], one["spec"]["subnet"]) == ("ENIConfig", "subnet-0c3")
    by_selector = json.loads(
        run(kubectl, env, "get", "nodes", "--field-selector", f"metadata.name={NAME}", "-o", "json")
    )
    assert [i["metadata"]["name"] for i in by_selector["items"]] == [NAME]

    watcher = subprocess.Popen(
        [kubectl, "get", "eniconfigs", "--watch-only", "-o", "name", "--request-timeout=5s"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        tls_server.wait_for(lambda rs: any(r.verb == "watch" for r in rs))
        tls_server.put(ENICONFIGS, eniconfig("us-west-2c", "subnet-0e5"))
        out, err = watcher.communicate(timeout=30)
    finally:
        watcher.kill()
    assert "eniconfig.crd.k8s.amazonaws.com/us-west-2c" in out, err
    watch = next(r for r in tls_server.requests if r.verb == "watch")
    assert watch.query["watch"] == "true"


def cluster_flags(kubectl: str, env: dict[str, str], directory: Path, **extra: Any) -> DaemonFlags:
    """The file source's flags made from what kubectl prints: the ENIConfigs as YAML in a
    directory, the Node's labels and annotations as --node-label / --node-annotation."""
    directory.mkdir()
    (directory / "eniconfigs.yaml").write_text(
        run(kubectl, env, "get", "eniconfigs", "-o", "yaml"), encoding="utf-8"
    )
    got = json.loads(run(kubectl, env, "get", "node", NAME, "-o", "json"))["metadata"]
    return DaemonFlags(
        eniconfig_dir=str(directory),
        node_labels=tuple(f"{k}={v}" for k, v in got["labels"].items()),
        node_annotations=tuple(f"{k}={v}" for k, v in got["annotations"].items()),
        **extra,
    )


@pytest.mark.parametrize(
    ("relabel", "expected"),
    [
        ({}, "us-west-2a"),
        ({"vpc.amazonaws.com/externalEniConfig": "payments"}, "payments"),
        ({"k8s.amazonaws.com/eniConfig": "nowhere"}, None),
    ],
)
def test_the_file_source_decides_as_the_api_source(
    kubectl: str,
    tls_server: FakeApiServer,
    tmp_path: Path,
    token_file: Path,
    relabel: dict[str, str],
    expected: str | None,
) -> None:
    fill(tls_server)
    if relabel:
        tls_server.touch(NODES, NAME, **relabel)
    assert tls_server.tls is not None
    api_source = KubernetesSource(
        KubeApi(KubeEndpoint(tls_server.url, token_file, tls_server.tls.ca)), NAME
    )
    try:
        assert api_source.wait_synced(10)
        api_view = api_source.view()
    finally:
        api_source.close()
    env = kubeconfig(tls_server, tmp_path)
    flags = cluster_flags(kubectl, env, tmp_path / "eniconfigs", max_pods="110")
    settings = parse_settings({"MY_NODE_NAME": NAME}, flags)
    file_source = open_source(settings.cluster, IpamConfig(custom_networking=True))
    file_view = file_source.view()

    assert api_view.node is not None
    assert file_view.node is not None
    assert file_view.node.name == api_view.node.name
    assert dict(file_view.node.labels) == dict(api_view.node.labels)
    assert dict(file_view.node.annotations) == dict(api_view.node.annotations)
    assert dict(file_view.eniconfigs) == dict(api_view.eniconfigs)
    assert len(api_view.eniconfigs) == 4
    label = annotation = "k8s.amazonaws.com/eniConfig"
    for view in (api_view, file_view):
        assert eniconfig_choice(view.node, label, annotation)[0] == (expected or "nowhere")
    api_choice = node_eniconfig(api_view, label, annotation)
    assert node_eniconfig(file_view, label, annotation) == api_choice
    if expected is None:
        assert isinstance(api_choice, PlacementProblem)
        assert "ENIConfig 'nowhere'" in api_choice.message
    else:
        assert isinstance(api_choice, EniConfigChoice)
        assert api_choice.name == expected
    # max pods: the Node's capacity from the API, --max-pods with files: the same figure
    assert max_pods_choice(api_view, None, 29)[0] == 110
    assert max_pods_choice(file_view, settings.daemon.max_pods, 29)[0] == 110


def test_a_change_reaches_both_sources(
    kubectl: str, tls_server: FakeApiServer, tmp_path: Path, token_file: Path
) -> None:
    """Edit an ENIConfig: the API source sees it by watch, the file source when kubectl's new
    output lands in its directory; both views agree again."""
    fill(tls_server)
    assert tls_server.tls is not None
    api_source = KubernetesSource(
        KubeApi(KubeEndpoint(tls_server.url, token_file, tls_server.tls.ca)), NAME
    )
    env = kubeconfig(tls_server, tmp_path)
    flags = cluster_flags(kubectl, env, tmp_path / "eniconfigs")
    file_source = open_source(parse_settings({}, flags).cluster, IpamConfig())
    try:
        assert api_source.wait_synced(10)
        tls_server.put(ENICONFIGS, eniconfig("us-west-2a", "subnet-0f6", ["sg-0f"]))
        deadline = time.monotonic() + 10
        while api_source.view().eniconfigs["us-west-2a"].subnet != "subnet-0f6":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        path = tmp_path / "eniconfigs" / "eniconfigs.yaml"
        before = path.stat().st_mtime_ns
        path.write_text(run(kubectl, env, "get", "eniconfigs", "-o", "yaml"), encoding="utf-8")
        os.utime(path, ns=(before + 10**9, before + 10**9))
        assert dict(file_source.view().eniconfigs) == dict(api_source.view().eniconfigs)
    finally:
        api_source.close()
