"""The instance metadata service (IMDSv2 paths) of one emulated node, as it was at time t.

Owns :func:`node_tree` (the metadata of an instance and its ENIs rendered as IMDS's directory
tree) and :func:`lookup` (a request path -> 200 with text, a directory listing, or 404). The
paths are those ipamd reads (behaviour reference §8.1): instance-id, instance-type, local-ipv4,
mac, placement/*, security-groups, network/interfaces/macs/ and per MAC device-number,
interface-id, subnet-id, vpc-id, subnet-ipv4-cidr-block, vpc-ipv4-cidr-block (the primary),
vpc-ipv4-cidr-blocks (every associated block, one a line, the primary first), local-ipv4s,
ipv4-prefix (absent, so 404, when the ENI has none), security-group-ids, network-card (only on
types with several cards); and dynamic/instance-identity/document. Pure: the caller picks the
time (``now - lag``) and handles tokens. :func:`instance_role_tree` adds ``iam/info`` and
``iam/security-credentials/<role>``: every emulated node has an instance profile (as every EKS
node does), so an SDK with no other credentials takes the node role's from IMDS.

Also owns :func:`imds_view`, the node as IMDS lists it at that time, with the partial views real
IMDS shows (:class:`PartialViews`, each off at 0), all read from the model's history: a newly
attached ENI listed with only its primary address and no prefixes for a while (upstream issue
#1148); a detached ENI's MAC still listed while its ``device-number`` answers 404 (upstream PR
#194); released addresses and prefixes still in ``local-ipv4s`` / ``ipv4-prefix`` for a while
after an unassign (upstream issue #3019).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TypeGuard, Union

from vpccni.emulator.history import History
from vpccni.emulator.model import Ec2Model, shown_on
from vpccni.emulator.records import ACCOUNT_ID, Eni, Instance
from vpccni.emulator.views import dns_name, timestamp

Tree = dict[str, Union[str, "Tree"]]


@dataclass(frozen=True)
class ImdsAnswer:
    status: int
    body: str
    content_type: str = "text/plain"


NOT_FOUND = ImdsAnswer(404, "Not Found")


@dataclass(frozen=True)
class PartialViews:
    """Seconds for which IMDS shows part of the truth (0: never)."""

    addresses_after_attach: float = 0.0
    mac_after_detach: float = 0.0
    addresses_after_unassign: float = 0.0


@dataclass(frozen=True)
class NodeView:
    """A node as IMDS lists it: ``enis`` as listed, ``departed`` MACs without a device-number."""

    instance: Instance
    enis: list[Eni]
    departed: list[Eni]


def imds_view(
    model: Ec2Model, instance_id: str, at: float, partial: PartialViews = PartialViews()
) -> NodeView | None:
    """What the IMDS of ``instance_id`` lists at emulator time ``at`` (None: no instance)."""
    instance, enis = model.node_view(instance_id, at)
    if instance is None:
        return None
    history = model.store.history
    since = instance.launch_time
    listed = [_as_listed(history, eni, at, since, partial) for eni in enis]
    departed: list[Eni] = []
    if partial.mac_after_detach > 0:
        start = max(at - partial.mac_after_detach, since)
        shown = {eni.eni_id for eni in enis}
        for key in history:
            if key in shown or key == instance_id:
                continue
            recent = [
                v
                for v in history.during(key, start, at)
                if isinstance(v, Eni) and shown_on(v, instance_id)
            ]
            if recent:
                departed.append(recent[-1])
    return NodeView(instance, listed, departed)


def _as_listed(
    history: History[Eni | Instance], eni: Eni, at: float, since: float, partial: PartialViews
) -> Eni:
    """``eni`` with the addresses IMDS lists for it at ``at``."""
    attachment = eni.attachment
    assert attachment is not None
    if partial.addresses_after_attach > 0:
        before = history.at(eni.eni_id, max(at - partial.addresses_after_attach, since))
        if not _same_attachment(before, attachment.attachment_id):
            return replace(eni, private_ips=eni.private_ips[:1], prefixes=())
    if partial.addresses_after_unassign > 0:
        start = max(at - partial.addresses_after_unassign, since)
        earlier = [
            v
            for v in history.during(eni.eni_id, start, at)
            if _same_attachment(v, attachment.attachment_id)
        ]
        addresses = _union(eni.private_ips, [v.private_ips for v in earlier])
        prefixes = _union(eni.prefixes, [v.prefixes for v in earlier])
        if addresses != eni.private_ips or prefixes != eni.prefixes:
            return replace(eni, private_ips=addresses, prefixes=prefixes)
    return eni


def _same_attachment(version: object, attachment_id: str) -> TypeGuard[Eni]:
    """``version`` is an ENI shown in IMDS under attachment ``attachment_id``."""
    return (
        isinstance(version, Eni)
        and version.attachment is not None
        and version.attachment.attachment_id == attachment_id
        and version.attachment.status in ("attached", "detaching")
    )


def _union(current: tuple[str, ...], earlier: Sequence[tuple[str, ...]]) -> tuple[str, ...]:
    """``current`` followed by what only earlier versions held, in order of appearance."""
    seen = dict.fromkeys(current)
    for values in earlier:
        seen.update(dict.fromkeys(values))
    return tuple(seen)


def node_tree(
    model: Ec2Model, instance: Instance, enis: list[Eni], departed: Sequence[Eni] = ()
) -> Tree:
    """The whole ``/latest/`` tree of ``instance`` with ``enis`` attached (and ``departed``
    MACs still listed, with no device-number)."""
    store = model.store
    region = model.region
    limits = store.instance_limits(instance.instance_type)
    multi_card = len(limits.network_cards) > 1
    primary = next((eni for eni in enis if eni.eni_id == instance.primary_eni_id), None)
    macs: Tree = {}
    for eni in departed:
        gone = _mac_tree(model, eni, multi_card)
        del gone["device-number"]
        macs[eni.mac] = gone
    macs.update({eni.mac: _mac_tree(model, eni, multi_card) for eni in enis})
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
        "vpc-ipv4-cidr-blocks": "\n".join(vpc.cidr_blocks),
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


NODE_ROLE = "eks-node-role"
"""The role of the instance profile every emulated node has (listed in security-credentials)."""
CREDENTIALS_LIFETIME = 6 * 3600.0  # seconds, as EC2's instance-profile credentials


def instance_role_tree(instance: Instance, now: float) -> Tree:
    """``iam/``: the instance profile and its role's temporary credentials, valid from ``now``.

    The keys are fake but shaped like EC2's (``ASIA`` access key id, session token, ISO
    timestamps), stable per instance, and renewed with a later ``Expiration`` on every read.
    """
    suffix = instance.instance_id.removeprefix("i-").upper().ljust(16, "0")[:16]
    credentials = {
        "Code": "Success",
        "LastUpdated": _iso(now),
        "Type": "AWS-HMAC",
        "AccessKeyId": f"ASIA{suffix}",
        "SecretAccessKey": f"emulated-node-role-secret-{instance.instance_id}",
        "Token": f"emulated-node-role-session-{instance.instance_id}",
        "Expiration": _iso(now + CREDENTIALS_LIFETIME),
    }
    info = {
        "Code": "Success",
        "LastUpdated": _iso(now),
        "InstanceProfileArn": f"arn:aws:iam::{ACCOUNT_ID}:instance-profile/{NODE_ROLE}",
        "InstanceProfileId": f"AIPA{suffix}",
    }
    return {
        "info": json.dumps(info, indent=2),
        "security-credentials": {NODE_ROLE: json.dumps(credentials, indent=2)},
    }


def _iso(seconds: float) -> str:
    return timestamp(seconds).strftime("%Y-%m-%dT%H:%M:%SZ")
