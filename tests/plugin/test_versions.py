"""Every cniVersion upstream's plugin speaks, and upstream's conflist keys, against both plugins.

Upstream's plugin answers VERSION with the CNI library's whole list (0.1.0 to 1.1.0) and prints
its result in the config's version, as the library converts: 0.3.x like 0.4.0 (a ``version``
per IP; interfaces with ``name``, ``mac``, ``sandbox`` only), 0.1.0 / 0.2.0 as ``ip4`` / ``ip6``
(the first address of each family, its gateway and that family's routes; no interfaces). CHECK
needs 0.4.0, as the library's skel enforces. Upstream's conflist writes ``mtu`` as a string and
``vethPrefix``: both are read here, and anything else is refused with the key's name (7), never
ignored.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.plugin.fake_daemon import FakeDaemon
from tests.plugin.runtime import ALL_VERSIONS, Runtime, exec_plugin, network_config
from tests.plugin.test_contract import assert_error, assert_silent_success

GATEWAY = "169.254.1.1"
OLD = ("0.1.0", "0.2.0", "0.3.0", "0.3.1")


def test_version_lists_what_upstream_lists(plugin: Any) -> None:
    outcome = exec_plugin(plugin, {"CNI_COMMAND": "VERSION"}, b"")
    assert outcome.json() == {"cniVersion": "1.1.0", "supportedVersions": list(ALL_VERSIONS)}


@pytest.mark.parametrize("version", ["0.3.0", "0.3.1"])
def test_0_3_x_add_prints_a_0_3_x_result_and_del_releases(
    runtime: Runtime, fake_daemon: FakeDaemon, version: str
) -> None:
    outcome = runtime.call("ADD", network_config(version))
    assert outcome.status == 0, outcome
    result = outcome.json()
    assert list(result) == ["cniVersion", "interfaces", "ips", "routes", "dns"]
    assert result["cniVersion"] == version
    address = fake_daemon.pods[("aws-cni", "c0ffee", "eth0")]
    assert result["ips"] == [
        {"version": "4", "interface": 1, "address": f"{address}/32", "gateway": GATEWAY}
    ]
    assert all(set(item) <= {"name", "mac", "sandbox"} for item in result["interfaces"])
    assert result["interfaces"][1] == {"name": "eth0", "sandbox": runtime.netns}
    assert result["interfaces"][2]["name"].startswith("dummy")
    assert result["routes"] == [{"dst": "0.0.0.0/0", "gw": GATEWAY}]
    assert_silent_success(runtime.call("DEL", network_config(version)))
    assert fake_daemon.state() == {}


@pytest.mark.parametrize("version", ["0.1.0", "0.2.0"])
def test_legacy_add_prints_ip4_as_the_cni_library_converts(
    runtime: Runtime, fake_daemon: FakeDaemon, version: str
) -> None:
    outcome = runtime.call("ADD", network_config(version))
    assert outcome.status == 0, outcome
    address = fake_daemon.pods[("aws-cni", "c0ffee", "eth0")]
    assert outcome.json() == {
        "cniVersion": version,
        "ip4": {
            "ip": f"{address}/32",
            "gateway": GATEWAY,
            "routes": [{"dst": "0.0.0.0/0", "gw": GATEWAY}],
        },
        "dns": {},
    }
    assert list(outcome.json()) == ["cniVersion", "ip4", "dns"]
    assert_silent_success(runtime.call("DEL", network_config(version)))
    assert fake_daemon.state() == {}


@pytest.mark.parametrize("version", OLD)
def test_check_needs_0_4_0_as_upstreams_library_says(
    runtime: Runtime, fake_daemon: FakeDaemon, version: str
) -> None:
    config = network_config(version, prevResult={"ips": [{"address": "10.0.1.2/32"}]})
    body = assert_error(runtime.call("CHECK", config), 1, version)
    assert body["msg"] == f"config version {version} does not allow CHECK"
    assert body["details"] == "CHECK needs cniVersion 0.4.0 or later"
    assert fake_daemon.requests == []


@pytest.mark.parametrize("mtu", ["9001", "576", "1500", 1500, "09001"])
def test_mtu_as_upstreams_conflist_writes_it_reaches_the_daemon(
    runtime: Runtime, fake_daemon: FakeDaemon, mtu: Any
) -> None:
    outcome = runtime.call("ADD", network_config("0.4.0", mtu=mtu))
    assert outcome.status == 0, outcome
    assert fake_daemon.requests[-1]["config"]["mtu"] == mtu  # forwarded as given


BAD_MTUS: list[Any] = [
    "575",
    "9002",
    "",
    " 9001",
    "9001 ",
    "+9001",
    "-1",
    "9_001",
    "1e3",
    "\u0669001",
    "12345678901",
    9002,
    0,
    9001.0,
    True,
    None,
    [9001],
]


@pytest.mark.parametrize("mtu", BAD_MTUS, ids=range(len(BAD_MTUS)))
def test_a_bad_mtu_is_refused_naming_the_key(
    runtime: Runtime, fake_daemon: FakeDaemon, mtu: Any
) -> None:
    body = assert_error(runtime.call("ADD", network_config("1.0.0", mtu=mtu)), 7, "1.0.0")
    assert body["msg"] == f"config key mtu {mtu!r} is not a pod MTU"
    assert "576 to 9001" in body["details"]
    assert fake_daemon.requests == []
    # DEL of a config ADD refuses: nothing can have been allocated for it
    assert_silent_success(runtime.call("DEL", network_config("1.0.0", mtu=mtu)))


@pytest.mark.parametrize("prefix", ["eni", "a", "ab_.", "v-0"])
def test_a_veth_prefix_is_accepted_and_passed_to_the_daemon(
    runtime: Runtime, fake_daemon: FakeDaemon, prefix: str
) -> None:
    outcome = runtime.call("ADD", network_config("0.4.0", vethPrefix=prefix))
    assert outcome.status == 0, outcome
    assert fake_daemon.requests[-1]["config"]["vethPrefix"] == prefix


BAD_PREFIXES: list[tuple[Any, str]] = [
    ("abcde", "must be 1 to 4 characters long"),
    ("", "must be 1 to 4 characters long"),
    ("eth", "is reserved (eth, lo and vlan name the node's own links)"),
    ("lo", "is reserved (eth, lo and vlan name the node's own links)"),
    ("vlan", "is reserved (eth, lo and vlan name the node's own links)"),
    ("a b", "may hold only letters, digits, '_', '.' and '-'"),
    ("e/n", "may hold only letters, digits, '_', '.' and '-'"),
    ("\u00e9ni", "may hold only letters, digits, '_', '.' and '-'"),
    (5, "is not a string"),
    (None, "is not a string"),
]


@pytest.mark.parametrize(("prefix", "why"), BAD_PREFIXES, ids=range(len(BAD_PREFIXES)))
def test_a_bad_veth_prefix_is_refused_naming_the_key(
    runtime: Runtime, fake_daemon: FakeDaemon, prefix: Any, why: str
) -> None:
    body = assert_error(runtime.call("ADD", network_config("1.0.0", vethPrefix=prefix)), 7, "1.0.0")
    assert body["msg"] == f"config key vethPrefix {prefix!r} {why}"
    assert fake_daemon.requests == []
