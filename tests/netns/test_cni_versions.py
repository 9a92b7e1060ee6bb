"""cnitool (the CNI project's reference client) with upstream's conflist versions and keys, and
upstream's DEL reading the results vpccni printed, in the lab with the real daemon.

* A 0.3.1 conflist (upstream shipped one) with upstream's keys - ``mtu`` as a string,
  ``vethPrefix`` - adds a pod (a 0.3.1 result, the pod's eth0 at that MTU, traffic) and deletes
  it (twice); a ``vethPrefix`` other than the daemon's and an ``mtu`` the plugin would refuse are
  refused by the daemon too (7), with nothing allocated. With ``"resultStyle": "plain"`` the
  result carries the pod's eth0 MAC and no dummy entry; another style is refused by the daemon.
* Rollback: pods added through cnitool with 0.4.0 and 1.0.0 conflists, one on the primary ENI
  and one on the second; with the daemon stopped (upstream's DEL tears down from prevResult only
  when its ipamd cannot answer), each reading of upstream's DEL (``tests/plugin/upstream_del.py``)
  yields the pod's address and table, and deleting what upstream's teardown deletes (rule 512,
  rules 1536 of that table, the host route) succeeds and leaves none of the pod's rules or routes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.daemon.conftest import Node
from tests.netns.conftest import PORT, PROBE, install_plugin, ip
from tests.netns.test_datapath import add, pod_netns
from tests.netns.test_interop_cnitool import CNITOOL, DEBIAN_PLUGINS, require
from tests.plugin.upstream_del import MAIN, READINGS, teardown_from_prev_result
from tests.pod_fds import FDS, pod_fds
from vpccni.lab.topology import Lab


def cnitool(
    lab: Lab, conf: Path, bin_dir: Path, verb: str, netns: str, args: str = ""
) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "NETCONFPATH": str(conf),
        "CNI_PATH": f"{bin_dir}:{DEBIAN_PLUGINS}",
        "CNI_ARGS": args,
    }
    return subprocess.run(
        ["ip", "netns", "exec", lab.node, str(CNITOOL), verb, "aws-cni", netns],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )


def conflist_as(conf: Path, version: str, **keys: Any) -> None:
    """Rewrite the installed conflist to ``version`` (no cniVersions list) with ``keys`` in
    vpccni-cni's entry."""
    path = conf / "10-vpccni.conflist"
    document = json.loads(path.read_text())
    document.pop("cniVersions", None)
    document["cniVersion"] = version
    document["plugins"][0].update(keys)
    path.write_text(json.dumps(document, indent=2))


def requirements() -> None:
    require(CNITOOL, "built by scripts/build-cnitool.sh")
    require(DEBIAN_PLUGINS / "portmap", "Debian's containernetworking-plugins")


def test_cnitool_with_a_0_3_1_conflist_and_upstreams_keys_adds_and_deletes_a_pod(
    lab_node: tuple[Node, Lab], tmp_path: Path
) -> None:
    requirements()
    node, lab = lab_node
    bin_dir, conf = install_plugin(node, tmp_path)
    conflist_as(conf, "0.3.1", mtu="1500", vethPrefix="eni")
    pod = f"{lab.prefix}-v031"
    netns = f"/var/run/netns/{pod}"
    ip("netns", "add", pod)
    try:
        node.wait_for(lambda: node.rpc({"op": "status"})["result"]["available"] > 0, what="IPs")
        added = cnitool(lab, conf, bin_dir, "add", netns)
        assert added.returncode == 0, added.stdout + added.stderr
        result: dict[str, Any] = json.loads(added.stdout)
        assert result["cniVersion"] == "0.3.1"
        assert result["ips"][0]["version"] == "4"
        address = result["ips"][0]["address"].split("/")[0]
        assert address in ip("-n", pod, "-4", "addr", "show", "dev", "eth0")
        assert " mtu 1500 " in ip("-n", pod, "link", "show", "dev", "eth0")  # the string mtu
        send = [sys.executable, *PROBE, "send", str(lab.vpc_host), str(PORT)]
        answer = subprocess.run(
            ["ip", "netns", "exec", pod, *send],
            capture_output=True,
            text=True,
            check=False,
        )
        assert answer.stdout.split()[:1] == [address], answer.stderr
        for _ in range(2):
            deleted = cnitool(lab, conf, bin_dir, "del", netns)
            assert deleted.returncode == 0, deleted.stdout + deleted.stderr
        assert node.introspect("/v1/pods") == []
        assert address not in ip("-n", lab.node, "rule")

        # a vethPrefix other than the daemon's: refused by the daemon, nothing allocated
        conflist_as(conf, "0.3.1", mtu="1500", vethPrefix="abc")
        refused = cnitool(lab, conf, bin_dir, "add", netns)
        assert refused.returncode != 0
        said = refused.stdout + refused.stderr
        assert "config key vethPrefix 'abc' differs from the daemon's" in said
        assert node.introspect("/v1/pods") == []
        # an mtu the plugin refuses is refused by the daemon too (a client other than ours)
        reply = add_raw(node, netns, mtu="1500x")
        assert reply["error"]["code"] == 7, reply
        assert reply["error"]["msg"] == "config key mtu '1500x' is not a pod MTU"
        assert node.introspect("/v1/pods") == []

        plain_result_and_refusal(node, lab, (conf, bin_dir), pod)
    finally:
        ip("netns", "del", pod)


def plain_result_and_refusal(node: Node, lab: Lab, dirs: tuple[Path, Path], pod: str) -> None:
    """``"resultStyle": "plain"`` (for podman): the pod's own MAC on its entry, no dummy entry;
    a style the plugin refuses is refused by the daemon too, with nothing allocated."""
    conf, bin_dir = dirs
    netns = f"/var/run/netns/{pod}"
    conflist_as(conf, "1.0.0", mtu="1500", vethPrefix="eni", resultStyle="plain")
    added = cnitool(lab, conf, bin_dir, "add", netns)
    assert added.returncode == 0, added.stdout + added.stderr
    plain: dict[str, Any] = json.loads(added.stdout)
    host = plain["interfaces"][0]["name"]
    assert plain["interfaces"] == [
        {"name": host, "mac": mac_of(lab.node, host)},
        {"name": "eth0", "mac": mac_of(pod, "eth0"), "sandbox": netns},
    ]
    assert plain["ips"][0]["interface"] == 1
    deleted = cnitool(lab, conf, bin_dir, "del", netns)
    assert deleted.returncode == 0, deleted.stdout + deleted.stderr
    assert node.introspect("/v1/pods") == []
    # a resultStyle the plugin refuses is refused by the daemon too, nothing allocated
    reply = add_raw(node, netns, resultStyle="Plain")
    assert reply["error"]["code"] == 7, reply
    assert reply["error"]["msg"] == "config key resultStyle 'Plain' is not 'upstream' or 'plain'"
    assert node.introspect("/v1/pods") == []


def mac_of(netns: str, link: str) -> str:
    shown: list[dict[str, Any]] = json.loads(ip("-n", netns, "-j", "link", "show", "dev", link))
    return str(shown[0]["address"])


def add_raw(node: Node, netns: str, **config: Any) -> dict[str, Any]:
    """An ADD the way add() sends it, with ``config`` keys added."""
    with pod_fds(netns) as fds:
        return node.rpc(
            {
                "op": "add",
                "cni": {"command": "ADD", "container_id": "raw", "netns": netns, "ifname": "eth0"},
                "config": {"cniVersion": "1.0.0", "name": "aws-cni", **config},
                "fds": FDS,
            },
            fds,
        )


def upstream_teardown(netns: str, address: str, table: int) -> None:
    """What upstream's TeardownPodNetwork deletes; each deletion fails if nothing matched."""
    ip("-n", netns, "rule", "del", "to", f"{address}/32", "priority", "512", "table", "main")
    if table != MAIN:
        source = ("from", f"{address}/32", "priority", "1536")
        ip("-n", netns, "rule", "del", *source, "table", str(table))
        while f"from {address} lookup {table}" in ip("-n", netns, "rule"):
            ip("-n", netns, "rule", "del", *source)
    ip("-n", netns, "route", "del", f"{address}/32", "table", "main")


def tear_down_as_upstream(
    netns: str, result: dict[str, Any], args: str, wanted: tuple[str, int]
) -> None:
    """Every reading of upstream's DEL yields ``wanted`` from ``result``; deleting what its
    teardown deletes succeeds and leaves nothing of the pod."""
    readings = {
        reading: teardown_from_prev_result(result, args, "eth0", reading) for reading in READINGS
    }
    assert readings["current"] == readings["legacy"] == [wanted], readings
    # the pciID revision reads 1.0.0 results only, upstream's own included
    assert readings["pci"] == ([wanted] if result["cniVersion"] == "1.0.0" else None)
    upstream_teardown(netns, *wanted)
    assert mentions(netns, wanted[0]) == []


def mentions(netns: str, address: str) -> list[str]:
    lines = ip("-n", netns, "rule").splitlines() + ip("-n", netns, "route").splitlines()
    return [line for line in lines if f"{address} " in line + " "]


def test_upstreams_del_tears_down_pods_from_the_results_vpccni_printed(
    lab_node: tuple[Node, Lab], tmp_path: Path
) -> None:
    requirements()
    node, lab = lab_node
    bin_dir, conf_1 = install_plugin(node, tmp_path)
    conf_0 = tmp_path / "net.d-0.4.0"
    conf_0.mkdir()
    (conf_0 / "10-vpccni.conflist").write_text((conf_1 / "10-vpccni.conflist").read_text())
    conflist_as(conf_1, "1.0.0")
    conflist_as(conf_0, "0.4.0")
    created: list[str] = []
    pods: dict[str, tuple[str, Path, str]] = {}  # pod -> (netns, conf dir, CNI_ARGS)
    printed: dict[str, dict[str, Any]] = {}
    try:
        node.wait_for(lambda: node.rpc({"op": "status"})["result"]["available"] == 9, what="IPs")

        def cnitool_add(pod: str, conf: Path) -> None:
            netns = pod_netns(f"{lab.prefix}-{pod}", created)
            args = f"IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME={pod}"
            pods[pod] = (netns, conf, args)

            deadline = time.monotonic() + 60
            while True:  # retried while the pool grows (11), as kubelet retries
                done = cnitool(lab, conf, bin_dir, "add", netns, args)
                if done.returncode == 0:
                    printed[pod] = json.loads(done.stdout)
                    return
                assert time.monotonic() < deadline, done.stdout + done.stderr
                time.sleep(0.2)

        cnitool_add("web-0", conf_1)  # on the primary ENI
        for index in range(8):  # the primary ENI's other addresses
            filler = pod_netns(f"{lab.prefix}-f{index}", created)
            node.wait_for_reply(lambda f=filler, i=index: add(node, f"fill{i}", f, f"fill{i}"))
        cnitool_add("web-1", conf_0)  # the pool grows: on the second ENI (device 1, table 2)
        assert printed["web-0"]["cniVersion"] == "1.0.0"
        assert printed["web-1"]["cniVersion"] == "0.4.0"
        addresses = {pod: r["ips"][0]["address"].split("/")[0] for pod, r in printed.items()}
        assert f"1536:\tfrom {addresses['web-1']} lookup 2" in ip("-n", lab.node, "rule")

        assert node.process is not None
        os.kill(node.process.pid, signal.SIGSTOP)  # ipamd cannot answer: the prevResult path
        try:
            for pod, result in printed.items():
                wanted = (addresses[pod], {"web-0": MAIN, "web-1": 2}[pod])
                tear_down_as_upstream(lab.node, result, pods[pod][2], wanted)
        finally:
            os.kill(node.process.pid, signal.SIGCONT)
        for netns, conf, args in pods.values():  # our DEL still succeeds and releases
            deleted = cnitool(lab, conf, bin_dir, "del", netns, args)
            assert deleted.returncode == 0, deleted.stdout + deleted.stderr
        for index in range(8):
            assert node.delete(f"fill{index}")["ok"]
        assert node.introspect("/v1/pods") == []
    finally:
        for name in created:
            ip("netns", "del", name)
