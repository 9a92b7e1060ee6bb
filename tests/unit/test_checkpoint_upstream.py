"""Importing the upstream amazon-vpc-cni-k8s checkpoint (vpc-cni-ipam/1)."""

from __future__ import annotations

import json
from ipaddress import IPv4Address

import pytest

from vpccni.core.checkpoint import CheckpointCorrupt
from vpccni.core.checkpoint_upstream import import_upstream
from vpccni.core.model import Assignment, PodKey, PodMeta

EXAMPLE = (
    b'{"version":"vpc-cni-ipam/1","allocations":[{"networkName":"aws-cni","containerID":"<id>",'
    b'"ifName":"eth0","ipv4":"10.0.1.5","allocationTimestamp":1700000000000000000,'
    b'"metadata":{"k8sPodNamespace":"default","k8sPodName":"p","interfacesCount":1}}]}'
)


def upstream(*allocations: dict[str, object]) -> bytes:
    return json.dumps({"version": "vpc-cni-ipam/1", "allocations": list(allocations)}).encode()


def test_the_documented_example_imports() -> None:
    imported = import_upstream(EXAMPLE)
    key = PodKey("aws-cni", "<id>", "eth0")
    expected = Assignment(key, IPv4Address("10.0.1.5"), PodMeta("default", "p"), 1700000000.0)
    assert imported.state.assignments == {key: expected}
    assert imported.state.cooldowns == {}
    assert (imported.imported, imported.skipped_ipv6, imported.warnings) == (1, 0, ())


def test_nanoseconds_become_seconds() -> None:
    entry = {"networkName": "n", "containerID": "c", "ifName": "eth0", "ipv4": "10.0.0.1"}
    imported = import_upstream(upstream({**entry, "allocationTimestamp": 1700000000123456789}))
    (assignment,) = imported.state.assignments.values()
    assert assignment.assigned_at == 1700000000123456789 / 1e9
    assert abs(assignment.assigned_at - 1700000000.123456789) < 1e-6


def test_omitted_fields_mean_empty_and_ipv6_only_entries_are_skipped_with_a_warning() -> None:
    imported = import_upstream(
        upstream(
            {"networkName": "aws-cni", "containerID": "a", "ifName": "eth0", "ipv4": "10.0.0.1"},
            {"networkName": "aws-cni", "containerID": "b", "ifName": "eth0", "ipv6": "2001:db8::1"},
            {"networkName": "aws-cni", "containerID": "c", "ifName": "eth0"},
        )
    )
    (assignment,) = imported.state.assignments.values()
    assert assignment.meta == PodMeta("", "")
    assert assignment.assigned_at == 0.0
    assert (imported.imported, imported.skipped_ipv6, imported.skipped_empty) == (1, 1, 1)
    assert "skipped 1 IPv6-only allocation(s) (aws-cni/b/eth0)" in imported.warnings[0]
    assert "without any address (aws-cni/c/eth0)" in imported.warnings[1]


def test_null_allocations_mean_none() -> None:
    assert import_upstream(b'{"version":"vpc-cni-ipam/1","allocations":null}').imported == 0


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (EXAMPLE.replace(b"vpc-cni-ipam/1", b"vpc-cni-ipam/2"), "vpccni imports only"),
        (b'{"allocations":[]}', "version is None"),
        (EXAMPLE[:-5], "not valid JSON"),
        (b"\xff\xfe garbage", "not valid JSON"),
        (b"[]", "top level is not a JSON object"),
        (EXAMPLE.replace(b"10.0.1.5", b"10.0.1.500"), "allocation 1: ipv4"),
        (EXAMPLE.replace(b"1700000000000000000", b"1.7e18"), "integer nanoseconds"),
        (
            upstream(
                {"networkName": "n", "containerID": "a", "ifName": "e", "ipv4": "10.0.0.1"},
                {"networkName": "n", "containerID": "b", "ifName": "e", "ipv4": "10.0.0.1"},
            ),
            "allocation 2 repeats",
        ),
    ],
)
def test_unreadable_upstream_files_are_refused_clearly(data: bytes, words: str) -> None:
    with pytest.raises(CheckpointCorrupt, match=words) as caught:
        import_upstream(data, source="/var/run/aws-node/ipam.json")
    message = str(caught.value)
    assert message.startswith("IPAM checkpoint /var/run/aws-node/ipam.json is unreadable")
    assert "left untouched" in message
