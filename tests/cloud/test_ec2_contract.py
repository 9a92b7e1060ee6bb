"""The boto3 EC2 adapter against the emulator and against moto: shapes, filters, tags, attach.

These are behaviours where moto agrees with EC2, so both backends must pass the same test; a
difference means the emulator (or our adapter) drifted from what botocore and EC2 do.
"""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Network

import pytest

from tests.cloud.conftest import Backend
from vpccni.core.aws_types import NotFound


def test_describe_instance_shows_the_primary_eni_at_device_0(backend: Backend) -> None:
    vpc, subnet = backend.network()
    instance_id = backend.launch(subnet)
    instance = backend.ec2.describe_instance(instance_id)
    assert (instance.instance_id, instance.instance_type) == (instance_id, "c5.large")
    assert (instance.subnet_id, instance.vpc_id) == (subnet, vpc)
    assert instance.private_ip in IPv4Network("10.0.1.0/24")
    assert [a.device_index for a in instance.enis] == [0]
    assert instance.free_device_index() == 1


def test_created_eni_has_tags_description_and_secondary_addresses(backend: Backend) -> None:
    vpc, subnet = backend.network()
    eni = backend.ec2.create_eni(
        subnet,
        [],
        "aws-K8S-i-test",
        {"node.k8s.amazonaws.com/instance_id": "i-test"},
        secondary_ips=3,
    )
    assert eni.status in ("pending", "available")  # EC2's CreateNetworkInterface says pending
    assert (eni.subnet_id, eni.vpc_id, eni.description) == (subnet, vpc, "aws-K8S-i-test")
    assert eni.tags == {"node.k8s.amazonaws.com/instance_id": "i-test"}
    assert len(eni.secondary_ips) == 3
    assert eni.primary_ip not in eni.secondary_ips
    assert eni.attachment is None
    [again] = backend.ec2.describe_enis([eni.eni_id])
    assert again.status == "available"
    assert replace(again, status=eni.status) == eni


def test_filters_select_enis(backend: Backend) -> None:
    vpc, subnet = backend.network()
    ours = backend.ec2.create_eni(subnet, [], "aws-K8S-i-1", {"team": "cni", "env": "test"})
    other = backend.ec2.create_eni(subnet, [], "something else", {"team": "web"})

    def ids(**filters: list[str]) -> set[str]:
        found = backend.ec2.describe_enis(
            filters={k.replace("_", "-"): v for k, v in filters.items()}
        )
        return {eni.eni_id for eni in found} & {ours.eni_id, other.eni_id}

    assert ids(tag_key=["env"]) == {ours.eni_id}
    assert backend.ec2.describe_enis(filters={"tag:team": ["cni"]})[0].eni_id == ours.eni_id
    assert ids(status=["available"]) == {ours.eni_id, other.eni_id}
    assert ids(subnet_id=[subnet]) == {ours.eni_id, other.eni_id}
    assert ids(vpc_id=[vpc]) == {ours.eni_id, other.eni_id}
    assert ids(description=["aws-K8S-*"]) == {ours.eni_id}


def test_attach_detach_delete(backend: Backend) -> None:
    _, subnet = backend.network()
    instance_id = backend.launch(subnet)
    eni = backend.ec2.create_eni(subnet, [], "aws-K8S-x", {})
    attachment_id = backend.ec2.attach_eni(eni.eni_id, instance_id, 1)
    backend.ec2.set_delete_on_termination(eni.eni_id, attachment_id)
    [attached] = backend.ec2.describe_enis([eni.eni_id])
    assert attached.status == "in-use"
    assert attached.attachment is not None
    assert (attached.attachment.instance_id, attached.attachment.device_index) == (instance_id, 1)
    assert attached.attachment.attachment_id == attachment_id
    if backend.name == "emulator":  # moto ignores DeleteOnTermination (EC2 honours it)
        assert attached.attachment.delete_on_termination
    found = backend.ec2.describe_enis(filters={"attachment.instance-id": [instance_id]})
    assert eni.eni_id in {e.eni_id for e in found}
    assert backend.ec2.describe_instance(instance_id).free_device_index() == 2

    backend.ec2.detach_eni(attachment_id)
    [detached] = backend.ec2.describe_enis([eni.eni_id])
    assert detached.status == "available"
    backend.ec2.delete_eni(eni.eni_id)
    with pytest.raises(NotFound, match=r"InvalidNetworkInterfaceID\.NotFound"):
        backend.ec2.describe_enis([eni.eni_id])


def test_create_tags_adds_and_overwrites(backend: Backend) -> None:
    _, subnet = backend.network()
    eni = backend.ec2.create_eni(subnet, [], "d", {"a": "1"})
    backend.ec2.create_tags(eni.eni_id, {"a": "2", "b": "3"})
    [tagged] = backend.ec2.describe_enis([eni.eni_id])
    assert tagged.tags == {"a": "2", "b": "3"}


def test_unassign_removes_addresses(backend: Backend) -> None:
    _, subnet = backend.network()
    eni = backend.ec2.create_eni(subnet, [], "d", {}, secondary_ips=3)
    backend.ec2.unassign_ips(eni.eni_id, eni.secondary_ips[:2])
    [after] = backend.ec2.describe_enis([eni.eni_id])
    assert after.secondary_ips == eni.secondary_ips[2:]
