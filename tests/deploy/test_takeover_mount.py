"""The DaemonSet mounts upstream's /var/run/aws-node read-only where the daemon looks for
upstream's checkpoint, so a node aws-node ran can be taken over (docs/migration.md)."""

from __future__ import annotations

import posixpath

import pytest

from tests.deploy.conftest import by_kind, render
from vpccni.cli.main import main
from vpccni.settings import DaemonSettings


def test_upstreams_directory_is_mounted_read_only_where_the_daemon_reads(
    capsys: pytest.CaptureFixture[str],
) -> None:
    pod = by_kind(render(capsys))["DaemonSet"]["spec"]["template"]["spec"]
    store = str(DaemonSettings().upstream_checkpoint)
    (volume,) = [v for v in pod["volumes"] if v["name"] == "aws-node-dir"]
    assert volume["hostPath"] == {"path": posixpath.dirname(store), "type": "DirectoryOrCreate"}
    (mount,) = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "aws-node-dir"]
    assert mount == {"name": "aws-node-dir", "mountPath": "/var/run/aws-node", "readOnly": True}
    assert store.startswith(mount["mountPath"] + "/")
    init_mounts = {m["name"] for m in pod["initContainers"][0]["volumeMounts"]}
    assert "aws-node-dir" not in init_mounts


def test_a_backing_store_off_that_mount_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["manifests", "--set", "AWS_VPC_K8S_CNI_BACKING_STORE=/srv/ipam.json"])
    captured = capsys.readouterr()
    assert (code, captured.out) == (2, "")
    assert "AWS_VPC_K8S_CNI_BACKING_STORE='/srv/ipam.json' is not on the read-only mount" in (
        captured.err
    )
    assert (
        main(["manifests", "--set", "AWS_VPC_K8S_CNI_BACKING_STORE=/var/run/aws-node/other.json"])
        == 0
    )
