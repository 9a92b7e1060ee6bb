"""The datapath in real namespaces: pods wired by the daemon in a lab node, traffic through the
right ENI, SNAT outside the VPC, DEL and CHECK, and convergence after kill -9."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.daemon.conftest import Node
from tests.netns.conftest import PORT, PROBE, ip
from tests.pod_fds import FDS, pod_fds
from vpccni.lab.topology import Lab


def pod_netns(name: str, created: list[str]) -> str:
    ip("netns", "add", name)
    created.append(name)
    return f"/var/run/netns/{name}"


def add(node: Node, container: str, netns: str, pod: str = "") -> dict[str, Any]:
    """A raw ADD as the plugin sends it: the pod's namespace and a netlink socket in it."""
    args = f"K8S_POD_NAMESPACE=default;K8S_POD_NAME={pod}" if pod else ""
    with pod_fds(netns) as fds:
        return node.rpc(
            {
                "op": "add",
                "cni": {
                    "command": "ADD",
                    "container_id": container,
                    "netns": netns,
                    "ifname": "eth0",
                    "args": args,
                },
                "config": {"cniVersion": "1.0.0", "name": "aws-cni", "mtu": 9001},
                "fds": FDS,
            },
            fds,
        )


def check(node: Node, container: str, netns: str) -> dict[str, Any]:
    """A raw CHECK as the plugin sends it."""
    with pod_fds(netns) as fds:
        return node.rpc(
            {
                "op": "check",
                "cni": {
                    "command": "CHECK",
                    "container_id": container,
                    "netns": netns,
                    "ifname": "eth0",
                },
                "config": {"name": "aws-cni"},
                "fds": FDS,
            },
            fds,
        )


def probe(netns: str, host: str) -> list[str]:
    done = subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            Path(netns).name,
            sys.executable,
            *PROBE,
            "send",
            host,
            str(PORT),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=20,
    )
    if done.returncode != 0:
        lab = Path(netns).name.rsplit("-", 1)[0]
        dumps = [
            subprocess.Popen(
                [
                    "ip",
                    "netns",
                    "exec",
                    f"{lab}-{ns}",
                    "timeout",
                    "4",
                    "tcpdump",
                    "-eni",
                    "any",
                    "udp port 7777 or arp",
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            for ns in ("vpc", "node")
        ]
        time.sleep(1)
        subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                Path(netns).name,
                sys.executable,
                *PROBE,
                "send",
                host,
                str(PORT),
            ],
            capture_output=True,
            check=False,
            timeout=20,
        )
        out = "\n---\n".join(d.communicate()[0] for d in dumps)
        pytest.fail(f"no answer from {host} for {netns}:\n{out}")
    return done.stdout.split()


def test_pods_get_working_networking(lab_node: tuple[Node, Lab]) -> None:
    node, lab = lab_node
    created: list[str] = []
    try:
        node.wait_for(lambda: node.rpc({"op": "status"})["result"]["available"] == 9, what="IPs")
        pods = []
        for index in range(10):  # 9 fill the primary ENI (packing), the 10th lands on eth1
            netns = pod_netns(f"{lab.prefix}-p{index}", created)
            reply = node.wait_for_reply(lambda n=netns, i=index: add(node, f"c{i}", n, f"web-{i}"))
            address = reply["result"]["ips"][0]["address"].split("/")[0]
            pods.append((netns, address))
            assert reply["result"]["interfaces"][0]["name"].startswith("eni")
        first, last = pods[0], pods[-1]
        enis = {
            str(a): e.attachment.device_index
            for e in node.enis()
            for a in e.secondary_ips
            if e.attachment
        }
        assert (enis[first[1]], enis[last[1]]) == (0, 1)

        assert probe(first[0], str(lab.vpc_host)) == [first[1], "v0"]
        assert probe(last[0], str(lab.vpc_host)) == [last[1], "v1"]  # its ENI's route table
        node_ip = str(node.enis()[0].primary_ip)
        assert probe(last[0], str(lab.internet_host))[0] == node_ip  # SNAT via the primary ENI
        assert probe(first[0], str(lab.internet_host))[0] == node_ip

        reply = check(node, "c0", first[0])
        assert reply["ok"], reply
        without_fds = node.rpc(
            {
                "op": "check",
                "cni": {
                    "command": "CHECK",
                    "container_id": "c0",
                    "netns": first[0],
                    "ifname": "eth0",
                },
                "config": {"name": "aws-cni"},
            }
        )
        assert without_fds["error"]["code"] == 4
        assert "did not pass the pod's network namespace (fds)" in without_fds["error"]["msg"]
        ip("-n", Path(first[0]).name, "route", "del", "default")  # the pod side, read via its fd
        reply = check(node, "c0", first[0])
        assert reply["error"]["code"] == 102
        assert "the pod's default route via 169.254.1.1 is missing" in reply["error"]["details"]
        ip("-n", lab.node, "route", "del", f"{first[1]}/32")
        reply = check(node, "c0", first[0])
        assert reply["error"]["code"] == 102
        assert f"host route {first[1]}/32" in reply["error"]["msg"]

        for _ in range(2):
            assert node.delete("c9")["ok"]
        links = ip("-n", lab.node, "link", "show")
        assert "enib" not in links or last[1] not in ip("-n", lab.node, "route")
        assert f"from {last[1]}" not in ip("-n", lab.node, "rule")
    finally:
        for name in created:
            ip("netns", "del", name)


def test_kill_9_then_restart_converges_host_state(lab_node: tuple[Node, Lab]) -> None:
    node, lab = lab_node
    created: list[str] = []
    try:
        node.wait_for(lambda: node.rpc({"op": "status"})["result"]["available"] == 9, what="IPs")
        kept = pod_netns(f"{lab.prefix}-k", created)
        gone = pod_netns(f"{lab.prefix}-g", created)
        kept_ip = node.wait_for_reply(lambda: add(node, "keep", kept))["result"]["ips"][0][
            "address"
        ]
        gone_ip = node.wait_for_reply(lambda: add(node, "gone", gone))["result"]["ips"][0][
            "address"
        ]
        node.stop(signal.SIGKILL)
        # While the daemon is down the runtime deletes "gone" (the plugin spools the DEL).
        spool = node.directory / "spool"
        spool.mkdir(exist_ok=True)
        (spool / "gone-eth0.json").write_text(
            '{"version": 1, "network": "aws-cni", "container_id": "gone", "ifname": "eth0", '
            f'"ips": ["{gone_ip}"], "spooled_at": {time.time()}}}'
        )
        ip("netns", "del", Path(gone).name)
        created.remove(Path(gone).name)
        node.start("--netns", lab.node)
        rules = ip("-n", lab.node, "rule")
        routes = ip("-n", lab.node, "route")
        assert gone_ip.split("/")[0] not in rules + routes
        assert kept_ip.split("/")[0] in rules
        assert probe(kept, str(lab.vpc_host))[0] == kept_ip.split("/")[0]
    finally:
        for name in created:
            ip("netns", "del", name)


CLIENT = """
import json, sys
sys.path.insert(0, sys.argv[3])
from tests.pod_fds import FDS, pod_fds
from vpccni.daemon.rpc import call
with pod_fds(sys.argv[2]) as fds:
    reply = call(sys.argv[1], {"version": 1, "op": "add", "cni": {"command": "ADD",
        "container_id": "private", "netns": sys.argv[2], "ifname": "eth0", "args": ""},
        "config": {"cniVersion": "1.0.0", "name": "aws-cni"}, "fds": FDS}, fds=fds)
print(json.dumps(reply))
"""


def test_a_pod_netns_in_the_plugins_private_mount_namespace(lab_node: tuple[Node, Lab]) -> None:
    """Runtimes in their own mount namespace mount pod namespaces the daemon cannot see; the
    plugin opens them where it sees them and passes the descriptors, so the path never has to
    exist for the daemon."""
    node, lab = lab_node
    node.wait_for(lambda: node.rpc({"op": "status"})["result"]["available"] == 9, what="IPs")
    name = f"{lab.prefix}-private"
    root = Path(__file__).parents[2]
    script = (
        f"ip netns add {name} && {sys.executable} -c '{CLIENT}' {node.socket} "
        f"/var/run/netns/{name} {root}; ip netns del {name}"
    )
    done = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", script],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    reply = json.loads(done.stdout)
    assert reply["ok"], reply
    assert reply["result"]["interfaces"][1]["sandbox"] == f"/var/run/netns/{name}"
    assert name not in ip("netns", "list")


def test_wiring_does_not_leak_sockets_and_bursts_are_queued(lab_node: tuple[Node, Lab]) -> None:
    from concurrent.futures import ThreadPoolExecutor

    node, lab = lab_node
    node.wait_for(lambda: node.rpc({"op": "status"})["result"]["available"] == 9, what="IPs")
    assert node.process is not None
    fds = Path(f"/proc/{node.process.pid}/fd")
    pod = f"{lab.prefix}-leak"
    ip("netns", "add", pod)
    try:
        node.wait_for_reply(lambda: add(node, "warm", f"/var/run/netns/{pod}"))
        node.delete("warm")
        before = len(list(fds.iterdir()))
        for cycle in range(20):
            node.wait_for_reply(lambda c=cycle: add(node, f"leak-{c}", f"/var/run/netns/{pod}"))
            assert node.delete(f"leak-{cycle}")["ok"]
            node.advance(31)  # the released address cools down on the emulator's clock
        assert len(list(fds.iterdir())) <= before + 3
        with ThreadPoolExecutor(64) as pool:
            replies = list(pool.map(lambda _: node.rpc({"op": "status"}), range(256)))
        assert all(r["ok"] for r in replies)
    finally:
        ip("netns", "del", pod)
