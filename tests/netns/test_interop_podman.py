"""Interop with a real container runtime: podman (CNI backend) runs busybox containers on the
vpccni network. podman runs in the lab's node network namespace (``nsenter --net``: entering
only the network namespace keeps the cgroup mounts runc needs, which ``ip netns exec`` hides by
remounting /sys) with its own storage, run root and configuration in a temporary directory, so
neither the machine's iptables nor its container storage are touched. The conflist asks for
``"resultStyle": "plain"``: podman parses the MAC of each interface in the container's namespace."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

from tests.daemon.conftest import Node
from tests.netns.conftest import install_plugin
from vpccni.lab.topology import Lab

BUSYBOX = Path("/usr/bin/busybox")
IMAGE = "localhost/vpccni-busybox:latest"
HTTP_PORT = 8080
SERVER = (
    "import http.server as h\n"
    "class H(h.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        body = self.client_address[0].encode()\n"
    "        self.send_response(200); self.send_header('Content-Length', str(len(body)))\n"
    "        self.end_headers(); self.wfile.write(body)\n"
    "    def log_message(self, *a): pass\n"
    "h.HTTPServer(('{host}', {port}), H).serve_forever()\n"
)


def require_podman() -> None:
    missing = [t for t in ("podman", "runc") if shutil.which(t) is None]
    if not BUSYBOX.exists():
        missing.append(str(BUSYBOX))
    if not missing:
        return
    if os.environ.get("CI"):
        pytest.fail(f"missing {missing}; scripts/test.sh installs podman, runc, busybox-static")
    pytest.skip(f"missing {missing}")


def busybox_image(directory: Path) -> Path:
    """A rootfs tarball holding a static busybox and the applets the test uses."""
    rootfs = directory / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    shutil.copy2(BUSYBOX, rootfs / "bin" / "busybox")
    for applet in ("sh", "ip", "wget", "cat", "sleep"):
        (rootfs / "bin" / applet).symlink_to("busybox")
    tarball = directory / "rootfs.tar"
    with tarfile.open(tarball, "w") as archive:
        archive.add(rootfs, arcname=".")
    return tarball


def podman(
    lab: Lab, base: Path, *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        "CONTAINERS_CONF": str(base / "containers.conf"),
        "CONTAINERS_STORAGE_CONF": str(base / "storage.conf"),
        "HOME": str(base),
    }
    command = [
        "nsenter",
        f"--net=/var/run/netns/{lab.node}",
        "podman",
        "--root",
        str(base / "root"),
        "--runroot",
        str(_runroot(base)),
        "--cgroup-manager",
        "cgroupfs",
        "--events-backend",
        "file",
        *args,
    ]
    return subprocess.run(
        command, capture_output=True, text=True, env=env, check=False, timeout=timeout
    )


def _runroot(base: Path) -> Path:
    """podman refuses a run root longer than 50 characters: use a short one per test."""
    path = Path(f"/run/vpccni-podman-{base.name[-20:]}")
    path.mkdir(exist_ok=True)
    return path


def plain_results(conf: Path) -> None:
    """podman parses the MAC of every result interface in the container's namespace
    (CNIResultToStatus: net.ParseMAC), which upstream's result shape leaves empty (and "0" on the
    dummy entry): set ``"resultStyle": "plain"`` (docs/plugin-api.md), as a podman node would."""
    path = conf / "10-vpccni.conflist"
    document = json.loads(path.read_text())
    document["plugins"][0]["resultStyle"] = "plain"
    path.write_text(json.dumps(document, indent=2))


def test_podman_runs_busybox_on_the_vpccni_network(
    lab_node: tuple[Node, Lab], tmp_path: Path
) -> None:
    require_podman()
    node, lab = lab_node
    bin_dir, conf = install_plugin(node, tmp_path)
    plain_results(conf)
    (tmp_path / "containers.conf").write_text(
        "[containers]\n"
        'default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]\n'
        "[network]\n"
        'network_backend = "cni"\n'
        f'cni_plugin_dirs = ["{bin_dir}", "/usr/lib/cni"]\n'
        f'network_config_dir = "{conf}"\n'
        "[engine]\n"
        'runtime = "runc"\n'
    )
    (tmp_path / "storage.conf").write_text(
        f'[storage]\ndriver = "vfs"\nrunroot = "{_runroot(tmp_path)}"\n'
        f'graphroot = "{tmp_path}/root"\n'
    )
    server = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            lab.vpc,
            sys.executable,
            "-c",
            SERVER.format(host=lab.vpc_host, port=HTTP_PORT),
        ],
    )
    try:
        imported = podman(lab, tmp_path, "import", str(busybox_image(tmp_path)), IMAGE)
        assert imported.returncode == 0, imported.stderr
        node.wait_for(lambda: node.rpc({"op": "status"})["result"]["available"] > 0, what="IPs")
        ran = podman(
            lab,
            tmp_path,
            "run",
            "--rm",
            "--runtime",
            "runc",
            "--network",
            "aws-cni",
            IMAGE,
            "sh",
            "-c",
            f"ip -4 -o addr show eth0; wget -q -O - http://{lab.vpc_host}:{HTTP_PORT}/",
        )
        assert ran.returncode == 0, ran.stdout + ran.stderr
        lines = ran.stdout.strip().splitlines()
        address = lines[0].split()[3].split("/")[0]
        assert lines[-1] == address  # the VPC host saw the pod's own address
        assert address.startswith("10.0.1.")
        pods: list[Any] = node.introspect("/v1/pods")
        assert pods == []  # podman's DEL released the address when the container was removed
    finally:
        server.kill()
        server.wait()
        podman(lab, tmp_path, "rm", "-a", "-f", timeout=60)
        shutil.rmtree(_runroot(tmp_path), ignore_errors=True)
