"""'vpccni manifests': options, validation with the daemon's parser, and clear one-line errors
that leave nothing printed or written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.conftest import by_kind, render
from vpccni.cli.main import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["manifests", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def env_of(objects: list[dict[str, Any]], container: str = "containers") -> dict[str, Any]:
    pod = by_kind(objects)["DaemonSet"]["spec"]["template"]["spec"]
    return {item["name"]: item.get("value") for item in pod[container][0]["env"]}


def test_bad_value_is_the_daemons_error_exit_2_nothing_printed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run(capsys, "--set", "WARM_IP_TARGET=abc")
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert "WARM_IP_TARGET='abc' is not an integer; accepted: 0 or more" in err


def test_unknown_variable_gets_a_did_you_mean(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "--set", "WARM_IP_TAGRET=5")
    assert (code, out) == (2, "")
    assert "unknown variable 'WARM_IP_TAGRET' (did you mean WARM_IP_TARGET" in err


@pytest.mark.parametrize(
    "arn",
    [
        "arn:aws:iam::1111222233:role/vpccni",  # 10 digits
        "arn:aws:iam::111122223333:user/vpccni",  # a user, not a role
        "arn:aws:sts::111122223333:role/vpccni",
        "arn:aws:iam::111122223333:role/",
        "111122223333:role/vpccni",
    ],
)
def test_bad_role_arn_is_refused(capsys: pytest.CaptureFixture[str], arn: str) -> None:
    code, out, err = run(capsys, "--role-arn", arn)
    assert (code, out) == (2, "")
    assert f"--role-arn {arn!r} is not an IAM role ARN" in err
    assert "arn:aws:iam::ACCOUNT:role/NAME" in err


def test_role_arn_with_a_path_and_partition(capsys: pytest.CaptureFixture[str]) -> None:
    arn = "arn:aws-cn:iam::123456789012:role/platform/cni/vpccni"
    account = by_kind(render(capsys, "--role-arn", arn))["ServiceAccount"]
    assert account["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": arn}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--image", "Bad Image"], "--image 'Bad Image' is not an image reference"),
        (["--namespace", "Kube_System"], "--namespace 'Kube_System' is not a namespace name"),
        (["--set", "WARM_IP_TARGET"], "'WARM_IP_TARGET' is not NAME=VALUE"),
        (["--set", "MY_NODE_NAME=x"], "MY_NODE_NAME cannot be set here"),
        (["--region", "EU-WEST-1"], "AWS_REGION='EU-WEST-1' is not a region name"),
        (["--cluster-name", "x" * 300], "CLUSTER_NAME="),
        (["--region", "eu-west-1", "--set", "AWS_REGION=eu-west-1"], "AWS_REGION is already set"),
    ],
)
def test_bad_options_are_refused(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = run(capsys, *argv)
    assert (code, out) == (2, "")
    assert message in err
    assert err.startswith("error: ")
    assert err.count("\n") == 1


def test_cluster_name_region_and_namespace(capsys: pytest.CaptureFixture[str]) -> None:
    objects = render(
        capsys, "--cluster-name", "prod", "--region", "eu-west-1", "--namespace", "cni"
    )
    for container in ("containers", "initContainers"):
        env = env_of(objects, container)
        assert env["CLUSTER_NAME"] == "prod"
        assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "eu-west-1"
    kinds = by_kind(objects)
    assert kinds["ServiceAccount"]["metadata"]["namespace"] == "cni"
    assert kinds["DaemonSet"]["metadata"]["namespace"] == "cni"
    assert kinds["ClusterRoleBinding"]["subjects"][0]["namespace"] == "cni"
    assert "namespace" not in kinds["ClusterRole"]["metadata"]


def test_set_and_env_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    env_file = tmp_path / "vpccni.env"
    env_file.write_text(
        "# pool\n\nWARM_IP_TARGET=5\n  MINIMUM_IP_TARGET=10\nWARM_ENI_TARGET=0\n"
        'ADDITIONAL_ENI_TAGS={"team": "net"}\n',
        encoding="utf-8",
    )
    code, out, err = run(
        capsys, "--env-file", str(env_file), "--set", "WARM_IP_TARGET=7", "--set", "POD_MTU=1500"
    )
    assert code == 0, err
    assert err == ""  # every value is honoured: no warning
    env = env_of(list(yaml.safe_load_all(out)))
    assert env["WARM_IP_TARGET"] == "7"  # --set wins over the file
    assert env["MINIMUM_IP_TARGET"] == "10"
    assert env["WARM_ENI_TARGET"] == "0"
    assert env["POD_MTU"] == "1500"
    assert env["ADDITIONAL_ENI_TAGS"] == '{"team": "net"}'  # literal, quotes kept


def test_env_file_errors_name_the_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    env_file = tmp_path / "bad.env"
    env_file.write_text("WARM_IP_TARGET=5\nexport MAX_ENI=2\n", encoding="utf-8")
    code, _, err = run(capsys, "--env-file", str(env_file))
    assert code == 2
    assert f"{env_file} line 2: 'export MAX_ENI=2' is not NAME=VALUE" in err
    env_file.write_text("MAX_ENI=2\nMAX_ENI=3\n", encoding="utf-8")
    code, _, err = run(capsys, "--env-file", str(env_file))
    assert code == 2
    assert f"{env_file} line 2: MAX_ENI is already set by {env_file} line 1" in err
    code, _, err = run(capsys, "--env-file", str(tmp_path / "missing.env"))
    assert code == 2
    assert "cannot read --env-file" in err


def test_output_writes_one_file_per_object(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    target = tmp_path / "out" / "vpccni"
    code, out, _ = run(capsys, "--output", str(target), "--set", "WARM_IP_TARGET=3")
    assert code == 0
    names = sorted(path.name for path in target.iterdir())
    assert names == [
        "clusterrole.yaml",
        "clusterrolebinding.yaml",
        "daemonset.yaml",
        "eniconfig-crd.yaml",
        "kustomization.yaml",
        "serviceaccount.yaml",
    ]
    assert all(str(target / name) in out for name in names)
    assert "name: WARM_IP_TARGET\n          value: '3'" in (target / "daemonset.yaml").read_text()


def test_output_with_a_bad_value_writes_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    target = tmp_path / "never"
    code, out, err = run(capsys, "--output", str(target), "--set", "MAX_ENI=0")
    assert (code, out) == (2, "")
    assert "MAX_ENI='0'" in err
    assert not target.exists()


def test_output_into_a_file_is_refused(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x", encoding="utf-8")
    code, _, err = run(capsys, "--output", str(target))
    assert code == 2
    assert "cannot create --output directory" in err
    assert target.read_text() == "x"


def test_help_explains_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["manifests", "--help"])
    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for needle in (
        "--image",
        "--cluster-name",
        "--region",
        "--role-arn",
        "IRSA",
        "--namespace",
        "--set NAME=VALUE",
        "--env-file",
        "--output",
        "daemon's own parser",
    ):
        assert needle in text, needle
