"""'vpccni config check': upstream's own manifest passes; each kind of problem is reported with
what upstream would do, and the exit status follows the worst finding."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.configcheck.conftest import (
    UPSTREAM_MANIFEST,
    main_container,
    run,
    set_env,
    upstream_daemon_set,
)
from vpccni.adapters.instance_data import load_instance_table
from vpccni.configcheck.check import CheckOptions, check
from vpccni.configcheck.findings import Finding, Severity
from vpccni.configcheck.source import load
from vpccni.deploy.variables import READ_BY_VPCCNI, UPSTREAM_VARIABLES


def findings_of(path: Path, instance_type: str | None = None) -> list[Finding]:
    options = CheckOptions(load_instance_table().get(instance_type) if instance_type else None)
    return check(load(path), options)


def only(findings: list[Finding], kind: str, subject: str) -> Finding:
    matching = [f for f in findings if f.kind == kind and f.subject == subject]
    assert len(matching) == 1, (kind, subject, findings)
    return matching[0]


def test_upstreams_own_shipped_manifest_passes_with_no_warning(
    capsys: pytest.CaptureFixture[str],
) -> None:
    findings = findings_of(UPSTREAM_MANIFEST)
    assert findings == []  # every variable is honoured with upstream's shipped value
    code, out, err = run(capsys, "config", "check", str(UPSTREAM_MANIFEST))
    assert (code, err) == (0, "")
    assert "DaemonSet kube-system/aws-node (upstream's aws-node" in out
    assert "result: passes (no findings); exit status 0" in out


def test_the_issues_four_problems_are_each_reported(
    write: Callable[[Any], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    document = upstream_daemon_set()
    set_env(document, "WARM_IP_TARGET", "abc")
    set_env(document, "WARM_PREFIX_TARGET", "4")  # prefix delegation stays false
    set_env(document, "WARM_IP_TARGT", "5")
    main_container(document)["readinessProbe"]["timeoutSeconds"] = 1
    path = write(document)
    findings = findings_of(path)

    refused = only(findings, "refused", "WARM_IP_TARGET")
    assert refused.severity == Severity.ERROR
    assert "WARM_IP_TARGET='abc' is not an integer; accepted: 0 or more" in refused.message
    assert refused.upstream == "treats it as unset (0), logging that it is not an integer"
    assert refused.fix.startswith("remove WARM_IP_TARGET (that is what upstream runs with)")

    inert = only(findings, "inert", "WARM_PREFIX_TARGET")
    assert inert.severity == Severity.WARN
    assert "has no effect: prefix delegation is off" in inert.message

    unknown = only(findings, "unknown", "WARM_IP_TARGT")
    assert "did you mean WARM_IP_TARGET" in unknown.message

    managed = only(findings, "managed-field", "container aws-node readinessProbe.timeoutSeconds")
    assert managed.severity == Severity.WARN
    assert "is 1, shipped 10" in managed.message
    assert "re-applies this field every 15 minutes" in managed.message

    code, out, err = run(capsys, "config", "check", str(path))
    assert code == 2
    assert out.index("ERROR  WARM_IP_TARGET") < out.index("WARN ")  # worst first
    assert "result: fails (1 error, 3 warnings, 1 note); exit status 2" in out
    assert err == "error: config check: 1 error, 3 warnings, 1 note; exit status 2\n"


def test_json_report_carries_every_finding(
    write: Callable[[Any], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    document = upstream_daemon_set()
    set_env(document, "AWS_VPC_K8S_CNI_RANDOMIZESNAT", "random")
    code, out, _ = run(capsys, "config", "check", str(write(document)), "--format", "json")
    report = json.loads(out)
    assert (code, report["exit_status"], report["worst"]) == (2, 2, "error")
    (refused,) = [f for f in report["findings"] if f["kind"] == "refused"]
    assert refused["subject"] == "AWS_VPC_K8S_CNI_RANDOMIZESNAT"
    assert refused["upstream"] == "uses prng (--random-fully), its default"


def test_warnings_alone_exit_1(
    write: Callable[[Any], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    document = upstream_daemon_set()
    set_env(document, "WARM_PREFIX_TARGET", "4")  # prefix delegation stays false: no effect
    code, out, _ = run(capsys, "config", "check", str(write(document)))
    assert code == 1
    assert "has no effect: prefix delegation is off" in out


def test_an_upstream_variable_vpccni_cannot_honour_is_an_error_and_deprecated_ones_a_note(
    write: Callable[[Any], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    document = upstream_daemon_set()
    set_env(document, "ANNOTATE_POD_IP", "true")
    set_env(document, "ENABLE_NFTABLES", "true")
    findings = findings_of(write(document))
    refused = only(findings, "refused", "ANNOTATE_POD_IP")
    assert refused.severity == Severity.ERROR
    assert "ANNOTATE_POD_IP='true' cannot be honoured: vpccni does not write" in refused.message
    noted = only(findings, "noted", "ENABLE_NFTABLES")
    assert noted.severity == Severity.INFO
    assert "deprecated and upstream no longer reads it either" in noted.message


def test_changes_from_the_shipped_defaults_are_listed_once_parsed(
    write: Callable[[Any], Path],
) -> None:
    document = upstream_daemon_set()
    set_env(document, "WARM_ENI_TARGET", "+1")  # the same number as shipped: not a change
    set_env(document, "MINIMUM_IP_TARGET", "10")
    set_env(document, "AWS_VPC_K8S_CNI_EXTERNALSNAT", "False")  # another spelling of the same
    findings = findings_of(write(document))
    changed = {f.subject: f.message for f in findings if f.kind == "changed"}
    assert changed == {"MINIMUM_IP_TARGET": "set to '10' (unset by default)"}


def test_unset_variables_whose_upstream_default_differs_are_noted(
    write: Callable[[Any], Path],
) -> None:
    document = upstream_daemon_set()
    env = main_container(document)["env"]
    main_container(document)["env"] = [
        e for e in env if e["name"] not in ("ENABLE_IPv4", "WARM_PREFIX_TARGET")
    ]
    findings = findings_of(write(document))
    ipv4 = only(findings, "changed", "ENABLE_IPv4")
    assert "upstream then runs with false (its code default), vpccni with 'true'" in ipv4.message
    assert "refuses to start" in ipv4.message
    assert "only with prefix delegation" in only(findings, "changed", "WARM_PREFIX_TARGET").message


@pytest.mark.parametrize(
    ("name", "value", "upstream"),
    [
        ("WARM_ENI_TARGET", "-1", "uses its default, 1, logging that it is negative"),
        ("MAX_ENI", "0", "ignores it and uses the instance type's ENI limit"),
        ("ENABLE_PREFIX_DELEGATION", "yes", "uses its default, false, logging that it is not a"),
        ("AWS_VPC_K8S_CNI_CONNMARK", "0", "uses its default mark, 0x80"),
        ("AWS_VPC_ENI_MTU", "9002", "its entry point refuses to start"),
        ("IP_COOLDOWN_PERIOD", "30s", "its entry point refuses to start"),
        ("AWS_VPC_K8S_CNI_VETHPREFIX", "vlan", "its entry point refuses to start"),
        ("AWS_EXTERNAL_SERVICE_CIDRS", "10.1.0.0/16, fd00::/8", "drops 'fd00::/8'"),
    ],
)
def test_what_upstream_does_instead_is_named(
    write: Callable[[Any], Path], name: str, value: str, upstream: str
) -> None:
    document = upstream_daemon_set()
    set_env(document, name, value)
    finding = only(findings_of(write(document)), "refused", name)
    assert upstream in finding.upstream


def test_a_value_vpccni_refuses_but_upstream_takes_names_no_upstream_behaviour(
    write: Callable[[Any], Path],
) -> None:
    document = upstream_daemon_set()
    set_env(document, "IP_COOLDOWN_PERIOD", "7200")
    finding = only(findings_of(write(document)), "refused", "IP_COOLDOWN_PERIOD")
    assert "IP_COOLDOWN_PERIOD='7200' is too large; accepted: 0 to 3600" in finding.message
    assert (finding.upstream, finding.fix) == ("", "give IP_COOLDOWN_PERIOD a valid value")


def test_prefix_delegation_on_a_non_nitro_type_cannot_work(write: Callable[[Any], Path]) -> None:
    document = upstream_daemon_set()
    set_env(document, "ENABLE_PREFIX_DELEGATION", "true")
    path = write(document)
    xen = only(findings_of(path, "m4.large"), "instance-type", "ENABLE_PREFIX_DELEGATION")
    assert xen.severity == Severity.ERROR
    assert "cannot work on m4.large (hypervisor xen)" in xen.message
    assert xen.upstream == "silently falls back to secondary IPs (a warning in its log)"
    assert not [f for f in findings_of(path, "m5.large") if f.kind == "instance-type"]


def test_targets_beyond_the_instance_and_max_eni_above_its_limit(
    write: Callable[[Any], Path],
) -> None:
    document = upstream_daemon_set()
    set_env(document, "MINIMUM_IP_TARGET", "500")
    set_env(document, "MAX_ENI", "8")
    findings = findings_of(write(document), "c5.large")
    capacity = only(findings, "instance-type", "MINIMUM_IP_TARGET")
    assert "x 9 addresses = 27; the pool stops at 27" in capacity.message
    assert "above c5.large's limit of 3 ENIs" in only(findings, "instance-type", "MAX_ENI").message


def test_unknown_instance_type_is_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(
        capsys, "config", "check", str(UPSTREAM_MANIFEST), "--instance-type", "m5.larg"
    )
    assert (code, out) == (2, "")
    assert "unknown instance type 'm5.larg'" in err
    assert err.count("\n") == 1


def test_inert_combinations(write: Callable[[Any], Path]) -> None:
    document = upstream_daemon_set()
    set_env(document, "WARM_ENI_TARGET", "2")
    set_env(document, "WARM_IP_TARGET", "5")
    set_env(document, "AWS_VPC_K8S_CNI_EXTERNALSNAT", "true")
    set_env(document, "AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS", "10.10.0.0/16")
    findings = findings_of(write(document))
    assert "while WARM_IP_TARGET" in only(findings, "inert", "WARM_ENI_TARGET").message
    assert only(findings, "inert", "AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS").severity == Severity.WARN


def test_values_from_references_and_init_main_disagreement(write: Callable[[Any], Path]) -> None:
    document = upstream_daemon_set()
    main_container(document)["env"].append(
        {"name": "WARM_IP_TARGET", "valueFrom": {"configMapKeyRef": {"name": "cni", "key": "w"}}}
    )
    main_container(document)["envFrom"] = [{"configMapRef": {"name": "extra"}}]
    set_env(document, "DISABLE_TCP_EARLY_DEMUX", "true")  # the init container keeps "false"
    findings = findings_of(write(document))
    unresolved = only(findings, "unresolved", "WARM_IP_TARGET (container aws-node)")
    assert "configMapKeyRef cni/w" in unresolved.message
    assert (
        "configMapRef extra" in only(findings, "unresolved", "envFrom (container aws-node)").message
    )
    mismatch = only(findings, "containers", "DISABLE_TCP_EARLY_DEMUX")
    assert "'false' in aws-vpc-cni-init but 'true' in aws-node" in mismatch.message


def test_managed_fields_images_volumes_and_the_addon_itself(write: Callable[[Any], Path]) -> None:
    document = upstream_daemon_set()
    main_container(document)["image"] = "registry.example.com/cni:1"
    spec = document["spec"]["template"]["spec"]
    spec["volumes"].append({"name": "extra", "hostPath": {"path": "/srv"}})
    spec["serviceAccountName"] = "cni"
    document["metadata"]["managedFields"] = [{"manager": "eks", "operation": "Apply"}]
    findings = [f for f in findings_of(write(document)) if f.kind == "managed-field"]
    subjects = {f.subject for f in findings}
    assert subjects == {
        "container aws-node image",
        "volume extra",
        "spec.template.spec.serviceAccountName",
    }
    assert all("is the EKS managed add-on (its managedFields" in f.message for f in findings)


def test_vpccnis_own_daemonset_passes_and_is_not_held_to_the_addons_fields(
    capsys: pytest.CaptureFixture[str],
) -> None:
    base = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes" / "base"
    code, out, _ = run(capsys, "config", "check", str(base / "daemonset.yaml"))
    assert code == 0
    assert "(vpccni's DaemonSet; CNI containers vpccni-init, vpccni-node)" in out
    assert "nothing to report" in out


def test_vpccni_reads_every_upstream_variable() -> None:
    assert sorted(UPSTREAM_VARIABLES - READ_BY_VPCCNI) == []
