"""`vpccni support-bundle` on a lab node with the daemon up and down: the tarball is unpacked and
every section, its size against its cap, the index, pod-name redaction and the absence of
secrets are checked. Root and real namespaces."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

from tests.doctor.conftest import SRC, DoctorLab
from vpccni.bundle.archive import CAPS, TOTAL_CAP

pytestmark = pytest.mark.netns

POD_NAME = "doctor-pod"
SECRET = "SUPERSECRETVALUE42"
DAEMON_SECTIONS = [
    *(
        f"introspection/{name}.json"
        for name in (
            "enis",
            "pods",
            "explain",
            "ipamd-env-settings",
            "networkutils-env-settings",
            "eni-configs",
            "healthz",
            "readyz",
        )
    ),
    "metrics/metrics.txt",
    "status/plugin-status.json",
    "status/status.txt",
    "daemon/process.json",
    "daemon/settings.json",
]
ALWAYS = [
    "checkpoint/state.json",
    "network/ip-addr.txt",
    "network/ip-link.txt",
    "network/ip-rule.txt",
    "network/ip-route.txt",
    "network/ip-neigh.txt",
    "network/iptables-save.txt",
    "network/sysctl.txt",
    "cni/conf/10-vpccni.conflist",
    "cni/plugin.json",
    "kubelet/max-pods.json",
    "index.json",
    "index.txt",
]


def bundle(lab: DoctorLab, tmp_path: Path, *more: str) -> tuple[str, dict[str, bytes]]:
    """Run the command; (its output, the unpacked files by path under the top directory)."""
    output = tmp_path / "bundle.tar.gz"
    argv = [
        "support-bundle",
        "--output",
        str(output),
        "--netns",
        lab.lab.node,
        "--socket",
        str(lab.node.socket),
        "--checkpoint-dir",
        str(lab.node.directory / "checkpoint"),
        "--conf-dir",
        str(lab.conf_dir),
        "--bin-dir",
        str(lab.bin_dir),
        "--kubelet-config",
        str(lab.kubelet_config),
        *more,
    ]
    done = subprocess.run(
        [sys.executable, "-m", "vpccni.cli.main", *argv],
        capture_output=True,
        text=True,
        env={**os.environ, **lab.node.env, "PYTHONPATH": str(SRC)},
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert done.stdout.startswith(f"wrote {output} (")
    assert oct(output.stat().st_mode & 0o777) == "0o600"
    with tarfile.open(output) as archive:
        members = archive.getmembers()
        tops = {m.name.split("/", 1)[0] for m in members}
        assert tops == {"bundle"}
        found = {}
        for member in members:
            stream = archive.extractfile(member)
            assert stream is not None
            found[member.name.split("/", 1)[1]] = stream.read()
    return done.stdout, found


def check_sizes(files: dict[str, bytes], index: dict[str, Any]) -> None:
    """Every file within its section's cap, the total within the bundle's, the index exact."""
    listed = {item["path"]: item for item in index["files"]}
    assert set(listed) == set(files) - {"index.json", "index.txt"}
    for path, data in files.items():
        if path in ("index.json", "index.txt"):
            continue
        assert len(data) == listed[path]["size"], path
        assert len(data) <= CAPS[path.split("/", 1)[0]], path
    assert sum(len(data) for data in files.values()) <= TOTAL_CAP + 1_000_000


def no_secret_anywhere(files: dict[str, bytes]) -> None:
    for path, data in files.items():
        assert SECRET.encode() not in data, path


def test_bundle_with_the_daemon_up(doctor_lab: DoctorLab, tmp_path: Path) -> None:
    planted = tmp_path / "extra.log"
    big = b"".join(b"line %07d of an old daemon log\n" % n for n in range(200_000))  # 6.3 MiB
    planted.write_bytes(
        big
        + f"x-aws-ec2-metadata-token: {SECRET}\naws_secret_access_key={SECRET}\nlast line "
        f"for {POD_NAME}\n".encode()
    )
    out, files = bundle(
        doctor_lab, tmp_path, "--log", str(doctor_lab.node.logs[0]), "--log", str(planted)
    )
    index = json.loads(files["index.json"])
    for path in DAEMON_SECTIONS + ALWAYS:
        assert path in files, f"{path} missing"
        assert files[path] or path == "network/ip-neigh.txt", f"{path} is empty"
    assert index["daemon"].startswith("up")
    assert "logs/ipamd-0.log" in files
    check_sizes(files, index)
    no_secret_anywhere(files)
    # The big log keeps its newest end and says it was cut.
    cut = next(item for item in index["files"] if item["path"] == "logs/extra.log")
    assert cut["truncated"] is True
    assert "cut to the last 4.0 MiB of 6." in cut["note"]
    assert files["logs/extra.log"].endswith(b"\n")
    assert b"line 0000000 " not in files["logs/extra.log"]
    assert b"<redacted>" in files["logs/extra.log"]
    # Pod names: nowhere, a pseudonym instead, the same one everywhere.
    for path, data in files.items():
        assert POD_NAME.encode() not in data, path
    [pod] = json.loads(files["introspection/pods.json"])
    assert pod["name"].startswith("pod-")
    [held] = json.loads(files["checkpoint/state.json"])["assignments"]
    assert (held["name"], held["address"]) == (pod["name"], pod["address"])
    assert f"last line for {pod['name']}".encode() in files["logs/extra.log"]
    assert "checkpoint files" in index["missing"]
    # Contents worth having.
    iptables = files["network/iptables-save.txt"].decode()
    assert "*nat" in iptables
    assert "*filter" in iptables or "*mangle" in iptables
    assert "net.ipv4.ip_forward = 1" in files["network/sysctl.txt"].decode()  # the lab node's
    routes = files["network/ip-route.txt"].decode()
    assert "table local" in routes
    assert 'awscni_build_info{goversion="cpython' in files["metrics/metrics.txt"].decode()
    assert 'version="0.1.0"} 1.0' in files["metrics/metrics.txt"].decode()
    assert "mode secondary-ip" in files["status/status.txt"].decode()
    process = json.loads(files["daemon/process.json"])
    assert "AWS_SECRET_ACCESS_KEY" not in process["environment"]
    assert "AWS_SECRET_ACCESS_KEY" in process["other_variables"]  # by name only
    assert process["environment"]["AWS_ENDPOINT_URL_EC2"].startswith("http://127.0.0.1:")
    assert json.loads(files["kubelet/max-pods.json"])["value"] == 29
    plugin = json.loads(files["cni/plugin.json"])
    assert plugin["plugin"]["same_as_shipped"] is True
    # What the command printed: where the file is and what is inside.
    assert "daemon: up" in out
    assert "logs/extra.log" in out
    assert files["index.txt"].decode() in out + "\n"


def test_bundle_with_pod_names(doctor_lab: DoctorLab, tmp_path: Path) -> None:
    _, files = bundle(doctor_lab, tmp_path, "--include-pod-names")
    [pod] = json.loads(files["introspection/pods.json"])
    assert pod["name"] == POD_NAME
    assert files.get("checkpoint/ipam.journal") or files.get("checkpoint/ipam.snapshot")
    assert POD_NAME.encode() in files["checkpoint/ipam.journal"] + files.get(
        "checkpoint/ipam.snapshot", b""
    )


def test_bundle_with_the_daemon_down(doctor_lab: DoctorLab, tmp_path: Path) -> None:
    doctor_lab.node.stop()
    out, files = bundle(doctor_lab, tmp_path, "--log", str(doctor_lab.node.logs[0]))
    index = json.loads(files["index.json"])
    assert index["daemon"].startswith("down: the daemon does not answer at")
    for section in ("introspection", "metrics", "status"):
        assert "does not answer" in index["missing"][section]
    for path in DAEMON_SECTIONS:
        assert path not in files
    for path in ALWAYS:
        assert path in files, f"{path} missing"
        assert files[path] or path == "network/ip-neigh.txt", f"{path} is empty"
    assert files.get("logs/ipamd-0.log")
    check_sizes(files, index)
    # The checkpoint the stopped daemon left is in, its pod name redacted.
    [held] = json.loads(files["checkpoint/state.json"])["assignments"]
    assert held["name"].startswith("pod-")
    assert "daemon: down" in out
    assert "not collected:" in out
