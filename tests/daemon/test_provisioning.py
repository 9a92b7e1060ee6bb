"""Upstream's provisioning variables, honoured by ``vpccni ipamd`` against the emulator.

``DISABLE_NETWORK_RESOURCE_PROVISIONING``, ``ENABLE_IMDS_ONLY_MODE``, ``MANAGE_UNTAGGED_ENI``,
``DISABLE_LEAKED_ENI_CLEANUP`` and ``ADDITIONAL_ENI_TAGS``: each test shows the variable's
effect in EC2's state and in the emulator's count of the requests it served
(``/admin/state`` ``stats``), which also counts the test's own out-of-band calls.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest

from tests.daemon.conftest import admin_state
from vpccni.cloud.lifecycle import rfc3339
from vpccni.core.aws_types import TAG_CREATED_AT, TAG_INSTANCE_ID

READS = ("Describe", "Get")


def requests(node: Any) -> Counter[str]:
    """The emulator's requests so far, by EC2 action."""
    stats = admin_state(node.server)["stats"]
    return Counter(
        {k.removeprefix("requests."): v for k, v in stats.items() if k.startswith("requests.")}
    )


def since(node: Any, before: Counter[str]) -> dict[str, int]:
    """The requests served since ``before``, by action."""
    after = requests(node)
    after.subtract(before)
    return {action: count for action, count in after.items() if count}


def changes(counts: dict[str, int]) -> dict[str, int]:
    """The calls among ``counts`` that change EC2 (not Describe*/Get*)."""
    return {a: n for a, n in counts.items() if not a.startswith(READS)}


def pod_address(reply: dict[str, Any]) -> str:
    return str(reply["result"]["ips"][0]["address"].split("/")[0])


def primary_eni(node: Any) -> str:
    return str(node.enis()[0].eni_id)


def eni_addresses(node: Any, eni_id: str) -> set[str]:
    reply = node.backend.client.describe_network_interfaces(NetworkInterfaceIds=[eni_id])
    found = reply["NetworkInterfaces"][0]["PrivateIpAddresses"]
    return {a["PrivateIpAddress"] for a in found if not a["Primary"]}


def eni_tags(node: Any, eni_id: str) -> dict[str, str]:
    reply = node.backend.client.describe_network_interfaces(NetworkInterfaceIds=[eni_id])
    return {t["Key"]: t["Value"] for t in reply["NetworkInterfaces"][0].get("TagSet", [])}


def eni_exists(node: Any, eni_id: str) -> bool:
    found = node.backend.client.describe_network_interfaces(
        Filters=[{"Name": "network-interface-id", "Values": [eni_id]}]
    )
    return bool(found["NetworkInterfaces"])


def attach_out_of_band(node: Any, subnet_id: str, ips: int, device: int) -> str:
    """An ENI another tool made and attached: no tags, ``ips`` secondary addresses."""
    client = node.backend.client
    eni = client.create_network_interface(SubnetId=subnet_id, SecondaryPrivateIpAddressCount=ips)
    eni_id = str(eni["NetworkInterface"]["NetworkInterfaceId"])
    client.attach_network_interface(
        NetworkInterfaceId=eni_id, InstanceId=node.instance_id, DeviceIndex=device
    )
    return eni_id


def add_when_ready(node: Any, pod: str) -> dict[str, Any]:
    """ADD ``pod``, repeated while the daemon says try again later."""
    reply: dict[str, Any] = node.wait_for_reply(lambda: node.add(pod))
    return reply


def pooled(node: Any) -> dict[str, int]:
    """The daemon's pool: ENI id -> addresses."""
    return {e["id"]: e["total"] for e in node.introspect("/v1/explain")["enis"]}


def ticked_without_provisioning(node: Any) -> bool:
    """The pool manager decided something and (provisioning off) said it did not do it."""
    reasons = node.introspect("/v1/explain")["reasons"]
    return any("provisioning is off" in r for r in reasons)


def test_disable_network_resource_provisioning_changes_nothing_in_ec2(make_node: Any) -> None:
    """No ENI, no assign, no release, no tag; an address assigned out of band serves a pod."""
    node = make_node("c5.large", DISABLE_NETWORK_RESOURCE_PROVISIONING="true", WARM_IP_TARGET="1")
    primary = primary_eni(node)
    before = requests(node)
    node.start()
    # the pool is empty and too low: the pool manager would assign, but does not
    node.wait_for(lambda: ticked_without_provisioning(node), what="a tick that skipped growth")
    assert not node.add("pod-1")["ok"]
    assert len(node.enis()) == 1
    assert eni_addresses(node, primary) == set()

    # another tool assigns nine addresses: reconcile adds them and pods get them
    node.backend.client.assign_private_ip_addresses(
        NetworkInterfaceId=primary, SecondaryPrivateIpAddressCount=9
    )
    assigned = eni_addresses(node, primary)
    reply = node.wait_for_reply(lambda: node.add("pod-1"))
    assert pod_address(reply) in assigned
    # 8 free > WARM_IP_TARGET 1: upstream would release 7 after 30 s; provisioning off keeps them
    node.advance(61)
    node.wait_for(lambda: ticked_without_provisioning(node), what="a tick that skipped release")
    time.sleep(1.0)  # several ticks (0.2 s) and a reconcile (1 s) on the daemon's side
    assert eni_addresses(node, primary) == assigned
    assert len(node.enis()) == 1
    assert TAG_INSTANCE_ID not in eni_tags(node, primary)  # not even tagged
    # the daemon sent EC2 reads only: the one change is the test's own assignment
    assert changes(since(node, before)) == {"AssignPrivateIpAddresses": 1}
    assert node.stop() == 0


def test_imds_only_mode_reads_no_eni_from_ec2(make_node: Any) -> None:
    """Start-up and reconcile read IMDS only; pods get the addresses IMDS lists."""
    node = make_node("c5.large", ENABLE_IMDS_ONLY_MODE="true")
    primary = primary_eni(node)
    subnet = node.enis()[0].subnet_id
    client = node.backend.client
    client.assign_private_ip_addresses(NetworkInterfaceId=primary, SecondaryPrivateIpAddressCount=2)
    secondary = attach_out_of_band(node, subnet, ips=1, device=1)
    on_node = eni_addresses(node, primary) | eni_addresses(node, secondary)
    before = requests(node)
    node.start()
    addresses = {pod_address(node.add(f"pod-{i}")) for i in range(3)}
    assert addresses == on_node
    assert not node.add("pod-3")["ok"]  # the three addresses are all there is

    # an address assigned out of band reaches the pool through IMDS alone
    client.assign_private_ip_addresses(
        NetworkInterfaceId=secondary, SecondaryPrivateIpAddressCount=1
    )
    reply = node.wait_for_reply(lambda: node.add("pod-3"))
    assert pod_address(reply) not in on_node
    node.advance(61)
    time.sleep(1.0)  # ticks and reconciles run with nothing to read from EC2
    # the daemon made no EC2 request at all: only the test's assignment reached the emulator
    assert since(node, before) == {"AssignPrivateIpAddresses": 1}
    assert node.stop() == 0


@pytest.mark.parametrize("manage_untagged", [False, True])
def test_manage_untagged_eni(make_node: Any, manage_untagged: bool) -> None:
    """false: an untagged ENI attached out of band is neither used nor freed; true (the
    default): it is adopted, tagged, and freed when the pool has a spare ENI."""
    env = {} if manage_untagged else {"MANAGE_UNTAGGED_ENI": "false"}
    node = make_node("c5.large", **env)
    primary = primary_eni(node)
    subnet = node.enis()[0].subnet_id
    node.backend.client.assign_private_ip_addresses(
        NetworkInterfaceId=primary, SecondaryPrivateIpAddressCount=9
    )
    foreign = attach_out_of_band(node, subnet, ips=9, device=1)
    foreign_addresses = eni_addresses(node, foreign)
    node.start()
    if manage_untagged:
        # 18 free >= (1 + 1) x 9: the adopted ENI is spare, freed once a minute old
        assert pooled(node) == {primary: 9, foreign: 9}
        assert eni_tags(node, foreign)[TAG_INSTANCE_ID] == node.instance_id
        node.advance(61)
        node.wait_for(lambda: not eni_exists(node, foreign), what="the adopted ENI freed")
        assert pooled(node) == {primary: 9}
    else:
        assert pooled(node) == {primary: 9}
        # pods: the primary's nine, then a new ENI (device 2); never the untagged one
        addresses = {pod_address(add_when_ready(node, f"pod-{i}")) for i in range(12)}
        assert not addresses & foreign_addresses
        node.advance(61)
        node.wait_for(lambda: len(node.enis()) == 3, what="a third ENI for the pods")
        time.sleep(1.0)
        assert foreign not in pooled(node)
        assert eni_exists(node, foreign)
        assert eni_addresses(node, foreign) == foreign_addresses
        assert eni_tags(node, foreign) == {}
    assert node.stop() == 0


@pytest.mark.parametrize("disabled", [True, False])
def test_disable_leaked_eni_cleanup(make_node: Any, disabled: bool) -> None:
    """A leaked ENI (our tags and description, available, 5 min old) survives the sweep with
    DISABLE_LEAKED_ENI_CLEANUP=true and is deleted by it by default."""
    env = {"DISABLE_LEAKED_ENI_CLEANUP": "true"} if disabled else {}
    node = make_node("c5.large", **env)
    subnet = node.enis()[0].subnet_id
    node.start("--cleanup-seconds", "1")
    leaked = node.backend.client.create_network_interface(
        SubnetId=subnet,
        Description="aws-K8S-i-0123456789abcdef0",
        TagSpecifications=[
            {
                "ResourceType": "network-interface",
                "Tags": [
                    {"Key": TAG_INSTANCE_ID, "Value": "i-0123456789abcdef0"},
                    {"Key": TAG_CREATED_AT, "Value": rfc3339(node.server.clock.now())},
                ],
            }
        ],
    )["NetworkInterface"]["NetworkInterfaceId"]
    node.advance(301)
    if disabled:
        time.sleep(2.0)  # ten ticks, two sweeps due on the emulator's clock
        assert eni_exists(node, leaked)
        assert "leaked-ENI cleanup is off: DISABLE_LEAKED_ENI_CLEANUP=true" in node.log()
    else:
        node.wait_for(lambda: not eni_exists(node, leaked), what="the leaked ENI deleted")
    assert node.stop() == 0


def test_additional_eni_tags_on_every_eni(make_node: Any) -> None:
    """The ENI the daemon creates carries ADDITIONAL_ENI_TAGS (and adopted ones get them)."""
    node = make_node("c5.large", ADDITIONAL_ENI_TAGS='{"team": "net"}')
    node.start()
    node.wait_for_reply(lambda: node.add("pod-1"))  # F = 8 < 9: a second ENI
    node.wait_for(lambda: len(node.enis()) == 2, what="a second ENI")
    created, primary = node.enis()[1], node.enis()[0]
    assert created.tags["team"] == "net"
    assert created.tags[TAG_INSTANCE_ID] == node.instance_id
    assert primary.tags["team"] == "net"  # tagged when adopted at start, as upstream's TagENI
    assert node.stop() == 0
