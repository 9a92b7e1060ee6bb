"""'vpccni config convert': upstream's settings into 'vpccni manifests', round-tripped, with
what cannot be carried said and the exit status by what was lost."""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.configcheck.conftest import (
    UPSTREAM_MANIFEST,
    main_container,
    run,
    set_env,
    upstream_daemon_set,
)
from vpccni.configcheck.convert import convert
from vpccni.configcheck.source import load
from vpccni.deploy.variables import READ_BY_VPCCNI


def rendered_env(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    """The vpccni-node container's environment as 'vpccni manifests ARGV' renders it."""
    code, out, err = run(capsys, "manifests", *argv)
    assert code == 0, err
    daemon_set = next(d for d in yaml.safe_load_all(out) if d and d["kind"] == "DaemonSet")
    container = daemon_set["spec"]["template"]["spec"]["containers"][0]
    return {item["name"]: item.get("value") for item in container["env"]}


def upstream_env() -> dict[str, str]:
    """Every literal variable of upstream's CNI containers (init first, main wins)."""
    document = upstream_daemon_set()
    pod = document["spec"]["template"]["spec"]
    found: dict[str, str] = {}
    for container in [*pod["initContainers"], main_container(document)]:
        found.update({e["name"]: e["value"] for e in container["env"] if "value" in e})
    return found


def test_upstreams_manifest_round_trips_through_an_env_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    env_file = tmp_path / "aws-node.env"
    code, out, err = run(
        capsys,
        "config",
        "convert",
        str(UPSTREAM_MANIFEST),
        "--format",
        "env-file",
        "--output",
        str(env_file),
    )
    assert code == 0, err
    assert out == f"wrote 21 variables to {env_file}\n"
    assert "ADDITIONAL_ENI_TAGS" not in err
    assert "note (info): container aws-eks-nodeagent: not carried: the network-policy agent" in err
    ours = rendered_env(capsys, "--env-file", str(env_file))
    theirs = upstream_env()
    honoured = sorted(set(theirs) & READ_BY_VPCCNI)
    assert len(honoured) == 21
    assert {name: ours.get(name) for name in honoured} == {name: theirs[name] for name in honoured}


def test_set_lines_round_trip_through_the_command_line(
    write: Callable[[Any], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    document = upstream_daemon_set()
    set_env(document, "WARM_IP_TARGET", "5")
    set_env(document, "AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS", "10.9.0.0/16,192.168.0.0/24")
    set_env(document, "CLUSTER_NAME", "prod east")
    code, out, _ = run(capsys, "config", "convert", str(write(document)))
    assert code == 0
    assert "--set 'CLUSTER_NAME=prod east'" in out.splitlines()
    argv = shlex.split(out)
    ours = rendered_env(capsys, *argv)
    assert ours["WARM_IP_TARGET"] == "5"
    assert ours["CLUSTER_NAME"] == "prod east"
    assert ours["AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS"] == "10.9.0.0/16,192.168.0.0/24"


def test_invalid_values_are_carried_as_upstream_ran_them(write: Callable[[Any], Path]) -> None:
    document = upstream_daemon_set()
    set_env(document, "WARM_IP_TARGET", "abc")
    set_env(document, "AWS_EXTERNAL_SERVICE_CIDRS", "10.1.0.0/16,nonsense")
    set_env(document, "AWS_VPC_K8S_CNI_CONNMARK", "-5")
    result = convert(load(write(document)))
    carried = {a.name: a.value for a in result.assignments}
    assert "WARM_IP_TARGET" not in carried  # upstream treated it as unset
    assert carried["AWS_EXTERNAL_SERVICE_CIDRS"] == "10.1.0.0/16"
    assert "AWS_VPC_K8S_CNI_CONNMARK" not in carried
    notes = {n.subject: n for n in result.notes}
    assert notes["WARM_IP_TARGET"].message.startswith("left out: upstream treats it as unset (0)")
    assert "carried as '10.1.0.0/16'" in notes["AWS_EXTERNAL_SERVICE_CIDRS"].message
    assert result.worst.label == "info"  # nothing upstream actually used was lost


def test_what_is_lost_is_said_and_exits_1(
    write: Callable[[Any], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    document = upstream_daemon_set()
    set_env(document, "IP_COOLDOWN_PERIOD", "7200")  # upstream takes it, vpccni refuses
    set_env(document, "ANNOTATE_POD_IP", "true")
    set_env(document, "WARM_IP_TARGT", "5")
    document["spec"]["template"]["spec"]["volumes"].append(
        {"name": "extra", "hostPath": {"path": "/srv"}}
    )
    code, out, err = run(capsys, "config", "convert", str(write(document)), "--format", "json")
    assert code == 1
    report = json.loads(out)
    assert report["exit_status"] == 1
    assert "IP_COOLDOWN_PERIOD" not in report["variables"]
    notes = {n["subject"]: n for n in report["notes"]}
    assert notes["IP_COOLDOWN_PERIOD"]["severity"] == "warn"
    assert notes["IP_COOLDOWN_PERIOD"]["message"] == (
        "not carried: vpccni refuses it: IP_COOLDOWN_PERIOD='7200' is too large; accepted: 0 to "
        "3600; choose a valid value and --set it"
    )
    assert notes["ANNOTATE_POD_IP"]["message"].startswith(
        "not carried: vpccni refuses it: ANNOTATE_POD_IP='true' cannot be honoured"
    )
    assert notes["WARM_IP_TARGT"]["severity"] == "info"  # it did nothing upstream either
    assert notes["volume extra"]["severity"] == "warn"
    assert err == "error: config convert: 3 setting(s) not carried (see the notes); exit status 1\n"


def test_network_policies_enforced_by_the_agent_are_a_loss(write: Callable[[Any], Path]) -> None:
    document = upstream_daemon_set()
    agent = document["spec"]["template"]["spec"]["containers"][1]
    agent["args"] = ["--enable-network-policy=true"]
    notes = {n.subject: n for n in convert(load(write(document))).notes}
    note = notes["container aws-eks-nodeagent"]
    assert (note.severity.label, "network policies are not enforced" in note.message) == (
        "warn",
        True,
    )


def test_a_combination_vpccni_refuses_is_an_error(
    write: Callable[[Any], Path], capsys: pytest.CaptureFixture[str]
) -> None:
    document = upstream_daemon_set()
    set_env(document, "ENABLE_PREFIX_DELEGATION", "true")
    set_env(document, "WARM_PREFIX_TARGET", "0")
    code, _, err = run(capsys, "config", "convert", str(write(document)))
    assert code == 2
    assert "vpccni manifests would refuse: prefix delegation with WARM_IP_TARGET" in err
