"""A real ipamd names why a pod gets no address: the ADD error, ``/v1/explain``, ``vpccni status``
and the ``vpccni_no_address_adds_total{reason}`` series agree on one cause with its numbers.

Each case drives the emulator into the condition (a full c5.large, MAX_ENI=1, released addresses
cooling, a /28 subnet, throttling or UnauthorizedOperation injected on AssignPrivateIpAddresses,
a slow attach, a first pass not run yet) and checks the code: 11 where a retry can succeed, 110
where it cannot without a change.
"""

from __future__ import annotations

import re
import time
import urllib.request
from typing import Any

from tests.cloud.conftest import free_port
from vpccni.cli.status_cmd import render

TRY_AGAIN, NEEDS_CHANGE = 11, 110


def fill(node: Any, count: int, prefix: str = "pod") -> None:
    for i in range(count):
        node.wait_for_reply(lambda i=i: node.add(f"{prefix}-{i}"), timeout=60)


def refused(node: Any, pod: str = "one-too-many") -> dict[str, Any]:
    reply = node.add(pod)
    assert not reply["ok"], reply
    error: dict[str, Any] = reply["error"]
    return error


def start_with_metrics(node: Any, *extra: str) -> int:
    port = free_port()
    node.start("--metrics-bind", f"127.0.0.1:{port}", *extra)
    return port


def no_address_count(port: int, reason: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    found = re.search(rf'^vpccni_no_address_adds_total\{{reason="{reason}"\}} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


def explained(node: Any) -> dict[str, Any]:
    cause: dict[str, Any] = node.introspect("/v1/explain")["no_address"]
    return cause


def test_node_full(make_node: Any) -> None:
    node = make_node("c5.large")
    port = start_with_metrics(node)
    fill(node, 27)
    error = refused(node)
    message = (
        "node full: 3 of 3 ENIs, 27 of 27 addresses assigned "
        "(max pods 29 includes 2 host-network pods)"
    )
    assert (error["code"], error["msg"]) == (NEEDS_CHANGE, message)
    assert "prefix delegation" in error["details"]
    assert explained(node)["reason"] == "node_full"
    status = render(node.introspect("/v1/explain"), node.introspect("/v1/pods"))
    assert f"next pod gets no address (needs a change): {message}" in status
    assert no_address_count(port, "node_full") == 1.0
    assert node.stop() == 0


def test_max_eni(make_node: Any) -> None:
    node = make_node("c5.large", MAX_ENI="1")
    node.start()
    fill(node, 9)
    error = refused(node)
    assert error["code"] == NEEDS_CHANGE
    assert error["msg"] == (
        "MAX_ENI reached: 1 of 1 ENIs (MAX_ENI=1; 3 allowed by the instance type), "
        "9 of 9 addresses assigned"
    )
    assert node.stop() == 0


def test_cooling_addresses_come_back(make_node: Any) -> None:
    node = make_node("c5.large", MAX_ENI="1")
    node.start()
    fill(node, 9)
    for i in range(4):
        assert node.delete(f"pod-{i}")["ok"]
    error = refused(node, "after-release")
    assert error["code"] == TRY_AGAIN
    assert re.fullmatch(
        r"addresses only cooling: 4 released, first reusable in (29|30) s "
        r"\(IP_COOLDOWN_PERIOD=30\)",
        error["msg"],
    ), error
    node.advance(31)
    assert node.add("after-release")["ok"]
    assert node.stop() == 0


def test_subnet_exhausted(make_node: Any) -> None:
    node = make_node("c5.large", cidr="10.0.1.0/28")  # 11 usable, the instance holds 1
    node.start()
    fill(node, 9)  # the primary ENI's 9; the second ENI needs 10 addresses, 1 is left
    node.wait_for(
        lambda: node.introspect("/v1/explain")["errors"].get("increaseIPPool"),
        what="the subnet to run out",
    )
    error = refused(node)
    assert error["code"] == TRY_AGAIN
    subnet = node.backend.ec2.describe_instance(node.instance_id).subnet_id
    assert re.fullmatch(
        rf"subnet exhausted: {subnet} has 1 free addresses \(InsufficientFreeAddressesInSubnet "
        r"at \d\d:\d\d:\d\d UTC, \d+ s ago\), growth paused until \d\d:\d\d:\d\d UTC "
        r"\(\d+ s more\)",
        error["msg"],
    ), error
    assert node.stop() == 0


def test_throttled(make_node: Any) -> None:
    knobs = {"faults": {"AssignPrivateIpAddresses": {"rate": 1.0, "code": "RequestLimitExceeded"}}}
    node = make_node("c5.large", knobs=knobs)
    port = start_with_metrics(node)
    node.wait_for(
        lambda: node.introspect("/v1/explain")["errors"].get("assign-ips"),
        what="a throttled assignment",
    )
    error = refused(node)
    assert error["code"] == TRY_AGAIN
    assert error["msg"].startswith(
        "EC2 refusing: throttled (RequestLimitExceeded on AssignPrivateIpAddresses, at "
    ), error
    assert no_address_count(port, "throttled") == 1.0
    assert node.stop() == 0


def test_unauthorized(make_node: Any) -> None:
    knobs = {"faults": {"AssignPrivateIpAddresses": {"rate": 1.0, "code": "UnauthorizedOperation"}}}
    node = make_node("c5.large", knobs=knobs)
    node.start()
    node.wait_for(
        lambda: node.introspect("/v1/explain")["errors"].get("assign-ips"),
        what="a refused assignment",
    )
    error = refused(node)
    assert error["code"] == NEEDS_CHANGE
    assert error["msg"].startswith(
        "EC2 refusing: UnauthorizedOperation on AssignPrivateIpAddresses (at "
    ), error
    assert "the node's IAM role lacks the permission" in error["msg"]
    assert "AmazonEKS_CNI_Policy" in error["details"]
    assert explained(node)["reason"] == "unauthorized"
    assert node.stop() == 0


def test_attaching(make_node: Any) -> None:
    node = make_node("c5.large", knobs={"attach_delay": 30.0})
    node.start()
    fill(node, 9)  # the first pod makes the pool create a second ENI, attached in 30 s
    node.wait_for(lambda: explained(node)["reason"] == "attaching", what="an ENI attaching")
    time.sleep(1.2)
    error = refused(node)
    assert error["code"] == TRY_AGAIN
    assert re.fullmatch(r"growing: ENI eni-[0-9a-f]+ attaching since [1-9]\d* s", error["msg"])
    node.advance(31)
    node.wait_for_reply(lambda: node.add("one-too-many"), timeout=30)
    assert node.stop() == 0


def test_starting(make_node: Any) -> None:
    node = make_node("c5.large")
    node.start("--tick-seconds", "600")  # no pool pass yet: the primary ENI has no addresses
    error = refused(node)
    assert error["code"] == TRY_AGAIN
    assert error["msg"] == (
        "the daemon is starting: the pool manager has not run its first pass yet "
        "(0 addresses in the pool, 0 assigned)"
    )
    assert node.stop() == 0
