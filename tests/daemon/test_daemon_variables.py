"""What a non-default value of one of upstream's ipamd variables does, in a real ``vpccni ipamd``
against the emulator: the listeners (``DISABLE_METRICS``, ``INTROSPECTION_BIND_ADDRESS``), the
start-up log (``MY_POD_NAME``), the warm pool (``WARM_ENI_TARGET``, ``WARM_IP_TARGET``,
``MINIMUM_IP_TARGET``, ``WARM_PREFIX_TARGET``, ``IP_COOLDOWN_PERIOD``) and the keys naming the
node's ENIConfig (``ENI_CONFIG_LABEL_DEF``, ``ENI_CONFIG_ANNOTATION_DEF``).

A c5.large holds 3 ENIs of 9 secondary addresses each; upstream's defaults keep one ENI's worth
(9) free, in the primary ENI (``tests/daemon/test_warm_pool.py``).
"""

from __future__ import annotations

import re
import socket
from pathlib import Path
from typing import Any

import pytest

from tests.cloud.conftest import free_port
from tests.daemon.test_custom_networking import LABEL, Network, write_eniconfigs
from tests.daemon.test_no_address import TRY_AGAIN, fill, refused
from vpccni.cli.status_cmd import fetch
from vpccni.errors import VpccniError

OWN_KEY = "example.com/eni-config"


def available(node: Any) -> int:
    return int(node.rpc({"op": "status"})["result"]["available"])


def settles_at(node: Any, addresses: list[int], prefixes: list[int] | None = None) -> None:
    """EC2 ends up with these secondary addresses (and /28 prefixes) per ENI."""

    def shape() -> tuple[list[int], list[int]]:
        enis = node.enis()
        return [len(e.secondary_ips) for e in enis], [len(e.prefixes) for e in enis]

    wanted = (addresses, prefixes if prefixes is not None else [0] * len(addresses))
    node.wait_for(lambda: shape() == wanted, what=f"addresses {wanted}")


def test_disable_metrics_opens_no_port(make_node: Any) -> None:
    node = make_node(DISABLE_METRICS="true")
    port = free_port()
    node.start("--metrics-bind", f"127.0.0.1:{port}")
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), 2):
        pass
    assert fetch(node.introspection, "/v1/enis")  # the rest still serves
    assert node.stop() == 0


def test_introspection_bind_address_wins_over_the_flag(make_node: Any) -> None:
    node = make_node()
    elsewhere = f"unix:{node.directory / 'elsewhere.sock'}"
    node.env["INTROSPECTION_BIND_ADDRESS"] = elsewhere
    node.start()  # with --introspection-bind unix:.../introspection.sock
    assert fetch(elsewhere, "/v1/enis")
    with pytest.raises(VpccniError, match="cannot reach ipamd's introspection endpoint"):
        fetch(node.introspection, "/v1/enis")
    assert node.stop() == 0


def test_my_pod_name_is_in_the_start_up_log(make_node: Any) -> None:
    node = make_node(MY_POD_NAME="aws-node-x7k2p")
    node.start()
    assert "INFO vpccni.ipamd running as pod aws-node-x7k2p" in node.log()
    assert node.stop() == 0


def test_warm_eni_target_keeps_that_many_enis_free(make_node: Any) -> None:
    node = make_node(WARM_ENI_TARGET="2")
    node.start()
    settles_at(node, [9, 9])  # two ENIs' worth free (the default: [9])
    node.wait_for(lambda: available(node) == 18, what="18 available")
    assert node.stop() == 0


def test_warm_ip_target_keeps_that_many_addresses_free(make_node: Any) -> None:
    node = make_node(WARM_IP_TARGET="3")
    node.start()
    settles_at(node, [3])
    node.wait_for(lambda: available(node) == 3, what="3 available")
    assert node.add("web-0")["ok"]
    settles_at(node, [4])  # one in use, three free again
    assert node.stop() == 0


def test_minimum_ip_target_is_the_pools_floor(make_node: Any) -> None:
    node = make_node(MINIMUM_IP_TARGET="12")
    node.start()
    settles_at(node, [9, 3])  # 12 in all: the primary ENI's 9, then a second ENI
    node.wait_for(lambda: available(node) == 12, what="12 available")
    assert node.stop() == 0


def test_warm_prefix_target_keeps_that_many_prefixes(make_node: Any) -> None:
    node = make_node(ENABLE_PREFIX_DELEGATION="true", WARM_PREFIX_TARGET="3")
    node.start()
    settles_at(node, [0], prefixes=[3])  # the default keeps one /28
    node.wait_for(lambda: available(node) == 48, what="48 available")
    assert node.stop() == 0


def test_ip_cooldown_period_holds_released_addresses(make_node: Any) -> None:
    node = make_node(MAX_ENI="1", IP_COOLDOWN_PERIOD="60")
    node.start()
    fill(node, 9)
    for i in range(4):
        assert node.delete(f"pod-{i}")["ok"]
    error = refused(node, "after-release")
    assert error["code"] == TRY_AGAIN
    assert re.fullmatch(
        r"addresses only cooling: 4 released, first reusable in (59|60) s "
        r"\(IP_COOLDOWN_PERIOD=60\)",
        error["msg"],
    ), error
    node.advance(31)  # past the default's 30 s: still cooling
    assert refused(node, "after-release")["code"] == TRY_AGAIN
    node.advance(30)
    assert node.add("after-release")["ok"]
    assert node.stop() == 0


def start_custom(node: Any, directory: Path, *flags: str) -> Network:
    """Custom networking with ENIConfigs ``az-a`` and ``az-b`` (two pod subnets); the node
    carries the default label naming ``az-b``."""
    net = Network(node)
    write_eniconfigs(directory, {"az-a": (net.pods_a, []), "az-b": (net.pods_a2, [])})
    node.env["AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG"] = "true"
    node.start("--eniconfig-dir", str(directory), "--node-label", f"{LABEL}=az-b", *flags)
    node.wait_for(lambda: len(node.enis()) == 2, what="a pod ENI")
    return net


def test_eni_config_label_def_picks_the_eniconfig(make_node: Any, tmp_path: Path) -> None:
    node = make_node(ENI_CONFIG_LABEL_DEF=OWN_KEY)
    net = start_custom(node, tmp_path / "eniconfigs", "--node-label", f"{OWN_KEY}=az-a")
    assert node.enis()[1].subnet_id == net.pods_a  # not az-b, which the default label names
    assert node.introspect("/v1/explain")["placement"]["eniconfig"] == {
        "name": "az-a",
        "named_by": f"label {OWN_KEY}",
        "subnet": net.pods_a,
    }
    assert node.stop() == 0


def test_eni_config_annotation_def_picks_the_eniconfig(make_node: Any, tmp_path: Path) -> None:
    node = make_node(ENI_CONFIG_ANNOTATION_DEF=OWN_KEY)
    net = start_custom(node, tmp_path / "eniconfigs", "--node-annotation", f"{OWN_KEY}=az-a")
    assert node.enis()[1].subnet_id == net.pods_a  # the annotation is read before the label
    assert node.introspect("/v1/explain")["placement"]["eniconfig"] == {
        "name": "az-a",
        "named_by": f"annotation {OWN_KEY}",
        "subnet": net.pods_a,
    }
    assert node.stop() == 0
