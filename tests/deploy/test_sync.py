"""The checked-in kustomize tree never drifts from the Python source that renders it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tools import render_manifests

from tests.deploy.conftest import KUBERNETES, PLACEHOLDER_ARN, kustomize, render
from vpccni.cli.main import main


def _key(item: dict[str, Any]) -> tuple[str, str]:
    return item["kind"], item["metadata"]["name"]


def test_checked_in_base_is_what_the_renderer_writes() -> None:
    assert render_manifests.BASE == KUBERNETES / "base"
    drift = render_manifests.differences()
    assert drift == [], (
        f"deploy/kubernetes/base differs from src/vpccni/deploy in {drift}: run "
        "'python tools/render_manifests.py' and commit the result"
    )


def test_drift_is_detected(tmp_path: Path) -> None:
    directory = tmp_path
    for name, text in render_manifests.rendered().items():
        (directory / name).write_text(text, encoding="utf-8")
    assert render_manifests.differences(directory) == []
    daemon_set = directory / "daemonset.yaml"
    daemon_set.write_text(daemon_set.read_text().replace("25m", "50m"), encoding="utf-8")
    (directory / "old.yaml").write_text("{}\n", encoding="utf-8")
    assert render_manifests.differences(directory) == [
        "daemonset.yaml",
        "old.yaml (not rendered any more)",
    ]


def test_output_directory_matches_the_checked_in_base(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    directory = tmp_path / "base"
    assert main(["manifests", "--output", str(directory)]) == 0
    assert "kustomization.yaml" in capsys.readouterr().out
    base = KUBERNETES / "base"
    assert sorted(p.name for p in directory.iterdir()) == sorted(p.name for p in base.iterdir())
    for path in directory.iterdir():
        assert path.read_text() == (base / path.name).read_text(), path.name


def test_plain_overlay_equals_the_default_rendering(
    capsys: pytest.CaptureFixture[str], kubectl: str
) -> None:
    overlay = sorted(kustomize(kubectl, KUBERNETES / "overlays" / "plain"), key=_key)
    assert overlay == sorted(render(capsys), key=_key)


def test_irsa_overlay_equals_rendering_with_the_role_arn(
    capsys: pytest.CaptureFixture[str], kubectl: str
) -> None:
    overlay = sorted(kustomize(kubectl, KUBERNETES / "overlays" / "irsa"), key=_key)
    assert overlay == sorted(render(capsys, "--role-arn", PLACEHOLDER_ARN), key=_key)
    assert overlay != sorted(render(capsys), key=_key)
