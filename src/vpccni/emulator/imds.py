"""The instance metadata service (IMDSv2 paths) of one emulated node, as it was at time t.

Owns :func:`node_tree` (the metadata of an instance and its ENIs rendered as IMDS's directory
tree) and :func:`lookup` (a request path -> 200 with text, a directory listing, or 404). The
paths are those ipamd reads (behaviour reference §8.1): instance-id, instance-type, local-ipv4,
mac, placement/*, security-groups, network/interfaces/macs/ and per MAC device-number,
interface-id, subnet-id, vpc-id, subnet-ipv4-cidr-block, vpc-ipv4-cidr-blocks, local-ipv4s,
ipv4-prefix (absent, so 404, when the ENI has none), security-group-ids, network-card (only on
types with several cards); and dynamic/instance-identity/document. Pure: the caller picks the
time (``now - lag``) and handles tokens.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Union

from vpccni.emulator.model import Ec2Model
from vpccni.emulator.records import ACCOUNT_ID, Eni, Instance
from vpccni.emulator.views import dns_name, timestamp

Tree = dict[str, Union[str, "Tree"]]


@dataclass(frozen=True)
class ImdsAnswer:
    status: int
    body: str
    content_type: str = "text/plain"


NOT_FOUND = ImdsAnswer(404, "Not Found")


def node_tree(model: Ec2Model, instance: Instance, enis: list[Eni]) -> Tree:
    """The whole ``/latest/`` tree of ``instance`` with ``enis`` attached."""
    store = model.store
    region = model.region
    limits = store.instance_limits(instance.instance_type)
    primary = next((eni for eni in enis if eni.eni_id == instance.primary_eni_id), None)
    macs: Tree = {eni.mac: _mac_tree(model, eni, len(limits.network_cards) > 1) for eni in enis}
    group_names = [store.groups[g].name for g in instance.group_ids if g in store.groups]
    meta: Tree = {
        "ami-id": instance.image_id,
        "instance-id": instance.instance_id,
        "instance-type": instance.instance_type,
        "placement": {"availability-zone": instance.availability_zone, "region": region},
        "security-groups": "\n".join(group_names),
        "network": {"interfaces": {"macs": macs}},
        "services": {"domain": "amazonaws.com", "partition": "aws"},
    }
    if primary is not None:
        meta["local-ipv4"] = primary.primary_ip
        meta["mac"] = primary.mac
        meta["hostname"] = meta["local-hostname"] = dns_name(primary.primary_ip, region)
    document = {
        "accountId": ACCOUNT_ID,
        "architecture": "x86_64",
        "availabilityZone": instance.availability_zone,
        "imageId": instance.image_id,
        "instanceId": instance.instance_id,
        "instanceType": instance.instance_type,
        "pendingTime": _iso(instance.launch_time),
        "privateIp": primary.primary_ip if primary else None,
        "region": region,
        "version": "2017-09-30",
    }
    identity: Tree = {"document": json.dumps(document, indent=2)}
    return {"meta-data": meta, "dynamic": {"instance-identity": identity}}


def _mac_tree(model: Ec2Model, eni: Eni, multi_card: bool) -> Tree:
    store = model.store
    subnet = store.subnet(eni.subnet_id)
    vpc = store.vpc(eni.vpc_id)
    attachment = eni.attachment
    tree: Tree = {
        "device-number": str(attachment.device_index if attachment else 0),
        "interface-id": eni.eni_id,
        "local-hostname": dns_name(eni.primary_ip, model.region),
        "local-ipv4s": "\n".join(eni.private_ips),
        "mac": eni.mac,
        "owner-id": ACCOUNT_ID,
        "security-group-ids": "\n".join(eni.group_ids),
        "security-groups": "\n".join(
            store.groups[g].name for g in eni.group_ids if g in store.groups
        ),
        "subnet-id": eni.subnet_id,
        "subnet-ipv4-cidr-block": subnet.cidr,
        "vpc-id": eni.vpc_id,
        "vpc-ipv4-cidr-block": vpc.cidr,
        "vpc-ipv4-cidr-blocks": vpc.cidr,
    }
    if eni.prefixes:
        tree["ipv4-prefix"] = "\n".join(eni.prefixes)
    if multi_card:
        tree["network-card"] = str(attachment.network_card_index if attachment else 0)
    return tree


def lookup(tree: Tree, path: str) -> ImdsAnswer:
    """Answer ``path`` (relative to ``/latest/``): a value, a listing, or 404."""
    node: str | Tree = tree
    for part in [p for p in path.split("/") if p]:
        if not isinstance(node, dict) or part not in node:
            return NOT_FOUND
        node = node[part]
    if isinstance(node, dict):
        listing = [name + "/" if isinstance(child, dict) else name for name, child in node.items()]
        return ImdsAnswer(200, "\n".join(sorted(listing)))
    # Like IMDS, a value answers with or without a trailing slash (botocore asks with one).
    content_type = "application/json" if path.rstrip("/").endswith("document") else "text/plain"
    return ImdsAnswer(200, node, content_type)


def _iso(seconds: float) -> str:
    return timestamp(seconds).strftime("%Y-%m-%dT%H:%M:%SZ")
