"""Which attached ENIs the CNI manages (upstream's ``setUnmanagedENIs`` with
``MANAGE_UNTAGGED_ENI``), and IMDS standing in for EC2 in IMDS-only mode (pure core)."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import pytest

from vpccni.core.aws_types import (
    TAG_INSTANCE_ID,
    TAG_NO_MANAGE,
    EniAttachment,
    EniDescription,
    ImdsInterface,
)
from vpccni.core.reconcile import (
    imds_truth,
    managed,
    plan_reconcile,
    unmanaged_enis,
    unmanaged_slots,
)

ME = "i-0000000000000000a"


def eni(eni_id: str, device: int, card: int = 0, **tags: str) -> EniDescription:
    return EniDescription(
        eni_id=eni_id,
        subnet_id="subnet-1",
        vpc_id="vpc-1",
        status="in-use",
        primary_ip=IPv4Address("10.0.1.10") + device,
        secondary_ips=(IPv4Address("10.0.1.100") + device,),
        tags=dict(tags),
        attachment=EniAttachment(f"attach-{eni_id}", ME, device, card),
    )


@pytest.mark.parametrize(
    ("device", "tags", "manage_untagged", "expected"),
    [
        (0, {TAG_NO_MANAGE: "true"}, False, True),  # the primary ENI: always managed
        (0, {}, False, True),
        (1, {}, True, True),  # untagged: MANAGE_UNTAGGED_ENI decides
        (1, {}, False, False),
        (1, {TAG_INSTANCE_ID: ME}, False, True),  # this node's
        (1, {TAG_INSTANCE_ID: "i-other"}, False, False),  # another node's tag is not ours
        (1, {TAG_INSTANCE_ID: "i-other"}, True, True),
        (1, {TAG_NO_MANAGE: "false"}, False, True),  # no_manage=false opts in
        (1, {TAG_NO_MANAGE: "true", TAG_INSTANCE_ID: ME}, True, False),  # no_manage wins
        (1, {TAG_NO_MANAGE: "TRUE"}, False, True),  # only exactly "true" opts out
    ],
)
def test_managed_follows_upstream(
    device: int, tags: dict[str, str], manage_untagged: bool, expected: bool
) -> None:
    assert managed(eni("eni-x", device, **tags), ME, manage_untagged) is expected


def test_untagged_enis_are_left_alone_and_take_a_slot() -> None:
    truth = [eni("eni-0", 0), eni("eni-1", 1), eni("eni-2", 2, **{TAG_INSTANCE_ID: ME})]
    truth.append(eni("eni-9", 0, card=1))  # another network card: not card 0's slot
    unmanaged = unmanaged_enis(truth, ME, manage_untagged=False)
    assert unmanaged == {"eni-1", "eni-9"}
    assert unmanaged_slots(truth, ME, unmanaged) == 1
    plan = plan_reconcile({}, truth, ME, 0.0, manage_untagged=False)
    assert [info.eni_id for info, _ in plan.add_enis] == ["eni-0", "eni-2"]
    # managed by default: all of card 0
    plan = plan_reconcile({}, truth, ME, 0.0)
    assert [info.eni_id for info, _ in plan.add_enis] == ["eni-0", "eni-1", "eni-2"]


def test_imds_truth_shapes_interfaces_as_attached_untagged_enis() -> None:
    def interface(eni_id: str, device: int, ips: tuple[str, ...]) -> ImdsInterface:
        return ImdsInterface(
            mac=f"02:00:00:00:00:0{device}",
            eni_id=eni_id,
            device_number=device,
            network_card=0,
            local_ipv4s=tuple(IPv4Address(a) for a in ips),
            ipv4_prefixes=(IPv4Network("10.0.1.64/28"),) if device else (),
            subnet_id="subnet-1",
            subnet_cidr=IPv4Network("10.0.1.0/24"),
            vpc_id="vpc-1",
            vpc_cidrs=(IPv4Network("10.0.0.0/16"),),
            security_group_ids=("sg-1",),
        )

    found = imds_truth(
        [
            interface("eni-0", 0, ("10.0.1.10", "10.0.1.11")),
            interface("eni-1", 1, ("10.0.1.20",)),
            interface("eni-efa", 2, ()),  # EFA-only: no IPv4, left out as upstream does
        ],
        ME,
    )
    assert [e.eni_id for e in found] == ["eni-0", "eni-1"]
    primary, secondary = found
    assert primary.secondary_ips == (IPv4Address("10.0.1.11"),)
    assert secondary.prefixes == (IPv4Network("10.0.1.64/28"),)
    assert secondary.attachment is not None
    assert secondary.attachment.device_index == 1
    assert secondary.tags == {}
    plan = plan_reconcile({}, found, ME, 0.0, manage_untagged=False)  # no tags: primary only
    assert [info.eni_id for info, _ in plan.add_enis] == ["eni-0"]
