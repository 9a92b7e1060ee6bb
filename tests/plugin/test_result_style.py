"""The ADD result's shape, network config key ``resultStyle`` (docs/plugin-api.md, "The result's
shape").

``upstream`` (the default) carries what upstream's DEL reads from prevResult after a rollback to
aws-node: no ``mac`` on the pod's entry and upstream's dummy entry last. ``plain`` is an ordinary
CNI result for runtimes that parse the MAC of every interface in a sandbox (podman): the pod's
entry carries the pod's MAC, and there is no dummy entry. The daemon shapes the result
(``vpccni.daemon.rpc.result_interfaces``, the one rule); both plugins refuse any other value
naming the key (7) before the daemon is asked, and convert either shape per ``cniVersion``.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.plugin.fake_daemon import HOST_MAC, POD_MAC, FakeDaemon
from tests.plugin.runtime import ALL_VERSIONS, POD_ARGS, VERSIONS, Runtime, network_config
from tests.plugin.test_contract import assert_error, assert_silent_success
from tests.plugin.upstream_del import MAIN, READINGS, dummy_name, teardown_from_prev_result
from vpccni.core.model import PodMeta
from vpccni.daemon.rpc import result_interfaces
from vpccni.plugin.cni import RESULT_STYLES, result_style
from vpccni.ports import WiredInterfaces

WIRED = WiredInterfaces("eni0123456789a", HOST_MAC, POD_MAC)
NETNS = "/var/run/netns/pod"
WITH_INTERFACES = [version for version in ALL_VERSIONS if version not in ("0.1.0", "0.2.0")]


def daemon_result(style: str, device_index: int = 1) -> dict[str, Any]:
    """A 1.0.0 result around the daemon's own interfaces for default/web-0."""
    meta = PodMeta("default", "web-0")
    interfaces = result_interfaces(
        style, WIRED, "eth0", NETNS, meta=meta, device_index=device_index
    )
    return {
        "cniVersion": "1.0.0",
        "interfaces": interfaces,
        "ips": [{"address": "10.0.2.7/32", "gateway": "169.254.1.1", "interface": 1}],
    }


def test_the_default_is_upstream() -> None:
    assert RESULT_STYLES[0] == "upstream"
    assert result_style({}) == "upstream"
    assert result_style({"resultStyle": "plain"}) == "plain"
    assert result_style({"resultStyle": "Plain"}) is None
    assert result_style({"resultStyle": None}) is None


def test_the_daemons_upstream_shape_is_what_upstreams_del_reads() -> None:
    result = daemon_result("upstream")
    assert result["interfaces"][1] == {"name": "eth0", "sandbox": NETNS}  # no mac: no table
    assert result["interfaces"][2]["name"] == dummy_name("default", "web-0")
    for reading in READINGS:
        assert teardown_from_prev_result(result, POD_ARGS, "eth0", reading) == [("10.0.2.7", 2)]
    on_primary = daemon_result("upstream", device_index=0)
    assert teardown_from_prev_result(on_primary, POD_ARGS, "eth0") == [("10.0.2.7", MAIN)]


def test_the_daemons_plain_shape_has_the_pod_mac_and_no_dummy() -> None:
    result = daemon_result("plain")
    assert result["interfaces"] == [
        {"name": WIRED.host_veth, "mac": HOST_MAC},
        {"name": "eth0", "mac": POD_MAC, "sandbox": NETNS},
    ]
    # the price: upstream's DEL cannot tear such a pod down from prevResult
    for reading in READINGS:
        assert teardown_from_prev_result(result, POD_ARGS, "eth0", reading) is None


@pytest.mark.parametrize("style", RESULT_STYLES)
def test_the_fake_daemon_answers_in_the_daemons_shapes(
    runtime: Runtime, fake_daemon: FakeDaemon, style: str
) -> None:
    """So the plugin tests below see what the real daemon sends (its pods sit on device 0)."""
    result = runtime.call("ADD", network_config("1.0.0", resultStyle=style)).json()
    expected = result_interfaces(
        style,
        WiredInterfaces("enic0ffee", HOST_MAC, POD_MAC),
        "eth0",
        runtime.netns,
        meta=PodMeta("default", "web-0"),
        device_index=0,
    )
    assert result["interfaces"] == expected


@pytest.mark.parametrize("version", WITH_INTERFACES)
def test_plain_results_carry_the_pod_mac_in_every_version(
    runtime: Runtime, fake_daemon: FakeDaemon, version: str
) -> None:
    outcome = runtime.call("ADD", network_config(version, resultStyle="plain"))
    assert outcome.status == 0, outcome
    assert fake_daemon.requests[-1]["config"]["resultStyle"] == "plain"  # the daemon shapes
    result = outcome.json()
    assert result["cniVersion"] == version
    pods = [entry for entry in result["interfaces"] if entry.get("sandbox")]
    assert pods == [{"name": "eth0", "mac": POD_MAC, "sandbox": runtime.netns}]
    assert not any(entry["name"].startswith("dummy") for entry in result["interfaces"])
    assert result["ips"][0]["interface"] == 1
    assert_silent_success(runtime.call("DEL", network_config(version, prevResult=result)))
    assert fake_daemon.state() == {}


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("config", [{}, {"resultStyle": "upstream"}], ids=["absent", "upstream"])
def test_upstream_results_are_what_upstreams_del_reads(
    runtime: Runtime, fake_daemon: FakeDaemon, version: str, config: dict[str, str]
) -> None:
    result = runtime.call("ADD", network_config(version, **config)).json()
    address = fake_daemon.pods[("aws-cni", "c0ffee", "eth0")]
    assert result["interfaces"][1] == {"name": "eth0", "sandbox": runtime.netns}
    torn = teardown_from_prev_result(result, POD_ARGS, "eth0", "current")
    assert torn == [(address, MAIN)]


BAD_STYLES: list[Any] = ["", "Plain", "plain ", "cni", "upstream\u0000", None, True, 0, ["plain"]]


@pytest.mark.parametrize("style", BAD_STYLES, ids=range(len(BAD_STYLES)))
def test_a_bad_result_style_is_refused_naming_the_key(
    runtime: Runtime, fake_daemon: FakeDaemon, style: Any
) -> None:
    body = assert_error(runtime.call("ADD", network_config("1.0.0", resultStyle=style)), 7, "1.0.0")
    assert body["msg"] == f"config key resultStyle {style!r} is not 'upstream' or 'plain'"
    assert "podman" in body["details"]
    assert "aws-node" in body["details"]
    assert fake_daemon.requests == []
    # DEL of a config ADD refuses: nothing can have been allocated for it
    assert_silent_success(runtime.call("DEL", network_config("1.0.0", resultStyle=style)))
