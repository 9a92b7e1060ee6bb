"""Finding the DaemonSet: kubectl's YAML and JSON, view-last-applied, streams and Lists; clear
one-line refusals for anything else."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.configcheck.conftest import UPSTREAM_MANIFEST, run, upstream_daemon_set
from vpccni.configcheck.source import load
from vpccni.errors import InvalidInput


def test_upstreams_stream_yields_its_daemonset_and_splits_the_containers() -> None:
    found = load(UPSTREAM_MANIFEST)
    assert (found.namespace, found.name, found.flavour) == ("kube-system", "aws-node", "upstream")
    assert [(c.name, c.init) for c in found.cni] == [
        ("aws-vpc-cni-init", True),
        ("aws-node", False),
    ]
    assert [c.name for c in found.others] == ["aws-eks-nodeagent"]
    assert found.skipped_kinds.count("CustomResourceDefinition") == 2
    env = found.environment()
    assert (env["WARM_ENI_TARGET"], env["DISABLE_TCP_EARLY_DEMUX"]) == ("1", "false")
    assert "MY_NODE_NAME" not in env  # from the downward API, not a literal value


def test_view_last_applied_as_json_and_a_list(tmp_path: Path) -> None:
    document = upstream_daemon_set()
    single = tmp_path / "last-applied.json"
    single.write_text(json.dumps(document))
    assert load(single).name == "aws-node"
    listed = tmp_path / "list.json"
    listed.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": [document]}))
    assert load(listed).main is not None


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("kind: DaemonSet\nmetadata: {name: x\n", "line 3 is not valid YAML"),
        ("kind: ConfigMap\n", "holds no DaemonSet (found: ConfigMap)"),
        ("", "holds no DaemonSet (found: nothing)"),
        (
            "kind: DaemonSet\nmetadata: {name: a}\n---\nkind: DaemonSet\nmetadata: {name: b}\n",
            "holds 2 DaemonSets (a, b); give a file with one",
        ),
        (
            "kind: DaemonSet\nmetadata: {name: web}\nspec: {template: {spec: {containers: "
            "[{name: nginx, env: [{name: PORT, value: '80'}]}]}}}\n",
            "has no CNI container",
        ),
        (
            "kind: DaemonSet\nmetadata: {name: a}\nspec: {template: {spec: {containers: 5}}}\n",
            "spec.template.spec.containers is not a list",
        ),
    ],
)
def test_what_is_not_one_cni_daemonset_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, words: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    with pytest.raises(InvalidInput) as refused:
        load(path)
    assert words in str(refused.value)
    code, out, err = run(capsys, "config", "check", str(path))
    assert (code, out) == (2, "")
    assert err.count("\n") == 1
    assert words in err


def test_a_missing_or_binary_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "config", "check", str(tmp_path / "nope.yaml"))
    assert code == 2
    assert "cannot read" in err
    assert "No such file or directory" in err
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00")
    code, _, err = run(capsys, "config", "convert", str(binary))
    assert (code, "is not UTF-8 text" in err) == (2, True)


def test_a_cni_container_under_another_name_is_found_by_its_variables(
    write: Callable[[Any], Path],
) -> None:
    document = upstream_daemon_set()
    document["spec"]["template"]["spec"]["containers"][0]["name"] = "cni"
    found = load(write(document))
    assert [c.name for c in found.cni] == ["aws-vpc-cni-init", "cni"]
