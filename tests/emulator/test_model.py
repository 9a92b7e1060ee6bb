"""The pure EC2 model: instance limits, subnet exhaustion, /28 prefixes, timing, termination."""

from __future__ import annotations

from ipaddress import IPv4Network

import pytest

from vpccni.emulator.errors import Ec2Error
from vpccni.emulator.interfaces import AddressRequest
from vpccni.emulator.model import Ec2Model
from vpccni.emulator.network import LaunchRequest
from vpccni.emulator.store import Delays


def setup(
    model: Ec2Model, cidr: str = "10.0.1.0/24", instance_type: str = "c5.large"
) -> tuple[str, str]:
    vpc = model.create_vpc(0, "10.0.0.0/16")
    subnet = model.create_subnet(0, vpc.vpc_id, cidr)
    _, [instance] = model.run_instances(0, LaunchRequest(instance_type, subnet.subnet_id))
    return subnet.subnet_id, instance.instance_id


def code_of(error: pytest.ExceptionInfo[Ec2Error]) -> str:
    return error.value.code


def test_c5_large_takes_three_enis_and_refuses_a_fourth(model: Ec2Model) -> None:
    subnet, instance = setup(model)
    for index in (1, 2):
        eni = model.create_eni(1, subnet)
        model.attach_eni(1, eni.eni_id, instance, index)
    extra = model.create_eni(1, subnet)
    with pytest.raises(Ec2Error) as error:
        model.attach_eni(1, extra.eni_id, instance, 3)
    assert code_of(error) == "AttachmentLimitExceeded"


def test_eni_count_is_checked_before_the_device_index(model: Ec2Model) -> None:
    subnet, instance = setup(model)
    for index in (1, 2):
        model.attach_eni(1, model.create_eni(1, subnet).eni_id, instance, index)
    with pytest.raises(Ec2Error) as error:
        model.attach_eni(1, model.create_eni(1, subnet).eni_id, instance, 1)
    assert code_of(error) == "AttachmentLimitExceeded"


def test_taken_device_index_is_invalid_parameter(model: Ec2Model) -> None:
    subnet, instance = setup(model)
    model.attach_eni(1, model.create_eni(1, subnet).eni_id, instance, 1)
    with pytest.raises(Ec2Error) as error:
        model.attach_eni(1, model.create_eni(1, subnet).eni_id, instance, 1)
    assert code_of(error) == "InvalidParameterValue"


def test_each_address_and_prefix_takes_one_slot(model: Ec2Model) -> None:
    subnet, instance = setup(model, instance_type="m5.large")
    eni = model.create_eni(1, subnet)
    model.attach_eni(1, eni.eni_id, instance, 1)
    model.assign(2, eni.eni_id, AddressRequest(address_count=4))
    model.assign(2, eni.eni_id, AddressRequest(prefix_count=5))
    with pytest.raises(Ec2Error) as error:
        model.assign(2, eni.eni_id, AddressRequest(prefix_count=1))
    assert code_of(error) == "PrivateIpAddressLimitExceeded"
    current = model.store.eni(eni.eni_id)
    assert current.slots_used == 10
    assert len(current.prefixes) == 5


def test_a_slash_28_has_eleven_usable_addresses(model: Ec2Model) -> None:
    subnet, _ = setup(model, cidr="10.0.9.0/28")
    assert model.available_addresses(subnet) == 10
    eni = model.create_eni(1, subnet, AddressRequest(address_count=8))
    assert model.available_addresses(subnet) == 1
    model.create_eni(1, subnet)
    assert model.available_addresses(subnet) == 0
    with pytest.raises(Ec2Error) as error:
        model.create_eni(1, subnet)
    assert code_of(error) == "InsufficientFreeAddressesInSubnet"
    assert "10.0.9.0" not in eni.private_ips
    assert "10.0.9.15" not in eni.private_ips


def test_fragmented_subnet_gives_insufficient_cidr_blocks(model: Ec2Model) -> None:
    subnet, _ = setup(model, cidr="10.0.2.0/26")  # blocks .16 and .32 can be prefixes
    model.create_eni(1, subnet, AddressRequest(addresses=("10.0.2.20", "10.0.2.40")))
    holder = model.create_eni(1, subnet)
    with pytest.raises(Ec2Error) as error:
        model.assign(2, holder.eni_id, AddressRequest(prefix_count=1))
    assert code_of(error) == "InsufficientCidrBlocks"
    assert model.available_addresses(subnet) > 0


def test_prefixes_are_aligned_and_avoid_single_addresses(model: Ec2Model) -> None:
    subnet, instance = setup(model)
    eni = model.create_eni(1, subnet, AddressRequest(address_count=3))
    model.attach_eni(1, eni.eni_id, instance, 1)
    _, prefixes = model.assign(2, eni.eni_id, AddressRequest(prefix_count=3))
    networks = [IPv4Network(p) for p in prefixes]
    assert all(n.prefixlen == 28 for n in networks)
    singles = {a for e in model.store.enis.values() for a in e.private_ips}
    assert not any(IPv4Network(f"{a}/32").subnet_of(n) for a in singles for n in networks)
    assert model.invariant_violations() == []


def test_prefixes_are_refused_on_xen_and_allowed_on_bare_metal(model: Ec2Model) -> None:
    subnet, xen = setup(model, instance_type="t2.medium")
    eni = model.create_eni(1, subnet)
    model.attach_eni(1, eni.eni_id, xen, 1)
    with pytest.raises(Ec2Error) as error:
        model.assign(2, eni.eni_id, AddressRequest(prefix_count=1))
    assert code_of(error) == "InvalidParameterValue"
    _, [metal] = model.run_instances(3, LaunchRequest("c5.metal", subnet))
    other = model.create_eni(3, subnet)
    model.attach_eni(3, other.eni_id, metal.instance_id, 1)
    assert len(model.assign(4, other.eni_id, AddressRequest(prefix_count=2))[1]) == 2


def test_attached_eni_cannot_be_deleted_and_primary_cannot_be_detached(model: Ec2Model) -> None:
    subnet, instance = setup(model)
    eni = model.create_eni(1, subnet)
    model.attach_eni(1, eni.eni_id, instance, 1)
    with pytest.raises(Ec2Error) as error:
        model.delete_eni(2, eni.eni_id)
    assert code_of(error) == "InvalidNetworkInterface.InUse"
    primary = model.store.instance(instance).primary_eni_id
    primary_attachment = model.store.eni(primary).attachment
    assert primary_attachment is not None
    with pytest.raises(Ec2Error) as error:
        model.detach_eni(2, primary_attachment.attachment_id)
    assert code_of(error) == "OperationNotPermitted"


def test_attach_and_detach_take_time_on_the_model_clock(model: Ec2Model) -> None:
    model.delays = Delays(attach=5.0, detach=2.0)
    subnet, instance = setup(model)
    eni = model.create_eni(1, subnet)
    attachment = model.attach_eni(10, eni.eni_id, instance, 1)
    assert attachment.status == "attaching"
    model.advance(14.9)
    assert model.store.eni(eni.eni_id).attachment.status == "attaching"  # type: ignore[union-attr]
    model.advance(15.0)
    assert model.store.eni(eni.eni_id).attachment.status == "attached"  # type: ignore[union-attr]
    model.detach_eni(20, attachment.attachment_id)
    assert model.store.eni(eni.eni_id).attachment.status == "detaching"  # type: ignore[union-attr]
    model.advance(22)
    assert model.store.eni(eni.eni_id).status == "available"
    # The history saw each transition at its own time, not when it was noticed.
    _, shown = model.node_view(instance, 14.0)
    assert [e.eni_id for e in shown] == [model.store.instance(instance).primary_eni_id]
    _, shown = model.node_view(instance, 21.0)
    assert eni.eni_id in [e.eni_id for e in shown]


def test_terminate_deletes_enis_marked_delete_on_termination(model: Ec2Model) -> None:
    subnet, instance = setup(model)
    kept = model.create_eni(1, subnet, AddressRequest(address_count=2))
    dropped = model.create_eni(1, subnet, AddressRequest(address_count=2))
    model.attach_eni(1, kept.eni_id, instance, 1)
    attachment = model.attach_eni(1, dropped.eni_id, instance, 2)
    model.modify_eni(2, dropped.eni_id, delete_on_termination=(attachment.attachment_id, True))
    before = model.available_addresses(subnet)
    model.terminate_instances(3, [instance])
    assert model.store.eni(kept.eni_id).status == "available"
    assert dropped.eni_id not in model.store.enis
    assert model.available_addresses(subnet) == before + 3 + 1  # dropped ENI + primary ENI
    assert model.store.instance(instance).state == "terminated"


def test_unknown_ids_give_ec2_not_found_codes(model: Ec2Model) -> None:
    setup(model)
    unknown = "0123456789abcdef0"
    cases = [
        (lambda: model.create_eni(1, f"subnet-{unknown}"), "InvalidSubnetID.NotFound"),
        (lambda: model.delete_eni(1, f"eni-{unknown}"), "InvalidNetworkInterfaceID.NotFound"),
        (lambda: model.detach_eni(1, f"eni-attach-{unknown}"), "InvalidAttachmentID.NotFound"),
        (lambda: model.terminate_instances(1, [f"i-{unknown}"]), "InvalidInstanceID.NotFound"),
        (lambda: model.delete_eni(1, "eni-nope"), "InvalidNetworkInterfaceID.Malformed"),
    ]
    for call, code in cases:
        with pytest.raises(Ec2Error) as error:
            call()
        assert code_of(error) == code


def test_unassign_must_name_addresses_on_the_eni(model: Ec2Model) -> None:
    subnet, _ = setup(model)
    eni = model.create_eni(1, subnet, AddressRequest(address_count=1))
    with pytest.raises(Ec2Error) as error:
        model.unassign(2, eni.eni_id, ["10.0.1.200"])
    assert code_of(error) == "InvalidParameterValue"
    with pytest.raises(Ec2Error) as error:
        model.unassign(2, eni.eni_id, [eni.primary_ip])
    assert code_of(error) == "InvalidParameterValue"
    model.unassign(2, eni.eni_id, [eni.secondary_ips[0]])
    assert model.store.eni(eni.eni_id).secondary_ips == ()


def test_explicit_address_in_use_or_reserved_is_refused(model: Ec2Model) -> None:
    subnet, _ = setup(model)
    eni = model.create_eni(1, subnet)
    with pytest.raises(Ec2Error) as error:
        model.create_eni(1, subnet, primary_ip=eni.primary_ip)
    assert code_of(error) == "InvalidIPAddress.InUse"
    with pytest.raises(Ec2Error) as error:
        model.create_eni(1, subnet, primary_ip="10.0.1.1")
    assert code_of(error) == "InvalidParameterValue"


def test_allow_reassignment_moves_a_secondary_or_changes_nothing(model: Ec2Model) -> None:
    subnet, _ = setup(model)
    donor = model.create_eni(1, subnet, AddressRequest(address_count=2))
    taker = model.create_eni(1, subnet)
    moving = donor.secondary_ips[0]
    with pytest.raises(Ec2Error):
        model.assign(
            2, taker.eni_id, AddressRequest(addresses=(moving, "10.0.1.1")), allow_reassignment=True
        )
    assert moving in model.store.eni(donor.eni_id).private_ips
    model.assign(2, taker.eni_id, AddressRequest(addresses=(moving,)), allow_reassignment=True)
    assert moving not in model.store.eni(donor.eni_id).private_ips
    assert moving in model.store.eni(taker.eni_id).private_ips
    assert model.invariant_violations() == []
