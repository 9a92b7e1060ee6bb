"""Interop with cnitool, the CNI project's reference client (built from Debian's source package
by scripts/build-cnitool.sh): ADD through the installed plugin and conflist, traffic, CHECK,
idempotent DEL. cnitool and the chained portmap plugin run inside the lab's node namespace, so
nothing is written to the machine's own iptables."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.netns.conftest import PORT, PROBE, Lab, Node, install_plugin, ip

CNITOOL = Path(__file__).parents[2] / ".tools" / "cnitool"
DEBIAN_PLUGINS = Path("/usr/lib/cni")


def require(path: Path, why: str) -> None:
    if path.exists():
        return
    if os.environ.get("CI"):
        pytest.fail(f"{path} is missing ({why}); scripts/test.sh installs it")
    pytest.skip(f"{path} is missing ({why})")


def cnitool(
    lab: Lab, node: Node, conf: Path, bin_dir: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "NETCONFPATH": str(conf),
        "CNI_PATH": f"{bin_dir}:{DEBIAN_PLUGINS}",
    }
    return subprocess.run(
        ["ip", "netns", "exec", lab.node, str(CNITOOL), *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )


def test_cnitool_add_check_del(lab_node: tuple[Node, Lab], tmp_path: Path) -> None:
    require(CNITOOL, "built by scripts/build-cnitool.sh")
    require(DEBIAN_PLUGINS / "portmap", "Debian's containernetworking-plugins")
    node, lab = lab_node
    bin_dir, conf = install_plugin(node, tmp_path)
    pod = f"{lab.prefix}-cni"
    ip("netns", "add", pod)
    try:
        node.wait_for(lambda: node.rpc({"op": "status"})["result"]["available"] > 0, what="IPs")
        added = cnitool(lab, node, conf, bin_dir, "add", "aws-cni", f"/var/run/netns/{pod}")
        assert added.returncode == 0, added.stdout + added.stderr
        result: dict[str, Any] = json.loads(added.stdout)
        assert result["cniVersion"] == "1.0.0"
        address = result["ips"][0]["address"].split("/")[0]
        assert address in ip("-n", pod, "-4", "addr", "show", "dev", "eth0")
        answer = subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                pod,
                sys.executable,
                *PROBE,
                "send",
                str(lab.vpc_host),
                str(PORT),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert answer.stdout.split()[:1] == [address], answer.stderr
        assert (
            cnitool(
                lab, node, conf, bin_dir, "check", "aws-cni", f"/var/run/netns/{pod}"
            ).returncode
            == 0
        )
        for _ in range(2):
            deleted = cnitool(lab, node, conf, bin_dir, "del", "aws-cni", f"/var/run/netns/{pod}")
            assert deleted.returncode == 0, deleted.stdout + deleted.stderr
        assert node.introspect("/v1/pods") == []
        assert address not in ip("-n", lab.node, "rule")
    finally:
        ip("netns", "del", pod)
