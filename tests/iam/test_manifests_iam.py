"""``vpccni manifests --iam-policy`` / ``--irsa-trust``: the shipped documents with the user's
values, checked first; deploy/iam never drifts from the source; every policy loads in the
emulator's evaluator (no grammar it would have to ignore)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from tools import render_iam_policies

from vpccni.cli.main import main
from vpccni.deploy import iam
from vpccni.emulator.iam import PolicyError, load_policy

ROOT = Path(__file__).resolve().parents[2]
IAM = ROOT / "deploy" / "iam"
PROVIDER = "oidc.eks.eu-west-1.amazonaws.com/id/0123456789ABCDEF0123456789ABCDEF"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["manifests", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def shipped(name: str) -> str:
    return (IAM / name).read_text(encoding="utf-8")


def test_deploy_iam_is_what_the_source_renders() -> None:
    assert render_iam_policies.DIRECTORY == IAM
    drift = render_iam_policies.differences()
    assert drift == [], (
        f"deploy/iam differs from src/vpccni/deploy/iam.py in {drift}: run "
        "'python tools/render_iam_policies.py' and commit the result"
    )
    assert sorted(p.name for p in IAM.glob("*.json")) == sorted(iam.templates())
    assert (IAM / "README.md").is_file()


def test_drift_is_detected(tmp_path: Path) -> None:
    for name, text in iam.templates().items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    assert render_iam_policies.differences(tmp_path) == []
    (tmp_path / iam.TRUST_FILE).write_text("{}\n", encoding="utf-8")
    assert render_iam_policies.differences(tmp_path) == [iam.TRUST_FILE]


def test_default_policy_is_printed_as_shipped(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "--iam-policy", "default")
    assert (code, err) == (0, "")
    assert out == shipped("vpccni-ipv4-policy.json")
    assert "${" not in out
    load_policy(json.loads(out))


def test_tag_scoped_policy_has_the_cluster_filled_in(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "--iam-policy", "tag-scoped", "--cluster-name", "prod-1")
    assert code == 0
    assert out == shipped("vpccni-ipv4-tag-scoped-policy.json").replace("${CLUSTER_NAME}", "prod-1")
    assert "${" not in out
    document = json.loads(out)
    load_policy(document)
    text = json.dumps(document)
    assert '"aws:ResourceTag/cluster.k8s.amazonaws.com/name": "prod-1"' in text
    assert '"aws:ResourceTag/kubernetes.io/cluster/prod-1": "owned"' in text
    assert err.count("\n") == 1
    assert err.startswith("note: run the daemon with CLUSTER_NAME=prod-1")


def test_the_raw_template_is_refused_by_the_evaluator() -> None:
    """A placeholder left in would be a policy variable IAM does not know."""
    with pytest.raises(PolicyError):
        load_policy(json.loads(shipped("vpccni-ipv4-tag-scoped-policy.json")))


@pytest.mark.parametrize("given", [f"https://{PROVIDER}", PROVIDER, f"https://{PROVIDER}/"])
def test_trust_policy_has_account_provider_and_namespace(
    capsys: pytest.CaptureFixture[str], given: str
) -> None:
    code, out, err = run(
        capsys,
        "--irsa-trust",
        "--account-id",
        "111122223333",
        "--oidc-provider",
        given,
        "--namespace",
        "cni",
    )
    assert (code, err) == (0, "")
    expected = (
        shipped("irsa-trust-policy.json")
        .replace("${ACCOUNT_ID}", "111122223333")
        .replace("${OIDC_PROVIDER}", PROVIDER)
        .replace("${NAMESPACE}", "cni")
    )
    assert out == expected
    statement = json.loads(out)["Statement"][0]
    assert statement["Principal"]["Federated"] == (
        f"arn:aws:iam::111122223333:oidc-provider/{PROVIDER}"
    )
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Condition"]["StringEquals"] == {
        f"{PROVIDER}:sub": "system:serviceaccount:cni:vpccni",
        f"{PROVIDER}:aud": "sts.amazonaws.com",
    }


def test_trust_policy_defaults_to_kube_system(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys, "--irsa-trust", "--account-id", "111122223333", "--oidc-provider", PROVIDER
    )
    assert code == 0
    assert "system:serviceaccount:kube-system:vpccni" in out


REFUSALS: list[Any] = [
    (["--iam-policy", "tag-scoped"], "--iam-policy tag-scoped needs --cluster-name NAME"),
    (
        ["--iam-policy", "tag-scoped", "--cluster-name=-prod"],
        "--cluster-name '-prod' is not an EKS cluster name",
    ),
    (
        ["--iam-policy", "tag-scoped", "--cluster-name", 'a"b'],
        "--cluster-name 'a\"b' is not an EKS cluster name",
    ),
    (
        ["--iam-policy", "tag-scoped", "--cluster-name", "x" * 101],
        "is not an EKS cluster name",
    ),
    (
        ["--iam-policy", "default", "--cluster-name", "prod"],
        "--cluster-name scopes --iam-policy tag-scoped only",
    ),
    (["--irsa-trust"], "--irsa-trust needs --account-id and --oidc-provider"),
    (["--irsa-trust", "--account-id", "111122223333"], "--irsa-trust needs --oidc-provider:"),
    (
        ["--irsa-trust", "--account-id", "1111-2222-3333", "--oidc-provider", PROVIDER],
        "--account-id '1111-2222-3333' is not an AWS account id; give its 12 digits",
    ),
    (
        ["--irsa-trust", "--account-id", "11112222333", "--oidc-provider", PROVIDER],
        "is not an AWS account id",
    ),
    (
        ["--irsa-trust", "--account-id", "111122223333", "--oidc-provider", f"http://{PROVIDER}"],
        "is not an OIDC issuer URL; give the cluster's issuer",
    ),
    (
        ["--irsa-trust", "--account-id", "111122223333", "--oidc-provider", "oidc eks"],
        "is not an OIDC issuer URL",
    ),
    (
        ["--irsa-trust", "--account-id", "111122223333", "--oidc-provider", "https://x.y/a?b=c"],
        "is not an OIDC issuer URL",
    ),
    (
        [
            "--irsa-trust",
            "--account-id",
            "111122223333",
            "--oidc-provider",
            PROVIDER,
            "--namespace",
            "Kube_System",
        ],
        "--namespace 'Kube_System' is not a namespace name",
    ),
    (
        ["--irsa-trust", "--account-id", "1", "--oidc-provider", PROVIDER, "--cluster-name", "c"],
        "--cluster-name is not used by --irsa-trust",
    ),
    (
        ["--iam-policy", "default", "--irsa-trust"],
        "give --iam-policy or --irsa-trust, not both",
    ),
    (
        ["--iam-policy", "default", "--account-id", "111122223333"],
        "--account-id is used by --irsa-trust only",
    ),
    (["--account-id", "111122223333"], "--account-id is used by --irsa-trust only"),
    (["--oidc-provider", PROVIDER], "--oidc-provider is used by --irsa-trust only"),
    (
        ["--iam-policy", "default", "--set", "WARM_IP_TARGET=1"],
        "--set shapes the Kubernetes manifests, not --iam-policy default",
    ),
    (
        ["--iam-policy", "default", "--output", "/tmp/x"],
        "--output shapes the Kubernetes manifests",
    ),
    (
        [
            "--irsa-trust",
            "--account-id",
            "111122223333",
            "--oidc-provider",
            PROVIDER,
            "--region",
            "us-west-2",
        ],
        "--region shapes the Kubernetes manifests, not --irsa-trust",
    ),
]


@pytest.mark.parametrize(("argv", "message"), REFUSALS)
def test_bad_values_are_one_line_errors_and_print_nothing(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = run(capsys, *argv)
    assert (code, out) == (2, "")
    assert err.count("\n") == 1, err
    assert message in err


def test_no_file_is_written_when_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    target = tmp_path / "out"
    code, _, _ = run(capsys, "--iam-policy", "default", "--output", str(target))
    assert code == 2
    assert not target.exists()
