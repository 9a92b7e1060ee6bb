"""Shared helpers: upstream's shipped manifest (tests/data, byte-identical) and edited copies."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from vpccni.cli.main import main

UPSTREAM_MANIFEST = Path(__file__).resolve().parents[1] / "data" / "aws-k8s-cni.yaml"


def upstream_daemon_set() -> dict[str, Any]:
    """A fresh copy of the aws-node DaemonSet of upstream's shipped manifest."""
    documents = [d for d in yaml.safe_load_all(UPSTREAM_MANIFEST.read_text()) if d]
    return copy.deepcopy(next(d for d in documents if d["kind"] == "DaemonSet"))


def main_container(document: dict[str, Any]) -> dict[str, Any]:
    containers = document["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if c["name"] == "aws-node")


def set_env(document: dict[str, Any], name: str, value: str) -> None:
    """Set (or add) one literal variable of the aws-node container."""
    env = main_container(document)["env"]
    for entry in env:
        if entry["name"] == name:
            entry.clear()
            entry.update({"name": name, "value": value})
            return
    env.append({"name": name, "value": value})


@pytest.fixture
def write(tmp_path: Path) -> Callable[[Any], Path]:
    """Write a document (or a list of documents) as YAML; returns its path."""
    counter = iter(range(1000))

    def make(content: Any) -> Path:
        path = tmp_path / f"daemonset-{next(counter)}.yaml"
        documents = content if isinstance(content, list) else [content]
        path.write_text(yaml.safe_dump_all(documents, sort_keys=False))
        return path

    return make


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err
