"""`vpccni status` and the Prometheus endpoint of a running daemon."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.request
from typing import Any

from tests.cloud.conftest import free_port


def status(node: Any, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "vpccni.cli.main",
            "status",
            "--introspection",
            node.introspection,
            *extra,
        ],
        capture_output=True,
        text=True,
        check=False,
        env=node.env,
    )


def test_status_shows_enis_addresses_pods_and_why(make_node: Any) -> None:
    node = make_node("c5.large")
    node.start()
    node.wait_for(lambda: node.rpc({"op": "status"})["result"]["available"] == 9, what="9 IPs")
    assert node.add("web-0")["ok"]
    node.wait_for(lambda: len(node.enis()) == 2, what="the warm ENI")
    node.wait_for(lambda: not node.introspect("/v1/explain")["actions"], what="pool settled")
    done = status(node)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "mode secondary-ip: 18 addresses, 1 assigned, 17 available" in out
    rows = [line.split() for line in out.splitlines() if line.startswith("eni-")]
    # ENI, device, primary, subnet, subnet free, for pods, CIDRs, addresses, assigned, ...
    subnet = node.enis()[0].subnet_id
    assert [(r[1], r[3], r[5], r[7], r[8]) for r in rows] == [
        ("0", subnet, "yes", "9", "1"),
        ("1", subnet, "yes", "9", "0"),
    ]
    assert "pool not growing: WARM_ENI_TARGET=1: 17 free, want 9" in out
    body = json.loads(status(node, "--format", "json").stdout)
    assert body["pods"][0]["name"] == "web-0"
    assert body["pool"]["total"] == 18


def test_status_without_a_daemon_is_a_clear_error(tmp_path: Any) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "vpccni.cli.main",
            "status",
            "--introspection",
            f"unix:{tmp_path}/none.sock",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert "cannot reach ipamd's introspection endpoint" in done.stderr
    assert "Traceback" not in done.stderr


def test_metrics_have_upstream_names_and_ours(make_node: Any) -> None:
    node = make_node("c5.large")
    port = free_port()
    node.start("--metrics-bind", f"127.0.0.1:{port}")
    node.wait_for(lambda: node.rpc({"op": "status"})["result"]["available"] == 9, what="9 IPs")
    assert node.add("web-0")["ok"]
    node.wait_for(lambda: len(node.enis()) == 2, what="the warm ENI")

    def scrape() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
            return str(reply.read().decode())

    node.wait_for(lambda: "awscni_eni_allocated 2.0" in scrape(), what="gauges updated")
    text = scrape()
    for name in (
        "awscni_add_ip_req_count 1.0",
        "awscni_total_ip_addresses 18.0",
        "awscni_assigned_ip_addresses 1.0",
        "awscni_eni_max 3.0",
        "awscni_ip_max 27.0",
        'awscni_ec2api_req_count{fn="CreateNetworkInterface"} 1.0',
        "vpccni_time_to_ip_seconds_count 1.0",
        "vpccni_pods_waiting_for_ip 0.0",
    ):
        assert name in text, name
    assert re.search(r'awscni_build_info\{goversion="cpython[\d.]+",version="0\.1\.0"\} 1\.0', text)
    # One series per CIDR in the datastore (18 /32s on two ENIs), the pod's holds 1.
    per_cidr = re.findall(r'^awscni_assigned_ip_per_cidr\{cidr="([\d./]+)"\} (\d+)\.0$', text, re.M)
    assert len(per_cidr) == 18
    assert sorted(int(count) for _, count in per_cidr) == [0] * 17 + [1]
    assert re.search(r'vpccni_subnet_free_addresses\{subnet="subnet-[0-9a-f]+"\} \d+', text)
    introspection = node.introspect("/v1/enis")
    assert introspection["0"]["TotalIPs"] == 18
    assert node.introspect("/v1/ipamd-env-settings")["WARM_ENI_TARGET"] == 1
    assert node.introspect("/v1/networkutils-env-settings")["AWS_VPC_ENI_MTU"] == 9001
    assert set(node.introspect("/")["AvailableCommands"]) >= {"/v1/enis", "/v1/explain"}
