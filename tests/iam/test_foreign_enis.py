"""The tag-scoped policy keeps the daemon to its own cluster's ENIs, and the daemon copes.

Another cluster's ENI attached to this node, and another cluster's ENI that looks leaked
(unattached, our description and instance tag, old): the policy denies every mutation on them
(checked with DryRun, which changes nothing), and a daemon running under it leaves both alone -
not adopted, never tagged, filled, freed or deleted - while its pool grows on ENIs of its own,
with the few denied calls its backoff allows over two hours.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.iam.conftest import (
    CLUSTER,
    MAX_PODS,
    explain,
    sent,
    set_policy,
    shipped_policy,
    stats,
)
from vpccni.cloud.lifecycle import rfc3339
from vpccni.core.aws_types import (
    ENI_DESCRIPTION_PREFIX,
    TAG_CLUSTER_NAME,
    TAG_CREATED_AT,
    TAG_INSTANCE_ID,
)

OTHER = "other-cluster"


def create_foreign_eni(node: Any, tags: dict[str, str], description: str) -> str:
    client = node.backend.client
    subnet = node.backend.ec2.describe_instance(node.instance_id).subnet_id
    reply = client.create_network_interface(
        SubnetId=subnet,
        Description=description,
        SecondaryPrivateIpAddressCount=2,
        TagSpecifications=[
            {
                "ResourceType": "network-interface",
                "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
            }
        ],
    )
    return str(reply["NetworkInterface"]["NetworkInterfaceId"])


def answer(call: Any, **params: Any) -> str:
    """The error code EC2 answers with (DryRunOperation: the DryRun request would succeed)."""
    with pytest.raises(ClientError) as raised:
        call(**params)
    return str(raised.value.response["Error"]["Code"])


def mutations(client: Any, eni: Any, attachment: str | None, ours: bool) -> dict[str, str]:
    """Every mutation the daemon makes, tried on ``eni``: action -> EC2's answer. With DryRun
    where EC2 takes it; Assign/UnassignPrivateIpAddresses take none, so they are tried for real
    on another cluster's ENIs only (a denied call changes nothing)."""
    eni_id = eni.eni_id
    answers = {
        "ModifyNetworkInterfaceAttribute": answer(
            client.modify_network_interface_attribute,
            DryRun=True,
            NetworkInterfaceId=eni_id,
            Description={"Value": "mine now"},
        ),
        "DeleteNetworkInterface": answer(
            client.delete_network_interface, DryRun=True, NetworkInterfaceId=eni_id
        ),
        "CreateTags": answer(
            client.create_tags,
            DryRun=True,
            Resources=[eni_id],
            Tags=[{"Key": TAG_CLUSTER_NAME, "Value": CLUSTER}],
        ),
    }
    if attachment is not None:
        answers["DetachNetworkInterface"] = answer(
            client.detach_network_interface, DryRun=True, AttachmentId=attachment
        )
    if not ours:
        answers["AssignPrivateIpAddresses"] = answer(
            client.assign_private_ip_addresses,
            NetworkInterfaceId=eni_id,
            SecondaryPrivateIpAddressCount=1,
        )
        answers["UnassignPrivateIpAddresses"] = answer(
            client.unassign_private_ip_addresses,
            NetworkInterfaceId=eni_id,
            PrivateIpAddresses=[str(eni.secondary_ips[0])],
        )
    return answers


def test_another_clusters_enis_are_out_of_reach_and_left_alone(make_node: Any) -> None:
    node = make_node("c5.large")
    client = node.backend.client
    instance = client.describe_instances(InstanceIds=[node.instance_id])["Reservations"][0][
        "Instances"
    ][0]
    primary = instance["NetworkInterfaces"][0]["NetworkInterfaceId"]
    client.create_tags(
        Resources=[node.instance_id],
        Tags=[{"Key": f"kubernetes.io/cluster/{CLUSTER}", "Value": "owned"}],
    )
    client.create_tags(Resources=[primary], Tags=[{"Key": TAG_CLUSTER_NAME, "Value": CLUSTER}])
    attached = create_foreign_eni(node, {TAG_CLUSTER_NAME: OTHER, "team": "db"}, "a database")
    attachment = client.attach_network_interface(
        NetworkInterfaceId=attached, InstanceId=node.instance_id, DeviceIndex=1
    )["AttachmentId"]
    now = time.time()  # the emulator's clock starts at the wall clock
    leaked_looking = create_foreign_eni(
        node,
        {
            TAG_INSTANCE_ID: node.instance_id,
            TAG_CLUSTER_NAME: OTHER,
            TAG_CREATED_AT: rfc3339(now - 3600),
        },
        f"{ENI_DESCRIPTION_PREFIX}{node.instance_id}",
    )
    node.advance(1)  # the attachment completes
    foreign = {
        eni.eni_id: eni for eni in node.backend.ec2.describe_enis([attached, leaked_looking])
    }

    set_policy(node, shipped_policy("tag-scoped"))
    # the policy itself: every mutation denied on their ENIs, allowed on ours
    for eni_id, attachment_id in ((attached, attachment), (leaked_looking, None)):
        answers = mutations(client, foreign[eni_id], attachment_id, ours=False)
        assert set(answers.values()) == {"UnauthorizedOperation"}, (eni_id, answers)
        assert len(answers) == (6 if attachment_id else 5)
    (mine,) = node.backend.ec2.describe_enis([primary])
    ours = mutations(client, mine, None, ours=True)
    assert set(ours.values()) == {"DryRunOperation"}, ours

    before = stats(node)
    node.env.update({"CLUSTER_NAME": CLUSTER, "WARM_IP_TARGET": "12"})
    node.start(*MAX_PODS)
    node.wait_for(lambda: len(explain(node)["enis"]) == 2, timeout=30, what="an ENI of its own")
    for _ in range(12):  # two hours of the daemon's clock, reconciling all along
        node.advance(600)
        time.sleep(0.6)
    reply = node.wait_for_reply(lambda: node.add("pod-1"))
    assert reply["ok"], reply
    document = explain(node)
    pooled = {eni["id"] for eni in document["enis"]}
    assert primary in pooled
    assert not pooled & {attached, leaked_looking}
    denied = sent(before, stats(node), "denied")
    # only the tag on adoption is ever tried, once per backoff window (60 s doubling to 10 min)
    assert set(denied) == {"CreateTags"}, denied
    assert 1 <= denied["CreateTags"] <= 16, denied
    assert set(document["errors"]) == {"eniTag"}, document["errors"]
    (denial,) = document["missing_permissions"]
    assert denial["action"] == "ec2:CreateTags"
    assert denial["resource"].endswith(f"network-interface/{attached}")
    set_policy(node, None)
    now_seen = {
        eni.eni_id: eni for eni in node.backend.ec2.describe_enis([attached, leaked_looking])
    }
    assert now_seen == foreign  # not a tag, address or attachment changed; none deleted
    assert node.stop() == 0
