"""FileSource: ENIConfig YAML/JSON from a directory, node labels from the command line, re-read
when a file changes; bad input is refused at start and kept out while running."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from vpccni.adapters.eniconfig_files import FileSource, read_directory
from vpccni.core.cluster import EniConfig, NodeInfo
from vpccni.errors import InvalidInput

NODE = NodeInfo("node-1", {"k8s.amazonaws.com/eniConfig": "az1"})

KUBECTL_LIST = """\
apiVersion: v1
items:
- apiVersion: crd.k8s.amazonaws.com/v1alpha1
  kind: ENIConfig
  metadata:
    name: az1
    resourceVersion: "1002"
  spec:
    securityGroups:
    - sg-1
    subnet: subnet-1
- apiVersion: crd.k8s.amazonaws.com/v1alpha1
  kind: ENIConfig
  metadata:
    name: az2
  spec:
    subnet: subnet-2
kind: List
metadata:
  resourceVersion: ""
"""

SINGLE = """\
apiVersion: crd.k8s.amazonaws.com/v1alpha1
kind: ENIConfig
metadata:
  name: {name}
spec:
  subnet: {subnet}
"""


def touch_later(path: Path, text: str) -> None:
    """Rewrite ``path`` with a modification time clearly after the last one."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text, encoding="utf-8")
    os.utime(path, ns=(before + 10**9, before + 10**9))


def test_every_layout_kubectl_and_people_write(tmp_path: Path) -> None:
    (tmp_path / "list.yaml").write_text(KUBECTL_LIST, encoding="utf-8")
    (tmp_path / "one.yml").write_text(SINGLE.format(name="az3", subnet="subnet-3"))
    (tmp_path / "two.yaml").write_text(
        SINGLE.format(name="az4", subnet="subnet-4")
        + "---\n"
        + SINGLE.format(name="az5", subnet="subnet-5")
        + "---\n"
    )
    document = {
        "kind": "ENIConfigList",
        "apiVersion": "crd.k8s.amazonaws.com/v1alpha1",
        "metadata": {"resourceVersion": "7"},
        "items": [{"metadata": {"name": "az6"}, "spec": {"subnet": "subnet-6"}}],
    }
    (tmp_path / "api.json").write_text(json.dumps(document))
    (tmp_path / ".hidden.yaml").write_text("not: [valid")  # an editor's or ConfigMap's file
    (tmp_path / "README.md").write_text("notes")
    (tmp_path / "empty.yaml").write_text("")
    found = read_directory(tmp_path)
    assert found == {
        "az1": EniConfig("az1", "subnet-1", ("sg-1",)),
        "az2": EniConfig("az2", "subnet-2"),
        "az3": EniConfig("az3", "subnet-3"),
        "az4": EniConfig("az4", "subnet-4"),
        "az5": EniConfig("az5", "subnet-5"),
        "az6": EniConfig("az6", "subnet-6"),
    }
    view = FileSource(tmp_path, NODE).view()
    assert (view.node, dict(view.eniconfigs), view.reachable, view.problem) == (
        NODE,
        found,
        False,
        "",
    )


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("kind: ENIConfig\nmetadata: {name: a}\nspec: [\n", "bad.yaml line 4"),
        (
            "apiVersion: crd.k8s.amazonaws.com/v1alpha1\nkind: ENIConfig\nmetadata: {name: a}\n"
            "spec: {securityGroups: [sg-1]}\n",
            "bad.yaml: ENIConfig 'a' has no spec.subnet (the subnet id its pod ENIs go to)",
        ),
        (
            "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\n",
            "bad.yaml: holds a Pod; only ENIConfig objects (or a List of them, as 'kubectl get "
            "eniconfigs -o yaml' prints) belong here",
        ),
        (
            "apiVersion: v1\nkind: List\nitems:\n- {kind: Node, metadata: {name: n}}\n",
            "bad.yaml: List holds a Node; only ENIConfig objects belong here",
        ),
        (
            "apiVersion: crd.k8s.amazonaws.com/v1alpha2\nkind: ENIConfig\nmetadata: {name: a}\n"
            "spec: {subnet: s}\n",
            "ENIConfig 'a' has apiVersion 'crd.k8s.amazonaws.com/v1alpha2'; ENIConfig's is "
            "crd.k8s.amazonaws.com/v1alpha1",
        ),
        (
            "kind: ENIConfig\nmetadata: {name: a}\nspec: {subnet: s, securityGroups: sg-1}\n",
            "spec.securityGroups must be a list of security group ids",
        ),
        (
            SINGLE.format(name="a", subnet="s") + "---\n" + SINGLE.format(name="a", subnet="t"),
            "bad.yaml: ENIConfig 'a' is also in",
        ),
        ("- just\n- a list\n", "is not a Kubernetes object"),
    ],
)
def test_bad_files_are_refused_with_the_file_and_the_reason(
    tmp_path: Path, text: str, problem: str
) -> None:
    (tmp_path / "bad.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(InvalidInput) as error:
        FileSource(tmp_path, NODE)
    assert problem in str(error.value)
    assert "\n" not in str(error.value)


def test_an_unreadable_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"cannot read --eniconfig-dir .*missing"):
        FileSource(tmp_path / "missing", NODE)


def test_changes_are_read_on_the_next_view(tmp_path: Path) -> None:
    path = tmp_path / "eniconfigs.yaml"
    path.write_text(SINGLE.format(name="az1", subnet="subnet-1"), encoding="utf-8")
    source = FileSource(tmp_path, NODE)
    first = source.view()
    assert source.view() is first  # nothing changed: the same view, no re-read
    touch_later(path, SINGLE.format(name="az1", subnet="subnet-9"))
    changed = source.view()
    assert changed.eniconfigs["az1"].subnet == "subnet-9"
    assert changed.generation == first.generation + 1

    touch_later(path, "kind: ENIConfig\nmetadata: {name: az1}\n")  # broken while running
    broken = source.view()
    assert broken.eniconfigs["az1"].subnet == "subnet-9"  # the last good ENIConfigs stay
    assert "has no spec" in broken.problem
    assert "kept the last good ENIConfigs" in broken.problem
    assert broken.generation == changed.generation + 1

    touch_later(path, SINGLE.format(name="az2", subnet="subnet-2"))
    fixed = source.view()
    assert (set(fixed.eniconfigs), fixed.problem) == ({"az2"}, "")
    (tmp_path / "more.yaml").write_text(SINGLE.format(name="az3", subnet="subnet-3"))
    assert set(source.view().eniconfigs) == {"az2", "az3"}
    path.unlink()
    assert set(source.view().eniconfigs) == {"az3"}


def test_without_a_directory_only_the_node(tmp_path: Path) -> None:
    view = FileSource(None, NODE).view()
    assert (view.node, dict(view.eniconfigs), view.problem) == (NODE, {}, "")
