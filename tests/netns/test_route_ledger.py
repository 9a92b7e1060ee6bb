"""The datapath as a second ledger, on real namespaces: a lost or damaged checkpoint never makes
the daemon hand a live pod's address to another pod, and ``--recover`` rebuilds from EC2 and the
node's pod routes.

Pods are wired through the plugin API into real pod namespaces of the lab's node; the daemon is
stopped; its checkpoint is deleted (disk loss) or damaged; then it starts again.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

from tests.netns.conftest import Lab, Node, ip
from tests.pod_fds import plugin_request

LIVE = 4
NEW = 4


def request(node: Node, op: str, name: str, netns: str) -> dict[str, Any]:
    return plugin_request(
        node.rpc,
        {
            "op": op,
            "cni": {
                "command": op.upper(),
                "container_id": name,
                "netns": netns,
                "ifname": "eth0",
                "args": f"K8S_POD_NAMESPACE=ledger;K8S_POD_NAME={name}",
            },
            "config": {"cniVersion": "1.0.0", "name": "aws-cni"},
        },
    )


def address_of(reply: dict[str, Any]) -> str:
    assert reply["ok"], reply
    return str(reply["result"]["ips"][0]["address"]).split("/")[0]


def routed(lab: Lab) -> set[str]:
    """Pod addresses the node's main table routes to a pod veth."""
    return {
        line.split()[0] for line in ip("-n", lab.node, "route").splitlines() if " dev eni" in line
    }


def checkpoint_files(node: Node) -> list[Path]:
    return sorted(
        p for p in (node.directory / "checkpoint").iterdir() if p.name.startswith("ipam.")
    )


def wire_pods(node: Node, lab: Lab, names: list[str]) -> dict[str, str]:
    addresses = {}
    for name in names:
        netns = f"{lab.prefix}-{name}"
        ip("netns", "add", netns)
        addresses[name] = address_of(add_when_ready(node, name, f"/var/run/netns/{netns}"))
    return addresses


def add_when_ready(node: Node, name: str, netns: str) -> dict[str, Any]:
    """ADD, retried while the daemon answers 11 (starting, pool still growing), as kubelet does."""
    deadline = time.monotonic() + 30
    while True:
        reply = request(node, "add", name, netns)
        if reply["ok"] or reply["error"]["code"] != 11 or time.monotonic() > deadline:
            return reply
        time.sleep(0.2)


def new_pods_avoid(node: Node, lab: Lab, live: dict[str, str], prefix: str) -> None:
    """Pods added now get addresses no live pod holds, and every live pod keeps its route."""
    fresh = wire_pods(node, lab, [f"{prefix}{i}" for i in range(NEW)])
    assert not set(fresh.values()) & set(live.values()), (fresh, live)
    assert len(set(fresh.values())) == NEW
    assert set(live.values()) <= routed(lab)
    held = {p["address"] for p in node.introspect("/v1/pods")}
    assert set(live.values()) | set(fresh.values()) <= held


def test_a_deleted_checkpoint_never_hands_out_a_live_pods_address(
    lab_node: tuple[Node, Lab],
) -> None:
    node, lab = lab_node
    try:
        live = wire_pods(node, lab, [f"live{i}" for i in range(LIVE)])
        assert node.stop() == 0
        files = checkpoint_files(node)
        assert files, "the daemon wrote no checkpoint"
        for path in files:
            path.unlink()  # disk loss: the snapshot and the journal are gone
        node.start("--netns", lab.node)
        assert set(live.values()) <= routed(lab), "restart removed a live pod's routes"
        new_pods_avoid(node, lab, live, "after-loss")
    finally:
        _remove_pod_namespaces(lab)


def test_recover_rebuilds_a_damaged_checkpoint_without_double_assignment(
    lab_node: tuple[Node, Lab],
) -> None:
    node, lab = lab_node
    try:
        live = wire_pods(node, lab, [f"live{i}" for i in range(LIVE)])
        assert node.stop() == 0
        journal = node.directory / "checkpoint" / "ipam.journal"
        data = bytearray(journal.read_bytes())
        data[len(data) // 2] ^= 0x20  # one bit flipped in the middle of the journal
        journal.write_bytes(bytes(data))
        before = {p.name: p.read_bytes() for p in checkpoint_files(node)}

        node.start("--netns", lab.node, wait=False)
        assert node.process is not None
        code = node.process.wait(timeout=60)
        node.process = None
        assert code != 0, "the daemon started on a damaged checkpoint"
        assert "--recover" in node.log(), node.log()
        assert {p.name: p.read_bytes() for p in checkpoint_files(node)} == before, "files changed"

        node.start("--netns", lab.node, "--recover")
        assert "recover: the damaged files were moved to" in node.log()
        assert list((node.directory / "checkpoint").glob("damaged-*")), "nothing moved aside"
        assert set(live.values()) <= routed(lab)
        new_pods_avoid(node, lab, live, "after-recover")
        assert node.stop(signal.SIGTERM) == 0
        node.start("--netns", lab.node)  # the rebuilt checkpoint loads without --recover
        held = {p["address"] for p in node.introspect("/v1/pods")}
        assert set(live.values()) <= held
    finally:
        _remove_pod_namespaces(lab)


def _remove_pod_namespaces(lab: Lab) -> None:
    for name in os.listdir("/var/run/netns"):
        if name.startswith((f"{lab.prefix}-live", f"{lab.prefix}-after")):
            ip("netns", "del", name)
