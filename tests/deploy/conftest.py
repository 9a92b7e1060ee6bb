"""Shared helpers for the manifest tests: rendering, kubectl kustomize, offline validation."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import latest_version

from vpccni.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = ROOT / "deploy" / "kubernetes"
PLACEHOLDER_ARN = "arn:aws:iam::111122223333:role/vpccni"
SCHEMA_VERSION = latest_version()


def _require(condition: bool, reason: str) -> None:
    if condition:
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the manifest tests, but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def kubectl() -> str:
    """kubectl's path (preinstalled on CI; 'kubectl kustomize' renders the overlays offline)."""
    found = shutil.which("kubectl")
    _require(
        found is not None,
        "kubectl is not on PATH (install kubectl 1.32 or newer: its 'kustomize' renders the "
        "overlays under deploy/kubernetes)",
    )
    assert found is not None
    return found


def kustomize(kubectl: str, directory: Path) -> list[dict[str, Any]]:
    """The objects 'kubectl kustomize DIRECTORY' renders."""
    done = subprocess.run(
        [kubectl, "kustomize", str(directory)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, f"kubectl kustomize {directory} failed: {done.stderr.strip()}"
    return [item for item in yaml.safe_load_all(done.stdout) if item is not None]


def render(capsys: pytest.CaptureFixture[str], *argv: str) -> list[dict[str, Any]]:
    """The objects 'vpccni manifests ARGV' prints (it must succeed)."""
    code = main(["manifests", *argv])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return [item for item in yaml.safe_load_all(captured.out) if item is not None]


def by_kind(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """One object per kind (each kind appears once)."""
    found = {item["kind"]: item for item in objects}
    assert len(found) == len(objects), [item["kind"] for item in objects]
    return found


def validate(item: dict[str, Any]) -> None:
    """Strict offline validation against the newest Kubernetes schema kubernetes-validate has."""
    try:
        kubernetes_validate.validate(item, SCHEMA_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        where = "/".join(str(part) for part in error.path)
        raise AssertionError(
            f"{item['kind']} {item['metadata']['name']}: {error.message} at {where or '/'}"
        ) from None
