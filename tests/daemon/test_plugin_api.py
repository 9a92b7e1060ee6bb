"""The plugin API of a running daemon: every op, idempotency, durability, bad requests."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from vpccni.adapters.checkpoint_file import FileCheckpointStore


def raw(node: Any, payload: bytes, timeout: float = 15.0) -> dict[str, Any]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(timeout)
        client.connect(str(node.socket))
        client.sendall(payload)
        data = b""
        while not data.endswith(b"\n"):
            chunk = client.recv(65536)
            if not chunk:
                break
            data += chunk
    reply: dict[str, Any] = json.loads(data)
    return reply


@pytest.fixture
def node(make_node: Any) -> Any:
    node = make_node("c5.large")
    node.start()
    node.wait_for(lambda: node.rpc({"op": "status"})["result"]["available"] == 9, what="9 IPs")
    return node


def test_add_is_idempotent_and_durable_before_the_reply(node: Any) -> None:
    first = node.add("pod-a")
    again = node.add("pod-a")
    assert first["ok"]
    assert again["ok"]
    assert first["result"]["ips"] == again["result"]["ips"]
    address = first["result"]["ips"][0]["address"].split("/")[0]
    state = FileCheckpointStore(node.directory / "checkpoint").load()
    assert [str(a.address) for a in state.assignments.values()] == [address]
    pods = node.introspect("/v1/pods")
    assert [(p["name"], p["namespace"], p["address"]) for p in pods] == [
        ("pod-a", "default", address)
    ]


def test_concurrent_adds_get_distinct_addresses(node: Any) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(node.add, [f"pod-{i}" for i in range(8)]))
    addresses = [r["result"]["ips"][0]["address"] for r in replies if r["ok"]]
    assert len(addresses) == 8
    assert len(set(addresses)) == 8


def test_del_is_idempotent_and_by_address_only_for_the_same_container(node: Any) -> None:
    assert node.add("pod-a")["ok"]
    assert node.delete("pod-a")["ok"]
    assert node.delete("pod-a")["ok"]
    assert node.delete("never-existed")["ok"]
    held = node.add("pod-b")["result"]["ips"][0]["address"]

    def delete(container: str, ifname: str) -> dict[str, Any]:
        reply: dict[str, Any] = node.rpc(
            {
                "op": "del",
                "cni": {"command": "DEL", "container_id": container, "ifname": ifname, "netns": ""},
                "config": {"name": "aws-cni", "prevResult": {"ips": [{"address": held}]}},
            }
        )
        return reply

    assert delete("other-pod", "eth0")["ok"]  # another pod's prevResult never takes pod-b's IP
    assert [p["container_id"] for p in node.introspect("/v1/pods")] == ["pod-b"]
    assert delete("pod-b", "net1")["ok"]  # same container, key unknown: released by address
    assert node.introspect("/v1/pods") == []


def test_check_and_gc(node: Any) -> None:
    address = node.add("keep")["result"]["ips"][0]["address"]
    node.add("stale")
    check = {
        "op": "check",
        "cni": {
            "command": "CHECK",
            "container_id": "keep",
            "ifname": "eth0",
            "netns": str(node.directory / "netns"),
        },
        "config": {"name": "aws-cni", "prevResult": {"ips": [{"address": address}]}},
    }
    assert node.rpc(check)["ok"]
    check["config"]["prevResult"] = {"ips": [{"address": "10.9.9.9/32"}]}
    assert node.rpc(check)["error"]["code"] == 102
    gc = node.rpc(
        {
            "op": "gc",
            "cni": {"command": "GC"},
            "config": {
                "name": "aws-cni",
                "cni.dev/valid-attachments": [{"containerID": "keep", "ifname": "eth0"}],
            },
        }
    )
    assert [r["container_id"] for r in gc["result"]["released"]] == ["stale"]
    assert [p["container_id"] for p in node.introspect("/v1/pods")] == ["keep"]


def _add_request(
    container: str, ifname: str = "eth0", network: str = "aws-cni", args: str = ""
) -> bytes:
    request = {
        "version": 1,
        "op": "add",
        "cni": {"container_id": container, "ifname": ifname, "netns": "/proc/self/ns/net"},
        "config": {"name": network},
    }
    request["cni"]["args"] = args  # type: ignore[index]
    return json.dumps(request).encode() + b"\n"


@pytest.mark.parametrize(
    ("payload", "code", "message"),
    [
        (b"not json\n", 101, "not JSON"),
        (b"[1, 2]\n", 101, "not a JSON object"),
        (b'{"version": 2, "op": "add"}\n', 100, "unsupported plugin API version 2"),
        (b'{"version": 1, "op": "fly"}\n', 101, "unknown op"),
        (b'{"version": 1, "op": "add", "cni": 5, "config": {}}\n', 101, "'cni' must be an object"),
        (b'{"version": 1, "op": "add", "cni": {}, "config": {}}\n', 7, "no name"),
        (
            b'{"version": 1, "op": "add", "cni": {"ifname": "eth0"}, "config": {"name": "n"}}\n',
            4,
            "container_id",
        ),
        (
            b'{"version": 1, "op": "add", "cni": {"container_id": "c", "ifname": "eth0", '
            b'"netns": "/nonexistent"}, "config": {"name": "n"}}\n',
            4,
            "does not exist",
        ),
        (b"{" + b" " * (1024 * 1024 + 10) + b"}\n", 101, "larger than 1 MiB"),
        (b"[" * 100_000 + b"\n", 101, "nested too deeply"),
        (b'{"a": ' * 50_000 + b"\n", 101, "nested too deeply"),
        (b'{"version": 1, "op": "status", "n": ' + b"7" * 5000 + b"}\n", 101, "5000 digits"),
        (b'{"version": 1, "op": "status", "n": 1e999}\n', 101, "out of range"),
        (b'{"version": 1, "op": "status", "n": NaN}\n', 101, "NaN is not JSON"),
        (b'{"version": true, "op": "status"}\n', 100, "version True"),
        (b'{"version": 1.0, "op": "status"}\n', 100, "version 1.0"),
        (_add_request("x" * 300_000), 4, "CNI_CONTAINERID is longer than 200 bytes"),
        (_add_request("../../etc"), 4, "CNI_CONTAINERID must be letters, digits"),
        (_add_request("-leading-dash"), 4, "CNI_CONTAINERID must be letters, digits"),
        (_add_request("ok", ifname="e" * 16), 4, "CNI_IFNAME is longer than 15 bytes"),
        (_add_request("ok", network="a/b"), 7, "invalid network name"),
        (_add_request("ok", args="K8S_POD_NAME=" + "p" * 300), 4, "K8S_POD_NAME"),
    ],
)
def test_bad_requests_get_structured_errors(
    node: Any, payload: bytes, code: int, message: str
) -> None:
    reply = raw(node, payload)
    assert reply["ok"] is False
    assert reply["error"]["code"] == code
    assert message in reply["error"]["msg"] + reply["error"].get("details", "")
    assert node.introspect("/v1/pods") == []


def add_retrying(node: Any, pod: str, seconds: float) -> dict[str, Any]:
    """ADD as kubelet does: retry while the daemon says try again later."""
    deadline = time.monotonic() + seconds
    while True:
        reply: dict[str, Any] = node.add(pod)
        if reply["ok"] or time.monotonic() > deadline:
            return reply
        assert reply["error"]["code"] == 11, reply
        time.sleep(0.1)


def test_an_empty_pool_says_try_again_later(make_node: Any) -> None:
    node = make_node("c5.large", MAX_ENI="1", WARM_ENI_TARGET="0", WARM_IP_TARGET="1")
    node.start()
    node.wait_for(lambda: node.rpc({"op": "status"})["result"]["available"] >= 1, what="an IP")
    quick = [node.add(f"quick{i}") for i in range(3)]
    assert quick[0]["ok"]
    assert any(not r["ok"] and r["error"]["code"] == 11 for r in quick[1:])
    granted = [add_retrying(node, f"p{i}", 5) for i in range(8)]
    assert all(r["ok"] for r in granted[:7])  # one ENI (MAX_ENI=1) holds 9 secondary IPs
    refused = node.add("one-too-many")  # MAX_ENI=1 is full: no retry helps (docs/plugin-api.md)
    assert refused["error"]["code"] == 110
    assert refused["error"]["msg"].startswith("MAX_ENI reached: 1 of 1 ENIs"), refused
    reasons = node.introspect("/v1/explain")["reasons"]
    assert any("max ENI limit reached" in r for r in reasons), reasons


def test_spooled_dels_are_replayed_at_start(make_node: Any) -> None:
    node = make_node("c5.large")
    node.start()
    node.wait_for(lambda: node.rpc({"op": "status"})["result"]["available"] == 9, what="9 IPs")
    address = node.add("gone")["result"]["ips"][0]["address"].split("/")[0]
    node.add("kept")
    assert node.stop() == 0
    spool: Path = node.directory / "spool"
    spool.mkdir()
    record = {
        "version": 1,
        "network": "aws-cni",
        "container_id": "gone",
        "ifname": "eth0",
        "ips": [address],
        "spooled_at": time.time(),
    }
    (spool / "gone-eth0.json").write_text(json.dumps(record))
    (spool / "broken-eth0.json").write_text("{")
    node.start()
    assert [p["container_id"] for p in node.introspect("/v1/pods")] == ["kept"]
    assert sorted(p.name for p in spool.iterdir()) == ["bad"]
    assert [p.name for p in (spool / "bad").iterdir()] == ["broken-eth0.json"]


def test_socket_is_root_only(node: Any) -> None:
    assert node.socket.stat().st_mode & 0o777 == 0o600


def test_pods_show_container_ids_only_on_the_root_only_socket(make_node: Any) -> None:
    from tests.cloud.conftest import free_port
    from vpccni.cli.status_cmd import fetch

    node = make_node("c5.large")
    node.start()
    node.wait_for(lambda: node.rpc({"op": "status"})["result"]["available"] == 9, what="9 IPs")
    assert node.add("pod-a")["ok"]
    private = node.introspect("/v1/pods")
    assert [(p["container_id"], p["ifname"], p["name"]) for p in private] == [
        ("pod-a", "eth0", "pod-a")
    ]
    introspection = node.directory / "introspection.sock"
    assert introspection.stat().st_mode & 0o777 == 0o600
    assert node.stop() == 0
    assert not introspection.exists()  # removed at SIGTERM, as the plugin socket
    assert not node.socket.exists()
    port = free_port()
    node.start("--introspection-bind", f"127.0.0.1:{port}")
    public = fetch(f"127.0.0.1:{port}", "/v1/pods")
    assert [(p["container_id"], p["ifname"], p["name"]) for p in public] == [("", "", "pod-a")]
    enis = fetch(f"127.0.0.1:{port}", "/v1/enis")["0"]["ENIs"]
    keys = [
        ip["IPAMKey"]
        for eni in enis.values()
        for cidr in eni["AvailableIPv4Cidrs"].values()
        for ip in cidr["IPAddresses"].values()
    ]
    assert keys == [{"networkName": "aws-cni", "containerID": "", "ifName": ""}]
