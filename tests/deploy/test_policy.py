"""Policy for every pod vpccni ships: least privilege, probes that survive busy nodes, requests,
and the node-critical scheduling a CNI needs. Applied to the checked-in overlays and to
'vpccni manifests' with several option sets.

Where a rule has an exception it is named here: the init container is privileged (it writes
the host's network sysctls - rp_filter of the primary interface, ip_forward, tcp_early_demux -
which a container can only write through a writable /proc/sys) and, being an init container,
has no probes (Kubernetes runs them to completion instead). Every container, the init one
included, runs on a read-only root filesystem: both write only to host mounts and /tmp.
"""

from __future__ import annotations

import posixpath
from typing import Any

import pytest

from tests.deploy.conftest import KUBERNETES, by_kind, kustomize, render
from tests.deploy.test_schema import OPTION_SETS
from vpccni.deploy.rbac import KUBERNETES_API_CALLS
from vpccni.plugin.cni import DEFAULT_SOCKET, DEFAULT_SPOOL_DIR
from vpccni.settings import DaemonSettings

MAIN_CAPABILITIES = {"drop": ["ALL"], "add": ["NET_ADMIN", "NET_RAW"]}
MIN_PROBE_TIMEOUT = 10
MAX_UNAVAILABLE_PERCENT = 25


def check_pod_policy(daemon_set: dict[str, Any]) -> None:
    spec = daemon_set["spec"]
    pod = spec["template"]["spec"]
    assert pod["hostNetwork"] is True
    assert pod["priorityClassName"] == "system-node-critical"
    assert pod["tolerations"] == [{"operator": "Exists"}]
    assert pod["automountServiceAccountToken"] is bool(KUBERNETES_API_CALLS)
    assert 0 < pod["terminationGracePeriodSeconds"] <= 30
    assert spec["updateStrategy"]["type"] == "RollingUpdate"
    limit = spec["updateStrategy"]["rollingUpdate"]["maxUnavailable"]
    assert isinstance(limit, str), limit
    assert limit.endswith("%"), limit
    assert 0 < int(limit[:-1]) <= MAX_UNAVAILABLE_PERCENT
    init = pod["initContainers"]
    main = pod["containers"]
    assert [c["name"] for c in init] == ["vpccni-init"]
    assert [c["name"] for c in main] == ["vpccni-node"]
    volumes = {volume["name"] for volume in pod["volumes"]}
    for container in init + main:
        check_container(container, volumes, is_init=container in init)


def check_container(container: dict[str, Any], volumes: set[str], *, is_init: bool) -> None:
    name = container["name"]
    requests = container["resources"]["requests"]
    assert set(requests) == {"cpu", "memory"}, name
    assert "cpu" not in container["resources"].get("limits", {}), name
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True, name
    assert {mount["name"] for mount in container["volumeMounts"]} <= volumes, name
    assert "SYS_ADMIN" not in security.get("capabilities", {}).get("add", []), name
    if is_init:
        assert security["privileged"] is True, name
        assert "capabilities" not in security, f"{name}: privileged already has every one"
        assert not {"livenessProbe", "readinessProbe", "startupProbe"} & set(container), name
        return
    assert security["privileged"] is False, name
    assert security["allowPrivilegeEscalation"] is False, name
    assert security["capabilities"] == MAIN_CAPABILITIES, name
    assert security["runAsUser"] == 0, f"{name}: writes root-owned host directories"
    for key, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        probe = container[key]
        assert probe["timeoutSeconds"] >= MIN_PROBE_TIMEOUT, (name, key)
        assert probe["httpGet"]["host"] == "127.0.0.1", (name, key)
        assert probe["httpGet"]["path"] == path, (name, key)
    assert container["livenessProbe"]["initialDelaySeconds"] >= 60


def daemon_sets(capsys: pytest.CaptureFixture[str], kubectl: str) -> dict[str, dict[str, Any]]:
    found = {
        f"overlay {overlay}": by_kind(kustomize(kubectl, KUBERNETES / "overlays" / overlay))[
            "DaemonSet"
        ]
        for overlay in ("plain", "irsa")
    }
    for name, argv in OPTION_SETS.items():
        found[f"vpccni manifests ({name})"] = by_kind(render(capsys, *argv))["DaemonSet"]
    return found


def test_every_daemon_set_follows_the_policy(
    capsys: pytest.CaptureFixture[str], kubectl: str
) -> None:
    checked = daemon_sets(capsys, kubectl)
    assert len(checked) == 2 + len(OPTION_SETS)
    for name, daemon_set in checked.items():
        try:
            check_pod_policy(daemon_set)
        except AssertionError as error:
            raise AssertionError(f"{name}: {error}") from None


def test_the_policy_check_fails_a_privileged_main_container(
    capsys: pytest.CaptureFixture[str],
) -> None:
    daemon_set = by_kind(render(capsys))["DaemonSet"]
    check_pod_policy(daemon_set)
    security = daemon_set["spec"]["template"]["spec"]["containers"][0]["securityContext"]
    security["capabilities"]["add"].append("SYS_ADMIN")
    with pytest.raises(AssertionError):
        check_pod_policy(daemon_set)


def _mounts(daemon_set: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Volume name -> (host path, path in the main container) for the hostPath volumes."""
    pod = daemon_set["spec"]["template"]["spec"]
    hosts = {v["name"]: v["hostPath"]["path"] for v in pod["volumes"] if "hostPath" in v}
    inside = {m["name"]: m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    return {name: (hosts[name], inside[name]) for name in hosts}


def _holder(mounts: dict[str, tuple[str, str]], path: str, *, host: bool) -> tuple[str, str]:
    side = 0 if host else 1
    found = [pair for pair in mounts.values() if path.startswith(pair[side].rstrip("/") + "/")]
    assert len(found) == 1, f"{path} is under {len(found)} mounts"
    return found[0]


def test_paths_agree_with_the_daemon_and_the_plugin(capsys: pytest.CaptureFixture[str]) -> None:
    """What the plugin on the host opens is what the daemon in the pod opens: same paths."""
    daemon = DaemonSettings()
    assert str(daemon.socket_path) == DEFAULT_SOCKET
    assert str(daemon.spool_dir) == DEFAULT_SPOOL_DIR
    daemon_set = by_kind(render(capsys))["DaemonSet"]
    mounts = _mounts(daemon_set)
    for path in (DEFAULT_SOCKET, DEFAULT_SPOOL_DIR, str(daemon.checkpoint_dir)):
        host, inside = _holder(mounts, path, host=True)
        assert host == inside, f"{path}: host {host} is mounted at {inside}"
    assert posixpath.dirname(DEFAULT_SOCKET) in {host for host, _ in mounts.values()}
    env = {
        item["name"]: item.get("value")
        for item in daemon_set["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert mounts["cni-bin-dir"] == ("/opt/cni/bin", env["HOST_CNI_BIN_PATH"])
    assert mounts["cni-net-dir"] == ("/etc/cni/net.d", env["HOST_CNI_CONFDIR_PATH"])
    assert mounts["xtables-lock"] == ("/run/xtables.lock", "/run/xtables.lock")
    log_host, log_inside = _holder(mounts, env["AWS_VPC_K8S_CNI_LOG_FILE"], host=False)
    assert (log_host, log_inside) == mounts["log-dir"]
    assert _holder(mounts, env["AWS_VPC_K8S_PLUGIN_LOG_FILE"], host=True) == mounts["log-dir"]


def test_cni_mounts_follow_the_path_variables(capsys: pytest.CaptureFixture[str]) -> None:
    daemon_set = by_kind(render(capsys, *OPTION_SETS["image by digest, other CNI paths"]))[
        "DaemonSet"
    ]
    mounts = _mounts(daemon_set)
    assert mounts["cni-bin-dir"] == ("/opt/cni/bin", "/host/usr/libexec/cni")
    assert mounts["cni-net-dir"] == ("/etc/cni/net.d", "/host/etc/cni/conf.d")
    init = daemon_set["spec"]["template"]["spec"]["initContainers"][0]
    assert {"name": "cni-bin-dir", "mountPath": "/host/usr/libexec/cni"} in init["volumeMounts"]


def test_probes_and_metrics_port_follow_the_daemon_settings(
    capsys: pytest.CaptureFixture[str],
) -> None:
    moved = by_kind(render(capsys, *OPTION_SETS["tuned pool, no metrics, moved probes"]))
    container = moved["DaemonSet"]["spec"]["template"]["spec"]["containers"][0]
    assert container["livenessProbe"]["httpGet"]["port"] == 61700
    assert container["readinessProbe"]["httpGet"]["port"] == 61700
    assert "ports" not in container  # DISABLE_METRICS: no /metrics listener
    default = by_kind(render(capsys))["DaemonSet"]["spec"]["template"]["spec"]["containers"][0]
    assert default["ports"] == [{"name": "metrics", "containerPort": 61678, "protocol": "TCP"}]
    assert default["livenessProbe"]["httpGet"]["port"] == 61679
