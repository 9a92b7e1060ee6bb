"""Rollback: upstream's ``aws-cni`` DEL can tear down a pod from the ADD result vpccni printed.

The reading of upstream's DEL is written down in ``tests/plugin/upstream_del.py`` (we cannot run
its binary). It is first checked on results shaped as upstream's own plugin prints them, then
applied to the results both our plugins print, in every version a runtime caches for DEL (0.4.0
and later: libcni sends no prevResult below 0.4.0). The lab half - the addresses and tables it
yields are the pod's real rules, and deleting them leaves nothing - is
``tests/netns/test_cni_versions.py``.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.plugin.fake_daemon import FakeDaemon
from tests.plugin.runtime import POD_ARGS, VERSIONS, Runtime, network_config
from tests.plugin.upstream_del import MAIN, READINGS, dummy_name, teardown_from_prev_result
from vpccni.core.model import PodMeta
from vpccni.daemon.rpc import upstream_dummy

DUMMY = dummy_name("default", "web-0")


def upstreams_result(version: str, table: str, **dummy: str) -> dict[str, Any]:
    """A result as upstream's plugin prints it for default/web-0 on device 1 (table 2)."""
    return {
        "cniVersion": version,
        "interfaces": [
            {"name": "eni" + DUMMY[5:]},
            {"name": "eth0", "sandbox": "/var/run/netns/p", **({"mac": table} if table else {})},
            {"name": DUMMY, "mac": "0", "sandbox": "1", **dummy},
        ],
        "ips": [{"version": "4", "interface": 1, "address": "10.0.2.7/32"}],
    }


def test_the_reading_reads_upstreams_own_results() -> None:
    # the shipped revision: table in the container entry's mac, count from the list's length
    shipped = upstreams_result("0.4.0", "2")
    assert teardown_from_prev_result(shipped, POD_ARGS, "eth0", "current") == [("10.0.2.7", 2)]
    assert teardown_from_prev_result(shipped, POD_ARGS, "eth0", "legacy") == [("10.0.2.7", 2)]
    # the pciID revision: count in the dummy's socketPath, table in pciID, 1.0.0+ only
    pci = upstreams_result("1.0.0", "", socketPath="1")
    pci["interfaces"][1]["pciID"] = "2"
    assert teardown_from_prev_result(pci, POD_ARGS, "eth0", "pci") == [("10.0.2.7", 2)]
    assert (
        teardown_from_prev_result({**pci, "cniVersion": "0.4.0"}, POD_ARGS, "eth0", "pci") is None
    )
    # another pod's DEL, a branch-ENI pod (VLAN id in the dummy's mac), a MAC where a table goes
    assert teardown_from_prev_result(shipped, "K8S_POD_NAME=other", "eth0") is None
    branch = copy.deepcopy(shipped)
    branch["interfaces"][2]["mac"] = "5"
    assert teardown_from_prev_result(branch, POD_ARGS, "eth0") is None
    with_mac = upstreams_result("1.0.0", "02:00:00:00:00:02")
    assert teardown_from_prev_result(with_mac, POD_ARGS, "eth0", "current") is None


def test_the_daemons_dummy_is_upstreams() -> None:
    assert upstream_dummy(PodMeta("default", "web-0"), 1) == {
        "name": DUMMY,
        "mac": "0",
        "sandbox": "1",
    }
    # no pod name (cnitool, podman): upstream hashes "." all the same
    assert upstream_dummy(PodMeta("", ""), 0)["name"] == dummy_name("", "")


@pytest.mark.parametrize("version", VERSIONS)
def test_upstreams_del_tears_down_from_our_result(
    runtime: Runtime, fake_daemon: FakeDaemon, version: str
) -> None:
    added = runtime.call("ADD", network_config(version))
    assert added.status == 0, added
    result = added.json()
    address = fake_daemon.pods[("aws-cni", "c0ffee", "eth0")]
    for reading in READINGS:
        torn = teardown_from_prev_result(result, POD_ARGS, "eth0", reading)
        if reading == "pci" and version == "0.4.0":
            assert torn is None  # that revision cannot read a 0.4.0 prevResult, even its own
        else:
            assert torn == [(address, MAIN)], reading  # the fake's pods sit on device 0
    # the same DEL through our plugin still releases the address
    config = network_config(version, prevResult=result)
    assert runtime.call("DEL", config).status == 0
    assert fake_daemon.state() == {}


def test_a_pod_mac_in_the_container_entry_would_defeat_upstreams_del(
    runtime: Runtime, fake_daemon: FakeDaemon
) -> None:
    """Why the container entry carries no ``mac``: upstream reads a non-empty one as a table."""
    result = runtime.call("ADD", network_config("1.0.0")).json()
    result["interfaces"][1]["mac"] = "02:00:00:00:00:02"
    assert teardown_from_prev_result(result, POD_ARGS, "eth0", "current") is None
