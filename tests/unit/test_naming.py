"""Datapath names and numbers match upstream's."""

from __future__ import annotations

from vpccni.core.naming import host_veth_name, route_table


def test_upstream_examples() -> None:
    assert (
        host_veth_name("kube-system", "coredns-57ff979f67-qqbdh", "x", "eth0") == "enib5faff8a083"
    )
    assert host_veth_name("default", "sample-pod", "x", "eth0") == "enicc21c2d7785"


def test_pods_without_names_hash_container_and_interface() -> None:
    a = host_veth_name("", "", "c1", "eth0")
    b = host_veth_name("", "", "c2", "eth0")
    assert a != b
    assert len(a) == 14
    assert host_veth_name("", "web", "c1", "eth0") == a


def test_route_tables() -> None:
    assert route_table(0) == 254
    assert route_table(1) == 2
    assert route_table(7) == 8
