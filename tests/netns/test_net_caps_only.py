"""The daemon wires pods with CAP_NET_ADMIN and CAP_NET_RAW alone, as a Kubernetes DaemonSet
runs it (not privileged, no hostPID): it never enters a pod's namespace or opens its path - the
installed plugin passes the namespace and a netlink socket in it as descriptors. The daemon runs
inside the lab's node namespace (``--host-datapath``) under setpriv; a pod is added through the
installed plugin, reaches the lab's VPC host, passes CHECK, and DEL removes it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

from tests.netns.conftest import (
    CAP_NET_ADMIN,
    CAP_NET_RAW,
    Lab,
    Node,
    capabilities,
    install_plugin,
    ip,
)
from tests.netns.test_datapath import probe
from tests.plugin.runtime import Runtime, network_config

NET_ONLY = 1 << CAP_NET_ADMIN | 1 << CAP_NET_RAW
SETNS = """
import ctypes, json, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
libc = ctypes.CDLL(None, use_errno=True)
print(json.dumps([libc.setns(fd, 0x40000000), ctypes.get_errno()]))
"""


def setns_with_net_caps_only(lab: Lab, target: str) -> list[int]:
    """[setns's return, errno] for a process with the daemon's capabilities, in its namespace."""
    net_only = "-all,+net_admin,+net_raw"
    done = subprocess.run(
        [
            *("ip", "netns", "exec", lab.node, "setpriv"),
            *(f"--inh-caps={net_only}", f"--ambient-caps={net_only}"),
            f"--bounding-set={net_only}",
            *(sys.executable, "-c", SETNS, target),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    result: list[int] = json.loads(done.stdout)
    return result


def test_a_daemon_with_only_net_admin_and_net_raw_wires_pods_through_the_plugin(
    lab_node_net_caps_only: tuple[Node, Lab], tmp_path: Path
) -> None:
    node, lab = lab_node_net_caps_only
    assert node.process is not None
    caps = capabilities(node.process.pid)
    assert "ipamd" in Path(f"/proc/{node.process.pid}/cmdline").read_text()
    assert (caps["CapEff"], caps["CapPrm"], caps["CapBnd"]) == (NET_ONLY, NET_ONLY, NET_ONLY)
    assert ip("netns", "identify", str(node.process.pid)).strip() == lab.node
    # The premise: with these capabilities a process cannot enter a namespace (EPERM), so the
    # wiring below really goes through the descriptors the plugin passes.
    assert setns_with_net_caps_only(lab, f"/var/run/netns/{lab.vpc}") == [-1, 1]

    bin_dir, _ = install_plugin(node, tmp_path)
    pod = f"{lab.prefix}-caps"
    ip("netns", "add", pod)
    try:
        node.wait_for(lambda: node.rpc({"op": "status"})["result"]["available"] > 0, what="IPs")
        runtime = Runtime(
            bin_dir / "vpccni-cni", node.socket, node.directory / "spool", f"/var/run/netns/{pod}"
        )
        added = runtime.call("ADD", network_config("1.0.0"), "caps-0")
        assert added.status == 0, added.stdout + added.stderr
        address = added.json()["ips"][0]["address"].split("/")[0]
        veth = added.json()["interfaces"][0]["name"]
        assert address in ip("-n", pod, "-4", "addr", "show", "dev", "eth0")
        assert probe(f"/var/run/netns/{pod}", str(lab.vpc_host)) == [address, "v0"]

        config = network_config("1.0.0", prevResult=added.json())
        checked = runtime.call("CHECK", config, "caps-0")
        assert checked.status == 0, checked.stdout + checked.stderr

        deleted = runtime.call("DEL", config, "caps-0")
        assert deleted.status == 0, deleted.stdout + deleted.stderr
        assert veth not in ip("-n", lab.node, "link", "show")
        assert f"{address} dev {veth}" not in ip("-n", lab.node, "route")
        assert "eth0" not in ip("-n", pod, "link", "show")  # the pair went with the host veth
        assert node.introspect("/v1/pods") == []
        assert not list((node.directory / "spool").glob("*.json"))  # answered, not spooled
        assert node.stop(signal.SIGTERM) == 0, node.log()
    finally:
        ip("netns", "del", pod)
