"""kill -9 of the daemon during pod churn with the datapath on, then restart: host routes,
rules and veths converge to the assignments; nothing remains for a deleted pod. Rounds:
``VPCCNI_DATAPATH_KILLS`` (CI default 3)."""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from typing import Any

from tests.netns.conftest import Lab, Node, ip
from tests.pod_fds import plugin_request

ROUNDS = int(os.environ.get("VPCCNI_DATAPATH_KILLS", "3"))
PODS = 8


def request(node: Node, op: str, index: int, netns: str) -> dict[str, Any]:
    return plugin_request(
        node.rpc,
        {
            "op": op,
            "cni": {
                "command": op.upper(),
                "container_id": f"churn-{index}",
                "netns": netns,
                "ifname": "eth0",
                "args": f"K8S_POD_NAMESPACE=churn;K8S_POD_NAME=p{index}",
            },
            "config": {"cniVersion": "1.0.0", "name": "aws-cni"},
        },
    )


def host_state(lab: Lab) -> tuple[set[str], set[str], int]:
    """Pod addresses with a rule 512, with a /32 route to an eni* veth, and the veth count."""
    rules = {
        line.split()[4]
        for line in ip("-n", lab.node, "rule").splitlines()
        if line.startswith("512:")
    }
    routes = {
        line.split()[0] for line in ip("-n", lab.node, "route").splitlines() if " dev eni" in line
    }
    veths = sum(1 for line in ip("-n", lab.node, "-o", "link").splitlines() if ": eni" in line)
    return rules, routes, veths


def test_kill_9_during_churn_converges_host_state(lab_node: tuple[Node, Lab]) -> None:
    node, lab = lab_node
    rng = random.Random(8)
    namespaces = [f"{lab.prefix}-c{i}" for i in range(PODS)]
    for name in namespaces:
        ip("netns", "add", name)
    try:
        for _ in range(ROUNDS):
            node.advance(31)
            node.wait_for(lambda: not node.introspect("/v1/explain")["actions"], what="settled")
            stop = threading.Event()

            def churn(stop: threading.Event = stop) -> None:
                while not stop.is_set():
                    index = rng.randrange(PODS)
                    op = rng.choice(["add", "del"])
                    try:
                        request(node, op, index, f"/var/run/netns/{namespaces[index]}")
                    except (OSError, ValueError):
                        return

            thread = threading.Thread(target=churn, daemon=True)
            thread.start()
            time.sleep(rng.uniform(0.2, 1.0))
            node.stop(signal.SIGKILL)
            stop.set()
            thread.join(timeout=15)
            node.start("--netns", lab.node)
            held = {p["address"] for p in node.introspect("/v1/pods")}
            rules, routes, veths = host_state(lab)
            assert rules == held, (rules, held)
            assert routes == held, (routes, held)
            assert veths == len(held)
    finally:
        for name in namespaces:
            ip("netns", "del", name)
