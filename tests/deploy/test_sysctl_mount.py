"""The host's /proc/sys/net, mounted read-write in the main container only, where the daemon's
``write_sysctl`` falls back to when the runtime's /proc/sys is read-only (each pod's host veth's
accept_ra, accept_redirects and forwarding; tests/e2e/test_daemonset.py shows the effect)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.deploy.conftest import KUBERNETES, by_kind, kustomize, render
from vpccni.adapters.netlink_kit import HOST_PROC_SYS_NET
from vpccni.cli.main import main


def _pod(daemon_set: dict[str, Any]) -> dict[str, Any]:
    pod: dict[str, Any] = daemon_set["spec"]["template"]["spec"]
    return pod


def check_mount(daemon_set: dict[str, Any]) -> None:
    pod = _pod(daemon_set)
    (volume,) = [v for v in pod["volumes"] if v.get("hostPath", {}).get("path") == "/proc/sys/net"]
    assert volume["hostPath"] == {"path": "/proc/sys/net", "type": "Directory"}
    (main_container,) = pod["containers"]
    (mount,) = [m for m in main_container["volumeMounts"] if m["name"] == volume["name"]]
    assert mount == {"name": volume["name"], "mountPath": HOST_PROC_SYS_NET}  # read-write
    (init,) = pod["initContainers"]
    assert volume["name"] not in {m["name"] for m in init["volumeMounts"]}  # privileged anyway
    assert main_container["securityContext"]["privileged"] is False


def test_main_container_mounts_the_hosts_proc_sys_net_where_write_sysctl_looks(
    capsys: pytest.CaptureFixture[str],
) -> None:
    check_mount(by_kind(render(capsys))["DaemonSet"])
    moved = ("--set", "HOST_CNI_BIN_PATH=/host/usr/libexec/cni")
    check_mount(by_kind(render(capsys, *moved))["DaemonSet"])


def test_the_overlays_carry_the_mount(kubectl: str) -> None:
    for overlay in ("plain", "irsa"):
        check_mount(by_kind(kustomize(kubectl, KUBERNETES / "overlays" / overlay))["DaemonSet"])


@pytest.mark.parametrize("path", ["/host/proc/sys/net/bin", "/host/proc", "/host/proc/sys/net"])
def test_a_cni_path_overlapping_the_mount_is_refused_and_nothing_written(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, path: str
) -> None:
    out = tmp_path / "out"
    code = main(["manifests", "--set", f"HOST_CNI_CONFDIR_PATH={path}", "--output", str(out)])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    [line] = captured.err.strip().splitlines()
    assert "HOST_CNI_CONFDIR_PATH" in line
    assert "overlaps /host/proc/sys/net" in line
    assert "such as /host/etc/cni/net.d" in line
    assert not out.exists()
