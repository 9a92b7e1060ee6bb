"""Policy for every pod vpccni ships (the rules are ``vpccni.deploy.policy``, which
``vpccni doctor --manifest`` applies too): least privilege, probes that survive busy nodes,
requests, and the node-critical scheduling a CNI needs. Applied to the checked-in overlays and
to 'vpccni manifests' with several option sets.
"""

from __future__ import annotations

import posixpath
from typing import Any

import pytest

from tests.deploy.conftest import KUBERNETES, by_kind, kustomize, render
from tests.deploy.test_schema import OPTION_SETS
from vpccni.deploy.policy import daemon_set_problems
from vpccni.plugin.cni import DEFAULT_SOCKET, DEFAULT_SPOOL_DIR
from vpccni.settings import DaemonSettings


def check_pod_policy(daemon_set: dict[str, Any]) -> None:
    problems = daemon_set_problems(daemon_set)
    assert not problems, "; ".join(f"{p.problem} (fix: {p.fix})" for p in problems)


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
    problems = daemon_set_problems(daemon_set)
    assert {p.rule for p in problems} == {"capabilities"}
    assert any("SYS_ADMIN" in p.problem for p in problems), problems


@pytest.mark.parametrize(
    ("change", "rule", "named"),
    [
        (lambda c, p: c["livenessProbe"].update(timeoutSeconds=1), "probes", "timeoutSeconds"),
        (lambda c, p: c["readinessProbe"].pop("timeoutSeconds"), "probes", "timeoutSeconds"),
        (lambda c, p: c.pop("livenessProbe"), "probes", "has no livenessProbe"),
        (lambda c, p: c["securityContext"].update(privileged=True), "security", "privileged"),
        (lambda c, p: c["securityContext"].update(runAsUser=1000), "security", "runAsUser"),
        (lambda c, p: c["resources"].update(limits={"cpu": "1"}), "resources", "CPU limit"),
        (lambda c, p: p.update(priorityClassName="x"), "scheduling", "priorityClassName"),
        (lambda c, p: p.update(hostNetwork=False), "layout", "hostNetwork"),
        (lambda c, p: p.pop("tolerations"), "scheduling", "tolerations"),
    ],
)
def test_each_broken_rule_is_named_with_its_fix(
    capsys: pytest.CaptureFixture[str], change: Any, rule: str, named: str
) -> None:
    daemon_set = by_kind(render(capsys))["DaemonSet"]
    pod = daemon_set["spec"]["template"]["spec"]
    change(pod["containers"][0], pod)
    problems = daemon_set_problems(daemon_set)
    assert [p.rule for p in problems] == [rule], problems
    assert named in problems[0].problem
    assert problems[0].fix.startswith(("set ", "add ", "remove ")), problems[0].fix


def test_anything_but_a_daemon_set_is_one_problem() -> None:
    for document in (None, [], {"kind": "Deployment"}, "text"):
        assert [p.rule for p in daemon_set_problems(document)] == ["layout"]
    bare = daemon_set_problems({"kind": "DaemonSet"})
    assert {p.rule for p in bare} >= {"layout", "scheduling"}


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
