"""A lab node set up as a healthy node for the doctor: the daemon (``lab_node``), the plugin and
its conflist installed with portmap beside it, one pod wired in its own namespace, a rendered
DaemonSet and a kubelet config; :meth:`DoctorLab.doctor` runs ``vpccni doctor --format json``
against it and returns the checks by id.

Faults are injected by the tests, one at a time, inside the lab's own namespaces and
directories (never the root namespace's iptables or sysctls).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.daemon.conftest import Node, make_node  # noqa: F401  (shared fixture)
from tests.netns.conftest import (  # noqa: F401  (shared fixtures)
    _require,
    install_plugin,
    lab_node,
    lab_node_net_caps_only,
    netns_factory,
)
from tests.netns.test_datapath import add
from vpccni.cli.main import main
from vpccni.lab.topology import Lab

PORTMAP = Path("/usr/lib/cni/portmap")
SRC = Path(__file__).parents[2] / "src"


@dataclass
class DoctorLab:
    """The healthy node and where its pieces are."""

    node: Node
    lab: Lab
    bin_dir: Path
    conf_dir: Path
    pod_netns: str | None = None
    manifest: Path | None = None
    kubelet_config: Path | None = None

    def argv(self, *more: str) -> list[str]:
        optional = (
            ("--pod-netns", self.pod_netns),
            ("--manifest", self.manifest),
            ("--kubelet-config", self.kubelet_config),
        )
        return [
            "doctor",
            "--format",
            "json",
            "--netns",
            self.lab.node,
            "--socket",
            str(self.node.socket),
            "--checkpoint-dir",
            str(self.node.directory / "checkpoint"),
            "--conf-dir",
            str(self.conf_dir),
            "--bin-dir",
            str(self.bin_dir),
            *(word for flag, value in optional if value for word in (flag, str(value))),
            *more,
        ]

    def doctor(self, *more: str) -> tuple[int, dict[str, dict[str, Any]], dict[str, Any]]:
        """(exit status, checks by id, the whole report) of one doctor run, as a separate
        process (as an operator runs it)."""
        return self.run(self.argv(*more))

    def run(self, argv: list[str]) -> tuple[int, dict[str, dict[str, Any]], dict[str, Any]]:
        env = {**os.environ, **self.node.env, "PYTHONPATH": str(SRC)}
        done = subprocess.run(
            [sys.executable, "-m", "vpccni.cli.main", *argv],
            capture_output=True,
            text=True,
            env=env,
            check=False,
            timeout=180,
        )
        assert done.returncode in (0, 1, 2), done.stderr
        expected = "" if done.returncode == 0 else f"exit status {done.returncode}\n"
        assert done.stderr.startswith("error: doctor: ") or not expected, done.stderr
        assert done.stderr.endswith(expected), done.stderr
        report = json.loads(done.stdout)
        assert report["exit_status"] == done.returncode
        return done.returncode, {c["check"]: c for c in report["checks"]}, report


def rendered_daemon_set(capsys: pytest.CaptureFixture[str], path: Path) -> Path:
    """`vpccni manifests`' DaemonSet written to ``path``."""
    import yaml

    assert main(["manifests"]) == 0
    documents = [d for d in yaml.safe_load_all(capsys.readouterr().out) if d]
    daemon_set = next(d for d in documents if d["kind"] == "DaemonSet")
    path.write_text(yaml.safe_dump(daemon_set))
    return path


@pytest.fixture
def doctor_lab(
    lab_node: tuple[Node, Lab],  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[DoctorLab]:
    """A healthy lab node and one pod."""
    _require(PORTMAP.exists(), f"{PORTMAP} is missing (Debian's containernetworking-plugins)")
    node, lab = lab_node
    cni = tmp_path / "cni"
    cni.mkdir()
    bin_dir, conf_dir = install_plugin(node, cni)
    shutil.copy2(PORTMAP, bin_dir / "portmap")
    pod = f"{lab.prefix}-pod"
    subprocess.run(["ip", "netns", "add", pod], check=True)
    try:
        netns = f"/var/run/netns/{pod}"
        reply = node.wait_for_reply(lambda: add(node, "doctorpod", netns, pod="doctor-pod"))
        assert reply["ok"], reply
        kubelet = tmp_path / "kubelet-config.json"
        kubelet.write_text(json.dumps({"kind": "KubeletConfiguration", "maxPods": 29}))
        manifest = rendered_daemon_set(capsys, tmp_path / "daemonset.yaml")
        yield DoctorLab(node, lab, bin_dir, conf_dir, netns, manifest, kubelet)
    finally:
        subprocess.run(["ip", "netns", "del", pod], check=False, capture_output=True)


def statuses(checks: dict[str, dict[str, Any]]) -> dict[str, str]:
    return {name: check["status"] for name, check in checks.items()}
