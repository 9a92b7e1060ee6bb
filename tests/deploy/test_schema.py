"""Every manifest vpccni ships or renders is valid Kubernetes, checked offline and strictly
(an unknown or misspelt field fails) against the newest schema kubernetes-validate knows."""

from __future__ import annotations

from typing import Any

import pytest

from tests.deploy.conftest import KUBERNETES, PLACEHOLDER_ARN, by_kind, kustomize, render, validate

OPTION_SETS = {
    "defaults": [],
    "irsa and cluster": [
        "--role-arn",
        "arn:aws-us-gov:iam::123456789012:role/cni/vpccni-node",
        "--cluster-name",
        "prod-eu",
        "--region",
        "eu-west-1",
        "--namespace",
        "networking",
    ],
    "tuned pool, no metrics, moved probes": [
        "--set",
        "ENABLE_PREFIX_DELEGATION=true",
        "--set",
        "WARM_PREFIX_TARGET=2",
        "--set",
        "DISABLE_METRICS=true",
        "--set",
        "INTROSPECTION_BIND_ADDRESS=127.0.0.1:61700",
        "--set",
        "AWS_VPC_K8S_CNI_LOG_FILE=stderr",
    ],
    "image by digest, other CNI paths": [
        "--image",
        "registry.example.com:5000/team/vpccni@sha256:" + "ab" * 32,
        "--set",
        "HOST_CNI_BIN_PATH=/host/usr/libexec/cni",
        "--set",
        "HOST_CNI_CONFDIR_PATH=/host/etc/cni/conf.d",
    ],
}


@pytest.mark.parametrize("name", sorted(OPTION_SETS))
def test_vpccni_manifests_output_validates(capsys: pytest.CaptureFixture[str], name: str) -> None:
    objects = render(capsys, *OPTION_SETS[name])
    assert [item["kind"] for item in objects] == [
        "CustomResourceDefinition",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "DaemonSet",
    ]
    for item in objects:
        validate(item)


@pytest.mark.parametrize("overlay", ["plain", "irsa"])
def test_overlays_validate(kubectl: str, overlay: str) -> None:
    objects = kustomize(kubectl, KUBERNETES / "overlays" / overlay)
    assert sorted(by_kind(objects)) == [
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "DaemonSet",
        "ServiceAccount",
    ]
    for item in objects:
        validate(item)


def test_strict_validation_catches_a_misspelt_field(capsys: pytest.CaptureFixture[str]) -> None:
    """The check is real: one wrong field name in the DaemonSet fails it."""
    daemon_set: dict[str, Any] = by_kind(render(capsys))["DaemonSet"]
    container = daemon_set["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    with pytest.raises(AssertionError, match="readinesProbe"):
        validate(daemon_set)


def test_irsa_overlay_carries_the_placeholder(kubectl: str) -> None:
    account = by_kind(kustomize(kubectl, KUBERNETES / "overlays" / "irsa"))["ServiceAccount"]
    assert account["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": PLACEHOLDER_ARN}
